"""Metrics on hand-made predictions."""

import math

import numpy as np
import pytest

from semi.evaluation.metrics import (
    class_groups,
    classification_metrics,
    confusion_matrix,
    pseudo_label_quality,
    summarize_history,
)


def test_confusion_matrix_counts():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_balanced_and_group_accuracy_by_hand():
    # class 0: 4 images, 4 right; class 1: 2 images, 1 right; class 2: 2 images, 0 right
    target = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 0, 1, 0, 0, 1])
    m = classification_metrics(pred, target, 3, labeled_counts=[100, 10, 1])
    assert m["top1"] == 62.5
    assert m["per_class_accuracy"] == [100.0, 50.0, 0.0]
    assert m["balanced_accuracy"] == 50.0
    assert (m["head_accuracy"], m["medium_accuracy"], m["tail_accuracy"]) == (100.0, 50.0, 0.0)


def test_class_groups_are_thirds_by_labeled_count():
    counts = [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]
    assert class_groups(counts) == {"head": [0, 1, 2, 3], "medium": [4, 5, 6], "tail": [7, 8, 9]}
    # groups follow the labeled counts, not the class index (a reversed labeled order)
    assert class_groups(counts[::-1])["head"] == [6, 7, 8, 9]


def test_absent_class_is_nan_and_left_out_of_means():
    m = classification_metrics(np.array([0, 1]), np.array([0, 1]), 3, labeled_counts=[3, 2, 1])
    assert math.isnan(m["per_class_accuracy"][2])
    assert m["balanced_accuracy"] == 100.0


def test_pseudo_label_precision_recall_by_hand():
    target = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 0, 2])
    mask = np.array([1, 1, 1, 1, 0, 0])
    q = pseudo_label_quality(pred, target, mask, 3)
    # class 0: predicted (masked) twice, both right; 3 true -> recall 2/3
    # class 1: predicted twice (idx 2 wrong, idx 3 right) -> precision 1/2; 2 true -> recall 1/2
    # class 2: never selected -> precision NaN, recall 0
    assert q["precision"][:2] == [1.0, 0.5] and math.isnan(q["precision"][2])
    assert q["recall"] == [2 / 3, 0.5, 0.0]
    # images with no known label (-1) count nowhere, masked or not
    q2 = pseudo_label_quality(np.append(pred, [1, 2]), np.append(target, [-1, -1]), np.append(mask, [1, 0]), 3)
    assert q2["precision"][:2] == q["precision"][:2] and q2["recall"] == q["recall"]


def test_history_summary():
    hist = [{"top1": float(v), "balanced_accuracy": float(v) / 2} for v in range(30)]
    s = summarize_history(hist)
    assert s["best_top1"] == 29.0
    assert s["mean_last20_top1"] == np.mean(range(10, 30))
    assert s["mean_last20_balanced_accuracy"] == np.mean(range(10, 30)) / 2


def test_paired_difference_by_hand():

    from semi.evaluation.metrics import paired_difference

    a = {0: 70.0, 1: 72.0, 2: 74.0, 3: 99.0}
    b = {0: 65.0, 1: 66.0, 2: 65.0}  # seed 3 has no pair
    out = paired_difference(a, b)
    # differences 5, 6, 9: mean 6.667, sd = sqrt(((-5/3)^2 + (-2/3)^2 + (7/3)^2) / 2) = 2.0817; t(2) = 4.303
    half = 4.303 * math.sqrt(13 / 3) / math.sqrt(3)
    assert out["n"] == 3 and out["mean"] == pytest.approx(20 / 3) and out["min"] == 5.0
    assert out["low"] == pytest.approx(20 / 3 - half) and out["high"] == pytest.approx(20 / 3 + half)
    single = paired_difference({0: 1.0}, {0: 3.0})
    assert single["mean"] == -2.0 and math.isnan(single["low"])
    assert paired_difference({0: 1.0}, {1: 1.0}) is None
