"""One prepared check for a GPU machine, at most a few minutes: what a CPU-only project cannot measure.

    python benchmarks/gpu_check.py                       # needs one CUDA GPU; writes results/gpu-<date>.json
    python benchmarks/gpu_check.py --device cpu --quick  # the CPU-runnable parts (the test suite runs this)

On CIFAR-10-LT-shaped synthetic data (32x32 RGB, 10 classes, N_1 = 150, M_1 = 300, gamma = 100; coloured noise, so
nothing needs downloading and the GPU machine needs no data set):
1. every method a few hundred steps with WRN-28-2 under bf16 and fp16 autocast: median step time and peak memory;
2. no host synchronisation inside a training step: one step of each method under
   `torch.cuda.set_sync_debug_mode("error")` (reported per method, not fatal);
3. the memory bank's sync-free insert leaves the same state as the `nonzero` pairing, on the device;
4. a one-process DDP run (NCCL on CUDA, gloo on CPU) trains a few steps;
5. loader throughput (images per second with 0, 1, 2 workers) against what the measured step consumes, and the
   batch augmentation on the device (`data.augment_on=device`): its throughput and its views equal the loader's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
REQUIRES = "needs one CUDA GPU (torch.cuda.is_available()); `--device cpu --quick` runs the CPU-runnable parts"
METHODS = ["supervised", "fixmatch", "fixmatch+semi", "dualhead", "semi", "acr", "acr+semi", "daso", "daso+semi",
           "abc", "abc+semi", "cpe", "cpe+semi", "darp", "darp+semi", "simpro", "simpro+semi", "remixmatch",
           "remixmatch+semi", "fixmatch+cdmad", "flexmatch"]


def synthetic_cifar_lt(folder: Path, per_class: int = 500, seed: int = 0) -> Path:
    """An .npz in the `numpy` source's layout: 10 classes of 32x32x3 uint8 images, `per_class` training images per
    class (the split makes them long-tailed) and 200 test images per class; each class a colour plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, size=(10, 3))

    def images(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(10), per_class)
        x = colours[y][:, None, None, :] + rng.normal(0, 40, size=(len(y), 32, 32, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x, y = images(per_class)
    xt, yt = images(200)
    path = folder / "cifar10_lt_synthetic.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def config(npz: Path, method: str, out: Path, device: str, model: str, amp: str = "none"):
    from semi.config import load_config

    return load_config(None, [
        "data.name=numpy", f"data.path={npz}", "data.num_labeled_max=150", "data.num_unlabeled_max=300",
        "data.imbalance_labeled=100", f"model.name={model}", f"algorithm.name={method}", "train.batch_size=64",
        "train.mu=1", "train.epochs=10", "train.steps_per_epoch=100", "train.progress=false",
        "train.tensorboard=false", f"train.out_dir={out}", f"train.device={device}", f"train.amp={amp}",
        "train.channels_last=true", "semi.warmup_epochs=0", "algorithm.est_epoch=0", "daso.pretrain_epochs=0",
        "darp.warmup=0", "cdmad.warmup_epochs=0"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(method: str, npz: Path, out: Path, device: str, model: str, amp: str, steps: int) -> dict:
    """Median seconds per training step after a warm-up, peak memory, and whether a step synchronises."""
    from semi.algorithms.base import StepInfo
    from semi.engine.trainer import Trainer

    trainer = Trainer(config(npz, method, out, device, model, amp))
    dev = trainer.device
    batches = [trainer.to_device(trainer.batches[i]) for i in range(min(steps, 8))]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for i in range(steps):
        info = StepInfo(step=i, epoch=1 + i // 100, total_steps=trainer.cfg.total_steps, total_epochs=10)
        _sync(dev)
        t0 = time.perf_counter()
        trainer.train_step(batches[i % len(batches)], info)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    record = {"method": method, "amp": amp, "steps": steps, "median_step_s": statistics.median(times[steps // 4:]),
              "images_per_step": sum(len(batches[0][k]) for k in ("x_l", "u_w", "u_s1", "u_s2") if k in batches[0]),
              "peak_memory_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None}
    if dev.type == "cuda":
        info = StepInfo(step=steps, epoch=2, total_steps=trainer.cfg.total_steps, total_epochs=10)
        try:
            torch.cuda.set_sync_debug_mode("error")
            trainer.train_step(batches[0], info)
            record["host_sync_in_step"] = None
        except RuntimeError as exc:
            record["host_sync_in_step"] = str(exc).splitlines()[0][:300]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return record


def bank_paths_agree(device: str) -> bool:
    """30 random inserts and decays through the sync-free and the `nonzero` paths leave identical buffers."""
    from semi.algorithms.components.memory_bank import ClassBalancedMemoryBank

    g = torch.Generator().manual_seed(0)
    banks = [ClassBalancedMemoryBank(10, 16, 8).to(device) for _ in range(2)]
    for step in range(30):
        emb = torch.randn(64, 8, generator=g).to(device)
        labels = torch.randint(0, 10, (64,), generator=g).to(device)
        conf = torch.rand(64, generator=g).to(device)
        valid = (torch.rand(64, generator=g) > 0.3).to(device)
        for bank, sync_free in zip(banks, (True, False)):
            bank.insert(emb, labels, conf, valid, sync_free=sync_free)
            if step % 7 == 6:
                bank.decay(0.9)
    a, b = (dict(bank.state_dict()) for bank in banks)
    return all(torch.equal(a[k], b[k]) for k in a)


def ddp_one_process(npz: Path, out: Path, device: str, model: str) -> dict:
    """A world of one: the DDP-wrapped model trains a few steps."""
    import torch.distributed as tdist

    from semi.engine.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000), RANK="0",
                      WORLD_SIZE="1", LOCAL_RANK="0")
    tdist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=0, world_size=1)
    try:
        cfg = config(npz, "semi", out, device, model)
        cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.eval_every = 1, 5, 5
        result = Trainer(cfg).fit()
        return {"ok": True, "steps": result["steps"], "top1": result["metrics"]["top1"]}
    finally:
        tdist.destroy_process_group()


def loader_throughput(npz: Path, out: Path, workers: list[int], steps: int) -> dict:
    from semi.data.loaders import make_loader
    from semi.engine.trainer import Trainer

    trainer = Trainer(config(npz, "semi", out, "cpu", "small_cnn"))
    out_rates = {}
    for n in workers:
        loader = make_loader(trainer.batches, 0, n, 2, pin_memory=False)
        next(loader)  # workers started
        t0 = time.perf_counter()
        images = 0
        for _ in range(steps):
            batch = next(loader)
            images += sum(len(batch[k]) for k in ("x_l", "u_w", "u_s1", "u_s2") if k in batch)
        out_rates[str(n)] = images / (time.perf_counter() - t0)
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    return out_rates


def device_augmentation(npz: Path, out: Path, device: str, steps: int) -> dict:
    """data.augment_on=device: images per second that the batch augmentation delivers on `device` from raw batches
    (the loader then only indexes), and whether its views equal the loader's (the same draws) on one step."""
    from semi.data.loaders import augment_batch
    from semi.engine.trainer import Trainer

    trainer = Trainer(config(npz, "semi", out, "cpu", "small_cnn"))
    batches, dev = trainer.batches, torch.device(device)
    views = ("x_l", "u_w", "u_s1", "u_s2")
    batches.augment = False
    raw = [batches[t] for t in range(steps + 1)]
    batches.augment = True
    on_device = augment_batch({k: v.to(dev) if k != "augment_seed" else v for k, v in raw[0].items()},
                              batches.augmenter)
    equal = all(torch.equal(on_device[k].cpu(), batches[0][k]) for k in views)
    moved = [{k: v.to(dev) if k != "augment_seed" else v for k, v in r.items()} for r in raw[1:]]
    _sync(dev)
    t0 = time.perf_counter()
    images = 0
    for r in moved:
        b = augment_batch(r, batches.augmenter)
        images += sum(len(b[k]) for k in views)
    _sync(dev)
    return {"equals_loader": equal, "images_per_s": images / (time.perf_counter() - t0)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--model", default="wrn28_2")
    p.add_argument("--quick", action="store_true", help="small CNN, 2 steps, float32, one method (CPU tests)")
    p.add_argument("--out", default=None, help="the JSON to write (default results/gpu-<date>.json)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: {REQUIRES}", file=sys.stderr)
        raise SystemExit(2)
    methods = args.methods.split(",")
    amps = ["bf16", "fp16"] if args.device.startswith("cuda") else ["bf16"]
    if args.quick:  # the plumbing of every part, in seconds: the small CNN, float32, one method unless named
        args.model, args.steps, amps = "small_cnn", 2, ["none"]
        methods = methods[:2] if args.methods != ",".join(METHODS) else ["semi"]
    report: dict = {"date": dt.date.today().isoformat(), "device": args.device, "model": args.model,
                    "torch": torch.__version__, "requires": REQUIRES,
                    "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                    "steps": [], "errors": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        npz = synthetic_cifar_lt(tmp, per_class=500)
        for amp in amps:
            for method in methods:
                try:
                    report["steps"].append(step_times(method, npz, tmp / f"{method}-{amp}", args.device,
                                                      args.model, amp, args.steps))
                except Exception as exc:  # noqa: BLE001  (one failing method must not lose the others' numbers)
                    report["errors"].append({"method": method, "amp": amp, "error": traceback.format_exc()[-2000:]})
                    print(f"{method} {amp}: {type(exc).__name__}: {exc}", file=sys.stderr)
        report["bank_sync_free_equals_nonzero"] = bank_paths_agree(args.device)
        report["ddp_one_process"] = ddp_one_process(npz, tmp / "ddp", args.device,
                                                    "small_cnn" if args.quick else args.model)
        report["loader_images_per_s"] = loader_throughput(npz, tmp / "loader", [0] if args.quick else [0, 1, 2],
                                                          3 if args.quick else 30)
        report["device_augmentation"] = device_augmentation(npz, tmp / "augment", args.device,
                                                            3 if args.quick else 30)
    fastest = min((r["median_step_s"] for r in report["steps"]), default=None)
    if fastest:
        report["gpu_images_per_s_fastest_method"] = max(r["images_per_step"] / r["median_step_s"]
                                                        for r in report["steps"])
    out = Path(args.out) if args.out else ROOT / "results" / f"gpu-{report['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=1))
    for r in report["steps"]:
        print(f"{r['method']:16s} {r['amp']:5s} {1000 * r['median_step_s']:8.1f} ms  peak "
              f"{r['peak_memory_mb'] or 0:8.0f} MB  sync: {r.get('host_sync_in_step') or 'none'}")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
