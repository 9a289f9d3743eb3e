"""A toy base written the way docs/new-method.md says: spec, config section and code in this one module.

ToyMatch is FixMatch with a temperature-sharpened soft target: pseudo-labels come from softmax(logits / T) and the
strong views learn the sharpened distribution of the confident images. It exists to prove that a new base needs no
edit of any other file of `semi` (tests/test_specs.py trains it, alone and with components).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, Views
from semi.models.heads import ModelOutput
from semi.specs import MethodSpec, register


@dataclass
class ToyMatchConfig:
    sharpen: float = 0.5
    """Temperature of the pseudo-label (< 1 sharpens)."""


def check(cfg) -> list[str]:
    return [] if cfg.toymatch.sharpen > 0 else [f"toymatch.sharpen: must be > 0, got {cfg.toymatch.sharpen}"]


class ToyMatch(SemiSupervisedAlgorithm):
    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        p = torch.softmax(weak.logits.float() / self.cfg.toymatch.sharpen, dim=1)
        return PseudoLabels(p, p, self.threshold_for(info))

    def unlabeled_loss(self, views: Views, pl: PseudoLabels, weights: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(views.strong_stacked().logits.float(), dim=1)
        ce = -(torch.cat([pl.probs, pl.probs]) * logp).sum(1)
        return (ce.view(2, -1) * weights).mean()


SPEC = register(MethodSpec(
    name="toymatch", kind="base", summary="a toy FixMatch with sharpened soft targets (tests)",
    implementation=ToyMatch, section="toymatch", config=ToyMatchConfig, check=check, accepts_components=True,
))
ToyMatch.spec = SPEC
