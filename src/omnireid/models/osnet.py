"""The OSNet network, parameterised by an :class:`OSNetArch`."""

from __future__ import annotations

import torch
from torch import nn

from omnireid.models.arch import OSNetArch
from omnireid.models.layers import Conv1x1, ConvLayer, OSBlock, init_weights
from omnireid.models.output import ReIDOutput


def _transition(channels: int) -> nn.Sequential:
    """1x1 conv + 2x2 average pooling between stages."""
    return nn.Sequential(Conv1x1(channels, channels), nn.AvgPool2d(2, stride=2))


class OSNet(nn.Module):
    """Omni-Scale Network.

    Input ``(N, 3, H, W)`` normalised images (256x128 in the paper); output :class:`ReIDOutput`
    with a ``(N, arch.feature_dim)`` embedding and, when ``num_classes > 0``, ``(N, num_classes)``
    logits — the same record in training and evaluation.

    Args:
        arch: the architecture (widths, IN placement).
        num_classes: identities for the classifier; 0 builds no classifier.
        affine_in: learnable scale/shift in instance-norm layers (off during the search).
        dropout: dropout probability after the embedding layer (0 = none, as in the paper).
    """

    def __init__(
        self,
        arch: OSNetArch,
        num_classes: int = 0,
        affine_in: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.arch = arch
        c = arch.channels
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3, use_in=arch.conv1_in,
                               affine=affine_in)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = arch.stage_blocks()
        self.conv2 = self._stage(c[0], c[1], stages[0], affine_in)
        self.pool2 = _transition(c[1])
        self.conv3 = self._stage(c[1], c[2], stages[1], affine_in)
        self.pool3 = _transition(c[2])
        self.conv4 = self._stage(c[2], c[3], stages[2], affine_in)
        self.conv5 = Conv1x1(c[3], c[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        if arch.feature_dim > 0:
            layers: list[nn.Module] = [
                nn.Linear(c[3], arch.feature_dim),
                nn.BatchNorm1d(arch.feature_dim),
                nn.ReLU(inplace=True),
            ]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.fc: nn.Sequential | None = nn.Sequential(*layers)
            self.feature_dim = arch.feature_dim
        else:
            self.fc = None
            self.feature_dim = c[3]
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes > 0 else None
        init_weights(self)

    @staticmethod
    def _stage(in_ch: int, out_ch: int, positions, affine: bool) -> nn.Sequential:
        blocks = [OSBlock(in_ch if i == 0 else out_ch, out_ch, p, affine=affine)
                  for i, p in enumerate(positions)]
        return nn.Sequential(*blocks)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` identities (0 removes it)."""
        if num_classes > 0:
            device = self.conv1.conv.weight.device
            self.classifier = nn.Linear(self.feature_dim, num_classes).to(device)
            nn.init.normal_(self.classifier.weight, 0, 0.01)
            nn.init.constant_(self.classifier.bias, 0)
        else:
            self.classifier = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> last feature maps ``(N, C, H/16, W/16)``."""
        x = self.maxpool(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.conv5(self.conv4(x))

    def forward_head(self, fmap: torch.Tensor) -> ReIDOutput:
        v = self.global_avgpool(fmap).flatten(1)
        if self.fc is not None:
            v = self.fc(v)
        logits = self.classifier(v) if self.classifier is not None else None
        return ReIDOutput(v, logits)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        return self.forward_head(self.forward_features(x))
