"""Rerun one recorded accuracy cell from its record's command and say where it lands against the seed spread.

    python benchmarks/rerun_check.py --protocol mnist --budget 20000 --cell consistent/semi/0

Reads the cell's record from `results/accuracy-<protocol>[-<budget>].json`, trains again with the record's own
overrides (only `train.out_dir` changes: a fresh folder under `runs/rerun-check/`), and compares the new final top-1
with the record's and with the same method and setting over the recorded seeds: their range (min to max) and the
rerun's distance from their mean in standard deviations (z). The check is written to `results/rerun-check.json`
(one entry per protocol and cell, replaced on a new check) with whether the per-class test accuracies match the
record's and, where the record's run folder is still on disk (its `train.out_dir`, or `--record-run`), how many of
the values logged along the two runs (`metrics.jsonl`: losses, mask rates, pseudo-label accuracies, evaluations;
timings left out) are identical. Training is deterministic, so with the record's commit,
thread count, torch build and CPU the rerun should be bit-identical; where any of those differ it is one more draw,
and with n recorded seeds a fresh draw falls outside their range with probability about 2 / (n + 1), so read z too.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from accuracy import PROTOCOLS, load_records, with_budget  # noqa: E402


def rerun_overrides(record: dict, out_dir: Path) -> list[str]:
    """The record's overrides with its run folder replaced (everything else, seed and threads included, kept)."""
    kept = [o for o in record["overrides"] if not o.startswith("train.out_dir=")]
    return [*kept, f"train.out_dir={out_dir}"]


def seed_spread(records: list[dict], setting: str, method: str) -> dict:
    """Final top-1 of one method and setting over its recorded seeds: n, min, max, mean and sd (sd 0 for one)."""
    values = [r["top1"] for r in records if r["setting"] == setting and r["method"] == method]
    if not values:
        raise SystemExit(f"no records of {method} on {setting}")
    return {"n": len(values), "min": min(values), "max": max(values), "mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


TIMING_KEYS = frozenset({"step_seconds", "data_share"})
"""Logged values that time the run rather than describe its training: left out of the log comparison."""


def logged_values(path: Path) -> dict[tuple[str, int], dict]:
    """{(kind, step): logged fields} of a run's metrics.jsonl, timing fields dropped. A step logged twice (a run
    resumed from a checkpoint before it) keeps its later line; a torn last line (a run killed mid-write) is skipped."""
    from semi.evaluation.report.run_data import read_metrics_jsonl

    train, evals = read_metrics_jsonl(path, [])
    return {(entry["kind"], entry["step"]): {k: v for k, v in entry.items() if k not in TIMING_KEYS}
            for entry in (*train, *evals)}


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _flatten(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (a window with nothing accepted logs NaN in both runs)."""
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return nan or a == b


def compare_logs(recorded: Path, rerun: Path) -> dict:
    """Compare two runs' metrics.jsonl value by value: how many logged values (list entries counted one by one) were
    compared, how many differ, the first (kind, step, field) that differs, and the lines logged by only one run."""
    a, b = logged_values(recorded), logged_values(rerun)
    values = differing = 0
    first = None
    for key in sorted(a.keys() & b.keys()):
        for field in sorted(a[key].keys() | b[key].keys()):
            x, y = _flatten(a[key].get(field)), _flatten(b[key].get(field))
            n_diff = abs(len(x) - len(y)) + sum(not _same(u, v) for u, v in zip(x, y, strict=False))
            values += max(len(x), len(y))
            differing += n_diff
            if n_diff and first is None:
                first = [key[0], key[1], field]
    return {"values": values, "differing": differing, "first_difference": first,
            "lines_only_in_record": len(a.keys() - b.keys()), "lines_only_in_rerun": len(b.keys() - a.keys())}


def record_run_dir(record: dict) -> Path | None:
    """The record's own run folder (its `train.out_dir`), if it is still on disk."""
    out = next((o.split("=", 1)[1] for o in record["overrides"] if o.startswith("train.out_dir=")), None)
    return Path(out) if out and (Path(out) / "metrics.jsonl").exists() else None


def verdict(record_top1: float, rerun_top1: float, spread: dict) -> dict:
    """Where the rerun lands: identical to the record, within the seed spread (min..max), the difference, and z =
    (rerun - seed mean) / seed sd (None with fewer than two seeds or no spread)."""
    z = (rerun_top1 - spread["mean"]) / spread["sd"] if spread["sd"] > 0 else None
    return {"identical": rerun_top1 == record_top1, "within_spread": spread["min"] <= rerun_top1 <= spread["max"],
            "difference": rerun_top1 - record_top1, "z": z}


def check(protocol_name: str, budget: int | None, cell: str, runs_dir: Path,
          results_dir: Path = ROOT / "results", record_run: Path | None = None) -> dict:
    """Rerun `cell` of the protocol (at `budget`) from its record in `results_dir`; the check's entry. `record_run`:
    the record's run folder, when it is not where the record's `train.out_dir` says."""
    protocol = with_budget(PROTOCOLS[protocol_name], budget)
    records = load_records(results_dir / f"accuracy-{protocol.name}.json")
    record = next((r for r in records if r["cell"] == cell), None)
    if record is None:
        raise SystemExit(f"no record of {cell} in accuracy-{protocol.name}.json")
    out_dir = runs_dir / "rerun-check" / protocol.name / cell.replace("/", "_")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    args = rerun_overrides(record, out_dir)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "semi", "train", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"rerun of {cell} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads((out_dir / "results.json").read_text())
    rerun_top1 = results["metrics"]["top1"]
    spread = seed_spread(records, record["setting"], record["method"])
    record_run = record_run or record_run_dir(record)
    logs = compare_logs(record_run / "metrics.jsonl", out_dir / "metrics.jsonl") if record_run else None
    return {"per_class_identical": results["metrics"]["per_class_accuracy"] == record["per_class_accuracy"],
            "logs": logs, "record_run": None if record_run is None else str(record_run),
            "protocol": protocol.name, "cell": cell, "record_top1": record["top1"], "rerun_top1": rerun_top1,
            "record_commit": record.get("git_commit"), "rerun_commit": results["environment"]["git_commit"],
            "rerun_environment": results["environment"],
            "seed_spread": spread, **verdict(record["top1"], rerun_top1, spread),
            "wall_seconds": time.time() - t0, "command": ["python", "-m", "semi", "train", *args],
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def save(path: Path, entry: dict) -> None:
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if (e["protocol"], e["cell"]) != (entry["protocol"], entry["cell"])] + [entry]
    path.write_text(json.dumps(entries, indent=1) + "\n")


def describe(entry: dict) -> str:
    s = entry["seed_spread"]
    where = "identical to the record" if entry["identical"] else (
        "within the seed spread" if entry["within_spread"] else "OUTSIDE the seed spread")
    same = "the record's commit" if entry["rerun_commit"] == entry["record_commit"] else "another commit"
    z = "" if entry["z"] is None else f", z {entry['z']:+.1f}"
    return (f"{entry['protocol']} {entry['cell']}: recorded {entry['record_top1']:.2f}, "
            f"rerun {entry['rerun_top1']:.2f} ({entry['difference']:+.2f}, on {same}); "
            f"seeds {s['min']:.2f}-{s['max']:.2f} (n {s['n']}, mean {s['mean']:.2f} ± {s['sd']:.2f}"
            f"{z}): {where}" + _describe_details(entry))


def _describe_details(entry: dict) -> str:
    if "per_class_identical" not in entry:  # checks recorded before these fields existed
        return ""
    text = f"; per-class accuracies {'identical' if entry['per_class_identical'] else 'DIFFERENT'}"
    logs = entry["logs"]
    if logs is None:
        return text + "; the record's run folder is gone, logs not compared"
    return (text + f"; logged values: {logs['values'] - logs['differing']:,} of {logs['values']:,} identical"
            + (f" (first difference: {logs['first_difference']})" if logs["differing"] else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="mnist")
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--cell", required=True, help="setting/method/seed, as recorded")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "rerun-check.json")
    p.add_argument("--record-run", type=Path, default=None,
                   help="the record's run folder, if not at its train.out_dir (its metrics.jsonl is compared)")
    args = p.parse_args()
    entry = check(args.protocol, args.budget, args.cell, args.runs_dir, record_run=args.record_run)
    save(args.out, entry)
    print(describe(entry))


if __name__ == "__main__":
    main()
