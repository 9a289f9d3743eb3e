"""CPE (Ma et al., "Three Heads Are Better Than One: Complementary Experts for Long-Tailed Semi-supervised
Learning", AAAI 2024), as the authors' released code (semilearn/imb_algorithms/cpe/cpe.py) trains it.

Three experts, linear heads on one embedding, each a FixMatch learner whose labeled loss is logit-adjusted with
its own strength: CE(e_i(x) + tau_i log pi, y) with tau = 0 (consistent: the labeled prior), 2 (uniform),
4 (reversed). Each expert makes its own pseudo-labels from its raw weak-view softmax (confidence >= tau = 0.95)
and trains on them, so on a mismatched unlabeled set one of the three still labels the tail well. The uniform
expert predicts at test time (the authors evaluate `logits_2`).

Our heads: expert 1 = the standard head g1 (its pseudo-labels are the base's, which SeMi's components refine
when attached), expert 2 = the balanced head g2 (`eval_head = "balanced"`), expert 3 = the model's one extra
head (`extra_heads = 1`, `ModelOutput.experts[:, 0]`).

Classwise batch normalisation (`cpe.classwise_bn=true`, the authors' model): their WRN ends in three BN layers
(head / medium / tail branches) between its last map and the pooling, every expert reads each branch's pooled
features, and an expert's unlabeled loss on pseudo-label class k reaches the branches k belongs to (all: head;
index >= cut1: medium; >= cut2: tail), normalised by the number of (sample, branch) terms; everything else (the
labeled losses, pseudo-labels, evaluation) reads the mean of the three branches' logits. Here the branches live in
the model (`DualHeadClassifier(bn_branches=3)`, on small_cnn, the WRNs and the MLP) and `ModelOutput.branch_logits`
carries each branch's logits. With the branches collapsed into one (the default, `classwise_bn=false`), their loss
is our group-weighted loss: each masked sample weighted 1, 2 or 3 by its pseudo-label's class group, normalised by
the sum of the weights (not by the batch size, unlike FixMatch); `cpe.group_weights=false` takes the plain masked
mean.

Where we differ from the authors' code, and why:
- Our batches have two strong views (USB's one): each expert's unlabeled loss is averaged over both.
- The code's per-expert pseudo-label frequency / precision logs (host syncs, sklearn) are not kept; the step
  logs each expert's mask rate.
- `cpe.pseudo_labels=ensemble` (ours): every expert trains on the argmax of the mean of the three softmaxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from semi.algorithms.base import PseudoLabels, SemiSupervisedAlgorithm, StepInfo, Views
from semi.algorithms.cpe import SPEC
from semi.config import Config
from semi.models.heads import ModelOutput


def group_weights(target: Tensor, medium_from: int, tail_from: int) -> Tensor:
    """1 + [target >= medium_from] + [target >= tail_from]: how many of the authors' three BN branches (head,
    medium, tail) a pseudo-label of this class trains."""
    return 1.0 + (target >= medium_from).float() + (target >= tail_from).float()


def expert_unlabeled_loss(strong_logits: tuple[Tensor, ...], target: Tensor, weights: Tensor) -> Tensor:
    """sum_n w_n CE(s_n, y_n) / sum_n w_n per strong view (the authors' normalisation, +1e-12 as theirs), averaged
    over the views. `weights` = mask times the group weight (times any component's sample weight). With BatchNorm
    branches, s is [N, B, C] and w [N, B] (w_nb = 0 for a branch the pseudo-label does not reach)."""
    den = weights.sum() + 1e-12
    losses = []
    for s in strong_logits:
        ce = F.cross_entropy(s.flatten(0, -2), target.repeat_interleave(s.numel() // (s.shape[-1] * len(target))),
                             reduction="none").view(weights.shape)
        losses.append((ce * weights).sum() / den)
    return sum(losses) / len(losses)  # type: ignore[return-value]


def branch_membership(target: Tensor, medium_from: int, tail_from: int) -> Tensor:
    """[N, 3] float: which of the head / medium / tail branches a pseudo-label of this class trains (the authors'
    pseudo_labelH / M / T before the mask): all, index >= cut1, index >= cut2. Its row sums are `group_weights`."""
    cuts = torch.tensor([0, medium_from, tail_from], device=target.device)
    return (target[:, None] >= cuts[None, :]).float()


def expert_logits(out: ModelOutput) -> Tensor:
    """[N, 3, C]: the consistent, uniform and reversed experts (g1, g2, the extra head)."""
    return out.all_heads()[:, :3]


def ensemble_probs(weak: ModelOutput, temperature: float = 1.0) -> Tensor:
    """[N, C] mean of the three experts' softmaxes (the `ensemble` pseudo-label option)."""
    return torch.softmax(expert_logits(weak).float() / temperature, dim=2).mean(dim=1)


class CPE(SemiSupervisedAlgorithm):
    spec = SPEC

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        c = cfg.cpe
        self.register_buffer("expert_tau", torch.tensor([c.tau_consistent, c.tau_uniform, c.tau_reversed]))
        self.medium_from = round(c.medium_from * num_classes)
        self.tail_from = round(c.tail_from * num_classes)

    @property
    def trains_balanced_head(self) -> bool:
        return True

    def weights_for(self, target: Tensor, mask: Tensor) -> Tensor:
        """[N] loss weights (collapsed branches), or [N, 3] per branch (classwise BatchNorm)."""
        w = mask.float()
        if self.cfg.cpe.classwise_bn:
            return w[:, None] * branch_membership(target, self.medium_from, self.tail_from)
        if self.cfg.cpe.group_weights:
            w = w * group_weights(target, self.medium_from, self.tail_from)
        return w

    def expert_strong(self, out: ModelOutput, head: int) -> Tensor:
        """One expert's strong-view logits: [N, C], or [N, 3, C] per branch under classwise BatchNorm."""
        if self.cfg.cpe.classwise_bn:
            return out.branch_logits[:, :, head]
        return expert_logits(out)[:, head]

    def labeled_losses(self, out: ModelOutput, y: Tensor) -> dict[str, Tensor]:
        """CE(e_i + tau_i log pi, y) for each expert (the first under the usual name `sup`)."""
        logits = expert_logits(out) + self.expert_tau.view(1, 3, 1) * self.log_prior
        names = ("sup", "sup_uniform", "sup_reversed")
        return {n: F.cross_entropy(logits[:, i], y) for i, n in enumerate(names)}

    def pseudo_labels(self, weak: ModelOutput, info: StepInfo) -> PseudoLabels:
        """Expert 1's raw softmax (the authors' code), or the experts' mean softmax (`cpe.pseudo_labels=ensemble`)."""
        t = self.cfg.algorithm.temperature
        if self.cfg.cpe.pseudo_labels == "ensemble":
            p = ensemble_probs(weak, t)
        else:
            p = torch.softmax(weak.logits.float() / t, dim=1)
        return PseudoLabels(p, p, self.threshold_for(info))

    def unlabeled_loss(self, views: Views, pl: PseudoLabels, weights: Tensor) -> Tensor:
        """Expert 1 (g1): normalised over the (group-weighted) masked samples, not over the batch."""
        if self.cfg.cpe.classwise_bn:
            w = weights[:, None] * branch_membership(pl.target, self.medium_from, self.tail_from)
        elif self.cfg.cpe.group_weights:
            w = weights * group_weights(pl.target, self.medium_from, self.tail_from)
        else:
            w = weights
        return expert_unlabeled_loss(tuple(self.expert_strong(s, 0) for s in views.strong), pl.target, w)

    def base_unlabeled_losses(self, views: Views, pl: PseudoLabels, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Experts 2 (g2) and 3 (the extra head) on their own pseudo-labels (or the ensemble's)."""
        lam, t = self.cfg.algorithm.lambda_u, self.cfg.algorithm.temperature
        out: dict[str, Tensor] = {}
        with torch.no_grad():
            weak = expert_logits(views.targets_source()).float()
            if self.cfg.cpe.pseudo_labels == "ensemble":
                conf, target = ensemble_probs(views.targets_source(), t).max(dim=1)
                conf, target = conf.unsqueeze(1).expand(-1, 2), target.unsqueeze(1).expand(-1, 2)
            else:
                conf, target = torch.softmax(weak[:, 1:] / t, dim=2).max(dim=2)  # [N, 2] each
            threshold = self.cfg.algorithm.threshold if self.cfg.cpe.expert_threshold == "base" \
                else self.threshold_for(info)
            mask = conf >= threshold
        for j, name in ((0, "uniform"), (1, "reversed")):
            w = self.weights_for(target[:, j], mask[:, j])
            strong = tuple(self.expert_strong(s, j + 1) for s in views.strong)
            out[f"unsup_{name}"] = lam * expert_unlabeled_loss(strong, target[:, j], w)
            logs[f"mask_rate_{name}"] = mask[:, j].float().mean()
        return out
