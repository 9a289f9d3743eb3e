"""DARP (Kim et al., NeurIPS 2020) on FixMatch: pseudo-labels of the whole unlabeled pool refined so that their class
totals match a target distribution.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, base_spec, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class DarpConfig:
    """DARP (Kim et al., NeurIPS 2020) on FixMatch: refined pseudo-labels of the whole unlabeled pool, solved
    periodically so that their class totals match a target distribution (algorithm.name=darp)."""

    warmup: float = 0.4
    """DARP starts when the epoch index exceeds warmup * train.epochs (the authors' commands: --warm 200 of 500
    epochs); before that it is FixMatch."""
    solve_every: int = 10
    """Steps between solves, counted from each epoch's first step (the authors' --num_iter: 10 for CIFAR-10, 100
    for CIFAR-100 and STL-10). Between solves an image's target is its refined label from the last solve."""
    target: Literal["labeled_prior", "uniform", "estimated", "given"] = "labeled_prior"
    """The class counts the refined labels must match. labeled_prior: the labeled set's distribution times the pool
    size (the authors' code without --est); uniform; estimated: the authors' --est, the unlabeled images'
    distribution estimated from the model's predictions (black-box shift estimation with the confusion on the
    validation split, needs data.val_per_class > 0), plus the labeled images' counts; given: that distribution
    read from darp.target_file, plus the labeled images' counts."""
    target_file: str | None = None
    """darp.target=given: a .npy or text file of one non-negative weight per class (normalised; the authors'
    --est reads such a file, made by their train_base_estim.py)."""
    estimate_max_cond: float = 100.0
    """darp.target=estimated: an estimate is kept only if it has no negative entry and the condition number of
    the column-normalised validation confusion is below this (the authors' --th_cond); the kept ones are averaged."""
    alpha: float = 2.0
    """Noise removal before the solve: each class k keeps only its floor(alpha * target_k) most probable images
    (the authors' --alpha)."""
    iterations: int = 10
    """Outer iterations T of the coordinate ascent (the authors' --iter_T: 10; 20 for CIFAR-100 and STL-10)."""
    root_finder: Literal["secant", "newton"] = "secant"
    """How each class's dual variable is solved within an iteration: the authors' code calls scipy's newton without
    a derivative, which is the secant method, from the previous solution; newton uses the analytic derivative
    (Newton's method, as the paper names it) and a tight tolerance."""
    tolerance: float = 0.1
    """Stopping tolerance of the secant steps on the dual variable (the authors': 0.1 for CIFAR-10, 0.3 for
    CIFAR-100 and STL-10); root_finder=newton uses 1e-10 instead."""
    root_iterations: int = 30
    """At most this many secant / Newton steps per class and iteration (the authors': 30)."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    dp = cfg.darp
    need(dp.warmup >= 0, f"darp.warmup: must be >= 0, got {dp.warmup}")
    need(dp.solve_every >= 1, f"darp.solve_every: must be >= 1, got {dp.solve_every}")
    need(dp.alpha > 0, f"darp.alpha: must be > 0, got {dp.alpha}")
    need(dp.iterations >= 1, f"darp.iterations: must be >= 1, got {dp.iterations}")
    need(dp.tolerance > 0, f"darp.tolerance: must be > 0, got {dp.tolerance}")
    need(dp.root_iterations >= 1, f"darp.root_iterations: must be >= 1, got {dp.root_iterations}")
    need(dp.estimate_max_cond > 1, f"darp.estimate_max_cond: must be > 1, got {dp.estimate_max_cond}")
    try:
        uses_darp = base_spec(cfg.algorithm.name).name == SPEC_NAME
    except ValueError:  # an unknown name is reported by the config's own check
        uses_darp = False
    if uses_darp and dp.target == "estimated":
        need(cfg.data.val_per_class > 0, "darp.target=estimated: needs a validation split (data.val_per_class > 0): "
             "the estimate uses the model's confusion on it")
    if uses_darp and dp.target == "given":
        need(dp.target_file is not None,
             "darp.target=given: darp.target_file must name a file of class weights (.npy or text)")
    return p


# The authors' released recipe (algorithm.recipe=authors): FixMatch as `train.py --semi_method fix` at their
# HEAD (the older train_fix.py differs only in the warm-up), arguments.py and training_functions.py (TF); not
# reproduced: the EMA-step decay of BatchNorm buffers, pseudo-labels from the online model (ours: the training
# model too), 250k steps, and --est on STL-10 (darp.target=estimated needs a validation split: set it with one).
_REPO = "bbuing9/DARP@64a94b4"
_COMMON = {
    "train.mu": (1, "train.py:87-90"), "optim.name": ("adam", "train.py:113"), "optim.lr": (0.002, "arguments.py:12"),
    "optim.weight_decay": (4e-5, "common.py:200-219 (0.02 * lr, in the EMA step)"),
    "optim.weight_decay_mode": ("ema_step", "common.py:200-219"),
    "optim.schedule": ("constant", "train.py:113-165 (no scheduler)"), "train.ema_decay": (0.999, "arguments.py:33"),
    "algorithm.threshold": (0.95, "arguments.py:41"), "darp.alpha": (2.0, "arguments.py:45"),
    "data.labeled_in_pool": (True, "dataset/all_cifar10.py:59-60,86-87"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "darp.solve_every": (10, "arguments.py:49"),
                                "darp.iterations": (10, "arguments.py:48"),
                                "darp.tolerance": (0.1, "training_functions.py:428-429")}),
    "cifar100": settings(_REPO, {**_COMMON, "darp.solve_every": (100, "run.sh:20 (--num_iter 100)"),
                                 "darp.iterations": (20, "run.sh:20 (--iter_T 20)"),
                                 "darp.tolerance": (0.3, "training_functions.py:426-427")}),
    "stl10": settings(_REPO, {**_COMMON, "darp.solve_every": (100, "run.sh:21 (--num_iter 100)"),
                              "darp.iterations": (20, "run.sh:21 (--iter_T 20)"),
                              "darp.tolerance": (0.3, "training_functions.py:426-427")}),
}
RECIPES["default"] = RECIPES["cifar10"]


SPEC_NAME = "darp"
SPEC = register(MethodSpec(
    name=SPEC_NAME,
    kind="base",
    summary="DARP on FixMatch: pool pseudo-labels refined to match a class distribution",
    implementation="semi.algorithms.darp.method:DARP",
    section="darp",
    config=DarpConfig,
    check=check,
    accepts_components=True,
    reference="Kim et al., NeurIPS 2020; bbuing9/DARP",
    recipes=RECIPES,
    input_files=("darp.target_file",),
))

__getattr__ = lazy_attributes(__name__)
