"""STL-10, binary version: `<root>/stl10_binary/` (or `<root>/stl10/stl10_binary/`) with train_X.bin, train_y.bin,
test_X.bin, test_y.bin and unlabeled_X.bin (class_names.txt optional), as torchvision's STL10(root, download=True)
writes them.

Images are 96x96 RGB stored column-major per channel: a file is reshaped to (N, 3, 96, 96) and transposed with axes
(0, 3, 2, 1) to (N, H, W, C). Labels 1..10 become 0..9. The 100k unlabeled images (labels unknown) become
ImageData.extra_unlabeled. Every image is resized to 32x32 (the CISSL literature's setting) unless data.image_size
is set. The unlabeled file (2.6 GB) is read through a memory map in chunks so that only the resized copy is held.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

SIZE = 96
IMAGE_BYTES = 3 * SIZE * SIZE
DEFAULT_SIZE = 32
CHUNK = 1024
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
STL10_FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"]


def read_stl_images(path: Path, size: int) -> np.ndarray:
    """An STL-10 image file -> (N, size, size, 3) uint8, resizing chunk by chunk from a memory map."""
    from semi.data.prepare import resize_images  # here, not at the top: prepare imports the source registry

    nbytes = path.stat().st_size
    if nbytes == 0 or nbytes % IMAGE_BYTES:
        raise DataError(f"{path}: size {nbytes} bytes is not a positive multiple of {IMAGE_BYTES} "
                        f"(one 3x96x96 image); the file is truncated or not an STL-10 image file")
    n = nbytes // IMAGE_BYTES
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, 3, SIZE, SIZE))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(0, n, CHUNK):
        chunk = np.ascontiguousarray(raw[i:i + CHUNK].transpose(0, 3, 2, 1))
        out[i:i + CHUNK] = resize_images(chunk, size)
    del raw
    return out


def read_stl_labels(path: Path, count: int, images: Path) -> np.ndarray:
    """An STL-10 label file (one byte per image, 1..10) -> int64 labels 0..9."""
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(y) != count:
        raise DataError(f"{path} holds {len(y)} labels but {images} holds {count} images")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: STL-10 labels must lie in 1..10, found {y.min()}..{y.max()}")
    return y - 1


@register_source("stl10")
def load_stl10(root: Path, cfg: object) -> ImageData:
    folder = next((f for f in (root / "stl10_binary", root / "stl10" / "stl10_binary") if f.is_dir()),
                  root / "stl10_binary")
    files = require_files(folder, STL10_FILES, "stl10",
                          hint="(the binary version, stl10_binary.tar.gz; torchvision's STL10(root, download=True) "
                               "writes this layout)")
    size = getattr(getattr(cfg, "data", None), "image_size", None) or DEFAULT_SIZE
    x = read_stl_images(files[0], size)
    y = read_stl_labels(files[1], len(x), files[0])
    xt = read_stl_images(files[2], size)
    yt = read_stl_labels(files[3], len(xt), files[2])
    unlabeled = read_stl_images(files[4], size)
    names = STL10_NAMES
    if (folder / "class_names.txt").exists():
        lines = [ln.strip() for ln in (folder / "class_names.txt").read_text().splitlines() if ln.strip()]
        if len(lines) != len(names):
            raise DataError(f"{folder / 'class_names.txt'} lists {len(lines)} classes, expected {len(names)}")
        names = lines
    return ImageData(x, y, xt, yt, names, files=files, extra_unlabeled=unlabeled)
