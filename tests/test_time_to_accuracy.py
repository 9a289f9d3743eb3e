"""benchmarks/time_to_accuracy.py: training seconds to a target accuracy from hand-made metrics, the target taken
from the float32 runs, and modes that never reach it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import time_to_accuracy as tta  # noqa: E402

TRAIN = [{"step": 10, "step_seconds": 0.5}, {"step": 25, "step_seconds": 0.2}, {"step": 30, "step_seconds": 0.1}]
EVALS = [{"step": 10, "top1": 50.0}, {"step": 25, "top1": 80.0}, {"step": 30, "top1": 90.0}]


def test_seconds_to_accuracy_sums_the_windows_up_to_the_first_evaluation_at_target():
    assert tta.seconds_to_accuracy(TRAIN, EVALS, 50.0) == (5.0, 10)
    assert tta.seconds_to_accuracy(TRAIN, EVALS, 75.0) == (pytest.approx(8.0), 25)  # 10 x 0.5 + 15 x 0.2
    assert tta.seconds_to_accuracy(TRAIN, EVALS, 90.0) == (pytest.approx(8.5), 30)
    assert tta.seconds_to_accuracy(TRAIN, EVALS, 90.1) == (None, None)


def _run(mode, final, scale, evals=EVALS):
    return {"workload": "default", "mode": mode, "final_top1": final, "train_seconds": 8.5 * scale,
            "first_step_seconds": 1.0, "train_rows": [{**r, "step_seconds": r["step_seconds"] * scale}
                                                      for r in TRAIN], "evaluations": evals}


def test_summary_targets_float32_less_the_margin_and_reports_modes_that_never_get_there():
    worse = [{"step": 10, "top1": 40.0}, {"step": 25, "top1": 60.0}, {"step": 30, "top1": 70.0}]
    runs = [_run("bf16", 89.5, 0.5), _run("float32", 90.0, 1.0), _run("float32", 90.0, 1.0),
            _run("bf16", 89.5, 0.5), _run("compile", 70.0, 0.25, worse), _run("compile", 89.0, 0.25)]
    rows = {r["mode"]: r for r in tta.summarise(runs, margin=1.0)}
    assert rows["float32"]["target_top1"] == 89.0
    assert rows["float32"]["seconds_to_target"] == pytest.approx(8.5) and rows["float32"]["reached"] == 2
    assert rows["bf16"]["seconds_to_target"] == pytest.approx(4.25)
    assert rows["bf16"]["speedup_to_target"] == pytest.approx(2.0)
    assert rows["compile"]["seconds_to_target"] is None and rows["compile"]["reached"] == 1
    assert "| default | compile | 89.0 | 1/2 | - | - |" in tta.markdown(list(rows.values()))
    never = tta.summarise([_run("float32", 90.0, 1.0), _run("compile", 70.0, 0.25, worse)], margin=1.0)
    assert "| default | compile | 89.0 | 0/1 | never | - |" in tta.markdown(never)
    with pytest.raises(SystemExit, match="float32"):
        tta.summarise([_run("bf16", 90.0, 1.0)], margin=1.0)
