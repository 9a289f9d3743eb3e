"""DASO (Oh, Kim & Kweon, "DASO: Distribution-Aware Semantics-Oriented Pseudo-label for Imbalanced
Semi-Supervised Learning", CVPR 2022) on FixMatch, its paper's main setting; SeMi's components attach to it
(`daso+semi`). Written from the authors' released code (github.com/ytaek-oh/daso: lib/models/daso_model.py,
feature_queue.py, lib/utils/dist_logger.py, lib/algorithm/daso.py) and its CIFAR-10-LT config.

Per step (after `daso.pretrain_epochs` of plain FixMatch):
  1. Queue: the labeled batch's features from the EMA model (BatchNorm on the batch's statistics, as the authors'
     EMA model runs in train mode) join a per-class FIFO of K = 256; prototypes c_k = the queue means.
     This happens before the forward pass, so the step's own labeled images are in the prototypes.
  2. Semantic pseudo-label: q_b = softmax_k(cos(z_b, c_k) / T_proto) from the weak view's online embedding
     (T_proto = 0.05).
  3. Distribution-aware blend: m = class histogram of all final pseudo-labels of the last full window of
     `dist_update_every` = 100 steps (normalised); v = m^(1/T_dist), normalised, divided by its maximum; each
     image takes the weight w_b = v[argmax p_b] of its linear pseudo-label's class: p~ = (1 - w_b) p + w_b q.
     Classes the linear head predicts most (head classes) lean fully on the semantic pseudo-label (w = 1 for
     the most predicted), rarely predicted (tail) classes keep the linear one. Mask: max p~ >= tau alone.
  4. Semantic alignment loss: CE(q_b(weak), softmax_k(cos(z_s,b, c_k) / T_proto)) over every unlabeled image
     (no mask), through the strong view's embedding; mean over both strong views (the authors have one).

How DASO differs from SeMi's prototype pseudo-labels (components/prototypes.py; the module also holds
the cosine logits DASO uses and the `blend` both use):
  - where prototypes come from: DASO, the K newest LABELED features per true class from the EMA model; SeMi,
    the K most confident UNLABELED strong-view embeddings per pseudo-class from the online model (decayed bank);
  - similarity: DASO cosine with T_proto = 0.05; SeMi negative Euclidean distance (unnormalised) with t_tar = 0.1;
    DASO's query is the weak view, SeMi's the first strong view;
  - blend weight: DASO, per SAMPLE, v of its linear pseudo-label's class from the last window's distribution of
    all pseudo-labels, max-normalised, sharpened by T_dist, full strength from the end of pre-training; SeMi,
    per CLASS (a vector over the columns, then renormalised), alpha * progress * share of masked pseudo-labels
    counted since the start. Both lean head classes toward the prototypes, tail classes toward the classifier;
  - DASO trains the embedding toward its prototypes with the alignment loss; SeMi has no such term (its
    feature consistency aligns rejected images' strong views with their weak view, not prototypes).

Where we differ from the authors' code (each is noted where it happens):
  - before the first window closes the blend weight is 0 (FixMatch's pseudo-label); their zero-initialised
    counts would give NaN, which their 5000 pre-training steps (> the 100-step window) never reach;
  - classes whose queue is still empty take no part in the semantic softmax (theirs: a zero prototype with
    similarity 0); with labeled batches from the first step this only matters very early;
  - two strong views: the unlabeled and alignment losses average over both (FixMatch here has two);
  - the distribution window is all-reduced under DDP (their code is single-GPU), so every rank blends alike;
  - pre-training is given in epochs (daso.pretrain_epochs) rather than steps.
The paper agrees with the code where we could check it (prototypes from EMA features of labeled data); every
default above is the code's (lib/config/defaults.py, configs/cifar10/fixmatch_daso.yaml).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views, log_hits
from semi.algorithms.components.feature_queue import ClassFeatureQueue
from semi.algorithms.components.prototypes import absent_bias, blend, cosine_logits, scaled_directions
from semi.algorithms.daso import SPEC
from semi.algorithms.fixmatch import FixMatch
from semi.config import Config
from semi.distributed import all_gather_cat, all_reduce_sum
from semi.models.heads import ModelOutput


def distribution_weights(counts: Tensor, temperature: float) -> Tensor:
    """v_k = m_k^(1/T) / max_j m_j^(1/T), m = counts / sum, in the authors' order of operations (normalise,
    power, normalise, divide by the max). All zeros while nothing has been counted (see the module docstring)."""
    total = counts.sum()
    m = counts.float() / total.clamp_min(1)
    m = m.pow(1.0 / temperature)
    m = m / m.sum().clamp_min(1e-30)
    v = m / m.max().clamp_min(1e-30)
    return torch.where(total > 0, v, torch.zeros_like(v))


def semantic_alignment_loss(q_weak: Tensor, strong_logits: Tensor, available: Tensor | None = None,
                            scale: Tensor | float = 1.0) -> Tensor:
    """scale * mean_b -sum_k q_weak[b, k] log softmax(strong_logits)[b, k]: the weak view's semantic pseudo-label
    as a soft target for the strong view's prototype similarities. strong_logits may stack V strong views
    ([V * n, C], view by view): the mean is then over all V * n rows, the mean of the V views' losses.
    `available`: give it when absent classes have logit -inf (q = 0 there; 0 * -inf would be NaN, so they are
    left out of the sum); DASO's own logits use a finite `absent_bias` and need no mask. The mean, the sign and
    `scale` multiply the constant target, so the graph holds three ops after the logits."""
    log_q = torch.log_softmax(strong_logits, dim=1)
    if available is not None:
        log_q = log_q.masked_fill(~available[None], 0.0)
    v = len(strong_logits) // len(q_weak)
    target = q_weak * (scale * (-1 / len(strong_logits)))
    return (log_q.view(v, *q_weak.shape) * target).sum()


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with the batch's own statistics and leave their running statistics (and
    counters) untouched; other layers (dropout) keep their mode. How the authors' EMA model, kept in train mode,
    embeds the labeled batch, without letting that forward change the evaluation model."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:
        m.train()
        m.track_running_stats = False  # train mode + no tracking: batch statistics, running buffers not passed
    try:
        yield
    finally:
        for m, (training, tracking) in zip(norms, saved):
            m.train(training)
            m.track_running_stats = tracking


class DASO(FixMatch):
    """FixMatch with DASO's blended pseudo-label and semantic alignment loss (see the module docstring)."""

    spec = SPEC

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list[Component]):
        super().__init__(cfg, num_classes, labeled_prior, components)
        self.register_buffer("pl_window", torch.zeros(num_classes))
        """Final pseudo-labels (all, masked or not) of the current window, per class (global batch under DDP)."""
        self.register_buffer("pl_dist", torch.zeros(num_classes))
        """The last full window's counts: the distribution the blend weights come from (zeros before)."""
        self.queue: ClassFeatureQueue | None = None
        self._weights_of: tuple[Tensor, int, Tensor] | None = None
        """(pl_dist, its version, its distribution_weights): they change only when a window closes (every 100
        steps), so they are computed then, not every step. Any in-place change of pl_dist (a window, a loaded
        checkpoint) bumps its version; moving the module to a device replaces the tensor."""

    def allocate(self, embed_dim: int) -> None:
        self.queue = ClassFeatureQueue(self.num_classes, self.cfg.daso.queue_size, embed_dim)

    def active(self, info: StepInfo) -> bool:
        """After pre-training (the authors: from step PRETRAIN_STEPS on); a Python bool, no host sync."""
        return info.step >= self.cfg.daso.pretrain_epochs * info.steps_per_epoch

    @torch.no_grad()
    def enqueue_labeled(self, x_l: Tensor, y_l: Tensor) -> None:
        """The labeled batch's EMA-model features into the queue; under DDP every rank pushes every rank's batch
        (in rank order), so the queues stay identical and equal to one process's on the global batch."""
        ema = self.ema_model
        if ema is None:
            raise RuntimeError("DASO reads labeled features from the EMA model: attach it with attach_ema() "
                               "(the Trainer does)")
        backbone = getattr(ema, "backbone", None)  # the backbone alone gives the embedding; the heads are unused
        with batch_statistics(ema):
            features = (ema(x_l).embedding if backbone is None else backbone(x_l)).float()
        self.queue.push(all_gather_cat(features), all_gather_cat(y_l))

    def before_forward(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> None:
        # The authors push the labeled features before the forward pass: this step's prototypes include them.
        self.enqueue_labeled(batch["x_l"], batch["y_l"])

    def blend_weights(self, p: Tensor) -> Tensor:
        """w_b [N, 1]: v of the class of the linear pseudo-label argmax p_b (daso.dist_aware), or the fixed
        daso.interp_alpha."""
        g = self.cfg.daso
        if not g.dist_aware:
            return p.new_full((len(p), 1), g.interp_alpha)
        dist, version = self.pl_dist, self.pl_dist._version
        if self._weights_of is None or self._weights_of[0] is not dist or self._weights_of[1] != version:
            self._weights_of = (dist, version, distribution_weights(dist, g.dist_temperature)[:, None])
        return self._weights_of[2][p.argmax(dim=1)]

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        p = torch.softmax(weak.logits.float() / self.cfg.algorithm.temperature, dim=1)  # the linear pseudo-label
        threshold = self.threshold_for(info)
        if not self.active(info):
            return PseudoLabels(p, p, threshold)
        sums, available = self.queue.class_sums()  # cosine similarity to a class mean = to its sum
        filled = available.any()  # False only before any labeled batch was queued: then no blend, no alignment
        # The prototypes' side of cos(z, c_k) / T_proto, shared with the alignment loss of this step.
        t = self.cfg.daso.proto_temperature
        directions, bias = scaled_directions(sums, t), absent_bias(available, t)
        q = torch.softmax(cosine_logits(weak.embedding, directions, bias), dim=1)
        w = self.blend_weights(p) * filled
        # The authors' mask is the blended pseudo-label's confidence alone (no OR with the linear one).
        pl = PseudoLabels(blend(p, q, w), p, threshold, raw_opens_mask=False)
        pl.notes["semantic"] = (q, (directions, bias), available, filled, w)  # the alignment loss and diagnostics
        return pl

    def base_unlabeled_losses(self, views: Views, pl: PseudoLabels, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        g = self.cfg.daso
        semantic = pl.notes.get("semantic")
        if semantic is None or g.align_weight == 0:
            return {"align": views.weak.embedding.new_zeros((), dtype=torch.float32)}
        q, (directions, bias), _, filled, _ = semantic
        # Both strong views in one pass (the mean over their 2n rows is the mean of the two views' losses).
        strong = cosine_logits(views.strong_stacked().embedding, directions, bias)
        return {"align": semantic_alignment_loss(q, strong, scale=filled * g.align_weight)}

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        # The authors count every final pseudo-label (the one trained on), masked or not.
        self.pl_window += all_reduce_sum(torch.bincount(pl.target, minlength=self.num_classes))
        # The authors also skip the refresh at the very last step; it changes nothing that is trained, so we don't.
        if (info.step + 1) % self.cfg.daso.dist_update_every == 0:
            self.pl_dist.copy_(self.pl_window)
            self.pl_window.zero_()
        if "semantic" in pl.notes:  # accuracy on masked images with a known hidden label
            q, *_, w = pl.notes["semantic"]
            logs["daso_blend_weight"] = w.mean()
            truth = batch["u_y"]
            hits = torch.stack([q.argmax(1), pl.raw_probs.argmax(1)]) == truth
            log_hits(logs, ("semantic_acc", "linear_acc"), hits, pl.known_masked_float(truth))

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        total = float(self.pl_dist.sum())
        out["daso_queue_fill"] = [int(v) for v in self.queue.count]
        out["daso_pl_distribution"] = [float(v) / total if total > 0 else float("nan") for v in self.pl_dist]
        out["daso_blend_weights"] = [float(v) for v in
                                     distribution_weights(self.pl_dist, self.cfg.daso.dist_temperature)]
        return out
