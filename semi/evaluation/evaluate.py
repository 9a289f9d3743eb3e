"""Run a model over a held-out set and compute the metrics of both heads (sharded across ranks under DDP)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semi.data.layout import normalize, to_model_layout
from semi.distributed import all_reduce_sum, rank, world_size
from semi.evaluation.metrics import metrics_from_confusion

ECE_BINS = 15
"""Confidence bins of the expected calibration error (Guo et al., 2017)."""


@torch.no_grad()
def confusion_matrices(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int,
                       mean: torch.Tensor, std: torch.Tensor, device: torch.device, batch_size: int = 512,
                       channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[true, predicted] counts of the standard and the balanced head for stored inputs (uint8 NHWC images or
    float feature vectors), and per head the sums the probability metrics need ([2, 3 * ECE_BINS + 1]: per
    confidence bin the count, the summed confidence and the correct count; then the top-5 hits). Each rank takes
    every world_size-th input; sums over ranks."""
    model.eval()
    shard = slice(rank(), None, world_size())
    x_all = to_model_layout(torch.from_numpy(np.ascontiguousarray(images[shard])))
    y_all = torch.from_numpy(np.asarray(labels[shard], dtype=np.int64)).to(device)
    cms = torch.zeros(2, num_classes * num_classes, dtype=torch.int64, device=device)
    prob_sums = torch.zeros(2, 3 * ECE_BINS + 1, dtype=torch.float64, device=device)
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device, non_blocking=True), mean, std)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        target = y_all[i:i + batch_size]
        y = target * num_classes
        for h, logits in enumerate((out.logits, out.logits_balanced)):
            cms[h] += torch.bincount(y + logits.argmax(1), minlength=num_classes * num_classes)
            prob_sums[h] += probability_sums(logits.float(), target)
    all_reduce_sum(cms)
    all_reduce_sum(prob_sums)
    cms = cms.view(2, num_classes, num_classes).cpu()
    return cms[0], cms[1], prob_sums.cpu()


@torch.no_grad()
def soft_confusion(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int, mean: torch.Tensor,
                   std: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """[C, C] float64: column y sums the standard head's softmax over the inputs of true class y (DARP's
    `confusion`); sharded over ranks and summed."""
    model.eval()
    shard = slice(rank(), None, world_size())
    x_all = to_model_layout(torch.from_numpy(np.ascontiguousarray(images[shard])))
    y_all = torch.from_numpy(np.asarray(labels[shard], dtype=np.int64)).to(device)
    out = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
    for i in range(0, len(x_all), batch_size):
        probs = model(normalize(x_all[i:i + batch_size].to(device), mean, std)).logits.float().softmax(1)
        out.index_add_(1, y_all[i:i + batch_size], probs.double().T)
    all_reduce_sum(out)
    return out


def probability_sums(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[3 * ECE_BINS + 1] float64: per confidence bin ((k/B, (k+1)/B], the first also holding 0) the count of
    images, their summed top-1 confidence and how many are right; then how many have the true class in the top 5."""
    probs = torch.softmax(logits, dim=1)
    conf, pred = probs.max(dim=1)
    right = (pred == target).double()
    bins = (conf * ECE_BINS).ceil().long().clamp(1, ECE_BINS) - 1
    out = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=logits.device)
    out[0].index_add_(0, bins, torch.ones_like(right))
    out[1].index_add_(0, bins, conf.double())
    out[2].index_add_(0, bins, right)
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == target[:, None]).any(1).double().sum()
    return torch.cat([out.flatten(), top5.view(1)])


def evaluate_heads(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int,
                   labeled_counts: list[int], mean: torch.Tensor, std: torch.Tensor, device: torch.device,
                   channels_last: bool = False) -> dict[str, dict[str, object]]:
    cm_std, cm_bal, sums = confusion_matrices(model, images, labels, num_classes, mean, std, device,
                                              channels_last=channels_last)
    return {head: {**metrics_from_confusion(cm.numpy(), labeled_counts), **probability_metrics(s.numpy())}
            for head, cm, s in (("standard", cm_std, sums[0]), ("balanced", cm_bal, sums[1]))}


def probability_metrics(sums: np.ndarray) -> dict[str, float]:
    """Expected calibration error (%: sum over bins of |accuracy - mean confidence| weighted by the bin's share)
    and top-5 accuracy (%) from `probability_sums`."""
    count, conf, right = sums[:-1].reshape(3, ECE_BINS)
    n = count.sum()
    if n == 0:
        return {"ece": float("nan"), "top5": float("nan")}
    ece = np.abs(right - conf).sum() / n  # sum_b (n_b / n) |acc_b - conf_b| = sum_b |right_b - conf_b| / n
    return {"ece": float(100.0 * ece), "top5": float(100.0 * sums[-1] / n)}
