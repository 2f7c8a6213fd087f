"""Architecture specs of the OSNet family: width plus, per block, where instance norm goes.

This is the space that the paper's architecture search explores. The named models (OSNet,
OSNet-IBN, OSNet-AIN) are points in it; a searched child is another point, saved as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnireid.errors import MissingFileError, UsageError
from omnireid.files import write_json
from omnireid.models.layers import INPosition

BASE_CHANNELS = (64, 256, 384, 512)
BASE_LAYERS = (2, 2, 2)
BLOCK_NAMES = ("conv2-1", "conv2-2", "conv3-1", "conv3-2", "conv4-1", "conv4-2")


@dataclass(frozen=True)
class OSNetArch:
    """A complete OSNet architecture.

    Attributes:
        channels: widths of conv1 and of stages conv2, conv3, conv4.
        layers: number of OS blocks in conv2, conv3, conv4.
        blocks: one :class:`INPosition` per OS block, in order (``sum(layers)`` entries).
        conv1_in: whether the stem convolution uses instance norm instead of batch norm.
        feature_dim: size of the embedding layer (fc + BN + ReLU); 0 removes it.
    """

    channels: tuple[int, int, int, int] = BASE_CHANNELS
    layers: tuple[int, int, int] = BASE_LAYERS
    blocks: tuple[INPosition, ...] = (INPosition.NONE,) * 6
    conv1_in: bool = False
    feature_dim: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        object.__setattr__(self, "blocks", tuple(INPosition(b) for b in self.blocks))
        if len(self.channels) != 4 or len(self.layers) != 3:
            raise UsageError("an OSNet arch has 4 channel widths and 3 stage lengths")
        if len(self.blocks) != sum(self.layers):
            raise UsageError(
                f"arch has {sum(self.layers)} OS blocks but {len(self.blocks)} IN positions"
            )

    @property
    def width(self) -> float:
        return self.channels[0] / BASE_CHANNELS[0]

    def stage_blocks(self) -> list[tuple[INPosition, ...]]:
        """The IN positions grouped by stage (conv2, conv3, conv4)."""
        out, start = [], 0
        for n in self.layers:
            out.append(self.blocks[start : start + n])
            start += n
        return out

    def with_width(self, width: float) -> OSNetArch:
        """The same IN placement at another width multiplier (channels rescaled)."""
        if not width > 0:
            raise UsageError(f"width must be > 0, got {width}")
        return OSNetArch(scaled_channels(width), self.layers, self.blocks, self.conv1_in,
                         self.feature_dim)

    def block_names(self) -> list[str]:
        return [f"conv{s + 2}-{i + 1}" for s, n in enumerate(self.layers) for i in range(n)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "layers": list(self.layers),
            "blocks": [b.value for b in self.blocks],
            "conv1_in": self.conv1_in,
            "feature_dim": self.feature_dim,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OSNetArch:
        known = {"channels", "layers", "blocks", "conv1_in", "feature_dim", "width"}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown keys in OSNet arch spec: {sorted(unknown)}")
        data = dict(data)
        width = data.pop("width", None)
        if width is not None and "channels" not in data:
            data["channels"] = scaled_channels(float(width))
        try:
            return cls(**data)
        except ValueError as exc:
            raise UsageError(f"invalid OSNet arch spec: {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> OSNetArch:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingFileError(f"arch spec not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and "arch" in data:  # a search report holding the spec
            data = data["arch"]
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None

    def table(self) -> str:
        """A small text table of the IN placement, one row per block."""
        rows = [f"{'block':<8} IN", f"{'conv1':<8} {'yes' if self.conv1_in else 'no'}"]
        rows += [f"{n:<8} {b.value}" for n, b in zip(self.block_names(), self.blocks)]
        return "\n".join(rows)


def scaled_channels(width: float) -> tuple[int, int, int, int]:
    return tuple(int(round(c * width)) for c in BASE_CHANNELS)  # type: ignore[return-value]


def make_arch(
    width: float = 1.0,
    blocks: Sequence[INPosition | str] | None = None,
    conv1_in: bool = False,
    feature_dim: int = 512,
) -> OSNetArch:
    """Build an :class:`OSNetArch` from a width multiplier and per-block IN positions."""
    positions = tuple(blocks) if blocks is not None else (INPosition.NONE,) * 6
    return OSNetArch(scaled_channels(width), BASE_LAYERS, positions, conv1_in, feature_dim)


_N, _I, _A = INPosition.NONE, INPosition.INSIDE, INPosition.AFTER
#: OSNet-IBN: IN in the stem and after the addition in every conv2 block.
IBN_BLOCKS = (_A, _A, _N, _N, _N, _N)
#: OSNet-AIN: the child architecture found by the paper's search.
AIN_BLOCKS = (_I, _I, _N, _I, _I, _N)
