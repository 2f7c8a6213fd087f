"""The search supernet: every OS block mixes the four instance-norm placements.

The space follows the OSNet-AIN paper (Zhou et al., TPAMI 2021) and its published search code:

* Each searchable block (conv2-1 ... conv4-2) holds four *separate* candidate blocks, one per
  :class:`~omnireid.models.layers.INPosition` (none, inside, after, both); weights are not
  shared between candidates. All four are the one :class:`~omnireid.models.layers.OSBlock`
  class with a different ``in_position``.
* The stem (conv1) uses instance norm, and every normalisation layer of the supernet (batch and
  instance norm alike, the embedding's BatchNorm1d included) is non-affine during the search.
* Each block has architecture weights ``alpha`` of shape ``(4,)``, initialised to ones. In
  training, the mixture weights are a Gumbel-softmax sample
  ``softmax((log(relu(alpha) + eps) + g) / lambda)`` with ``g`` standard Gumbel noise and
  temperature ``lambda``; the block output is the weighted sum of the candidates' outputs.
  ``alpha`` is an ordinary parameter trained on the same loss as the network weights (the
  published code puts it in the same SGD group; :func:`omnireid.engine.nas.nas` can give it an
  optimiser and learning rate of its own, ``nas.arch_optim``).
* The child keeps, per block, the candidate with the largest ``alpha``.

Two cheaper modes (not in the paper):

* ``single_path`` runs only the candidate picked by the hard Gumbel sample of each step; a
  straight-through estimator scales its output by ``1 + w - stop_grad(w)`` (value 1, gradient of
  the soft weight ``w``), so ``alpha`` receives gradients while one candidate is computed and
  stored for the backward pass. Limitation (measured, see docs/nas.md): that gradient only
  sees the *scale* of the block output, and where the next layer is a batch-normalised
  convolution (conv2-2 -> pool2, conv3-2 -> pool3, conv4-2 -> conv5) batch norm removes the
  scale, so those blocks' ``alpha`` get no usable gradient (~1e-7); switching among four
  differently normalised candidates every step also slows the network's own training.
* ``two_path`` (after ProxylessNAS) computes the two candidates with the largest Gumbel-perturbed
  scores and mixes them with their soft weights renormalised to sum to one: half the mixture's
  cost, and ``alpha`` learns from the relative weighting, which batch norm does not remove.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from omnireid.errors import UsageError
from omnireid.models.arch import OSNetArch, make_arch
from omnireid.models.layers import INPosition, OSBlock
from omnireid.models.osnet import OSNet
from omnireid.registry import check_name

#: The candidates of every searchable block, in the order of their ``alpha`` entries.
NAS_CANDIDATES: tuple[INPosition, ...] = (
    INPosition.NONE, INPosition.INSIDE, INPosition.AFTER, INPosition.BOTH,
)
NAS_MODES = ("mixture", "single_path", "two_path")
EPS = 1e-12


def temperature_at(
    epoch: int,
    initial: float = 10.0,
    decay_every: int = 20,
    decay_rate: float = 0.5,
    minimum: float = 1.0,
) -> float:
    """The annealed Gumbel-softmax temperature of a (0-based) epoch.

    ``max(minimum, initial * decay_rate ** (epoch // decay_every))``; ``decay_every <= 0`` keeps
    it at ``initial``. Defaults are the paper's: 10, halved every 20 epochs, floor 1.
    """
    if epoch < 0:
        raise UsageError(f"epoch must be >= 0, got {epoch}")
    if decay_every <= 0:
        return float(initial)
    return float(max(minimum, initial * decay_rate ** (epoch // decay_every)))


def alpha_logits(alpha: torch.Tensor) -> torch.Tensor:
    """``log(relu(alpha) + eps)``: ``(..., K)`` -> ``(..., K)``; non-positive entries get ~ -27.6."""
    return torch.log(F.relu(alpha) + EPS)


def candidate_probabilities(alpha: torch.Tensor) -> torch.Tensor:
    """The categorical distribution the Gumbel-softmax samples from: ``relu(alpha)`` normalised.

    ``(..., K)`` -> ``(..., K)`` summing to one (uniform where every entry is <= 0).
    """
    return F.softmax(alpha_logits(alpha), dim=-1)


def gumbel_softmax_weights(
    alpha: torch.Tensor,
    temperature: float,
    *,
    noise: bool = True,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mixture weights from architecture weights.

    Args:
        alpha: ``(K,)`` (or ``(..., K)``) architecture weights.
        temperature: lambda > 0; large values flatten the weights, small ones sharpen them.
        noise: add Gumbel noise (training); without it the result is deterministic.
        hard: return the one-hot of the sample with straight-through gradients (value one-hot,
            gradient of the soft weights).
        generator: optional random generator for the noise.

    Returns:
        ``(..., K)`` non-negative weights summing to one along the last axis.
    """
    if temperature <= 0:
        raise UsageError(f"temperature must be > 0, got {temperature}")
    logits = alpha_logits(alpha)
    if noise:
        u = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
        logits = logits - torch.log(-torch.log(u + EPS) + EPS)
    soft = F.softmax(logits / temperature, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft


class MixedOSBlock(nn.Module):
    """A searchable block: the candidate OS blocks and their architecture weights ``alpha``.

    Input ``(N, in_channels, H, W)``, output ``(N, out_channels, H, W)``.

    Args:
        in_channels, out_channels: block width in and out.
        candidates: the IN placements to choose from (default :data:`NAS_CANDIDATES`).
        affine: learnable scale/shift in the candidates' instance norms (off in the search).
        mode: ``"mixture"`` (weighted sum of all candidates, the paper), ``"single_path"`` or
            ``"two_path"`` (see the module docstring).
        share_weights: the candidates use one set of convolutions (and one batch norm after the
            last 1x1 convolution) and differ only in their instance norms. Not the paper's
            choice (it keeps four separate blocks); it lets the sampled modes train the network
            (every step updates the same convolutions), see docs/nas.md.

    In evaluation mode no noise is drawn: ``mixture`` uses the noise-free softmax at the current
    temperature, the other modes the candidate with the largest ``alpha``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        candidates: Sequence[INPosition | str] = NAS_CANDIDATES,
        affine: bool = False,
        mode: str = "mixture",
        share_weights: bool = False,
    ) -> None:
        super().__init__()
        self.positions = tuple(INPosition(c) for c in candidates)
        if len(self.positions) < 1 or len(set(self.positions)) != len(self.positions):
            raise UsageError(f"candidates must be distinct IN positions, got {candidates}")
        self.candidates = nn.ModuleList(
            OSBlock(in_channels, out_channels, p, affine=affine) for p in self.positions
        )
        self.share_weights = share_weights
        if share_weights:
            _tie_candidates(list(self.candidates))
        self.alpha = nn.Parameter(torch.ones(len(self.positions)))
        self.temperature = 1.0
        self.mode = _check_mode(mode)

    def weights(self) -> torch.Tensor:
        """The mixture weights of one forward pass: ``(K,)`` (zero for candidates not run)."""
        if not self.training:
            if self.mode == "mixture":
                return gumbel_softmax_weights(self.alpha, self.temperature, noise=False)
            return F.one_hot(self.alpha.argmax(), len(self.positions)).to(self.alpha.dtype)
        if self.mode == "two_path" and len(self.positions) > 2:
            soft = gumbel_softmax_weights(self.alpha, self.temperature, noise=True)
            keep = torch.zeros_like(soft).scatter_(0, soft.detach().topk(2).indices, 1.0)
            return soft * keep / (soft * keep).sum()
        hard = self.mode == "single_path"
        return gumbel_softmax_weights(self.alpha, self.temperature, noise=True, hard=hard)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        if self.training and self.mode == "single_path":
            active = [int(w.detach().argmax())]  # the others carry value 0 and gradient
        else:
            active = [k for k, v in enumerate(w.detach().tolist()) if v != 0.0]
        out = w[active[0]] * self.candidates[active[0]](x)
        for k in active[1:]:
            out = out + w[k] * self.candidates[k](x)
        return out

    def chosen(self) -> INPosition:
        """The candidate with the largest ``alpha`` (the paper's derivation rule)."""
        return self.positions[int(self.alpha.detach().argmax())]


def _tie_candidates(blocks: list[OSBlock]) -> None:
    """Make ``blocks`` share every convolution (and the batch norm after the last 1x1 conv)."""
    base = blocks[0]
    bn = next((b.conv3.bn for b in blocks if b.conv3.bn is not None), None)
    for b in blocks:
        if b is not base:
            b.conv1, b.streams, b.gate, b.downsample = base.conv1, base.streams, base.gate, base.downsample
            b.conv3.conv = base.conv3.conv
        if b.conv3.bn is not None:
            b.conv3.bn = bn


def _check_mode(mode: str) -> str:
    check_name("NAS mode", mode, NAS_MODES)
    return mode


def remove_norm_affine(module: nn.Module) -> int:
    """Make every BatchNorm/InstanceNorm layer of ``module`` non-affine, in place.

    Returns the number of layers changed.
    """
    changed = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.affine:
            m.affine = False
            m.register_parameter("weight", None)
            m.register_parameter("bias", None)
            changed += 1
    return changed


class OSNetSupernet(OSNet):
    """OSNet whose six OS blocks are :class:`MixedOSBlock` s.

    Input ``(N, 3, H, W)``; output :class:`~omnireid.models.output.ReIDOutput` like every
    omnireid model (``embedding (N, feature_dim)``, ``logits (N, num_classes)``).

    Args:
        num_classes: training identities (the search loss is identity classification).
        width: channel width multiplier of the supernet (1.0 = the paper's x1_0).
        feature_dim: embedding size.
        candidates: the IN placements of every block (default :data:`NAS_CANDIDATES`).
        mode: ``"mixture"``, ``"single_path"`` or ``"two_path"``.
        affine_norms: keep learnable scale/shift in normalisation layers (the paper: no).
        share_weights: candidates share their convolutions (see :class:`MixedOSBlock`; the
            paper: no).
    """

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        feature_dim: int = 512,
        candidates: Sequence[INPosition | str] = NAS_CANDIDATES,
        mode: str = "mixture",
        affine_norms: bool = False,
        share_weights: bool = False,
    ) -> None:
        # Read by _stage while OSNet.__init__ builds the stages.
        self._search_candidates = tuple(INPosition(c) for c in candidates)
        self._search_mode = _check_mode(mode)
        self._affine_norms = affine_norms
        self._share_weights = share_weights
        super().__init__(make_arch(width, conv1_in=True, feature_dim=feature_dim),
                         num_classes=num_classes, affine_in=affine_norms)
        if not affine_norms:
            remove_norm_affine(self)

    def _stage(self, in_ch: int, out_ch: int, positions, affine: bool) -> nn.Sequential:  # type: ignore[override]
        return nn.Sequential(*[
            MixedOSBlock(in_ch if i == 0 else out_ch, out_ch, self._search_candidates,
                         affine=affine, mode=self._search_mode, share_weights=self._share_weights)
            for i in range(len(positions))
        ])

    @property
    def candidates(self) -> tuple[INPosition, ...]:
        return self._search_candidates

    def mixed_blocks(self) -> list[tuple[str, MixedOSBlock]]:
        """``[("conv2-1", block), ...]`` in network order."""
        blocks = [b for stage in (self.conv2, self.conv3, self.conv4) for b in stage]
        return list(zip(self.arch.block_names(), blocks))

    def arch_parameters(self) -> list[nn.Parameter]:
        """The ``alpha`` of every searchable block."""
        return [b.alpha for _, b in self.mixed_blocks()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an ``alpha``."""
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    @property
    def mode(self) -> str:
        return self._search_mode

    def set_mode(self, mode: str) -> None:
        """Switch every block to ``mode`` (one of :data:`NAS_MODES`)."""
        self._search_mode = _check_mode(mode)
        for _, b in self.mixed_blocks():
            b.mode = mode

    @property
    def temperature(self) -> float:
        return self.mixed_blocks()[0][1].temperature

    def set_temperature(self, temperature: float) -> None:
        """Set the Gumbel-softmax temperature lambda of every block."""
        if not temperature > 0 or math.isinf(temperature):
            raise UsageError(f"temperature must be a positive number, got {temperature}")
        for _, b in self.mixed_blocks():
            b.temperature = float(temperature)

    def alphas(self) -> torch.Tensor:
        """``(num_blocks, K)`` copy of the architecture weights."""
        return torch.stack([a.detach().clone() for a in self.arch_parameters()])

    def probabilities(self) -> torch.Tensor:
        """``(num_blocks, K)``: :func:`candidate_probabilities` of every block."""
        return candidate_probabilities(self.alphas())

    def derive(self, width: float | None = None, feature_dim: int | None = None) -> OSNetArch:
        """The child architecture: per block the candidate with the largest ``alpha``.

        Args:
            width: width multiplier of the child (default: the supernet's).
            feature_dim: embedding size of the child (default: the supernet's).
        """
        blocks = [b.chosen() for _, b in self.mixed_blocks()]
        arch = OSNetArch(self.arch.channels, self.arch.layers, tuple(blocks), conv1_in=True,
                         feature_dim=self.arch.feature_dim if feature_dim is None else feature_dim)
        return arch if width is None else arch.with_width(width)


def build_supernet(
    num_classes: int,
    width: float = 1.0,
    feature_dim: int = 512,
    mode: str = "mixture",
    candidates: Sequence[INPosition | str] = NAS_CANDIDATES,
    affine_norms: bool = False,
    share_weights: bool = False,
) -> OSNetSupernet:
    """Build the search supernet (see :class:`OSNetSupernet`)."""
    return OSNetSupernet(num_classes, width=width, feature_dim=feature_dim, candidates=candidates,
                         mode=mode, affine_norms=affine_norms, share_weights=share_weights)
