"""ABC (Lee et al., NeurIPS 2021) on FixMatch: an auxiliary balanced classifier trained under class-balancing Bernoulli
masks, used for prediction.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register

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
))

__getattr__ = lazy_attributes(__name__)
