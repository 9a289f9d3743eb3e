"""ABC (Lee et al., NeurIPS 2021) on FixMatch: an auxiliary balanced classifier trained under class-balancing Bernoulli
masks, used for prediction.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class AbcConfig:
    """ABC (Lee et al., NeurIPS 2021): the auxiliary balanced classifier, here the balanced head g2."""

    unlabeled_target: Literal["soft", "hard"] = "soft"
    """The auxiliary classifier's unlabeled target: soft = its whole weak-view softmax, as the authors' ABCfix.py
    trains it; hard = the one-hot argmax (the paper's equation and USB's reimplementation)."""
    loss_weight: float = 1.0
    """Weight of the auxiliary classifier's loss (labeled + unlabeled) in the total; 1 in the authors' code."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    need(cfg.abc.loss_weight >= 0, f"abc.loss_weight: must be >= 0, got {cfg.abc.loss_weight}")
    return p


# The authors' released recipe (algorithm.recipe=authors), from ABCcode0920/ABCfix.py; not reproduced: separate
# forward passes for the labeled, weak and strong batches, the EMA-step decay of BatchNorm buffers, 250k steps.
_REPO = "LeeHyuck/ABC@f70e926"
_F = "ABCcode0920/ABCfix.py"
_COMMON = {
    "train.mu": (1, f"{_F}:104"), "optim.name": ("adam", f"{_F}:129"), "optim.lr": (0.002, f"{_F}:31"),
    "optim.weight_decay": (4e-5, f"{_F}:417-437 (0.02 * lr, in the EMA step)"),
    "optim.weight_decay_mode": ("ema_step", f"{_F}:417-437"), "optim.schedule": ("constant", f"{_F}:129 (none)"),
    "train.ema_decay": (0.999, f"{_F}:55"), "algorithm.threshold": (0.95, f"{_F}:234,254"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (False, "ABCcode0920/dataset/fix_cifar10.py:67")}),
    "cifar100": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (True, "ABCcode0920/dataset/fix_cifar100.py:71")}),
    "svhn": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (False, "ABCcode0920/dataset/fix_svhn.py:81")}),
}
RECIPES["default"] = RECIPES["cifar10"]


SPEC = register(MethodSpec(
    name="abc",
    kind="base",
    summary="ABC on FixMatch: an auxiliary balanced classifier under class-balancing masks",
    implementation="semi.algorithms.abc.method:ABC",
    section="abc",
    config=AbcConfig,
    check=check,
    accepts_components=True,
    eval_head="balanced",
    reference="Lee et al., NeurIPS 2021; LeeHyuck/ABC",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
