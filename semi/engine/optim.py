"""SGD with Nesterov momentum, weight decay only on weights (not biases or norm parameters), cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from semi.config import OptimConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Biases and 1-d parameters (BatchNorm/LayerNorm scales and shifts) get no weight decay."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    # fused: one kernel for every parameter (CPU and CUDA alike); the per-parameter loop costs ~8 ops per tensor,
    # a visible share of a small model's step. The same update rule (GradScaler supports fused SGD).
    return torch.optim.SGD(parameter_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0, fused=True)


def cosine_factor(step: int, total_steps: int) -> float:
    """FixMatch's schedule: cos(7*pi*t / (16*T)), from 1 down to about 0.2."""
    return math.cos(7 * math.pi * step / (16 * total_steps))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps))
