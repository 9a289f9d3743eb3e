"""The algorithm interface, and the shared semi-supervised step that FixMatch and ACR specialise.

An algorithm turns one batch into a loss and a dictionary of tensors to log; the engine around it (optimiser,
EMA, evaluation, checkpoints) is shared. The semi-supervised step is written once here with named hooks:
  embed all views in one pass -> base pseudo-labels (`batch_pseudo_labels`, by default `pseudo_labels`)
  -> components refine them (`refine`)
  -> mask -> per-sample weights (components' `sample_weights`) -> losses (`unlabeled_loss`, base terms,
  components' `extra_losses`)
  -> state updates from detached tensors (`observe`).
Components (SeMi's parts, CDMAD) attach to any base that accepts them; a method's capabilities (evaluation head,
extra heads, whether it reads unlabeled data) come from its `MethodSpec` (`semi.specs`).
Algorithms are nn.Modules so that all their state (buffers) moves with `.to(device)` and lands in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semi.config import Config
from semi.distributed import all_reduce_sum
from semi.models.heads import ModelOutput

if TYPE_CHECKING:
    from semi.specs import MethodSpec


@dataclass
class StepInfo:
    """Where training stands; computed by the engine from the step counter."""

    step: int
    epoch: int
    total_steps: int
    total_epochs: int

    @property
    def progress(self) -> float:
        """epoch / total epochs, as SeMi's prototype weight uses it."""
        return self.epoch / self.total_epochs

    @property
    def steps_per_epoch(self) -> float:
        return self.total_steps / self.total_epochs

    def past(self, epochs: float) -> bool:
        """Whether a warm-up of `epochs` is over: the epoch index exceeds it (the convention of SeMi's E_est, ACR's
        estimation start, CDMAD's --debiasstart and DARP's --warm, all written `epoch > E` in their code)."""
        return self.epoch > epochs


@dataclass
class StepResult:
    loss: Tensor
    losses: dict[str, Tensor]
    """Each loss term (already weighted), for logging and for naming a non-finite term."""
    logs: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class PseudoLabels:
    """Pseudo-labels of the unlabeled batch. `probs` is the distribution the targets come from (it may be
    refined by components); `raw_probs` is the unadjusted softmax of the standard head. Where the two differ,
    the raw confidence also opens the mask (ACR's OR-mask, SeMi's) unless `raw_opens_mask` is False
    (DASO: only the blended pseudo-label's confidence counts, as in its authors' code)."""

    probs: Tensor
    raw_probs: Tensor
    threshold: float
    raw_opens_mask: bool = True
    soft_targets: bool = False
    """The unlabeled loss learns the whole distribution `probs` of each accepted image instead of its argmax
    (CDMAD's released code; a component may switch it on)."""
    notes: dict[str, Any] = field(default_factory=dict, repr=False)
    """What one hook of this step hands to a later hook of the same step, named by its writer: the dual-head
    base's "balanced" targets (ACR's estimate reads them), DASO's "semantic" pseudo-label (its alignment loss),
    SeMi's "prototype_targets" and "oheml_weights" (their diagnostics). It lives and dies with the step, so
    nothing of one step leaks into the next through the modules."""
    class_thresholds: Tensor | None = None
    """[C] a threshold per class, each image judged by its target's (FlexMatch); None: `threshold` for all. Set
    with `set_class_thresholds`."""
    target: Tensor = field(init=False)
    confidence: Tensor = field(init=False)
    mask: Tensor = field(init=False)
    _raw_confident: Tensor | None = field(init=False, default=None, repr=False)
    """max raw_probs >= threshold, computed once (raw_probs never change; components replace `probs`)."""
    _derived: dict = field(init=False, default_factory=dict, repr=False)
    """Tensors derived from the final mask that several parts of a step use, computed once (reset by finalise)."""

    def __post_init__(self) -> None:
        self.finalise()

    def finalise(self) -> None:
        self.confidence, self.target = self.probs.max(dim=1)
        if self.class_thresholds is not None:
            mask = self.confidence >= self.class_thresholds[self.target]
            if self.raw_opens_mask and self.raw_probs is not self.probs:
                raw_conf, raw_target = self.raw_probs.max(dim=1)
                mask = mask | (raw_conf >= self.class_thresholds[raw_target])
            self.mask = mask
            self._derived = {}
            return
        mask = self.confidence >= self.threshold
        if self.raw_probs is self.probs:
            self._raw_confident = mask
        elif self.raw_opens_mask:
            if self._raw_confident is None:
                self._raw_confident = self.raw_probs.max(dim=1).values >= self.threshold
            mask = mask | self._raw_confident
        self.mask = mask
        self._derived = {}

    def _once(self, key: str, make) -> Tensor:
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def mask_float(self) -> Tensor:
        """The mask as 0./1. [n]."""
        return self._once("mask_float", self.mask.float)

    def mask_count(self) -> Tensor:
        """How many images the mask accepts, at least 1 (a denominator; a 0-dim float tensor, no host sync)."""
        return self._once("mask_count", lambda: self.mask_float().sum().clamp_min(1))

    def known_masked_float(self, truth: Tensor) -> Tensor:
        """1. for accepted images whose hidden label is known (truth >= 0), else 0. [n] (diagnostics). `truth`: the
        batch's hidden labels, the same tensor at every call within a step."""
        return self._once("known_masked", lambda: (self.mask & (truth >= 0)).float())

    def set_class_thresholds(self, thresholds: Tensor) -> None:
        """Judge each image by the threshold of its target class from now on (the mask is recomputed)."""
        self.class_thresholds = thresholds
        self.finalise()

    def replace_probs(self, probs: Tensor) -> None:
        self.probs = probs
        self.finalise()


@dataclass
class Views:
    """Model outputs of one step, split by view: labeled, unlabeled weak, and the two strong views."""

    labeled: ModelOutput
    weak: ModelOutput
    strong: tuple[ModelOutput, ModelOutput]
    both_strong: ModelOutput | None = None
    weak_targets: ModelOutput | None = None
    """The weak view's detached outputs that targets are formed from, after the components' `adjust_weak_logits`
    (CDMAD's debiasing); set by the training step before pseudo-labelling. None: `weak` detached."""
    """Both strong views stacked, [2n, ...] (the first view's rows, then the second's): in a training step one
    split of the forward pass's output (`strong` splits it again), so losses and components that treat the two
    views alike (the unlabeled losses, SeMi's bank, feature consistency) run each op once, without a copy.
    None: concatenated on first use (views built by hand)."""

    @classmethod
    def of_batch(cls, out: ModelOutput, b: int, n: int) -> Views:
        """Split one forward pass over [labeled b, weak n, strong n, strong n] rows: each field is split once
        (and the strong part once more), so the backward pass joins each field's gradient in one op."""
        parts = [None if t is None else t.split([b, n, 2 * n]) for t in out]
        labeled, weak, both = (ModelOutput(*(None if p is None else p[i] for p in parts)) for i in range(3))
        halves = [None if t is None else t.split([n, n]) for t in both]
        strong = tuple(ModelOutput(*(None if h is None else h[i] for h in halves)) for i in range(2))
        return cls(labeled, weak, strong, both)

    def targets_source(self) -> ModelOutput:
        """The weak view's outputs for forming targets (detached; adjusted by components where they do)."""
        return self.weak_targets if self.weak_targets is not None else self.weak.map(Tensor.detach)

    def strong_stacked(self) -> ModelOutput:
        if self.both_strong is None:
            s1, s2 = self.strong
            self.both_strong = ModelOutput(*(None if a is None else torch.cat([a, b]) for a, b in zip(s1, s2)))
        return self.both_strong


class Component(nn.Module):
    """A part that attaches to any semi-supervised base (SeMi's bank, prototypes, OHEML, feature consistency).
    Every hook has a neutral default so a component overrides only what it changes."""

    threshold: float | None = None
    """The confidence threshold this component sets for every mask of the step once any warm-up is over (None:
    the base's). Components that set one must agree (checked when the algorithm is built)."""

    def mask_threshold(self, base: float, info: StepInfo) -> float:
        """The threshold of this step's masks, given the base's (only read when `threshold` is set)."""
        return base

    def adjust_weak_logits(self, weak: ModelOutput, views: Views, info: StepInfo,
                           logs: dict[str, Tensor]) -> ModelOutput:
        """Change the detached weak-view outputs before the base forms its pseudo-labels (CDMAD subtracts the
        classifier's bias measured on a pattern-less image). Default: unchanged."""
        return weak

    def bind(self, algorithm: SemiSupervisedAlgorithm) -> None:
        """Called once after all components exist, to find siblings (prototypes need the bank)."""

    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        """See `Algorithm.setup_data`."""

    @torch.no_grad()
    def before_forward(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo,
                       logs: dict[str, Tensor]) -> None:
        """Called at the start of each training step with the training model, before its forward pass (CDMAD
        probes the classifier with a pattern-less image here)."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def refine(self, pl: PseudoLabels, views: Views, info: StepInfo, logs: dict[str, Tensor]) -> None:
        pass

    def sample_weights(self, pl: PseudoLabels, info: StepInfo, logs: dict[str, Tensor]) -> Tensor | None:
        return None

    def extra_losses(self, pl: PseudoLabels, views: Views, info: StepInfo) -> dict[str, Tensor]:
        return {}

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        pass

    def diagnostics(self) -> dict[str, object]:
        """JSON-able state summary, logged at each evaluation."""
        return {}


class Algorithm(nn.Module):
    """Interface of every algorithm. Its capabilities are its spec's (`semi.specs.MethodSpec`): the trainer and
    `semi predict` read them from the algorithm's name alone, before anything is built."""

    spec: ClassVar[MethodSpec]

    @property
    def uses_unlabeled(self) -> bool:
        return self.spec.uses_unlabeled

    @property
    def trains_on_true_labels(self) -> bool:
        """oracle: the labeled set is the labeled + unlabeled pool with true labels."""
        return self.spec.trains_on_true_labels

    @property
    def eval_head(self) -> str:
        return self.spec.eval_head

    @property
    def extra_heads(self) -> int:
        """Heads the model needs beyond g1 and g2 (CPE: 1, its third expert), as `ModelOutput.experts`
        [N, extra_heads, C]. An algorithm that declares extra heads must train all of them (DDP)."""
        return self.spec.extra_heads


    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.register_buffer("log_prior", torch.log(labeled_prior.float().clamp_min(1e-12)))
        # Pseudo-label quality since the last evaluation, from the hidden labels of unlabeled images.
        self.register_buffer("pl_selected", torch.zeros(num_classes))
        self.register_buffer("pl_correct", torch.zeros(num_classes))
        self.register_buffer("pl_true", torch.zeros(num_classes))
        self.register_buffer("pl_seen", torch.zeros(()))
        self.register_buffer("pl_masked", torch.zeros(()))
        self._ema: tuple[nn.Module, ...] = ()

    def attach_ema(self, ema_model: nn.Module) -> None:
        """Called once by the trainer with its EMA model, for algorithms that read it while training (DASO's
        queue of labeled features). Held in a tuple, outside the module tree: the trainer owns, moves and
        checkpoints the EMA model, so it is no part of the algorithm's state_dict."""
        self._ema = (ema_model,)

    @property
    def ema_model(self) -> nn.Module | None:
        """The trainer's EMA model (None until `attach_ema`, e.g. in unit tests that build an algorithm alone)."""
        return self._ema[0] if self._ema else None

    def allocate(self, embed_dim: int) -> None:
        """Called once by `build_algorithm`, before any state is loaded: make the state whose shape depends on
        the model (DASO's queue of embed_dim-wide features). Default: nothing."""

    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        """Called once by `build_algorithm`, before any state is loaded or moved to a device, with the size of the
        unlabeled pool (a batch's `u_pos` indexes it: 0 .. pool_size - 1) and of the labeled training set.
        Algorithms with per-image state register its buffers here (DARP: the latest prediction and refined
        pseudo-label of every unlabeled image), so that checkpoints carry it like any other state."""

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> StepResult:
        raise NotImplementedError

    def diagnostics(self) -> dict[str, object]:
        return {}

    observes_validation = False
    """True for algorithms that learn from the validation split's predictions (`observe_validation`)."""

    def observe_validation(self, soft_confusion: Tensor, unlabeled_sums: Tensor, info: StepInfo) -> None:
        """Called after each evaluation of a run with a validation split, when `observes_validation`, with the
        evaluation model's standard-head softmax summed over the validation images of each true class, as columns
        ([C, C], column y = the sum over images of class y), and over the unlabeled set's images that are not
        labeled ([C]); both summed over ranks. Never the test set. Default: nothing."""

    def truth_diagnostics(self, unlabeled_true_counts: np.ndarray) -> dict[str, object]:
        """Diagnostics that compare the algorithm's state with the unlabeled pool's hidden class counts (all zero
        when unknown), logged at each evaluation; never used in training. Default: none."""
        return {}

    def labeled_losses(self, out: ModelOutput, y: Tensor) -> dict[str, Tensor]:
        """L_x, plus the balanced head's logit-adjusted L_x^b when the algorithm trains that head."""
        losses = {"sup": F.cross_entropy(out.logits, y)}
        if self.trains_balanced_head:
            losses["sup_bal"] = F.cross_entropy(out.logits_balanced + self.balanced_tau * self.log_prior, y)
        return losses

    @property
    def trains_balanced_head(self) -> bool:
        return self.cfg.algorithm.balanced_loss

    @property
    def balanced_tau(self) -> float:
        """Strength of the balanced head's logit adjustment (ACR's tau2)."""
        return self.cfg.algorithm.tau2

    @torch.no_grad()
    def record_pseudo_labels(self, pl: PseudoLabels, true: Tensor, logs: dict[str, Tensor]) -> None:
        """Accumulate per-class precision/recall counts of the masked pseudo-labels, and log the step's mask rate
        and pseudo-label accuracy (masked images) and the hard (rejected) images' accuracy; no host sync."""
        known, hit = true >= 0, pl.target == true  # hidden label -1 (unknown) never equals a pseudo-label
        selected = pl.known_masked_float(true)
        self.pl_selected.index_add_(0, pl.target, selected)
        self.pl_correct.index_add_(0, pl.target, selected * hit)
        self.pl_true.index_add_(0, true.clamp_min(0), known.float())
        self.pl_seen += known.sum()
        self.pl_masked += selected.sum()
        logs["mask_rate"] = pl.mask_float().mean()
        logs["pseudo_label_acc"] = (hit & pl.mask).sum() / pl.mask_count()
        log_hits(logs, "hard_acc", hit, ~pl.mask & known)

    def pop_pseudo_label_stats(self) -> dict[str, list[float] | float] | None:
        """Precision / recall per class since the last call, then reset the counters."""
        for buf in (self.pl_selected, self.pl_correct, self.pl_true, self.pl_seen, self.pl_masked):
            all_reduce_sum(buf)  # every rank's unlabeled images count
        if self.pl_seen.item() == 0:
            return None
        sel, cor, tru = self.pl_selected.cpu(), self.pl_correct.cpu(), self.pl_true.cpu()
        nan = torch.tensor(float("nan"))
        precision = torch.where(sel > 0, cor / sel.clamp_min(1), nan)
        recall = torch.where(tru > 0, cor / tru.clamp_min(1), nan)
        stats = {
            "pseudo_label_precision": [float(v) for v in precision],
            "pseudo_label_recall": [float(v) for v in recall],
            "pseudo_label_accuracy": float(cor.sum() / sel.sum().clamp_min(1)),
            "mask_rate_known": float(self.pl_masked / self.pl_seen),
            "pseudo_label_counts": [int(v) for v in sel],
        }
        for buf in (self.pl_selected, self.pl_correct, self.pl_true, self.pl_seen, self.pl_masked):
            buf.zero_()
        return stats


def log_hits(logs: dict[str, Tensor], name: str | tuple[str, ...], hit: Tensor, among: Tensor) -> None:
    """Log `<name>_hits` / `<name>_total` counts (device tensors, no sync); each evaluation window reports their
    ratio as `window_<name>` (e.g. the hidden-label accuracy of the rejected, hard samples' pseudo-labels).
    Several names at once: `hit` stacks one row per name ([V, n]) over the same `among` (one pass, fewer ops).
    `among` may be bool or 0./1. float (`PseudoLabels.known_masked_float`)."""
    hits = (hit * among).sum(dim=-1, dtype=torch.float32)
    total = among.sum(dtype=torch.float32)
    for i, one in enumerate((name,) if isinstance(name, str) else name):
        logs[f"{one}_hits"] = hits if isinstance(name, str) else hits[i]
        logs[f"{one}_total"] = total


def strong_views_ce(both_logits: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """mean over both strong views and the whole batch of weights_b * CE(logits, target_b) (rejected samples count
    as zeros), from the views' stacked logits [2n, C] (`Views.both_strong`) and the weak view's target and weights
    [n]: one cross-entropy over 2n rows, equal to the mean of the two views' losses."""
    ce = F.cross_entropy(both_logits, torch.cat([target, target]), reduction="none")
    return (ce.view(2, -1) * weights).mean()


def strong_views_soft_ce(both_logits: Tensor, probs: Tensor, weights: Tensor) -> Tensor:
    """As `strong_views_ce` against soft targets: mean over both strong views and the batch of
    weights_b * (-sum_k probs_bk log softmax(logits)_bk)."""
    ce = -(torch.cat([probs, probs]) * torch.log_softmax(both_logits.float(), dim=1)).sum(1)
    return (ce.view(2, -1) * weights).mean()


class SemiSupervisedAlgorithm(Algorithm):
    """The shared FixMatch-style step. Subclasses define the base pseudo-labels and any extra base terms."""

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list[Component]):
        super().__init__(cfg, num_classes, labeled_prior)
        self.components = nn.ModuleList(components)
        # The mask policy: the base's threshold, unless attached components set one (SeMi lowers every mask of
        # the step); components that set different thresholds are refused rather than one silently winning.
        self._threshold_setters = [c for c in components if c.threshold is not None]
        if len({c.threshold for c in self._threshold_setters}) > 1:
            raise ValueError("attached components set different mask thresholds: " + ", ".join(
                f"{type(c).__name__} {c.threshold}" for c in self._threshold_setters))
        self.threshold = self._threshold_setters[0].threshold if self._threshold_setters else cfg.algorithm.threshold
        for comp in components:
            comp.bind(self)

    def threshold_for(self, info: StepInfo) -> float:
        """tau of every mask of this step (a Python float: no sync): the base's, or what the attached components set
        (SeMi: semi.threshold, with semi.threshold_schedule=after_warmup only after its warm-up)."""
        if not self._threshold_setters:
            return self.threshold
        return self._threshold_setters[0].mask_threshold(self.cfg.algorithm.threshold, info)


    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        for comp in self.components:
            comp.setup_data(pool_size, num_labeled)

    def component(self, kind: type) -> Component | None:
        return next((c for c in self.components if isinstance(c, kind)), None)

    def on_epoch_start(self, epoch: int) -> None:
        for comp in self.components:
            comp.on_epoch_start(epoch)

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        raise NotImplementedError

    def batch_pseudo_labels(self, weak: ModelOutput, batch: dict[str, Tensor], info: StepInfo,
                            logs: dict[str, Tensor]) -> PseudoLabels:
        """The base's pseudo-labels of this step (detached weak-view outputs; no gradient). Default:
        `pseudo_labels`, a function of the predictions alone. A base with per-image state over the unlabeled pool
        overrides this to read the batch (DARP: store the predictions at rows `u_pos`, periodically solve for
        refined labels of the whole pool, return the refined rows)."""
        return self.pseudo_labels(weak, info)

    def unlabeled_loss(self, views: Views, pl: PseudoLabels, weights: Tensor) -> Tensor:
        """L_u of the standard head on the two strong views, before lambda_u: the mean over the whole batch of
        weights * CE (weights = mask times the components' sample weights), averaged over the views; against the
        hard target, or with `pl.soft_targets` the whole distribution. A base that normalises differently (CPE:
        over the masked samples) overrides this."""
        both = views.strong_stacked().logits
        if pl.soft_targets:
            return strong_views_soft_ce(both, pl.probs, weights)
        return strong_views_ce(both, pl.target, weights)

    def base_unlabeled_losses(self, views: Views, pl: PseudoLabels, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> StepResult:
        x_l, y_l = batch["x_l"], batch["y_l"]
        u_w, u_s1, u_s2 = batch["u_w"], batch["u_s1"], batch["u_s2"]
        b, n = len(x_l), len(u_w)
        logs: dict[str, Tensor] = {}
        self.before_forward(model, batch, info)
        for comp in self.components:
            comp.before_forward(model, batch, info, logs)
        # One forward pass over every view: batch-norm statistics over the whole batch, as FixMatch's and SeMi's code.
        # `x_all`: the four views already stacked by the trainer (Trainer.to_device); batches built by hand lack it
        x_all = batch.get("x_all")
        views = Views.of_batch(model(x_all if x_all is not None else torch.cat([x_l, u_w, u_s1, u_s2])), b, n)
        lab, weak = views.labeled, views.weak

        losses = self.labeled_losses(lab, y_l)
        with torch.no_grad():
            pl, weights = self.components_targets(
                weak.map(Tensor.detach), views, lambda t: self.batch_pseudo_labels(t, batch, info, logs), info, logs)
        losses["unsup"] = self.cfg.algorithm.lambda_u * self.unlabeled_loss(views, pl, weights)
        losses.update(self.base_unlabeled_losses(views, pl, batch, info, logs))
        for comp in self.components:
            losses.update(comp.extra_losses(pl, views, info))

        with torch.no_grad():
            self.record_pseudo_labels(pl, batch["u_y"], logs)
            self.observe(pl, views, batch, info, logs)
            for comp in self.components:
                comp.observe(pl, views, batch, info, logs)
        loss = torch.stack(list(losses.values())).sum()
        return StepResult(loss, losses, logs)

    def components_targets(self, weak: ModelOutput, views: Views | None,
                           pseudo_labels: Callable[[ModelOutput], PseudoLabels], info: StepInfo,
                           logs: dict[str, Tensor]) -> tuple[PseudoLabels, Tensor]:
        """The step's targets with the components' hooks around the base's `pseudo_labels` (called with the
        adjusted weak outputs): components adjust the detached weak outputs (recorded as `views.weak_targets`),
        refine the pseudo-labels, then weight the samples. Returns (pseudo-labels, mask x sample weights [n]).
        Call without gradient."""
        for comp in self.components:
            weak = comp.adjust_weak_logits(weak, views, info, logs)
        if views is not None:
            views.weak_targets = weak
        pl = pseudo_labels(weak)
        for comp in self.components:
            comp.refine(pl, views, info, logs)
        weights = pl.mask_float()
        for comp in self.components:
            w = comp.sample_weights(pl, info, logs)
            if w is not None:
                weights = weights * w
        return pl, weights

    def before_forward(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo) -> None:
        """Base work at the start of a step, before the forward pass (DASO queues the labeled features here)."""

    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        """Base-algorithm state updates (ACR's distribution estimate)."""

    def diagnostics(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for comp in self.components:
            out.update(comp.diagnostics())
        return out
