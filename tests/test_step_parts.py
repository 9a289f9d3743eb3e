"""The shared step's building blocks, pinned on hand-made tensors: the split of one forward pass into views, the
unlabeled CE over both stacked strong views, and the mask-derived tensors PseudoLabels shares."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from semi.algorithms.base import PseudoLabels, Views, strong_views_ce
from semi.models.heads import ModelOutput


def test_views_of_batch_split_every_field_by_view():
    b, n, c = 2, 3, 4
    rows = b + 3 * n
    out = ModelOutput(torch.arange(rows * 5.0).view(rows, 5), torch.arange(rows * c * 1.0).view(rows, c),
                      -torch.arange(rows * c * 1.0).view(rows, c), torch.zeros(rows, 0, c))
    views = Views.of_batch(out, b, n)
    for field in range(4):
        t = out[field]
        assert torch.equal(views.labeled[field], t[:b])
        assert torch.equal(views.weak[field], t[b:b + n])
        assert torch.equal(views.strong[0][field], t[b + n:b + 2 * n])
        assert torch.equal(views.strong[1][field], t[b + 2 * n:])
        assert torch.equal(views.strong_stacked()[field], t[b + n:])


def test_strong_views_ce_is_the_mean_of_the_two_views_masked_losses():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, 0.0, 0.0]])  # views 1 and 2
    target, weights = torch.tensor([0, 2]), torch.tensor([1.0, 0.5])
    per_view = [(F.cross_entropy(v, target, reduction="none") * weights).mean() for v in logits.split(2)]
    assert strong_views_ce(logits, target, weights).item() == pytest.approx(0.5 * (per_view[0] + per_view[1]).item())
    # by hand: CE rows = [log(2 + e^2) - 2, log(2 + e) - 0, log(e^.5 * 2 + e^3) - .5, log(e + 2) - 0] weighted 1, .5
    ce = [torch.logsumexp(row, 0) - row[t] for row, t in zip(logits, [0, 2, 0, 2])]
    expected = (ce[0] * 1 + ce[1] * 0.5 + ce[2] * 1 + ce[3] * 0.5) / 4
    assert strong_views_ce(logits, target, weights).item() == pytest.approx(expected.item(), rel=1e-6)


def test_pseudo_label_mask_tensors_are_computed_once_and_renewed_with_the_mask():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    pl = PseudoLabels(probs, probs, threshold=0.7)
    truth = torch.tensor([0, -1, 1])
    assert pl.mask_float().tolist() == [1.0, 0.0, 1.0] and pl.mask_count().item() == 2.0
    assert pl.known_masked_float(truth).tolist() == [1.0, 0.0, 1.0]
    assert pl.mask_float() is pl.mask_float()  # shared within the step
    pl.replace_probs(torch.tensor([[0.9, 0.1], [0.75, 0.25], [0.5, 0.5]]))  # a component refines: new mask
    assert pl.mask_float().tolist() == [1.0, 1.0, 1.0] and pl.mask_count().item() == 3.0
    assert pl.known_masked_float(truth).tolist() == [1.0, 0.0, 1.0]  # the second image's hidden label is unknown
    nothing = PseudoLabels(probs, probs, threshold=0.99)
    assert nothing.mask_count().item() == 1.0  # a denominator: at least 1
