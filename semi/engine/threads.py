"""CPU threads when other processes share the cores.

PyTorch's CPU kernels run in OpenMP parallel regions, each ending in a barrier. libgomp (which the PyTorch wheels
use) lets a thread that reaches a barrier spin for ~300,000 iterations before it sleeps. Alone on the machine that
is fastest. Beside another busy process the threads outnumber the cores: a thread spins while the partner it waits
for is descheduled, burning the time slice the partner needs, and a step has thousands of small parallel regions.
Measured on 2 cores (benchmarks/contention.py, 500 steps of the default run, ms per step alone -> beside one other
default run): libgomp's default 30 -> 267 (8.8x); always spin (OMP_WAIT_POLICY=ACTIVE) 29 -> 178; sleep at once
(OMP_WAIT_POLICY=PASSIVE) 50 -> 42 (every barrier pays a wake-up, so alone it is 1.7x slower); a short spin
(GOMP_SPINCOUNT=10000) 36 -> 80 (2.2x: a fair share); one thread 40 -> 35.

So semi sets GOMP_SPINCOUNT=10000 (a short spin, then sleep) unless the environment already chooses a wait policy
or a spin count. libgomp reads the variables once, when torch loads, so this is done when `semi` is imported,
before torch; a process that imported torch earlier keeps its settings. `train.threads` (or OMP_NUM_THREADS) still
sets the thread count; `train.threads=1` is the most robust choice on a machine that is shared all the time.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
SHORT_SPIN = "10000"


def prefer_short_spin() -> None:
    """Before torch loads: OpenMP threads spin briefly, then sleep, unless a policy or spin count is set already."""
    if "torch" not in sys.modules and WAIT_POLICY not in os.environ and SPIN_COUNT not in os.environ:
        os.environ[SPIN_COUNT] = SHORT_SPIN


def configure_threads(threads: int) -> None:
    """train.threads > 0: that many intra-op threads; 0 keeps PyTorch's default (the physical cores)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def thread_settings() -> dict[str, object]:
    """What a run records about its threads (results.json's environment)."""
    import torch

    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "omp_wait_policy": os.environ.get(WAIT_POLICY), "gomp_spincount": os.environ.get(SPIN_COUNT),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
