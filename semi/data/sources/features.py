"""Feature vectors of any modality as a data source: `data.name=features data.path=FILE`.

The file's format and parts are described in `semi.data.feature_files`. The CISSL protocol then treats the
vectors as it treats images: the long-tailed labeled and unlabeled sets are sampled from the training part by
`data.num_labeled_max`, `data.imbalance_labeled` and `data.unlabeled_distribution`; rows of `x_unlabeled` join the
unlabeled set as images of a separate unlabeled split do. The vectors are standardised per dimension with the mean
and std of the labeled rows only (a dimension that is constant there keeps its scale), which the run keeps for
`semi predict` and `semi export`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semi.data.feature_files import check_vectors, read_features
from semi.data.sources.base import ImageData, register_source
from semi.errors import DataError

MIN_STD = 1e-6
"""A dimension whose labeled rows vary less than this is not rescaled (std taken as 1)."""


@dataclass
class FeatureData(ImageData):
    """The source container holding float32 feature vectors (N, D) where image sources hold images:
    `train_images` are the training vectors, `extra_unlabeled` the file's unlabeled vectors. `views` and
    `extra_views` are the file's precomputed encodings (N, K, D) of the same rows, if any."""

    views: np.ndarray | None = None
    extra_views: np.ndarray | None = None

    def check(self) -> None:
        path = self.files[0] if self.files else Path("<arrays>")
        dim = check_vectors(self.train_images, path, "x").shape[1]
        for part, x in (("x_test", self.test_images), ("x_unlabeled", self.extra_unlabeled)):
            if x is not None:
                check_vectors(x, path, part, dim)
        for part, y in (("y", self.train_labels), ("y_test", self.test_labels)):
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise DataError(f"features: {part} labels must lie in [0, {self.num_classes - 1}]")

    def standardisation(self, labeled: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
        rows = self.train_images[labeled].astype(np.float64)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        std = np.where(std < MIN_STD, 1.0, std)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@register_source("features")
def load_features(root: Path, cfg: Any) -> FeatureData:
    raw = getattr(cfg.data, "path", None)
    if not raw:
        raise DataError("features: set data.path to a features file (.npz, .npy folder, .csv or .parquet)")
    path = Path(raw).expanduser()
    f = read_features(path, getattr(cfg.data, "label_column", "label"))
    if f.held_out:
        print(f"features: {path} has no test part: the last 20% of each class's rows ({len(f.y_test)} rows) are "
              "the test set", file=sys.stderr)
    folder = path if path.is_dir() else path.parent if path.suffix == ".npy" else None  # a folder of .npy parts
    files = sorted(folder.glob("*.npy")) if folder is not None else [path]
    return FeatureData(f.x, f.y, f.x_test, f.y_test, f.class_names, files=files, extra_unlabeled=f.x_unlabeled,
                       views=f.views, extra_views=f.views_unlabeled)
