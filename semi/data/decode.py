"""Decoding files into arrays, torch-free: named arrays of an .npz, images with Pillow, image arrays checked and
converted to uint8. Used by the data sources and by `semi predict` alike."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from semi.errors import DataError
from semi.extras import require


def load_npz(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz (no pickles), with a DataError naming the file when it is unreadable or lacks one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)} (it has: {', '.join(z.files) or 'none'})")
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001  (zip, pickle or format errors from a damaged file)
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def open_image(path: Path) -> Any:
    Image = require("PIL.Image", "reading image files")
    try:
        return Image.open(path)
    except (Image.UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def to_8bit(im: Any, gray: bool) -> Any:
    """A decoded image as 8-bit 'L' or 'RGB' (16-bit greyscale is scaled, not clipped)."""
    Image = require("PIL.Image", "reading image files")
    if gray and (im.mode.startswith("I;16") or im.mode == "I"):
        a = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or a.max() > 255:
            a = a / 257.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    return im.convert("L" if gray else "RGB")


def as_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(N, H, W[, C]) uint8, or floats in [0, 1] scaled to uint8; anything else is a DataError saying what to do."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = " (it looks channels-first: transpose it to (N, H, W, C))" if x.ndim == 4 and x.shape[1] in (1, 3) \
            else ""
        raise DataError(f"{path}: {key} must have shape (N, H, W, C) with C = 1 or 3, or (N, H, W); "
                        f"got {x.shape}{hint}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
            raise DataError(f"{path}: {key} is {x.dtype} with values {lo:g}..{hi:g}; float images must lie in "
                            f"[0, 1] (or store uint8 0..255)")
        warnings.warn(f"{path}: {key} is {x.dtype} in [0, 1]; converted to uint8 as round(255 * x)", stacklevel=3)
        return np.rint(x * 255.0).astype(np.uint8)
    raise DataError(f"{path}: {key} has dtype {x.dtype}; images must be uint8 (0..255) or float in [0, 1]")
