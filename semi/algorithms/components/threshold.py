"""SeMi's mask threshold, shared by its parts: whichever of them are attached lower every mask of the step."""

from __future__ import annotations

from semi.algorithms.base import StepInfo
from semi.algorithms.components import SemiConfig


class SemiThreshold:
    """Mixed into each of SeMi's components: semi.threshold for every mask of the step (its authors' commands: 0.7),
    or with semi.threshold_schedule=after_warmup the base's threshold until the warm-up ends (a Python float, so
    no host sync)."""

    cfg: SemiConfig

    @property
    def threshold(self) -> float:
        return self.cfg.threshold

    def mask_threshold(self, base: float, info: StepInfo) -> float:
        if self.cfg.threshold_schedule == "after_warmup" and not info.past(self.cfg.warmup_epochs):
            return base
        return self.cfg.threshold
