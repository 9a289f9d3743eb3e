"""The logit-adjusted dual-head learner (ACR, CVPR 2023; SeMi, ACM MM 2025): SeMi's authors' base, and ACR
without its adaptive tau1.

Two linear heads share the backbone. The standard head g1 trains as in FixMatch on the raw softmax pseudo-label
(tau1 = 0: the SeMi authors' script has `pula = 0` and no published command turns it on); the balanced head g2
trains with the logit-adjusted labeled loss CE(g2 + tau2 log pi, y) and on pseudo-labels of the standard head
debiased by tau12, under an OR-mask with its own confidence. Prediction uses the balanced head. ACR (../acr)
is this learner plus an adaptive debiasing tau1 of the standard head's pseudo-label.
"""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, Views, strong_views_ce
from semi.algorithms.dual_head import SPEC
from semi.models.heads import ModelOutput


class DualHead(SemiSupervisedAlgorithm):
    spec = SPEC

    @property
    def trains_balanced_head(self) -> bool:
        return True

    def debias_ramp(self, info: StepInfo) -> float:
        """1, or the linear ramp from 0 over `algorithm.debias_warmup_epochs` (a Python float: no host sync)."""
        warmup = self.cfg.algorithm.debias_warmup_epochs
        if warmup <= 0:
            return 1.0
        return min(1.0, info.step / (warmup * info.steps_per_epoch))

    def standard_head_debiasing(self) -> Tensor | float:
        """tau1 of the standard head's pseudo-label: 0 here (the raw softmax); ACR adapts it."""
        return 0.0

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        logits, t = weak.logits.float(), self.cfg.algorithm.temperature  # T divides every pseudo-label, as in ACR
        raw, threshold = torch.softmax(logits / t, dim=1), self.threshold_for(info)
        tau1 = self.standard_head_debiasing()
        if isinstance(tau1, float) and tau1 == 0.0:
            return PseudoLabels(raw, raw, threshold)
        debiased = torch.softmax((logits - self.debias_ramp(info) * tau1 * self.log_prior) / t, dim=1)
        return PseudoLabels(debiased, raw, threshold)

    def base_unlabeled_losses(self, views: Views, pl: PseudoLabels, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        """L_u^b: balanced-head pseudo-labels debiased by tau12, OR-mask with the balanced head's confidence."""
        with torch.no_grad():
            tau12 = self.debias_ramp(info) * self.cfg.algorithm.tau12
            threshold = self.threshold_for(info)
            t = self.cfg.algorithm.temperature
            weak = views.targets_source()
            p12 = torch.softmax((weak.logits.float() - tau12 * self.log_prior) / t, dim=1)
            pb = torch.softmax(weak.logits_balanced.float() / t, dim=1)
            conf12, target = p12.max(dim=1)
            conf_b, target_b = pb.max(dim=1)
            mask = (conf12 >= threshold) | (conf_b >= threshold)
            # For subclasses that read the balanced head (ACR's estimate of the unlabeled distribution).
            pl.notes["balanced"] = (target, mask, target_b, conf_b)
            logs["mask_rate_bal"] = mask.float().mean()
        lam = self.cfg.algorithm.lambda_u
        return {"unsup_bal": lam * strong_views_ce(views.strong_stacked().logits_balanced, target, mask.float())}
