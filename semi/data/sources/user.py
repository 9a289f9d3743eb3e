"""Your own data: a folder of images by class ("image_folder") or arrays in an .npz ("numpy"); data.path names it.

image_folder:
- `path/train/<class>/*` and `path/test/<class>/*` (.png, .jpg, .jpeg, .bmp; other files are ignored). The class
  names are the sorted folder names under train/; a test class folder may be missing or empty, but test/ must not
  name a class that train/ lacks.
- Without train/ and test/: `path/<class>/*`, and the last 20% of each class in sorted file-name order (rounded up,
  at least one image when the class has two or more, never all of them) is held out as the test set.
- Images load with Pillow in sorted file-name order (the long-tail split takes the first N_k of each class): as
  greyscale (C = 1) when every image is greyscale, else as RGB (alpha dropped). With data.image_size set, each image
  is resized to a square of that size (bilinear, antialiased; the aspect ratio is not kept); without it every image
  must have the same size. A file Pillow cannot decode is a DataError naming it.

numpy: an .npz with x_train, y_train, x_test, y_test and optionally class_names. x is (N, H, W, C) with C = 1 or 3,
or (N, H, W) for greyscale; uint8 0..255, or floats in [0, 1], which are scaled to uint8 (with a warning). y holds
integer labels 0..K-1; K is len(class_names), else the largest label + 1. Nothing is pickled (allow_pickle=False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from semi.data.decode import as_images, load_npz, open_image, to_8bit
from semi.data.protocol import holdout_count
from semi.data.sources.base import ImageData, register_source
from semi.errors import DataError
from semi.extras import require

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}


def _user_path(cfg: Any, source: str, what: str) -> Path:
    raw = getattr(getattr(cfg, "data", None), "path", None)
    if not raw:
        raise DataError(f"{source}: set data.path to {what}")
    path = Path(raw).expanduser()
    if not path.exists():
        raise DataError(f"{source}: data.path {path} does not exist (it should be {what})")
    return path


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_files(folder: Path, names: list[str], allow_empty: bool) -> list[tuple[Path, int]]:
    out = []
    for label, name in enumerate(names):
        files = _image_files(folder / name) if (folder / name).is_dir() else []
        if not files and not allow_empty:
            raise DataError(f"image_folder: class folder {folder / name} holds no images "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        out.extend((f, label) for f in files)
    return out


def list_image_folder(path: Path) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]], list[str]]:
    """(file, label) pairs for train and test, and the class names, from either layout."""
    train_dir, test_dir = path / "train", path / "test"
    if train_dir.is_dir() or test_dir.is_dir():
        if not (train_dir.is_dir() and test_dir.is_dir()):
            have, lack = (train_dir, test_dir) if train_dir.is_dir() else (test_dir, train_dir)
            raise DataError(f"image_folder: found {have} but not {lack}: give both, or put the class folders "
                            f"directly in {path} (the last 20% of each class is then the test set)")
        names = [p.name for p in _subfolders(train_dir)]
        if not names:
            raise DataError(f"image_folder: {train_dir} has no class folders")
        unknown = sorted(set(p.name for p in _subfolders(test_dir)) - set(names))
        if unknown:
            raise DataError(f"image_folder: {test_dir} has class folder(s) {unknown} that {train_dir} lacks")
        train = _class_files(train_dir, names, allow_empty=False)
        test = _class_files(test_dir, names, allow_empty=True)
        if not test:
            raise DataError(f"image_folder: {test_dir} holds no images")
        return train, test, names
    names = [p.name for p in _subfolders(path)]
    if not names:
        raise DataError(f"image_folder: {path} has no class folders (expected {path}/<class>/*.png or "
                        f"{path}/train/<class>/ and {path}/test/<class>/)")
    train, test = [], []
    for label, name in enumerate(names):
        files = _class_files(path, [name], allow_empty=False)
        k = len(files) - holdout_count(len(files))
        train.extend((f, label) for f, _ in files[:k])
        test.extend((f, label) for f, _ in files[k:])
    return train, test, names


def load_images(files: list[Path], size: int | None) -> np.ndarray:
    """Decode the files into one uint8 NHWC array (greyscale when all are), resizing to size x size if given."""
    Image = require("PIL.Image", "the image_folder source")
    modes, sizes = [], []
    for f in files:  # headers only: the colour mode and the size decide the array before any pixel is decoded
        with open_image(f) as im:
            modes.append(im.mode)
            sizes.append(im.size)
    gray = all(m in GRAY_MODES for m in modes)
    if size is None:
        bad = next((i for i, s in enumerate(sizes) if s != sizes[0]), None)
        if bad is not None:
            raise DataError(f"image_folder: images differ in size ({files[bad]} is {sizes[bad][0]}x{sizes[bad][1]}, "
                            f"{files[0]} is {sizes[0][0]}x{sizes[0][1]}); set data.image_size to resize them all")
        width, height = sizes[0]
    else:
        width = height = size
    out = np.empty((len(files), height, width, 1 if gray else 3), dtype=np.uint8)
    for i, f in enumerate(files):
        with open_image(f) as im:
            try:
                im.load()
                img = to_8bit(im, gray)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
            except Exception as exc:  # noqa: BLE001  (Pillow raises OSError, SyntaxError, zlib errors, ...)
                raise DataError(f"cannot decode image {f} (corrupt or truncated?): {type(exc).__name__}: {exc}") \
                    from None
            out[i] = np.asarray(img).reshape(height, width, -1)
    return out


@register_source("image_folder")
def load_image_folder(root: Path, cfg: Any) -> ImageData:
    path = _user_path(cfg, "image_folder", "a folder of class folders of images")
    if not path.is_dir():
        raise DataError(f"image_folder: data.path {path} is not a folder")
    train, test, names = list_image_folder(path)
    size = getattr(cfg.data, "image_size", None)
    images = load_images([f for f, _ in train + test], size)
    labels = np.array([label for _, label in train + test], dtype=np.int64)
    n = len(train)
    return ImageData(images[:n], labels[:n], images[n:], labels[n:], names, files=[f for f, _ in train + test])


def _as_labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} must hold integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


@register_source("numpy")
def load_numpy(root: Path, cfg: Any) -> ImageData:
    path = _user_path(cfg, "numpy", "an .npz file with x_train, y_train, x_test, y_test")
    d = load_npz(path, ["x_train", "y_train", "x_test", "y_test"])
    x, xt = as_images(d["x_train"], path, "x_train"), as_images(d["x_test"], path, "x_test")
    y, yt = _as_labels(d["y_train"], path, "y_train"), _as_labels(d["y_test"], path, "y_test")
    if "class_names" in d:
        names = [str(n) for n in np.asarray(d["class_names"]).reshape(-1)]
    else:
        top = max([int(v.max()) for v in (y, yt) if v.size] or [0])
        names = [str(k) for k in range(top + 1)]
    return ImageData(x, y, xt, yt, names, files=[path])
