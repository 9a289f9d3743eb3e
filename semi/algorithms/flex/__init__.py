"""FlexMatch's class-adaptive thresholds (Zhang et al., NeurIPS 2021; code: TorchSSL / USB, FlexMatchThresholdingHook)
as a component for any base: each class's threshold is the step's threshold scaled by how many unlabeled images that
class has confidently claimed so far (curriculum pseudo-labelling), so classes the model is still learning (the
tail, under imbalance) get a lower bar. `flexmatch` = `fixmatch+flex`; `dualhead+semi+flex` scales SeMi's threshold.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from semi.specs import MethodSpec, lazy_attributes, register


@dataclass
class FlexConfig:
    """FlexMatch's class-adaptive thresholds (the `flex` component)."""

    warmup: bool = True
    """The threshold warm-up (FlexMatch's thresh_warmup, on in its code): the learning effects are divided by the
    largest of the class counts and the count of images no class has claimed yet, so thresholds rise gradually
    from 0; false: by the largest class count alone."""
    mapping: Literal["convex", "linear"] = "convex"
    """How a learning effect beta in [0, 1] scales the threshold: convex beta / (2 - beta) (FlexMatch's choice),
    or linear (beta + 1) / 2."""
    normalize: Literal["none", "predicted"] = "none"
    """What a class's count of confidently claimed images is measured against. none: FlexMatch's raw counts, which
    under imbalance follow the class prior, so a rare class gets a threshold near 0 however well it is learned.
    predicted (SeMi+, ours): each class counts the images claimed for it that the model still predicts as it,
    divided by C times the class's share of the pool's latest predictions, so the learning effect measures how
    much of what the model assigns to a class it has claimed confidently, not how common the class is (in the
    spirit of Adsh, Guo & Li, ICML 2022, which lets the same share of each class's predictions pass); equal to
    FlexMatch where the predictions are balanced and agree with the claims."""


SPEC = register(MethodSpec(
    name="flex",
    kind="component",
    summary="FlexMatch's class-adaptive thresholds from each class's learning effect over the unlabeled pool",
    implementation="semi.algorithms.flex.method:build",
    section="flex",
    config=FlexConfig,
    aliases={"flexmatch": "fixmatch+flex"},
    reference="Zhang et al., NeurIPS 2021; TorchSSL/TorchSSL, microsoft/Semi-supervised-learning",
))

__getattr__ = lazy_attributes(__name__)
