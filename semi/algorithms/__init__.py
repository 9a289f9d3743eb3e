"""Algorithms: each base learner and each attachable component is a package here whose `__init__` declares its
`MethodSpec` and options without torch (`semi.specs`); importing this package declares them all. The shared step
is `base.py`; `registry.py` builds an algorithm from a name such as `fixmatch+semi`."""

from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if _info.ispkg:
        importlib.import_module(f"{__name__}.{_info.name}")
