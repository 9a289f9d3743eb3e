"""MNIST (the keras npz layout) and Fashion-MNIST (the original idx files, e.g. from Debian's
dataset-fashion-mnist in /usr/share/datasets/fashion-mnist/)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip or plain): magic 0x0000 08 D, then D big-endian sizes, then uint8 data."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


@register_source("mnist")
def load_mnist(root: Path, cfg: object) -> ImageData:
    (path,) = require_files(root / "mnist", ["mnist.npz"], "mnist", hint="(keras layout: x_train, y_train, ...)")
    d = np.load(path)
    return ImageData(d["x_train"][..., None], d["y_train"], d["x_test"][..., None], d["y_test"],
                     [str(k) for k in range(10)], files=[path])


@register_source("fashion_mnist")
def load_fashion_mnist(root: Path, cfg: object) -> ImageData:
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for folder in (root / "fashion-mnist", root / "fashion_mnist", DEBIAN_FASHION):
        for suffix in (".gz", ""):
            if all((folder / (n + suffix)).exists() for n in names):
                files = [folder / (n + suffix) for n in names]
                x, y, xt, yt = (read_idx(f) for f in files)
                return ImageData(x[..., None], y, xt[..., None], yt, FASHION_NAMES, files=files)
    require_files(root / "fashion-mnist", [n + ".gz" for n in names], "fashion_mnist",
                  hint="(or `apt-get install dataset-fashion-mnist`, which installs them in "
                       "/usr/share/datasets/fashion-mnist/)")
    raise AssertionError("unreachable")
