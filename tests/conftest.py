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


def _flat_state(trainer) -> dict:
    out = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    out.update({f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()})
    out.update({f"alg.{k}": v for k, v in trainer.algorithm.state_dict().items()})
    return out


@pytest.fixture
def exact_resume(tiny_config, tmp_path):
    """check(name, **overrides): 12 steps straight vs. the straight run's step-6 checkpoint resumed into a new run
    for 6 more; asserts bit-identical model, EMA and algorithm state and history; returns (straight, state keys)."""
    import torch

    from semi.engine.trainer import Trainer

    def check(name: str, **extra):
        straight = Trainer(tiny_config(**{"algorithm.name": name, "train.out_dir": str(tmp_path / "a"), **extra}))
        straight.fit()
        resumed = Trainer(tiny_config(**{"algorithm.name": name, "train.out_dir": str(tmp_path / "b"), **extra}))
        resumed.resume(str(tmp_path / "a" / "checkpoints" / "step-0000006.pt"))
        assert resumed.step == 6
        resumed.fit()
        a, b = _flat_state(straight), _flat_state(resumed)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
        assert straight.history == resumed.history
        return straight, set(a)

    return check
