"""ACR (Wei and Gan, CVPR 2023): the dual-head learner plus an adaptive debiasing tau1 of the standard head's
pseudo-label. Its options live in the `algorithm` section (algorithm.est_epoch, tau1_schedule, ...).

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register, settings

# The authors' released recipe (algorithm.recipe=authors), from train.py and their README's CIFAR-10 commands
# (the only ones released; the other families run on the code's defaults); not reproduced: 250k steps.
_REPO = "Gank0078/ACR@9a8f421"
_COMMON = {
    "train.mu": (1, "train.py:163"), "optim.name": ("sgd", "train.py:384-385"), "optim.lr": (0.03, "README.md:44"),
    "optim.weight_decay": (5e-4, "train.py:155"), "optim.schedule": ("cosine", "train.py:81-93"),
    "train.ema_decay": (0.999, "train.py:161"), "algorithm.threshold": (0.95, "train.py:167"),
    "algorithm.tau1_init": (2.0, "train.py:193-198"), "algorithm.tau12": (2.0, "train.py:193-198"),
    "algorithm.tau2": (2.0, "train.py:193-198"), "algorithm.est_epoch": (5, "train.py:201"),
    "algorithm.est_momentum": (0.99, "README.md:44 (--ema_u 0.99)"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (True, "dataset/cifar.py:254")}),
    "cifar100": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (True, "dataset/cifar.py:101,254"),
                                 "algorithm.est_momentum": (0.9, "train.py:199 (default)")}),
    "stl10": settings(_REPO, {**_COMMON, "data.labeled_in_pool": (False, "dataset/cifar.py:120,136-139"),
                              "algorithm.est_momentum": (0.9, "train.py:199 (default)")}),
}
RECIPES["default"] = RECIPES["cifar10"]


SPEC = register(MethodSpec(
    name="acr",
    kind="base",
    summary="ACR: the dual-head learner with an adaptive tau1 from an estimate of the unlabeled class mix",
    implementation="semi.algorithms.acr.method:ACR",
    accepts_components=True,
    eval_head="balanced",
    figures=("acr_estimate",),
    reference="Wei and Gan, CVPR 2023; Gank0078/ACR",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
