"""Assembling a run: everything a training, an evaluation or a benchmark needs, built in one place and one order.

`build_run` makes, from a config and prepared data, the model (heads from the method's spec), its EMA, the model
that predicts (the spec's `eval_model`: CDMAD's correction), the algorithm with its components, the training
model (DDP, compile), optimiser, schedule, scaler and the step batches. `predicting_model` builds the same
predicting model from a checkpoint's config for `semi predict` / `semi export`. The order of construction is part
of a run's meaning: with the seed set before it, the model's initial weights come out identical every time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semi import distributed as dist
from semi.algorithms.base import Algorithm
from semi.algorithms.registry import build_algorithm
from semi.config import Config
from semi.data.layout import stat_tensors
from semi.data.loaders import StepBatches, augmenter_for
from semi.data.prepare import PreparedData
from semi.engine.ema import EMA
from semi.engine.optim import build_optimizer, build_scheduler
from semi.engine.runtime import amp_dtype
from semi.models import build_model
from semi.models.pretrained import load_pretrained
from semi.specs import base_spec, evaluation_model


def model_for(cfg: Config, num_classes: int, in_channels: int) -> nn.Module:
    """The backbone and heads the run's method needs (its spec's extra heads and model options)."""
    spec = base_spec(cfg.algorithm.name)
    options = spec.model_options(cfg) if spec.model_options is not None else {}
    return build_model(cfg.model, num_classes, in_channels, extra_heads=spec.extra_heads, **options)


def predicting_model(cfg: Config, model: nn.Module) -> nn.Module:
    """The model as the method predicts with it (e.g. CDMAD's test-time correction), in eval mode."""
    return evaluation_model(cfg.algorithm.name, model, cfg).eval()


@dataclass
class Run:
    """The parts of one run, as `build_run` made them."""

    model: nn.Module
    ema: EMA
    eval_model: nn.Module
    """What predicts: the EMA model, wrapped by the method's `eval_model` where it declares one."""
    algorithm: Algorithm
    train_model: nn.Module
    """The model the step runs (DDP-wrapped and/or compiled)."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    batches: StepBatches
    mean: torch.Tensor
    std: torch.Tensor
    labeled_counts: list[int]


def build_run(cfg: Config, d: PreparedData, device: torch.device, rank: int = 0, world_size: int = 1) -> Run:
    t = cfg.train
    c, in_ch = d.num_classes, d.images.shape[-1]
    labeled_counts = [int(v) for v in np.bincount(d.labels[d.split.labeled], minlength=c)]
    mean, std = stat_tensors(d.mean, d.std, d.images.shape[1:], device)

    model = model_for(cfg, c, in_ch)
    pretrained = Path(cfg.model.pretrained).expanduser() if cfg.model.pretrained else None
    # Before the EMA copies the weights. A new run's config checked the file exists; a run resumed or evaluated
    # from a checkpoint gets its weights from there, so a file moved since is skipped.
    if pretrained is not None and pretrained.is_file():
        loaded, ignored = load_pretrained(model.backbone, pretrained)
        if rank == 0:
            print(f"pretrained backbone: {loaded} tensors from {cfg.model.pretrained}"
                  + (f" ({ignored} of the file's tensors not in the backbone, ignored)" if ignored else ""),
                  file=sys.stderr)
    if t.sync_bn and world_size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if t.channels_last and not d.is_vector:
        model = model.to(memory_format=torch.channels_last)
    o = cfg.optim
    ema = EMA(model, t.ema_decay, t.ema_warmup,
              model_decay=o.weight_decay if o.weight_decay_mode == "ema_step" else 0.0)
    eval_model = evaluation_model(cfg.algorithm.name, ema.module, cfg)
    # The class prior of what the algorithm trains on with labels: the labeled set, or for the oracle the whole
    # pool with its true labels (logit adjustment must use the training set's own prior).
    train_idx = d.labeled_indices(true_labels=base_spec(cfg.algorithm.name).trains_on_true_labels)
    prior = torch.tensor(np.bincount(d.labels[train_idx], minlength=c), dtype=torch.float64)
    algorithm = build_algorithm(cfg, c, prior / prior.sum(), model.embed_dim, pool_size=len(d.split.unlabeled),
                                num_labeled=len(train_idx)).to(device)
    algorithm.attach_ema(ema.module)  # DASO's queue reads labeled features from it
    if t.compile:
        # In place, the backbone and heads only: the algorithm's components (bank, prototypes, data-dependent
        # shapes) stay eager, the parameter names and so the checkpoints stay those of the eager model, and DDP
        # wraps the compiled module. The EMA copy (made above) predicts eagerly.
        model.compile(dynamic=False)
    train_model = model if world_size == 1 else dist.wrap_model(
        model, device, unused_parameters=not algorithm.trains_balanced_head)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.total_steps)
    dtype = amp_dtype(t.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    batches = StepBatches(d, t.batch_size, t.mu, t.seed, cfg.total_steps, use_unlabeled=algorithm.uses_unlabeled,
                          true_labels=algorithm.trains_on_true_labels, rank=rank, world_size=world_size,
                          augmenter=augmenter_for(cfg.data, d), augment=cfg.data.augment_on == "loader")
    return Run(model, ema, eval_model, algorithm, train_model, optimizer, scheduler, dtype, scaler, batches, mean,
               std, labeled_counts)
