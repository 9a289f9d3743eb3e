"""PyTorch distributed (torchrun) helpers. Single-process runs see rank 0 of a world of 1 and no-op syncs."""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist
from torch import nn


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def init_from_env(device: str) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return False
    use_cuda = device != "cpu" and torch.cuda.is_available()
    tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and is_distributed():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_algorithm_state(algorithm: nn.Module) -> None:
    """Make every rank hold rank 0's algorithm buffers (bank, estimates, counters)."""
    if not is_distributed():
        return
    for buf in algorithm.buffers():
        tdist.broadcast(buf, src=0)
