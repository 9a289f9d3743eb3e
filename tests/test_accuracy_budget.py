"""The accuracy benchmark's budget axis (benchmarks/accuracy.py --budget): the protocol stretched, cells planned."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from accuracy import PROTOCOLS, cells, with_budget  # noqa: E402


def test_budget_stretches_the_run_and_keeps_the_epoch_based_settings():
    base = PROTOCOLS["mnist"]
    p = with_budget(base, 6000)
    assert p.name == "mnist-6000" and p.budget == 6000
    assert "train.epochs=60" in p.overrides and "train.eval_every=300" in p.overrides
    assert not any(o in p.overrides for o in ("train.epochs=20", "train.eval_every=100"))
    # E_est, SeMi's warm-up, the bank's decay interval and steps per epoch are what the 2,000-step protocol uses
    for kept in ("train.steps_per_epoch=100", "algorithm.est_epoch=1", "semi.warmup_epochs=1",
                 "semi.decay_every=100", "data.imbalance_labeled=100"):
        assert kept in p.overrides
    assert with_budget(base, None) is base


def test_budget_plans_choose_methods_seeds_and_settings():
    c6 = [c for c, _ in cells(with_budget(PROTOCOLS["mnist"], 6000))]
    assert len(c6) == 4 * 3 * 5 and c6[:4] == ["consistent/dualhead/0", "consistent/semi/0", "consistent/acr/0",
                                                "consistent/fixmatch/0"]
    assert c6[8] == "uniform/dualhead/0"  # settings interleaved seed by seed: partial sweeps hold paired rounds
    c20 = [c for c, _ in cells(with_budget(PROTOCOLS["mnist"], 20000))]
    assert len(c20) == 3 * (2 * 5 + 2 * 2)
    assert "uniform/acr/1" in c20 and "uniform/acr/2" not in c20 and "reversed/semi/4" in c20
    f20 = [c for c, _ in cells(with_budget(PROTOCOLS["fashion"], 20000))]
    assert len(f20) == 3 * 2 * 3 and not any(c.startswith("uniform") for c in f20)


@pytest.mark.parametrize("protocol, budget", [("mnist", 2500), ("quick", 2000), ("cifar10", 4000)])
def test_budget_refused_when_it_cannot_keep_the_protocol(protocol, budget):
    with pytest.raises(SystemExit):
        with_budget(PROTOCOLS[protocol], budget)
