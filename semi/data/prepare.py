"""From a config to the arrays a run trains on: load the source, resize, split, describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semi.config import Config, default_data_root
from semi.data.protocol import Split, longtail_counts, make_split, unlabeled_counts
from semi.data.sources.base import ImageData, get_source
from semi.errors import DataError
from semi.specs import base_spec


@dataclass
class PreparedData:
    """Everything the loaders and the evaluation need. `images`/`labels` cover the training side: the source's
    training images, then any separate unlabeled split (label -1: unknown)."""

    images: np.ndarray
    labels: np.ndarray
    split: Split
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    files_digest: str
    views: np.ndarray | None = None
    """Feature data with offline views: K precomputed encodings of every training row, (N, K, D) aligned with
    `images`; the step batches draw the training views from them."""

    @property
    def is_vector(self) -> bool:
        """True for feature vectors (N, D), False for images (N, H, W, C)."""
        return self.images.ndim == 2

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def labeled_indices(self, true_labels: bool = False) -> np.ndarray:
        """Training images used with their labels: the labeled split (in its order), or for the oracle
        (`true_labels`) also every pool image whose label is known (sorted, unique)."""
        if not true_labels:
            return self.split.labeled
        pool = self.split.unlabeled
        return np.union1d(self.split.labeled, pool[self.labels[pool] >= 0])

    @property
    def labeled_prior(self) -> np.ndarray:
        counts = np.bincount(self.labels[self.split.labeled], minlength=self.num_classes).astype(np.float64)
        return counts / counts.sum()

    def unlabeled_true_counts(self) -> np.ndarray:
        """Hidden per-class counts of the unlabeled pool (unknown labels are not counted)."""
        y = self.labels[self.split.unlabeled]
        return np.bincount(y[y >= 0], minlength=self.num_classes)

    def describe(self) -> str:
        lab = np.bincount(self.labels[self.split.labeled], minlength=self.num_classes)
        unl = self.unlabeled_true_counts()
        extra = int((self.labels[self.split.unlabeled] < 0).sum())
        width = max(5, *(len(n) for n in self.class_names))
        in_pool = bool(np.isin(self.split.labeled, self.split.unlabeled).all())  # data.labeled_in_pool
        lines = [f"{'class':<{width}}  {'labeled':>8}  {'unlabeled':>9}  {'unlabeled set':>15}",
                 f"{'':<{width}}  {'(N_k)':>8}  {'(M_k)':>9}  {'(incl. labeled)' if in_pool else '':>15}"]
        for k, name in enumerate(self.class_names):
            lines.append(f"{name:<{width}}  {lab[k]:>8}  {self.split.unlabeled_counts[k]:>9}  {unl[k]:>15}")
        lines.append(f"{'total':<{width}}  {lab.sum():>8}  {sum(self.split.unlabeled_counts):>9}  {unl.sum():>15}")
        lines.append("unlabeled (M_k): images beyond the labeled ones; unlabeled set: what training uses without "
                     "labels = " + ("the M_k images plus the labeled images, their labels hidden" if in_pool else
                                    "the M_k images only (data.labeled_in_pool=false)"))
        if extra:
            lines.append(f"plus {extra} unlabeled images of unknown class (separate unlabeled split)")
        if len(self.split.validation):
            lines.append(f"validation: {len(self.split.validation)} images (balanced)")
        shape = f"{self.images.shape[1]} features per row" if self.is_vector else f"image shape {self.images.shape[1:]}"
        lines.append(f"test: {len(self.test_labels)} {'rows' if self.is_vector else 'images'}; {shape}")
        if self.views is not None:
            lines.append(f"offline views: {self.views.shape[1]} encodings of every training row")
        return "\n".join(lines)


def resize_images(images: np.ndarray, size: int | tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """Bilinear (antialiased) resize of uint8 NHWC images to size x size (or (height, width)), in chunks."""
    height, width = (size, size) if isinstance(size, int) else size
    if images.shape[1] == height and images.shape[2] == width:
        return images
    import torch  # here, not at the top: data-path errors must not wait for torch to load
    import torch.nn.functional as F

    out = np.empty((len(images), height, width, images.shape[3]), dtype=np.uint8)
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(images[i:i + chunk]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def load_source(cfg: Config) -> ImageData:
    root = Path(cfg.data.root).expanduser() if cfg.data.root else default_data_root()
    data = get_source(cfg.data.name)(root, cfg)
    if cfg.data.image_size is not None and data.train_images.ndim == 4:
        data.train_images = resize_images(data.train_images, cfg.data.image_size)
        data.test_images = resize_images(data.test_images, cfg.data.image_size)
        if data.extra_unlabeled is not None:
            data.extra_unlabeled = resize_images(data.extra_unlabeled, cfg.data.image_size)
    return data


def split_counts(cfg: Config, num_classes: int) -> tuple[list[int], list[int]]:
    d = cfg.data
    lab = longtail_counts(d.num_labeled_max, d.imbalance_labeled, num_classes)
    unl = unlabeled_counts(d.num_unlabeled_max, d.imbalance_labeled, d.imbalance_unlabeled,
                           d.unlabeled_distribution, num_classes)
    return lab, unl


def prepare_data(cfg: Config, data: ImageData | None = None) -> PreparedData:
    data = data if data is not None else load_source(cfg)
    d = cfg.data
    labels = data.train_labels
    num_classes = data.num_classes
    if data.natural_unlabeled:
        # ImageNet-127 style: a fraction of every class is labeled, every training image is unlabeled.
        per_class = np.bincount(labels, minlength=num_classes)
        lab = [max(1, int(round(d.labeled_fraction * n))) if n else 0 for n in per_class]
        unl = [int(n) - d.val_per_class - lab_k for n, lab_k in zip(per_class, lab, strict=True)]
    else:
        lab, unl = split_counts(cfg, num_classes)
        if data.extra_unlabeled is not None:
            unl = [0] * num_classes  # the unlabeled set is the separate split (plus the labeled images)
    split = make_split(labels, num_classes, lab, unl, d.val_per_class, d.split_order, d.split_seed,
                       data.class_names)
    if not d.labeled_in_pool:
        split.unlabeled = split.unlabeled[~np.isin(split.unlabeled, split.labeled)]  # in the pool's order
    images, all_labels = data.train_images, labels
    if data.extra_unlabeled is not None:
        n = len(images)
        images = np.concatenate([images, data.extra_unlabeled])
        all_labels = np.concatenate([labels, np.full(len(data.extra_unlabeled), -1, dtype=np.int64)])
        split.unlabeled = np.concatenate([split.unlabeled, np.arange(n, len(images), dtype=np.int64)])
    if len(split.unlabeled) == 0 and base_spec(cfg.algorithm.name).uses_unlabeled:
        raise DataError("the unlabeled set is empty: raise data.num_unlabeled_max")
    mean, std = data.standardisation(split.labeled)
    digest = data.files_digest() if data.files else "embedded:" + cfg.data.name
    return PreparedData(images, all_labels, split, data.test_images, data.test_labels, list(data.class_names),
                        mean, std, digest, views=offline_views(data, d.views))


def offline_views(data: ImageData, mode: str) -> np.ndarray | None:
    """The training rows' precomputed views when `data.views` asks for them (offline, or auto and the file has
    them), aligned with the prepared rows (training part, then the separate unlabeled part)."""
    views = getattr(data, "views", None)
    if mode == "generated" or (mode == "auto" and views is None):
        return None
    if views is None:
        raise DataError("data.views=offline: the features file holds no views array (N, K, D); add one, or use "
                        "data.views=generated")
    extra = getattr(data, "extra_views", None)
    return np.concatenate([views, extra]) if extra is not None else views
