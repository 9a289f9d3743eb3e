"""The optimiser and schedule: SGD with Nesterov momentum (FixMatch's) or AdamW with layer-wise learning-rate
decay (the fine-tuning recipe USB uses for pretrained backbones); weight decay only on weights (not biases or norm
parameters); FixMatch's cosine decay or a constant rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from semi.config import OptimConfig


def _holding(module: nn.Module) -> list[nn.Module]:
    return [c for c in module.children() if any(True for _ in c.parameters())]


def backbone_trunk(backbone: nn.Module) -> nn.Module:
    """The backbone seen through wrappers with a single parameter-holding child (a timm or torchvision net inside
    a module, a Sequential of one)."""
    module = backbone
    while len(children := _holding(module)) == 1 and not any(True for _ in module.parameters(recurse=False)):
        module = children[0]
    return module


def backbone_layers(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's layers for layer-wise decay, input side first: the trunk's parameter-holding children, with
    a stack of blocks (a Sequential or ModuleList: a WRN's residual blocks, a ViT's transformer blocks) counted
    block by block."""
    layers: list[nn.Module] = []
    for child in _holding(backbone_trunk(backbone)):
        inner = _holding(child)
        layers.extend(inner if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(inner) > 1 else [child])
    return layers or [backbone]


def layer_scales(model: nn.Module, layer_decay: float) -> dict[int, float]:
    """id(parameter) -> learning-rate factor: 1 for everything outside the backbone (the heads), layer_decay^(L-i)
    for the backbone's layer i of L (0-based from the input: the last layer gets layer_decay^1). Parameters the
    trunk holds itself (a ViT's class token and position embedding) go with the input side, layer_decay^L."""
    scales = {id(p): 1.0 for p in model.parameters()}
    backbone = getattr(model, "backbone", None)
    if backbone is None or layer_decay == 1.0:
        return scales
    layers = backbone_layers(backbone)
    for p in backbone.parameters():  # the trunk's own parameters and any wrapper's: the input side
        scales[id(p)] = layer_decay ** (len(layers) + 1)
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            scales[id(p)] = layer_decay ** (len(layers) - i)
    return scales


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Biases and 1-d parameters (BatchNorm/LayerNorm scales and shifts) get no weight decay; with layer_decay < 1
    one group per (learning-rate factor, decay or not), each group's `lr_scale` applied to the base rate."""
    scales = layer_scales(model, layer_decay)
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for _, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((scales[id(p)], p.ndim > 1), []).append(p)
    keys = sorted(groups, key=lambda k: (-k[0], not k[1]))  # (1.0, decay) first: the old two-group order
    return [{"params": groups[k], "weight_decay": weight_decay if k[1] else 0.0, "lr_scale": k[0]} for k in keys]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    decay = cfg.weight_decay if cfg.weight_decay_mode == "optimizer" else 0.0  # ema_step: decayed in the EMA step
    groups = parameter_groups(model, decay, cfg.layer_decay)
    for g in groups:
        g["lr"] = cfg.lr * g.pop("lr_scale")
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    # fused: one kernel for every parameter (CPU and CUDA alike); the per-parameter loop costs ~8 ops per tensor,
    # a visible share of a small model's step. The same update rule (GradScaler supports fused SGD).
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           fused=True)


def cosine_factor(step: int, total_steps: int) -> float:
    """FixMatch's schedule: cos(7*pi*t / (16*T)), from 1 down to about 0.2."""
    return math.cos(7 * math.pi * step / (16 * total_steps))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps))
