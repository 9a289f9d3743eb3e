"""CIFAR-10 and CIFAR-100: torchvision's python-pickle layout, or this project's npz chunks for CIFAR-10.

The original train order is kept: the long-tail split takes the first N_k images of each class in data order.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file)
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def planes_to_nhwc(rows: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, 3*S*S) rows of R, G, B planes -> (N, S, S, 3)."""
    return np.ascontiguousarray(np.asarray(rows, dtype=np.uint8).reshape(-1, 3, size, size).transpose(0, 2, 3, 1))


def _batches(files: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_pickle(f) for f in files]
    for f, p in zip(files, parts):
        if b"data" not in p or label_key not in p:
            raise DataError(f"{f} is not a CIFAR batch (no {b'data'!r} / {label_key!r} entries)")
    x = planes_to_nhwc(np.concatenate([p[b"data"] for p in parts]))
    y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
    return x, y


@register_source("cifar10")
def load_cifar10(root: Path, cfg: object) -> ImageData:
    npz = root / "cifar10"
    if (npz / "cifar10_test.npz").exists():
        files = require_files(npz, [f"cifar10_train_{k}.npz" for k in range(5)] + ["cifar10_test.npz"], "cifar10")
        train = [np.load(f) for f in files[:5]]
        test = np.load(files[5])
        return ImageData(np.concatenate([t["x"] for t in train]), np.concatenate([t["y"] for t in train]),
                         test["x"], test["y"], CIFAR10_NAMES, files=files)
    folder = next((f for f in (root / "cifar-10-batches-py", npz / "cifar-10-batches-py") if f.is_dir()),
                  root / "cifar-10-batches-py")
    files = require_files(folder, [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"], "cifar10",
                          hint="(torchvision's CIFAR10(root, download=True) writes this layout where a network "
                               "exists; this project's npz chunks in <root>/cifar10/ work too)")
    x, y = _batches(files[:5], b"labels")
    xt, yt = _batches(files[5:], b"labels")
    return ImageData(x, y, xt, yt, CIFAR10_NAMES, files=files)


@register_source("cifar100")
def load_cifar100(root: Path, cfg: object) -> ImageData:
    folder = root / "cifar-100-python"
    if not folder.is_dir() and (root / "cifar100" / "cifar-100-python").is_dir():
        folder = root / "cifar100" / "cifar-100-python"
    files = require_files(folder, ["train", "test"], "cifar100",
                          hint="(torchvision's CIFAR100(root, download=True) writes this layout)")
    x, y = _batches(files[:1], b"fine_labels")
    xt, yt = _batches(files[1:], b"fine_labels")
    names = [str(k) for k in range(100)]
    if (folder / "meta").exists():
        meta = read_pickle(folder / "meta")
        names = [n.decode() for n in meta.get(b"fine_label_names", [])] or names
    return ImageData(x, y, xt, yt, names, files=files)
