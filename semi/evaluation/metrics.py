"""Metrics that matter under imbalance: top-1, balanced accuracy, per-class and head/medium/tail accuracy,
macro-F1, accuracy under shifted test label distributions, the confusion matrix, and summaries over evaluations
(best, mean of the last 20)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    idx = np.asarray(target, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_groups(labeled_counts: list[int] | np.ndarray) -> dict[str, list[int]]:
    """Classes sorted by labeled count (most first, ties by class index) and cut into thirds as equal as
    possible, the larger thirds first (10 classes: 4 head, 3 medium, 3 tail)."""
    counts = np.asarray(labeled_counts)
    order = sorted(range(len(counts)), key=lambda k: (-counts[k], k))
    parts = np.array_split(np.asarray(order, dtype=np.int64), 3)
    return {name: sorted(int(k) for k in part) for name, part in zip(("head", "medium", "tail"), parts, strict=True)}


def _nanmean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def classification_metrics(pred: np.ndarray, target: np.ndarray, num_classes: int,
                           labeled_counts: list[int] | np.ndarray) -> dict[str, object]:
    """Accuracies in percent. Per-class accuracy is NaN for a class absent from `target`."""
    return metrics_from_confusion(confusion_matrix(pred, target, num_classes), labeled_counts)


def metrics_from_confusion(cm: np.ndarray, labeled_counts: list[int] | np.ndarray) -> dict[str, object]:
    """The same metrics from a [true, predicted] count matrix (what sharded evaluation reduces)."""
    cm = np.asarray(cm, dtype=np.int64)
    num_classes = cm.shape[0]
    support = cm.sum(axis=1)
    per_class = [float(100.0 * cm[k, k] / support[k]) if support[k] else float("nan") for k in range(num_classes)]
    groups = class_groups(labeled_counts)
    out: dict[str, object] = {
        "top1": float(100.0 * np.trace(cm) / max(1, cm.sum())),
        "balanced_accuracy": _nanmean(per_class),
        "per_class_accuracy": per_class,
        **{f"{g}_accuracy": _nanmean([per_class[k] for k in ks]) for g, ks in groups.items()},
        "class_groups": groups,
        "macro_f1": macro_f1(cm),
        "shifted_accuracy": shifted_accuracy(per_class, labeled_counts),
        "confusion_matrix": cm.tolist(),
    }
    return out


def macro_f1(cm: np.ndarray) -> float:
    """Mean over the classes present in the test set of F1 = 2 TP / (2 TP + FP + FN), in percent."""
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = support > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    return float(100.0 * f1[present].mean())


def shifted_accuracy(per_class: list[float], labeled_counts: list[int] | np.ndarray) -> dict[str, float]:
    """Expected accuracy (%) when the test set is resampled to the labeled set's class proportions ("consistent")
    or to those proportions reversed ("reversed": class k takes the share of class C-1-k), as CoSSL (Fan et al.,
    CVPR 2022) evaluates under shifted test distributions; the expectation of the resampled accuracy, so with no
    sampling noise. Classes absent from the test set are left out and the weights renormalised."""
    acc = np.asarray(per_class, dtype=np.float64)
    counts = np.asarray(labeled_counts, dtype=np.float64)
    out = {}
    for name, w in (("consistent", counts), ("reversed", counts[::-1])):
        ok = ~np.isnan(acc) & (w > 0)
        out[name] = float((acc[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    return out


def pseudo_label_quality(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                         num_classes: int) -> dict[str, list[float]]:
    """Per-class precision (of masked pseudo-labels predicted as k, the share truly k) and recall (of unlabeled
    images truly k, the share masked and predicted k). NaN where undefined. Images without a known label (target
    -1: e.g. STL-10's unlabeled split) are left out, as in the trainer's counters."""
    known = target >= 0
    sel = mask.astype(bool) & known
    predicted = np.bincount(pred[sel], minlength=num_classes)
    correct = np.bincount(pred[sel & (pred == target)], minlength=num_classes)
    true = np.bincount(target[known], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, correct / np.maximum(predicted, 1), np.nan)
        recall = np.where(true > 0, correct / np.maximum(true, 1), np.nan)
    return {"precision": precision.tolist(), "recall": recall.tolist()}


def summarize_history(history: list[dict[str, float]], keys: tuple[str, ...] = ("top1", "balanced_accuracy"),
                      last: int = 20) -> dict[str, float]:
    """Best and mean of the last `last` evaluations of each key (the literature's reporting)."""
    out: dict[str, float] = {}
    for key in keys:
        values = [h[key] for h in history if key in h]
        if values:
            out[f"best_{key}"] = float(max(values))
            out[f"mean_last{last}_{key}"] = float(np.mean(values[-last:]))
    return out


def window_means(sums: dict[str, Any], steps: int) -> dict[str, float]:
    """An evaluation window's step logs as `window_<name>`: per-step means, except that a pair `<x>_hits` and
    `<x>_total` (counts, e.g. correct and masked pseudo-labels) becomes the ratio `window_<x>` = hits / total
    over the whole window (NaN when total is 0): a mean of per-step ratios would weight small batches wrongly."""
    out: dict[str, float] = {}
    for k, v in sums.items():
        if k.startswith("loss"):
            continue
        if k.endswith("_hits") and k[:-5] + "_total" in sums:
            total = float(sums[k[:-5] + "_total"])
            out[f"window_{k[:-5]}"] = float(v) / total if total > 0 else float("nan")
        elif not (k.endswith("_total") and k[:-6] + "_hits" in sums):
            out[f"window_{k}"] = float(v) / max(1, steps)
    return out


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond 30: the normal's 1.96 is within 4%).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float] | None:
    """Mean of a[s] - b[s] over the seeds s both have, with its 95% t-interval (mean +- t * sd / sqrt(n)); None
    without a common seed. With one seed the interval is undefined (NaN)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    n, mean = len(d), float(d.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "low": math.nan, "high": math.nan, "min": mean}
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * float(d.std(ddof=1)) / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "min": float(d.min())}
