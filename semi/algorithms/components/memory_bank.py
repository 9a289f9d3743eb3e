"""SeMi's class-balanced confidence-decay memory bank (SeMi, ACM MM 2025).

Where the authors' released script departs from the paper we follow the paper: on insertion the script drops
the row's most confident embedding while replacing its least confident confidence (here both are the least
confident entry); prototypes average filled slots only; the bank is vectorised instead of a per-candidate loop
with a host sync; the embedding width comes from the model (the script fixes 128).

K slots per class hold (embedding, confidence). A candidate enters its class's row when its confidence beats the
row's lowest and replaces that entry, so each row holds the K most confident entries offered so far. Every D
steps the confidence of each entry not inserted since the previous decay is multiplied by beta.

Insertion is one batched top-K merge, exactly equal to offering the candidates one at a time. Ties are broken
by age (an older entry beats a newer one of equal confidence; a candidate must be strictly more confident than
the lowest entry to enter), which is the one-at-a-time rule "replace the lowest if higher, evicting the newest of
tied lowest entries". The merge ranks on confidences only (an int64 key: the float's order-preserving bits, then
age), touches only the rows that receive candidates, and writes only the evicted slots. On CUDA every row is
ranked (no unique()) and the evicted slots and entering candidates are paired by their ranks within each row
instead of by `nonzero` (whose output size the host must wait for), so an insert never synchronises with the
device (`_write_ranked`; 2.5-3x the CPU time of the `nonzero` pairing, so CPU keeps that one; both leave identical
state, tests/test_memory_bank.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_AGE_BITS = 32
_STAMP_MAX = (1 << 31) - 1
_DENSE_LIMIT = 1 << 14
_NEVER = torch.iinfo(torch.int64).min


def _rank_keys(conf: Tensor, stamp: Tensor) -> Tensor:
    """int64 keys ordering by confidence (higher first), then by stamp (older first). Confidences are >= 0 or
    -inf (empty); for those the IEEE bit pattern read as a signed int is monotonic."""
    bits = conf.view(torch.int32).to(torch.int64)  # conf: float32
    return (bits << _AGE_BITS) + (_STAMP_MAX - stamp)


def _stamp_of(keys: Tensor) -> Tensor:
    return _STAMP_MAX - (keys & ((1 << _AGE_BITS) - 1))


class ClassBalancedMemoryBank(nn.Module):
    def __init__(self, num_classes: int, size: int, dim: int):
        super().__init__()
        self.num_classes, self.size, self.dim = num_classes, size, dim
        self.register_buffer("embeddings", torch.zeros(num_classes, size, dim))
        self.register_buffer("confidence", torch.full((num_classes, size), float("-inf")))
        self.register_buffer("fresh", torch.zeros(num_classes, size, dtype=torch.bool))
        """Inserted since the last decay."""
        self.register_buffer("keys", _rank_keys(self.confidence, torch.full((num_classes, size), -1)))
        """Merge keys of the slots (confidence, then insertion order; empty slots count as inserted at -1)."""
        self.register_buffer("truth", torch.full((num_classes, size), -1, dtype=torch.int64))
        """Hidden label of each entry (-1: empty or unknown); diagnostics only (bank purity), never used to train."""
        self.register_buffer("offered", torch.zeros((), dtype=torch.int64))
        self.register_buffer("class_ids", torch.arange(num_classes)[:, None], persistent=False)
        """[C, 1] row index of each class (compared with a batch's labels, it places candidates in their rows)."""
        self.register_buffer("class_sum", torch.zeros(num_classes, dim))
        """Running sum of each row's filled embeddings (prototypes without summing K x D per step); empty slots
        hold zeros, so replacing a slot adds (new - old) whether it was filled or not."""

    @property
    def stamp(self) -> Tensor:
        """Insertion order of each slot (-1 = empty)."""
        return _stamp_of(self.keys)

    @property
    def filled(self) -> Tensor:
        return self.confidence > float("-inf")

    def fill_counts(self) -> Tensor:
        return self.filled.sum(dim=1)

    @torch.no_grad()
    def insert(self, embeddings: Tensor, labels: Tensor, confidence: Tensor, valid: Tensor | None = None,
               truth: Tensor | None = None, sync_free: bool | None = None) -> None:
        """Offer a batch of candidates (in order); equal to offering them one at a time. Invalid candidates get
        confidence -inf, which never enters (an empty slot is older and wins the tie). `truth`: the candidates'
        hidden labels, stored with the entries for `purity` (diagnostics only). `sync_free` (default: on CUDA)
        pairs evicted slots with entering candidates by ranks instead of `nonzero`, so the insert never waits for
        the device; on CPU the `nonzero` pairing does less work."""
        n = labels.numel()
        if n == 0:
            return
        c, k, dev = self.num_classes, self.size, labels.device
        sync_free = labels.is_cuda if sync_free is None else sync_free
        conf = confidence.float()  # a no-op for float32 (as in training)
        if valid is not None:
            conf = torch.where(valid, conf, float("-inf"))
        cand_keys = _rank_keys(conf, torch.arange(n, device=dev).add_(self.offered))
        self.offered.add_(n)
        if sync_free or c * (k + n) <= _DENSE_LIMIT:  # every row ranked; no unique() (a sync) needed
            rows, r, row_keys = None, c, self.keys
            cand = torch.where(labels == self.class_ids, cand_keys, _NEVER)  # [C, n]: each candidate in its row
        else:  # many classes: only the rows that receive candidates
            rows, cand_row = torch.unique(labels, return_inverse=True)
            r, row_keys = rows.numel(), self.keys.index_select(0, rows)
            cand = torch.full((r, n), _NEVER, dtype=torch.int64, device=dev)
            cand.scatter_(0, cand_row[None], cand_keys[None])
        kept = torch.zeros(r, k + n, dtype=torch.bool, device=dev)
        kept.scatter_(1, torch.cat([row_keys, cand], 1).topk(k, dim=1, sorted=False).indices, True)
        tags = truth if truth is not None else torch.full_like(labels, -1)
        if sync_free:
            self._write_ranked(kept, embeddings, labels, conf, cand_keys, tags)
            return
        # Per row, #evicted slots == #entering candidates; nonzero() lists both row-major, so they pair up.
        evicted = (~kept[:, :k]).nonzero()
        entering = kept[:, k:].nonzero()[:, 1]
        cls = evicted[:, 0] if rows is None else rows.index_select(0, evicted[:, 0])
        slot = cls * k + evicted[:, 1]  # flat index into the [C * K] views
        flat_emb = self.embeddings.view(c * k, -1)
        new = embeddings.index_select(0, entering)
        new = new if new.dtype == flat_emb.dtype else new.to(flat_emb.dtype)
        self.class_sum.index_add_(0, cls, new - flat_emb.index_select(0, slot))
        flat_emb.index_copy_(0, slot, new)
        self.keys.view(-1).index_copy_(0, slot, cand_keys.index_select(0, entering))
        self.confidence.view(-1).index_copy_(0, slot, conf.index_select(0, entering))
        self.fresh.view(-1).index_fill_(0, slot, True)
        tags = tags.index_select(0, entering)
        self.truth.view(-1).index_copy_(0, slot, tags if tags.dtype == torch.int64 else tags.long())

    def _write_ranked(self, kept: Tensor, embeddings: Tensor, labels: Tensor, conf: Tensor, cand_keys: Tensor,
                      tags: Tensor) -> None:
        """The writes of `insert` with fixed shapes (no host sync): the t-th evicted slot of a row (in slot order)
        takes the row's t-th entering candidate (in offer order). Every candidate gets a slot; the ones that do not
        enter add zeros. Evicted slots are zeroed first, so each receives exactly its candidate's values."""
        c, k = self.num_classes, self.size
        evicted = ~kept[:, :k]  # [C, K]
        evicted_slots = torch.sort(kept[:, :k].to(torch.uint8), dim=1, stable=True).indices  # evicted first
        in_row = kept[:, k:]  # [C, n]; candidate j can only be kept in row labels[j]
        enters = in_row.gather(0, labels[None]).squeeze(0)  # [n]
        rank = in_row.cumsum(1).gather(0, labels[None]).squeeze(0).sub_(1).clamp_min_(0)  # t among its row's
        slot = labels * k + evicted_slots[labels, rank]  # [n]: valid for every candidate (used if it enters)
        flat_emb = self.embeddings.view(c * k, -1)
        entering = enters[:, None]
        new = torch.where(entering, embeddings.to(flat_emb.dtype), 0.0)  # where, not *: a NaN that stays out stays out
        self.class_sum.index_add_(0, labels, new - torch.where(entering, flat_emb.index_select(0, slot), 0.0))
        flat_emb.masked_fill_(evicted.view(-1, 1), 0.0).index_add_(0, slot, new)
        self.keys.masked_fill_(evicted, 0).view(-1).index_add_(0, slot, cand_keys * enters)
        self.confidence.masked_fill_(evicted, 0.0).view(-1).index_add_(0, slot, torch.where(enters, conf, 0.0))
        self.fresh |= evicted  # each evicted slot takes exactly one entering candidate
        self.truth.masked_fill_(evicted, 0).view(-1).index_add_(0, slot, tags.long() * enters)

    @torch.no_grad()
    def decay(self, beta: float) -> None:
        """Multiply the confidence of every filled entry not inserted since the last decay by beta."""
        stale = self.filled & ~self.fresh
        self.confidence.copy_(torch.where(stale, self.confidence * beta, self.confidence))
        self.keys.copy_(_rank_keys(self.confidence, self.stamp))
        self.fresh.zero_()
        self.recompute_sums()  # every D steps: resets the float32 drift of the running sums

    @torch.no_grad()
    def recompute_sums(self) -> None:
        """Exact sums from the slots (empty slots hold zeros)."""
        self.class_sum.copy_(self.embeddings.sum(dim=1))

    def prototypes(self) -> tuple[Tensor, Tensor]:
        """(class means of FILLED slots [C, D], which classes have any [C] bool)."""
        counts = self.fill_counts()
        centres = self.class_sum / counts.clamp_min(1)[:, None]
        return centres, counts > 0

    def purity_counts(self) -> tuple[Tensor, Tensor]:
        """Per class: (filled entries whose hidden label is the row's class, filled entries with a known hidden
        label). Their ratio is the bank's purity."""
        known = self.filled & (self.truth >= 0)
        right = known & (self.truth == torch.arange(self.num_classes, device=self.truth.device)[:, None])
        return right.sum(1), known.sum(1)

    def mean_confidence(self) -> Tensor:
        filled = self.filled
        conf = torch.where(filled, self.confidence, 0.0)
        return conf.sum(1) / filled.sum(1).clamp_min(1)
