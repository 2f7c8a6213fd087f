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
  ``alpha`` is an ordinary parameter, trained with the network weights by the same optimiser
  on the same loss.
* The child keeps, per block, the candidate with the largest ``alpha``.

``single_path`` mode (not in the paper) runs only the candidate picked by the hard Gumbel sample
of each step; a straight-through estimator scales its output by ``1 + p - stop_grad(p)`` (value
1, gradient of the soft probability ``p``), so ``alpha`` still receives gradients while only one
candidate is computed and stored for the backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from omnireid.models.arch import OSNetArch, make_arch
from omnireid.models.layers import INPosition, OSBlock
from omnireid.models.osnet import OSNet

#: The candidates of every searchable block, in the order of their ``alpha`` entries.
SEARCH_SPACE: tuple[INPosition, ...] = (
    INPosition.NONE, INPosition.INSIDE, INPosition.AFTER, INPosition.BOTH,
)
SEARCH_MODES = ("mixture", "single_path")
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
        raise ValueError(f"epoch must be >= 0, got {epoch}")
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
        raise ValueError(f"temperature must be > 0, got {temperature}")
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
        candidates: the IN placements to choose from (default :data:`SEARCH_SPACE`).
        affine: learnable scale/shift in the candidates' instance norms (off in the search).
        mode: ``"mixture"`` (weighted sum of all candidates, the paper) or ``"single_path"``.

    In evaluation mode no noise is drawn: ``mixture`` uses the noise-free softmax at the current
    temperature and ``single_path`` the candidate with the largest ``alpha``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        candidates: Sequence[INPosition | str] = SEARCH_SPACE,
        affine: bool = False,
        mode: str = "mixture",
    ) -> None:
        super().__init__()
        self.positions = tuple(INPosition(c) for c in candidates)
        if len(self.positions) < 1 or len(set(self.positions)) != len(self.positions):
            raise ValueError(f"candidates must be distinct IN positions, got {candidates}")
        self.candidates = nn.ModuleList(
            OSBlock(in_channels, out_channels, p, affine=affine) for p in self.positions
        )
        self.alpha = nn.Parameter(torch.ones(len(self.positions)))
        self.temperature = 1.0
        self.mode = _check_mode(mode)

    def weights(self) -> torch.Tensor:
        """The mixture weights of one forward pass: ``(K,)``."""
        single = self.mode == "single_path"
        if self.training:
            return gumbel_softmax_weights(self.alpha, self.temperature, noise=True, hard=single)
        if single:
            return F.one_hot(self.alpha.argmax(), len(self.positions)).to(self.alpha.dtype)
        return gumbel_softmax_weights(self.alpha, self.temperature, noise=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        if self.mode == "single_path":
            index = int(w.detach().argmax())
            return w[index] * self.candidates[index](x)
        out = w[0] * self.candidates[0](x)
        for weight, block in zip(w[1:], self.candidates[1:]):
            out = out + weight * block(x)
        return out

    def chosen(self) -> INPosition:
        """The candidate with the largest ``alpha`` (the paper's derivation rule)."""
        return self.positions[int(self.alpha.detach().argmax())]


def _check_mode(mode: str) -> str:
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose from {', '.join(SEARCH_MODES)}")
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
        candidates: the IN placements of every block (default :data:`SEARCH_SPACE`).
        mode: ``"mixture"`` or ``"single_path"``.
        affine_norms: keep learnable scale/shift in normalisation layers (the paper: no).
    """

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        feature_dim: int = 512,
        candidates: Sequence[INPosition | str] = SEARCH_SPACE,
        mode: str = "mixture",
        affine_norms: bool = False,
    ) -> None:
        # Read by _stage while OSNet.__init__ builds the stages.
        self._search_candidates = tuple(INPosition(c) for c in candidates)
        self._search_mode = _check_mode(mode)
        self._affine_norms = affine_norms
        super().__init__(make_arch(width, conv1_in=True, feature_dim=feature_dim),
                         num_classes=num_classes, affine_in=affine_norms)
        if not affine_norms:
            remove_norm_affine(self)

    def _stage(self, in_ch: int, out_ch: int, positions, affine: bool) -> nn.Sequential:  # type: ignore[override]
        return nn.Sequential(*[
            MixedOSBlock(in_ch if i == 0 else out_ch, out_ch, self._search_candidates,
                         affine=affine, mode=self._search_mode)
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
        """Switch every block between ``"mixture"`` and ``"single_path"``."""
        self._search_mode = _check_mode(mode)
        for _, b in self.mixed_blocks():
            b.mode = mode

    @property
    def temperature(self) -> float:
        return self.mixed_blocks()[0][1].temperature

    def set_temperature(self, temperature: float) -> None:
        """Set the Gumbel-softmax temperature lambda of every block."""
        if not temperature > 0 or math.isinf(temperature):
            raise ValueError(f"temperature must be a positive number, got {temperature}")
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
    candidates: Sequence[INPosition | str] = SEARCH_SPACE,
    affine_norms: bool = False,
) -> OSNetSupernet:
    """Build the search supernet (see :class:`OSNetSupernet`)."""
    return OSNetSupernet(num_classes, width=width, feature_dim=feature_dim, candidates=candidates,
                         mode=mode, affine_norms=affine_norms)
