"""Supervised baselines: labeled data only, and the oracle (the labeled + unlabeled pool with true labels).

Both also train the balanced head with the logit-adjusted loss (cheap), so the evaluation can report the
logit-adjusted upper bound under imbalance next to the plain one.
"""

from __future__ import annotations

from torch import Tensor, nn

from semi.algorithms.base import Algorithm, StepInfo, StepResult
from semi.algorithms.supervised import ORACLE_SPEC, SPEC


class Supervised(Algorithm):
    spec = SPEC

    @property
    def trains_balanced_head(self) -> bool:
        return True

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> StepResult:
        out = model(batch["x_l"])
        losses = self.labeled_losses(out, batch["y_l"])
        loss = sum(losses.values())
        return StepResult(loss, losses, {})


class Oracle(Supervised):
    """Upper bound: every image of the pool with its true label (the loader builds that labeled set; the trainer
    gives it that set's class prior)."""

    spec = ORACLE_SPEC

    @property
    def balanced_tau(self) -> float:
        # The upper bound under imbalance is the standard logit-adjusted loss (tau = 1, Menon et al. 2021): it
        # targets the balanced error. ACR's tau2 = 2 over-corrects (Fashion-MNIST-LT consistent: 60.0% against 71.0%
        # for the plain head).
        return 1.0
