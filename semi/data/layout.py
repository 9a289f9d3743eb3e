"""The two kinds of input a run takes, and how each becomes what a model sees.

- images: uint8 arrays (N, H, W, C), stored and augmented as bytes; the model takes float (N, C, H, W), scaled to
  [0, 1] and standardised per channel.
- feature vectors: float32 arrays (N, D) from any modality (`data.name=features`); the model takes float (N, D),
  standardised per dimension with statistics of the labeled training rows.

Everything that turns stored inputs into model inputs (the trainer, the evaluation, `semi predict`, `semi export`)
goes through these functions, so the two kinds differ in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def is_vector_shape(example_shape: Sequence[int]) -> bool:
    """True for the shape of one feature vector (D,), False for one image (H, W, C)."""
    return len(example_shape) == 1


def to_model_layout(x: torch.Tensor) -> torch.Tensor:
    """Stored layout -> the model's: NHWC images to NCHW; vectors unchanged."""
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x


def stat_tensors(mean: Sequence[float], std: Sequence[float], example_shape: Sequence[int],
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Standardisation statistics shaped to broadcast over a model-layout batch: (1, C, 1, 1) or (1, D)."""
    shape = (1, -1) if is_vector_shape(example_shape) else (1, -1, 1, 1)
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape))


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A model-layout batch as standardised floats: uint8 images are first scaled to [0, 1]."""
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    return (x - mean) / std
