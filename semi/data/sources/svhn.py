"""SVHN (cropped digits, format 2): `train_32x32.mat` and `test_32x32.mat` in `<root>/svhn/` or directly in `<root>/`
(where torchvision's SVHN(root, split=..., download=True) puts them).

Each .mat holds X of shape (32, 32, 3, N) uint8 and y of shape (N, 1) in 1..10, where 10 stands for the digit 0;
labels are mapped so that label k is the digit k. The `extra` split is not used (the CISSL protocol draws labeled and
unlabeled images from the training split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

SVHN_FILES = ["train_32x32.mat", "test_32x32.mat"]


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN .mat -> (N, 32, 32, 3) uint8 images and int64 digit labels 0..9."""
    from semi.extras import require

    loadmat = require("scipy.io", "the svhn source (.mat files)").loadmat
    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # noqa: BLE001  (truncated file, not a MATLAB file, HDF5 v7.3 file, ...)
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path} lacks the SVHN variables X and y (found: {', '.join(sorted(mat)) or 'none'})")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise DataError(f"{path}: X must be uint8 of shape (H, W, 3, N), got {x.dtype} {x.shape}")
    if len(y) != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: SVHN labels must lie in 1..10 (10 = digit 0), found {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y % 10


@register_source("svhn")
def load_svhn(root: Path, cfg: object) -> ImageData:
    folder = root / "svhn"
    if not all((folder / n).exists() for n in SVHN_FILES) and all((root / n).exists() for n in SVHN_FILES):
        folder = root
    files = require_files(folder, SVHN_FILES, "svhn",
                          hint="(the cropped-digit .mat files of format 2; directly in the data root works too, "
                               "which is where torchvision's SVHN(root, download=True) writes them)")
    x, y = read_svhn_mat(files[0])
    xt, yt = read_svhn_mat(files[1])
    return ImageData(x, y, xt, yt, [str(k) for k in range(10)], files=files)
