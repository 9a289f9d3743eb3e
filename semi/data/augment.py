"""PLACEHOLDER (replaced by the full RandAugment module): batched weak/strong augmentation on uint8 tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _rand(n: int, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen)


def flip_crop(x: Tensor, gen: torch.Generator) -> Tensor:
    n, c, h, w = x.shape
    pad = round(0.125 * h)
    flip = _rand(n, gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, c, h, w)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, c, h, w)
    out = padded.gather(2, rows.expand(n, c, h, padded.shape[3]) if False else
                        (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, c, h, padded.shape[3]))
    out = out.gather(3, cols)
    del rows
    return out.to(torch.uint8)


class Augmenter:
    def weak(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return flip_crop(x, gen)

    def strong(self, x: Tensor, gen: torch.Generator) -> Tensor:
        x = flip_crop(x, gen)
        n, c, h, w = x.shape
        size = round(0.5 * h)
        cy = torch.randint(0, h, (n,), generator=gen)
        cx = torch.randint(0, w, (n,), generator=gen)
        ys, xs = torch.arange(h)[None], torch.arange(w)[None]
        my = ((ys >= (cy - size // 2)[:, None]) & (ys < (cy + size - size // 2)[:, None]))
        mx = ((xs >= (cx - size // 2)[:, None]) & (xs < (cx + size - size // 2)[:, None]))
        m = (my[:, :, None] & mx[:, None, :])[:, None]
        return torch.where(m, torch.full_like(x, 127), x)

    def views(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        return self.weak(x, gen), self.strong(x, gen), self.strong(x, gen)
