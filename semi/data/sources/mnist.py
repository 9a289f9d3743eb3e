"""MNIST and Fashion-MNIST.

mnist: the keras npz layout `<root>/mnist/mnist.npz` (x_train, y_train, x_test, y_test; 28x28 uint8), or the
original idx files in torchvision's layout `<root>/MNIST/raw/`.
fashion_mnist: the original idx files (gzip or plain), searched in `<root>/fashion-mnist/`, `<root>/fashion_mnist/`,
`<root>/FashionMNIST/raw/` (torchvision) and `/usr/share/datasets/fashion-mnist/` (Debian's dataset-fashion-mnist).
The idx files are parsed here with numpy: no download and no extra dependency.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from semi.data.decode import load_npz
from semi.data.sources.base import ImageData, register_source, require_files
from semi.errors import DataError

DIGIT_NAMES = [str(k) for k in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's dataset-fashion-mnist installs the four idx .gz files (a module constant so tests can move it)."""
IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """An idx file, gzip or plain (told apart by content, not name): magic 0x00 0x00 0x08 D, D big-endian uint32
    sizes, then the uint8 values. Any damage (bad magic, short data, broken gzip) is a DataError naming the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad magic number {raw[:4].hex() or 'none'}; "
                        f"expected 000008xx)")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise DataError(f"{path}: expected an idx file with {ndim} dimension(s), the header says {dims}")
    if len(raw) < 4 + 4 * dims:
        raise DataError(f"{path} is truncated: the header is incomplete")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    expected = int(np.prod(shape, dtype=np.int64))
    if data.size != expected:
        what = "truncated" if data.size < expected else "longer than its header says"
        raise DataError(f"{path} is {what}: header says shape {shape} ({expected} values), found {data.size}")
    return data.reshape(shape)


def read_idx_set(files: list[Path], names: list[str]) -> ImageData:
    """train images, train labels, test images, test labels (idx) -> ImageData, checking counts match."""
    x, y, xt, yt = (read_idx(f, ndim) for f, ndim in zip(files, (3, 1, 3, 1)))
    for images, labels, img_file, lab_file in ((x, y, files[0], files[1]), (xt, yt, files[2], files[3])):
        if len(images) != len(labels):
            raise DataError(f"{img_file} holds {len(images)} images but {lab_file} holds {len(labels)} labels")
    return ImageData(x[..., None], y, xt[..., None], yt, names, files=list(files))


def _find_idx(folder: Path) -> list[Path] | None:
    """The four idx files in `folder`, each either `.gz` or uncompressed; None when the folder has none of them."""
    found = []
    for name in IDX_NAMES:
        candidates = [folder / (name + suffix) for suffix in (".gz", "")]
        found.append(next((c for c in candidates if c.is_file()), None))
    if not any(found):
        return None
    missing = [folder / (n + ".gz") for n, f in zip(IDX_NAMES, found) if f is None]
    if missing:
        listing = "\n".join(f"  {p} (or without .gz)" for p in missing)
        raise DataError(f"incomplete idx set in {folder}: missing\n{listing}")
    return found  # type: ignore[return-value]


@register_source("mnist")
def load_mnist(root: Path, cfg: object) -> ImageData:
    npz = root / "mnist" / "mnist.npz"
    if not npz.exists():
        files = _find_idx(root / "MNIST" / "raw")
        if files is not None:
            return read_idx_set(files, DIGIT_NAMES)
    (path,) = require_files(root / "mnist", ["mnist.npz"], "mnist",
                            hint="(keras layout: arrays x_train, y_train, x_test, y_test; torchvision's "
                                 "MNIST/raw/*-ubyte.gz idx files under the root work too)")
    d = load_npz(path, ["x_train", "y_train", "x_test", "y_test"])
    x, xt = (d[k] if d[k].ndim == 4 else d[k][..., None] for k in ("x_train", "x_test"))
    return ImageData(x, d["y_train"], xt, d["y_test"], DIGIT_NAMES, files=[path])


@register_source("fashion_mnist")
def load_fashion_mnist(root: Path, cfg: object) -> ImageData:
    folders = [root / "fashion-mnist", root / "fashion_mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION]
    for folder in folders:
        files = _find_idx(folder)
        if files is not None:
            return read_idx_set(files, FASHION_NAMES)
    require_files(root / "fashion-mnist", [n + ".gz" for n in IDX_NAMES], "fashion_mnist",
                  hint="(the original idx files, gzip or not; `apt-get install dataset-fashion-mnist` installs them "
                       f"in {DEBIAN_FASHION}/, which is searched too)")
    raise AssertionError("unreachable: require_files raises")
