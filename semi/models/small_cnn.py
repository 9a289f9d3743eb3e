"""A small, fast CNN for CPU work and tests: three conv stages (w, 2w, 4w channels), two max-pools, global
average pooling; the embedding has 4w dimensions (128 for w = 32). Any input size >= 8, 1 or 3 channels."""

from __future__ import annotations

from torch import Tensor, nn


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, width: int = 32, dropout: float = 0.0):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w), *_block(w, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )
        self.embed_dim = 4 * w
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
