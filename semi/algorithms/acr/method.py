"""ACR (Wei and Gan, CVPR 2023): the dual-head learner plus an adaptive tau1 for the standard head's
pseudo-label, chosen from how far the estimated unlabeled class distribution is from the consistent / uniform /
reversed anchors.

Defaults follow ACR's released train.py (Gank0078/ACR): tau1 is recomputed at the start of every
epoch with epoch > E_est from the previous epoch's accumulated KL divided by the steps per epoch (so 2/3 at the
first such epoch, whose accumulators are still zero); each class counts at most once per batch in the estimate;
the symmetric KL is halved; the estimate's EMA rate is 0.99 (ACR's published commands). Our earlier choices
(tau1 held until a KL exists, every image counted, the full Jeffreys sum) are options.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from semi.algorithms.acr import SPEC
from semi.algorithms.base import PseudoLabels, StepInfo, Views
from semi.algorithms.dual_head import DualHead
from semi.config import Config
from semi.distributed import all_reduce_sum


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


def count_presence(hist: Tensor) -> Tensor:
    """ACR's per-batch count: 1 for every class with at least one counted image. ACR writes `now_mask[targets] +=
    mask` with repeated indices, which keeps one write per class (which one is unspecified); wherever that is
    defined (the images predicted as a class agree on the mask) it equals this."""
    return (hist > 0).float()


class ACR(DualHead):
    spec = SPEC
    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        prior = labeled_prior.float() / labeled_prior.sum()
        self.register_buffer("anchors", anchor_distributions(prior))
        # Before estimation tau1 = tau_max unless configured (ACR's released code: the full correction).
        init = cfg.algorithm.tau_max if cfg.algorithm.tau1_init is None else cfg.algorithm.tau1_init
        self.register_buffer("tau1", torch.tensor(float(init)))
        self.register_buffer("u_estimate", torch.full((num_classes,), 1.0 / num_classes))  # ACR starts uniform
        self.register_buffer("kl_sum", torch.zeros(3))
        self.register_buffer("kl_steps", torch.zeros(()))

    def estimating(self, epoch: int) -> bool:
        # Epochs count from 0 and estimation runs in epochs after E_est, as in ACR's released code (`epoch >
        # est_epoch`); SeMi's warm-up uses the same convention ("epoch index > E_est").
        return epoch > self.cfg.algorithm.est_epoch

    def standard_head_debiasing(self) -> Tensor:
        return self.tau1

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        a = self.cfg.algorithm
        if a.tau1_schedule == "acr":
            if self.estimating(epoch):  # the first such epoch sees zero accumulators: softmax 1/3 each
                mean_kl = self.kl_sum / self.cfg.train.steps_per_epoch
                self.tau1.copy_(tau1_from_kl(mean_kl, a.tau_min, a.tau_max))
        else:  # "after_first_estimate" (ours before): keep tau1 until an epoch has accumulated a KL
            new = tau1_from_kl(self.kl_sum / self.kl_steps.clamp_min(1), a.tau_min, a.tau_max)
            self.tau1.copy_(torch.where(self.kl_steps > 0, new, self.tau1))
        self.kl_sum.zero_()
        self.kl_steps.zero_()

    def update_tau1(self) -> None:
        """Close the current epoch's accumulators into tau1 as the next epoch start would (for tests and tools)."""
        self.on_epoch_start(self.cfg.algorithm.est_epoch + 1)

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        logs["tau1"] = self.tau1.clone()
        if not self.estimating(info.epoch):
            return
        a = self.cfg.algorithm
        target12, mask12, target_b, conf_b = pl.notes["balanced"]
        if a.estimate_from == "balanced_head":
            bar = self.threshold_for(info) if a.estimate_threshold is None else a.estimate_threshold
            target, mask = target_b, conf_b >= bar
        else:
            target, mask = target12, mask12
        counted = mask & ~batch["u_is_labeled"]  # images that are also labeled stay out of the estimate
        hist = torch.zeros(self.num_classes, device=target.device).index_add_(0, target, counted.float())
        hist = all_reduce_sum(hist)  # presence is taken over the global batch: N ranks act as one process
        if a.estimate_counting == "presence":
            hist = count_presence(hist)
        total = hist.sum()
        seen = total > 0  # ACR skips the update and the KL of a batch with nothing counted
        updated = a.est_momentum * self.u_estimate + (1 - a.est_momentum) * hist / total.clamp_min(1)
        self.u_estimate.copy_(torch.where(seen, updated, self.u_estimate))
        kl = symmetric_kl(self.u_estimate[None], self.anchors)
        if a.symmetric_kl == "mean":
            kl = 0.5 * kl
        self.kl_sum += kl * seen
        self.kl_steps += seen.float()

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        out["acr_tau1"] = float(self.tau1)
        out["acr_unlabeled_estimate"] = [float(v) for v in self.u_estimate]
        return out

    def truth_diagnostics(self, unlabeled_true_counts: np.ndarray) -> dict[str, object]:
        """The symmetric KL of the estimate to the unlabeled pool's true class distribution."""
        true = unlabeled_true_counts
        if true.sum() <= 0:
            return {}
        estimate = self.u_estimate.detach().cpu()
        return {"acr_estimate_kl_to_true": float(symmetric_kl(estimate, torch.tensor(true / true.sum())))}
