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


def wrap_model(model: nn.Module, device: torch.device, unused_parameters: bool = False) -> nn.Module:
    """DDP; `unused_parameters` for algorithms that leave a head out of the loss (FixMatch's balanced head)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=unused_parameters)


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a same-shaped tensor from every rank, in rank order (identity in a single process)."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    tdist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def _all_reduce(t: torch.Tensor, op: str) -> torch.Tensor:
    """Reduce over ranks (op: SUM, MAX, MIN), in place, returned for chaining (identity in a single process)."""
    if is_distributed():
        tdist.all_reduce(t, op=getattr(tdist.ReduceOp, op))
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    return _all_reduce(t, "SUM")


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    return _all_reduce(t, "MAX")


def all_reduce_min(t: torch.Tensor) -> torch.Tensor:
    return _all_reduce(t, "MIN")


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) to every rank: DDP keeps them per rank, and a sharded
    evaluation must use one model."""
    if is_distributed():
        for buf in module.buffers():
            tdist.broadcast(buf, src=0)


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def shutdown() -> None:
    if is_distributed():
        tdist.destroy_process_group()
