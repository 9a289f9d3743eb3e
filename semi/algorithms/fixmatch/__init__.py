"""FixMatch (Sohn et al., NeurIPS 2020): hard pseudo-labels from the weak view, a confidence mask, cross-entropy on the
strong views.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register, settings

# The recipe of the FixMatch code the CISSL papers build on (algorithm.recipe=authors): kekmodel/FixMatch-pytorch;
# not reproduced: one strong view, 2^20 steps.
_REPO = "kekmodel/FixMatch-pytorch"
_COMMON = {
    "train.mu": (7, "train.py:104"), "optim.name": ("sgd", "train.py:250-251"), "optim.lr": (0.03, "train.py:92"),
    "optim.nesterov": (True, "train.py:98"), "optim.weight_decay": (5e-4, "train.py:96"),
    "optim.schedule": ("cosine", "train.py:43-53"), "train.ema_decay": (0.999, "train.py:102"),
    "algorithm.threshold": (0.95, "train.py:110"),
    "data.labeled_in_pool": (True, "dataset/cifar.py:91-92 (the whole training set is unlabeled)"),
}
RECIPES = {"default": settings(_REPO, _COMMON),
           "cifar100": settings(_REPO, {**_COMMON, "optim.weight_decay": (1e-3, "README.md:37")})}


SPEC = register(MethodSpec(
    name="fixmatch",
    kind="base",
    summary="FixMatch: confident weak-view pseudo-labels train the strong views",
    implementation="semi.algorithms.fixmatch.method:FixMatch",
    accepts_components=True,
    reference="Sohn et al., NeurIPS 2020; google-research/fixmatch",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
