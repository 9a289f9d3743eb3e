"""Time to accuracy: how many training seconds a run needs to reach a target test top-1 in float32 eager and in the
speed modes (`train.compile=true`, `train.amp=bf16`, both), on the default run and on an MNIST-LT cell.

    python benchmarks/time_to_accuracy.py                          # both workloads, every mode, one run each
    python benchmarks/time_to_accuracy.py --workloads default --modes float32,compile --repeats 3

Each run is a fresh `semi train` process (so a compiled mode pays its compilation; inductor's on-disk cache, which a
second run of the same shapes reuses, is reported by `first_step_seconds`), with the same seed in every mode. Its
training seconds at each evaluation are summed from its metrics.jsonl (each logging window's mean step time times
its steps: data loading and the steps; the trainer's clock pauses for evaluations and checkpoints). The target is
the float32 eager run's final top-1 minus `--margin` points (its mean over repeats), so a mode that trains as well
reaches it; a mode that never does is reported as such with its final accuracy. Modes run interleaved within each
repeat. Timings are only meaningful on a quiet machine. Writes benchmarks/results/time-to-accuracy-<device>.json and
a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402

MODES = {"float32": [], "compile": ["train.compile=true"], "bf16": ["train.amp=bf16"],
         "bf16+compile": ["train.amp=bf16", "train.compile=true"]}
"""Each speed mode's overrides (float32 eager is the reference)."""
WORKLOADS = {
    "default": [],  # `semi train` with no config: the embedded digits run
    "mnist": [*accuracy.PROTOCOLS["mnist"].overrides, "algorithm.name=semi", "data.unlabeled_distribution=consistent"],
}
"""Each workload's overrides: the default run, and the MNIST-LT protocol's SeMi cell on consistent data."""


def seconds_to_accuracy(train_rows: list[dict], eval_rows: list[dict],
                        target: float) -> tuple[float | None, int | None]:
    """(training seconds, step) at the first evaluation whose test top-1 reaches `target`; (None, None) if none
    does. A training row logs its window's mean step time at the window's last step; an evaluation at step s counts
    every window that ends at or before s."""
    windows, last = [], 0
    for row in train_rows:
        windows.append((row["step"], row["step_seconds"] * (row["step"] - last)))
        last = row["step"]
    for row in eval_rows:
        if row["top1"] >= target:
            return sum(seconds for end, seconds in windows if end <= row["step"]), row["step"]
    return None, None


def run_once(workload: str, mode: str, seed: int, out: Path, device: str) -> dict:
    """Train one run in a fresh process; what its metrics say about time and accuracy."""
    from semi.evaluation.report.run_data import read_metrics_jsonl

    out_dir = out / f"{workload}_{mode}_{seed}".replace("+", "-")
    args = [*WORKLOADS[workload], *MODES[mode], f"train.seed={seed}", f"train.out_dir={out_dir}",
            f"train.device={device}", "train.progress=false", "train.tensorboard=false"]
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "semi", "train", *args], capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{workload}/{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads((out_dir / "results.json").read_text())
    train_rows, eval_rows = read_metrics_jsonl(out_dir / "metrics.jsonl", [])
    return {"workload": workload, "mode": mode, "seed": seed, "final_top1": results["metrics"]["top1"],
            "train_seconds": results["train_seconds"], "first_step_seconds": results["first_step_seconds"],
            "wall_seconds": wall, "steps": results["steps"], "train_rows": train_rows,
            "evaluations": [{"step": r["step"], "top1": r["top1"]} for r in eval_rows]}


def summarise(runs: list[dict], margin: float) -> list[dict]:
    """Per workload and mode: the target (float32 eager's mean final top-1 - margin) and, over repeats, the median
    seconds to reach it (None where a run never did), the median total training seconds and mean final top-1."""
    out = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        reference = [r["final_top1"] for r in runs if r["workload"] == workload and r["mode"] == "float32"]
        if not reference:
            raise SystemExit(f"{workload}: the float32 mode is the reference and must run")
        target = statistics.mean(reference) - margin
        base = None
        for mode in dict.fromkeys(["float32", *(r["mode"] for r in runs if r["workload"] == workload)]):
            rs = [r for r in runs if r["workload"] == workload and r["mode"] == mode]
            reached = [seconds_to_accuracy(r["train_rows"], r["evaluations"], target) for r in rs]
            seconds = [s for s, _ in reached if s is not None]
            row = {"workload": workload, "mode": mode, "target_top1": target, "runs": len(rs),
                   "reached": len(seconds),
                   "seconds_to_target": statistics.median(seconds) if len(seconds) == len(rs) else None,
                   "train_seconds": statistics.median(r["train_seconds"] for r in rs),
                   "first_step_seconds": statistics.median(r["first_step_seconds"] or 0.0 for r in rs),
                   "final_top1": statistics.mean(r["final_top1"] for r in rs)}
            if mode == "float32":
                base = row["seconds_to_target"]
            row["speedup_to_target"] = (base / row["seconds_to_target"]
                                        if base and row["seconds_to_target"] else None)
            out.append(row)
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| workload | mode | target top-1 | reached | s to target | x float32 | train s | first step s | "
             "final top-1 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        to = (f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None
              else "never" if r["reached"] == 0 else "-")  # some repeats only: no median of a partial set
        speed = f"{r['speedup_to_target']:.2f}" if r["speedup_to_target"] else "-"
        lines.append(f"| {r['workload']} | {r['mode']} | {r['target_top1']:.1f} | {r['reached']}/{r['runs']} | "
                     f"{to} | {speed} | {r['train_seconds']:.1f} | {r['first_step_seconds']:.1f} | "
                     f"{r['final_top1']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated; float32 is always run")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=float, default=1.0, help="points below float32's final top-1 (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="result file (default: results/time-to-accuracy-<device>.json)")
    args = p.parse_args(argv)
    workloads, modes = args.workloads.split(","), list(dict.fromkeys(["float32", *args.modes.split(",")]))
    unknown = sorted({*workloads} - set(WORKLOADS)) + sorted({*modes} - set(MODES))
    if unknown:
        raise SystemExit(f"unknown workloads or modes: {', '.join(unknown)}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for workload in workloads:
                for mode in modes:
                    run = run_once(workload, mode, args.seed, Path(tmp) / str(repeat), args.device)
                    runs.append(run)
                    print(f"{workload}/{mode} repeat {repeat}: top-1 {run['final_top1']:.1f}, "
                          f"{run['train_seconds']:.1f} s training", flush=True)
    rows = summarise(runs, args.margin)
    text = markdown(rows)
    print(text)
    path = Path(args.out) if args.out else accuracy.ROOT / "results" / f"time-to-accuracy-{args.device}.json"
    path.write_text(json.dumps({"margin": args.margin, "seed": args.seed, "rows": rows,
                                "runs": [{k: v for k, v in r.items() if k != "train_rows"} for r in runs]},
                               indent=1) + "\n")
    path.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
