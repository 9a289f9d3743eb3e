"""DASO (Oh et al., CVPR 2022) on FixMatch: semantic pseudo-labels from prototypes of labeled features blended in by the
pseudo-label distribution, plus the semantic alignment loss.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class DasoConfig:
    """DASO (Oh et al., CVPR 2022), the `daso` base: FixMatch whose pseudo-label blends in a semantic one from
    prototypes of labeled features, weighted by the pseudo-label distribution, plus the semantic alignment loss.
    Defaults: the authors' released code and CIFAR-10-LT config (configs/cifar10/fixmatch_daso.yaml)."""

    queue_size: int = 256
    """Labeled features kept per class (a FIFO queue, the same size for every class; MODEL.QUEUE.MAX_SIZE)."""
    pretrain_epochs: float = 10.0
    """Plain FixMatch (the queue and the pseudo-label counts still fill) until the epoch index reaches this; the
    authors' PRETRAIN_STEPS = 5000, i.e. 10 epochs of 500 steps at paper scale (2% of training)."""
    proto_temperature: float = 0.05
    """T_proto: the semantic pseudo-label is softmax_k(cos(z, c_k) / T_proto)."""
    dist_aware: bool = True
    """Blend weight from the pseudo-label distribution (DASO); false: the fixed weight daso.interp_alpha."""
    dist_temperature: float = 1.5
    """T_dist, sharpening (< 1) or flattening (> 1) the pseudo-label distribution before it becomes the blend
    weights. The authors use 1.5 on CIFAR-10-LT when gamma_u = gamma_l, else 0.3 (and 0.3 on CIFAR-100-LT, STL-10)."""
    interp_alpha: float = 0.5
    """The fixed blend weight with daso.dist_aware=false (the authors' ablation)."""
    dist_update_every: int = 100
    """Steps per window: the pseudo-label distribution is the class histogram of all (not only masked) final
    pseudo-labels of the last full window (PL_DIST_UPDATE_PERIOD)."""
    align_weight: float = 1.0
    """Weight of the semantic alignment loss (PSA_LOSS_WEIGHT; 0 = off)."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    g = cfg.daso
    need(g.queue_size >= 1, f"daso.queue_size: must be >= 1, got {g.queue_size}")
    need(g.pretrain_epochs >= 0, f"daso.pretrain_epochs: must be >= 0, got {g.pretrain_epochs}")
    need(g.proto_temperature > 0, f"daso.proto_temperature: must be > 0, got {g.proto_temperature}")
    need(g.dist_temperature > 0, f"daso.dist_temperature: must be > 0, got {g.dist_temperature}")
    need(0 <= g.interp_alpha <= 1, f"daso.interp_alpha: must be in [0, 1], got {g.interp_alpha}")
    need(g.dist_update_every >= 1, f"daso.dist_update_every: must be >= 1, got {g.dist_update_every}")
    need(g.align_weight >= 0, f"daso.align_weight: must be >= 0, got {g.align_weight}")
    return p


# The authors' released recipe (algorithm.recipe=authors), from their configs; not reproduced: one strong view (we
# train two), weight decay on biases and BatchNorm too, the EMA averaging BatchNorm buffers, 250k steps.
_REPO = "ytaek-oh/daso@3541a6c"
_D = "lib/config/defaults.py"
_COMMON = {
    "train.mu": (2, "configs/cifar10/fixmatch_daso.yaml:36 (RATIO 2; loader/build.py:41)"),
    "optim.name": ("sgd", f"{_D}:183-191"), "optim.lr": (0.03, f"{_D}:183-191"),
    "optim.schedule": ("constant", f"{_D}:185 (APPLY_SCHEDULER False; lib/algorithm/daso.py:60-61)"),
    "optim.weight_decay": (5e-4, f"{_D}:190"), "train.ema_decay": (0.999, f"{_D}:13"),
    "algorithm.threshold": (0.95, "configs/cifar10/fixmatch_daso.yaml:3"),
    "daso.proto_temperature": (0.05, f"{_D}:85"), "daso.dist_update_every": (100, f"{_D}:86"),
    "daso.queue_size": (256, f"{_D}:25"),
    "data.labeled_in_pool": (False, "dataset/utils.py:90-91 (labeled and unlabeled sets disjoint)"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "daso.dist_temperature": (1.5, "configs/cifar10/fixmatch_daso.yaml:7")}),
    "cifar100": settings(_REPO, {**_COMMON, "daso.dist_temperature": (0.3, "configs/cifar100/fixmatch_daso.yaml:6")}),
    "stl10": settings(_REPO, {**_COMMON, "daso.dist_temperature": (0.3, "configs/stl10/fixmatch_daso.yaml:6")}),
}
RECIPES["default"] = RECIPES["cifar10"]


SPEC = register(MethodSpec(
    name="daso",
    kind="base",
    summary="DASO on FixMatch: distribution-aware blend of semantic (prototype) pseudo-labels",
    implementation="semi.algorithms.daso.method:DASO",
    section="daso",
    config=DasoConfig,
    check=check,
    accepts_components=True,
    reference="Oh et al., CVPR 2022; ytaek-oh/daso",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
