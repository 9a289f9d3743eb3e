"""FlexMatch's class-adaptive thresholds (`+flex`) against a transcription of USB's FlexMatchThresholdingHook
(semilearn/algorithms/flexmatch/utils.py: masking() then update()), step by step on random batches; composition
and exact resume."""

from __future__ import annotations

from collections import Counter
from copy import deepcopy

import pytest
import torch

from semi.algorithms.base import PseudoLabels, StepInfo
from semi.algorithms.flex import FlexConfig
from semi.algorithms.flex.method import FlexThresholds, class_thresholds, learning_effect
from semi.algorithms.registry import build_algorithm
from semi.config import load_config

C, POOL = 4, 12
INFO = StepInfo(step=0, epoch=0, total_steps=10, total_epochs=1)


class UsbHook:
    """USB's hook as written there (Counter over a list, a Python loop over classes)."""

    def __init__(self, warmup: bool):
        self.warmup = warmup
        self.selected_label = torch.ones((POOL,), dtype=torch.long) * -1
        self.classwise_acc = torch.zeros((C,))

    def update(self):
        pseudo_counter = Counter(self.selected_label.tolist())
        if max(pseudo_counter.values()) < POOL:
            if self.warmup:
                for i in range(C):
                    self.classwise_acc[i] = pseudo_counter[i] / max(pseudo_counter.values())
            else:
                wo_negative_one = deepcopy(pseudo_counter)
                if -1 in wo_negative_one.keys():
                    wo_negative_one.pop(-1)
                for i in range(C):
                    self.classwise_acc[i] = pseudo_counter[i] / max(wo_negative_one.values())

    def masking(self, p_cutoff, probs, idx_ulb):
        max_probs, max_idx = torch.max(probs, dim=-1)
        mask = max_probs.ge(p_cutoff * (self.classwise_acc[max_idx] / (2. - self.classwise_acc[max_idx])))
        select = max_probs.ge(p_cutoff)
        if idx_ulb[select == 1].nelement() != 0:
            self.selected_label[idx_ulb[select == 1]] = max_idx[select == 1]
        self.update()
        return mask


@pytest.mark.parametrize("warmup", [True, False])
def test_masks_and_learning_effects_match_usb_step_by_step(warmup):
    ours = FlexThresholds(FlexConfig(warmup=warmup), C)
    ours.setup_data(POOL, 0)
    usb = UsbHook(warmup)
    g = torch.Generator().manual_seed(0)
    for step in range(25):
        probs = torch.softmax(3 * torch.randn(5, C, generator=g), dim=1)
        pos = torch.randperm(POOL, generator=g)[:5]
        expected_mask = usb.masking(0.8, probs, pos)
        pl = PseudoLabels(probs, probs, 0.8)
        ours.refine(pl, None, INFO, {})
        assert torch.equal(pl.mask, expected_mask), step
        ours.observe(pl, None, {"u_pos": pos}, INFO, {})
        assert torch.equal(ours.selected, usb.selected_label), step
        torch.testing.assert_close(ours.beta, usb.classwise_acc)
    assert (ours.beta > 0).any() and (ours.selected >= 0).any()


def test_learning_effect_holds_while_the_pool_sits_in_one_bucket():
    prev = torch.tensor([0.1, 0.2, 0.3])
    assert torch.equal(learning_effect(torch.full((6,), -1), 3, True, prev), prev)
    assert torch.equal(learning_effect(torch.full((6,), 2), 3, True, prev), prev)  # every image in class 2
    torch.testing.assert_close(learning_effect(torch.tensor([-1, -1, -1, 0, 0, 2]), 3, True, prev),
                               torch.tensor([2 / 3, 0.0, 1 / 3]))
    torch.testing.assert_close(learning_effect(torch.tensor([-1, -1, -1, 0, 0, 2]), 3, False, prev),
                               torch.tensor([1.0, 0.0, 0.5]))


def test_predicted_normalisation_measures_confidence_within_each_class_not_its_frequency():
    prev = torch.zeros(3)
    selected = torch.tensor([0, 0, 0, -1, -1, -1, 1, -1, -1, 2])
    # the model's latest predictions: class 0 six times, class 1 three times, class 2 once (C * share: 1.8, 0.9, 0.3)
    predicted = torch.tensor([0] * 6 + [1] * 3 + [2])
    # normalised counts 3 / 1.8, 1 / 0.9, 1 / 0.3: the rare class, confident on every image it is given, leads
    torch.testing.assert_close(learning_effect(selected, 3, False, prev, predicted), torch.tensor([0.5, 1 / 3, 1.0]))
    torch.testing.assert_close(learning_effect(selected, 3, False, prev), torch.tensor([1.0, 1 / 3, 1 / 3]))
    # with warm-up the 5 unclaimed images still compete for the max
    torch.testing.assert_close(learning_effect(selected, 3, True, prev, predicted), torch.tensor([1 / 3, 2 / 9, 2 / 3]))
    # balanced predictions that agree with the claims: FlexMatch's learning effect exactly
    balanced = torch.tensor([1, 1, 2, 0, 0, 2])
    for warmup in (True, False):
        flex = learning_effect(torch.tensor([-1, -1, -1, 0, 0, 2]), 3, warmup, prev)
        assert torch.equal(learning_effect(torch.tensor([-1, -1, -1, 0, 0, 2]), 3, warmup, prev, balanced), flex)
    # old claims the model has moved away from do not count: class 2 claimed 4 images but is predicted on 1 of them
    # (shares 3 x [5, 2, 1] / 8), so it counts 1 / 0.375, not 4 / 0.375 (which would leave class 0 at 0.1)
    torch.testing.assert_close(learning_effect(torch.tensor([2, 2, 2, 2, 0, 0, -1, -1]), 3, False, prev,
                                               torch.tensor([2, 0, 0, 0, 0, 0, 1, 1])), torch.tensor([0.4, 0.0, 1.0]))
    # a class claimed earlier but predicted by no image now counts 0
    torch.testing.assert_close(learning_effect(torch.tensor([2, -1, -1, -1]), 3, False, prev,
                                               torch.tensor([0, 0, 1, 1])), torch.tensor([0.0, 0.0, 0.0]))
    # a largest normalised count below 1 still scales to 1 (1 / 2.25 here)
    torch.testing.assert_close(learning_effect(torch.tensor([-1, -1, -1, 0]), 3, False, prev,
                                               torch.tensor([2, 0, 0, 0])), torch.tensor([1.0, 0.0, 0.0]))


def test_predicted_normalisation_tracks_every_image_of_the_batch_and_only_then_keeps_state():
    assert "predicted" not in FlexThresholds(FlexConfig(), C).state_dict()  # FlexMatch's checkpoints unchanged
    ours = FlexThresholds(FlexConfig(normalize="predicted", warmup=False), C)
    ours.setup_data(POOL, 0)
    probs = torch.tensor([[0.9, 0.1, 0.0, 0.0], [0.6, 0.4, 0.0, 0.0], [0.0, 0.0, 0.95, 0.05], [0.5, 0.0, 0.0, 0.5]])
    pl = PseudoLabels(probs, probs, 0.8)
    ours.observe(pl, None, {"u_pos": torch.tensor([3, 7, 0, 11])}, INFO, {})
    assert ours.predicted.tolist() == [2, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 0]
    assert ours.selected.tolist() == [2, -1, -1, 0] + [-1] * 8
    # class 0: 1 confident of 3 predicted (C * share 3), class 2: 1 of 1 (C * share 1) -> 1/3 and 1, over the max
    torch.testing.assert_close(ours.beta, torch.tensor([1 / 3, 0.0, 1.0, 0.0]))
    cfg = load_config(None, ["algorithm.name=dualhead+semi+flex", "flex.normalize=predicted"])
    algo = build_algorithm(cfg, C, torch.full((C,), 0.25), embed_dim=3, pool_size=POOL)
    assert algo.components[-1].predicted.tolist() == [-1] * POOL


def test_mappings_scale_the_threshold_convexly_or_with_a_floor_at_half():
    beta = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(class_thresholds(0.9, beta, "convex"), torch.tensor([0.0, 0.3, 0.9]))
    torch.testing.assert_close(class_thresholds(0.9, beta, "linear"), torch.tensor([0.45, 0.675, 0.9]))


def test_class_thresholds_judge_each_image_by_its_target_and_the_raw_or_mask():
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    raw = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    pl = PseudoLabels(probs, raw, 0.95)
    assert not pl.mask.any()
    pl.set_class_thresholds(torch.tensor([0.5, 0.85]))
    # image 0: target 0 at 0.6 >= 0.5; image 1: target 1 at 0.7 < 0.85, but its raw argmax 0 at 0.9 >= 0.5
    assert pl.mask.tolist() == [True, True]
    pl.set_class_thresholds(torch.tensor([0.95, 0.6]))
    assert pl.mask.tolist() == [True, True]  # image 1 by its target (0.7 >= 0.6); image 0 by its raw argmax (0.8)
    pl.set_class_thresholds(torch.tensor([0.95, 0.9]))
    assert pl.mask.tolist() == [False, False]


def test_flexmatch_alias_and_composition_with_semi():
    cfg = load_config(None, ["algorithm.name=flexmatch"])
    algo = build_algorithm(cfg, C, torch.full((C,), 0.25), embed_dim=3, pool_size=POOL)
    assert type(algo).__name__ == "FixMatch" and type(algo.components[0]).__name__ == "FlexThresholds"
    cfg = load_config(None, ["algorithm.name=dualhead+semi+flex"])
    algo = build_algorithm(cfg, C, torch.full((C,), 0.25), embed_dim=3, pool_size=POOL)
    assert algo.threshold == 0.7 and len(algo.components) == 5  # flex scales SeMi's threshold, sets none


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["none", "predicted"])
def test_flex_resumes_exactly(exact_resume, normalize):
    straight, keys = exact_resume("fixmatch+flex", **{"algorithm.threshold": 0.3,  # tiny models are unconfident
                                                      "flex.normalize": normalize})
    assert "alg.components.0.selected" in keys and "alg.components.0.beta" in keys
    assert ("alg.components.0.predicted" in keys) == (normalize == "predicted")
    assert (straight.algorithm.components[0].selected >= 0).any()
