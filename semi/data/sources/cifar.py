"""CIFAR-10 and CIFAR-100.

cifar10: this project's npz chunks `<root>/cifar10/cifar10_train_{0..4}.npz` + `cifar10_test.npz` (arrays x NHWC, y),
or the python pickles `cifar-10-batches-py/` (data_batch_1..5, test_batch) in `<root>/` or `<root>/cifar10/`, the
layout torchvision's CIFAR10(root, download=True) writes.
cifar100: the pickles `cifar-100-python/` (train, test, meta) in `<root>/` or `<root>/cifar100/`; fine labels.

The original train order is kept: the long-tail split takes the first N_k images of each class in data order.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from semi.data.decode import load_npz
from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _DataUnpickler(pickle.Unpickler):
    """Loads only plain containers and numpy arrays: a data file must not be able to run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        if module.startswith("numpy.core."):  # pickles written by numpy 1.x; numpy 2 moved it to numpy._core
            try:
                return getattr(importlib.import_module("numpy._core" + module[len("numpy.core"):]), name)
            except ImportError:
                pass
        return getattr(importlib.import_module(module), name)


def read_pickle(path: Path) -> dict:
    """A python-2 or -3 pickle of a dict (CIFAR / downsampled-ImageNet batches), keys as str or bytes as written."""
    try:
        with open(path, "rb") as fh:
            obj = _DataUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file)
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def entry(d: dict, key: str, path: Path) -> Any:
    """d[key] whether the pickle stored str or bytes keys (python 2 pickles read with encoding='bytes')."""
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    found = ", ".join(repr(k) for k in d) or "none"
    raise DataError(f"{path} has no {key!r} entry (found: {found})")


def planes_to_nhwc(rows: np.ndarray, size: int, path: Path) -> np.ndarray:
    """(N, 3*S*S) rows of R, G, B planes (CHW order) -> contiguous (N, S, S, 3) uint8."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 3 * size * size:
        raise DataError(f"{path}: 'data' must have shape (N, {3 * size * size}) for {size}x{size} RGB images, "
                        f"got {rows.shape}")
    if rows.dtype != np.uint8:
        raise DataError(f"{path}: 'data' must be uint8, got {rows.dtype}")
    return np.ascontiguousarray(rows.reshape(-1, 3, size, size).transpose(0, 2, 3, 1))


def read_batches(files: list[Path], label_key: str, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate pickled batches in the given order: images NHWC uint8, labels int64 as stored."""
    xs, ys = [], []
    for f in files:
        d = read_pickle(f)
        x = planes_to_nhwc(entry(d, "data", f), size, f)
        y = np.asarray(entry(d, label_key, f), dtype=np.int64).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{f}: {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def read_names(path: Path, key: str) -> list[str]:
    """Class names from a pickled meta dict (bytes in python-2 pickles)."""
    return [n.decode() if isinstance(n, bytes) else str(n) for n in entry(read_pickle(path), key, path)]


@register_source("cifar10")
def load_cifar10(root: Path, cfg: object) -> ImageData:
    npz = root / "cifar10"
    if (npz / "cifar10_test.npz").exists() or (npz / "cifar10_train_0.npz").exists():
        files = require_files(npz, [f"cifar10_train_{k}.npz" for k in range(5)] + ["cifar10_test.npz"], "cifar10")
        parts = [load_npz(f, ["x", "y"]) for f in files]
        x = np.concatenate([p["x"] for p in parts[:5]])
        y = np.concatenate([p["y"] for p in parts[:5]])
        return ImageData(x, y, parts[5]["x"], parts[5]["y"], CIFAR10_NAMES, files=files)
    folder = next((f for f in (root / "cifar-10-batches-py", npz / "cifar-10-batches-py") if f.is_dir()),
                  root / "cifar-10-batches-py")
    files = require_files(folder, [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"], "cifar10",
                          hint="(the python version of CIFAR-10, which torchvision's CIFAR10(root, download=True) "
                               "writes; this project's npz chunks in <root>/cifar10/ work too)")
    x, y = read_batches(files[:5], "labels")
    xt, yt = read_batches(files[5:], "labels")
    names = CIFAR10_NAMES
    if (folder / "batches.meta").exists():
        names = read_names(folder / "batches.meta", "label_names")
        files = files + [folder / "batches.meta"]
    return ImageData(x, y, xt, yt, names, files=files)


@register_source("cifar100")
def load_cifar100(root: Path, cfg: object) -> ImageData:
    folder = next((f for f in (root / "cifar-100-python", root / "cifar100" / "cifar-100-python") if f.is_dir()),
                  root / "cifar-100-python")
    files = require_files(folder, ["train", "test"], "cifar100",
                          hint="(the python version of CIFAR-100, which torchvision's CIFAR100(root, download=True) "
                               "writes)")
    x, y = read_batches(files[:1], "fine_labels")
    xt, yt = read_batches(files[1:], "fine_labels")
    names = [str(k) for k in range(100)]
    if (folder / "meta").exists():
        names = read_names(folder / "meta", "fine_label_names")
        files = files + [folder / "meta"]
    return ImageData(x, y, xt, yt, names, files=files)
