"""The model registry and ``create_model``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from omnireid.models.arch import AIN_BLOCKS, IBN_BLOCKS, OSNetArch, make_arch
from omnireid.models.layers import INPosition
from omnireid.models.osnet import OSNet
from omnireid.models.resnet import ResNetReID
from omnireid.models.weights import load_weights
from omnireid.registry import Registry

MODELS: Registry = Registry("model")

_WIDTHS = {"x1_0": 1.0, "x0_75": 0.75, "x0_5": 0.5, "x0_25": 0.25}


def _named_osnet(arch: OSNetArch, doc: str):
    def build(num_classes: int = 0, **kw: Any) -> OSNet:
        return OSNet(arch, num_classes=num_classes, **kw)

    build.__doc__ = doc
    build.arch = arch  # type: ignore[attr-defined]
    return build


for _suffix, _w in _WIDTHS.items():
    MODELS.add(f"osnet_{_suffix}", _named_osnet(make_arch(_w), f"OSNet, width x{_w}."))
MODELS.add(
    "osnet_ibn_x1_0",
    _named_osnet(make_arch(1.0, IBN_BLOCKS, conv1_in=True), "OSNet-IBN: IN after the residual sum in conv2."),
)
for _suffix, _w in _WIDTHS.items():
    MODELS.add(
        f"osnet_ain_{_suffix}",
        _named_osnet(make_arch(_w, AIN_BLOCKS, conv1_in=True), f"OSNet-AIN (searched IN placement), width x{_w}."),
    )


@MODELS.register("osnet")
def build_osnet(
    num_classes: int = 0,
    arch: OSNetArch | dict | str | os.PathLike | None = None,
    width: float | None = None,
    in_positions: Sequence[INPosition | str] | None = None,
    conv1_in: bool = False,
    feature_dim: int = 512,
    **kw: Any,
) -> OSNet:
    """General OSNet: give an ``arch`` (spec object, dict, or JSON path), or a width multiplier,
    the IN position of each of the six OS blocks (none/inside/after/both) and ``conv1_in``.

    With both ``arch`` and ``width``, the spec's IN placement is built at that width (a child
    searched at x0_25 can be trained at x1_0)."""
    if arch is None:
        spec = make_arch(1.0 if width is None else width, in_positions, conv1_in, feature_dim)
    elif isinstance(arch, OSNetArch):
        spec = arch
    elif isinstance(arch, dict):
        spec = OSNetArch.from_dict(arch)
    else:
        spec = OSNetArch.load(Path(arch))
    if arch is not None and width is not None:
        spec = spec.with_width(width)
    return OSNet(spec, num_classes=num_classes, **kw)


@MODELS.register("resnet50")
def build_resnet50(num_classes: int = 0, **kw: Any) -> ResNetReID:
    """ResNet-50 baseline: 2048-d pooled feature, last stride 2."""
    return ResNetReID(num_classes, last_stride=2, fc_dim=0, **kw)


@MODELS.register("resnet50_fc512")
def build_resnet50_fc512(num_classes: int = 0, **kw: Any) -> ResNetReID:
    """ResNet-50 baseline with last stride 1 and a 512-d fc embedding."""
    return ResNetReID(num_classes, last_stride=1, fc_dim=512, **kw)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return MODELS.names()


def create_model(
    name: str,
    num_classes: int = 0,
    weights: str | os.PathLike | None = None,
    **kw: Any,
) -> nn.Module:
    """Build a model by name, optionally loading weights.

    Args:
        name: one of :func:`list_models`.
        num_classes: identities for the classifier (0: embedding only).
        weights: a checkpoint path, or the name of a known checkpoint already on disk
            (see ``omnireid.models.weights.KNOWN_WEIGHTS``). Never downloaded.
        **kw: builder options (e.g. ``arch=`` for ``"osnet"``).

    Returns:
        the model, whose forward returns :class:`~omnireid.models.output.ReIDOutput`.
    """
    model = MODELS.get(name)(num_classes=num_classes, **kw)
    if weights is not None:
        load_weights(model, weights)
    return model
