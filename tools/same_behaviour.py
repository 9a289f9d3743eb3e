"""Does a change keep every method's behaviour? Train each method briefly on digits and fingerprint its
metrics.jsonl (every logged number except wall-clock timings), for two checkouts, and compare.

    python tools/same_behaviour.py --repo . --out /tmp/after.json
    python tools/same_behaviour.py --repo ../old-checkout --out /tmp/before.json
    python tools/same_behaviour.py --compare /tmp/before.json /tmp/after.json

Each run: digits, 2 epochs of 15 steps, an evaluation every 10 steps, warm-ups at 0 so that every component and
every base's periodic work (ACR's estimate, DASO's blend, DARP's solves, SimPro's EM) acts within the run; one
thread, deterministic. Equal fingerprints mean bit-identical logs (losses, diagnostics, evaluation metrics).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

METHODS = ("supervised", "oracle", "fixmatch", "fixmatch+semi", "dualhead", "semi", "acr", "acr+semi", "daso",
           "daso+semi", "abc", "abc+semi", "cpe", "cpe+semi", "darp", "darp+semi", "simpro", "simpro+semi")
OVERRIDES = ["data.name=digits", "data.num_labeled_max=30", "data.num_unlabeled_max=90", "model.width=8",
             "train.epochs=2", "train.steps_per_epoch=15", "train.eval_every=10", "train.batch_size=16",
             "train.log_every=5", "train.threads=1", "train.progress=false", "train.tensorboard=false",
             "algorithm.est_epoch=0", "semi.warmup_epochs=0", "semi.bank_size=8", "semi.decay_every=7",
             "daso.pretrain_epochs=0", "daso.dist_update_every=5", "darp.warmup=0", "darp.solve_every=5"]
TIMING = ("step_seconds", "data_share", "seconds", "wall", "time", "eval_seconds", "train_seconds")


def fingerprint(path: Path, ignore: tuple[str, ...] = ()) -> str:
    """sha256 over the log's records with timing fields (and keys containing any of `ignore`: diagnostics added
    since the other fingerprint) removed, keys sorted."""
    h = hashlib.sha256()
    for line in path.read_text().splitlines():
        rec = {k: v for k, v in json.loads(line).items() if not any(t in k for t in (*TIMING, *ignore))}
        h.update(json.dumps(rec, sort_keys=True).encode())
    return h.hexdigest()


def run_all(repo: Path, methods: list[str], extra: list[str], ignore: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            run_dir = Path(tmp) / method.replace("+", "_")
            cmd = [sys.executable, "-m", "semi", "train", *OVERRIDES, *extra, f"algorithm.name={method}",
                   f"train.out_dir={run_dir}"]
            proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
            if proc.returncode != 0:
                out[method] = f"failed: {proc.stderr.strip().splitlines()[-1:]}"
            else:
                out[method] = fingerprint(run_dir / "metrics.jsonl", ignore)
            print(f"{method:16s} {out[method]}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", default=".", help="the checkout whose `semi` runs (its folder is put first on the path)")
    p.add_argument("--out", help="write the fingerprints here (JSON)")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    p.add_argument("--ignore", nargs="*", default=[], help="leave out logged keys containing these (new diagnostics)")
    p.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = p.parse_args()
    if args.compare:
        before, after = (json.loads(Path(f).read_text()) for f in args.compare)
        differ = [m for m in before if before[m] != after.get(m)]
        for m in before:
            print(f"{m:16s} {'same' if m not in differ else 'DIFFERENT'}")
        sys.exit(1 if differ else 0)
    prints = run_all(Path(args.repo).resolve(), args.methods, args.overrides, tuple(args.ignore))
    if args.out:
        Path(args.out).write_text(json.dumps(prints, indent=1) + "\n")


if __name__ == "__main__":
    main()
