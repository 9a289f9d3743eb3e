"""The memory bank as a component: offers the masked strong-view embeddings every step, decays every D steps."""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.algorithms.components import SemiConfig
from semi.algorithms.components.memory_bank import ClassBalancedMemoryBank
from semi.algorithms.components.threshold import SemiThreshold
from semi.distributed import all_gather_cat


class MemoryBankComponent(SemiThreshold, Component):
    def __init__(self, cfg: SemiConfig, num_classes: int, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.bank = ClassBalancedMemoryBank(num_classes, cfg.bank_size, embed_dim)

    @torch.no_grad()
    def observe(self, pl: PseudoLabels, views: Views, batch: dict[str, Tensor], info: StepInfo,
                logs: dict[str, Tensor]) -> None:
        emb = views.strong_stacked().embedding.detach().float()
        # Both strong views share the weak view's pseudo-label: every per-image tensor twice (cat: one op, where
        # .repeat is ~35 on CPU). Under DDP every rank inserts every rank's candidates (in rank order): the banks
        # stay identical.
        target, conf, mask, truth = (all_gather_cat(torch.cat([t, t])) for t in
                                     (pl.target, pl.confidence.float(), pl.mask, batch["u_y"]))
        self.bank.insert(all_gather_cat(emb), target, conf, mask, truth=truth)
        if (info.step + 1) % self.cfg.decay_every == 0:
            self.bank.decay(self.cfg.decay)

    def prototypes(self):
        """(centres [C, D], available [C]): the class means of the filled slots (SeMi's prototypes read these)."""
        return self.bank.prototypes()

    def diagnostics(self) -> dict[str, object]:
        right, known = (v.cpu().double() for v in self.bank.purity_counts())
        nan = float("nan")
        return {"bank_fill": [int(v) for v in self.bank.fill_counts()],
                "bank_mean_confidence": [float(v) for v in self.bank.mean_confidence()],
                "bank_purity": float(right.sum() / known.sum()) if known.sum() > 0 else nan,
                "bank_purity_per_class": [float(r / k) if k > 0 else nan for r, k in zip(right, known)]}
