"""Run a model over a held-out set and compute the metrics of both heads (sharded across ranks under DDP)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semi.distributed import all_reduce_sum, rank, world_size
from semi.evaluation.metrics import metrics_from_confusion


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float, per-channel standardised."""
    return (x.float().div_(255.0) - mean) / std


@torch.no_grad()
def confusion_matrices(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int,
                       mean: torch.Tensor, std: torch.Tensor, device: torch.device, batch_size: int = 512,
                       channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """[true, predicted] counts of the standard and the balanced head for uint8 NHWC images. Each rank takes
    every world_size-th image; the counts are summed over ranks."""
    model.eval()
    shard = slice(rank(), None, world_size())
    x_all = torch.from_numpy(np.ascontiguousarray(images[shard])).permute(0, 3, 1, 2)
    y_all = torch.from_numpy(np.asarray(labels[shard], dtype=np.int64)).to(device)
    cms = torch.zeros(2, num_classes * num_classes, dtype=torch.int64, device=device)
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device, non_blocking=True), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        y = y_all[i:i + batch_size] * num_classes
        for h, logits in enumerate((out.logits, out.logits_balanced)):
            cms[h] += torch.bincount(y + logits.argmax(1), minlength=num_classes * num_classes)
    all_reduce_sum(cms)
    cms = cms.view(2, num_classes, num_classes).cpu()
    return cms[0], cms[1]


def evaluate_heads(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int,
                   labeled_counts: list[int], mean: torch.Tensor, std: torch.Tensor, device: torch.device,
                   channels_last: bool = False) -> dict[str, dict[str, object]]:
    cm_std, cm_bal = confusion_matrices(model, images, labels, num_classes, mean, std, device,
                                        channels_last=channels_last)
    return {"standard": metrics_from_confusion(cm_std.numpy(), labeled_counts),
            "balanced": metrics_from_confusion(cm_bal.numpy(), labeled_counts)}
