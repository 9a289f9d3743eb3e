"""CPU threads for training (provisional)."""

from __future__ import annotations


def configure_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
