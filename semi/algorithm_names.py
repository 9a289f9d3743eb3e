"""Algorithm names without importing torch: what `algorithm.name` may be, checked while the config is validated.

The registry (`semi.algorithms.registry`) is the truth; this static copy lets a typo fail before torch loads (a
test checks the two agree, so a new base must be added here too).
"""

from __future__ import annotations

BASES = ("abc", "acr", "cpe", "darp", "daso", "dualhead", "fixmatch", "oracle", "simpro", "supervised")
"""Registered base algorithms."""
COMPONENT_BASES = ("abc", "acr", "cpe", "darp", "daso", "dualhead", "fixmatch", "simpro")
"""Bases that accept attached components ('+semi')."""
ALIASES = {"semi": "dualhead+semi"}
"""semi = SeMi on its authors' base, the logit-adjusted dual-head learner (spec 5)."""
ATTACHABLE = ("semi",)


def allowed_names() -> list[str]:
    return [*BASES, *(f"{b}+semi" for b in BASES if b in COMPONENT_BASES), *ALIASES]


def split_algorithm_name(name: str) -> tuple[str, list[str]]:
    """'fixmatch+semi' -> ('fixmatch', ['semi']); raises ValueError naming the allowed values."""
    full = ALIASES.get(name, name)
    base, *attached = full.split("+")
    if base not in BASES or any(a not in ATTACHABLE for a in attached) or (
            attached and base not in COMPONENT_BASES):
        raise ValueError(f"{name!r} is not allowed; allowed values: {', '.join(allowed_names())}")
    return base, attached
