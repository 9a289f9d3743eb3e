"""ReMixMatch: the guess (distribution alignment and sharpening) against a transcription of its authors' guess_label,
the p_model window against the CISSL ports' queue, MixUp and rotations, one whole step against a transcription of
USB's train_step (separate passes), components' weights through MixUp, exact resume, DDP and the recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semi.algorithms.base import Component, StepInfo
from semi.algorithms.remixmatch import check
from semi.algorithms.remixmatch.method import (
    ReMixMatch,
    align_and_sharpen,
    mixup,
    ramp,
    rotate_quarter_turns,
    split_rows,
)
from semi.config import Config
from semi.models.heads import DualHeadClassifier
from semi.models.norm_stats import running_stats_kept

C = 4
PRIOR = torch.tensor([0.5, 0.25, 0.15, 0.1])


def guess_label_reference(p: np.ndarray, p_data: np.ndarray, p_model: np.ndarray, t: float) -> np.ndarray:
    """google-research/remixmatch remixmatch_no_cta.py guess_label (redux '1st', use_dm), in numpy."""
    p_ratio = (1e-6 + p_data) / (1e-6 + p_model)
    p_weighted = p * p_ratio
    p_weighted /= p_weighted.sum(axis=1, keepdims=True)
    p_target = np.power(p_weighted, 1.0 / t)
    return p_target / p_target.sum(axis=1, keepdims=True)


def test_the_guess_is_the_authors_guess_label():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(7, C, generator=g) * 2, dim=1).double()
    p_model = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    got = align_and_sharpen(p, PRIOR.double(), p_model, 0.5)
    want = guess_label_reference(p.numpy(), PRIOR.double().numpy(), p_model.numpy(), 0.5)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # by hand, one row: p = (0.5, 0.5, 0, 0), p_data / p_model = (2, 1, ...): aligned (2/3, 1/3), sharpened (0.8, 0.2)
    one = align_and_sharpen(torch.tensor([[0.5, 0.5, 0.0, 0.0]]), torch.tensor([0.4, 0.2, 0.2, 0.2]),
                            torch.tensor([0.2, 0.2, 0.3, 0.3]), 0.5)
    assert torch.allclose(one, torch.tensor([[0.8, 0.2, 0.0, 0.0]]), atol=1e-5)
    assert torch.allclose(align_and_sharpen(p, None, None, 1.0), p)  # no alignment, T = 1: p itself


def _algorithm(**remix) -> ReMixMatch:
    cfg = Config()
    cfg.algorithm.name = "remixmatch"
    for key, value in remix.items():
        setattr(cfg.remixmatch, key, value)
    return ReMixMatch(cfg, C, PRIOR, [])


def test_p_model_is_the_mean_of_the_last_batches_this_one_included():
    """The queue of DARP's and ABC's ReMixMatch (train_remix: append the batch mean, keep the last 128, average)."""
    alg = _algorithm(alignment_batches=3)
    g = torch.Generator().manual_seed(1)
    queue: list[torch.Tensor] = []
    for _ in range(7):
        p = torch.softmax(torch.randn(5, C, generator=g), dim=1)
        queue = (queue + [p.mean(0)])[-3:]
        assert torch.allclose(alg.p_model(p), torch.stack(queue).mean(0), atol=1e-7)
    assert int(alg.guess_count) == 7


def test_mixup_lambda_is_at_least_a_half_reproducible_and_beta_distributed():
    alg = _algorithm()
    lams = np.array([alg.mixup_lambda(StepInfo(step=s, epoch=0, total_steps=4000, total_epochs=1))
                     for s in range(4000)])
    assert lams.min() >= 0.5 and lams.max() <= 1.0
    assert alg.mixup_lambda(StepInfo(step=17, epoch=0, total_steps=1, total_epochs=1)) == lams[17]
    ref = np.random.default_rng(0).beta(0.75, 0.75, size=4000)
    assert np.abs(np.sort(lams) - np.sort(np.maximum(ref, 1 - ref))).max() < 0.05  # same distribution


def test_mixup_mixes_inputs_targets_and_weights_with_the_same_partner():
    x = torch.arange(4.0).view(4, 1)
    y = torch.eye(4)
    w = torch.tensor([1.0, 1.0, 0.0, 1.0])
    mx, my, mw = mixup(x, y, w, 0.75, torch.tensor([1, 0, 3, 2]))
    assert torch.allclose(mx.squeeze(1), torch.tensor([0.25, 0.75, 2.25, 2.75]))
    assert torch.allclose(my[0], torch.tensor([0.75, 0.25, 0.0, 0.0]))
    assert torch.allclose(mw, torch.tensor([1.0, 1.0, 0.25, 0.75]))


def test_rotations_turn_each_image_by_its_own_quarter_turns():
    x = torch.arange(2 * 3 * 3.0).view(2, 1, 3, 3).repeat(4, 1, 1, 1)
    turns = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    got = rotate_quarter_turns(x, turns)
    for i, k in enumerate(turns.tolist()):
        assert torch.equal(got[i], torch.rot90(x[i], k, (1, 2)))


def test_ramp_is_linear_over_the_warm_up_share():
    assert ramp(0, 640, 1 / 64) == 0.0 and ramp(5, 640, 1 / 64) == 0.5 and ramp(11, 640, 1 / 64) == 1.0
    assert ramp(0, 640, 0.0) == 1.0 and ramp(320, 640, 1.0) == 0.5


def test_the_guess_pass_leaves_batch_norm_running_statistics_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    x = torch.randn(6, 1, 2, 2)
    before = [t.clone() for t in model[1].state_dict().values()]
    with torch.no_grad(), running_stats_kept(model):
        kept = model(x)
    for a, b in zip(before, model[1].state_dict().values()):
        assert torch.equal(a, b)
    assert torch.allclose(kept, model(x))  # batch statistics, as any training-mode pass
    assert not torch.equal(before[0], model[1].running_mean)  # the plain pass did move them


class Tiny(nn.Module):
    """No BatchNorm, so separate passes (the reference) equal one pass over the same rows (ours)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(9, 6), nn.Tanh())
        self.embed_dim = 6

    def forward(self, x):
        return self.net(x)


class Threshold07(Component):
    """A component that sets every mask's threshold, as SeMi does."""

    threshold = 0.7

    def mask_threshold(self, base, info):
        return 0.7


class FixedWeights(Component):
    """A component that weights the unlabeled images (as OHEML, or a mask would)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = w

    def sample_weights(self, pl, info, logs):
        return self.w


def usb_reference(model, batch, alg, info, weights, threshold=None):
    """USB's ReMixMatch train_step (semilearn/algorithms/remixmatch/remixmatch.py) with separate passes, our view
    order in MixUp ([x_l, u_w, u_s1, u_s2]), the same lambda, permutation and rotations, and the components'
    weights carried through MixUp as our module documents."""
    r = alg.cfg.remixmatch
    x_l, y, u_w, s1, s2 = (batch[k] for k in ("x_l", "y_l", "u_w", "u_s1", "u_s2"))
    b, n = len(x_l), len(u_w)
    with torch.no_grad():
        p = torch.softmax(model(u_w).logits, dim=1)
        q = p * (PRIOR + 1e-6) / (p.mean(0) + 1e-6)  # the first step: p_model is this batch's mean
        q = q / q.sum(1, keepdim=True)
        q = q ** (1 / r.sharpen_temperature)
        q = q / q.sum(1, keepdim=True)
    if threshold is not None:  # a component's mask, judged on the guess it trains toward
        weights = weights * (q.max(1).values >= threshold).float()
    gen = alg.step_generator(info, torch.device("cpu"))
    perm = torch.randperm(b + 3 * n, generator=gen)
    turns = torch.randint(0, 4, (n,), generator=gen)
    lam = alg.mixup_lambda(info)
    inputs = torch.cat([x_l, u_w, s1, s2])
    labels = torch.cat([F.one_hot(y, C).float(), q, q, q])
    row_w = torch.cat([torch.ones(b), weights, weights, weights])
    mixed_x = lam * inputs + (1 - lam) * inputs[perm]
    mixed_y = lam * labels + (1 - lam) * labels[perm]
    mixed_w = lam * row_w + (1 - lam) * row_w[perm]
    logits_x = model(mixed_x[:b]).logits
    logits_u = torch.cat([model(chunk).logits for chunk in mixed_x[b:].split(n)])
    sup = (-(mixed_y[:b] * F.log_softmax(logits_x, 1)).sum(1) * mixed_w[:b]).mean()
    unsup = (-(mixed_y[b:] * F.log_softmax(logits_u, 1)).sum(1) * mixed_w[b:]).mean()
    u1 = (-(q * F.log_softmax(model(s1).logits, 1)).sum(1) * weights).mean()
    rotated = torch.stack([torch.rot90(s1[i], int(k), (1, 2)) for i, k in enumerate(turns)])
    rot = F.cross_entropy(model(rotated).rotation, turns)
    w = min(1.0, info.step / (r.warmup_fraction * info.total_steps))
    return {"sup": sup, "unsup": r.match_weight * w * unsup, "kl": r.kl_weight * w * u1,
            "rot": r.rotation_weight * rot}


@pytest.mark.parametrize("weighted, thresholded", [(False, False), (True, False), (True, True)])
def test_a_step_matches_usb_remixmatch_with_separate_passes(weighted, thresholded):
    torch.manual_seed(0)
    model = DualHeadClassifier(Tiny(), 6, C, rotation_head=True)
    b, n = 4, 6
    g = torch.Generator().manual_seed(3)
    batch = {k: torch.randn(rows, 1, 3, 3, generator=g) for k, rows in
             (("x_l", b), ("u_w", n), ("u_s1", n), ("u_s2", n))}
    batch.update(y_l=torch.tensor([0, 0, 1, 3]), u_y=torch.tensor([0, 1, 2, 3, -1, 0]))
    weights = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 1.0]) if weighted else torch.ones(n)
    cfg = Config()
    cfg.algorithm.name, cfg.train.seed = "remixmatch", 11
    comps = ([FixedWeights(weights)] if weighted else []) + ([Threshold07()] if thresholded else [])
    alg = ReMixMatch(cfg, C, PRIOR, comps)
    info = StepInfo(step=5, epoch=0, total_steps=640, total_epochs=1)  # the ramp at 1/2
    result = alg.training_step(model, batch, info)
    want = usb_reference(model, batch, alg, info, weights, 0.7 if thresholded else None)
    assert set(result.losses) == set(want)
    for key in want:
        assert torch.allclose(result.losses[key], want[key], rtol=1e-5, atol=1e-6), key
    assert torch.allclose(result.loss, sum(want.values()), rtol=1e-5)
    assert (result.logs["mask_rate"] == 1.0) == (not thresholded)  # ReMixMatch alone masks nothing
    result.loss.backward()
    assert model.rotation.weight.grad.abs().sum() > 0 and model.g2.weight.grad is None


def test_split_rows_names_consecutive_blocks():
    out = DualHeadClassifier(Tiny(), 6, C, rotation_head=True)(torch.randn(7, 1, 3, 3))
    parts = split_rows(out, {"a": 3, "b": 4})
    assert torch.equal(parts["b"].logits, out.logits[3:]) and parts["a"].rotation.shape == (3, 4)


def test_feature_vectors_need_the_rotation_loss_off():
    cfg = Config()
    cfg.algorithm.name, cfg.data.name = "remixmatch+semi", "features"
    assert any("rotation_weight" in m for m in check(cfg))
    cfg.remixmatch.rotation_weight = 0.0
    assert check(cfg) == []


@pytest.mark.parametrize("name", ["remixmatch", "remixmatch+semi"])
def test_resume_gives_bit_identical_state(exact_resume, name):
    """MixUp's lambda, its permutation and the rotations come from (seed, step); the p_model window is a buffer."""
    straight, keys = exact_resume(name)
    assert "alg.guess_means" in keys and "model.rotation.weight" in keys
    assert int(straight.algorithm.guess_count) == 12


def test_without_the_rotation_loss_the_model_has_no_rotation_head(tiny_config):
    from semi.engine.trainer import Trainer

    trainer = Trainer(tiny_config(**{"algorithm.name": "remixmatch", "remixmatch.rotation_weight": 0,
                                     "remixmatch.alignment": "none"}))
    result = trainer.fit()
    assert trainer.model.rotation is None and int(trainer.algorithm.guess_count) == 0
    assert result["metrics"]["top1"] >= 0


class WithNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 6), nn.Tanh())
        self.embed_dim = 6

    def forward(self, x):
        return self.net(x)


def test_only_the_pass_with_gradient_moves_batch_norm_running_statistics():
    """The weak view's pass keeps the running statistics (USB's freeze_bn); the one pass with gradient, over the
    mixed rows, the first strong view and its rotation, moves them once."""
    torch.manual_seed(0)
    model = DualHeadClassifier(WithNorm(), 6, C, rotation_head=True)
    twin = DualHeadClassifier(WithNorm(), 6, C, rotation_head=True)
    twin.load_state_dict(model.state_dict())
    b, n = 4, 6
    g = torch.Generator().manual_seed(5)
    batch = {k: torch.randn(rows, 1, 3, 3, generator=g) for k, rows in
             (("x_l", b), ("u_w", n), ("u_s1", n), ("u_s2", n))}
    batch.update(y_l=torch.tensor([0, 1, 2, 3]), u_y=torch.full((n,), -1))
    cfg = Config()
    cfg.algorithm.name = "remixmatch"
    alg = ReMixMatch(cfg, C, PRIOR, [])
    info = StepInfo(step=2, epoch=0, total_steps=64, total_epochs=1)
    alg.training_step(model, batch, info)
    gen = alg.step_generator(info, torch.device("cpu"))
    perm = torch.randperm(b + 3 * n, generator=gen)
    turns = torch.randint(0, 4, (n,), generator=gen)
    lam = alg.mixup_lambda(info)
    x = torch.cat([batch[k] for k in ("x_l", "u_w", "u_s1", "u_s2")])
    twin(torch.cat([lam * x + (1 - lam) * x[perm], batch["u_s1"], rotate_quarter_turns(batch["u_s1"], turns)]))
    norm, twin_norm = model.backbone.net[1], twin.backbone.net[1]
    assert int(norm.num_batches_tracked) == 1
    assert torch.allclose(norm.running_mean, twin_norm.running_mean, atol=1e-6)
    assert torch.allclose(norm.running_var, twin_norm.running_var, atol=1e-6)


def test_a_remixmatch_checkpoint_predicts_and_exports(tiny_config, tmp_path):
    import numpy as np

    from semi.api import export, predict
    from semi.engine.trainer import Trainer

    cfg = tiny_config(**{"algorithm.name": "remixmatch"})
    Trainer(cfg).fit()
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)  # the run's image size
    preds = predict(checkpoint, images)
    assert preds.probabilities.shape == (5, 10)
    export(checkpoint, tmp_path / "model.pt2")
    module = torch.export.load(str(tmp_path / "model.pt2")).module()
    with torch.no_grad():
        probs = module(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(probs, preds.probabilities, rtol=0, atol=1e-5)
