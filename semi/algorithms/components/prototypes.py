"""Prototype-refined pseudo-labels (SeMi, ACM MM 2025): blend the linear head's distribution with a softmax over
distances to the memory bank's class means, more for the classes the linear head over-predicts.

`prototype_logits` (its cosine parts: `scaled_directions`, `absent_bias`, `cosine_logits`), `prototype_probs` and
`blend` are shared with DASO (semi/algorithms/daso), whose semantic pseudo-label is the same softmax over
prototypes with cosine similarity instead of SeMi's negative Euclidean distance, blended with a per-sample instead
of a per-class weight.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views, log_hits
from semi.algorithms.components import SemiConfig
from semi.algorithms.components.bank import MemoryBankComponent
from semi.algorithms.components.threshold import SemiThreshold
from semi.distributed import all_reduce_sum, world_size

Similarity = Literal["euclidean", "cosine"]
"""euclidean: -||z - c||_2 (SeMi, unnormalised embeddings); cosine: z.c / (||z|| ||c||) (DASO)."""


def prototype_logits(z: Tensor, centres: Tensor, available: Tensor, temperature: float,
                     similarity: Similarity = "euclidean") -> Tensor:
    """sim(z_b, c_k) / temperature [N, C] for the classes whose prototype exists; the others get -inf (euclidean)
    or the finite `absent_bias` (cosine), a softmax probability of exactly 0 either way. Carries z's gradient
    (DASO's alignment loss trains through it); the centres are constants."""
    if similarity == "euclidean":
        # The direct kernel: one op, and no |z|^2 + |c|^2 - 2 z.c cancellation (the matmul path's, for N > 25)
        dist = torch.cdist(z.float(), centres.float(), compute_mode="donot_use_mm_for_euclid_dist")
        # -inf for the absent classes, -dist / t for the others, in one op (this runs every step)
        return torch.add(torch.where(available, 0.0, float("-inf")), dist, alpha=-1 / temperature)
    return cosine_logits(z, scaled_directions(centres, temperature), absent_bias(available, temperature))


def unit_rows(x: Tensor) -> Tensor:
    """x / max(||x||, 1e-12) row by row: F.normalize's result in three ops instead of five."""
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)


def scaled_directions(centres: Tensor, temperature: float) -> Tensor:
    """c_k / (||c_k|| temperature) [C, D]: the prototypes' side of cos(z, c_k) / temperature, once per step. Any
    positive multiple of the centres gives the same directions (class sums do: no division by the counts)."""
    return unit_rows(centres.float()).mul_(1 / temperature)


def absent_bias(available: Tensor, temperature: float) -> Tensor:
    """0 for the classes with a prototype, -(2 / temperature + 200) for the others [C], added to cosine logits
    (which lie in [-1/T, 1/T]): an absent class then trails every present one by at least 200, so its softmax
    probability is exactly 0 (exp(-200) underflows in float32, bf16 and fp16), yet its logit stays finite, so
    a soft-target loss needs no masking (0 * -inf would be NaN) and an all-absent row is uniform, not NaN."""
    return torch.where(available, 0.0, -(2 / temperature + 200))


def cosine_logits(z: Tensor, directions: Tensor, bias: Tensor) -> Tensor:
    """cos(z_b, c_k) / temperature + bias_k [N, C] from `scaled_directions` and `absent_bias` (one addmm)."""
    return torch.addmm(bias, unit_rows(z.float()), directions.T)


def prototype_probs(z: Tensor, centres: Tensor, available: Tensor, temperature: float,
                    similarity: Similarity = "euclidean") -> Tensor:
    """q_b = softmax_k(sim(z_b, c_k) / temperature) over the classes whose prototype exists; others get 0.
    SeMi: -||z_b - c_k|| / t_tar; DASO: cos(z_b, c_k) / T_proto."""
    return torch.softmax(prototype_logits(z, centres, available, temperature, similarity), dim=1)


def blend(p: Tensor, q: Tensor, a: Tensor) -> Tensor:
    """normalise((1 - a) p + a q) with a weight that broadcasts against [N, C]: per class [C] (SeMi, whose rows
    then no longer sum to 1: the authors' script leaves them so; we renormalise) or per sample [N, 1] (DASO, a convex
    combination: the normalisation only removes rounding)."""
    mixed = torch.lerp(p, q, a)  # (1 - a) p + a q in one op
    return mixed / mixed.sum(dim=1, keepdim=True)


class PrototypeComponent(SemiThreshold, Component):
    def __init__(self, cfg: SemiConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("pl_counts", torch.zeros(num_classes))
        """Masked pseudo-labels counted so far, per class."""
        self.register_buffer("class_weight", torch.ones(num_classes))
        """w_k: share of class k among the counted pseudo-labels, refreshed once per epoch (1 before)."""
        self.register_buffer("moved_into", torch.zeros(2, num_classes))
        """Diagnostics, counted since the start: per class k, accepted images with a known hidden label whose label
        the blend changed into k, and how many of those are right (which classes the prototypes feed)."""
        self._sibling: tuple[MemoryBankComponent, ...] = ()  # a tuple: not registered, saved once (by the bank)
        if cfg.prototype_gate == "labeled":  # registered only when on: checkpoints without the gate keep loading
            self.register_buffer("labeled_acc", torch.zeros(num_classes))
            """Per class, an EMA of how often the prototypes label that class's labeled images right."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints from before the `moved_into` diagnostics load with the counts at 0 (as BatchNorm does for
        # num_batches_tracked): they are diagnostics, training never reads them
        state_dict.setdefault(prefix + "moved_into", torch.zeros_like(self.moved_into))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def bank(self) -> MemoryBankComponent:
        return self._sibling[0]

    def bind(self, algorithm) -> None:
        bank = algorithm.component(MemoryBankComponent)
        if bank is None:
            raise ValueError("semi.prototypes needs semi.memory_bank")
        self._sibling = (bank,)
        self._raw_source = self.cfg.pseudo_label_source == "raw"

    def on_epoch_start(self, epoch: int) -> None:
        total = self.pl_counts.sum()
        self.class_weight.copy_(torch.where(total > 0, self.pl_counts / total.clamp_min(1), self.class_weight))

    def active(self, info: StepInfo) -> bool:
        return info.past(self.cfg.warmup_epochs)

    def refine(self, pl: PseudoLabels, views: Views, info: StepInfo, logs: dict[str, Tensor]) -> None:
        if not self.active(info):
            return
        centres, available = self.bank.prototypes()
        view = views.strong[0] if self.cfg.query_view == "strong" else views.weak
        base = pl.raw_probs if self._raw_source else pl.probs
        q = prototype_probs(view.embedding, centres, available, self.cfg.t_tar)
        # An empty bank (all -inf, q NaN) contributes nothing: q = base, and blending base with itself gives base.
        q = torch.where(available.any(), q, base)
        a = (self.cfg.alpha * info.progress) * self.class_weight
        if self.cfg.prototype_gate == "labeled":
            a = a * self.labeled_acc
        # pl.target is already the argmax of pl.probs (its max's index): reused, one op less per step
        proto_target, base_target = q.argmax(1), base.argmax(1) if self._raw_source else pl.target
        logs["proto_agreement"] = (proto_target == base_target).float().mean()
        pl.raw_opens_mask = True  # SeMi's mask: m = 1[max p~ >= tau] OR 1[max p_t >= tau], whatever the base's rule
        pl.replace_probs(blend(base, q, a))
        pl.notes["prototype_targets"] = (proto_target, base_target)  # for observe's accuracy diagnostics

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        counts = [pl.mask_float()]
        if self.active(info):  # accuracy on masked images with a known hidden label: prototypes, classifier, blend
            proto, classifier = pl.notes["prototype_targets"]
            truth = batch["u_y"]
            known = pl.known_masked_float(truth)
            log_hits(logs, ("proto_acc", "classifier_acc", "blend_acc"),
                     torch.stack([proto, classifier, pl.target]) == truth, known)
            # the blend's effect: the share of accepted labels it changed, and how many of those it made right
            changed = pl.target != classifier
            log_hits(logs, "blend_change", changed, known)
            log_hits(logs, "blend_fix", pl.target == truth, changed * known)
            moved = changed * known
            counts += [moved, moved * (pl.target == truth)]
        # per class: masked pseudo-labels, and (once active) labels the blend moved into it and those right
        step = torch.zeros(len(counts), len(self.pl_counts), device=self.pl_counts.device)
        step.index_add_(1, pl.target, torch.stack(counts))
        all_reduce_sum(step)  # every rank's images count (one collective per step; nothing in one process)
        self.pl_counts += step[0]
        if len(counts) > 1:
            self.moved_into += step[1:]
        if self.cfg.prototype_gate == "labeled":
            self.update_labeled_accuracy(views.labeled.embedding.detach(), batch["y_l"])

    @torch.no_grad()
    def update_labeled_accuracy(self, z: Tensor, y: Tensor) -> None:
        """EMA of the prototypes' per-class accuracy on the labeled batch (classes present in it; every rank's)."""
        centres, available = self.bank.prototypes()
        pred = prototype_probs(z, centres, available, self.cfg.t_tar).argmax(1)
        stats = torch.zeros(2, len(self.labeled_acc), device=z.device)
        stats[0].index_add_(0, y, (pred == y).float() * available.any().float())
        stats[1].index_add_(0, y, torch.ones_like(y, dtype=torch.float32))
        if world_size() > 1:
            stats = all_reduce_sum(stats)
        acc = stats[0] / stats[1].clamp_min(1)
        m = self.cfg.gate_momentum
        self.labeled_acc.copy_(torch.where(stats[1] > 0, m * self.labeled_acc + (1 - m) * acc, self.labeled_acc))

    def diagnostics(self) -> dict[str, object]:
        out: dict[str, object] = {"proto_class_weight": [float(v) for v in self.class_weight],
                                  "blend_moved_into": [float(v) for v in self.moved_into[0]],
                                  "blend_moved_into_right": [float(v) for v in self.moved_into[1]]}
        if self.cfg.prototype_gate == "labeled":
            out["proto_labeled_acc"] = [float(v) for v in self.labeled_acc]
        return out
