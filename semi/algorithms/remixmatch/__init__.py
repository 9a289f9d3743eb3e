"""ReMixMatch (Berthelot et al., ICLR 2020): distribution alignment, augmentation anchoring, MixUp and a rotation loss.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class RemixmatchConfig:
    """ReMixMatch (Berthelot et al., ICLR 2020), the `remixmatch` base. Defaults: its authors' released code
    (google-research/remixmatch), which USB's and DASO's CIFAR-10-LT configs keep."""

    sharpen_temperature: float = 0.5
    """T: the aligned guess is sharpened as p^(1/T), renormalised."""
    mixup_alpha: float = 0.75
    """MixUp's Beta(alpha, alpha); lambda = max(lambda, 1 - lambda), so each mixed image stays closer to its own."""
    match_weight: float = 1.5
    """Weight of the unlabeled loss on the mixed unlabeled images (the authors' w_match; ReMixMatch's lambda_u,
    used in place of algorithm.lambda_u), ramped up over remixmatch.warmup_fraction of training."""
    kl_weight: float = 0.5
    """Weight of the loss of the first strong view before MixUp against the guess (the authors' w_kl), ramped up
    like the unlabeled loss."""
    rotation_weight: float = 0.5
    """Weight of the rotation loss (the first strong view turned by 0, 90, 180 or 270 degrees, a 4-way head on
    the embedding); 0 = off (feature vectors, which cannot be turned, need 0)."""
    warmup_fraction: float = 0.015625
    """The unlabeled and pre-MixUp losses ramp linearly from 0 to their weight over this share of the steps (the
    authors' warmup_kimg 1024 of train_kimg 2^16, 1/64; DARP's and ABC's ports ramp over all of training: 1)."""
    alignment: Literal["labeled_prior", "none"] = "labeled_prior"
    """Distribution alignment: the guess p is scaled by p_data / p_model and renormalised, p_data = the labeled
    class distribution, p_model = the mean guess of the last remixmatch.alignment_batches batches; none = off."""
    alignment_batches: int = 128
    """Batches averaged into p_model (the authors' dbuf)."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    r = cfg.remixmatch
    need(r.sharpen_temperature > 0, f"remixmatch.sharpen_temperature: must be > 0, got {r.sharpen_temperature}")
    need(r.mixup_alpha > 0, f"remixmatch.mixup_alpha: must be > 0, got {r.mixup_alpha}")
    for key in ("match_weight", "kl_weight", "rotation_weight"):
        need(getattr(r, key) >= 0, f"remixmatch.{key}: must be >= 0, got {getattr(r, key)}")
    need(0 <= r.warmup_fraction <= 1, f"remixmatch.warmup_fraction: must be in [0, 1], got {r.warmup_fraction}")
    need(r.alignment_batches >= 1, f"remixmatch.alignment_batches: must be >= 1, got {r.alignment_batches}")
    if cfg.algorithm.name.split("+")[0] == "remixmatch":
        need(r.rotation_weight == 0 or cfg.data.name != "features",
             "remixmatch.rotation_weight: the rotation loss turns images; feature vectors need "
             "remixmatch.rotation_weight=0")
    return p


def model_options(cfg: Config) -> dict[str, bool]:
    return {"rotation_head": True} if cfg.remixmatch.rotation_weight > 0 else {}


# The authors' released recipe (algorithm.recipe=authors), from remixmatch_no_cta.py (its model() and flags); not
# reproduced: K = 8 strong views (the paper's runs; we train two, as USB's and DASO's ports), CTAugment and a
# strong labeled view, lambda drawn per image, the fixed rotation quarters, weight decay on kernels only, 2^20 steps.
_REPO = "google-research/remixmatch@901c3d8"
_F = "remixmatch_no_cta.py"
_COMMON = {
    "train.mu": (1, f"{_F}:65,67 (batch labeled and batch unlabeled images)"),
    "optim.name": ("adam", f"{_F}:160"), "optim.lr": (0.002, f"{_F}:221"),
    "optim.weight_decay": (4e-5, f"{_F}:69,158,206 (wd 0.02 * lr, v * (1 - wd) after each step)"),
    "optim.weight_decay_mode": ("ema_step", f"{_F}:158"), "optim.schedule": ("constant", f"{_F}:160 (none)"),
    "train.ema_decay": (0.999, f"{_F}:63"),
    "remixmatch.sharpen_temperature": (0.5, f"{_F}:62"), "remixmatch.mixup_alpha": (0.75, f"{_F}:207"),
    "remixmatch.kl_weight": (0.5, f"{_F}:208"), "remixmatch.match_weight": (1.5, f"{_F}:209"),
    "remixmatch.rotation_weight": (0.5, f"{_F}:210"),
    "remixmatch.warmup_fraction": (0.015625, f"{_F}:214,222 (warmup_kimg 1024 of train_kimg 2^16)"),
    "remixmatch.alignment_batches": (128, f"{_F}:63 (dbuf)"),
}
RECIPES = {"default": settings(_REPO, _COMMON)}


SPEC = register(MethodSpec(
    name="remixmatch",
    kind="base",
    summary="ReMixMatch: aligned, sharpened guesses; MixUp of labeled and unlabeled views; a rotation loss",
    implementation="semi.algorithms.remixmatch.method:ReMixMatch",
    section="remixmatch",
    config=RemixmatchConfig,
    check=check,
    accepts_components=True,
    model_options=model_options,
    reference="Berthelot et al., ICLR 2020; google-research/remixmatch",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
