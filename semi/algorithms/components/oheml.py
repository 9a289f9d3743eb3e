"""OHEML (spec 5.4): weight each unlabeled sample's standard-head loss by its normalised entropy, so confident
easy examples count as little as 1 - s and uncertain hard ones near 1. No gradient flows through the weights."""

from __future__ import annotations

import math

from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo
from semi.config import SemiConfig


def entropy_weights(p: Tensor, strength: float) -> Tensor:
    """w_b = s * H(p_b) / log C + (1 - s)."""
    h = -(p * p.clamp_min(1e-12).log()).sum(dim=1) / math.log(p.shape[1])
    return strength * h + (1 - strength)


class OHEMLComponent(Component):
    def __init__(self, cfg: SemiConfig):
        super().__init__()
        self.cfg = cfg

    def sample_weights(self, pl: PseudoLabels, info: StepInfo, logs: dict[str, Tensor]) -> Tensor | None:
        if info.epoch <= self.cfg.warmup_epochs:
            return None
        w = entropy_weights(pl.probs.detach(), self.cfg.oheml_strength)
        logs["oheml_weight"] = (w * pl.mask).sum() / pl.mask.sum().clamp_min(1)
        return w
