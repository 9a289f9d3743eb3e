"""The CISSL data protocol: long-tailed class counts and the standard labeled / unlabeled / validation split.

Classes are indexed so that class 0 has the most labeled images (the data set's own class
order, as in the literature). Counts: N_k = floor(N_1 * gamma^(-k/(L-1))) for k < L-1 and N_{L-1} =
floor(N_1 / gamma). The unlabeled pool of class k is the first N_k + M_k images of that class: the labeled
ones included with their labels hidden (kept only for diagnostics).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from semi.errors import DataError

HOLDOUT_FRACTION = 0.2
"""Share of each class held out as the test set by user sources that come without a test part."""


def holdout_count(n: int) -> int:
    """Test items taken from a class of n when there is no test part: ceil(20%), kept below n."""
    return min(max(n - 1, 0), math.ceil(HOLDOUT_FRACTION * n))


def longtail_counts(n_max: int, imbalance: float, num_classes: int) -> list[int]:
    """Per-class counts n_max * imbalance^(-k/(L-1)), floored; the last class gets exactly floor(n_max/imbalance)."""
    if imbalance < 1:
        raise DataError(f"imbalance ratio must be >= 1, got {imbalance}")
    if num_classes == 1:
        return [int(n_max)]
    counts = [math.floor(n_max * imbalance ** (-k / (num_classes - 1))) for k in range(num_classes - 1)]
    return counts + [math.floor(n_max / imbalance)]


DISTRIBUTIONS = ("consistent", "uniform", "reversed", "middle", "head_tail")


def simpro_order(num_classes: int, setting: str) -> list[int]:
    """SimPro's unknown-distribution settings as a permutation of the consistent counts (its released code's
    `make_imb_data`, flags 3 and 4): middle ("centric") puts the largest counts in the middle classes, head_tail
    ("off-centric") at both ends. 10 classes: middle [8, 6, 4, 2, 0, 1, 3, 5, 7, 9], head_tail
    [1, 3, 5, 7, 9, 8, 6, 4, 2, 0] (position -> which consistent count it takes)."""
    evens, odds = list(range(0, num_classes, 2)), list(range(1, num_classes, 2))
    return evens[::-1] + odds if setting == "middle" else odds + evens[::-1]


def unlabeled_counts(m_max: int, imbalance_labeled: float, imbalance_unlabeled: float | None,
                     distribution: str, num_classes: int) -> list[int]:
    """M_k for the consistent / uniform / reversed settings (reversed: the consistent list backwards) and SimPro's
    middle / head_tail (the consistent list permuted, see `simpro_order`)."""
    if distribution not in DISTRIBUTIONS:
        raise DataError(f"unknown unlabeled distribution {distribution!r}; allowed: {', '.join(DISTRIBUTIONS)}")
    if distribution == "uniform":
        gamma = 1.0 if imbalance_unlabeled is None else imbalance_unlabeled
    else:
        gamma = imbalance_labeled if imbalance_unlabeled is None else imbalance_unlabeled
    counts = longtail_counts(m_max, gamma, num_classes)
    if distribution == "reversed":
        counts = counts[::-1]
    elif distribution in ("middle", "head_tail"):
        counts = [counts[i] for i in simpro_order(num_classes, distribution)]
    return counts


@dataclass
class Split:
    """Indices into the training images. `unlabeled` includes the labeled images (labels hidden)."""

    labeled: np.ndarray
    unlabeled: np.ndarray
    validation: np.ndarray
    labeled_counts: list[int]
    unlabeled_counts: list[int]
    """Per class, unlabeled images beyond the labeled ones (M_k); the pool holds N_k + M_k of class k."""

    def digest(self) -> str:
        """sha256 over the three index arrays: identifies the split in results.json."""
        h = hashlib.sha256()
        for arr in (self.labeled, self.unlabeled, self.validation):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()


def class_order(labels: np.ndarray, num_classes: int, order: str, seed: int) -> list[np.ndarray]:
    """Per class, the indices of its images in data order ('first') or in a seeded permutation ('shuffle')."""
    per_class = [np.flatnonzero(labels == k) for k in range(num_classes)]
    if order == "shuffle":
        rng = np.random.default_rng(seed)
        per_class = [rng.permutation(idx) for idx in per_class]
    elif order != "first":
        raise DataError(f"unknown split order {order!r}; allowed: first, shuffle")
    return per_class


def make_split(labels: np.ndarray, num_classes: int, labeled_counts: list[int], unlabeled_counts: list[int],
               val_per_class: int = 0, order: str = "first", seed: int = 0, names: list[str] | None = None) -> Split:
    """The standard split. Validation images (if any) are taken from the END of each class's order, so the
    labeled and unlabeled sets are the same with or without a validation split."""
    labels = np.asarray(labels)
    per_class = class_order(labels, num_classes, order, seed)
    problems = []
    lab, unl, val = [], [], []
    for k, idx in enumerate(per_class):
        name = names[k] if names else str(k)
        n_k, m_k = labeled_counts[k], unlabeled_counts[k]
        available = len(idx) - val_per_class
        if n_k < 1:
            problems.append(f"class {k} ({name}) gets 0 labeled images; lower the imbalance ratio or raise N_1")
        if n_k + m_k > available or m_k < 0 or n_k > available:  # m_k < 0: a derived budget that did not fit
            problems.append(f"class {k} ({name}) needs {n_k} labeled + {m_k} unlabeled"
                            f"{f' + {val_per_class} validation' if val_per_class else ''} images but has {len(idx)}")
        lab.append(idx[:n_k])
        unl.append(idx[: n_k + m_k])
        if val_per_class:
            val.append(idx[len(idx) - val_per_class:])
    if problems:
        raise DataError("the imbalance setting does not fit the data:\n" + "\n".join(f"  - {p}" for p in problems))
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return Split(cat(lab), cat(unl), cat(val), list(labeled_counts), list(unlabeled_counts))
