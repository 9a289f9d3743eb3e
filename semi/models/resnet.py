"""ResNet-50 for ImageNet-127 at 32 or 64 px (2048-d embedding). The CISSL literature trains it on downsampled
ImageNet, so for inputs up to 64 px the stem is a 3x3 stride-1 conv without max-pool (the 7x7/2 stem and
pool would shrink a 32 px image to 8 px before the first block)."""

from __future__ import annotations

import torchvision
from torch import Tensor, nn


class ResNet50(nn.Module):
    def __init__(self, in_channels: int, small_input: bool = True):
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        if small_input:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.embed_dim = 2048

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
