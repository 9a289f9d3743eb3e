"""Defaults and choices the review of the bases against their authors' code found unpinned: ABC predicts with its
auxiliary (balanced) classifier; DARP starts after 40% of training (the authors' --warm 200 of 500 epochs);
SimPro's tau is 2 (their CIFAR-10 and STL-10 scripts)."""

from __future__ import annotations

import pytest
import torch

from semi import specs
from semi.algorithms.base import StepInfo
from semi.algorithms.darp import DarpConfig
from semi.algorithms.registry import build_algorithm
from semi.algorithms.simpro import SimProConfig
from semi.config import load_config


def test_abc_predicts_with_its_auxiliary_classifier(tiny_config):
    from semi.engine.trainer import Trainer

    assert specs.spec("abc").eval_head == "balanced"
    trainer = Trainer(tiny_config(**{"algorithm.name": "abc", "train.epochs": 1, "train.steps_per_epoch": 2,
                                     "train.eval_every": 2}))
    ev = trainer.evaluate()
    assert ev["head_used"] == "balanced" and ev["top1"] == ev["heads"]["balanced"]["top1"]
    assert trainer.preprocessing()["eval_head"] == "balanced"  # what `semi predict` uses


def test_darp_starts_after_forty_percent_of_training():
    assert DarpConfig().warmup == 0.4 and DarpConfig().solve_every == 10
    algo = build_algorithm(load_config(None, ["algorithm.name=darp"]), 3, torch.tensor([0.6, 0.3, 0.1]), 4,
                           pool_size=6)
    active = [algo.active(StepInfo(step=10 * e, epoch=e, total_steps=100, total_epochs=10)) for e in range(10)]
    assert active == [False] * 5 + [True] * 5  # epoch index > 0.4 * 10


def test_simpro_tau_default():
    assert SimProConfig().tau == pytest.approx(2.0) and SimProConfig().momentum == pytest.approx(0.9)
