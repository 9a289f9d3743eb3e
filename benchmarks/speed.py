"""Step time of each algorithm against the pure forward+backward limit, data-loader throughput, and the peak
memory of a CIFAR-10-LT training process.

    python benchmarks/speed.py                      # small CNN and WRN-28-2, CPU
    python benchmarks/speed.py --models small_cnn --repeats 20
    python benchmarks/speed.py --models wrn28_2 --methods fixmatch,fixmatch+semi,daso --repeats 10

Per model: every method's training step (forward over all views, losses, backward, optimiser, EMA; no data
loading) on one fixed CIFAR-10-LT batch (B = 64, mu = 1, two strong views: 64 + 3 x 64 images), median of
`--repeats` interleaved rounds after warm-up (shuffled order; each timed call after `--settle` untimed ones of the
same method), with SeMi's components active (past their warm-up). Each method's limit is its own model's forward +
backward on the same 256 images with a plain cross-entropy and nothing else, timed in the same rounds (a base, its
+semi variant and their limits back to back). Ratios (x limit, SeMi's overhead over each base) are medians of
per-round ratios: paired within a round, they cancel load drift; each comes with a distribution-free 95% interval
of that median. DASO is also given against its own passes (the limit plus the EMA forward of the labeled batch
that its authors' code runs every step). Writes
benchmarks/results/speed-<device>.json and a Markdown table next to it.

Speed modes (`--compile`, `--amp bf16`, or both): each method's step in that mode against its own float32 eager
step, in the same interleaved rounds (paired per-round ratios, median and distribution-free 95% interval; the
first calls, which compile, are the untimed warm-up, and the compilation's wall time is reported apart), and the
loader's images per second with 0, 1 and 2 worker processes. Writes benchmarks/results/speed-modes-<device>.json:

    python benchmarks/speed.py --models small_cnn --methods fixmatch,semi --compile --repeats 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from semi.algorithms.base import StepInfo
from semi.algorithms.daso import batch_statistics
from semi.config import load_config
from semi.data.prepare import prepare_data
from semi.engine.trainer import Trainer

METHODS = ["supervised", "fixmatch", "fixmatch+semi", "dualhead", "semi", "acr", "acr+semi", "daso", "daso+semi",
           "abc", "abc+semi", "cpe", "cpe+semi", "darp", "darp+semi", "simpro", "simpro+semi"]
ROOT = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, repeats: int, warmup: int, device: torch.device) -> float:
    return statistics.median(_interleaved_times({"fn": fn}, repeats, warmup, device)["fn"])


def _interleaved_times(fns: dict, repeats: int, warmup: int, device: torch.device, settle: int = 1,
                       groups: list[list[str]] | None = None) -> dict[str, list[float]]:
    """Seconds of each call of each function, timed in interleaved rounds (one timed call of each per round) so that
    a change in machine load affects every method alike instead of biasing whichever ran during it. `groups`: the
    functions that are compared with each other (a method, its limit, its +semi variant and that one's limit) run
    back to back, so that load drift within a round barely touches their ratios; the order of the groups and
    within each group is shuffled every round (seeded). Each timed call follows `settle` untimed calls of the same
    function: in training a step follows a step of the same method, whose code and state are then warm in the
    caches; right after another method's step (another trainer's model and state) every small op runs slower."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    groups = [list(g) for g in groups] if groups else [[name] for name in fns]
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
            for name in group:
                fn = fns[name]
                for _ in range(settle):
                    fn()
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a_i / b_i: the two were timed in the same round, so load that drifts between rounds
    cancels (a ratio of two medians does not cancel it)."""
    return statistics.median(x / y for x, y in zip(a, b))


def median_interval(xs: list[float]) -> tuple[float, float]:
    """Distribution-free 95% interval of the median: order statistics j and k of the sorted sample with
    j = floor(n/2 - 0.98 sqrt(n)), k = ceil(n/2 + 1 + 0.98 sqrt(n)) (1-based; the normal approximation to the
    binomial(n, 1/2) that counts the samples below the median), clipped to the sample."""
    s, n = sorted(xs), len(xs)
    j = max(1, math.floor(n / 2 - 0.98 * math.sqrt(n)))
    k = min(n, math.ceil(n / 2 + 1 + 0.98 * math.sqrt(n)))
    return s[j - 1], s[k - 1]


def paired_ratio_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """95% interval of `paired_ratio`."""
    return median_interval([x / y for x, y in zip(a, b)])


def config_for(model: str, method: str, out: Path, device: str, channels_last: bool = True,
               extra: tuple[str, ...] = ()):
    """The benchmark's CIFAR-10-LT config (channels-last as the training configs unless told otherwise)."""
    return load_config(None, [*extra,
        "data.name=cifar10", "data.num_labeled_max=1500", "data.num_unlabeled_max=3000", "data.imbalance_labeled=100",
        f"model.name={model}", f"algorithm.name={method}", "train.batch_size=64", "train.mu=1",
        "train.epochs=500", "train.steps_per_epoch=500", "train.progress=false", "train.tensorboard=false",
        f"train.out_dir={out}", f"train.device={device}", "semi.warmup_epochs=0", "algorithm.est_epoch=0",
        "daso.pretrain_epochs=0", "darp.warmup=0",
        f"train.channels_last={str(channels_last).lower()}", *extra])


def steps_fn(trainer: Trainer, batch: dict, period: int):
    """A call = `period` training steps past every warm-up, timed as their mean: DARP solves over the whole pool
    once every `darp.solve_every` steps, so its calls hold one solve each (its cost shared by the steps)."""
    cfg = trainer.cfg
    infos = [StepInfo(step=1000 + i, epoch=10, total_steps=cfg.total_steps, total_epochs=cfg.train.epochs)
             for i in range(period)]

    def run() -> None:
        for info in infos:
            trainer.train_step(batch, info)

    return run


def measure_model(model: str, repeats: int, device: str, data, out: Path, channels_last: bool = True,
                  methods: list[str] = METHODS, settle: int = 1) -> dict:
    fns = {}
    periods: dict[str, int] = {}  # steps per call (DARP: one solve's period)
    trainers = {}
    # The same 3-view batch, one device copy, for every method (supervised: its labeled part) and the limit.
    full = Trainer(config_for(model, "fixmatch", out / "batch", device, channels_last), data=data)
    batch_full = full.to_device(full.batches[0])
    for method in methods:
        trainer = trainers[method] = Trainer(config_for(model, method, out / method, device, channels_last), data=data)
        batch = batch_full if method != "supervised" else {k: batch_full[k] for k in ("x_l", "y_l")}
        periods[method] = trainer.cfg.darp.solve_every if method.startswith("darp") else 1
        fns[method] = steps_fn(trainer, batch, periods[method])
    # The limit: forward + backward of the same model on the same images (256; supervised's 64), nothing else.
    # Each method is paired with its own model's limit, timed in the same round: the speed of one model instance
    # (where its weights and buffers landed in memory) moves by a few percent, and one shared limit would shift
    # every ratio of a run together.
    images = batch_full["x_all"]
    target = torch.randint(0, 10, (len(images),), device=full.device)

    def forward_backward(net: torch.nn.Module, n: int):
        def run() -> None:
            net.train().zero_grad(set_to_none=True)
            F.cross_entropy(net(images[:n]).logits, target[:n]).backward()
        return run

    def ema_forward(ema: torch.nn.Module):
        @torch.no_grad()
        def run() -> None:
            with batch_statistics(ema):
                ema(batch_full["x_l"])
        return run

    for method, trainer in trainers.items():
        fns[f"limit:{method}"] = forward_backward(trainer.model, 64 if method == "supervised" else len(images))
        # DASO's own extra pass: its authors' code embeds the labeled batch with the EMA model every step
        # (BatchNorm on the batch's statistics), so its own passes are the limit plus that 64-image forward.
        if method.startswith("daso"):
            fns[f"ema:{method}"] = ema_forward(trainer.ema.module)
    # Each base with its +semi variant, each with its limit (and DASO's EMA pass): compared within their group.
    groups: dict[str, list[str]] = {}
    for method in trainers:
        base = "dualhead" if method == "semi" else method.removesuffix("+semi")
        groups.setdefault(base, []).extend(f for f in (method, f"limit:{method}", f"ema:{method}") if f in fns)
    times = _interleaved_times(fns, repeats, 3, full.device, settle, list(groups.values()))
    times = {k: [t / periods.get(k, 1) for t in ts] for k, ts in times.items()}  # per step
    limits = {m: times.pop(f"limit:{m}") for m in methods}
    emas = {m: times.pop(f"ema:{m}") for m in methods if f"ema:{m}" in times}
    pooled = [t for m in methods if m != "supervised" for t in limits[m]]
    # The loader: the 3-view batch of one step built in this process (one worker's work), images per second.
    loader = _median_time(lambda: full.batches[7], max(5, repeats // 2), 1, torch.device("cpu"))
    per_step = 64 * 4
    result = {"model": model, "loader_batch_ms": 1e3 * loader, "loader_images_per_s": per_step / loader}
    if pooled:
        result["limit_ms"] = 1e3 * statistics.median(pooled)
    if "supervised" in limits:
        result["supervised_limit_ms"] = 1e3 * statistics.median(limits["supervised"])
    if emas:
        result["daso_ema_forward_ms"] = 1e3 * statistics.median([t for ts in emas.values() for t in ts])
    for method, t in times.items():
        base = limits[method]
        own = [a + b for a, b in zip(base, emas[method])] if method in emas else base
        result[method] = {"step_ms": 1e3 * statistics.median(t), "limit_ms": 1e3 * statistics.median(base),
                          "ratio_to_limit": paired_ratio(t, base),
                          "ratio_to_limit_ci95": paired_ratio_interval(t, base),
                          "ratio_to_own_passes": paired_ratio(t, own),
                          "images_per_s_consumed": (64 if method == "supervised" else per_step) / statistics.median(t)}
    # What SeMi's components add to each base they attach to (the '+semi' step over the base's, round by round).
    pairs = semi_pairs(times)
    result["semi_overhead"] = {base: paired_ratio(times[plus], times[base]) - 1 for base, plus in pairs}
    result["semi_overhead_ci95"] = {base: [r - 1 for r in paired_ratio_interval(times[plus], times[base])]
                                    for base, plus in pairs}
    return result


def measure_modes(model: str, repeats: int, device: str, data, out: Path, methods: list[str], mode: list[str],
                  channels_last: bool = True) -> dict:
    """Each method's step in `mode` (train.compile / train.amp overrides) against its float32 eager step."""
    fns, first_call = {}, {}
    full = Trainer(config_for(model, "fixmatch", out / "batch", device, channels_last), data=data)
    batch_full = full.to_device(full.batches[0])
    groups = []
    for method in methods:
        batch = batch_full if method != "supervised" else {k: batch_full[k] for k in ("x_l", "y_l")}
        for tag, extra in (("eager", ()), ("mode", tuple(mode))):
            trainer = Trainer(config_for(model, method, out / f"{method}-{tag}", device, channels_last, extra),
                              data=data)
            fns[f"{tag}:{method}"] = steps_fn(trainer, batch, 1)
            t0 = time.perf_counter()
            fns[f"{tag}:{method}"]()  # the first call: compiles in a compiled mode
            _sync(full.device)
            first_call[f"{tag}:{method}"] = time.perf_counter() - t0
        groups.append([f"eager:{method}", f"mode:{method}"])
    times = _interleaved_times(fns, repeats, 3, full.device, 1, groups)
    out_rows = {}
    for method in methods:
        eager, fast = times[f"eager:{method}"], times[f"mode:{method}"]
        out_rows[method] = {"eager_ms": 1e3 * statistics.median(eager), "mode_ms": 1e3 * statistics.median(fast),
                            "speedup": paired_ratio(eager, fast), "speedup_ci95": paired_ratio_interval(eager, fast),
                            "first_call_s": first_call[f"mode:{method}"],
                            "first_call_eager_s": first_call[f"eager:{method}"]}
    return {"model": model, "mode": mode, "methods": out_rows}


def loader_throughput(data, out: Path, device: str, batches: int = 20) -> dict[str, float]:
    """Images per second the step batches deliver (3-view CIFAR-10-LT batches of 64 + 3 x 64) with 0, 1, 2
    workers, after the first batch (worker start-up) is taken."""
    from semi.data.loaders import make_loader

    trainer = Trainer(config_for("small_cnn", "fixmatch", out / "loader", device), data=data)
    result = {}
    for workers in (0, 1, 2):
        loader = make_loader(trainer.batches, 0, workers, 2, pin_memory=False)
        next(loader)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(loader)
        result[f"workers_{workers}"] = batches * 64 * 4 / (time.perf_counter() - t0)
        del loader
    return result


def hardware(device: str) -> str:
    """What ran the steps: the GPU's name on CUDA, else the CPU's model."""
    from semi.engine.logging import cpu_model

    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_model()


def merge_mode_rows(previous: list[dict], measured: list[dict], previous_run: dict | None = None) -> list[dict]:
    """The rows of a speed-modes record after a new run: the new rows, then every earlier (model, mode, method)
    measurement that was not taken again, in its earlier row with that row's own date, rounds, torch and threads
    (taken from its run when the row has none)."""
    done = {(r["model"], tuple(r["mode"]), m) for r in measured for m in r["methods"]}
    run = {k: (previous_run or {}).get(k) for k in ("repeats", "measured_at", "torch", "threads", "device",
                                                     "hardware")}
    kept = []
    for r in previous:
        methods = {m: v for m, v in r["methods"].items() if (r["model"], tuple(r["mode"]), m) not in done}
        if methods:
            kept.append({**run, **r, "methods": methods})
    return [*measured, *kept]


def modes_markdown(results: dict) -> str:
    lines = [f"Speed modes on {results['device']}: step time against the same method's float32 eager step, median "
             "of the row's paired rounds [95% interval]; first call = compilation and the first step.", "",
             "| model | method | mode | eager ms | mode ms | speed-up | first call (s) | rounds | measured |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results["models"]:
        at = {k: r.get(k, results.get(k)) for k in ("repeats", "measured_at", "torch", "threads", "hardware")}
        on = f"{at['hardware']}, " if at["hardware"] else ""
        for method, m in r["methods"].items():
            lo, hi = m["speedup_ci95"]
            lines.append(f"| {r['model']} | {method} | {' '.join(r['mode'])} | {m['eager_ms']:.1f} "
                         f"| {m['mode_ms']:.1f} | {m['speedup']:.2f} [{lo:.2f}, {hi:.2f}] "
                         f"| {m['first_call_s']:.1f} | {at['repeats']} "
                         f"| {at['measured_at']}, {on}torch {at['torch']}, {at['threads']} threads |")
    lines += ["", "Loader (images per second, 3-view batches of 64 + 3 x 64): " + ", ".join(
        f"{k.replace('_', ' ')} {v:,.0f}" for k, v in results["loader_images_per_s"].items())]
    return "\n".join(lines)


def semi_pairs(methods) -> list[tuple[str, str]]:
    """(base, base+semi) for every measured pair (semi = dualhead+semi)."""
    pairs = [(m[: -len("+semi")], m) for m in methods if isinstance(m, str) and m.endswith("+semi")]
    pairs.append(("dualhead", "semi"))
    return [(base, plus) for base, plus in pairs if base in methods and plus in methods]


def semi_overhead(result: dict) -> dict[str, float]:
    """Per base: the '+semi' step time over the base's (paired by round when the record has it)."""
    if "semi_overhead" in result:
        return result["semi_overhead"]
    return {base: result[plus]["step_ms"] / result[base]["step_ms"] - 1 for base, plus in semi_pairs(result)}


def peak_rss_of_training(out: Path) -> float:
    """Peak resident memory (MiB) of a short CIFAR-10-LT training process (small CNN, 20 steps)."""
    cmd = [sys.executable, "-m", "semi", "train", "--config", "cifar10_lt_cpu", "train.epochs=1",
           "train.steps_per_epoch=20", "train.eval_every=20", "train.progress=false", f"train.out_dir={out}",
           "data.num_workers=0"]
    # os.wait4 gives this child's own peak. RUSAGE_CHILDREN would be the maximum over every child this process
    # ever had, including forked loader workers that inherit (and count) the benchmark's own large RSS.
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stderr.txt", "w+b") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"training for the RSS measurement failed: {err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def markdown(results: dict) -> str:
    lines = ["| model | method | step (ms) | x limit [95% interval] | x its own passes | images/s consumed |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results["models"]:
        lines.append(f"| {r['model']} | forward+backward limit (256 images) | {r['limit_ms']:.1f} | 1.00 | | |")
        if "supervised_limit_ms" in r:
            lines.append(f"| {r['model']} | forward+backward limit (64 images; supervised's base) | "
                         f"{r['supervised_limit_ms']:.1f} | 1.00 | | |")
        if "daso_ema_forward_ms" in r:
            lines.append(f"| {r['model']} | DASO's EMA forward of the 64 labeled images | "
                         f"{r['daso_ema_forward_ms']:.1f} | | | |")
        for m in (m for m in METHODS if m in r):
            ci = r[m].get("ratio_to_limit_ci95")
            interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            own = r[m].get("ratio_to_own_passes")
            lines.append(f"| {r['model']} | {m} | {r[m]['step_ms']:.1f} | {r[m]['ratio_to_limit']:.2f}{interval} | "
                         f"{'' if own is None else f'{own:.2f}'} | {r[m]['images_per_s_consumed']:.0f} |")
        lines.append(f"| {r['model']} | data loader, one worker (3-view batch) | {r['loader_batch_ms']:.1f} | | | "
                     f"{r['loader_images_per_s']:.0f} produced |")
    lines.append("")
    lines.append("x its own passes: the limit plus the forward passes the method itself defines (DASO: its "
                 "authors' EMA forward of the labeled batch every step); the same as x limit for the others.")
    lines.append("")

    def overhead(r: dict) -> str:
        ci = r.get("semi_overhead_ci95", {})
        return ", ".join(f"{100 * v:+.1f}%" + (f" [{100 * ci[b][0]:+.1f}, {100 * ci[b][1]:+.1f}]" if b in ci else "")
                         + f" over {b}" for b, v in semi_overhead(r).items())

    lines.append("SeMi components' overhead over each base (median of per-round ratios [95% interval]): " + "; ".join(
        f"{r['model']}: {overhead(r)}" for r in results["models"]))
    if results.get("peak_rss_mib"):
        lines.append(f"Peak resident memory of a CIFAR-10-LT training process: {results['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="small_cnn,wrn28_2")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--settle", type=int, default=1, help="untimed calls of a method before each timed one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset (default: all)")
    p.add_argument("--compile", action="store_true", help="time train.compile=true against the eager step")
    p.add_argument("--amp", choices=("bf16",), help="time train.amp=bf16 against the float32 step")
    args = p.parse_args()
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {METHODS}")
    channels_last = not args.no_channels_last
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path("/tmp/semi-speed")
    cfg = config_for("small_cnn", "fixmatch", out, args.device)
    data = prepare_data(cfg)
    if args.compile or args.amp:
        mode = [*(["train.compile=true"] if args.compile else []), *([f"train.amp={args.amp}"] if args.amp else [])]
        measured_at = time.strftime("%Y-%m-%d %H:%M:%S")
        rows = [{**measure_modes(m, args.repeats, args.device, data, out, methods, mode, channels_last),
                 "repeats": args.repeats, "measured_at": measured_at, "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "device": args.device, "hardware": hardware(args.device)}
                for m in args.models.split(",")]
        dest = ROOT / "results" / f"speed-modes-{torch.device(args.device).type}.json"
        previous = json.loads(dest.read_text()) if dest.is_file() else {}
        results = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "repeats": args.repeats, "measured_at": measured_at,
                   "models": merge_mode_rows(previous.get("models", []), rows, previous),
                   "loader_images_per_s": loader_throughput(data, out, args.device)}
        results["loader_images_per_s_runs"] = [*previous.get("loader_images_per_s_runs", []),
                                               results["loader_images_per_s"]]
        dest.write_text(json.dumps(results, indent=2))
        dest.with_suffix(".md").write_text(modes_markdown(results) + "\n")
        print(modes_markdown(results))
        print(f"wrote {dest}")
        return
    results = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "channels_last": channels_last, "repeats": args.repeats, "models": []}
    dest = ROOT / "results" / f"speed-{torch.device(args.device).type}.json"
    previous = json.loads(dest.read_text()) if dest.is_file() else {}
    for model in args.models.split(","):
        r = measure_model(model, args.repeats, args.device, data, out, channels_last, methods, args.settle)
        r["settle"] = args.settle
        r["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        results["models"].append(r)
        print(json.dumps(r, indent=1))
    # Models not measured this time keep their previous record (each carries its own measured_at).
    measured = {r["model"] for r in results["models"]}
    results["models"] += [r for r in previous.get("models", []) if r["model"] not in measured]
    if args.no_rss and previous.get("peak_rss_mib"):
        results["peak_rss_mib"] = previous["peak_rss_mib"]
    if not args.no_rss:
        results["peak_rss_mib"] = peak_rss_of_training(out / "rss")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=2))
    dest.with_suffix(".md").write_text(markdown(results) + "\n")
    from accuracy import replace_marked  # benchmarks/ is on the path when this runs as a script

    if replace_marked(ROOT.parent / "BENCHMARKS.md", f"speed-{results['device']}", markdown(results)):
        print(f"updated BENCHMARKS.md: speed-{results['device']}")
    print(markdown(results))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
