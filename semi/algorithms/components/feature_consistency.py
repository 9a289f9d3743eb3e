"""Feature consistency on the rejected samples (SeMi, ACM MM 2025): embeddings act as logits; a sharpened, centred
teacher from the weak view supervises both strong views of the images the mask turned away."""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.algorithms.components import SemiConfig
from semi.algorithms.components.threshold import SemiThreshold
from semi.distributed import all_reduce_sum, world_size


def consistency_loss(z_weak: Tensor, z_strong: Tensor, centre: Tensor, rejected: Tensor, t_p: float,
                     scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """scale * mean over all 2n strong views of rejected_b * CE(teacher_b, student_b); returns (loss, teacher).
    z_weak [n, D]; z_strong [2n, D], both strong views stacked (`Views.strong_stacked`). The mask, the mean's
    1 / 2n, the sign and `scale` multiply the (constant) teacher, so the graph holds five ops."""
    teacher = torch.softmax((z_weak.detach().float() - centre) / (t_p / 5), dim=1)
    n = len(teacher)
    log_student = torch.log_softmax(z_strong.float() / t_p, dim=1).view(2, n, -1)  # one op for both views
    target = teacher.mul(rejected[:, None]).mul_(-scale / (2 * n))
    return (log_student * target).sum(), teacher


class FeatureConsistencyComponent(SemiThreshold, Component):
    def __init__(self, cfg: SemiConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("centre", torch.zeros(embed_dim))

    def extra_losses(self, pl: PseudoLabels, views: Views, info: StepInfo) -> dict[str, Tensor]:
        if not info.past(self.cfg.warmup_epochs):
            return {"cons": views.weak.embedding.new_zeros(())}
        loss, teacher = consistency_loss(views.weak.embedding, views.strong_stacked().embedding, self.centre,
                                         ~pl.mask, self.cfg.t_p, scale=self.cfg.lambda_c)
        with torch.no_grad():  # SeMi's centre: an EMA of the batch mean of the teacher outputs r_b (global batch)
            m = self.cfg.center_momentum
            self.centre.mul_(m).add_(all_reduce_sum(teacher.sum(dim=0)), alpha=(1 - m) / (len(teacher) * world_size()))
        return {"cons": loss}
