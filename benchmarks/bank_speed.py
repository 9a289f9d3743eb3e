"""Memory-bank insert and decay: the vectorised bank against two one-candidate-at-a-time references.

- `NaiveBank`, the leanest loop: per candidate a host sync, an argmin over the row and three scalar writes; decay
  is a loop over classes. A lower bound on what any per-candidate loop costs.
- `SortedRowBank`, the pattern of SeMi's released script: rows kept sorted by confidence; every
  accepted candidate rebuilds its row (concatenation, argsort, reorder of the K x D embeddings); decay finds the
  entries not inserted since the last decay by value matching per class (unique / isin), then re-sorts each
  row. Written here to reproduce that cost, with the one-at-a-time replace-the-lowest semantics (the script's
  own row shift drops the wrong entry, defect 6.2); its contents are checked against the vectorised bank.

    python benchmarks/bank_speed.py [--device cuda] [--out benchmarks/results/bank-speed-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from semi.algorithms.components.memory_bank import ClassBalancedMemoryBank


class NaiveBank:
    """One candidate at a time: find the row's lowest, replace it if the candidate is more confident."""

    def __init__(self, classes: int, size: int, dim: int, device: torch.device):
        self.emb = torch.zeros(classes, size, dim, device=device)
        self.conf = torch.full((classes, size), float("-inf"), device=device)
        self.fresh = torch.zeros(classes, size, dtype=torch.bool, device=device)

    def insert(self, emb: torch.Tensor, labels: torch.Tensor, conf: torch.Tensor, valid: torch.Tensor) -> None:
        for i in range(len(labels)):
            if not bool(valid[i]):
                continue
            k = int(labels[i])
            j = int(self.conf[k].argmin())
            if float(conf[i]) > float(self.conf[k, j]):
                self.emb[k, j] = emb[i]
                self.conf[k, j] = conf[i]
                self.fresh[k, j] = True

    def decay(self, beta: float) -> None:
        for k in range(self.conf.shape[0]):
            stale = ~self.fresh[k] & torch.isfinite(self.conf[k])
            self.conf[k, stale] *= beta
        self.fresh.zero_()


class SortedRowBank:
    """Rows sorted by descending confidence; every accepted candidate rebuilds its row (the authors' pattern)."""

    def __init__(self, classes: int, size: int, dim: int, device: torch.device):
        self.emb = torch.zeros(classes, size, dim, device=device)
        self.conf = torch.full((classes, size), float("-inf"), device=device)
        self.inserted: list[list[float]] = [[] for _ in range(classes)]
        self.device = device

    def insert(self, emb: torch.Tensor, labels: torch.Tensor, conf: torch.Tensor, valid: torch.Tensor) -> None:
        emb, labels, conf = emb[valid], labels[valid], conf[valid]
        for i in range(labels.size(0)):
            k = labels[i]
            if conf[i] > self.conf[k][-1]:  # host sync per candidate
                row = torch.cat((self.emb[k][:-1], emb[i].unsqueeze(0)))  # the lowest (last) entry leaves
                self.conf[k][-1] = conf[i]
                order = torch.argsort(self.conf[k], descending=True, stable=True)
                self.emb[k] = row[order]
                self.conf[k] = self.conf[k][order]
                self.inserted[k].append(float(conf[i]))

    def decay(self, beta: float) -> None:
        for k in range(self.conf.size(0)):
            row = self.conf[k]
            recent = torch.tensor(self.inserted[k], device=self.device)
            stale = ~torch.isin(row, torch.unique(recent)) & torch.isfinite(row)
            if stale.any():
                row[stale] *= beta
                order = torch.argsort(row, descending=True, stable=True)
                self.emb[k] = self.emb[k][order]
                self.conf[k] = row[order]
        self.inserted = [[] for _ in self.inserted]


def _same_rows(fast: ClassBalancedMemoryBank, conf: torch.Tensor) -> bool:
    """The same multiset of confidences in every row (slot order differs between the banks)."""
    return torch.equal(fast.confidence.sort(dim=1).values.cpu(), conf.sort(dim=1).values.cpu())


def _time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_inserts(bank, pool: list, repeats: int, device: torch.device) -> float:
    """Median time of inserting the pool's batches one call each (every bank sees the same batches)."""
    batches = iter(pool)
    return _time(lambda: bank.insert(*next(batches)), repeats, device)


def measure(classes: int, size: int, batch: int, dim: int, device: torch.device, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)

    def candidates():
        return (torch.randn(batch, dim, generator=g).to(device),
                torch.randint(0, classes, (batch,), generator=g).to(device),
                torch.rand(batch, generator=g).to(device), (torch.rand(batch, generator=g) < 0.8).to(device))

    fast = ClassBalancedMemoryBank(classes, size, dim).to(device)
    naive, sorted_rows = NaiveBank(classes, size, dim, device), SortedRowBank(classes, size, dim, device)
    for _ in range(max(1, classes * size // batch * 2)):  # fill the rows so inserts compete with full rows
        c = candidates()
        for bank in (fast, naive, sorted_rows):
            bank.insert(*c)
    if not (_same_rows(fast, naive.conf) and _same_rows(fast, sorted_rows.conf)):
        raise AssertionError("the reference banks disagree with the vectorised bank")
    pool = [candidates() for _ in range(repeats + 3)]
    t_fast = _time_inserts(fast, pool, repeats, device)
    t_naive = _time_inserts(naive, pool, min(repeats, 20), device)
    t_sorted = _time_inserts(sorted_rows, pool, min(repeats, 20), device)
    d_fast = _time(lambda: fast.decay(0.99), repeats, device)
    d_naive = _time(lambda: naive.decay(0.99), min(repeats, 20), device)
    d_sorted = _time(lambda: sorted_rows.decay(0.99), min(repeats, 20), device)
    proto = _time(lambda: fast.prototypes(), repeats, device)
    return {"device": str(device), "classes": classes, "K": size, "candidates": batch, "dim": dim,
            "insert_ms": 1e3 * t_fast, "naive_insert_ms": 1e3 * t_naive, "insert_speedup": t_naive / t_fast,
            "authors_insert_ms": 1e3 * t_sorted, "insert_speedup_vs_authors": t_sorted / t_fast,
            "decay_ms": 1e3 * d_fast, "naive_decay_ms": 1e3 * d_naive, "decay_speedup": d_naive / d_fast,
            "authors_decay_ms": 1e3 * d_sorted, "decay_speedup_vs_authors": d_sorted / d_fast,
            "prototypes_ms": 1e3 * proto}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for classes in (10, 100):
        for size in (128, 512):
            # a 128-image unlabeled batch offers 2 x 128 strong views; the micro-case is 128 candidates
            for batch in (128, 256):
                r = measure(classes, size, batch, 128, device, args.repeats)
                rows.append(r)
                print(f"C={classes:3d} K={size:3d} cand={batch:3d}: insert {r['insert_ms']:.3f} ms vs naive "
                      f"{r['naive_insert_ms']:.2f} ms ({r['insert_speedup']:.0f}x), authors' pattern "
                      f"{r['authors_insert_ms']:.2f} ms ({r['insert_speedup_vs_authors']:.0f}x); "
                      f"decay {r['decay_ms']:.3f} ms vs {r['naive_decay_ms']:.2f} ms ({r['decay_speedup']:.0f}x), "
                      f"authors' {r['authors_decay_ms']:.2f} ms ({r['decay_speedup_vs_authors']:.0f}x); "
                      f"prototypes {r['prototypes_ms']:.3f} ms")
    out = Path(args.out or f"benchmarks/results/bank-speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
