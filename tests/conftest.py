"""Shared fixtures: tiny configs on the embedded digits data."""

from __future__ import annotations

import pytest

from semi.config import load_config


def tiny_overrides(tmp_path, **extra) -> list[str]:
    base = {
        "train.out_dir": str(tmp_path / "run"), "train.epochs": 3, "train.steps_per_epoch": 4,
        "train.batch_size": 16, "train.eval_every": 6, "train.progress": False, "train.tensorboard": False,
        "train.log_every": 2, "model.width": 8, "algorithm.est_epoch": 0, "semi.warmup_epochs": 0,
        "semi.bank_size": 8, "semi.decay_every": 3, "semi.threshold": 0.3,  # tiny models are unconfident
        "daso.pretrain_epochs": 1, "daso.dist_update_every": 3,  # DASO's blend and loss run from step 4 of 12
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def tiny_config(tmp_path):
    def make(**extra):
        return load_config(None, tiny_overrides(tmp_path, **extra))

    return make
