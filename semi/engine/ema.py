"""Exponential moving average of the weights (and a copy of the buffers), used for evaluation."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """`model_decay` > 0: after each update the training model's parameters are multiplied by (1 - model_decay),
    the weight decay of DARP's and ABC's released `WeightEMA` (theirs also scales the BatchNorm buffers; here
    parameters only)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True, model_decay: float = 0.0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.model_decay = decay, warmup, model_decay
        self.updates = 0

    def current_decay(self) -> float:
        """min(decay, (1+t)/(10+t)) with warm-up: over a short run a fixed 0.999 keeps much of the random init."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_params = [p for p in self.module.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        ema_buffers, buffers = list(self.module.buffers()), list(model.buffers())
        if len(ema_buffers) != len(buffers):
            raise ValueError(f"EMA model has {len(ema_buffers)} buffers, the model {len(buffers)}")
        if buffers:  # (a model without BatchNorm has none)
            torch._foreach_copy_(ema_buffers, buffers)  # running statistics, copied (one op for all)
        if self.model_decay:
            torch._foreach_mul_(params, 1.0 - self.model_decay)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
