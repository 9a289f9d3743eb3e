"""How the default run slows down when it shares the CPU with one other training (semi/engine/threads.py).

For each thread setting, the default run (`semi train`, digits_lt) is timed alone, then beside a second default run
with the same setting that was started first and is stopped afterwards. Fair sharing of the cores makes the second
timing about twice the first; spinning OpenMP threads made it ~18x (11 min 48 s instead of ~40 s). Settings:

- default: what semi does now (GOMP_SPINCOUNT=10000 unless a policy or spin count is set, PyTorch's thread count);
- spin: OMP_WAIT_POLICY=ACTIVE, threads that always spin at barriers;
- threads1: the default plus train.threads=1;
- libgomp_default: OMP_WAIT_POLICY and GOMP_SPINCOUNT unset (libgomp spins ~300k iterations): semi before;
- short_spin: GOMP_SPINCOUNT=10000 set explicitly (= default);
- passive: OMP_WAIT_POLICY=PASSIVE, threads that sleep at once.

Run it on an otherwise idle machine (it measures contention, so other load spoils the figures):

    python benchmarks/contention.py                      # all settings, the full default run: ~10-15 min on 2 cores
    python benchmarks/contention.py --epochs 4 --settings default,spin     # a quicker look

Writes benchmarks/results/contention-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "default": ({}, []),
    "spin": ({"OMP_WAIT_POLICY": "ACTIVE"}, []),
    "threads1": ({}, ["train.threads=1"]),
    # libgomp's own default (OMP_WAIT_POLICY unset: spin ~300k iterations, then sleep): what semi did before.
    "libgomp_default": ({"OMP_WAIT_POLICY": ""}, []),
    # a short spin before sleeping (libgomp's GOMP_SPINCOUNT), between spinning and sleeping at once
    "short_spin": ({"GOMP_SPINCOUNT": "10000"}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
}


def command(out_dir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "semi", "train", f"train.out_dir={out_dir}", "train.progress=false",
            "train.tensorboard=false", *extra]


def environment(env_extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, **env_extra}


def timed_run(out_dir: Path, extra: list[str], env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.run(command(out_dir, extra), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    results = json.loads((out_dir / "results.json").read_text())
    return {"wall_seconds": round(wall, 2), "train_seconds": round(results["train_seconds"], 2),
            "steps": results["steps"], "ms_per_step": round(1000 * results["train_seconds"] / results["steps"], 2),
            "threads": results["environment"].get("cpu_threads"),
            "omp_wait_policy": results["environment"].get("omp_wait_policy")}


def start_competitor(out_dir: Path, extra: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A second default run, long enough to outlast the timed one; returns once it is training."""
    proc = subprocess.Popen(command(out_dir, [*extra, "train.epochs=100000"]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (out_dir / "config.yaml").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(2.0)  # past start-up, into the training steps
    if proc.poll() is not None:
        raise SystemExit("the competing training did not start")
    return proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated: {', '.join(SETTINGS)}")
    p.add_argument("--epochs", type=int, help="train.epochs of the timed run (default: the default run's 30)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "contention-cpu.json"))
    args = p.parse_args()
    names = [s for s in args.settings.split(",") if s]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="semi-contention-") as tmp:
        for name in names:
            env_extra, over = SETTINGS[name]
            env = environment(env_extra)
            extra = [*over, *([f"train.epochs={args.epochs}"] if args.epochs else [])]
            alone = timed_run(Path(tmp) / f"{name}-alone", extra, env)
            print(f"{name}: alone {alone['wall_seconds']:.1f} s", flush=True)
            other = start_competitor(Path(tmp) / f"{name}-other", over, env)
            try:
                beside = timed_run(Path(tmp) / f"{name}-beside", extra, env)
            finally:
                os.killpg(other.pid, signal.SIGKILL)
                other.wait()
            slowdown = beside["train_seconds"] / max(alone["train_seconds"], 1e-9)
            print(f"{name}: beside another training {beside['wall_seconds']:.1f} s (training {slowdown:.1f}x "
                  f"slower; fair sharing: ~2x)", flush=True)
            figures[name] = {"env": env_extra, "overrides": over, "alone": alone, "beside_one_other": beside,
                             "slowdown": round(slowdown, 2)}
    record = {"what": "the default run (semi train) alone and beside one other default training",
              "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "machine": platform.processor(),
              "python": platform.python_version(), "settings": figures,
              "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        import torch

        record["torch"] = torch.__version__
    except ImportError:
        pass
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
