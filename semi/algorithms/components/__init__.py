"""SeMi's components (ACM MM 2025) as one attachment, `+semi`: a class-balanced memory bank with confidence decay,
prototype-refined pseudo-labels, entropy-weighted hard-example mining (OHEML) and feature consistency, each of
which can be switched off alone. `semi` alone names SeMi on its authors' base, `dualhead+semi`.

Naming: `semi` is the package; SeMi (the method) is the `semi` component, configured in the `semi` section.

The spec and options, torch-free; the code is in the modules beside this one (`attach.py` builds the parts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from semi.specs import MethodSpec, Problems, lazy_attributes, register

if TYPE_CHECKING:
    from semi.config import Config


@dataclass
class SemiConfig:
    """SeMi's components; attached when the algorithm name has '+semi' (or is 'semi')."""

    memory_bank: bool = True
    """The class-balanced memory bank of confident strong-view embeddings (the prototypes read it)."""
    prototypes: bool = True
    """Blend prototype pseudo-labels (softmax of similarities to the bank's class means) into the base's."""
    oheml: bool = True
    """Entropy-based per-sample weights of the unlabeled loss (online hard-example mining)."""
    feature_consistency: bool = True
    """The loss pulling the two strong views' embeddings together (L_cons)."""
    threshold: float = 0.7
    """SeMi's lowered tau for every mask of the step (the bases keep algorithm.threshold)."""
    threshold_schedule: Literal["always", "after_warmup"] = "always"
    """always: semi.threshold from the first step (the authors' commands); after_warmup: the base's threshold
    until the epoch index exceeds semi.warmup_epochs, then semi.threshold (an ablation of ours)."""
    bank_size: int = 128
    """Embeddings kept per class."""
    decay_every: int = 100
    """Steps between confidence decays of the bank's entries."""
    decay: float = 0.99
    """Factor applied to the stored confidences at each decay."""
    alpha: float = 0.4
    """Largest weight of the prototype pseudo-label in the blend (grows with training progress)."""
    t_tar: float = 0.1
    """Temperature of OHEML's target entropy weighting."""
    oheml_strength: float = 0.75
    """How strongly OHEML's entropy weights depart from 1."""
    oheml_normalize: bool = False
    """Divide the OHEML weights by their mean over the masked samples of the step, so hard samples still count more
    than easy ones but the unlabeled loss keeps its scale (ours, off by default; SeMi's weights average well below
    1, which scales the standard head's L_u down)."""
    t_p: float = 0.1
    """Temperature of the prototype softmax."""
    center_momentum: float = 0.9
    """EMA rate of the embedding centre used by the feature consistency loss."""
    lambda_c: float = 0.15
    """Weight of the feature consistency loss."""
    warmup_epochs: int = 5
    """Prototypes, OHEML and L_cons start when the epoch index exceeds this (E_est)."""
    prototype_gate: Literal["none", "labeled"] = "none"
    """SeMi+ (ours, off by default): labeled scales each class's blend weight by how often that class's prototype
    labels the labeled images of that class right (an EMA over steps, 0 until measured), so prototypes that are
    measured to be wrong stop moving the pseudo-labels; never measured on test or unlabeled truth."""
    gate_momentum: float = 0.9
    """EMA rate of the prototypes' per-class accuracy on labeled images (semi.prototype_gate=labeled)."""
    query_view: Literal["strong", "weak"] = "strong"
    """Which view's embedding is compared with the prototypes."""
    pseudo_label_source: Literal["base", "raw"] = "base"
    """base: blend the base's pseudo-label distribution (dualhead and FixMatch: the raw softmax; ACR: p1, debiased
    by tau1); raw: always the unadjusted softmax."""


def check(cfg: Config) -> list[str]:
    p = Problems()
    need = p.need
    s = cfg.semi
    need(0 < s.threshold <= 1, f"semi.threshold: must be in (0, 1], got {s.threshold}")
    need(s.bank_size >= 1, f"semi.bank_size: must be >= 1, got {s.bank_size}")
    need(s.decay_every >= 1, f"semi.decay_every: must be >= 1, got {s.decay_every}")
    need(0 < s.decay <= 1, f"semi.decay: must be in (0, 1], got {s.decay}")
    need(0 <= s.alpha <= 1, f"semi.alpha: must be in [0, 1], got {s.alpha}")
    need(s.t_tar > 0, f"semi.t_tar: must be > 0, got {s.t_tar}")
    need(0 <= s.oheml_strength <= 1, f"semi.oheml_strength: must be in [0, 1], got {s.oheml_strength}")
    need(s.t_p > 0, f"semi.t_p: must be > 0, got {s.t_p}")
    need(0 <= s.center_momentum < 1, f"semi.center_momentum: must be in [0, 1), got {s.center_momentum}")
    need(s.lambda_c >= 0, f"semi.lambda_c: must be >= 0, got {s.lambda_c}")
    need(0 <= s.gate_momentum < 1, f"semi.gate_momentum: must be in [0, 1), got {s.gate_momentum}")
    need(s.warmup_epochs >= 0, f"semi.warmup_epochs: must be >= 0, got {s.warmup_epochs}")
    need(not (s.prototypes and not s.memory_bank),
         "semi.prototypes: needs semi.memory_bank=true (prototypes are the bank's class means); "
         "set semi.prototypes=false too to ablate the bank")
    return p


SPEC = register(MethodSpec(
    name="semi", kind="component", summary="SeMi: memory bank, prototype-refined pseudo-labels, OHEML, L_cons",
    implementation="semi.algorithms.components.attach:build_semi_components", section="semi", config=SemiConfig,
    check=check, aliases={"semi": "dualhead+semi"}, figures=("semi_parts",),
    reference="SeMi (ACM MM 2025)"))

__getattr__ = lazy_attributes(__name__, "attach")
