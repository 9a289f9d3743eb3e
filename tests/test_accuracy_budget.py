"""The accuracy benchmark's budget axis (benchmarks/accuracy.py --budget): the protocol stretched, cells planned."""

from __future__ import annotations

import json
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


def test_clopper_pearson_exact_intervals():
    from budget_curve import clopper_pearson

    low, high = clopper_pearson(0, 5)
    assert low == 0.0 and high == pytest.approx(0.5218, abs=1e-4)  # 1 - 0.025 ** (1 / 5)
    low, high = clopper_pearson(2, 5)
    assert (low, high) == (pytest.approx(0.0527, abs=1e-4), pytest.approx(0.8534, abs=1e-4))
    assert clopper_pearson(5, 5) == (pytest.approx(0.4782, abs=1e-4), 1.0)


def test_budget_records_are_grouped_by_budget_and_rarest_class_outcomes_counted(tmp_path, monkeypatch):
    import budget_curve

    def rec(seed, method, top1, rare):
        return {"setting": "reversed", "method": method, "seed": seed, "top1": top1, "steps": 2000,
                "per_class_accuracy": [90.0] * 9 + [rare], "diagnostics": {"oheml_weight_per_class": [0.2, 0.4]}}

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "accuracy-mnist.json").write_text(json.dumps({"records": [
        rec(0, "dualhead", 80.0, 10.0), rec(0, "semi", 82.0, 99.0)]}))
    (tmp_path / "results" / "accuracy-mnist-6000.json").write_text(json.dumps({"records": [
        {**rec(0, "semi", 90.0, 60.0), "budget": 6000}]}))
    (tmp_path / "results" / "accuracy-mnist-cifar.json").write_text(json.dumps({"records": []}))  # not a budget
    monkeypatch.setattr(budget_curve, "ROOT", tmp_path)
    by_budget = budget_curve.load_budget_records("mnist")
    assert list(by_budget) == [2000, 6000] and len(by_budget[2000]) == 2
    text = budget_curve.markdown(by_budget)
    assert "| reversed | semi - dualhead | +2.0 (1) | - |" in text
    assert "| reversed | semi | 1/1 [0.03, 1.00]; 10.0 classes | 1/1 [0.03, 1.00]; 10.0 classes |" in text
    assert "| reversed | dualhead | 0/1 [0.00, 0.97]; 9.0 classes | - |" in text
    assert "| reversed | OHEML mean weight | 0.30 | 0.30 |" in text
