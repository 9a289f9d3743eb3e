"""SimPro (Du et al., ICML 2024): EM estimates of the unknown unlabeled class prior and Bayes-optimal pseudo-labels from
a logit-adjusted head.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class SimProConfig:
    """SimPro (Du et al., ICML 2024): an EM estimate of the unknown unlabeled class prior and Bayes-optimal
    pseudo-labels from a logit-adjusted head (algorithm.name=simpro)."""

    tau: float = 2.0
    """Strength of the logit adjustments log(prior^tau) (the authors' scripts: 2.0 for CIFAR-10 and STL-10, 1.0
    for CIFAR-100 and ImageNet-127)."""
    momentum: float = 0.9
    """EMA rate of the per-epoch prior updates (the authors' ema_u)."""
    soft_targets: bool = True
    """Train the unlabeled loss on the soft pseudo-label distribution (the authors' code); false: its argmax."""
    labeled_loss_scale: Literal["loader_ratio", "none"] = "loader_ratio"
    """loader_ratio: divide the labeled loss by (unlabeled batches per pass) / (labeled batches per pass), as the
    authors' code does (its probabilistic model weighs the two sets by their sizes); none: weight 1."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    sp = cfg.simpro
    need(sp.tau >= 0, f"simpro.tau: must be >= 0, got {sp.tau}")
    need(0 <= sp.momentum < 1, f"simpro.momentum: must be in [0, 1), got {sp.momentum}")
    return p


# The authors' released recipe (algorithm.recipe=authors), from sh/SimPro.sh and SimPro/train.py; not reproduced:
# the labeled batch's extra strong view, 43k steps.
_REPO = "LeapLabTHU/SimPro@aa2425d"
_COMMON = {
    "optim.name": ("sgd", "SimPro/train.py:486-488"), "optim.lr": (0.17, "sh/SimPro.sh:9"),
    "optim.weight_decay": (5e-4, "SimPro/train.py:150"), "optim.schedule": ("cosine", "SimPro/train.py:72-87"),
    "train.ema_decay": (0.999, "SimPro/train.py:157"), "simpro.momentum": (0.9, "sh/SimPro.sh:11 (ema_u)"),
    "simpro.labeled_loss_scale": ("loader_ratio", "SimPro/train.py:568,659-662"),
    "data.labeled_in_pool": (False, "SimPro/dataset/cifar.py:451-458"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "train.mu": (8, "sh/SimPro.sh:14"),
                                "algorithm.threshold": (0.95, "sh/SimPro.sh:13"),
                                "simpro.tau": (2.0, "sh/SimPro.sh:12")}),
    "cifar100": settings(_REPO, {**_COMMON, "train.mu": (8, "sh/SimPro.sh:37"),
                                 "algorithm.threshold": (0.2, "sh/SimPro.sh:36"),
                                 "simpro.tau": (1.0, "sh/SimPro.sh:35")}),
    "stl10": settings(_REPO, {**_COMMON, "train.mu": (16, "sh/SimPro.sh:60"),
                              "algorithm.threshold": (0.95, "sh/SimPro.sh:59"),
                              "simpro.tau": (2.0, "sh/SimPro.sh:58")}),
}
RECIPES["default"] = RECIPES["cifar10"]


SPEC = register(MethodSpec(
    name="simpro",
    kind="base",
    summary="SimPro: EM estimate of the unlabeled prior, Bayes-optimal pseudo-labels",
    implementation="semi.algorithms.simpro.method:SimPro",
    section="simpro",
    config=SimProConfig,
    check=check,
    accepts_components=True,
    reference="Du et al., ICML 2024; LeapLabTHU/SimPro",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
