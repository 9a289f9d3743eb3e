"""A toy component written the way docs/new-method.md says: spec, config section and code in this one module.

Label smoothing of the pseudo-labels (mixing a share of the uniform distribution into the base's pseudo-label
before the mask), with a counter of the steps it acted on as its state (a buffer: checkpointed, resumed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.specs import MethodSpec, register


@dataclass
class SmoothConfig:
    share: float = 0.1
    """Share of the uniform distribution mixed into each pseudo-label."""


class SmoothPseudoLabels(Component):
    def __init__(self, share: float, num_classes: int):
        super().__init__()
        self.share, self.num_classes = share, num_classes
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def refine(self, pl: PseudoLabels, views: Views, info: StepInfo, logs: dict[str, Tensor]) -> None:
        pl.replace_probs((1 - self.share) * pl.probs + self.share / self.num_classes)
        self.steps += 1

    def diagnostics(self) -> dict[str, object]:
        return {"smooth_steps": int(self.steps)}


def build(cfg, num_classes: int, embed_dim: int) -> list[Component]:
    return [SmoothPseudoLabels(cfg.smooth.share, num_classes)]


SPEC = register(MethodSpec(
    name="smooth", kind="component", summary="label smoothing of pseudo-labels (tests)", implementation=build,
    section="smooth", config=SmoothConfig,
))
