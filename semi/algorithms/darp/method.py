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
`darp.root_finder=newton` is Newton's method with the analytic derivative, as the paper describes it. The target
distribution is the labeled prior (their default without `--est`) or uniform; their `--est` file of a separately
trained estimator is not reproduced.
"""

from __future__ import annotations

import math

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
        c = self.num_classes
        # The authors start both from uniform rows (pseudo_orig, pseudo_refine).
        self.register_buffer("predictions", torch.full((pool_size, c), 1.0 / c))
        self.register_buffer("refined", torch.full((pool_size, c), 1.0 / c))
        share = self._labeled_prior if self.cfg.darp.target == "labeled_prior" else torch.full((c,), 1.0 / c)
        self.register_buffer("target_counts", (share * pool_size).float())

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
        self.predictions.index_put_((all_gather_cat(pos),), all_gather_cat(current))
        if not self.active(info):
            return PseudoLabels(current, current, self.threshold_for(info))
        if self.solve_due(info):
            self.solve()
        # Between solves the target is the last solve's refined row, not the current prediction (as theirs); the
        # mask reads the refined confidence only (theirs has no OR with the raw softmax).
        return PseudoLabels(self.refined[pos], current, self.threshold_for(info), raw_opens_mask=False)

    def diagnostics(self) -> dict[str, object]:
        out = super().diagnostics()
        out["darp_solves"] = int(self.solves)
        total = self.refined.sum(0)
        out["darp_refined_distribution"] = [float(v) for v in total / total.sum().clamp_min(1e-12)]
        return out
