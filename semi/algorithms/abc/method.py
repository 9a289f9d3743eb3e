"""ABC (Lee et al., "ABC: Auxiliary Balanced Classifier for Class-imbalanced Semi-supervised Learning", NeurIPS
2021) on FixMatch, its paper's main base, as the authors' released ABCfix.py trains it.

FixMatch trains the standard head g1 unchanged. An auxiliary balanced classifier on the same embedding, here the
balanced head g2 (a linear head on the backbone's features, which is what ABC's `classify2` is), trains with
class-balancing Bernoulli masks:
- labeled: each image is kept with probability N_min / N_y (N_k: labeled count of class k), so every class
  contributes about N_min images per pass: L_abc^x = mean_b(M_b * CE(g2(x_b), y_b)).
- unlabeled: g2's own weak-view pseudo-label q_b = softmax(g2(u_w,b)), masked by its confidence (>= tau) and by
  a Bernoulli mask of probability 1 - progress * (1 - N_min / N_k) at k = argmax q_b, which starts at 1 and
  decays to the labeled ratio over training (progress = epoch / total epochs; the code divides by its 500
  epochs). L_abc^u = sum over both strong views of -mean_b(mask_b * M_b * sum_k q_bk log softmax(g2(u_s,b))_k).
The auxiliary classifier predicts at test time (`eval_head = "balanced"`).

Where the authors' code and paper differ we follow the code (and say so): the unlabeled target is the soft
distribution q_b, not the paper's one-hot (option `abc.unlabeled_target=hard`); the two strong views' losses are
summed, not averaged. The code's four separate forward passes (one batch-norm batch per view) become our single
pass over all views (as FixMatch's code). The Bernoulli draws come from a generator seeded from (train.seed, rank,
step), never the global RNG, so a resumed run draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from semi.algorithms.abc import SPEC
from semi.algorithms.base import PseudoLabels, StepInfo, Views
from semi.algorithms.fixmatch import FixMatch
from semi.config import Config
from semi.distributed import rank
from semi.models.heads import ModelOutput
from semi.seeds import mix_seed

_ABC_STREAM = 0xABC
"""Mixed into the Bernoulli generator's seed so its stream differs from the data loader's (same train.seed)."""


def balance_ratios(labeled_prior: Tensor) -> Tensor:
    """[C] N_min / N_k: the labeled keep probability of class k (1 for the rarest class). Classes without labels
    get 0 (they never appear as labels; as pseudo-labels they are then always dropped once training ends)."""
    p = labeled_prior.double()
    present = p > 0
    return torch.where(present, p[present].min() / p.clamp_min(1e-300), torch.zeros_like(p)).float()


def unlabeled_keep_probs(ratios: Tensor, progress: float) -> Tensor:
    """[C] 1 - progress * (1 - N_min / N_k): from 1 at the start down to the labeled ratios at the end."""
    return 1.0 - progress * (1.0 - ratios)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """A generator on `device` seeded from (seed, ABC's stream, rank, step): a pure function of the step, so resume
    is exact, and each rank draws its own masks."""
    return torch.Generator(device=device).manual_seed(mix_seed(seed, _ABC_STREAM, rank(), step))


def abc_losses(lab: ModelOutput, weak_balanced: Tensor, strong_balanced: tuple[Tensor, ...], y: Tensor,
               ratios: Tensor, progress: float, threshold: float, gen: torch.Generator, soft: bool = True,
               temperature: float = 1.0) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """ABC's auxiliary-classifier losses ({"abc_sup", "abc_unsup"}, unweighted) and its masks.

    lab: the labeled view's outputs (g2 = `logits_balanced`); weak_balanced: g2 on the weak view (no gradient
    needed); strong_balanced: g2 on each strong view. The labeled Bernoulli mask is drawn first, then the
    unlabeled one, both from `gen` (torch.bernoulli, as the authors' code). Returns (losses, masks) with masks
    `keep_labeled`, `keep_unlabeled` (the Bernoulli draws), `confident` (g2's confidence >= threshold)."""
    keep_l = torch.bernoulli(ratios[y], generator=gen)
    with torch.no_grad():
        q = torch.softmax(weak_balanced.float() / temperature, dim=1)
        conf, target = q.max(dim=1)
        confident = (conf >= threshold).float()
        keep_u = torch.bernoulli(unlabeled_keep_probs(ratios, progress)[target], generator=gen)
        w = confident * keep_u
        soft_target = q if soft else F.one_hot(target, q.shape[1]).to(q.dtype)
    sup = (F.cross_entropy(lab.logits_balanced, y, reduction="none") * keep_l).mean()
    unsup = sum((-(soft_target * F.log_softmax(s.float(), dim=1)).sum(1) * w).mean() for s in strong_balanced)
    masks = {"keep_labeled": keep_l, "keep_unlabeled": keep_u, "confident": confident}
    return {"abc_sup": sup, "abc_unsup": unsup}, masks  # type: ignore[dict-item]


class ABC(FixMatch):
    spec = SPEC

    def __init__(self, cfg: Config, num_classes: int, labeled_prior: Tensor, components: list):
        super().__init__(cfg, num_classes, labeled_prior, components)
        self.register_buffer("balance_ratio", balance_ratios(labeled_prior))

    @property
    def trains_balanced_head(self) -> bool:
        return True

    def labeled_losses(self, out: ModelOutput, y: Tensor) -> dict[str, Tensor]:
        """FixMatch's L_x on g1 only: the auxiliary classifier's masked labeled loss needs the step's generator and
        is added with its unlabeled loss in `base_unlabeled_losses`."""
        return {"sup": F.cross_entropy(out.logits, y)}

    def base_unlabeled_losses(self, views: Views, pl: PseudoLabels, batch: dict[str, Tensor], info: StepInfo,
                              logs: dict[str, Tensor]) -> dict[str, Tensor]:
        a = self.cfg.abc
        gen = step_generator(self.cfg.train.seed, info.step, views.labeled.logits.device)
        # SeMi, when attached, lowers every mask of the step, this one too; alone: 0.95, as ABCfix.py.
        losses, masks = abc_losses(views.labeled, views.targets_source().logits_balanced,
                                   tuple(s.logits_balanced for s in views.strong), batch["y_l"], self.balance_ratio,
                                   info.progress, self.threshold_for(info), gen, soft=a.unlabeled_target == "soft",
                                   temperature=self.cfg.algorithm.temperature)
        with torch.no_grad():
            logs["abc_keep_labeled"] = masks["keep_labeled"].mean()
            logs["abc_mask_rate"] = (masks["confident"] * masks["keep_unlabeled"]).mean()
        return {k: a.loss_weight * v for k, v in losses.items()}
