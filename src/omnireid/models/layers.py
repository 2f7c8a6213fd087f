"""The layers of the OSNet family, written once.

OSNet, OSNet-IBN, OSNet-AIN and the architecture-search candidates differ only in where instance
normalisation (IN) sits, so that is a parameter of :class:`OSBlock`, not a family of classes.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn


class INPosition(str, Enum):
    """Where a block applies instance normalisation.

    ``NONE``: nowhere (plain OSNet block). ``INSIDE``: on the residual branch, replacing the batch
    norm after the last 1x1 convolution, before the addition (OSNet-AIN's ``OSBlockINin``).
    ``AFTER``: on the sum, after the addition and before the ReLU (OSNet-IBN). ``BOTH``: both.
    """

    NONE = "none"
    INSIDE = "inside"
    AFTER = "after"
    BOTH = "both"

    @property
    def inside(self) -> bool:
        return self in (INPosition.INSIDE, INPosition.BOTH)

    @property
    def after(self) -> bool:
        return self in (INPosition.AFTER, INPosition.BOTH)


def instance_norm(channels: int, affine: bool = True) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=affine)


class ConvLayer(nn.Module):
    """k x k convolution (no bias) -> BatchNorm or InstanceNorm -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        use_in: bool = False,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = instance_norm(out_channels, affine) if use_in else nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(nn.Module):
    """1x1 convolution -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1Linear(nn.Module):
    """1x1 convolution followed by BatchNorm (or nothing), without activation."""

    def __init__(self, in_channels: int, out_channels: int, bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)


class LightConv3x3(nn.Module):
    """Lite 3x3: pointwise 1x1 -> depthwise 3x3 -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class _SpatialMean(torch.autograd.Function):
    """``x.mean((2, 3))`` for ``(N, C, H, W)`` input, whose gradient comes back in ``x``'s memory
    format. Autograd's own gradient of a mean or an average pool is a contiguous (or broadcast)
    tensor; adding it to the channels-last gradient that a stream's other consumers produce ran
    several times slower on the CPU than an add of two channels-last tensors."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        ctx.memory_format = (torch.channels_last if x.dim() == 4 and not x.is_contiguous()
                             and x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
        return x.mean((2, 3))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        return (grad / (h * w)).view(n, c, 1, 1).expand(n, c, h, w).contiguous(memory_format=ctx.memory_format)


class ChannelGate(nn.Module):
    """The unified aggregation gate: a channel-wise sigmoid gate shared by all streams."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * gate

    def gates(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """The gate values of several inputs at once, ``(len(xs), N, C, 1, 1)``: the same function
        as :meth:`forward`'s, with the pooled inputs stacked into one batch and the two 1x1
        convolutions applied as matrix products (their weights viewed as matrices). On 1x1 maps a
        convolution costs a oneDNN call each, 70-140 us forward and backward on the CPU for a few
        hundred multiply-adds; see :meth:`OSBlock.aggregate`."""
        n = xs[0].shape[0]
        pooled = torch.cat([_SpatialMean.apply(x) for x in xs])  # (len(xs) * N, C)
        hidden = F.relu(F.linear(pooled, self.fc1.weight.flatten(1), self.fc1.bias))
        gate = torch.sigmoid(F.linear(hidden, self.fc2.weight.flatten(1), self.fc2.bias))
        return gate.view(len(xs), n, -1, 1, 1)


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck.

    ``T`` streams of 1..T stacked Lite 3x3 convolutions see the same 1x1-reduced input; each
    stream's output is weighted by the shared :class:`ChannelGate` and the results are summed,
    expanded back by a 1x1 convolution and added to the (projected) identity.

    Args:
        in_channels, out_channels: block width in and out.
        in_position: where instance normalisation goes (see :class:`INPosition`).
        reduction: bottleneck reduction (mid channels = out_channels // reduction).
        T: number of streams.
        affine: whether the instance-norm layers have learnable scale/shift.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_position: INPosition | str = INPosition.NONE,
        reduction: int = 4,
        T: int = 4,
        affine: bool = True,
    ) -> None:
        super().__init__()
        position = INPosition(in_position)
        self.in_position = position
        mid = out_channels // reduction
        self.conv1 = Conv1x1(in_channels, mid)
        self.streams = nn.ModuleList(
            nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(depth)])
            for depth in range(1, T + 1)
        )
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels, bn=not position.inside)
        self.in_inside = instance_norm(out_channels, affine) if position.inside else None
        self.downsample = (
            Conv1x1Linear(in_channels, out_channels) if in_channels != out_channels else None
        )
        self.in_after = instance_norm(out_channels, affine) if position.after else None
        self.relu = nn.ReLU(inplace=True)

    def aggregate(self, x1: torch.Tensor) -> torch.Tensor:
        """Sum of the gated streams: sum_t gate(stream_t(x1)).

        In training the gate runs once for all ``T`` streams (:meth:`ChannelGate.gates`: one
        stacked matrix product per gate layer instead of ``2T`` convolutions on 1x1 maps); with
        :class:`_SpatialMean` that made a training step at 256x128 on two CPU threads about 1.2x
        faster (docs/training.md, "Speed"). In evaluation the gate module is called per stream
        as before, so that traced and exported graphs keep the published structure. Both compute
        the same function (a test compares them, gradients included).
        """
        if not self.training:
            out = self.gate(self.streams[0](x1))
            for stream in self.streams[1:]:
                out = out + self.gate(stream(x1))
            return out
        outs = [stream(x1) for stream in self.streams]
        gates = self.gate.gates(outs)
        out = outs[0] * gates[0]
        for t in range(1, len(outs)):
            out = out + outs[t] * gates[t]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv3(self.aggregate(self.conv1(x)))
        if self.in_inside is not None:
            residual = self.in_inside(residual)
        identity = x if self.downsample is None else self.downsample(x)
        out = residual + identity
        if self.in_after is not None:
            out = self.in_after(out)
        return self.relu(out)


def init_weights(module: nn.Module) -> None:
    """The OSNet initialisation: Kaiming-normal (fan-out) convs, unit norms, N(0, 0.01) linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)):
            if m.weight is not None:
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
