"""The two-headed classifier every algorithm uses: backbone embedding z, standard head g1, balanced head g2.

ACR and SeMi train a second, logit-adjusted head on the same embedding, so every backbone is wrapped the same
way and algorithms never need to know which backbone they run on.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class ModelOutput(NamedTuple):
    """One forward pass: a NamedTuple so it unpacks, indexes and survives torch.compile / DDP unchanged."""

    embedding: Tensor
    """[N, D] backbone features (what the memory bank, prototypes and feature consistency use)."""
    logits: Tensor
    """[N, C] standard head g1."""
    logits_balanced: Tensor
    """[N, C] balanced head g2."""


class DualHeadClassifier(nn.Module):
    """Backbone -> embedding [N, D] -> two independent linear heads g1 (standard) and g2 (balanced).

    `head_dropout` drops embedding entries on the heads' input only (in training), so the embedding the
    algorithms store and compare stays deterministic given the weights.
    """

    def __init__(self, backbone: nn.Module, embed_dim: int, num_classes: int, head_dropout: float = 0.0):
        super().__init__()
        if embed_dim < 1 or num_classes < 1:
            raise ValueError(f"embed_dim and num_classes must be >= 1, got {embed_dim} and {num_classes}")
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.g1 = nn.Linear(embed_dim, num_classes)
        self.g2 = nn.Linear(embed_dim, num_classes)
        for head in (self.g1, self.g2):  # FixMatch's linear init; same for every backbone
            nn.init.xavier_normal_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: Tensor) -> ModelOutput:
        z = self.backbone(x)
        h = self.head_dropout(z)
        return ModelOutput(z, self.g1(h), self.g2(h))
