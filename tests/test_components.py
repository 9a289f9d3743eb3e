"""SeMi's and ACR's maths on hand-made inputs."""

import math

import pytest
import torch

from semi.algorithms.acr import anchor_distributions, symmetric_kl, tau1_from_kl
from semi.algorithms.base import PseudoLabels
from semi.algorithms.components.feature_consistency import consistency_loss
from semi.algorithms.components.oheml import entropy_weights
from semi.algorithms.components.prototypes import blend, prototype_probs
from semi.data.protocol import longtail_counts


def test_oheml_weights_by_hand():
    s = 0.75
    uniform = torch.full((1, 4), 0.25)
    one_hot = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert entropy_weights(uniform, s).item() == pytest.approx(1.0)
    assert entropy_weights(one_hot, s).item() == pytest.approx(1 - s)
    p = torch.tensor([[0.5, 0.25, 0.25]])
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)  # = 1.5 ln2 / ln3
    assert entropy_weights(p, s).item() == pytest.approx(s * h + 1 - s)
    assert entropy_weights(p, s).item() == pytest.approx(0.9598, abs=1e-4)


def test_prototype_probs_ignore_empty_rows():
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [9.0, 9.0]])
    available = torch.tensor([True, True, False])
    q = prototype_probs(torch.tensor([[0.0, 0.0]]), centres, available, temperature=0.1)
    assert q[0, 2].item() == 0.0
    # distances 0 and 1 -> softmax(0, -10)
    assert q[0, 0].item() == pytest.approx(1 / (1 + math.exp(-10)))
    assert q.sum().item() == pytest.approx(1.0)


def test_blend_sums_to_one_and_alpha_zero_is_identity():
    p = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), 1)
    q = torch.tensor([[0.5, 0.5, 0.0, 0.0]]).expand(5, 4)
    a = torch.tensor([0.3, 0.1, 0.2, 0.0])
    out = blend(p, q, a)
    assert torch.allclose(out.sum(1), torch.ones(5))
    assert torch.equal(blend(p, q, torch.zeros(4)), p / p.sum(1, keepdim=True))
    # by hand for one row: (1 - a) p + a q, renormalised
    raw = (1 - a) * p[0] + a * q[0]
    assert torch.allclose(out[0], raw / raw.sum())


def test_or_mask_uses_refined_and_raw_confidence():
    raw = torch.tensor([[0.96, 0.04], [0.6, 0.4], [0.5, 0.5]])
    refined = torch.tensor([[0.6, 0.4], [0.97, 0.03], [0.5, 0.5]])
    pl = PseudoLabels(raw, raw, 0.95)
    pl.replace_probs(refined)
    assert pl.mask.tolist() == [True, True, False]
    assert pl.target.tolist() == [0, 0, 0]


def test_acr_tau1_limits():
    counts = torch.tensor(longtail_counts(1500, 100, 10), dtype=torch.float64)
    prior = (counts / counts.sum()).float()
    anchors = anchor_distributions(prior)
    kl_consistent = symmetric_kl(prior[None], anchors)
    kl_reversed = symmetric_kl(prior.flip(0)[None], anchors)
    assert kl_consistent[0].item() == pytest.approx(0.0, abs=1e-6)
    assert tau1_from_kl(kl_consistent, 0.0, 2.0).item() < 0.01
    assert tau1_from_kl(kl_reversed, 0.0, 2.0).item() > 1.95
    # by hand: KL values (0, a, b) -> tau1 = 2 * 1 / (1 + e^a + e^b)
    a, b = kl_consistent[1].item(), kl_consistent[2].item()
    assert tau1_from_kl(kl_consistent, 0.0, 2.0).item() == pytest.approx(2 / (1 + math.exp(a) + math.exp(b)), rel=1e-5)


def test_symmetric_kl_by_hand():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = (0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)) + (0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert symmetric_kl(p, q).item() == pytest.approx(expected, rel=1e-6)


def test_logit_adjustment_by_hand():
    prior = torch.tensor([0.75, 0.25])
    logits = torch.tensor([[0.0, 0.0]])
    # debiased p1 = softmax(z - tau log pi) with tau = 2 -> ratio of class 1 to 0 = (0.75 / 0.25)^2 = 9
    p = torch.softmax(logits - 2 * prior.log(), 1)
    assert (p[0, 1] / p[0, 0]).item() == pytest.approx(9.0)


def test_consistency_loss_only_on_rejected_and_no_teacher_gradient():
    g = torch.Generator().manual_seed(0)
    zw = torch.randn(4, 8, generator=g, requires_grad=True)
    zs = (torch.randn(4, 8, generator=g, requires_grad=True), torch.randn(4, 8, generator=g, requires_grad=True))
    rejected = torch.tensor([True, False, True, False])
    loss, teacher = consistency_loss(zw, torch.cat(zs), torch.zeros(8), rejected, t_p=0.1)
    loss.backward()
    assert zw.grad is None  # teacher is detached
    assert torch.all(zs[0].grad[~rejected] == 0) and torch.any(zs[0].grad[rejected] != 0)
    assert torch.allclose(teacher.sum(1), torch.ones(4))
    # the mean is over all 2 * 4 strong views
    per = [-(teacher * torch.log_softmax(z / 0.1, 1)).sum(1) for z in zs]
    manual = (per[0][rejected].sum() + per[1][rejected].sum()) / 8
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    none_rejected, _ = consistency_loss(zw, torch.cat(zs), torch.zeros(8), torch.zeros(4, dtype=torch.bool), 0.1)
    assert none_rejected.item() == 0.0


@pytest.mark.parametrize("schedule, init, expected", [
    ("acr", None, 2 / 3), ("acr", 0.0, 2 / 3), ("after_first_estimate", None, 2.0), ("after_first_estimate", 0.5, 0.5)])
def test_acr_tau1_at_the_first_estimating_epoch(schedule, init, expected):
    """ACR's schedule turns zero KL sums into softmax 1/3 -> tau1 = 2/3; our earlier option keeps the initial value."""
    from semi.algorithms.acr import ACR
    from semi.config import Config

    cfg = Config()
    cfg.algorithm.tau1_init, cfg.algorithm.tau1_schedule = init, schedule
    acr = ACR(cfg, 3, torch.tensor([6.0, 3.0, 1.0]), [])
    assert float(acr.tau1) == (2.0 if init is None else init)
    acr.update_tau1()  # no KL accumulated yet
    assert float(acr.tau1) == pytest.approx(expected)


@pytest.mark.parametrize("convention, expected", [("sum", 0.0037), ("mean", 0.0760)])
def test_acr_tau1_for_an_estimate_equal_to_the_prior(convention, expected):
    """CIFAR-10-LT counts (gamma 100): KLs to the anchors (0, 1.57, 6.28) give tau1 = 2 / (1 + e^1.57 + e^6.28)
    with the Jeffreys sum, and 2 / (1 + e^0.79 + e^3.14) with ACR's released halving."""
    from types import SimpleNamespace

    from semi.algorithms.acr import ACR
    from semi.algorithms.base import StepInfo
    from semi.config import Config

    cfg = Config()
    cfg.algorithm.symmetric_kl, cfg.algorithm.estimate_counting = convention, "images"
    cfg.train.steps_per_epoch = 3  # the three steps below make one epoch
    counts = torch.tensor(longtail_counts(1500, 100, 10))
    acr = ACR(cfg, 10, counts.float(), [])
    acr.u_estimate.copy_(counts / counts.sum())
    targets = torch.repeat_interleave(torch.arange(10), counts)  # a batch distributed exactly as the prior
    confident = torch.ones_like(targets, dtype=torch.bool)
    pl = SimpleNamespace(notes={"balanced": (targets, confident, targets, confident)})
    batch = {"u_is_labeled": torch.zeros_like(targets, dtype=torch.bool)}
    info = StepInfo(step=700, epoch=cfg.algorithm.est_epoch + 1, total_steps=1000, total_epochs=10)
    for _ in range(3):
        acr.observe(pl, None, batch, info, {})
    acr.update_tau1()
    assert float(acr.tau1) == pytest.approx(expected, abs=1e-4)


def test_acr_debias_ramp():
    from semi.algorithms.acr import ACR
    from semi.algorithms.base import StepInfo
    from semi.config import Config

    cfg = Config()
    acr = ACR(cfg, 3, torch.tensor([6.0, 3.0, 1.0]), [])
    info = StepInfo(step=0, epoch=0, total_steps=1000, total_epochs=10)
    assert acr.debias_ramp(info) == 1.0  # off by default (the spec)
    cfg.algorithm.debias_warmup_epochs = 2  # 200 steps
    ramps = [acr.debias_ramp(StepInfo(step=s, epoch=s // 100, total_steps=1000, total_epochs=10))
             for s in (0, 50, 100, 200, 900)]
    assert ramps == [0.0, 0.25, 0.5, 1.0, 1.0]
    # At ramp 0 the standard-head pseudo-labels are the raw softmax (no debiasing).
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    from semi.models.heads import ModelOutput
    weak = ModelOutput(torch.zeros(1, 4), logits, logits)
    pl = acr.pseudo_labels(weak, StepInfo(step=0, epoch=0, total_steps=1000, total_epochs=10))
    assert torch.allclose(pl.probs, torch.softmax(logits, dim=1))


@pytest.mark.parametrize("counting, expected", [("images", [0.75, 0.25, 0.0]), ("presence", [0.5, 0.5, 0.0])])
def test_acr_estimate_counts_images_or_class_presence(counting, expected):
    """One step of the estimate (momentum 0, so it equals the batch's normalised counts): 3 confident images of
    class 0 and 1 of class 1; the labeled-and-unlabeled image (class 2) is left out."""
    from types import SimpleNamespace

    from semi.algorithms.acr import ACR
    from semi.algorithms.base import StepInfo
    from semi.config import Config

    cfg = Config()
    cfg.algorithm.estimate_counting, cfg.algorithm.est_momentum, cfg.algorithm.est_epoch = counting, 0.0, 0
    acr = ACR(cfg, 3, torch.tensor([6.0, 3.0, 1.0]), [])
    target, confident = torch.tensor([0, 0, 0, 1, 2]), torch.ones(5, dtype=torch.bool)
    pl = SimpleNamespace(notes={"balanced": (target, confident, target, confident)})
    batch = {"u_is_labeled": torch.tensor([False, False, False, False, True])}
    acr.observe(pl, SimpleNamespace(), batch, StepInfo(step=0, epoch=1, total_steps=10, total_epochs=1),
                {})
    assert acr.u_estimate.tolist() == expected


def test_bank_purity_counts_after_inserts():
    """Row 0 gets entries of hidden classes 0, 1, 0 and one unknown (-1); row 1 one entry of class 1. Row 0 keeps its
    2 most confident (0.9: class 0, 0.8: unknown): purity 1/1; after a better class-1 entry evicts the unknown one:
    1/2."""
    from semi.algorithms.components.memory_bank import ClassBalancedMemoryBank

    bank = ClassBalancedMemoryBank(2, 2, 3)
    z = torch.zeros(5, 3)
    bank.insert(z, torch.tensor([0, 0, 0, 0, 1]), torch.tensor([0.9, 0.5, 0.3, 0.8, 0.7]),
                truth=torch.tensor([0, 1, 0, -1, 1]))
    right, known = bank.purity_counts()
    assert right.tolist() == [1, 1] and known.tolist() == [1, 1]
    bank.insert(z[:1], torch.tensor([0]), torch.tensor([0.85]), truth=torch.tensor([1]))
    right, known = bank.purity_counts()
    assert right.tolist() == [1, 1] and known.tolist() == [2, 1]
    assert bank.truth[0].sort().values.tolist() == [0, 1]


def test_window_means_turn_hit_counts_into_ratios():
    from semi.evaluation.metrics import window_means

    sums = {"mask_rate": torch.tensor(1.5), "hard_acc_hits": torch.tensor(3.0), "hard_acc_total": torch.tensor(12.0),
            "proto_acc_hits": torch.tensor(0.0), "proto_acc_total": torch.tensor(0.0), "loss_sup": torch.tensor(9.0)}
    out = window_means(sums, 3)
    assert out["window_mask_rate"] == pytest.approx(0.5) and out["window_hard_acc"] == 0.25
    assert math.isnan(out["window_proto_acc"]) and set(out) == {"window_mask_rate", "window_hard_acc",
                                                                 "window_proto_acc"}


def test_oheml_weight_per_class_by_hidden_label():
    from types import SimpleNamespace

    from semi.algorithms.base import StepInfo
    from semi.algorithms.components import SemiConfig
    from semi.algorithms.components.oheml import OHEMLComponent

    comp = OHEMLComponent(SemiConfig(warmup_epochs=0), 3)
    probs = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    pl = PseudoLabels(probs, probs, 0.0)
    pl.mask = torch.tensor([True, True, False, True])
    info = StepInfo(step=0, epoch=1, total_steps=10, total_epochs=2)
    w = comp.sample_weights(pl, info, {})
    assert w.tolist() == pytest.approx([0.25, 1.0, 0.75 * math.log(2) / math.log(3) + 0.25, 0.25])
    comp.observe(pl, SimpleNamespace(), {"u_y": torch.tensor([2, 2, 0, -1])}, info, {})
    means = comp.diagnostics()["oheml_weight_per_class"]
    assert math.isnan(means[0]) and math.isnan(means[1]) and means[2] == pytest.approx(0.625)
    assert comp.weight_count.sum() == 0  # reset for the next window


def test_oheml_normalized_weights_average_one_over_masked():
    from semi.algorithms.base import StepInfo
    from semi.algorithms.components import SemiConfig
    from semi.algorithms.components.oheml import OHEMLComponent

    probs = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    pl = PseudoLabels(probs, probs, 0.0)
    pl.mask = torch.tensor([True, True, False])
    info = StepInfo(step=0, epoch=1, total_steps=10, total_epochs=2)
    plain = OHEMLComponent(SemiConfig(warmup_epochs=0), 3).sample_weights(pl, info, {})
    normed = OHEMLComponent(SemiConfig(warmup_epochs=0, oheml_normalize=True), 3).sample_weights(pl, info, {})
    assert plain[:2].tolist() == pytest.approx([0.25, 1.0])
    assert normed.tolist() == pytest.approx((plain / 0.625).tolist())  # masked mean (0.25 + 1) / 2 = 0.625


def test_strong_stacked_is_both_strong_views_in_order():
    """A training step's `both_strong` slice and the concatenation built for hand-made views agree."""
    from semi.algorithms.base import Views
    from semi.models.heads import ModelOutput

    g = torch.Generator().manual_seed(0)
    out = ModelOutput(*(torch.randn(10, 4, generator=g) for _ in range(3)))
    b, n = 4, 2
    lab, weak, s1, s2 = (out.map(lambda t, i=i: t.split([b, n, n, n])[i]) for i in range(4))
    sliced = Views(lab, weak, (s1, s2), out.map(lambda t: t[b + n:])).strong_stacked()
    built = Views(lab, weak, (s1, s2)).strong_stacked()
    assert sliced.experts is None and built.experts is None
    for x, y in zip(sliced[:3], built[:3]):
        assert torch.equal(x, y)
    assert torch.equal(built.embedding[:n], s1.embedding) and torch.equal(built.embedding[n:], s2.embedding)


def test_log_hits_for_several_names_equals_one_call_per_name():
    from semi.algorithms.base import log_hits

    truth = torch.tensor([0, 1, 2, 1, -1])
    among = torch.tensor([True, True, False, True, True]) & (truth >= 0)
    preds = torch.tensor([[0, 1, 2, 0, 1], [1, 1, 2, 1, 0]])
    single, joint = {}, {}
    for name, p in zip(("a", "b"), preds):
        log_hits(single, name, p == truth, among)
    log_hits(joint, ("a", "b"), preds == truth, among)
    assert {k: float(v) for k, v in joint.items()} == {k: float(v) for k, v in single.items()}
    assert float(joint["a_hits"]) == 2.0 and float(joint["b_hits"]) == 2.0 and float(joint["a_total"]) == 3.0


def test_semantic_alignment_loss_over_stacked_views_is_the_mean_of_the_views():
    from semi.algorithms.daso import semantic_alignment_loss

    g = torch.Generator().manual_seed(1)
    q = torch.softmax(torch.randn(3, 4, generator=g), 1)
    available = torch.tensor([True, True, False, True])
    views = [torch.randn(3, 4, generator=g).masked_fill(~available, float("-inf")) for _ in range(2)]
    stacked = semantic_alignment_loss(q, torch.cat(views), available)
    per_view = sum(semantic_alignment_loss(q, v, available) for v in views) / 2
    assert stacked.item() == pytest.approx(per_view.item(), rel=1e-6)
