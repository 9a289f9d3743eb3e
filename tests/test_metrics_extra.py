"""The metrics the field reports beside top-1: macro-F1, top-5, expected calibration error and accuracy under
shifted test label distributions (CoSSL's protocol), each on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semi.evaluation.evaluate import ECE_BINS, probability_metrics, probability_sums
from semi.evaluation.metrics import macro_f1, metrics_from_confusion, shifted_accuracy


def test_macro_f1_by_hand():
    cm = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 0]])  # class 2 never predicted right
    # F1: class 0: 2*3 / (4 + 4) = 0.75; class 1: 2*2 / (2 + 3) = 0.8; class 2: 0
    assert macro_f1(cm) == pytest.approx(100 * (0.75 + 0.8 + 0.0) / 3)
    assert math.isnan(macro_f1(np.zeros((2, 2), dtype=int)))


def test_shifted_accuracy_weights_per_class_accuracy_by_the_labeled_mix_and_its_reverse():
    per_class = [90.0, 60.0, 30.0]
    s = shifted_accuracy(per_class, [6, 3, 1])
    assert s["consistent"] == pytest.approx((90 * 6 + 60 * 3 + 30 * 1) / 10)
    assert s["reversed"] == pytest.approx((90 * 1 + 60 * 3 + 30 * 6) / 10)
    s = shifted_accuracy([90.0, float("nan"), 30.0], [6, 3, 1])  # a class absent from the test set
    assert s["consistent"] == pytest.approx((90 * 6 + 30 * 1) / 7)
    m = metrics_from_confusion(np.array([[9, 1], [4, 6]]), [8, 2])
    assert m["shifted_accuracy"]["consistent"] == pytest.approx((90 * 8 + 60 * 2) / 10)


def test_ece_and_top5_by_hand():
    # two images at confidence ~0.9 (bin (0.8667, 0.9333]), one right; one at 0.55 (bin (0.5333, 0.6]), right
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05, 0.0001, 0.0, 0.0],
                                     [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
                                     [0.25, 0.55, 0.2, 0.0, 0.0, 0.0]]) + 1e-12)
    target = torch.tensor([0, 1, 1])
    sums = probability_sums(logits, target).numpy()
    count, conf, right = sums[:-1].reshape(3, ECE_BINS)
    assert count[13] == 2 and count[8] == 1 and count.sum() == 3
    m = probability_metrics(sums)
    c = torch.softmax(logits, 1).max(1).values.double().numpy()
    expected = (abs(1 - (c[0] + c[1])) + abs(1 - c[2])) / 3
    assert m["ece"] == pytest.approx(100 * expected)
    assert m["top5"] == pytest.approx(100.0)  # every true class among the 5 most probable of 6
    few = probability_metrics(probability_sums(logits[:, :2], torch.tensor([1, 0, 0])).numpy())
    assert few["top5"] == pytest.approx(100.0)  # fewer than 5 classes: top-k over all of them
