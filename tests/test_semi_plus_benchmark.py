"""benchmarks/semi_plus.py: the candidates' overrides, the cells of both stages (selection on seeds 0-4 only, the
confirmation on seeds 5-9), and the choice rule on hand-made validation records (the test set never read)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import semi_plus  # noqa: E402


def test_candidate_overrides():
    assert semi_plus.overrides("dualhead") == ["algorithm.name=dualhead"]
    assert semi_plus.overrides("semi") == ["algorithm.name=dualhead+semi"]
    assert semi_plus.overrides("semi+normalize+flex") == ["algorithm.name=dualhead+semi+flex",
                                                          "semi.oheml_normalize=true"]
    assert semi_plus.overrides("semi+gate", "simpro") == ["algorithm.name=simpro+semi",
                                                         "simpro.labeled_loss_scale=none",
                                                         "semi.prototype_gate=labeled"]


def test_selection_runs_seeds_0_to_4_and_confirmation_5_to_9():
    sel = semi_plus.select_cells()
    assert len(sel) == 9 * 3 * 5 and {int(c.split("/")[2]) for c, _ in sel} == {0, 1, 2, 3, 4}
    conf = semi_plus.confirm_cells({"choice": "semi+gate"})
    seeds = {int(c.split("/")[2]) for c, _ in conf}
    assert seeds == {5, 6, 7, 8, 9}
    assert len(conf) == 3 * 3 * 5 + 4 * 2 * 3 * 3
    assert "reversed/abc+semi+gate/7" in {c for c, _ in conf}


def _record(method, setting, seed, val, test=0.0):
    return {"method": method, "setting": setting, "seed": seed, "val_top1": val, "top1": test,
            "cell": f"{setting}/{method}/{seed}"}


def test_the_choice_reads_validation_only_and_ties_go_to_fewer_options():
    records = []
    for i, c in enumerate(semi_plus.CANDIDATES):
        val = {"semi+gate": 90.0, "semi+gate+flex": 90.0}.get(c, 80.0 + i / 10)
        test = 99.0 if c == "semi+flex" else 50.0  # the best test accuracy must not matter
        records += [_record(c, s, seed, val, test) for s in semi_plus.SETTINGS for seed in range(5)]
    choice = semi_plus.choose(records)
    assert choice["choice"] == "semi+gate" and choice["options"] == ["gate"]
    assert choice["candidates"]["semi+gate"]["val_minus_base"]["reversed"]["mean"] == pytest.approx(10.0)
    with pytest.raises(SystemExit, match="incomplete"):
        semi_plus.choose([r for r in records if not (r["method"] == "semi" and r["seed"] == 4)])


def test_confirmation_report_pairs_held_out_seeds_and_counts_rarest_class_learners():
    choice = {"choice": "semi+gate", "rule": "r"}
    confirm = []
    for seed in range(5, 8):
        for s in semi_plus.SETTINGS:
            # the chosen SeMi+ is 2 points above the base on every seed and learns the rarest class on seeds 5-6
            confirm.append({**_record("dualhead", s, seed, 0.0, 80.0 + seed), "per_class_accuracy": [90.0, 3.0]})
            confirm.append({**_record("semi+gate", s, seed, 0.0, 82.0 + seed),
                            "per_class_accuracy": [90.0, 99.0 if seed < 7 else 10.0]})
    text = semi_plus.report_markdown([], choice, confirm)
    assert "| semi+gate - dualhead | +2.0 [+2.0, +2.0] | +2.0 [+2.0, +2.0] | +2.0 [+2.0, +2.0] |" in text
    assert "| semi+gate | 2/3 | 2/3 | 2/3 |" in text and "| dualhead | 0/3 | 0/3 | 0/3 |" in text
    # a choice of SeMi itself pairs once with the base, never with itself
    as_semi = [{**r, "method": "semi"} if r["method"] == "semi+gate" else r for r in confirm]
    text_semi = semi_plus.report_markdown([], {"choice": "semi", "rule": "r"}, as_semi)
    assert text_semi.count("| semi - dualhead | +2.0") == 1 and "semi - semi" not in text_semi
    # class by class: the gain sits in the rarest class, (96 + 96 + 7) / 3
    assert "| - | reversed | semi+gate - dualhead | 3 | +0.0 | +66.3 | +0.0 | +66.3 |" in text


def test_round_two_adds_predicted_flex_beside_round_one_choice_and_confirms_on_fresh_seeds():
    assert semi_plus.overrides("semi+gate+flex_predicted") == ["algorithm.name=dualhead+semi+flex",
                                                               "semi.prototype_gate=labeled",
                                                               "flex.normalize=predicted"]
    first, second = dict(semi_plus.select_cells(1)), dict(semi_plus.select_cells(2))
    assert semi_plus.overrides("semi+gate+flex_predicted+flex_linear") == [
        "algorithm.name=dualhead+semi+flex", "semi.prototype_gate=labeled", "flex.normalize=predicted",
        "flex.mapping=linear"]
    assert len(second) == 6 * 3 * 5 and {int(c.split("/")[2]) for c in second} == {0, 1, 2, 3, 4}
    shared = set(first) & set(second)  # the round-1 cells round 2 reuses are the same cells
    assert {c.split("/")[1] for c in shared} == {"dualhead", "semi", "semi+gate+flex"}
    assert all(first[c] == second[c] for c in shared)
    conf = semi_plus.confirm_cells({"choice": "semi+gate+flex_linear"}, 2)
    assert {int(c.split("/")[2]) for c, _ in conf} == set(range(10, 15))
    assert {int(c.split("/")[2]) for c, _ in conf if "acr" in c} == {10, 11, 12}
    assert semi_plus.result_path("select", None, 2).name == "semiplus-select.json"
    assert semi_plus.result_path("confirm", 6000, 2).name == "semiplus-confirm-round2-6000.json"
    # the rule over round 2's candidates only: a better round-1-only candidate is not in the running
    records = []
    for c in {*semi_plus.CANDIDATES, *semi_plus.ROUNDS[2].candidates}:
        val = {"semi+flex": 95.0, "semi+gate+flex_linear": 91.0}.get(c, 85.0)
        records += [_record(c, s, seed, val) for s in semi_plus.SETTINGS for seed in range(5)]
    assert semi_plus.choose(records, 2)["choice"] == "semi+gate+flex_linear"
    assert semi_plus.choose(records, 1)["choice"] == "semi+flex"


def test_round_three_keeps_the_loss_scale_and_the_base_threshold_and_runs_a_control_it_never_chooses():
    assert semi_plus.overrides("semi+normalize+gate+flex_predicted+t95") == [
        "algorithm.name=dualhead+semi+flex", "semi.oheml_normalize=true", "semi.prototype_gate=labeled",
        "flex.normalize=predicted", "semi.threshold=0.95"]
    # the control: the base with FlexMatch's thresholds, no SeMi
    assert semi_plus.overrides("dualhead+flex_predicted") == ["algorithm.name=dualhead+flex",
                                                              "flex.normalize=predicted"]
    third = dict(semi_plus.select_cells(3))
    assert len(third) == 7 * 3 * 5 and "uniform/dualhead+flex_predicted/4" in third
    shared = set(third) & set(dict(semi_plus.select_cells(2)))  # round 2's choice, SeMi and the base are reused
    assert {c.split("/")[1] for c in shared} == {"dualhead", "semi", "semi+gate+flex_predicted"}
    conf = semi_plus.confirm_cells({"choice": "semi+gate+flex_predicted+t95"}, 3)
    assert {int(c.split("/")[2]) for c, _ in conf} == set(range(15, 20)) and len(conf) == 4 * 3 * 5
    assert {c.split("/")[1] for c, _ in conf} == {"dualhead", "semi", "semi+gate+flex_predicted+t95",
                                                  "dualhead+flex_predicted"}
    # the control has the best validation accuracy and is still not chosen
    records = []
    for c in (*semi_plus.ROUNDS[3].candidates, "dualhead+flex_predicted"):
        val = {"dualhead+flex_predicted": 99.0, "semi+gate+flex_predicted+t95": 91.0}.get(c, 85.0)
        records += [_record(c, s, seed, val) for s in semi_plus.SETTINGS for seed in range(5)]
    choice = semi_plus.choose(records, 3)
    assert choice["choice"] == "semi+gate+flex_predicted+t95"
    # the report lists the control, marked, and pairs the choice with it on the held-out seeds
    confirm = [_record(m, s, seed, 0.0, test) for s in semi_plus.SETTINGS for seed in range(15, 17)
               for m, test in (("dualhead", 80.0), ("semi", 79.0), ("semi+gate+flex_predicted+t95", 83.0),
                               ("dualhead+flex_predicted", 82.0))]
    confirm = [{**r, "per_class_accuracy": [90.0, 10.0]} for r in confirm]
    text = semi_plus.report_markdown(records, choice, confirm, 3)
    assert "| dualhead+flex_predicted (control, not eligible) |" in text
    assert "| semi+gate+flex_predicted+t95 - dualhead+flex_predicted | +1.0 [+1.0, +1.0] |" in text
    assert "| dualhead+flex_predicted - dualhead | +2.0 [+2.0, +2.0] |" in text
    assert "abc" not in text  # no other bases planned this round: no rows for them


def test_round_four_halves_the_balanced_targets_debiasing_with_three_controls_on_fresh_seeds():
    assert semi_plus.overrides("semi+normalize+gate+flex_predicted+t95+t12_1")[-1] == "algorithm.tau12=1.0"
    assert semi_plus.overrides("dualhead+t12_1") == ["algorithm.name=dualhead", "algorithm.tau12=1.0"]
    fourth = dict(semi_plus.select_cells(4))
    assert len(fourth) == 7 * 3 * 5
    # only the halved-debiasing cells are new: the rest are round 3's cells, reused
    new = {c.split("/")[1] for c in set(fourth) - set(dict(semi_plus.select_cells(3)))}
    assert new == {"semi+normalize+gate+flex_predicted+t95+t12_1", "dualhead+flex_predicted+t12_1",
                   "dualhead+t12_1"}
    conf = semi_plus.confirm_cells({"choice": "semi+normalize+gate+flex_predicted+t95+t12_1"}, 4)
    assert {int(c.split("/")[2]) for c, _ in conf} == set(range(20, 25)) and len(conf) == 6 * 3 * 5
    earlier = {seed for r in (1, 2, 3) for seed in semi_plus.ROUNDS[r].confirm_seeds}
    assert not {int(c.split("/")[2]) for c, _ in conf} & earlier
