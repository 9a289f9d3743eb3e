"""OHEML (SeMi, ACM MM 2025): weight each unlabeled sample's standard-head loss by its normalised entropy, so confident
easy examples count as little as 1 - s and uncertain hard ones near 1. No gradient flows through the weights."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.algorithms.components import SemiConfig
from semi.algorithms.components.threshold import SemiThreshold
from semi.distributed import all_reduce_sum


def entropy_weights(p: Tensor, strength: float) -> Tensor:
    """w_b = s * H(p_b) / log C + (1 - s), with 0 log 0 = 0 (torch's entr: one op for -p log p)."""
    return torch.special.entr(p).sum(dim=1).mul_(strength / math.log(p.shape[1])).add_(1 - strength)


class OHEMLComponent(SemiThreshold, Component):
    def __init__(self, cfg: SemiConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("weight_sum", torch.zeros(num_classes))
        self.register_buffer("weight_count", torch.zeros(num_classes))
        """Diagnostics since the last evaluation: OHEML weights of masked images summed by their hidden class."""

    def sample_weights(self, pl: PseudoLabels, info: StepInfo, logs: dict[str, Tensor]) -> Tensor | None:
        if not info.past(self.cfg.warmup_epochs):
            return None
        w = entropy_weights(pl.probs.detach(), self.cfg.oheml_strength)
        mean_masked = torch.dot(w, pl.mask_float()) / pl.mask_count()
        logs["oheml_weight"] = mean_masked
        if self.cfg.oheml_normalize:  # keep the loss scale: mean weight 1 over the masked samples (no host sync)
            w = w / mean_masked.clamp_min(1e-12)
        pl.notes["oheml_weights"] = w
        return w

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        if not info.past(self.cfg.warmup_epochs):
            return
        counted, truth = pl.known_masked_float(batch["u_y"]), batch["u_y"].clamp_min(0)
        self.weight_sum.index_add_(0, truth, pl.notes["oheml_weights"] * counted)
        self.weight_count.index_add_(0, truth, counted)

    def diagnostics(self) -> dict[str, object]:
        """Mean OHEML weight of the masked images of each hidden class since the last call (then reset)."""
        total, count = all_reduce_sum(self.weight_sum.clone()), all_reduce_sum(self.weight_count.clone())
        means = [float(s / c) if c > 0 else float("nan") for s, c in zip(total.tolist(), count.tolist())]
        self.weight_sum.zero_()
        self.weight_count.zero_()
        return {"oheml_weight_per_class": means}
