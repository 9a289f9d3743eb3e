"""A forward pass that leaves BatchNorm's running statistics as they were.

Some passes of a training step only look at the model (CDMAD's probe of a pattern-less image, ReMixMatch's weak view
that forms its guess): they normalise with their own batch's statistics, as every training-mode pass does, but
their batch should not move the running statistics that evaluation uses (USB's `bn_controller.freeze_bn` /
`unfreeze_bn` does the same for ReMixMatch and MixMatch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _running(m: nn.modules.batchnorm._BatchNorm) -> list[Tensor]:
    return [t for t in (m.running_mean, m.running_var, m.num_batches_tracked) if t is not None]


@contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Inside: passes use their batch statistics; on leaving, every BatchNorm's running mean, variance and batch
    count are restored (copied back in place: one device op per module, no host sync)."""
    norms = batch_norms(model)
    with torch.no_grad():
        saved = [[t.clone() for t in _running(m)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, kept in zip(norms, saved):
                torch._foreach_copy_(_running(m), kept)
