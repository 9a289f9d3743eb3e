"""benchmarks/overclaim.py: the shares of each true class called the rarest class, and the post-hoc mix adjustment,
on hand-made predictions."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import overclaim  # noqa: E402


def test_called_as_counts_each_true_class_separately():
    truth = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([2, 0, 2, 0, 2, 1, 2])
    shares = overclaim.called_as(pred, truth, k=2, num_classes=4)
    assert shares[:3] == [50.0, 50.0, 100.0]
    assert math.isnan(shares[3])  # no image of class 3


def test_mix_adjusted_top1_subtracts_alpha_log_of_the_pool_mix():
    # two classes; the pool is predicted 0 three times and 1 once: add-one mix (4/6, 2/6)
    pool_pred = np.array([0, 0, 0, 1])
    logits = np.array([[0.5, 0.0], [0.2, 0.0]])
    truth = np.array([0, 1])
    assert overclaim.mix_adjusted_top1(logits, truth, pool_pred, alpha=0.0) == 50.0
    # -alpha log pi adds 0.405 alpha to class 0 and 1.099 alpha to class 1: a shift of 0.693 alpha toward class 1.
    # alpha 0.5 (0.347) flips the second row (margin 0.2) only; alpha 1 (0.693) flips both rows
    assert overclaim.mix_adjusted_top1(logits, truth, pool_pred, alpha=0.5) == 100.0
    assert overclaim.mix_adjusted_top1(logits, truth, pool_pred, alpha=1.0) == 50.0
