"""CPE (Ma et al., AAAI 2024): three logit-adjusted experts for consistent, uniform and reversed unlabeled priors.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal  # noqa: F401

from semi.specs import MethodSpec, Problems, lazy_attributes, register, settings

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class CpeConfig:
    """CPE (Ma et al., AAAI 2024): three experts on one embedding, logit-adjusted for three unlabeled priors."""

    tau_consistent: float = 0.0
    """Logit adjustment of expert 1 (the standard head g1) in its labeled loss CE(g + tau log pi, y)."""
    tau_uniform: float = 2.0
    """... of expert 2 (the balanced head g2, used for prediction as in the authors' code)."""
    tau_reversed: float = 4.0
    """... of expert 3 (the model's extra head)."""
    medium_from: float = 0.2
    """Class groups of the authors' classwise-BN loss weights, as a share of the classes: pseudo-labels of class
    index >= round(medium_from * C) count twice, >= round(tail_from * C) three times (their CIFAR-10 configs:
    cut 2 and 4 of 10, i.e. 0.2 / 0.4; CIFAR-100: 35 and 70 of 100, i.e. 0.35 / 0.7)."""
    tail_from: float = 0.4
    classwise_bn: bool = False
    """The authors' model: three BatchNorm branches (head, medium, tail) between the backbone's last map and its
    pooling, every expert on each (their WideResNetCBN); an expert's unlabeled loss on a pseudo-label of class k
    reaches the branches k belongs to (all: head; index >= medium_from * C: medium; >= tail_from * C: tail), and
    everything else reads the branch means. false: the branches collapsed into one, their loss weights kept
    (cpe.group_weights)."""
    group_weights: bool = True
    """Weight each masked pseudo-label by its class group (1, 2 or 3) and normalise by the weights' sum, which is
    the authors' loss with its three BN branches collapsed into one; false: the plain mean over masked samples."""
    pseudo_labels: Literal["own", "ensemble"] = "own"
    """own: each expert trains on its own weak-view pseudo-labels (the authors' code); ensemble: all three train
    on the argmax of the mean of the experts' softmaxes, masked by its confidence (ours, an option)."""
    expert_threshold: Literal["step", "base"] = "step"
    """The confidence threshold of experts 2 and 3's masks: step = the step's threshold, which attached components
    may lower (SeMi's 0.7 then reaches every expert); base = always algorithm.threshold. The uniform and reversed
    experts' softmaxes lean toward the tail by their logit adjustment, so at 0.7 they accept head images labeled as
    tail classes (BENCHMARKS.md, section 12: cpe+semi under the authors' recipe); base keeps a component's
    threshold for expert 1 only. With cpe.pseudo_labels=ensemble all three judge the ensemble's confidence, experts
    2 and 3 then at algorithm.threshold."""


BRANCHES = 3
"""Head, medium and tail BatchNorm branches of the classwise model."""
BRANCH_MODELS = ("small_cnn", "wrn28_2", "wrn28_8", "mlp")
"""Backbones with the feature_map / pool split the branches need."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    c = cfg.cpe
    need(not c.classwise_bn or cfg.model.name in BRANCH_MODELS,
         f"cpe.classwise_bn: needs a model with a map before its pooling ({', '.join(BRANCH_MODELS)}), got "
         f"model.name={cfg.model.name}")
    need(0 <= c.medium_from <= c.tail_from <= 1,
         f"cpe.medium_from, cpe.tail_from: need 0 <= medium_from <= tail_from <= 1, got {c.medium_from}, {c.tail_from}")
    return p


# The authors' released recipe (algorithm.recipe=authors), from their USB-based configs
# (config/classic_cv_imb/fixmatch_cpe/fixmatch_cpe_<data>_0_2_4_0.yaml, the same line numbers for every data set);
# not reproduced: one strong view, weight decay on all parameters, 262k steps.
_REPO = "machengcheng2016/CPE-LTSSL@dedd598"
_Y = "config/classic_cv_imb/fixmatch_cpe/fixmatch_cpe_*.yaml"
_COMMON = {
    "train.mu": (2, f"{_Y}:20 (uratio)"), "optim.name": ("sgd", f"{_Y}:24"), "optim.lr": (0.03, f"{_Y}:25"),
    "optim.weight_decay": (5e-4, f"{_Y}:27"),
    "optim.schedule": ("constant", "semilearn/core/algorithmbase.py:526-537 (no scheduler for these runs)"),
    "train.ema_decay": (0.999, f"{_Y}:21"), "algorithm.threshold": (0.95, f"{_Y}:16"),
    "cpe.tau_consistent": (0.0, f"{_Y}:51"), "cpe.tau_uniform": (2.0, f"{_Y}:52"),
    "cpe.tau_reversed": (4.0, f"{_Y}:53"),
    "cpe.classwise_bn": (True, f"{_Y}:32 (net wrn_28_2_cbn; semilearn/nets/wrn/wrn_cbn.py:103-105,135)"),
}
RECIPES = {
    "cifar10": settings(_REPO, {**_COMMON, "cpe.medium_from": (0.2, "semilearn/imb_algorithms/cpe/cpe.py:323 (cut 2)"),
                                "cpe.tail_from": (0.4, "semilearn/imb_algorithms/cpe/cpe.py:324 (cut 4)"),
                                "data.labeled_in_pool": (False, f"{_Y}:46 (include_lb_to_ulb False)")}),
    "cifar100": settings(_REPO, {**_COMMON, "cpe.medium_from": (0.35, f"{_Y}:54 (cut1 35 of 100)"),
                                 "cpe.tail_from": (0.7, f"{_Y}:55 (cut2 70 of 100)"),
                                 "data.labeled_in_pool": (False, f"{_Y}:46 (include_lb_to_ulb False)")}),
    "stl10": settings(_REPO, {**_COMMON, "cpe.medium_from": (0.2, "semilearn/imb_algorithms/cpe/cpe.py:323"),
                              "cpe.tail_from": (0.4, "semilearn/imb_algorithms/cpe/cpe.py:324"),
                              "data.labeled_in_pool": (True, "semilearn/datasets/cv_datasets/stl10.py:73")}),
}
RECIPES["default"] = RECIPES["cifar10"]




def model_options(cfg: Config) -> dict[str, int]:
    return {"bn_branches": BRANCHES} if cfg.cpe.classwise_bn else {}


SPEC = register(MethodSpec(
    name="cpe",
    kind="base",
    summary="CPE: three logit-adjusted experts for three unlabeled priors",
    implementation="semi.algorithms.cpe.method:CPE",
    section="cpe",
    config=CpeConfig,
    check=check,
    accepts_components=True,
    eval_head="balanced",
    extra_heads=1,
    model_options=model_options,
    reference="Ma et al., AAAI 2024; machengcheng2016/CPE-LTSSL",
    recipes=RECIPES,
))

__getattr__ = lazy_attributes(__name__)
