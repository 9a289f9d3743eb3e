"""ImageNet-127: downsampled ImageNet (Imagenet32 / Imagenet64 of Chrabaszcz et al. 2017, image-net.org) with the
1000 classes grouped into the 127 WordNet classes of Huh et al. 2016 ("What makes ImageNet good for transfer
learning?"), the naturally long-tailed benchmark of the CISSL literature (CReST, CoSSL, ACR).

Files: `train_data_batch_1` .. `train_data_batch_10` and `val_data` (pickled dicts: 'data' (N, 3*S*S) uint8 in
R, G, B plane order, 'labels' 1..1000, optionally 'mean'; the `.npz` variants with the same arrays work too), in
`<root>/imagenet32/` (S = 32) or, when data.image_size is 64, `<root>/imagenet64/`. The folders of the official zips
(`Imagenet32_train/`, `Imagenet32_val/`, `Imagenet64_train_part1/`, `Imagenet64_train_part2/`, `Imagenet64_val/`)
may be kept inside that folder as extracted.

The 1000 -> 127 table is `imagenet127_map.json` beside this module (its "source" field says how it was derived and
checked); data.path may name another JSON file of the same form ({"map": [1000 ints], "class_names": [...]}, or a bare
list of 1000 ints) to use instead. Labels 0..126 follow Huh et al.'s class order, the one CoSSL's
construct_small_imagenet_127.py uses. natural_unlabeled is set: the labeled set is data.labeled_fraction of each
class and every training image is unlabeled (semi/data/prepare.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from semi.data.decode import load_npz
from semi.data.sources.base import ImageData, register_source
from semi.data.sources.cifar import entry, planes_to_nhwc, read_pickle
from semi.errors import DataError

MAP_FILE = Path(__file__).with_name("imagenet127_map.json")
TRAIN_FILES = [f"train_data_batch_{k}" for k in range(1, 11)]
VAL_FILE = "val_data"
NUM_IMAGENET_CLASSES = 1000


def load_class_map(path: Path = MAP_FILE) -> tuple[np.ndarray, list[str]]:
    """The 1000-entry table (index = downsampled-ImageNet label - 1) and the class names, validated."""
    try:
        doc: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"imagenet127: the class map {path} does not exist. Put the 1000 -> 127 table there "
                        f"(JSON: {{\"map\": [1000 ints], \"class_names\": [...]}}) or point data.path at one") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"imagenet127: cannot read the class map {path}: {exc}") from None
    table = doc.get("map") if isinstance(doc, dict) else doc
    if not isinstance(table, list) or len(table) != NUM_IMAGENET_CLASSES or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in table):
        raise DataError(f"imagenet127: {path} must hold 'map', a list of {NUM_IMAGENET_CLASSES} non-negative ints "
                        f"(the class of each ImageNet label 1..1000 in order)")
    k = max(table) + 1
    missing = sorted(set(range(k)) - set(table))
    if missing:
        raise DataError(f"imagenet127: the class map {path} never uses class(es) {missing[:10]}: labels must be 0..K-1")
    names = doc.get("class_names") if isinstance(doc, dict) else None
    if names is None:
        names = [str(c) for c in range(k)]
    if not isinstance(names, list) or len(names) != k:
        raise DataError(f"imagenet127: {path}: 'class_names' must list {k} names, one per class")
    return np.asarray(table, dtype=np.int64), [str(n) for n in names]


def _find(folder: Path, name: str, size: int) -> Path | None:
    """`name` (or `name.npz`) in the folder or in the official zips' subfolders."""
    subs = ["", f"Imagenet{size}_train", f"Imagenet{size}_train_part1", f"Imagenet{size}_train_part2",
            f"Imagenet{size}_val", f"Imagenet{size}_train_npz", f"Imagenet{size}_val_npz"]
    for sub in subs:
        for candidate in (folder / sub / name, folder / sub / (name + ".npz")):
            if candidate.is_file():
                return candidate
    return None


def read_batch(path: Path, size: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> NHWC uint8 images and 127-class labels."""
    if path.suffix == ".npz":
        d: dict = load_npz(path, ["data", "labels"])
    else:
        d = read_pickle(path)
    x = planes_to_nhwc(entry(d, "data", path), size, path)
    y = np.asarray(entry(d, "labels", path), dtype=np.int64).reshape(-1)
    if len(y) != len(x):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > NUM_IMAGENET_CLASSES):
        raise DataError(f"{path}: downsampled-ImageNet labels must lie in 1..{NUM_IMAGENET_CLASSES}, "
                        f"found {y.min()}..{y.max()}")
    return x, table[y - 1]


def read_split(files: list[Path], size: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches in order; each part is freed as it is copied, so the peak is the data plus one batch
    (Imagenet64's train set alone is 15 GB)."""
    parts = [read_batch(f, size, table) for f in files]
    n = sum(len(p[0]) for p in parts)
    images = np.empty((n, size, size, 3), dtype=np.uint8)  # pages are committed as they are filled
    labels = np.empty(n, dtype=np.int64)
    start = 0
    while parts:
        x, y = parts.pop(0)
        images[start:start + len(x)] = x
        labels[start:start + len(x)] = y
        start += len(x)
        del x, y
    return images, labels


@register_source("imagenet127")
def load_imagenet127(root: Path, cfg: Any) -> ImageData:
    data_cfg = getattr(cfg, "data", None)
    size = 64 if getattr(data_cfg, "image_size", None) == 64 else 32
    folder = root / f"imagenet{size}"
    map_path = Path(data_cfg.path).expanduser() if getattr(data_cfg, "path", None) else MAP_FILE
    table, names = load_class_map(map_path)
    wanted = TRAIN_FILES + [VAL_FILE]
    found = {name: _find(folder, name, size) for name in wanted}
    missing = [n for n in wanted if found[n] is None]
    if missing:
        listing = "\n".join(f"  {folder / n}" for n in missing)
        raise DataError(f"imagenet127: missing file(s):\n{listing}\n"
                        f"Download the downsampled ImageNet {size}x{size} (Imagenet{size}_train, Imagenet{size}_val "
                        f"from image-net.org, pickled batches or their .npz variant) and extract them into {folder}/ "
                        f"(set data.root or $SEMI_DATA_ROOT to its parent; data.image_size=64 selects imagenet64).")
    files = [p for p in (found[n] for n in wanted) if p is not None]
    x, y = read_split(files[:-1], size, table)
    xt, yt = read_split(files[-1:], size, table)
    return ImageData(x, y, xt, yt, names, files=files, natural_unlabeled=True)
