"""DARP (Kim et al., "Distribution Aligning Refinery of Pseudo-label for Imbalanced Semi-supervised Learning",
NeurIPS 2020) on FixMatch, as its authors' released code (bbuing9/DARP, `train_fix` and `common.py`) runs it.

The algorithm keeps the latest soft prediction of every image of the unlabeled pool (rows `u_pos`). After a
warm-up, every `darp.solve_every` steps of an epoch it refines the pseudo-labels of the WHOLE pool at once: a
noise-removal rescaling (`remove_noise`, the authors' `estimate_pseudo`), then the distribution-aligning convex
problem

    min_M  sum_n w_n KL(M_n || P_n)   s.t.  sum_k M_nk = 1 (every image),  sum_n M_nk = c_k (every class),

with w_n = 1 / entropy(P_n) and c the target class counts, solved by coordinate ascent on its dual
(`solve_darp`, the authors' `opt_solver`): M_nk = P_nk / e * x_n * exp(-nu_k / w_n). The loss of a step uses the
refined rows of its images from the latest solve (FixMatch's hard target and confidence mask on them); before the
warm-up ends it is FixMatch. Everything is vectorised over images and classes (the authors' code loops over
classes and calls scipy once per class); under DDP the predictions of every rank are gathered, so each rank holds
the same pool and solves the same problem.

Where our code differs from the authors': the OR-mask is off (as theirs); the per-class root finder is their
secant method (scipy's `newton` without a derivative) vectorised with the same steps and stopping rule, except
that a class that does not converge keeps its last iterate where scipy raises (their run would stop);
`darp.root_finder=newton` is Newton's method with the analytic derivative, as the paper describes it.

The target counts: the labeled prior times the pool (their default without `--est`), uniform, a given
distribution of the unlabeled images (`darp.target=given`: a file, as their `--est` reads one) plus the labeled
images' counts, or that distribution estimated in the run (`darp.target=estimated`). Their estimate
(`train_base_estim.py`, `estimate_q_y`) is black-box shift estimation: the validation confusion of soft predictions,
columns normalised, inverted and applied to the summed soft predictions of the unlabeled images; an estimate is
kept when it has no negative entry and the confusion's condition number is below --th_cond (100), and the kept
ones are averaged. They run it in a separate supervised training (one estimate per epoch, one model for both
parts); here it runs during DARP's own warm-up, at each evaluation, with the evaluation (EMA) model for both: its
soft confusion on the validation split and its summed softmax over the unlabeled images that are not labeled. The
target is fixed from the average when DARP starts (the labeled prior if no estimate was kept, reported as
`darp_estimates_kept` = 0).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from semi.algorithms.base import PseudoLabels, StepInfo
from semi.algorithms.darp import SPEC, DarpConfig
from semi.algorithms.fixmatch import FixMatch
from semi.config import Config
from semi.distributed import all_gather_cat
from semi.models.heads import ModelOutput


def remove_noise(probs: Tensor, target: Tensor, alpha: float) -> Tensor:
    """The authors' `estimate_pseudo` and the rescaling after it. Each class k keeps its floor(alpha * c_k) most
    probable images (by P_nk; every other entry drops to ~0), scaled by c_k / (their summed probability), then rows
    are renormalised (with the authors' +1e-6). probs [N, K], target [K] (counts) -> [N, K]."""
    n = probs.shape[0]
    keep = torch.floor(alpha * target).clamp(max=n)  # the authors' int(alpha * q_y[k]); float32 like theirs
    sorted_p, order = probs.sort(dim=0, descending=True, stable=True)
    top = torch.arange(n, device=probs.device, dtype=keep.dtype)[:, None] < keep[None, :]  # in sorted order
    selected = torch.zeros_like(top).scatter_(0, order, top)
    kept_mass = (sorted_p * top).sum(0)
    scale = selected * ((target + 1e-6) / (kept_mass + 1e-6))
    scaled = probs * scale + 1e-6
    return scaled / scaled.sum(1, keepdim=True)


def _dual_roots(b: Tensor, w: Tensor, c: Tensor, start: Tensor, cfg: DarpConfig) -> Tensor:
    """For every class k the root nu_k of g_k(nu) = sum_n b_nk exp(-nu / w_n) - c_k, from `start`.

    secant: scipy.optimize.newton(f, x0) without fprime, step for step (the second point x0 * (1 + 1e-4) +- 1e-4,
    the swap so that the second has the smaller |g|, the same update formulas, stop when |p - p1| <= tolerance or
    when g repeats, then the midpoint), for all classes at once; a class that has stopped is frozen. newton: the
    analytic derivative, to |step| <= 1e-10. On a GPU a fixed number of vectorised steps (no host sync); on a CPU
    the secant stops early once every class has stopped (the same result)."""

    def g(nu: Tensor) -> Tensor:
        return (b * torch.exp(-nu[None, :] / w[:, None])).sum(0) - c

    if cfg.root_finder == "newton":
        nu = start
        for _ in range(cfg.root_iterations):
            e = b * torch.exp(-nu[None, :] / w[:, None])
            step = (e.sum(0) - c) / -(e / w[:, None]).sum(0)
            nu = nu - torch.where(step.abs() > 1e-10, step, torch.zeros_like(step))
        return nu
    eps = 1e-4
    p0 = start
    p1 = p0 * (1 + eps)
    p1 = p1 + torch.where(p1 >= 0, eps, -eps)
    q0, q1 = g(p0), g(p1)
    swap = q1.abs() < q0.abs()
    p0, p1, q0, q1 = torch.where(swap, p1, p0), torch.where(swap, p0, p1), torch.where(swap, q1, q0), \
        torch.where(swap, q0, q1)
    result, done = p1, torch.zeros_like(p1, dtype=torch.bool)
    for _ in range(cfg.root_iterations):
        flat = q1 == q0
        p = torch.where(q1.abs() > q0.abs(), (-q0 / q1 * p1 + p0) / (1 - q0 / q1),
                        (-q1 / q0 * p0 + p1) / (1 - q1 / q0))
        p = torch.where(flat, (p1 + p0) / 2, p)
        result = torch.where(done, result, p)  # a stopped class keeps its root; the others the latest iterate
        done = done | flat | ((p - p1).abs() <= cfg.tolerance)
        if done.device.type == "cpu" and bool(done.all()):
            break  # the rest would change nothing; on a CPU the check costs no device sync (on a GPU it would)
        p0, q0, p1 = torch.where(done, p0, p1), torch.where(done, q0, q1), torch.where(done, p1, p)
        q1 = torch.where(done, q1, g(p1))
    return result


def solve_darp(probs: Tensor, target: Tensor, cfg: DarpConfig) -> Tensor:
    """The authors' `opt_solver`: refined labels M [N, K] with rows summing to 1 and columns to ~target.
    The weights and P / e are formed in float32 as theirs are (their probabilities are float32 tensors), the
    iterations in float64 (theirs run in NumPy float64)."""
    probs = probs.float()
    entropy = (-probs * torch.log(probs + 1e-6)).sum(1)
    w = (1 / entropy).double()
    a = (probs / math.e).double()
    c = target.double()
    k = probs.shape[1]
    # the authors start the scaling with nu = 1 but each root search from 0 (their prev_Y)
    y = torch.exp(-1.0 / w)[:, None].expand(-1, k)
    nu = torch.zeros(k, dtype=torch.float64, device=probs.device)
    for _ in range(cfg.iterations):
        x = 1 / (a * y).sum(1)
        nu = _dual_roots(a * x[:, None], w, c, nu, cfg)
        y = torch.exp(-nu[None, :] / w[:, None])
    x = 1 / (a * y).sum(1)
    return (a * x[:, None] * y).float()


def bbse_estimate(soft_confusion: Tensor, unlabeled_sums: Tensor) -> tuple[Tensor, float]:
    """The authors' `estimate_q_y`: (inverse of the column-normalised confusion) @ (summed soft predictions of the
    unlabeled images), and the confusion's 2-norm condition number. soft_confusion [C, C]: column y sums the
    softmax over validation images of class y. Float64 throughout (theirs: float32 in, numpy's inv)."""
    conf = soft_confusion.double()
    conf = conf / conf.sum(0, keepdim=True)
    cond = float(torch.linalg.cond(conf))
    return torch.linalg.inv(conf) @ unlabeled_sums.double(), cond


def read_target_file(path: str | Path, num_classes: int) -> Tensor:
    """A given unlabeled class distribution: one non-negative weight per class in a .npy or text file."""
    import numpy as np

    from semi.errors import ConfigError

    path = Path(path).expanduser()
    try:
        values = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"darp.target_file: cannot read {path}: {exc}"]) from None
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != num_classes or not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
        raise ConfigError([f"darp.target_file: {path} must hold {num_classes} non-negative weights (one per class) "
                           f"with a positive sum, got {values.tolist()[:12]}"])
    return torch.from_numpy(values / values.sum())


def refine_pseudo_labels(probs: Tensor, target: Tensor, cfg: DarpConfig) -> Tensor:
    """One DARP solve over the pool: noise removal, then the distribution-aligning problem."""
    return solve_darp(remove_noise(probs.float(), target.float(), cfg.alpha), target, cfg)


class DARP(FixMatch):
    """FixMatch whose pseudo-labels, after the warm-up, are DARP's refined labels of the whole unlabeled pool."""

    spec = SPEC
    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        self._labeled_prior = labeled_prior.float() / labeled_prior.sum()
        self.register_buffer("solves", torch.zeros((), dtype=torch.long))

    def setup_data(self, pool_size: int, num_labeled: int) -> None:
        super().setup_data(pool_size, num_labeled)
        c, target = self.num_classes, self.cfg.darp.target
        # The authors start both from uniform rows (pseudo_orig, pseudo_refine).
        self.register_buffer("predictions", torch.full((pool_size, c), 1.0 / c))
        self.register_buffer("refined", torch.full((pool_size, c), 1.0 / c))
        share = torch.full((c,), 1.0 / c) if target == "uniform" else self._labeled_prior
        self.register_buffer("target_counts", (share * pool_size).float())
        in_pool = self.cfg.data.labeled_in_pool  # the pool holds every labeled image too (the default)
        # a buffer (not saved): it follows the module to the device, so the target update needs no copy per step
        self.register_buffer("_labeled_counts", self._labeled_prior.double() * (num_labeled if in_pool else 0),
                             persistent=False)
        self._unlabeled_images = pool_size - (num_labeled if in_pool else 0)
        if target == "given":
            path = Path(self.cfg.darp.target_file).expanduser()
            if path.is_file():  # a new run's config checked it exists; a run resumed or evaluated from a
                # checkpoint gets its target counts back from the checkpoint
                self.target_counts.copy_(self._counts_for(read_target_file(path, c)))
        if target == "estimated":
            self.register_buffer("estimate_sum", torch.zeros(c, dtype=torch.float64))
            self.register_buffer("estimates_kept", torch.zeros((), dtype=torch.long))
            self.register_buffer("estimates_made", torch.zeros((), dtype=torch.long))
            self.register_buffer("target_fixed", torch.zeros((), dtype=torch.bool))

    def _counts_for(self, unlabeled_distribution: Tensor) -> Tensor:
        """The authors' --est target: the unlabeled images' share of each class times their number, plus the
        labeled images (which the pool holds as well)."""
        d = unlabeled_distribution.double()
        return (self._unlabeled_images * d / d.sum() + self._labeled_counts).float()

    @property
    def observes_validation(self) -> bool:  # type: ignore[override]
        return self.cfg.darp.target == "estimated" and not bool(self.target_fixed)

    @torch.no_grad()
    def observe_validation(self, soft_confusion: Tensor, unlabeled_sums: Tensor, info: StepInfo) -> None:
        """During the warm-up: one estimate of the unlabeled images' distribution, kept (summed) when valid."""
        if self.active(info):
            return
        device = self.estimate_sum.device
        estimate, cond = bbse_estimate(soft_confusion.to(device), unlabeled_sums.to(device))
        self.estimates_made += 1
        if bool((estimate >= 0).all()) and cond < self.cfg.darp.estimate_max_cond:
            self.estimate_sum += estimate
            self.estimates_kept += 1

    def _fix_estimated_target(self) -> None:
        """At the first active step (on the device, no sync): the average kept estimate becomes the target; with
        none kept the labeled prior set in setup_data stays."""
        estimated = self._counts_for(self.estimate_sum / self.estimates_kept.clamp_min(1))
        use = ~self.target_fixed & (self.estimates_kept > 0)
        self.target_counts.copy_(torch.where(use, estimated, self.target_counts))
        self.target_fixed.fill_(True)

    def active(self, info: StepInfo) -> bool:
        # `epoch > args.warm` in the authors' code, with warm a share of training here (our runs vary in length)
        return info.past(self.cfg.darp.warmup * info.total_epochs)

    def solve_due(self, info: StepInfo) -> bool:
        # the authors' `batch_idx % num_iter == 0`, batch_idx counting the steps of the current epoch
        steps_per_epoch = info.total_steps // info.total_epochs
        return (info.step - info.epoch * steps_per_epoch) % self.cfg.darp.solve_every == 0

    @torch.no_grad()
    def solve(self) -> None:
        """Refine the labels of the whole pool from the stored predictions (for tests and tools too)."""
        self.refined.copy_(refine_pseudo_labels(self.predictions, self.target_counts, self.cfg.darp))
        self.solves += 1

    def batch_pseudo_labels(self, weak: ModelOutput, batch: dict[str, Tensor], info: StepInfo,
                            logs: dict[str, Tensor]) -> PseudoLabels:
        current = self.pseudo_labels(weak, info).probs
        pos = batch["u_pos"]
        # every rank stores every rank's predictions: all hold the same pool and so solve the same problem
        every_pos = all_gather_cat(pos)
        self.predictions.index_put_((every_pos,), all_gather_cat(current))
        if not self.active(info):
            return PseudoLabels(current, current, self.threshold_for(info))
        if self.cfg.darp.target == "estimated":
            self._fix_estimated_target()
        if self.solve_due(info):
            self.solve()
        # Between solves the target is the last solve's refined row, not the current prediction (as theirs); the
        # mask reads the refined confidence only (theirs has no OR with the raw softmax).
        return PseudoLabels(self.refined[pos], current, self.threshold_for(info), raw_opens_mask=False)

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        out["darp_solves"] = int(self.solves)
        if self.cfg.darp.target == "estimated":
            out["darp_estimates_kept"] = int(self.estimates_kept)
            out["darp_estimates_made"] = int(self.estimates_made)
            if int(self.estimates_kept):
                mean = self.estimate_sum / self.estimates_kept
                out["darp_estimate"] = [float(v) for v in mean / mean.sum()]
        target = self.target_counts.double()
        out["darp_target_distribution"] = [float(v) for v in target / target.sum()]
        total = self.refined.sum(0)
        out["darp_refined_distribution"] = [float(v) for v in total / total.sum().clamp_min(1e-12)]
        return out
