"""Optional dependencies: what only some users need is an extra of the package, and a missing one is one clear
error that names the install command (`pip install 'semi[report]'`), never an ImportError deep in a traceback.

The core install (torch, numpy, PyYAML, tqdm, scikit-learn) trains, evaluates, predicts and exports on the
embedded digits, on MNIST-style idx files, CIFAR pickles, .npz arrays and feature files.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from semi.errors import SemiError

EXTRAS = {
    "matplotlib": "report", "tensorboard": "tensorboard", "scipy": "svhn", "PIL": "images",
    "torchvision": "images", "pyarrow": "parquet", "timm": "timm", "sentence_transformers": "text",
}
"""Top-level module -> the extra that installs it."""


class MissingExtra(SemiError):
    """An optional dependency a feature needs is not installed."""


def install_hint(module: str) -> str:
    extra = EXTRAS.get(module.split(".")[0])
    return f"pip install 'semi[{extra}]'" if extra else f"pip install {module.split('.')[0]}"


def require(module: str, needed_for: str) -> ModuleType:
    """Import `module`, or raise MissingExtra: '<needed_for> needs <top module>: pip install 'semi[extra]''."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise MissingExtra(f"{needed_for} needs {top}, which is not installed: {install_hint(module)}") from None
