"""What every data source returns, and the registry that finds sources by name."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semi.errors import DataError


@dataclass
class ImageData:
    """A data set in memory. Images are uint8 NHWC (C = 1 or 3); labels int64 in [0, num_classes)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    files: list[Path] = field(default_factory=list)
    """Files read, for the data digest in results.json."""
    extra_unlabeled: np.ndarray | None = None
    """A separate unlabeled split (STL-10's 100k images), uint8 NHWC; its labels are unknown."""
    natural_unlabeled: bool = False
    """True for sources whose unlabeled set is not made by the long-tail protocol (imagenet127): the labeled set
    is data.labeled_fraction of each class and every training image is unlabeled."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __post_init__(self) -> None:
        self.train_labels = np.asarray(self.train_labels, dtype=np.int64)
        self.test_labels = np.asarray(self.test_labels, dtype=np.int64)
        self.check()

    def check(self) -> None:
        check_arrays(self.train_images, self.train_labels, self.num_classes, "train")
        check_arrays(self.test_images, self.test_labels, self.num_classes, "test")
        if self.extra_unlabeled is not None:
            check_arrays(self.extra_unlabeled, None, self.num_classes, "extra unlabeled")
            if self.extra_unlabeled.shape[1:] != self.train_images.shape[1:]:
                raise DataError(f"extra unlabeled images have shape {self.extra_unlabeled.shape[1:]} but train "
                                f"images {self.train_images.shape[1:]}")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"train images have shape {self.train_images.shape[1:]} but test images "
                            f"{self.test_images.shape[1:]}")

    def standardisation(self, labeled: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """What the model's inputs are standardised with. Images: the per-channel mean and std in [0, 1] of the
        training images (at most 10k of them), a property of the data set as in the literature; `labeled` (the
        labeled split's rows) is for sources whose statistics must come from labeled data only."""
        x = self.train_images[:: max(1, len(self.train_images) // 10000)].astype(np.float64) / 255.0
        mean = x.mean(axis=(0, 1, 2))
        std = x.std(axis=(0, 1, 2))
        return tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)

    def files_digest(self) -> str:
        """sha256 over the names, sizes and first/last MiB of the files read (cheap, catches swapped files)."""
        h = hashlib.sha256()
        for f in sorted(Path(p) for p in self.files):
            h.update(str(f.name).encode())
            size = f.stat().st_size
            h.update(str(size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), 2)
                    h.update(fh.read())
        return h.hexdigest()


def check_arrays(images: np.ndarray, labels: np.ndarray | None, num_classes: int, what: str) -> None:
    """Shape, dtype and label-range checks with messages that say what is wrong."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] not in (1, 3):
        shape = getattr(images, "shape", type(images).__name__)
        raise DataError(f"{what} images must be a uint8 array of shape (N, H, W, C) with C = 1 or 3, got {shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{what} images must have dtype uint8 (0..255), got {images.dtype}")
    if labels is None:
        return
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{what} labels must be a 1-D array with one label per image: {len(images)} images, "
                        f"labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{what} labels must lie in [0, {num_classes - 1}] for {num_classes} classes, "
                        f"found {labels.min()}..{labels.max()}")


SourceLoader = Callable[[Path, "object"], ImageData]
_SOURCES: dict[str, SourceLoader] = {}


def register_source(name: str) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator: `@register_source("cifar10") def load(root, cfg) -> ImageData`."""

    def wrap(fn: SourceLoader) -> SourceLoader:
        if name in _SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        _SOURCES[name] = fn
        return fn

    return wrap


def get_source(name: str) -> SourceLoader:
    from semi.data import sources  # noqa: F401  (importing the package registers every source)

    if name not in _SOURCES:
        raise DataError(f"unknown data set {name!r}; available: {', '.join(sorted(_SOURCES))}")
    return _SOURCES[name]


def available_sources() -> list[str]:
    from semi.data import sources  # noqa: F401

    return sorted(_SOURCES)


def require_files(folder: Path, names: list[str], dataset: str, hint: str = "") -> list[Path]:
    """Fail with the exact files expected and where, when any is missing (no network download here)."""
    paths = [folder / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        listing = "\n".join(f"  {p}" for p in missing)
        raise DataError(f"{dataset}: missing file(s):\n{listing}\n"
                        f"Put the data set's standard files there (set data.root or $SEMI_DATA_ROOT to the parent "
                        f"folder).{(' ' + hint) if hint else ''}")
    return paths
