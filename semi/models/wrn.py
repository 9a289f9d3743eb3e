"""Wide ResNet 28-k as used by FixMatch/ACR/SeMi on CIFAR: pre-activation blocks, LeakyReLU(0.1), BatchNorm
momentum 0.001, embedding 64*k (128 for WRN-28-2, 512 for WRN-28-8)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bn_momentum: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        o = F.leaky_relu(self.bn1(x), 0.1)  # pre-activation, shared by the shortcut when the width changes
        out = self.conv1(o)
        out = self.conv2(F.leaky_relu(self.bn2(out), 0.1))
        return out + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, depth: int = 28, widen: int = 2, bn_momentum: float = 0.001,
                 dropout: float = 0.0):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        for stage, stride in zip(range(3), (1, 2, 2)):
            for i in range(n):
                layers.append(_Block(widths[stage] if i == 0 else widths[stage + 1], widths[stage + 1],
                                     stride if i == 0 else 1, bn_momentum))
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(widths[3], momentum=bn_momentum)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.embed_dim = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.bn(self.blocks(self.conv(x))), 0.1)
        return self.dropout(F.adaptive_avg_pool2d(out, 1).flatten(1))
