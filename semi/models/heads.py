"""The multi-headed classifier every algorithm uses: backbone embedding z, standard head g1, balanced head g2, and
as many extra heads ("experts") as the algorithm declares (`Algorithm.extra_heads`; 0 for most).

ACR and SeMi train a second, logit-adjusted head on the same embedding; CPE trains a third. Every backbone is
wrapped the same way, so algorithms never need to know which backbone they run on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class ModelOutput(NamedTuple):
    """One forward pass: a NamedTuple so it unpacks, indexes and survives torch.compile / DDP unchanged."""

    embedding: Tensor
    """[N, D] backbone features (what the memory bank, prototypes and feature consistency use)."""
    logits: Tensor
    """[N, C] standard head g1."""
    logits_balanced: Tensor
    """[N, C] balanced head g2."""
    experts: Tensor | None = None
    """[N, E, C] the extra heads, E = the model's `extra_heads`. A model always fills it (E = 0: an empty
    [N, 0, C] tensor, so code that splits or detaches every field keeps working); None only in outputs built by
    hand (tests) for algorithms without extra heads."""
    branch_logits: Tensor | None = None
    """[N, B, 2 + E, C] every head on each of the B normalisation branches of a model with `bn_branches` (CPE's
    classwise BatchNorm); the fields above are then the branch means. None for every other model."""
    rotation: Tensor | None = None
    """[N, 4] the rotation head (by which of 0, 90, 180, 270 degrees an image was turned: ReMixMatch's
    self-supervised loss) of a model built with `rotation_head`; None for every other model."""

    def map(self, fn: Callable[[Tensor], Tensor]) -> ModelOutput:
        """fn applied to every tensor field (a None `experts` stays None): split, detach, index all fields."""
        return ModelOutput(*(None if t is None else fn(t) for t in self))

    def all_heads(self) -> Tensor:
        """[N, 2 + E, C]: g1, g2, then the extra heads."""
        heads = torch.stack([self.logits, self.logits_balanced], dim=1)
        return heads if self.experts is None else torch.cat([heads, self.experts.to(heads.dtype)], dim=1)


class DualHeadClassifier(nn.Module):
    """Backbone -> embedding [N, D] -> independent linear heads: g1 (standard), g2 (balanced) and `extra_heads`
    more (one nn.Linear(D, E * C) named `experts`, absent when E = 0, so two-headed checkpoints are unchanged).

    Every head is computed in every forward pass. Extra heads exist only when an algorithm declares them and it
    trains them all, so they never add parameters that DDP would see unused (FixMatch's untrained g2 is the one
    case, handled as before by the trainer's `find_unused_parameters`).
    `head_dropout` drops embedding entries on the heads' input only (in training), so the embedding the
    algorithms store and compare stays deterministic given the weights.
    """

    def __init__(self, backbone: nn.Module, embed_dim: int, num_classes: int, head_dropout: float = 0.0,
                 extra_heads: int = 0, bn_branches: int = 0, rotation_head: bool = False):
        super().__init__()
        if embed_dim < 1 or num_classes < 1:
            raise ValueError(f"embed_dim and num_classes must be >= 1, got {embed_dim} and {num_classes}")
        if extra_heads < 0:
            raise ValueError(f"extra_heads must be >= 0, got {extra_heads}")
        self.extra_heads = extra_heads
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()
        self.g1 = nn.Linear(embed_dim, num_classes)
        self.g2 = nn.Linear(embed_dim, num_classes)
        for head in (self.g1, self.g2):  # FixMatch's linear init; same for every backbone
            nn.init.xavier_normal_(head.weight)
            nn.init.zeros_(head.bias)
        if extra_heads:  # one matrix (one matmul); each [C, D] block initialised as a head of its own
            self.experts = nn.Linear(embed_dim, extra_heads * num_classes)
            with torch.no_grad():
                for block in self.experts.weight.split(num_classes):
                    nn.init.xavier_normal_(block)
            nn.init.zeros_(self.experts.bias)
        # ReMixMatch's rotation classifier on the embedding; absent unless asked for, so every other method's
        # checkpoints are unchanged
        self.rotation = nn.Linear(embed_dim, 4) if rotation_head else None
        self.bn_branches = bn_branches
        if bn_branches:  # CPE's classwise BatchNorm: branches between the backbone's last map and its pooling
            if not hasattr(backbone, "feature_map"):
                raise ValueError(f"{type(backbone).__name__} has no feature_map/pool split for BatchNorm branches")
            norm = nn.BatchNorm2d if getattr(backbone, "spatial", True) else nn.BatchNorm1d
            self.branches = nn.ModuleList(norm(embed_dim) for _ in range(bn_branches))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits = self.g1(h)
        if self.extra_heads:
            experts = self.experts(h).view(-1, self.extra_heads, self.num_classes)
        else:  # shape-only: costs nothing, and torch.compile / torch.export see a plain tensor
            experts = logits.new_zeros((h.shape[0], 0, self.num_classes))
        return logits, self.g2(h), experts

    def branched(self, x: Tensor) -> ModelOutput:
        """Every branch's BatchNorm on the backbone's last map, pooled, through every head (as the authors'
        WideResNetCBN with CPE's extra classifiers: one forward pass of the B copies stacked); the ModelOutput
        fields are the branch means, `branch_logits` each branch's."""
        fmap = self.backbone.feature_map(x)
        n, b = x.shape[0], self.bn_branches
        z_all = torch.cat([self.backbone.pool(bn(fmap)) for bn in self.branches])  # [B * N, D]
        g1, g2, experts = self.heads(self.head_dropout(z_all))
        per_branch = torch.cat([g1.unsqueeze(1), g2.unsqueeze(1), experts], dim=1).view(b, n, -1, self.num_classes)
        per_branch = per_branch.transpose(0, 1)  # [N, B, heads, C]
        mean = per_branch.mean(dim=1)
        return ModelOutput(z_all.view(b, n, -1).mean(0), mean[:, 0], mean[:, 1], mean[:, 2:], per_branch)

    def forward(self, x: Tensor) -> ModelOutput:
        if self.bn_branches:
            return self.branched(x)
        z = self.backbone(x)
        h = self.head_dropout(z)
        logits = self.g1(h)
        if self.extra_heads:
            experts = self.experts(h).view(-1, self.extra_heads, self.num_classes)
        else:  # shape-only: costs nothing, and torch.compile / torch.export see a plain tensor
            experts = logits.new_zeros((h.shape[0], 0, self.num_classes))
        if self.rotation is None:
            return ModelOutput(z, logits, self.g2(h), experts)
        return ModelOutput(z, logits, self.g2(h), experts, None, self.rotation(h))
