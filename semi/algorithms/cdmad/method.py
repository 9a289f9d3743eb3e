"""CDMAD's code: the probe, the debiased weak-view logits, and the test-time model.

Written from the authors' released code (github.com/LeeHyuck/CDMAD: fixmatchcdmad.py, train() and validate()).
Where we depart from it, and why:
- One forward pass: the authors run the probe and then five separate forward passes (weak, labeled, two strong);
  here the probe is one pass before the step's single pass over every view. With `probe_mode=train` (theirs) each
  probe moves BatchNorm's running statistics by one momentum step toward a pattern-less image's statistics; with
  one pass after it instead of their four, the probe's share of the running statistics is larger here (about
  1/2 of the updates against their 1/5). `probe_mode=batch_stats` keeps the probe's batch statistics and leaves
  the running ones untouched; `eval` uses the running ones.
- Every head: the bias of each head (g1, g2, extra heads) is subtracted from that head's logits (their model has
  one classifier), so the dual-head base's balanced-head targets and CPE's experts are debiased alike.
- The recipe around it (Adam at lr 0.0015, weight decay in the EMA step, mu = 2) is not CDMAD's own and is not
  applied by attaching the component.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from semi.algorithms.base import Component, StepInfo, Views
from semi.algorithms.cdmad import CdmadConfig
from semi.models.heads import ModelOutput
from semi.models.norm_stats import running_stats_kept


def pattern_less_like(x: Tensor) -> Tensor:
    """[1, C, H, W] of ones in the network's input space (after normalisation), shaped and laid out as x."""
    return torch.ones_like(x[:1])


def subtract(out: ModelOutput, bias: ModelOutput) -> ModelOutput:
    """Every head's logits minus that head's logits on the probe ([1, ...], broadcast); the embedding unchanged."""
    experts = None if out.experts is None else out.experts - bias.experts.to(out.experts.dtype)
    return ModelOutput(out.embedding, out.logits - bias.logits.to(out.logits.dtype),
                       out.logits_balanced - bias.logits_balanced.to(out.logits_balanced.dtype), experts)


@torch.no_grad()
def probe(model: nn.Module, like: Tensor, mode: str) -> ModelOutput:
    """The model's outputs on the pattern-less image, detached and in float32. mode: see `CdmadConfig.probe_mode`.
    The model's train/eval mode is restored afterwards."""
    x = pattern_less_like(like)
    if mode == "eval":
        was = model.training
        model.eval()
        try:
            out = model(x)
        finally:
            model.train(was)
    elif mode == "batch_stats":
        with running_stats_kept(model):
            out = model(x)
    else:
        out = model(x)
    return out.map(lambda t: t.detach().float())


class CDMAD(Component):
    """Probes the training model at the start of each step; after the warm-up subtracts the probe's logits from
    the weak view's before the base forms pseudo-labels; sets soft targets and the mask threshold as configured."""

    def __init__(self, cfg: CdmadConfig):
        super().__init__()
        self.cfg = cfg
        self._bias: ModelOutput | None = None  # this step's probe (set in before_forward, read in the same step)

    @property
    def threshold(self) -> float | None:
        return self.cfg.threshold

    def mask_threshold(self, base: float, info: StepInfo) -> float:
        return self.cfg.threshold

    def active(self, info: StepInfo) -> bool:
        return info.past(self.cfg.warmup_epochs)

    @torch.no_grad()
    def before_forward(self, model: nn.Module, batch: dict[str, Tensor], info: StepInfo,
                       logs: dict[str, Tensor]) -> None:
        like = batch.get("x_all", batch["x_l"])
        self._bias = probe(model, like, self.cfg.probe_mode)
        logs["cdmad_bias_spread"] = self._bias.logits.max() - self._bias.logits.min()

    def adjust_weak_logits(self, weak: ModelOutput, views: Views, info: StepInfo,
                           logs: dict[str, Tensor]) -> ModelOutput:
        if self._bias is None or not self.active(info):
            return weak
        return subtract(weak, self._bias)

    def refine(self, pl, views: Views, info: StepInfo, logs: dict[str, Tensor]) -> None:
        pl.soft_targets = self.cfg.soft_targets


def build(cfg, num_classes: int, embed_dim: int) -> list[Component]:
    return [CDMAD(cfg.cdmad)]


class DebiasedModel(nn.Module):
    """A trained model predicting as CDMAD does at test time: every head's logits minus its logits on the
    pattern-less image, computed by the same model in its current mode (eval, in evaluation) for each batch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> ModelOutput:
        out = self.model(x)
        return subtract(out, self.model(pattern_less_like(x)))


def debiased_model(model: nn.Module, cfg) -> nn.Module:
    """CDMAD's `eval_model` (see its MethodSpec): the test-time correction, or the model itself with
    cdmad.test_time=false."""
    return DebiasedModel(model) if cfg.cdmad.test_time else model
