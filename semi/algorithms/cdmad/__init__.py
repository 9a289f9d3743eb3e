"""CDMAD (Lee and Kim, CVPR 2024; code: LeeHyuck/CDMAD, fixmatchcdmad.py) as a component for any base: the
classifier's bias is measured on a pattern-less image (all ones in the network's input space) and subtracted from
the weak view's logits before pseudo-labelling (after a warm-up), and from every logit at test time.
`fixmatch+cdmad` is CDMAD as published; `dualhead+semi+cdmad` debiases before SeMi's confidence, entropy weights
and bank admission.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from semi.specs import MethodSpec, lazy_attributes, register

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class CdmadConfig:
    """CDMAD: class-distribution-mismatch-aware debiasing (the `cdmad` component)."""

    warmup_epochs: float = 100.0
    """The pseudo-labels are debiased once the epoch index exceeds this (the authors' --debiasstart: 100 of 500
    epochs of 500 steps, i.e. the first 20% of training; set about 20% of a short run's epochs). The probe runs
    from the first step either way, as in their code."""
    soft_targets: bool = True
    """The unlabeled loss learns softmax(f(u_w) - f(1)) whole, as the authors' released code does (SemiLoss on
    F.softmax targets); false: the hard argmax, as the paper's equations (FixMatch's)."""
    threshold: float | None = 0.0
    """The mask threshold of the step while CDMAD is attached: the authors' code keeps FixMatch's --tau 0 (every
    image), the paper describes FixMatch's 0.95; null keeps the base's (or SeMi's, when attached: it sets its own,
    and two thresholds are refused)."""
    probe_mode: Literal["train", "batch_stats", "eval"] = "train"
    """How the probe image passes BatchNorm. train: the training model in train mode, as the authors' code, so each
    probe also moves the running statistics toward a pattern-less image's; batch_stats: the same batch statistics,
    running statistics left as they were; eval: the running statistics (nothing moves)."""
    test_time: bool = True
    """Subtract the EMA model's logits on the pattern-less image from every test logit (evaluation, `semi predict`,
    `semi export`), as the authors' validate(); false: the plain logits."""


def check(cfg: Config) -> list[str]:
    c = cfg.cdmad
    problems = []
    if c.warmup_epochs < 0:
        problems.append(f"cdmad.warmup_epochs: must be >= 0, got {c.warmup_epochs}")
    if c.threshold is not None and not 0 <= c.threshold <= 1:
        problems.append(f"cdmad.threshold: must be in [0, 1] or null, got {c.threshold}")
    return problems


SPEC = register(MethodSpec(
    name="cdmad",
    kind="component",
    summary="CDMAD: logits minus the classifier's logits on a pattern-less image, in training and at test time",
    implementation="semi.algorithms.cdmad.method:build",
    section="cdmad",
    config=CdmadConfig,
    check=check,
    eval_model="semi.algorithms.cdmad.method:debiased_model",
    reference="Lee and Kim, CVPR 2024; LeeHyuck/CDMAD",
))

__getattr__ = lazy_attributes(__name__)
