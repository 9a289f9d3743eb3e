"""The two-headed classifier every algorithm uses: backbone embedding z, standard head g1, balanced head g2."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class ModelOutput(NamedTuple):
    embedding: Tensor
    logits: Tensor
    logits_balanced: Tensor


class DualHeadClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, embed_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_balanced = nn.Linear(embed_dim, num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        z = self.backbone(x)
        return ModelOutput(z, self.head(z), self.head_balanced(z))
