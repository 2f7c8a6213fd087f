"""ResNet-50 baselines the paper compares against (torchvision backbone, never downloaded)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50 as tv_resnet50

from omnireid.models.output import ReIDOutput


class ResNetReID(nn.Module):
    """ResNet-50 trunk + global average pooling [+ fc 512 + BN + ReLU] [+ classifier].

    ``last_stride=1`` keeps a 16x8 final map at 256x128 input (the ``resnet50_fc512`` recipe).
    """

    def __init__(self, num_classes: int = 0, last_stride: int = 2, fc_dim: int = 0) -> None:
        super().__init__()
        trunk = tv_resnet50(weights=None)
        if last_stride == 1:
            trunk.layer4[0].conv2.stride = (1, 1)
            trunk.layer4[0].downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        )
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        if fc_dim > 0:
            self.fc: nn.Sequential | None = nn.Sequential(
                nn.Linear(2048, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True)
            )
            self.feature_dim = fc_dim
            nn.init.normal_(self.fc[0].weight, 0, 0.01)
            nn.init.constant_(self.fc[0].bias, 0)
        else:
            self.fc = None
            self.feature_dim = 2048
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, 0, 0.01)
            nn.init.constant_(self.classifier.bias, 0)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def reset_classifier(self, num_classes: int) -> None:
        device = self.conv1.weight.device
        self.classifier = nn.Linear(self.feature_dim, num_classes).to(device) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, fmap: torch.Tensor) -> ReIDOutput:
        v = self.global_avgpool(fmap).flatten(1)
        if self.fc is not None:
            v = self.fc(v)
        return ReIDOutput(v, self.classifier(v) if self.classifier is not None else None)

    def forward(self, x: torch.Tensor) -> ReIDOutput:
        return self.forward_head(self.forward_features(x))
