"""semi: a PyTorch toolkit for class-imbalanced semi-supervised learning (FixMatch, ACR, SeMi).

The Python API (docs/api.md): `semi.load_config`, `semi.train`, `semi.evaluate`, `semi.predict`, `semi.export`,
`semi.Results`. They are imported on first use, so `import semi` loads neither torch nor the models.
"""

from __future__ import annotations

from typing import Any

from semi.engine.threads import prefer_short_spin

__version__ = "0.1.0"
prefer_short_spin()  # before torch loads: long-spinning OpenMP threads make steps ~9x slower beside another job
__all__ = ["load_config", "train", "evaluate", "predict", "export", "Results", "Config", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("load_config", "train", "evaluate", "predict", "export", "Results"):
        from semi import api

        return getattr(api, name)
    if name == "Config":
        from semi.config import Config

        return Config
    raise AttributeError(f"module 'semi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
