"""FixMatch (spec section 3): hard pseudo-labels from the weak view, confidence mask, CE on the strong views."""

from __future__ import annotations

import torch

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo
from semi.algorithms.registry import register_algorithm
from semi.models.heads import ModelOutput


@register_algorithm("fixmatch")
class FixMatch(SemiSupervisedAlgorithm):
    accepts_components = True

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        p = torch.softmax(weak.logits.float() / self.cfg.algorithm.temperature, dim=1)
        return PseudoLabels(p, p, self.threshold_for(info))
