"""SeMi's components built for one run (the implementation SeMi's MethodSpec names)."""

from __future__ import annotations

from semi.algorithms.base import Component
from semi.algorithms.components import SemiConfig  # noqa: F401  (re-exported)
from semi.algorithms.components.bank import MemoryBankComponent
from semi.algorithms.components.feature_consistency import FeatureConsistencyComponent
from semi.algorithms.components.oheml import OHEMLComponent
from semi.algorithms.components.prototypes import PrototypeComponent
from semi.config import Config


def build_semi_components(cfg: Config, num_classes: int, embed_dim: int) -> list[Component]:
    """In hook order: the bank (observes), prototypes (refine pseudo-labels), OHEML (weights), L_cons (loss)."""
    s = cfg.semi
    parts: list[Component] = []
    if s.memory_bank:
        parts.append(MemoryBankComponent(s, num_classes, embed_dim))
    if s.prototypes:
        parts.append(PrototypeComponent(s, num_classes))
    if s.oheml:
        parts.append(OHEMLComponent(s, num_classes))
    if s.feature_consistency:
        parts.append(FeatureConsistencyComponent(s, embed_dim))
    return parts


__all__ = ["build_semi_components", "MemoryBankComponent", "PrototypeComponent", "OHEMLComponent",
           "FeatureConsistencyComponent"]
