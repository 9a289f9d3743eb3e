"""ResNet-50 backbone (2048-d embedding) for ImageNet-127.

The CISSL literature (CReST, DASO, ACR, SeMi) trains ResNet-50 on ImageNet-127 downsampled to 32x32 or 64x64.
At that size torchvision's ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool) would shrink a 32 px image
to 8 px before the first residual stage, so for inputs of at most 64 px the stem is a 3x3 stride-1 conv with
no max-pool, as in those papers' code. Weights are random (weights=None): no pretrained download.
"""

from __future__ import annotations

from torch import Tensor, nn

from semi.extras import require


class ResNet50(nn.Module):
    """torchvision ResNet-50 with fc removed; `small_input` selects the 3x3/1 stem without max-pool."""

    def __init__(self, in_channels: int = 3, small_input: bool = True):
        super().__init__()
        net = require("torchvision.models", "model.name=resnet50").resnet50(weights=None)
        if small_input:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if small_input or in_channels != 3:  # same init torchvision gives its own stem
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.fc = nn.Identity()
        self.net = net
        self.embed_dim = 2048

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
