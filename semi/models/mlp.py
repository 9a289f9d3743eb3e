"""A multi-layer perceptron for feature vectors (`model.name=mlp`): the backbone of every method on features.

`depth` hidden layers of `width` units, each linear -> norm (BatchNorm, LayerNorm or none) -> ReLU -> dropout; the
last hidden layer is the embedding the heads, the memory bank and the prototypes act on. With depth 0 the
embedding is the standardised input itself (linear heads on the features: a strong baseline for good encoders).
"""

from __future__ import annotations

from torch import Tensor, nn

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class MLP(nn.Module):
    def __init__(self, in_features: int, width: int = 256, depth: int = 2, dropout: float = 0.0,
                 norm: str = "batch"):
        super().__init__()
        if in_features < 1 or width < 1 or depth < 0:
            raise ValueError(f"mlp needs in_features >= 1, width >= 1, depth >= 0; got {in_features}, {width}, "
                             f"{depth}")
        if norm not in (*NORMS, "none"):
            raise ValueError(f"mlp norm must be batch, layer or none, got {norm!r}")
        layers: list[nn.Module] = []
        d = in_features
        for _ in range(depth):
            layers.append(nn.Linear(d, width, bias=norm == "none"))  # a norm's shift makes the bias redundant
            if norm != "none":
                layers.append(NORMS[norm](width))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = width
        self.layers = nn.Sequential(*layers)
        self.embed_dim = d
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    spatial = False
    """Its BatchNorm branches (CPE's classwise BN) normalise vectors: no map, no pooling."""

    def feature_map(self, x: Tensor) -> Tensor:
        return self.layers(x)

    @staticmethod
    def pool(z: Tensor) -> Tensor:
        return z

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
