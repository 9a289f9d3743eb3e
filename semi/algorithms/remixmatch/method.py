"""ReMixMatch (Berthelot et al., "ReMixMatch: Semi-Supervised Learning with Distribution Alignment and Augmentation
Anchoring", ICLR 2020), written from its authors' released code (google-research/remixmatch: the model of
remixmatch_no_cta.py as cta/cta_remixmatch.py runs it, which the paper's scripts use: the guess from the first,
weak view; strong views of the labeled and unlabeled images) and compared with the PyTorch ports the
class-imbalanced papers ran (USB's remixmatch.py, DASO's lib/algorithm/remixmatch.py, DARP's and ABC's code).

One step:
1. The guess: the weak view's softmax p (no gradient), aligned to the labeled class distribution,
   p~ = normalise(p * p_data / p_model) with p_model the mean guess of the last 128 batches (this batch's
   included), then sharpened, q = normalise(p~^(1/T)).
2. MixUp of every view of the step, labeled (one-hot labels) and unlabeled (weak and both strong, each with q):
   one lambda ~ Beta(alpha, alpha) per step, lambda = max(lambda, 1 - lambda), one permutation of all rows.
3. Losses: soft cross-entropy on the mixed labeled rows (L_x) and on the mixed unlabeled rows (L_u, weight
   w_match); soft cross-entropy of the first strong view before MixUp against q (w_kl; both ramped up over the
   first 1/64 of training); the rotation loss: the first strong view turned by a random multiple of 90 degrees, a
   4-way head on its embedding (w_rot, not ramped).

Where we depart from the authors' code, and why:
- Two strong views (K = 2), as USB's and DASO's ports; the paper's runs use K = 8, our loader makes two.
- One lambda per step and a random rotation per image, as every PyTorch port; the authors draw lambda per image
  and turn fixed quarters of the batch.
- The labeled images get the weak view (USB, DASO); the authors' CTA script, DARP and ABC augment them strongly,
  and our strong views are RandAugment, not CTAugment. Not reproduced either: remixmatch_no_cta.py's own defaults
  (weak views only, and each view's guess taken from the next view, its `redux='swap'`).
- p_model averages the last 128 batch guesses including this one (DASO's, DARP's and ABC's queue); the authors'
  buffer starts uniform and takes the batch after the step; USB keeps an EMA instead.
- Forward passes: the weak view alone, without gradient and leaving BatchNorm's running statistics untouched (as
  USB); then one pass with gradient over the mixed batch, the first strong view and its rotation (the ports run
  the mixed batch interleaved in chunks and the others separately; one pass normalises over all of them, and it
  alone moves the running statistics). Passes with gradient must be one for DistributedDataParallel.

With components attached (`remixmatch+semi`, ours): they see the step as on any base. Their views come from a
second pass without gradient over the labeled and strong views (for `refine`: SeMi's prototypes query the strong
view's embedding before the guess is mixed in; a forward pass more than ReMixMatch alone) and from the pass with
gradient (the second strong view joins it, for SeMi's feature consistency and bank). Their mask and per-image
weights w weight the pre-MixUp loss, and each mixed row carries the mix of its two sources' weights (labeled rows
weigh 1): lambda * w_i + (1 - lambda) * w_j. Alone, ReMixMatch masks nothing (its threshold is 0), so every weight
is 1 and the step is ReMixMatch's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, StepResult, Views
from semi.algorithms.remixmatch import SPEC
from semi.config import Config
from semi.distributed import all_reduce_sum, rank, world_size
from semi.errors import SemiError
from semi.models.heads import ModelOutput
from semi.models.norm_stats import running_stats_kept
from semi.seeds import mix_seed

_REMIX_STREAM = 0x4E31
"""Mixed into the seeds of MixUp's and the rotations' draws so their streams differ from the loader's and ABC's."""


def align_and_sharpen(p: Tensor, p_data: Tensor | None, p_model: Tensor | None, temperature: float) -> Tensor:
    """The guess q [n, C] from the softmax p [n, C]: p * (1e-6 + p_data) / (1e-6 + p_model) renormalised per row
    (skipped when p_data is None), then p^(1/T) renormalised (the authors' guess_label, their 1e-6 included)."""
    if p_data is not None:
        p = p * ((1e-6 + p_data) / (1e-6 + p_model))
        p = p / p.sum(dim=1, keepdim=True)
    q = p.pow(1.0 / temperature)
    return q / q.sum(dim=1, keepdim=True)


def mixup(x: Tensor, targets: Tensor, weights: Tensor, lam: float, perm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """MixUp of every row with row perm[i]: lam * a + (1 - lam) * a[perm] for the inputs, the soft targets and the
    per-row loss weights."""
    def mix(a: Tensor) -> Tensor:
        return torch.lerp(a[perm], a, lam)  # a[perm] + lam * (a - a[perm])
    return mix(x), mix(targets), mix(weights)


def rotate_quarter_turns(x: Tensor, turns: Tensor) -> Tensor:
    """Image i of x [n, C, H, W] (H = W) turned by turns[i] * 90 degrees counter-clockwise (torch.rot90)."""
    rotations = torch.stack([x.rot90(k, (2, 3)) for k in range(4)])  # [4, n, C, H, W]
    return rotations[turns, torch.arange(len(x), device=x.device)]


def soft_ce(logits: Tensor, targets: Tensor) -> Tensor:
    """[n] -sum_k targets_k log softmax(logits)_k, in float32."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


def split_rows(out: ModelOutput, rows: dict[str, int]) -> dict[str, ModelOutput]:
    """A forward pass's outputs split into named consecutive row blocks (every field split once)."""
    fields = [None if t is None else t.split(list(rows.values())) for t in out]
    return {name: ModelOutput(*(None if f is None else f[i] for f in fields)) for i, name in enumerate(rows)}


def ramp(step: int, total_steps: int, fraction: float) -> float:
    """The unlabeled losses' linear warm-up: min(1, step / (fraction * total_steps)); 1 when fraction is 0."""
    return 1.0 if fraction <= 0 else min(1.0, step / (fraction * total_steps))


class ReMixMatch(SemiSupervisedAlgorithm):
    spec = SPEC

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        r = cfg.remixmatch
        # p_model: the last `alignment_batches` batch-mean guesses (rows in arrival order modulo the size) and how
        # many batches have arrived; p_data: the labeled class distribution
        self.register_buffer("guess_means", torch.zeros(r.alignment_batches, num_classes))
        self.register_buffer("guess_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("p_data", labeled_prior.float() / labeled_prior.float().sum())

    def threshold_for(self, info: StepInfo) -> float:
        """ReMixMatch learns every unlabeled image (threshold 0); attached components may set one (SeMi's 0.7)."""
        return super().threshold_for(info) if self._threshold_setters else 0.0

    def step_generator(self, info: StepInfo, device: torch.device) -> torch.Generator:
        """The permutation's and rotations' generator: a pure function of (seed, rank, step), so resume is exact."""
        return torch.Generator(device=device).manual_seed(mix_seed(self.cfg.train.seed, _REMIX_STREAM, rank(),
                                                                   info.step))

    def mixup_lambda(self, info: StepInfo) -> float:
        """max(lam, 1 - lam), lam ~ Beta(alpha, alpha), drawn on the host from (seed, rank, step): a Python float,
        so no device work and no sync."""
        alpha = self.cfg.remixmatch.mixup_alpha
        lam = float(np.random.default_rng(mix_seed(self.cfg.train.seed, _REMIX_STREAM, 1, rank(), info.step))
                    .beta(alpha, alpha))
        return max(lam, 1.0 - lam)

    @torch.no_grad()
    def p_model(self, p: Tensor) -> Tensor:
        """Add this batch's mean guess (over every rank) to the window and return the window's mean [C]."""
        size = len(self.guess_means)
        mean = all_reduce_sum(p.float().mean(dim=0)) / world_size()
        self.guess_means.index_copy_(0, (self.guess_count % size).view(1), mean.view(1, -1))
        self.guess_count += 1
        return self.guess_means.sum(dim=0) / self.guess_count.clamp(max=size)

    def guess(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        """PseudoLabels with probs = q (the aligned, sharpened guess), raw_probs = p, soft targets, and the mask of
        `threshold_for` judged on q (the target it learns)."""
        r = self.cfg.remixmatch
        p = torch.softmax(weak.logits.float(), dim=1)
        aligned = r.alignment == "labeled_prior"
        q = align_and_sharpen(p, self.p_data if aligned else None, self.p_model(p) if aligned else None,
                              r.sharpen_temperature)
        return PseudoLabels(q, p, self.threshold_for(info), raw_opens_mask=False, soft_targets=True)

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> StepResult:
        r = self.cfg.remixmatch
        x_l, y_l = batch["x_l"], batch["y_l"]
        u_w, u_s1, u_s2 = batch["u_w"], batch["u_s1"], batch["u_s2"]
        b, n = len(x_l), len(u_w)
        logs: dict[str, Tensor] = {}
        for comp in self.components:
            comp.before_forward(model, batch, info, logs)

        # 1. passes without gradient (running statistics untouched): the weak view alone, for the guess; with
        # components, the labeled and strong views too, for their refinement
        with torch.no_grad(), running_stats_kept(model):
            weak = model(u_w).map(Tensor.detach)
            looks = split_rows(model(torch.cat([x_l, u_s1, u_s2])), {"labeled": b, "s1": n, "s2": n}) \
                if self.components else None
        with torch.no_grad():
            looking = None if looks is None else Views(looks["labeled"], weak, (looks["s1"], looks["s2"]))
            pl, weights = self.components_targets(weak, looking, lambda t: self.guess(t, info), info, logs)
            gen = self.step_generator(info, u_w.device)
            targets = torch.cat([F.one_hot(y_l, self.num_classes).float(), pl.probs, pl.probs, pl.probs])
            row_weights = torch.cat([weights.new_ones(b), weights, weights, weights])
            perm = torch.randperm(b + 3 * n, generator=gen, device=u_w.device)
            x_all = batch.get("x_all")  # the four views already stacked by the trainer, in this order
            x_all = x_all if x_all is not None else torch.cat([x_l, u_w, u_s1, u_s2])
            mixed_x, mixed_y, mixed_w = mixup(x_all, targets, row_weights, self.mixup_lambda(info), perm)
            turns = torch.randint(0, 4, (n,), generator=gen, device=u_w.device) if r.rotation_weight > 0 else None

        # 2. one pass with gradient: the mixed rows, the first strong view, its rotation (and with components the
        # second strong view)
        parts = [mixed_x, u_s1]
        if turns is not None:
            if u_s1.dim() != 4 or u_s1.shape[-1] != u_s1.shape[-2]:  # checked here: image sizes come with the data
                raise SemiError(f"remixmatch: the rotation loss needs square images, got inputs of shape "
                                f"{tuple(u_s1.shape[1:])}; set remixmatch.rotation_weight=0")
            parts.append(rotate_quarter_turns(u_s1, turns))
        if self.components:
            parts.append(u_s2)
        rows = {"mix_l": b, "mix_u": 3 * n, "s1": n, **({"rot": n} if turns is not None else {}),
                **({"s2": n} if self.components else {})}
        x = torch.cat(parts)
        if self.cfg.train.channels_last and x.dim() == 4:  # the rotated rows would leave the batch contiguous
            x = x.contiguous(memory_format=torch.channels_last)
        out = split_rows(model(x), rows)
        warm = ramp(info.step, info.total_steps, r.warmup_fraction)
        losses = {
            "sup": (soft_ce(out["mix_l"].logits, mixed_y[:b]) * mixed_w[:b]).mean(),
            "unsup": warm * r.match_weight * (soft_ce(out["mix_u"].logits, mixed_y[b:]) * mixed_w[b:]).mean(),
            "kl": warm * r.kl_weight * (soft_ce(out["s1"].logits, pl.probs) * weights).mean(),
        }
        if turns is not None:
            rot_logits = out["rot"].rotation
            losses["rot"] = r.rotation_weight * F.cross_entropy(rot_logits.float(), turns)
            with torch.no_grad():
                logs["rotation_acc"] = (rot_logits.argmax(1) == turns).float().mean()

        views = None
        if self.components:
            views = Views(looks["labeled"], weak, (out["s1"], out["s2"]))
            views.weak_targets = looking.weak_targets
            for comp in self.components:
                losses.update(comp.extra_losses(pl, views, info))
        with torch.no_grad():
            self.record_pseudo_labels(pl, batch["u_y"], logs)
            for comp in self.components:
                comp.observe(pl, views, batch, info, logs)
        loss = torch.stack(list(losses.values())).sum()
        return StepResult(loss, losses, logs)

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        if self.cfg.remixmatch.alignment == "labeled_prior":
            filled = self.guess_means[: int(self.guess_count.clamp(max=len(self.guess_means)))]
            if len(filled):
                out["remixmatch_p_model"] = [float(v) for v in filled.mean(0)]
        return out
