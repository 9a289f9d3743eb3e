"""Algorithms by name. A name is a base, optionally with '+semi' (SeMi's components attached); 'semi' =
'dualhead+semi', SeMi on its authors' base (spec 5).

New bases register with `@register_algorithm("name")`; the registry is filled by importing the package
`semi.algorithms`, whose __init__ imports every algorithm module (a test checks nothing is left out).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from semi.algorithm_names import ALIASES, ATTACHABLE
from semi.config import Config

_BASES: dict[str, type] = {}


def register_algorithm(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        if name in _BASES:
            raise ValueError(f"algorithm {name!r} registered twice")
        _BASES[name] = cls
        cls.registered_name = name
        return cls

    return wrap


def base_names() -> list[str]:
    import semi.algorithms  # noqa: F401  (registers the bases)

    return sorted(_BASES)


def parse_algorithm_name(name: str) -> tuple[str, list[str]]:
    """'fixmatch+semi' -> ('fixmatch', ['semi']); raises ValueError naming the allowed values."""
    bases = base_names()
    allowed = bases + [f"{b}+semi" for b in bases if getattr(_BASES[b], "accepts_components", False)] + list(ALIASES)
    full = ALIASES.get(name, name)
    base, *attached = full.split("+")
    if base not in _BASES or any(a not in ATTACHABLE for a in attached) or (
            attached and not getattr(_BASES[base], "accepts_components", False)):
        raise ValueError(f"{name!r} is not allowed; allowed values: {', '.join(allowed)}")
    return base, attached


def base_class(name: str) -> type:
    """The registered base class of an algorithm name ('fixmatch+semi' -> FixMatch)."""
    return _BASES[parse_algorithm_name(name)[0]]


def build_algorithm(cfg: Config, num_classes: int, labeled_prior: Tensor, embed_dim: int, pool_size: int = 0,
                    num_labeled: int = 0):
    """The algorithm of `cfg.algorithm.name`, its components attached, told the unlabeled pool's size and the
    labeled set's (`Algorithm.setup_data`: per-image state; 0 when unknown, as in unit tests)."""
    from semi.algorithms.components import build_semi_components

    base, attached = parse_algorithm_name(cfg.algorithm.name)
    cls = _BASES[base]
    if getattr(cls, "accepts_components", False):
        components = build_semi_components(cfg, num_classes, embed_dim) if "semi" in attached else []
        algorithm = cls(cfg, num_classes, labeled_prior, components)
    else:
        algorithm = cls(cfg, num_classes, labeled_prior)
    algorithm.allocate(embed_dim)
    algorithm.setup_data(pool_size, num_labeled)
    return algorithm
