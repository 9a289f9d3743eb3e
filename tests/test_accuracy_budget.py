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
    assert len(c6) == 4 * 3 * 5 + 3 * 2 * 5 and c6[:4] == ["consistent/dualhead/0", "consistent/semi/0",
                                                            "consistent/acr/0", "consistent/fixmatch/0"]
    assert c6[8] == "uniform/dualhead/0"  # settings interleaved seed by seed: partial sweeps hold paired rounds
    # then the plan's three ablations, on reversed and uniform only, seed by seed
    assert c6[60:66] == ["reversed/semi-no_bank/0", "reversed/semi-no_oheml/0", "reversed/dualhead+threshold_0.7/0",
                         "uniform/semi-no_bank/0", "uniform/semi-no_oheml/0", "uniform/dualhead+threshold_0.7/0"]
    assert c6[-1] == "uniform/dualhead+threshold_0.7/4"
    assert dict(cells(with_budget(PROTOCOLS["mnist"], 6000)))["uniform/semi-no_bank/3"] == [
        "algorithm.name=semi", "semi.memory_bank=false", "semi.prototypes=false"]
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


def test_budget_differences_against_supervised_read_its_balanced_head():
    import budget_curve

    def rec(seed, method, top1, balanced=None):
        return {"setting": "consistent", "method": method, "seed": seed, "top1": top1, "steps": 2000,
                "per_class_accuracy": [90.0] * 10, "diagnostics": {},
                **({"balanced_head": {"top1": balanced}} if balanced is not None else {})}

    recs = [rec(0, "supervised", 60.0, 64.0), rec(1, "supervised", 61.0, 63.0), rec(2, "supervised", 62.0),
            rec(0, "dualhead", 66.0), rec(1, "dualhead", 65.0), rec(2, "dualhead", 70.0)]
    # seed 2's supervised record has no balanced head: it is left out, not compared with the standard head
    text = budget_curve.markdown({2000: recs}, budget_curve.SUPERVISED_PAIRS)
    assert "| consistent | dualhead - supervised (balanced head) | +2.0 [+2.0, +2.0] (2) |" in text
    assert "semi - supervised" not in text  # no SeMi records: no row
    assert "(balanced head)" not in budget_curve.markdown({2000: recs})  # MNIST-LT's tables leave it out


def _write_run(folder: Path, top1: float, evals: list[dict], labeled=(150, 20, 1, 1), bank_size=128) -> Path:
    """A run folder as the trainer leaves it: results.json and metrics.jsonl (a train line, evaluations, the one at
    step 200 twice, the later line winning, and a torn last line)."""
    folder.mkdir(parents=True)
    per_class = [99, 90, 5, top1 - 10]  # the run's final per-class accuracies (the backfill guard compares them)
    (folder / "results.json").write_text(json.dumps({"metrics": {"top1": top1, "per_class_accuracy": per_class},
                                                      "steps": 400, "labeled_counts": list(labeled),
                                                      "config": {"semi": {"bank_size": bank_size}}}))
    lines = [{"kind": "train", "step": 10, "loss": 1.0}]
    lines += [{"kind": "eval", **e} for e in evals]
    # a torn last line: a run killed mid-write
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"kind": "ev')
    return folder


EVALS = [  # class 3 is the rarest (ties with class 2 go to the last); NaN precision: nothing accepted
    {"step": 100, "per_class_accuracy": [99, 90, 5, 1], "pseudo_label_counts": [50, 9, 0, 0],
     "pseudo_label_precision": [0.9, 0.8, float("nan"), float("nan")], "bank_fill": [128, 40, 0, 0],
     "blend_moved_into": [0, 0, 0, 0], "blend_moved_into_right": [0, 0, 0, 0]},
    {"step": 200, "per_class_accuracy": [99, 90, 5, 2], "pseudo_label_counts": [50, 9, 0, 150],
     "pseudo_label_precision": [0.9, 0.8, float("nan"), 0.1], "bank_fill": [128, 90, 0, 7],
     "blend_moved_into": [5, 1, 0, 9], "blend_moved_into_right": [4, 1, 0, 0]},
    {"step": 200, "per_class_accuracy": [99, 90, 5, 3], "pseudo_label_counts": [50, 9, 0, 4],
     "pseudo_label_precision": [0.9, 0.8, float("nan"), 0.5], "bank_fill": [128, 90, 0, 60],
     "blend_moved_into": [5, 1, 0, 2], "blend_moved_into_right": [4, 1, 0, 1]},
    {"step": 300, "per_class_accuracy": [99, 90, 5, 40], "pseudo_label_counts": [50, 9, 1, 120],
     "pseudo_label_precision": [0.9, 0.8, 1.0, 0.75], "bank_fill": [128, 128, 3, 128],
     "blend_moved_into": [9, 2, 0, 12], "blend_moved_into_right": [7, 1, 0, 9]},
    {"step": 400, "per_class_accuracy": [99, 90, 5, 80], "pseudo_label_counts": [50, 9, 1, 300],
     "pseudo_label_precision": [0.9, 0.8, 1.0, 0.9], "bank_fill": [128, 128, 3, 128],
     "blend_moved_into": [9, 2, 0, 20], "blend_moved_into_right": [7, 1, 0, 15]},
]


def test_rarest_class_trace_follows_the_class_with_fewest_labels_through_the_evaluations(tmp_path):
    from accuracy import rarest_class_trace

    trace = rarest_class_trace(_write_run(tmp_path / "run", 90.0, EVALS))
    assert trace["class"] == 3 and trace["labeled"] == 1 and trace["bank_size"] == 128
    assert trace["evaluations"] == [
        {"step": 100, "test_accuracy": 1, "accepted": 0, "precision": None, "bank_fill": 0, "moved_in": 0,
         "moved_in_right": 0},
        {"step": 200, "test_accuracy": 3, "accepted": 4, "precision": 0.5, "bank_fill": 60, "moved_in": 2,
         "moved_in_right": 1},
        {"step": 300, "test_accuracy": 40, "accepted": 120, "precision": 0.75, "bank_fill": 128, "moved_in": 12,
         "moved_in_right": 9},
        {"step": 400, "test_accuracy": 80, "accepted": 300, "precision": 0.9, "bank_fill": 128, "moved_in": 20,
         "moved_in_right": 15}]
    # a method without a bank or prototypes, an evaluation logged before per-class accuracy was: None, no bank size
    bare = [{k: v for k, v in e.items() if k not in ("bank_fill", "per_class_accuracy", "blend_moved_into",
                                                     "blend_moved_into_right")} for e in EVALS]
    trace = rarest_class_trace(_write_run(tmp_path / "bare", 90.0, bare))
    assert trace["bank_size"] is None and trace["evaluations"][0]["test_accuracy"] is None
    assert trace["evaluations"][-1]["moved_in"] is None
    assert rarest_class_trace(tmp_path / "missing") is None


def test_rarest_class_summary_first_bank_full_and_sustained_take_off(tmp_path):
    from accuracy import rarest_class_trace
    from budget_curve import trace_summary

    trace = rarest_class_trace(_write_run(tmp_path / "run", 90.0, EVALS))
    # first accepted at 200; bank row full (128) at 300; from 300 on every 100-step window accepts >= 100 / 3 (the
    # first line's 150 at 200 was replaced by 4, so 200 does not count)
    # the blend had moved 12 labels into the class by the take-off, 9 of them right
    assert trace_summary(trace) == {"first": 200, "bank_full": 300, "take_off": 300, "accepted": 300,
                                    "precision": 0.9, "moved_in": 12, "moved_in_right": 9}

    def take_off(accepted, steps=(100, 200, 300, 400)):
        ev = [{**e, "step": s, "accepted": a} for e, s, a in zip(trace["evaluations"], steps, accepted)]
        return trace_summary({**trace, "evaluations": ev})["take_off"]

    assert take_off((900, 5, 120, 33)) is None  # the last window below the rate: no take-off
    assert take_off((900, 5, 34, 300)) == 300  # a first-window flood that drops, then a take-off at 300
    assert take_off((900, 40, 34, 300)) == 100  # the flood held at the rate: sustained from the first window
    # a rate, not a count: the same accepted counts fall short when the last window is 300 steps (400 -> 700)
    assert take_off((0, 40, 70, 40)) == 200
    assert take_off((0, 40, 70, 40), steps=(100, 200, 400, 700)) is None
    assert trace_summary({**trace, "bank_size": None})["bank_full"] is None


def test_backfill_takes_a_trace_only_from_the_records_own_run(tmp_path, monkeypatch):
    import budget_curve

    (tmp_path / "results").mkdir()
    recs = [{"protocol": "mnist-6000", "cell": f"uniform/semi/{s}", "setting": "uniform", "method": "semi",
             "seed": s, "top1": 90.0 + s, "budget": 6000, "steps": 400, "per_class_accuracy": [99, 90, 5, 80 + s]}
            for s in range(4)]
    path = tmp_path / "results" / "accuracy-mnist-6000.json"
    path.write_text(json.dumps({"records": recs}))
    runs = tmp_path / "runs"
    _write_run(runs / "mnist-6000" / "uniform_semi_0", 90.0, EVALS)  # the record's own folder
    _write_run(runs / "uniform_semi_1", 91.0, EVALS)  # another benchmark's bit-identical rerun
    _write_run(runs / "uniform_semi_2", 92.5, EVALS)  # a different run of the same cell: refused
    other = _write_run(runs / "uniform_semi_3", 93.0, EVALS)  # the same accuracies after another step count: refused
    (other / "results.json").write_text((other / "results.json").read_text().replace('"steps": 400', '"steps": 2000'))
    monkeypatch.setattr(budget_curve, "ROOT", tmp_path)
    assert budget_curve.rarest_markdown(budget_curve.load_budget_records("mnist")) == ""  # nothing traced yet
    assert budget_curve.backfill(runs, "mnist") == 2
    got = json.loads(path.read_text())["records"]
    assert [r.get("rarest_class") is not None for r in got] == [True, True, False, False]
    text = budget_curve.rarest_markdown(budget_curve.load_budget_records("mnist"))
    assert "| 6,000 | uniform | semi | yes | 2 | 200 (2/2) | 300 (2/2) | 300 (2/2) | 300 at 90% | 12 at 75% |" in text
    assert budget_curve.backfill(runs, "mnist") == 0  # records that have a trace keep it
    figures = budget_curve.rarest_figures({2000: recs, **budget_curve.load_budget_records("mnist")}, "mnist")
    assert figures == [tmp_path / "results" / "budget-mnist-rarest-6000.png"]  # no traces at 2,000: no figure


def test_rarest_class_comes_from_the_trace_and_unknown_accuracies_count_as_not_learned():
    import budget_curve

    rec = {"per_class_accuracy": [99.0, 80.0, None]}
    assert budget_curve.rarest_class(rec) == 2 and budget_curve.learns_rarest(rec) is None
    traced = {**rec, "rarest_class": {"class": 1}}  # a protocol whose rarest class is not the last
    assert budget_curve.rarest_class(traced) == 1 and budget_curve.learns_rarest(traced) is True
    by_budget = {2000: [{**rec, "setting": "uniform", "method": "semi", "seed": 0, "top1": 1.0}]}
    assert "| uniform | semi | 0/1 [0.00, 0.97]; 2.0 classes |" in budget_curve.markdown(by_budget)


def test_a_cells_record_keeps_its_rarest_class_trace(tmp_path, monkeypatch):
    """run_cell on a stand-in for the training subprocess: the record carries the run folder's trace."""
    import subprocess

    import accuracy

    def fake_train(cmd, **_):
        out = Path(next(a for a in cmd if a.startswith("train.out_dir=")).split("=", 1)[1])
        _write_run(out, 90.0, EVALS)
        results = json.loads((out / "results.json").read_text())
        heads = {k: 1.0 for k in ("top1", "balanced_accuracy", "head_accuracy", "medium_accuracy", "tail_accuracy")}
        results["metrics"].update({**heads, "top1": 90.0, "head_used": "balanced", "validation": {"top1": 88.0}})
        results.update({"metrics_by_head": {"standard": heads, "balanced": heads}, "summary": {},
                        "train_seconds": 1.0, "environment": {"git_commit": "x"}})
        (out / "results.json").write_text(json.dumps(results))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(accuracy.subprocess, "run", fake_train)
    record = accuracy.run_cell(with_budget(PROTOCOLS["mnist"], 6000), "uniform/semi/0", ["algorithm.name=semi"],
                               tmp_path)
    assert record["cell"] == "uniform/semi/0" and record["budget"] == 6000 and record["val_top1"] == 88.0
    assert record["rarest_class"]["class"] == 3 and len(record["rarest_class"]["evaluations"]) == 4


def test_acr_threshold_ablation_is_paired_with_acr_semi_and_acr():
    from accuracy import ABLATIONS, ablation_references, markdown

    assert ablation_references("acr+semi-threshold_0.95") == ("acr+semi", "acr")
    assert ablation_references("semi-no_bank") == ("semi",)
    assert ablation_references("dualhead+threshold_0.7") == ("dualhead",)
    assert ABLATIONS["acr+semi-threshold_0.95"] == ["algorithm.name=acr+semi", "semi.threshold=0.95"]
    assert ABLATIONS["acr+semi-count_images"] == ["algorithm.name=acr+semi", "algorithm.estimate_counting=images"]
    assert ablation_references("acr+semi-count_images") == ("acr+semi", "acr")
    assert ABLATIONS["acr+semi-estimate_0.95"] == ["algorithm.name=acr+semi", "algorithm.estimate_threshold=0.95"]
    mnist = dict(cells(PROTOCOLS["mnist"]))
    assert mnist["consistent/acr+semi-threshold_0.95/2"] == ABLATIONS["acr+semi-threshold_0.95"]

    def rec(seed, method, top1):
        return {"setting": "consistent", "method": method, "seed": seed, "top1": top1, "head_accuracy": 0.0,
                "medium_accuracy": 0.0, "tail_accuracy": 0.0, "wall_seconds": 1.0}

    records = [rec(s, m, v) for s, row in enumerate([(89.0, 75.0, 88.0), (87.0, 69.0, 88.0)])
               for m, v in zip(("acr", "acr+semi", "acr+semi-threshold_0.95"), row)]
    text = markdown(records)
    # differences 13, 19 against ACR+SeMi and -1, +1 against ACR: mean [t-interval over 2 seeds]
    assert "| acr+semi-threshold_0.95 - acr+semi | 2 | +16.0 [-22.1, +54.1] | +13.0 |" in text
    assert "| acr+semi-threshold_0.95 - acr | 2 | +0.0 [-12.7, +12.7] | -1.0 |" in text


def test_per_class_differences_are_paired_by_seed_and_split_into_halves():
    import budget_curve

    def rec(seed, method, per_class, setting="uniform"):
        return {"setting": setting, "method": method, "seed": seed, "top1": 0.0, "steps": 2000,
                "per_class_accuracy": per_class}

    recs = [rec(0, "dualhead", [90.0, 80.0, 70.0, 10.0]), rec(0, "semi", [88.0, 80.0, 71.0, 90.0]),
            rec(1, "dualhead", [94.0, 70.0, 60.0, None]), rec(1, "semi", [90.0, 74.0, 61.0, 5.0]),
            rec(2, "semi", [0.0, 0.0, 0.0, 0.0]),  # no dual-head run with seed 2: not paired
            rec(0, "semi-no_oheml", [90.0, 80.0, 70.0, 10.0], setting="reversed")]  # no semi there: no row
    text = budget_curve.per_class_markdown({2000: recs})
    # class 0: (-2 - 4) / 2; class 1: (0 + 4) / 2; class 2: (1 + 1) / 2; class 3: seed 0 only (seed 1 unknown)
    # halves: classes 0-1 (-3 + 2) / 2, classes 2-3 (1 + 80) / 2
    assert "| 2,000 | uniform | semi - dualhead | 2 | -3.0 | +2.0 | +1.0 | +80.0 | -0.5 | +40.5 |" in text
    assert "| 0 | 1 | 2 | 3 | 0-1 | 2-3 |" in text and "reversed" not in text.split("|---")[-1]
    assert budget_curve.per_class_markdown({2000: recs[4:]}) == ""


def test_paired_rarest_outcomes_count_discordant_seeds_and_sign_test_them():
    import budget_curve

    def rec(setting, method, seed, rarest):
        return {"setting": setting, "method": method, "seed": seed, "top1": 0.0, "steps": 2000,
                "per_class_accuracy": [90.0, 80.0, rarest]}  # no trace: the last class is the rarest

    semi_u, base_u = [99.0, 98.0, 60.0, 97.0, 10.0], [1.0, 2.0, 0.0, 99.0, 50.0]  # 50.0 is not above LEARNED
    recs = [rec("uniform", "semi", s, a) for s, a in enumerate(semi_u)]
    recs += [rec("uniform", "dualhead", s, a) for s, a in enumerate(base_u)]
    recs += [rec("reversed", "semi", 0, 99.0), rec("reversed", "dualhead", 0, 3.0),
             rec("reversed", "semi", 1, 5.0), rec("reversed", "dualhead", 1, None),  # unknown: seed 1 left out
             rec("reversed", "semi", 2, 99.0)]  # no base run on seed 2: not paired
    text = budget_curve.paired_rarest_markdown({2000: recs})
    # uniform: semi only on seeds 0-2, both on 3, neither on 4: p = 2 / 2^3
    assert "| 2,000 | uniform | semi - dualhead | 5 | 3 | 0 | 1 | 1 | 0.250 |" in text
    assert "| 2,000 | reversed | semi - dualhead | 1 | 1 | 0 | 0 | 0 | 1.000 |" in text
    assert "| 2,000 | reversed + uniform | semi - dualhead | 6 | 4 | 0 | 1 | 1 | 0.125 |" in text
    assert "consistent" not in text and "semi - acr" not in text
    # an ablation against the full method: SeMi without its bank on seeds 0-1 of uniform data
    ablated = [rec("uniform", "semi-no_bank", 0, 2.0), rec("uniform", "semi-no_bank", 1, 99.0)]
    text = budget_curve.paired_rarest_markdown({2000: recs + ablated})
    assert "| 2,000 | uniform | semi-no_bank - semi | 2 | 0 | 1 | 1 | 0 | 1.000 |" in text
    assert budget_curve.sign_test(0, 0) is None and budget_curve.sign_test(5, 0) == 0.0625
    assert budget_curve.sign_test(2, 3) == 1.0
    assert budget_curve.paired_rarest_markdown({2000: recs[:5]}) == ""


def test_figures_have_a_panel_per_setting_the_protocol_ran():
    import budget_curve

    recs = [{"setting": s} for s in ("reversed", "consistent", "reversed")]
    assert budget_curve.present_settings(recs) == ["consistent", "reversed"]  # SETTINGS order, no empty uniform
    assert budget_curve.present_settings([]) == []
