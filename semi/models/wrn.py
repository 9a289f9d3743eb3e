"""Wide ResNet 28-k as used by FixMatch, ACR and SeMi on CIFAR / STL-10.

Pre-activation residual blocks, LeakyReLU(0.1), BatchNorm momentum 0.001 (FixMatch's PyTorch port; PyTorch's
momentum is 1 - TensorFlow's decay 0.999), kaiming-normal fan_out convs, BN weight 1 / bias 0. The embedding is
the globally average-pooled final activation, 64*k wide (128 for WRN-28-2, 512 for WRN-28-8), so any input
size and channel count works.

Block wiring follows the original TensorFlow FixMatch `residual()`: conv1 always reads the pre-activation; the
shortcut reads the pre-activation only in the very first block (activate_before_residual) and the raw input
elsewhere. (The popular PyTorch port feeds the *raw* input to conv1 of the 2nd/3rd stage's first block, which
leaves that block's bn1 without gradient and breaks DDP without find_unused_parameters; the parameter count is
the same either way.)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

_SLOPE = 0.1


class WideBasicBlock(nn.Module):
    """BN-LReLU-conv3x3(stride)-BN-LReLU-[dropout]-conv3x3 plus an identity or 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, bn_momentum: float, dropout: float = 0.0,
                 activate_before_residual: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.activate_before_residual = activate_before_residual
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.leaky_relu(self.bn1(x), _SLOPE)
        out = F.leaky_relu(self.bn2(self.conv1(pre)), _SLOPE)
        if self.dropout > 0:
            out = F.dropout(out, self.dropout, self.training)
        out = self.conv2(out)
        if self.shortcut is None:
            return x + out
        return self.shortcut(pre if self.activate_before_residual else x) + out


class WideResNet(nn.Module):
    """WRN-depth-widen backbone returning the [N, 64*widen] embedding (no classifier: the heads live outside)."""

    def __init__(self, in_channels: int = 3, depth: int = 28, widen: int = 2, bn_momentum: float = 0.001,
                 dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        for stage, stride in enumerate((1, 2, 2)):
            for i in range(n):
                blocks.append(WideBasicBlock(
                    widths[stage] if i == 0 else widths[stage + 1], widths[stage + 1], stride if i == 0 else 1,
                    bn_momentum, dropout, activate_before_residual=stage == 0 and i == 0))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3], momentum=bn_momentum)
        self.embed_dim = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last map before pooling, [N, 64*widen, H', W']."""
        return F.leaky_relu(self.bn(self.blocks(self.conv(x))), _SLOPE)

    @staticmethod
    def pool(fmap: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(fmap, 1).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.feature_map(x))
