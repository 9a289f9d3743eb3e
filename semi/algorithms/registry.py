"""Build an algorithm from its name: the base's class from its spec, the attached components from theirs.

A name is a base optionally followed by components in hook order ('fixmatch+semi', 'dualhead+semi+cdmad'), or an
alias a spec declares ('semi' = 'dualhead+semi'); `semi.specs` parses it without torch.
"""

from __future__ import annotations

from torch import Tensor

from semi import specs
from semi.config import Config


def base_names() -> list[str]:
    return sorted(s.name for s in specs.all_specs() if s.kind == "base")


def parse_algorithm_name(name: str) -> tuple[str, list[str]]:
    """'fixmatch+semi' -> ('fixmatch', ['semi']); raises ValueError naming the allowed values."""
    base, comps = specs.parse(name)
    return base.name, [c.name for c in comps]


def base_class(name: str) -> type:
    """The base's class of an algorithm name ('fixmatch+semi' -> FixMatch)."""
    return specs.base_spec(name).load()


def build_algorithm(cfg: Config, num_classes: int, labeled_prior: Tensor, embed_dim: int, pool_size: int = 0,
                    num_labeled: int = 0):
    """The algorithm of `cfg.algorithm.name`, its components attached, told the unlabeled pool's size and the
    labeled set's (`Algorithm.setup_data`: per-image state; 0 when unknown, as in unit tests)."""
    base, attached = specs.parse(cfg.algorithm.name)
    cls = base.load()
    if base.accepts_components:
        components = [part for spec in attached for part in spec.load()(cfg, num_classes, embed_dim)]
        algorithm = cls(cfg, num_classes, labeled_prior, components)
    else:
        algorithm = cls(cfg, num_classes, labeled_prior)
    algorithm.allocate(embed_dim)
    algorithm.setup_data(pool_size, num_labeled)
    return algorithm
