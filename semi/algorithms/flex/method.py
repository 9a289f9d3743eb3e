"""FlexMatch's class-adaptive thresholds, vectorised and without host syncs.

Written from USB's FlexMatchThresholdingHook (semilearn/algorithms/flexmatch/utils.py). State: the class last
confidently predicted for each image of the unlabeled pool (-1: none yet) and the classes' learning effects
beta_c. A step masks its pseudo-labels with tau * M(beta_target) (the threshold of each image's target class),
then records the images whose confidence reaches tau and recomputes beta from the pool's counts, as the hook does
(mask first, then update). Where we differ: the counts are a bincount on the device instead of a Counter over a
Python list; under DDP every rank records every rank's images (gathered), so the states stay identical.
"""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.algorithms.flex import FlexConfig
from semi.distributed import all_gather_cat


def bucket_counts(labels: Tensor, num_classes: int) -> Tensor:
    """How many entries of `labels` (-1 = none, else a class) fall in each bucket: [none, class 0, ..., class C-1].
    A scatter-add, not bincount (which reads the largest label back to the host on CUDA)."""
    counts = torch.zeros(num_classes + 1, dtype=torch.long, device=labels.device)
    return counts.scatter_add_(0, labels + 1, torch.ones_like(labels))


def learning_effect(selected: Tensor, num_classes: int, warmup: bool, previous: Tensor,
                    predicted: Tensor | None = None) -> Tensor:
    """beta_c = count_c / max(counts) (with warm-up the count of unclaimed images, -1, competes for the max; without,
    only the classes' counts), kept at `previous` while every image of the pool sits in one bucket (FlexMatch:
    `if max(pseudo_counter.values()) < len(pool)`). With `predicted` (each image's latest predicted class, -1: not
    seen yet), the `predicted` normalisation: count_c counts only the images claimed as c that the model still
    predicts as c (so it never exceeds p_c, the images predicted c: an old claim cannot inflate a class the model
    has moved away from), divided by C * p_c / P (P images seen); a class nobody predicts counts 0."""
    counts = bucket_counts(selected, num_classes).to(previous.dtype)
    claimed = counts[1:]
    if predicted is not None:
        held = bucket_counts(torch.where(selected == predicted, selected, -1), num_classes)[1:].to(previous.dtype)
        seen = bucket_counts(predicted, num_classes)[1:].to(previous.dtype)
        share = num_classes * seen / seen.sum().clamp_min(1)
        claimed = torch.where(seen > 0, held / share.clamp_min(1e-12), torch.zeros_like(held))
    top = torch.maximum(claimed.max(), counts[0]) if warmup else claimed.max()
    # normalised counts can be fractions: divide by any positive max (raw counts are whole, so >= 1 when positive)
    beta = torch.where(top > 0, claimed / top.clamp_min(1e-12), torch.zeros_like(claimed))
    return torch.where(counts.max() < len(selected), beta, previous)


def class_thresholds(tau: float, beta: Tensor, mapping: str) -> Tensor:
    return tau * (beta / (2.0 - beta) if mapping == "convex" else (beta + 1.0) / 2.0)


class FlexThresholds(Component):
    def __init__(self, cfg: FlexConfig, num_classes: int):
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        self.register_buffer("beta", torch.zeros(num_classes))
        self.register_buffer("selected", torch.zeros(0, dtype=torch.long))
        # each image's latest predicted class (-1: not seen yet), a state only the `predicted` normalisation keeps
        self.register_buffer("predicted", torch.zeros(0, dtype=torch.long) if cfg.normalize == "predicted" else None)

    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        self.selected = torch.full((pool_size,), -1, dtype=torch.long)
        if self.predicted is not None:
            self.predicted = torch.full((pool_size,), -1, dtype=torch.long)

    def refine(self, pl: PseudoLabels, views: Views, info: StepInfo, logs: dict[str, Tensor]) -> None:
        pl.set_class_thresholds(class_thresholds(pl.threshold, self.beta, self.cfg.mapping))

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        pos, target, conf = (all_gather_cat(t) for t in (batch["u_pos"], pl.target, pl.confidence))
        confident = conf >= pl.threshold
        # rejected images write their current value back: one fixed-shape write, no nonzero (no host sync)
        self.selected[pos] = torch.where(confident, target, self.selected[pos])
        if self.predicted is not None:
            self.predicted[pos] = target
        self.beta.copy_(learning_effect(self.selected, self.num_classes, self.cfg.warmup, self.beta, self.predicted))

    def diagnostics(self) -> dict[str, object]:
        return {"flex_learning_effect": [float(v) for v in self.beta]}


def build(cfg, num_classes: int, embed_dim: int) -> list[Component]:
    return [FlexThresholds(cfg.flex, num_classes)]
