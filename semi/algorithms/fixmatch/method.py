"""FixMatch (Sohn et al., NeurIPS 2020): hard pseudo-labels from the weak view, a confidence mask, cross-entropy
on the strong views."""

from __future__ import annotations

import torch

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo
from semi.algorithms.fixmatch import SPEC
from semi.models.heads import ModelOutput


class FixMatch(SemiSupervisedAlgorithm):
    spec = SPEC

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        p = torch.softmax(weak.logits.float() / self.cfg.algorithm.temperature, dim=1)
        return PseudoLabels(p, p, self.threshold_for(info))
