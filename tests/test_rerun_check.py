"""benchmarks/rerun_check.py: a recorded accuracy cell rerun from its record's own command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import rerun_check  # noqa: E402


def _rec(seed: int, top1: float, method: str = "semi", setting: str = "consistent") -> dict:
    return {"setting": setting, "method": method, "seed": seed, "top1": top1, "cell": f"{setting}/{method}/{seed}"}


def test_rerun_keeps_every_override_but_the_run_folder(tmp_path):
    record = {"overrides": ["data.name=mnist", "train.seed=3", "train.out_dir=/old/place", "train.threads=1"]}
    assert rerun_check.rerun_overrides(record, tmp_path / "new") == [
        "data.name=mnist", "train.seed=3", "train.threads=1", f"train.out_dir={tmp_path / 'new'}"]


def test_seed_spread_and_verdict():
    records = [_rec(0, 80.0), _rec(1, 84.0), _rec(2, 82.0), _rec(0, 99.0, "dualhead"), _rec(0, 10.0, "semi", "uniform")]
    spread = rerun_check.seed_spread(records, "consistent", "semi")
    assert spread == {"n": 3, "min": 80.0, "max": 84.0, "mean": 82.0, "sd": 2.0}
    assert rerun_check.verdict(82.0, 82.0, spread) == {"identical": True, "within_spread": True, "difference": 0.0,
                                                       "z": 0.0}
    assert rerun_check.verdict(82.0, 79.5, spread) == {"identical": False, "within_spread": False, "difference": -2.5,
                                                       "z": -1.25}
    assert rerun_check.verdict(82.0, 82.0, rerun_check.seed_spread(records[:1], "consistent", "semi"))["z"] is None
    assert rerun_check.verdict(82.0, 84.0, spread)["within_spread"]  # the spread's ends are inside
    with pytest.raises(SystemExit):
        rerun_check.seed_spread(records, "reversed", "semi")


def test_save_replaces_the_same_cell_and_keeps_others(tmp_path):
    path = tmp_path / "rerun-check.json"
    rerun_check.save(path, {"protocol": "mnist-20000", "cell": "consistent/semi/0", "rerun_top1": 1.0})
    rerun_check.save(path, {"protocol": "mnist", "cell": "consistent/semi/0", "rerun_top1": 2.0})
    rerun_check.save(path, {"protocol": "mnist-20000", "cell": "consistent/semi/0", "rerun_top1": 3.0})
    assert [(e["protocol"], e["rerun_top1"]) for e in json.loads(path.read_text())] == [("mnist", 2.0),
                                                                                        ("mnist-20000", 3.0)]


def _write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines))
    return path


def test_logs_are_compared_value_by_value_without_timings(tmp_path):
    recorded = _write_log(tmp_path / "a.jsonl", [
        '{"kind": "train", "step": 10, "loss": 1.5, "step_seconds": 0.03, "data_share": 0.3}',
        '{"kind": "eval", "step": 20, "top1": 50.0, "per_class_accuracy": [90.0, 10.0], "window_proto_acc": NaN}',
        '{"kind": "train", "step": 30, "loss": 9.9}',
        '{"kind": "train", "step": 30, "loss": 1.2}',  # resumed before step 30: the later line counts
        '{"kind": "ev'])  # torn by a kill
    rerun = _write_log(tmp_path / "b.jsonl", [
        '{"kind": "train", "step": 10, "loss": 1.5, "step_seconds": 0.05, "data_share": 0.5}',
        '{"kind": "eval", "step": 20, "top1": 50.0, "per_class_accuracy": [90.0, 11.0], "window_proto_acc": NaN}',
        '{"kind": "train", "step": 30, "loss": 1.2}',
        '{"kind": "train", "step": 40, "loss": 1.0}'])
    # 10: kind, step, loss; 20: kind, step, top1, 2 per-class values, the NaN; 30: kind, step, loss
    assert rerun_check.compare_logs(recorded, rerun) == {
        "values": 3 + 6 + 3, "differing": 1, "first_difference": ["eval", 20, "per_class_accuracy"],
        "lines_only_in_record": 0, "lines_only_in_rerun": 1}
    assert rerun_check.logged_values(recorded)[("train", 30)] == {"kind": "train", "step": 30, "loss": 1.2}


def test_the_records_own_run_folder_is_found_only_while_it_exists(tmp_path):
    record = {"overrides": ["train.seed=0", f"train.out_dir={tmp_path / 'run'}"]}
    assert rerun_check.record_run_dir(record) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    assert rerun_check.record_run_dir(record) == tmp_path / "run"
    assert rerun_check.record_run_dir({"overrides": ["train.seed=0"]}) is None


@pytest.mark.slow
def test_a_recorded_cell_reruns_bit_identically(tmp_path, monkeypatch):
    """A quick-protocol cell recorded by the accuracy benchmark, rerun from its record: the same final top-1, even
    after the protocol's own overrides have changed (the rerun takes the record's)."""
    import accuracy

    protocol = accuracy.PROTOCOLS["quick"]
    cell = "consistent/fixmatch/0"
    record = accuracy.run_cell(protocol, cell, accuracy.method_overrides("fixmatch"), tmp_path / "runs", threads=1)
    other = {**_rec(1, record["top1"] - 5.0, "fixmatch"), "cell": "consistent/fixmatch/1"}
    accuracy.save_records(tmp_path / "results" / "accuracy-quick.json", protocol, [other, record])
    # were the protocol read instead of the record, this rerun would train for 25 steps instead of 150
    monkeypatch.setattr(protocol, "overrides", [*protocol.overrides, "train.epochs=1"])
    entry = rerun_check.check("quick", None, cell, tmp_path / "runs", tmp_path / "results")
    assert entry["identical"] and entry["within_spread"] and entry["difference"] == 0.0
    assert entry["record_commit"] == entry["rerun_commit"]
    assert entry["seed_spread"]["n"] == 2 and entry["z"] == pytest.approx(5.0 / 2 / (5.0 / 2 ** 0.5))
    assert (tmp_path / "runs" / "rerun-check" / "quick" / "consistent_fixmatch_0" / "results.json").exists()
    assert "identical to the record" in rerun_check.describe(entry)
    # the record's run folder is still there: every logged value is compared, and all are identical
    assert entry["per_class_identical"]
    assert entry["record_run"] == str(tmp_path / "runs" / "quick" / "consistent_fixmatch_0")
    logs = entry["logs"]
    assert logs["values"] > 100 and logs["differing"] == 0 and logs["first_difference"] is None
    assert logs["lines_only_in_record"] == logs["lines_only_in_rerun"] == 0
    assert f"logged values: {logs['values']:,} of {logs['values']:,} identical" in rerun_check.describe(entry)
