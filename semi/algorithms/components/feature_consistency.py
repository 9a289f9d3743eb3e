"""Feature consistency on the rejected samples (spec 5.5): embeddings act as logits; a sharpened, centred
teacher from the weak view supervises both strong views of the images the mask turned away."""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import Component, PseudoLabels, StepInfo, Views
from semi.config import SemiConfig
from semi.engine.distributed import all_reduce_sum, world_size


def consistency_loss(z_weak: Tensor, z_strong: tuple[Tensor, Tensor], centre: Tensor, rejected: Tensor,
                     t_p: float) -> tuple[Tensor, Tensor]:
    """mean over all 2n strong views of rejected_b * CE(teacher_b, student_b); returns (loss, teacher)."""
    teacher = torch.softmax((z_weak.detach().float() - centre) / (t_p / 5), dim=1)
    per_view = [-(teacher * torch.log_softmax(z.float() / t_p, dim=1)).sum(dim=1) for z in z_strong]
    return (torch.cat(per_view) * rejected.float().repeat(2)).mean(), teacher


class FeatureConsistencyComponent(Component):
    def __init__(self, cfg: SemiConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("centre", torch.zeros(embed_dim))

    def extra_losses(self, pl: PseudoLabels, views: Views, info: StepInfo) -> dict[str, Tensor]:
        if info.epoch <= self.cfg.warmup_epochs:
            return {"cons": views.weak.embedding.new_zeros(())}
        s1, s2 = views.strong
        loss, teacher = consistency_loss(views.weak.embedding, (s1.embedding, s2.embedding), self.centre,
                                         ~pl.mask, self.cfg.t_p)
        with torch.no_grad():  # the spec's centre: an EMA of the batch mean of the teacher outputs r_b
            m = self.cfg.center_momentum
            batch_mean = all_reduce_sum(teacher.sum(dim=0)) / (len(teacher) * world_size())  # global batch
            self.centre.mul_(m).add_((1 - m) * batch_mean)
        return {"cons": self.cfg.lambda_c * loss}
