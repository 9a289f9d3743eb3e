"""SeMi's class-balanced confidence-decay memory bank (spec 5.1, with defects 6.2, 6.3, 6.6 and 6.7 fixed).

K slots per class hold (embedding, confidence). A candidate enters its class's row when its confidence beats the
row's lowest and replaces that entry, so each row holds the K most confident entries offered so far. Every D
steps the confidence of each entry not inserted since the previous decay is multiplied by beta.

Insertion is one batched top-K merge, exactly equal to offering the candidates one at a time. Ties are broken
by age (an older entry beats a newer one of equal confidence; a candidate must be strictly more confident than
the lowest entry to enter), which is the one-at-a-time rule "replace the lowest if higher, evicting the newest of
tied lowest entries". The merge ranks on confidences only (an int64 key: the float's order-preserving bits, then
age), touches only the rows that receive candidates, and writes only the evicted slots.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_AGE_BITS = 32


def _rank_keys(conf: Tensor, stamp: Tensor) -> Tensor:
    """int64 keys ordering by confidence (higher first), then by stamp (older first). Confidences are >= 0 or
    -inf (empty); for those the IEEE bit pattern read as a signed int is monotonic."""
    bits = conf.float().view(torch.int32).to(torch.int64)
    return (bits << _AGE_BITS) + ((1 << 31) - 1 - stamp)


class ClassBalancedMemoryBank(nn.Module):
    def __init__(self, num_classes: int, size: int, dim: int):
        super().__init__()
        self.num_classes, self.size, self.dim = num_classes, size, dim
        self.register_buffer("embeddings", torch.zeros(num_classes, size, dim))
        self.register_buffer("confidence", torch.full((num_classes, size), float("-inf")))
        self.register_buffer("fresh", torch.zeros(num_classes, size, dtype=torch.bool))
        """Inserted since the last decay."""
        self.register_buffer("stamp", torch.full((num_classes, size), -1, dtype=torch.int64))
        """Insertion order (-1 = empty): the tie-break of the merge."""
        self.register_buffer("offered", torch.zeros((), dtype=torch.int64))
        self.register_buffer("class_sum", torch.zeros(num_classes, dim, dtype=torch.float64))
        """Running sum of each row's filled embeddings (prototypes without summing K x D per step)."""

    @property
    def filled(self) -> Tensor:
        return self.confidence > float("-inf")

    def fill_counts(self) -> Tensor:
        return self.filled.sum(dim=1)

    @torch.no_grad()
    def insert(self, embeddings: Tensor, labels: Tensor, confidence: Tensor, valid: Tensor | None = None) -> None:
        """Offer a batch of candidates (in order); equal to offering them one at a time."""
        if valid is not None:
            keep = valid.nonzero().squeeze(1)
            embeddings, labels, confidence = embeddings[keep], labels[keep], confidence[keep]
        n = labels.numel()
        if n == 0:
            return
        k = self.size
        stamps = self.offered + torch.arange(n, device=labels.device)
        self.offered += n
        rows, cand_row = torch.unique(labels, return_inverse=True)  # only the classes that receive candidates
        r = rows.numel()
        cand_conf = torch.full((r, n), float("-inf"), device=labels.device)
        cand_conf[cand_row, torch.arange(n, device=labels.device)] = confidence.float()
        keys = torch.cat([_rank_keys(self.confidence[rows], self.stamp[rows]),
                          _rank_keys(cand_conf, stamps.expand(r, n))], dim=1)
        top = keys.topk(k, dim=1, sorted=False).indices
        kept = torch.zeros(r, k + n, dtype=torch.bool, device=labels.device).scatter_(1, top, True)
        # Per row, #evicted slots == #entering candidates; nonzero() lists both row-major, so they pair up.
        ev_row, ev_slot = (~kept[:, :k]).nonzero(as_tuple=True)
        _, cand = kept[:, k:].nonzero(as_tuple=True)
        cls = rows[ev_row]
        old = torch.where(self.filled[cls, ev_slot, None], self.embeddings[cls, ev_slot], 0.0)
        new = embeddings[cand].to(self.embeddings.dtype)
        self.class_sum.index_add_(0, cls, new.double() - old.double())
        self.embeddings[cls, ev_slot] = new
        self.confidence[cls, ev_slot] = confidence[cand].float()
        self.stamp[cls, ev_slot] = stamps[cand]
        self.fresh[cls, ev_slot] = True

    @torch.no_grad()
    def decay(self, beta: float) -> None:
        """Multiply the confidence of every filled entry not inserted since the last decay by beta."""
        stale = self.filled & ~self.fresh
        self.confidence.copy_(torch.where(stale, self.confidence * beta, self.confidence))
        self.fresh.zero_()
        self.recompute_sums()

    @torch.no_grad()
    def recompute_sums(self) -> None:
        """Exact sums from the slots (bounds the drift of the incremental updates)."""
        self.class_sum.copy_((self.embeddings * self.filled[..., None]).sum(dim=1).double())

    def prototypes(self) -> tuple[Tensor, Tensor]:
        """(class means of FILLED slots [C, D], which classes have any [C] bool)."""
        counts = self.fill_counts()
        centres = (self.class_sum / counts.clamp_min(1)[:, None]).to(self.embeddings.dtype)
        return centres, counts > 0

    def mean_confidence(self) -> Tensor:
        filled = self.filled
        conf = torch.where(filled, self.confidence, 0.0)
        return conf.sum(1) / filled.sum(1).clamp_min(1)
