"""Weak and strong views of feature vectors, vectorised over the batch and reproducible under a CPU generator.

Generated views (raw, unstandardised vectors in; the trainer standardises on the device as it does for images):
- weak: x + noise * s * e, e ~ N(0, 1) per entry, s the per-dimension std of the labeled rows (the run's
  standardisation), so the noise is the same fraction of every dimension's spread;
- strong: SCARF (Bahri et al., "SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption",
  ICLR 2022): each entry, with probability `corruption`, replaced by the same feature of a uniformly drawn
  training row (a draw from that feature's empirical marginal), then the weak noise on top, as FixMatch's strong
  view builds on its weak one.
Offline views: a batch of shape (B, K, D) holds K precomputed encodings of each row (e.g. of back-translations or
other augmentations made outside); the weak view and each strong view take one of the K per row, drawn uniformly
and independently.
"""

from __future__ import annotations

import torch
from torch import Tensor


class VectorViews:
    """The views of a feature-vector run; `pool` (N, D): the training rows the marginals are drawn from; `scale`
    (D,): the per-dimension std the noise is scaled by."""

    def __init__(self, pool: Tensor, scale: Tensor, noise: float = 0.1, corruption: float = 0.3):
        if pool.ndim != 2 or scale.shape != pool.shape[1:]:
            raise ValueError(f"pool must be (N, D) and scale (D,), got {tuple(pool.shape)} and {tuple(scale.shape)}")
        self.pool, self.scale = pool.float(), scale.float()
        self.noise, self.corruption = noise, corruption

    def _pick(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """One of the K offline encodings per row."""
        k = torch.randint(x.shape[1], (x.shape[0],), generator=gen)
        return x[torch.arange(x.shape[0]), k]

    def weak(self, x: Tensor, gen: torch.Generator) -> Tensor:
        if x.ndim == 3:
            return self._pick(x, gen)
        return x + torch.randn(x.shape, generator=gen) * (self.noise * self.scale)

    def corrupt(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """SCARF: entries replaced, with probability `corruption`, by the same feature of random training rows."""
        replace = torch.rand(x.shape, generator=gen) < self.corruption
        rows = torch.randint(len(self.pool), x.shape, generator=gen)
        return torch.where(replace, self.pool.gather(0, rows), x)

    def strong(self, x: Tensor, gen: torch.Generator) -> Tensor:
        if x.ndim == 3:
            return self._pick(x, gen)
        return self.weak(self.corrupt(x, gen), gen)

    def views(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """One weak and two independent strong views of the same rows (drawn in that order)."""
        return self.weak(x, gen), self.strong(x, gen), self.strong(x, gen)
