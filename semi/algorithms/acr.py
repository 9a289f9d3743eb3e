"""ACR (spec section 4): dual heads with logit adjustment, OR-masks, and an adaptive tau1 chosen from how far
the estimated unlabeled class distribution is from the consistent / uniform / reversed anchors."""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, Views, masked_ce
from semi.algorithms.registry import register_algorithm
from semi.config import Config
from semi.engine.distributed import all_reduce_sum
from semi.models.heads import ModelOutput


def symmetric_kl(p: Tensor, q: Tensor, eps: float = 1e-12) -> Tensor:
    """KL(p||q) + KL(q||p) along the last dimension."""
    p, q = p.clamp_min(eps), q.clamp_min(eps)
    return ((p - q) * (p.log() - q.log())).sum(-1)


def anchor_distributions(prior: Tensor) -> Tensor:
    """[3, C]: consistent (the labeled prior), uniform, reversed (the prior flipped)."""
    uniform = torch.full_like(prior, 1.0 / prior.numel())
    return torch.stack([prior, uniform, prior.flip(0)])


def tau1_from_kl(mean_kl: Tensor, tau_min: float, tau_max: float) -> Tensor:
    """tau1 = tau_min + (tau_max - tau_min) * softmax(KL)[consistent]: small when the estimate is near the
    labeled prior (its KL is the smallest), large when it is far from it."""
    return tau_min + (tau_max - tau_min) * torch.softmax(mean_kl, dim=0)[0]


@register_algorithm("acr")
class ACR(SemiSupervisedAlgorithm):
    accepts_components = True
    eval_head = "balanced"

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        prior = labeled_prior.float() / labeled_prior.sum()
        self.register_buffer("anchors", anchor_distributions(prior))
        # Before the first estimate tau1 = tau_max unless configured (ACR's released default: the full correction).
        init = cfg.algorithm.tau_max if cfg.algorithm.tau1_init is None else cfg.algorithm.tau1_init
        self.register_buffer("tau1", torch.tensor(float(init)))
        self.register_buffer("u_estimate", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("kl_sum", torch.zeros(3))
        self.register_buffer("kl_steps", torch.zeros(()))

    @property
    def trains_balanced_head(self) -> bool:
        return True

    def estimating(self, epoch: int) -> bool:
        # Epochs count from 0 and estimation starts after epoch E_est, as in ACR's released code (`epoch >
        # est_epoch`); SeMi's warm-up uses the same convention (spec 5: "epoch index > E_est").
        return epoch > self.cfg.algorithm.est_epoch

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.update_tau1()

    def update_tau1(self) -> None:
        """Average the epoch's KL accumulators into tau1, then reset them (a no-op before estimation starts)."""
        steps = self.kl_steps.clamp_min(1)
        new = tau1_from_kl(self.kl_sum / steps, self.cfg.algorithm.tau_min, self.cfg.algorithm.tau_max)
        self.tau1.copy_(torch.where(self.kl_steps > 0, new, self.tau1))
        self.kl_sum.zero_()
        self.kl_steps.zero_()

    def debias_ramp(self, info: StepInfo) -> float:
        """1, or the linear ramp from 0 over `algorithm.debias_warmup_epochs` (a Python float: no host sync)."""
        warmup = self.cfg.algorithm.debias_warmup_epochs
        if warmup <= 0:
            return 1.0
        steps_per_epoch = info.total_steps / info.total_epochs
        return min(1.0, info.step / (warmup * steps_per_epoch))

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        logits, t = weak.logits.float(), self.cfg.algorithm.temperature  # T divides every pseudo-label, as in ACR
        raw = torch.softmax(logits / t, dim=1)
        debiased = torch.softmax((logits - self.debias_ramp(info) * self.tau1 * self.log_prior) / t, dim=1)
        return PseudoLabels(debiased, raw, self.threshold)

    def base_unlabeled_losses(self, views: Views, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        """L_u^b: balanced-head pseudo-labels debiased by tau12, OR-mask with the balanced head's confidence."""
        with torch.no_grad():
            tau12 = self.debias_ramp(info) * self.cfg.algorithm.tau12
            t = self.cfg.algorithm.temperature
            p12 = torch.softmax((views.weak.logits.float() - tau12 * self.log_prior) / t, dim=1)
            pb = torch.softmax(views.weak.logits_balanced.float() / t, dim=1)
            conf12, target = p12.max(dim=1)
            conf_b, target_b = pb.max(dim=1)
            mask = (conf12 >= self.threshold) | (conf_b >= self.threshold)
            if self.cfg.algorithm.estimate_from == "balanced_head":
                self._estimate_labels = (target_b, conf_b >= self.threshold)
            else:
                self._estimate_labels = (target, mask)
            logs["mask_rate_bal"] = mask.float().mean()
        s1, s2 = views.strong
        w = mask.float()
        lam = self.cfg.algorithm.lambda_u
        return {"unsup_bal": lam * 0.5 * (masked_ce(s1.logits_balanced, target, w)
                                          + masked_ce(s2.logits_balanced, target, w))}

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        logs["tau1"] = self.tau1.clone()
        if not self.estimating(info.epoch):
            return
        target, mask = self._estimate_labels
        keep = (mask & ~batch["u_is_labeled"]).float()  # images that are also labeled stay out of the estimate
        hist = torch.zeros(self.num_classes, device=target.device).index_add_(0, target, keep)
        if self.cfg.algorithm.estimate_counting == "presence":
            hist = (hist > 0).float()
        hist = all_reduce_sum(hist)
        total = hist.sum()
        m = self.cfg.algorithm.est_momentum
        updated = m * self.u_estimate + (1 - m) * hist / total.clamp_min(1)
        self.u_estimate.copy_(torch.where(total > 0, updated, self.u_estimate))
        kl = symmetric_kl(self.u_estimate[None], self.anchors)
        self.kl_sum += 0.5 * kl if self.cfg.algorithm.symmetric_kl == "mean" else kl
        self.kl_steps += 1

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        out["acr_tau1"] = float(self.tau1)
        out["acr_unlabeled_estimate"] = [float(v) for v in self.u_estimate]
        return out
