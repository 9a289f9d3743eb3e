"""The speed benchmark's statistics (benchmarks/speed.py): paired ratios and the interval of their median."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import torch  # noqa: E402
from speed import _interleaved_times, median_interval, paired_ratio, paired_ratio_interval  # noqa: E402


def test_median_interval_order_statistics():
    # n = 100: ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61, the textbook 95% interval of a median
    xs = list(range(1, 101))
    random.Random(0).shuffle(xs)
    assert median_interval(xs) == (40, 61)
    # n = 10: ranks floor(5 - 3.10) = 1 and ceil(6 + 3.10) = 10
    assert median_interval([float(v) for v in range(10, 0, -1)]) == (1.0, 10.0)
    assert median_interval([3.0]) == (3.0, 3.0)


def test_median_interval_covers_the_median_about_95_percent():
    rng = random.Random(1)
    trials, hits = 2000, 0
    for _ in range(trials):
        lo, hi = median_interval([rng.gauss(0.0, 1.0) for _ in range(60)])
        hits += lo <= 0.0 <= hi
    assert 0.93 <= hits / trials <= 0.975


def test_paired_ratio_cancels_drift_between_rounds():
    base = [1.0, 2.0, 4.0, 8.0, 16.0]  # load drifts 16x across rounds
    plus = [1.05 * b for b in base]
    assert paired_ratio(plus, base) == pytest.approx(1.05)
    lo, hi = paired_ratio_interval(plus, base)
    assert lo == pytest.approx(1.05) and hi == pytest.approx(1.05)


def test_interleaved_rounds_run_groups_back_to_back_with_settling_calls():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "a+", "b", "b+", "c")}
    groups = [["a", "a+"], ["b", "b+"], ["c"]]
    times = _interleaved_times(fns, repeats=5, warmup=2, device=torch.device("cpu"), settle=1, groups=groups)
    assert {k: len(v) for k, v in times.items()} == {k: 5 for k in fns}  # one timed call per function per round
    rounds = calls[2 * len(fns):]  # after the warm-up calls
    assert len(rounds) == 5 * len(fns) * 2  # each timed call follows one settling call of the same function
    pairs = [rounds[i:i + 2] for i in range(0, len(rounds), 2)]
    assert all(x == y for x, y in pairs)
    order = [p[0] for p in pairs]
    for r in range(5):  # within a round every group's members are adjacent
        one = order[r * len(fns):(r + 1) * len(fns)]
        assert sorted(one) == sorted(fns)
        for group in groups:
            at = sorted(one.index(name) for name in group)
            assert at == list(range(at[0], at[0] + len(group)))


@pytest.mark.slow
def test_speed_modes_and_loader_throughput_run(tmp_path):
    """The mode comparison's plumbing on the CIFAR-10-LT batch (a mode that changes nothing but the run: no
    compilation here, that is the benchmark's job) and the loader's throughput with 0-2 workers."""
    from speed import config_for, loader_throughput, measure_modes, modes_markdown

    from semi.data.prepare import prepare_data
    from semi.errors import DataError

    try:
        data = prepare_data(config_for("small_cnn", "fixmatch", tmp_path, "cpu"))
    except DataError:
        pytest.skip("CIFAR-10 is not on disk (../shared/data/cifar10)")
    r = measure_modes("small_cnn", 2, "cpu", data, tmp_path, ["fixmatch"], ["train.ema_decay=0.99"])
    row = r["methods"]["fixmatch"]
    assert row["eager_ms"] > 0 and row["mode_ms"] > 0 and row["speedup_ci95"][0] <= row["speedup"]
    loads = loader_throughput(data, tmp_path, "cpu", batches=2)
    assert set(loads) == {"workers_0", "workers_1", "workers_2"} and min(loads.values()) > 0
    text = modes_markdown({"device": "cpu", "threads": 1, "torch": torch.__version__, "measured_at": "now",
                           "repeats": 2, "models": [r], "loader_images_per_s": loads})
    assert "| small_cnn | fixmatch |" in text and "workers 2" in text


def test_a_speed_modes_run_keeps_the_rows_it_did_not_measure():
    from speed import merge_mode_rows, modes_markdown

    def row(model, mode, ms, methods=("semi",)):
        return {"model": model, "mode": mode, "methods": {m: {
            "eager_ms": 10.0, "mode_ms": ms, "speedup": 10.0 / ms, "speedup_ci95": [1.0, 3.0], "first_call_s": 1.0}
            for m in methods}}

    earlier = [row("small_cnn", ["train.compile=true"], 8.0), row("wrn28_2", ["train.compile=true"], 9.0,
                                                                  ("fixmatch", "semi"))]
    later = {"repeats": 4, "measured_at": "later", "torch": "2.11", "threads": 1, "hardware": "NVIDIA H100"}
    new = [{**row("small_cnn", ["train.amp=bf16"], 5.0), **later},
           {**row("wrn28_2", ["train.compile=true"], 4.0, ("fixmatch",)), **later}]
    merged = merge_mode_rows(earlier, new, {"repeats": 8, "measured_at": "earlier", "torch": "2.14", "threads": 2})
    # the new rows first; the compiled small CNN and the compiled WRN's semi, not measured again, keep their run's
    # date, rounds, torch and threads
    assert [(r["model"], r["mode"][0], sorted(r["methods"]), r["measured_at"], r["repeats"], r["torch"])
            for r in merged] == [
        ("small_cnn", "train.amp=bf16", ["semi"], "later", 4, "2.11"),
        ("wrn28_2", "train.compile=true", ["fixmatch"], "later", 4, "2.11"),
        ("small_cnn", "train.compile=true", ["semi"], "earlier", 8, "2.14"),
        ("wrn28_2", "train.compile=true", ["semi"], "earlier", 8, "2.14")]
    text = modes_markdown({"device": "cpu", "threads": 1, "torch": "2.11", "measured_at": "later", "repeats": 4,
                           "models": merged, "loader_images_per_s": {"workers_0": 1.0}})
    assert ("| small_cnn | semi | train.compile=true | 10.0 | 8.0 | 1.25 [1.00, 3.00] | 1.0 | 8 | earlier, torch 2.14,"
            " 2 threads |") in text
    assert ("| small_cnn | semi | train.amp=bf16 | 10.0 | 5.0 | 2.00 [1.00, 3.00] | 1.0 | 4 | later, NVIDIA H100, "
            "torch 2.11,") in text
