"""Run a model over a held-out set and compute the metrics of both heads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semi.evaluation.metrics import classification_metrics


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float, per-channel standardised."""
    return (x.float().div_(255.0) - mean) / std


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, mean: torch.Tensor, std: torch.Tensor, device: torch.device,
            batch_size: int = 512, channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the standard and the balanced head for uint8 NHWC images."""
    model.eval()
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2)
    std_logits, bal_logits = [], []
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device, non_blocking=True), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        std_logits.append(out.logits.float().cpu())
        bal_logits.append(out.logits_balanced.float().cpu())
    return torch.cat(std_logits).numpy(), torch.cat(bal_logits).numpy()


def evaluate_heads(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int,
                   labeled_counts: list[int], mean: torch.Tensor, std: torch.Tensor, device: torch.device,
                   channels_last: bool = False) -> dict[str, dict[str, object]]:
    logits, logits_bal = predict(model, images, mean, std, device, channels_last=channels_last)
    return {
        "standard": classification_metrics(logits.argmax(1), labels, num_classes, labeled_counts),
        "balanced": classification_metrics(logits_bal.argmax(1), labels, num_classes, labeled_counts),
    }
