"""SeMi+ (ours, off by default): options aimed at what the budget curve's diagnostics show, each pinned on a
hand-made batch. OHEML's normalised weights are pinned in test_components.py; FlexMatch's class-adaptive
thresholds (`+flex`) in test_flex.py; here the prototype gate and the blend's effect diagnostics."""

from __future__ import annotations

import pytest
import torch

from semi.algorithms.base import PseudoLabels, StepInfo, Views
from semi.algorithms.components import SemiConfig
from semi.algorithms.components.bank import MemoryBankComponent
from semi.algorithms.components.prototypes import PrototypeComponent
from semi.models.heads import ModelOutput

INFO = StepInfo(step=50, epoch=5, total_steps=100, total_epochs=10)  # progress 0.5


def _parts(gate: str):
    cfg = SemiConfig(warmup_epochs=0, prototype_gate=gate, gate_momentum=0.5, bank_size=2, t_tar=0.1, alpha=0.4)
    bank, proto = MemoryBankComponent(cfg, 2, 2), PrototypeComponent(cfg, 2)
    proto._sibling = (bank,)
    proto._raw_source = False
    # class 0's prototype at (1, 0), class 1's at (0, 1)
    bank.bank.insert(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]), torch.tensor([0.9, 0.9]),
                     torch.tensor([True, True]))
    return cfg, bank, proto


def _views(labeled_z, unlabeled_z):
    out = lambda z: ModelOutput(z, torch.zeros(len(z), 2), torch.zeros(len(z), 2))  # noqa: E731
    return Views(out(labeled_z), out(unlabeled_z), (out(unlabeled_z), out(unlabeled_z)))


def test_prototype_gate_measures_accuracy_on_labeled_images_and_scales_the_blend():
    cfg, bank, proto = _parts("labeled")
    assert proto.labeled_acc.tolist() == [0.0, 0.0]  # nothing measured: no blend
    # labeled: two of class 0 near its prototype (right), one of class 1 near class 0's (wrong)
    z_l = torch.tensor([[0.9, 0.1], [1.0, 0.2], [0.8, 0.1]])
    proto.update_labeled_accuracy(z_l, torch.tensor([0, 0, 1]))
    assert proto.labeled_acc.tolist() == pytest.approx([0.5, 0.0])  # EMA 0.5: 0.5 * 0 + 0.5 * (2/2); class 1: 0/1
    proto.update_labeled_accuracy(z_l, torch.tensor([0, 0, 1]))
    assert proto.labeled_acc.tolist() == pytest.approx([0.75, 0.0])
    proto.update_labeled_accuracy(z_l[:1], torch.tensor([0]))  # class 1 absent from the batch: kept
    assert proto.labeled_acc.tolist() == pytest.approx([0.875, 0.0])
    # the blend weight of class k is alpha * progress * w_k * acc_k: class 1's prototype no longer moves labels
    base = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    pl = PseudoLabels(base.clone(), base.clone(), 0.0)
    z_u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    proto.refine(pl, _views(z_l, z_u), INFO, {})
    q = torch.softmax(-torch.cdist(z_u, torch.tensor([[1.0, 0.0], [0.0, 1.0]])) / 0.1, dim=1)
    a = torch.tensor([0.4 * 0.5 * 0.875, 0.0])
    mixed = (1 - a) * base + a * q
    torch.testing.assert_close(pl.probs, mixed / mixed.sum(1, keepdim=True))


def test_without_the_gate_no_state_is_added():
    _, _, proto = _parts("none")
    assert "labeled_acc" not in proto.state_dict()


def test_blend_effect_diagnostics_count_changed_labels_and_those_made_right():
    _, bank, proto = _parts("none")
    # the classifier says class 1 for both images; the prototypes pull image 0 to class 0
    base = torch.tensor([[0.45, 0.55], [0.2, 0.8]])
    pl = PseudoLabels(base.clone(), base.clone(), 0.0)
    z_u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    info = StepInfo(step=90, epoch=9, total_steps=100, total_epochs=10)  # progress 0.9: alpha 0.36
    proto.refine(pl, _views(z_u, z_u), info, {})
    assert pl.target.tolist() == [0, 1]
    logs = {}
    proto.observe(pl, None, {"u_y": torch.tensor([0, 1])}, info, logs)
    assert logs["blend_change_hits"] == 1 and logs["blend_change_total"] == 2  # one of two accepted labels changed
    assert logs["blend_fix_hits"] == 1 and logs["blend_fix_total"] == 1  # and it became right
    # per class, since the start: one label moved into class 0, right; none into class 1; every accepted label counted
    assert proto.moved_into.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert proto.pl_counts.tolist() == [1.0, 1.0]
    assert proto.diagnostics()["blend_moved_into"] == [1.0, 0.0]
    # a second step: the blend moves image 1 into class 0 wrongly (its hidden label is 1); image 0 is not accepted
    pl = PseudoLabels(torch.tensor([[0.45, 0.55], [0.45, 0.55]]), torch.tensor([[0.45, 0.55], [0.45, 0.55]]), 0.0)
    proto.refine(pl, _views(z_u, torch.tensor([[0.0, 1.0], [1.0, 0.0]])), info, {})
    assert pl.target.tolist() == [1, 0]
    pl.mask = torch.tensor([False, True])
    proto.observe(pl, None, {"u_y": torch.tensor([1, 1])}, info, {})
    assert proto.moved_into.tolist() == [[2.0, 0.0], [1.0, 0.0]]
    assert proto.pl_counts.tolist() == [2.0, 1.0]


def test_checkpoints_without_the_blend_counts_load_with_them_at_zero():
    _, _, proto = _parts("none")
    state = proto.state_dict()
    del state["moved_into"]
    proto.moved_into.fill_(5.0)
    proto.load_state_dict(state)
    assert proto.moved_into.tolist() == [[0.0, 0.0], [0.0, 0.0]]
