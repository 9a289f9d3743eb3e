"""SimPro (Du et al., "SimPro: A Simple Probabilistic Framework Towards Realistic Long-Tailed Semi-Supervised
Learning", ICML 2024), as its authors' released code (LeapLabTHU/SimPro, SimPro/train.py) trains it.

The head's raw logits f(x) model the class-balanced likelihood; a class prior enters only through a logit
adjustment log(prior^tau). Two priors are estimated EM-style, once per epoch (their `eval_step` steps):
- the unlabeled prior pi_u (starts uniform): the soft pseudo-label mass of the masked unlabeled images of the
  epoch, normalised by (its total + 1) as their code writes it, mixed in by an EMA (rate `simpro.momentum`);
- the training prior pi (starts at the labeled prior): the labeled counts seen in the epoch plus that unlabeled
  mass, normalised, mixed in by the same EMA.
E-step (every step): the Bayes-optimal pseudo-label under the unlabeled prior, softmax(f(x_w) + log pi_u^tau),
masked where its confidence reaches the threshold. M-step: cross-entropy of f + log pi^tau on the labeled images
(divided by the ratio of unlabeled to labeled batches per pass, as theirs) and on both strong views against the
soft pseudo-label. Prediction: the raw head f (their `test` evaluates the model's logits unadjusted), which here
is the standard head, trained with the adjustment; the balanced head is not used.

Where our code differs from the authors': their labeled loss also covers a strong view of every labeled image (our
batches carry the weak view only); the unlabeled pool includes the labeled images (the literature's split; theirs
excludes them), so the loader ratio counts them; under DDP the epoch's sums are all-reduced (theirs are per process,
though their scripts run one GPU); their `--T` is parsed but never used, and so is not ours.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, Views
from semi.algorithms.simpro import SPEC
from semi.config import Config
from semi.distributed import all_reduce_sum, world_size
from semi.models.heads import ModelOutput


def prior_adjustment(prior: Tensor, tau: float) -> Tensor:
    """log(prior^tau + 1e-12), the authors' `compute_adjustment_by_py`."""
    return torch.log(prior ** tau + 1e-12)


def simpro_pseudo_labels(logits: Tensor, unlabeled_prior: Tensor, tau: float) -> Tensor:
    """The Bayes-optimal posterior under the estimated unlabeled prior: softmax(f + log pi_u^tau)."""
    return torch.softmax(logits.float() + prior_adjustment(unlabeled_prior, tau), dim=1)


def update_priors(unlabeled_prior: Tensor, train_prior: Tensor, unlabeled_mass: Tensor, labeled_counts: Tensor,
                  momentum: float) -> tuple[Tensor, Tensor]:
    """The end-of-epoch M-step of the priors, as the authors' code writes it (note the +1 in the unlabeled
    normaliser: the estimate is not exactly a distribution, and an epoch with no masked image pulls it to 0)."""
    estimate = unlabeled_mass / (unlabeled_mass.sum() + 1)
    new_unlabeled = unlabeled_prior * momentum + estimate * (1 - momentum)
    forward = labeled_counts + unlabeled_mass
    new_train = train_prior * momentum + forward / forward.sum() * (1 - momentum)
    return new_unlabeled, new_train


def loader_ratio(pool_size: int, num_labeled: int, batch_size: int, mu: int, ranks: int) -> float:
    """Unlabeled over labeled batches per pass, per process (their DistributedSampler splits each set over the
    ranks, their loaders drop the last incomplete batch); at least 1 batch each."""
    u_len = math.ceil(pool_size / ranks) // (mu * batch_size)
    l_len = math.ceil(num_labeled / ranks) // batch_size
    return max(u_len, 1) / max(l_len, 1)


class SimPro(SemiSupervisedAlgorithm):
    spec = SPEC

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        c = num_classes
        self.register_buffer("unlabeled_prior", torch.full((c,), 1.0 / c))  # their estimated_dis = py_uni
        self.register_buffer("train_prior", (labeled_prior.float() / labeled_prior.sum()).float())  # adapt_dis
        self.register_buffer("unlabeled_mass", torch.zeros(c))  # dis_unlabeled of the current epoch
        self.register_buffer("labeled_counts", torch.zeros(c))  # count_labeled_dataset of the current epoch
        self.register_buffer("epoch_steps", torch.zeros(()))
        self.labeled_scale = 1.0

    @property
    def trains_balanced_head(self) -> bool:
        return False

    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        super().setup_data(pool_size, num_labeled)
        if self.cfg.simpro.labeled_loss_scale == "loader_ratio":
            t = self.cfg.train
            self.labeled_scale = loader_ratio(pool_size, num_labeled, t.batch_size, t.mu, world_size())

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        # The authors update after each epoch's steps; here at the next epoch's start (the same point), skipped
        # when nothing was accumulated (the first epoch's start). torch.where: no host sync.
        new_u, new_t = update_priors(self.unlabeled_prior, self.train_prior, self.unlabeled_mass,
                                     self.labeled_counts, self.cfg.simpro.momentum)
        ran = self.epoch_steps > 0
        self.unlabeled_prior.copy_(torch.where(ran, new_u, self.unlabeled_prior))
        self.train_prior.copy_(torch.where(ran, new_t, self.train_prior))
        for buf in (self.unlabeled_mass, self.labeled_counts, self.epoch_steps):
            buf.zero_()

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        probs = simpro_pseudo_labels(weak.logits, self.unlabeled_prior, self.cfg.simpro.tau)
        raw = torch.softmax(weak.logits.float(), dim=1)
        return PseudoLabels(probs, raw, self.threshold_for(info), raw_opens_mask=False)  # theirs: no OR-mask

    def labeled_losses(self, out: ModelOutput, y: Tensor) -> dict[str, Tensor]:
        adjust = prior_adjustment(self.train_prior, self.cfg.simpro.tau)
        return {"sup": F.cross_entropy(out.logits.float() + adjust, y) / self.labeled_scale}

    def unlabeled_loss(self, views: Views, pl: PseudoLabels, weights: Tensor) -> Tensor:
        """Cross-entropy of the adjusted head f + log pi^tau on both strong views against the soft pseudo-label
        (the authors' Lu: the mean over both views' whole batch of mask * CE), before lambda_u."""
        adjust = prior_adjustment(self.train_prior, self.cfg.simpro.tau)
        target = pl.probs if self.cfg.simpro.soft_targets else pl.target
        return 0.5 * sum((F.cross_entropy(s.logits.float() + adjust, target, reduction="none") * weights).mean()
                         for s in views.strong)

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        mass = (pl.probs * pl.mask[:, None]).sum(0)
        counts = torch.zeros(self.num_classes, device=mass.device).index_add_(
            0, batch["y_l"], torch.ones_like(batch["y_l"], dtype=mass.dtype))
        self.unlabeled_mass += all_reduce_sum(mass)
        self.labeled_counts += all_reduce_sum(counts)
        self.epoch_steps += 1

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        out["simpro_unlabeled_prior"] = [float(v) for v in self.unlabeled_prior]
        out["simpro_train_prior"] = [float(v) for v in self.train_prior]
        return out
