"""CPU threads when other processes share the cores.

PyTorch's CPU kernels run in OpenMP parallel regions, each ending in a barrier. By default OpenMP (libgomp, which
the PyTorch wheels use) lets a thread that reaches a barrier spin for a while before it sleeps. Alone on the machine
that is fastest. Beside another busy process, the threads outnumber the cores: a thread spins while the partner it
waits for is descheduled, burning the time slice the partner needs, and every one of the thousands of small parallel
regions of a step can cost a scheduler time slice. Measured on 2 cores beside one other training, the default run's
step took 8-10x longer with spinning threads than with sleeping ones (OMP_WAIT_POLICY=PASSIVE) or one thread.

So semi makes waiting threads sleep (OMP_WAIT_POLICY=PASSIVE) unless the environment already chooses a policy.
libgomp reads the variable once, when torch loads, so this is done when `semi` is imported, before torch; a process
that imported torch earlier keeps its policy. `train.threads` (or OMP_NUM_THREADS) still sets the thread count;
`train.threads=1` is the most robust choice on a machine that is shared all the time.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def prefer_sleeping_threads() -> None:
    """Before torch loads: OpenMP threads wait by sleeping, unless OMP_WAIT_POLICY is set already."""
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def configure_threads(threads: int) -> None:
    """train.threads > 0: that many intra-op threads; 0 keeps PyTorch's default (the physical cores)."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def thread_settings() -> dict[str, object]:
    """What a run records about its threads (results.json's environment)."""
    import torch

    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "omp_wait_policy": os.environ.get(WAIT_POLICY), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
