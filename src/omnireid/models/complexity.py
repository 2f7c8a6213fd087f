"""Parameter and multiply-add counts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Complexity:
    """Model size and cost at one input size.

    ``mult_adds`` counts convolutions and linear layers only (per image), with a bias counted as
    one more multiply-add per output, the convention of the OSNet papers' complexity figures;
    ``params_no_classifier`` excludes the identity classifier.
    """

    params: int
    params_no_classifier: int
    mult_adds: int
    input_size: tuple[int, int]


def model_complexity(model: nn.Module, input_size: tuple[int, int] = (256, 128)) -> Complexity:
    """Count parameters and per-image multiply-adds of ``model`` at ``input_size`` (H, W)."""
    params = sum(p.numel() for p in model.parameters())
    classifier = getattr(model, "classifier", None)
    cls_params = sum(p.numel() for p in classifier.parameters()) if classifier is not None else 0

    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out[0].numel() * (k + (m.bias is not None))

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += (m.in_features + (m.bias is not None)) * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Complexity(params, params - cls_params, total, tuple(input_size))
