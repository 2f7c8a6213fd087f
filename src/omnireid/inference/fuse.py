"""Inference-only rewrites of a trained OSNet that give the same embeddings, faster.

* :func:`fold_batchnorm` folds every eval-mode BatchNorm into the convolution or linear layer in
  front of it (``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``).
* :class:`FusedOSBlock` uses what OSNet's block structure allows:

  - the block's entry 1x1 convolution and its 1x1 downsample projection read the same input, so
    they become one wider 1x1 convolution whose output is split;
  - the ``T`` streams read the same reduced input, so the first Lite 3x3 of every stream becomes one
    ``mid -> T*mid`` 1x1 convolution plus one depthwise 3x3 over ``T*mid`` channels;
  - the shared channel gate's two small layers run once on all ``T`` pooled stream outputs
    stacked (``(N, T, mid)``) instead of ``T`` times.

  Measured on an AVX-512 CPU this block is *slower* than the BN-folded original (see
  docs/deployment.md), so :func:`optimize_for_inference` leaves it off unless asked.

:func:`optimize_for_inference` applies all of it to a copy of the model (the original is untouched)
and can put it in channels-last memory format. Instance-norm layers stay as they are.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from omnireid.models.layers import Conv1x1, Conv1x1Linear, ConvLayer, LightConv3x3, OSBlock
from omnireid.models.output import ReIDOutput

logger = logging.getLogger(__name__)


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` such that ``bn(x) == x * scale + shift`` in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv_std)
    scale = gamma * inv_std
    return scale, beta - bn.running_mean.double() * scale


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution (with bias) equal to ``bn(conv(x))`` in eval mode. Shapes unchanged."""
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True)
    w = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
    b = shift if conv.bias is None else conv.bias.detach().double() * scale + shift
    fused.weight.data.copy_(w.to(conv.weight.dtype))
    fused.bias.data.copy_(b.to(conv.weight.dtype))
    return fused.to(conv.weight.device)


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A new linear layer equal to ``bn(linear(x))`` in eval mode."""
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True)
    w = linear.weight.detach().double() * scale.view(-1, 1)
    b = shift if linear.bias is None else linear.bias.detach().double() * scale + shift
    fused.weight.data.copy_(w.to(linear.weight.dtype))
    fused.bias.data.copy_(b.to(linear.weight.dtype))
    return fused.to(linear.weight.device)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into the preceding conv/linear layers of an OSNet-family model, in place.

    Handles :class:`ConvLayer`, :class:`Conv1x1`, :class:`Conv1x1Linear`, :class:`LightConv3x3`
    and ``Linear -> BatchNorm1d`` pairs inside ``nn.Sequential``. Instance norm is left alone.
    Returns ``model`` (in eval mode).
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, (ConvLayer, Conv1x1, Conv1x1Linear)):
            if isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fold_conv_bn(module.conv, module.bn)
                module.bn = nn.Identity()
        elif isinstance(module, LightConv3x3):
            if isinstance(module.bn, nn.BatchNorm2d):
                module.conv2 = fold_conv_bn(module.conv2, module.bn)
                module.bn = nn.Identity()
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Linear) and isinstance(module[i + 1], nn.BatchNorm1d):
                    module[i] = fold_linear_bn(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
    return model


def _conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is not None:
        return conv.bias.detach()
    return torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device)


def _new_conv(weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1,
              padding: int = 0) -> nn.Conv2d:
    out_ch, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_ch, k, padding=padding, groups=groups,
                     bias=bias is not None)
    conv.weight.data.copy_(weight)
    if bias is not None:
        conv.bias.data.copy_(bias)
    return conv.to(weight.device)


class _LiteConv(nn.Module):
    """A folded :class:`LightConv3x3`: 1x1 conv -> depthwise 3x3 (with bias) -> ReLU."""

    def __init__(self, lc: LightConv3x3) -> None:
        super().__init__()
        self.pw = lc.conv1
        self.dw = lc.conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.dw(self.pw(x)))


class FusedOSBlock(nn.Module):
    """An :class:`OSBlock` rewritten for inference (same output, fewer and wider kernels).

    Built from a block whose BatchNorms are already folded (see :func:`fold_batchnorm`).
    Input ``(N, C_in, H, W)``, output ``(N, C_out, H, W)``.
    """

    def __init__(self, block: OSBlock) -> None:
        super().__init__()
        mid = block.conv1.conv.out_channels
        self.mid = mid
        self.T = len(block.streams)
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                raise ValueError("fold_batchnorm must run before FusedOSBlock")
        entry = block.conv1.conv
        self.has_downsample = block.downsample is not None
        if self.has_downsample:
            ds = block.downsample.conv
            self.entry = _new_conv(torch.cat([entry.weight.detach(), ds.weight.detach()]),
                                   torch.cat([_conv_bias(entry), _conv_bias(ds)]))
        else:
            self.entry = _new_conv(entry.weight.detach(), _conv_bias(entry))
        # Level 0: the first Lite 3x3 of every stream, on the shared input, as one wide
        # 1x1 conv + one depthwise conv. Deeper layers run per stream (as separate dense convs;
        # one grouped conv per level measured slower with oneDNN).
        first = [block.streams[t][0] for t in range(self.T)]
        pw_w = torch.cat([lc.conv1.weight.detach() for lc in first])
        pw_b = None
        if any(lc.conv1.bias is not None for lc in first):
            pw_b = torch.cat([_conv_bias(lc.conv1) for lc in first])
        self.pw0 = _new_conv(pw_w, pw_b)
        dw_w = torch.cat([lc.conv2.weight.detach() for lc in first])
        self.dw0 = _new_conv(dw_w, torch.cat([_conv_bias(lc.conv2) for lc in first]),
                             groups=dw_w.shape[0], padding=1)
        self.rest = nn.ModuleList(
            nn.Sequential(*[_LiteConv(lc) for lc in block.streams[t][1:]])
            for t in range(self.T)
        )
        gate = block.gate
        self.register_buffer("fc1_w", gate.fc1.weight.detach().flatten(1).clone())  # (hidden, mid)
        self.register_buffer("fc1_b", gate.fc1.bias.detach().clone())
        self.register_buffer("fc2_w", gate.fc2.weight.detach().flatten(1).clone())  # (mid, hidden)
        self.register_buffer("fc2_b", gate.fc2.bias.detach().clone())
        c3 = block.conv3.conv
        self.conv3 = _new_conv(c3.weight.detach(), _conv_bias(c3))
        self.in_inside = block.in_inside
        self.in_after = block.in_after

    def _gated_sum(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """sum_t s_t * gate(s_t): the gate MLP runs once on all T pooled stream outputs."""
        pooled = torch.stack([o.mean((2, 3)) for o in outs], 1)  # (N, T, mid)
        g = torch.sigmoid(F.linear(F.relu(F.linear(pooled, self.fc1_w, self.fc1_b)),
                                   self.fc2_w, self.fc2_b))  # (N, T, mid)
        g = g.unsqueeze(-1).unsqueeze(-1)  # (N, T, mid, 1, 1)
        agg = outs[0] * g[:, 0]
        for t in range(1, len(outs)):
            agg = torch.addcmul(agg, outs[t], g[:, t])
        return agg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.mid
        y = self.entry(x)
        if self.has_downsample:
            x1 = F.relu(y[:, :mid])
            identity = y[:, mid:]
        else:
            x1 = F.relu(y)
            identity = x
        h = F.relu(self.dw0(self.pw0(x1)))
        outs = [self.rest[t](h[:, t * mid:(t + 1) * mid]) for t in range(self.T)]
        agg = self._gated_sum(outs)
        residual = self.conv3(agg)
        if self.in_inside is not None:
            residual = self.in_inside(residual)
        out = residual + identity
        if self.in_after is not None:
            out = self.in_after(out)
        return F.relu(out)


class EmbeddingModel(nn.Module):
    """Wraps a model so that ``forward`` returns only the ``(N, D)`` embedding tensor.

    Used for export and tracing, which want a plain tensor output rather than a record.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out.embedding if isinstance(out, ReIDOutput) else out


def optimize_for_inference(
    model: nn.Module,
    merge_streams: bool = False,
    channels_last: bool = True,
    drop_classifier: bool = True,
) -> nn.Module:
    """A copy of ``model`` rewritten for fast inference; the original is not modified.

    Args:
        model: an OSNet-family model (other models get BatchNorm folding where the layer
            classes allow and are otherwise returned as an eval-mode copy).
        merge_streams: replace every :class:`OSBlock` by a :class:`FusedOSBlock`. Off by
            default: on the CPUs measured (see docs/deployment.md) the merged block was slower
            than the folded one in PyTorch, ONNX Runtime and OpenVINO alike, because splitting
            the wide outputs back into streams costs more than the saved kernel launches.
        channels_last: convert weights to channels-last memory format (feed NHWC-strided input,
            ``x.contiguous(memory_format=torch.channels_last)``, for the full benefit).
        drop_classifier: remove the identity classifier (inference only needs the embedding).

    Returns:
        an eval-mode module whose forward returns the same :class:`ReIDOutput` embedding as the
        original (to float rounding, ~1e-6 relative).
    """
    fast = copy.deepcopy(model).eval()
    if drop_classifier and getattr(fast, "classifier", None) is not None:
        fast.classifier = None
    fold_batchnorm(fast)
    if merge_streams:
        _replace_blocks(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def _replace_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, OSBlock):
            setattr(module, name, FusedOSBlock(child))
        else:
            _replace_blocks(child)
