"""DARP and SimPro against transcriptions of their authors' released code (bbuing9/DARP: `estimate_pseudo`,
`opt_solver` and `train_fix`; LeapLabTHU/SimPro: SimPro/train.py's `train`), step by step on fixed hand-made
batches; and darp+semi / simpro+semi training, resuming bit-exactly, and under two-process DDP."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semi.algorithms.base import StepInfo
from semi.algorithms.darp import DARP, DarpConfig, refine_pseudo_labels, remove_noise, solve_darp
from semi.algorithms.registry import build_algorithm
from semi.algorithms.simpro import SimPro, loader_ratio
from semi.config import Config
from semi.models.heads import ModelOutput

sys.path.insert(0, str(Path(__file__).parent))

optimize = pytest.importorskip("scipy.optimize")

# ----------------------------------------------------------------------------------------------- DARP reference


def authors_estimate_pseudo(q_y, saved_q, num_class, alpha):
    """bbuing9/DARP common.py `estimate_pseudo`, transcribed: per class the top int(alpha * q_y[i]) images."""
    pseudo_labels = torch.zeros(len(saved_q), num_class)
    k_probs = torch.zeros(num_class)
    for i in reversed(range(num_class)):
        num_i = int(alpha * q_y[i])
        sorted_probs, idx = saved_q[:, i].sort(dim=0, descending=True)
        pseudo_labels[idx[:num_i], i] = 1
        k_probs[i] = sorted_probs[:num_i].sum()
    return pseudo_labels, (q_y + 1e-6) / (k_probs + 1e-6)


def authors_opt_solver(probs, target_distb, num_iter=10, th=0.1, num_newton=30):
    """bbuing9/DARP common.py `opt_solver`, transcribed: NumPy coordinate ascent, scipy's newton (secant: no
    derivative given) per class from the previous solution."""

    def f(x, a, b, c, d):
        return np.sum(a * b * np.exp(-1 * x / c)) - d

    entropy = (-1 * probs * torch.log(probs + 1e-6)).sum(1)
    weights = 1 / entropy
    n, k = probs.size(0), probs.size(1)
    a, w, nu, r, c = probs.numpy(), weights.numpy(), np.ones(k), np.ones(n), target_distb.numpy()  # (and lam)
    a_e = a / math.e
    y_t = np.exp(-1 * nu.reshape(1, -1) / w.reshape(-1, 1))
    prev_y = np.zeros(k)
    for _ in range(num_iter):
        x_t = r / np.sum(a_e * y_t, 1)
        y_new = np.zeros(k)
        for i in range(k):
            y_new[i] = optimize.newton(f, prev_y[i], maxiter=num_newton, args=(a_e[:, i], x_t, w, c[i]), tol=th)
        prev_y = y_new
        y_t = np.exp(-1 * y_new.reshape(1, -1) / w.reshape(-1, 1))
    x_t = r / np.sum(a_e * y_t, 1)
    return torch.Tensor(a_e * x_t.reshape(-1, 1) * y_t)


def authors_refine(pseudo_orig, target_disb, alpha=2.0, iter_t=10, th=0.1):
    """The solve in `train_fix` (the branch `batch_idx % args.num_iter == 0`): noise removal, then opt_solver."""
    targets_u, weights_u = authors_estimate_pseudo(target_disb, pseudo_orig, pseudo_orig.shape[1], alpha)
    scale_term = targets_u * weights_u.reshape(1, -1)
    scaled = (pseudo_orig * scale_term + 1e-6) / (pseudo_orig * scale_term + 1e-6).sum(dim=1, keepdim=True)
    return authors_opt_solver(scaled, target_disb, iter_t, th)


def pool_problem(n=60, k=4, seed=0):
    """Softmax predictions of a pool (distinct values, no ties in any column) and labeled-prior target counts."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2.5 * torch.randn(n, k, generator=g), dim=1)
    prior = torch.tensor([0.5, 0.25, 0.15, 0.10])[:k]
    return probs, prior / prior.sum() * n


def test_noise_removal_on_a_hand_made_pool():
    """3 images, 2 classes, target counts (2, 1), alpha 1: class 0 keeps its 2 most probable images (0.9, 0.6:
    mass 1.5, scale 2/1.5), class 1 its best (0.6: scale 1/0.6)."""
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    out = remove_noise(probs, torch.tensor([2.0, 1.0]), alpha=1.0)
    s0, s1 = (2 + 1e-6) / (1.5 + 1e-6), (1 + 1e-6) / (0.6 + 1e-6)
    raw = torch.tensor([[0.9 * s0 + 1e-6, 1e-6], [0.6 * s0 + 1e-6, 1e-6], [1e-6, 0.6 * s1 + 1e-6]])
    assert torch.allclose(out, raw / raw.sum(1, keepdim=True), atol=1e-7)
    ref_sel, ref_w = authors_estimate_pseudo(torch.tensor([2.0, 1.0]), probs, 2, 1.0)
    assert torch.equal(ref_sel, torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize("th", [0.1, 0.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_darp_solve_matches_the_authors_solver(seed, th):
    probs, target = pool_problem(seed=seed)
    ours = refine_pseudo_labels(probs, target, DarpConfig(tolerance=th))
    theirs = authors_refine(probs, target, th=th)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-5), (ours - theirs).abs().max()
    assert torch.allclose(ours.sum(1), torch.ones(len(ours)), atol=1e-5)  # every image: a distribution


def test_newton_root_finder_solves_the_problem_exactly():
    """root_finder=newton (the paper's Newton's method) reaches the problem's solution: the class totals equal
    the target, and it agrees with the authors' solver run to a tight tolerance."""
    probs, target = pool_problem(seed=3)
    cfg = DarpConfig(root_finder="newton", iterations=50)
    ours = solve_darp(probs, target, cfg)
    assert torch.allclose(ours.sum(1), torch.ones(len(ours)), atol=1e-5)
    assert torch.allclose(ours.sum(0), target, rtol=1e-3)
    theirs = authors_opt_solver(probs, target, num_iter=50, th=1e-12, num_newton=100)
    assert torch.allclose(ours, theirs, atol=1e-5)


class FixedOutputs(torch.nn.Module):
    """A stand-in model: returns the next hand-made ModelOutput (logits with gradients), whatever the input."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = iter(outputs)

    def forward(self, x):
        return next(self.outputs)


def _outputs(logits_rows: list[torch.Tensor], c: int) -> ModelOutput:
    logits = torch.cat(logits_rows).requires_grad_(True)
    return ModelOutput(torch.zeros(len(logits), 3), logits, torch.zeros(len(logits), c))


def _batch(b: int, n: int, pos: torch.Tensor, y_l: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x_l": torch.zeros(b, 1), "y_l": y_l, "u_w": torch.zeros(n, 1), "u_s1": torch.zeros(n, 1),
            "u_s2": torch.zeros(n, 1), "u_y": torch.full((n,), -1), "u_is_labeled": torch.zeros(n, dtype=torch.bool),
            "u_pos": pos, "u_idx": pos}


def test_darp_steps_match_the_authors_train_fix_loop():
    """4 epochs x 5 steps on a pool of 30 images, 6 per step; warm-up = 1 epoch (theirs: `epoch > args.warm`),
    a solve every 2 steps of an epoch (`batch_idx % num_iter == 0`); between solves the stale refined rows.
    Each step's targets, mask and unlabeled loss against the transcription of `train_fix`."""
    c, pool, n, b, spe, epochs, tau = 4, 30, 6, 3, 5, 4, 0.6
    cfg = Config()
    cfg.algorithm.name, cfg.algorithm.threshold = "darp", tau
    cfg.darp.warmup, cfg.darp.solve_every = 0.25, 2  # 0.25 * 4 epochs = warm 1
    cfg.train.epochs, cfg.train.steps_per_epoch = epochs, spe
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1])
    algo = build_algorithm(cfg, c, prior, embed_dim=3, pool_size=pool, num_labeled=10)
    assert isinstance(algo, DARP)

    g = torch.Generator().manual_seed(5)
    pseudo_orig = torch.ones(pool, c) / c
    pseudo_refine = torch.ones(pool, c) / c
    target_disb = prior * pool  # N_SAMPLES_PER_CLASS_T * len(unlabeled) / sum(N_SAMPLES_PER_CLASS)
    solves = 0
    for epoch in range(epochs):
        for batch_idx in range(spe):
            step = epoch * spe + batch_idx
            idx_u = torch.randperm(pool, generator=g)[:n]
            y_l = torch.randint(0, c, (b,), generator=g)
            rows = [3 * torch.randn(k, c, generator=g) for k in (b, n, n, n)]
            # --- the authors' loop
            targets_u = torch.softmax(rows[1], dim=1)
            pseudo_orig[idx_u, :] = targets_u
            if epoch > 1:
                if batch_idx % 2 == 0:
                    opt_res = authors_refine(pseudo_orig, target_disb, th=0.1)
                    pseudo_refine = opt_res
                    targets_u = opt_res[idx_u]
                    solves += 1
                else:
                    targets_u = pseudo_refine[idx_u]
            max_p, p_hat = torch.max(targets_u, dim=1)
            select_mask = max_p.ge(tau).float()
            lu = 0.5 * sum((F.cross_entropy(s, p_hat, reduction="none") * select_mask).mean() for s in rows[2:])
            # --- ours
            info = StepInfo(step, epoch, epochs * spe, epochs)
            result = algo.training_step(FixedOutputs([_outputs(rows, c)]), _batch(b, n, idx_u, y_l), info)
            assert torch.allclose(algo.predictions, pseudo_orig, atol=1e-7)
            assert torch.allclose(algo.refined, pseudo_refine, atol=1e-6), step
            assert torch.allclose(result.losses["unsup"], lu, atol=1e-5), step
            assert torch.allclose(result.logs["mask_rate"], select_mask.mean())
    assert int(algo.solves) == solves == 2 * 3  # epochs 2 and 3: batch_idx 0, 2, 4


def test_darp_mask_has_no_or_with_the_current_prediction():
    """Between solves the targets are the last solve's rows; an image whose current softmax is confident but whose
    refined row is not is rejected (no OR-mask, as the authors' code)."""
    c = 2
    cfg = Config()
    cfg.algorithm.name, cfg.darp.warmup, cfg.darp.solve_every = "darp", 0.0, 2
    cfg.train.epochs, cfg.train.steps_per_epoch = 2, 2
    algo = build_algorithm(cfg, c, torch.tensor([0.5, 0.5]), embed_dim=3, pool_size=3)
    algo.refined.copy_(torch.tensor([[0.02, 0.98], [0.5, 0.5], [0.3, 0.7]]))
    logits = torch.tensor([[6.0, 0.0], [5.0, 0.0]])  # both confidently class 0 now
    pl = algo.batch_pseudo_labels(ModelOutput(torch.zeros(2, 3), logits, logits), {"u_pos": torch.tensor([0, 1])},
                                  StepInfo(3, 1, 4, 2), {})  # step 1 of epoch 1: no solve due
    assert pl.raw_probs.max(1).values.min() > 0.95 and int(algo.solves) == 0
    assert pl.target.tolist() == [1, 0] and pl.mask.tolist() == [True, False]
    assert torch.allclose(algo.predictions[:2], torch.softmax(logits, 1)) and algo.predictions[2, 0] == 0.5


# ----------------------------------------------------------------------------------------------- SimPro reference


def test_loader_ratio_is_the_authors_u_len_over_l_len():
    """len(unlabeled loader) / len(labeled loader) with drop_last, per DistributedSampler shard."""
    assert loader_ratio(10000, 1250, 64, 8, 1) == (10000 // 512) / (1250 // 64)
    assert loader_ratio(10001, 1250, 64, 8, 2) == (5001 // 512) / (625 // 64)
    assert loader_ratio(10, 3, 64, 8, 1) == 1.0  # (theirs: an empty loader); at least one batch each


def test_simpro_steps_and_prior_updates_match_the_authors_train_loop():
    """3 epochs x 3 steps on hand-made logits. The transcription of SimPro/train.py's `train` gets only the weak
    labeled view (our batches carry no strong labeled view, see simpro.py): pseudo-labels under the estimated
    unlabeled prior, the adjusted losses (Lx divided by the loader ratio), and the per-epoch EMA of both priors."""
    c, b, n, spe, epochs, tau, ema_u, threshold = 4, 4, 6, 3, 3, 2.0, 0.9, 0.5
    cfg = Config()
    cfg.algorithm.name, cfg.algorithm.threshold = "simpro", threshold
    cfg.simpro.tau, cfg.simpro.momentum = tau, ema_u
    cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.batch_size, cfg.train.mu = epochs, spe, b, 1
    prior = torch.tensor([0.5, 0.25, 0.15, 0.10])
    pool, num_labeled = 40, 9
    algo = build_algorithm(cfg, c, prior, embed_dim=3, pool_size=pool, num_labeled=num_labeled)
    assert isinstance(algo, SimPro) and algo.eval_head == "standard"
    scale_ratio = (pool // (b * 1)) / (num_labeled // b)
    assert algo.labeled_scale == scale_ratio

    def adjustment(py):
        return torch.log(py ** tau + 1e-12)

    g = torch.Generator().manual_seed(11)
    adapt_dis, estimated_dis = prior.clone(), torch.ones(c) / c
    for epoch in range(epochs):
        algo.on_epoch_start(epoch)
        adjustment_u, adjustment_l = adjustment(estimated_dis), adjustment(adapt_dis)
        dis_unlabeled, count_labeled = torch.zeros(c), torch.zeros(c)
        for batch_idx in range(spe):
            step = epoch * spe + batch_idx
            y_l = torch.randint(0, c, (b,), generator=g)
            rows = [2 * torch.randn(k, c, generator=g) for k in (b, n, n, n)]
            # --- the authors' loop
            pseudo_label = torch.softmax(rows[1] + adjustment_u, dim=-1)
            max_probs, _ = torch.max(pseudo_label, dim=-1)
            mask = max_probs.ge(threshold)
            count_labeled += torch.bincount(y_l, minlength=c)
            dis_unlabeled += torch.sum(pseudo_label[mask], dim=0)
            mask_twice = torch.cat([mask, mask]).float()
            lx = F.cross_entropy(rows[0] + adjustment_l, y_l) / scale_ratio
            lu = (F.cross_entropy(torch.cat(rows[2:]) + adjustment_l, torch.cat([pseudo_label, pseudo_label]),
                                  reduction="none") * mask_twice).mean()
            # --- ours
            info = StepInfo(step, epoch, epochs * spe, epochs)
            result = algo.training_step(FixedOutputs([_outputs(rows, c)]), _batch(b, n, torch.arange(n), y_l), info)
            assert torch.allclose(result.losses["sup"], lx, atol=1e-6)
            assert torch.allclose(result.losses["unsup"], lu, atol=1e-6)
            assert torch.allclose(result.logs["mask_rate"], mask.float().mean())
            assert set(result.losses) == {"sup", "unsup"}
        estimated = dis_unlabeled / (dis_unlabeled.sum() + 1)
        estimated_dis = estimated_dis * ema_u + estimated * (1 - ema_u)
        count_forward = count_labeled + dis_unlabeled
        adapt_dis = adapt_dis * ema_u + count_forward / count_forward.sum() * (1 - ema_u)
    algo.on_epoch_start(epochs)  # the end of the last epoch
    assert torch.allclose(algo.unlabeled_prior, estimated_dis, atol=1e-6)
    assert torch.allclose(algo.train_prior, adapt_dis, atol=1e-6)
    assert not torch.allclose(estimated_dis, torch.ones(c) / c)  # the estimate moved


# ----------------------------------------------------------------------------------------------- training


# DARP active from epoch 1 (epoch > 0) with solves at steps 0 and 3 of each epoch (4 steps): at steps 4, 7, 8, 11,
# on both sides of the step-6 checkpoint; SimPro's epoch updates at steps 4 and 8, its sums restored mid-epoch.
EXTRA = {"darp.warmup": 0, "darp.solve_every": 3}


@pytest.mark.parametrize("name", ["darp+semi", "simpro+semi"])
def test_resume_gives_bit_identical_state(exact_resume, name):
    """12 steps straight vs. resuming the straight run's step-6 checkpoint into a new run for 6 more."""
    straight, _ = exact_resume(name, **EXTRA)
    alg = straight.algorithm
    if name.startswith("darp"):
        assert int(alg.solves) == 4 and alg.predictions.shape == (len(straight.data.split.unlabeled), 10)
        assert not torch.equal(alg.refined, torch.full_like(alg.refined, 0.1))
    else:
        assert not torch.equal(alg.train_prior, alg.log_prior.exp())


def test_two_ranks_hold_the_same_darp_pool_and_simpro_priors(tmp_path):
    """Under DDP every rank stores every rank's predictions (so both solve the same problem) and sums the same
    epoch statistics: identical algorithm state and weights on both ranks."""
    import torch.distributed as tdist

    if not tdist.is_available():
        pytest.skip("torch.distributed not available")
    from test_distributed import _overrides, _run_ddp

    for name in ("darp", "simpro"):
        rank0, rank1 = _run_ddp(_overrides(tmp_path, name, f"ddp-{name}", **EXTRA), tmp_path / f"state-{name}")
        assert rank0.keys() == rank1.keys()
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), key
    seen = torch.load(tmp_path / "state-darp.rank0")["alg.predictions"]
    touched = (seen != 0.1).any(1).sum()
    # 12 steps x 2 ranks x 8 images, over a pool larger than that: more rows than one rank alone wrote
    assert touched > 12 * 8


# ----------------------------------------------------------------------------------------------- DARP's --est


def authors_estimate_q_y(conf_val, q_y_tilde):
    """A transcription of the authors' `estimate_q_y` (train_base_estim.py) after its two `confusion` passes:
    columns normalised one by one, numpy's cond and inv, then the product with the unlabeled sums."""
    conf_val = conf_val.clone()
    for i in range(conf_val.shape[1]):
        conf_val[:, i] /= conf_val[:, i].sum()
    cond_val = np.linalg.cond(conf_val.numpy())
    inv_conf_val = torch.Tensor(np.linalg.inv(conf_val.numpy()))
    return torch.matmul(inv_conf_val, q_y_tilde), cond_val


def test_bbse_estimate_matches_the_authors_and_recovers_a_known_shift():
    from semi.algorithms.darp.method import bbse_estimate

    g = torch.Generator().manual_seed(0)
    c = 5
    logits = torch.randn(200, c, generator=g) + 3 * F.one_hot(torch.arange(200) % c, c)
    conf = torch.zeros(c, c).index_add_(1, torch.arange(200) % c, logits.softmax(1).T)  # column y: class y's sum
    q_tilde = torch.rand(c, generator=g) * 100
    ours, cond = bbse_estimate(conf, q_tilde)
    theirs, their_cond = authors_estimate_q_y(conf, q_tilde)
    torch.testing.assert_close(ours.float(), theirs, rtol=1e-4, atol=1e-3)
    assert cond == pytest.approx(float(their_cond), rel=1e-5)
    # unlabeled predictions made by the same confusion from a known class count: the estimate gives it back
    q_true = torch.tensor([500.0, 200.0, 80.0, 30.0, 10.0], dtype=torch.float64)
    normalised = conf.double() / conf.double().sum(0, keepdim=True)
    est, _ = bbse_estimate(conf, normalised @ q_true)
    torch.testing.assert_close(est, q_true)


def _darp(target: str, **extra) -> DARP:
    cfg = Config()
    cfg.algorithm.name = "darp"
    cfg.darp.target = target
    for k, v in extra.items():
        setattr(cfg.darp, k, v)
    algo = build_algorithm(cfg, 4, torch.tensor([0.4, 0.3, 0.2, 0.1]), embed_dim=3, pool_size=100, num_labeled=20)
    assert isinstance(algo, DARP)
    return algo


def test_darp_targets_count_the_labeled_images_in_the_pool(tmp_path):
    assert _darp("labeled_prior").target_counts.tolist() == pytest.approx([40, 30, 20, 10])
    assert _darp("uniform").target_counts.tolist() == pytest.approx([25, 25, 25, 25])
    np.save(tmp_path / "est.npy", np.array([1.0, 1.0, 1.0, 5.0]))
    given = _darp("given", target_file=str(tmp_path / "est.npy"))
    # 80 unlabeled images split 1:1:1:5, plus the 20 labeled ones split 8:6:4:2 (the authors' train_fix --est)
    assert given.target_counts.tolist() == pytest.approx([10 + 8, 10 + 6, 10 + 4, 50 + 2])
    (tmp_path / "bad.txt").write_text("1 2 -3 4\n")
    from semi.errors import ConfigError

    with pytest.raises(ConfigError, match="4 non-negative weights"):
        _darp("given", target_file=str(tmp_path / "bad.txt"))


def test_darp_estimate_is_kept_only_when_valid_and_fixed_when_darp_starts():
    algo = _darp("estimated")
    warm, active = StepInfo(step=0, epoch=0, total_steps=100, total_epochs=10), \
        StepInfo(step=90, epoch=9, total_steps=100, total_epochs=10)
    conf = torch.eye(4, dtype=torch.float64) * 10 + 1  # a well-conditioned confusion
    sums = torch.tensor([0.1, 0.1, 0.1, 0.7], dtype=torch.float64) * 80  # the 80 unlabeled images' softmax sums
    algo.observe_validation(conf, sums, warm)
    normalised = conf / conf.sum(0, keepdim=True)
    expected = torch.linalg.inv(normalised) @ sums
    assert int(algo.estimates_kept) == 1
    torch.testing.assert_close(algo.estimate_sum, expected)
    ill = torch.ones(4, 4, dtype=torch.float64) + 1e-9 * torch.eye(4, dtype=torch.float64)
    algo.observe_validation(ill, sums, warm)
    assert (int(algo.estimates_made), int(algo.estimates_kept)) == (2, 1)  # ill-conditioned: not kept
    algo.observe_validation(conf, sums, active)
    assert int(algo.estimates_made) == 2  # DARP has started: no more estimates
    algo._fix_estimated_target()
    e = expected / expected.sum()
    torch.testing.assert_close(algo.target_counts, (80 * e + torch.tensor([8.0, 6, 4, 2], dtype=torch.float64)).float())
    assert not algo.observes_validation


@pytest.mark.slow
def test_darp_with_an_estimated_target_trains_and_resumes_bit_identically(exact_resume):
    straight, _ = exact_resume("darp", **{"darp.target": "estimated", "darp.warmup": 0.5, "darp.solve_every": 3,
                                          "data.val_per_class": 3, "train.eval_every": 2, "data.num_labeled_max": 10,
                                          "data.num_unlabeled_max": 10, "darp.estimate_max_cond": 1e9,
                                          "train.keep_checkpoints": 10})
    alg = straight.algorithm
    # The evaluations after steps 2, 4, 6 and 8 follow warm-up steps (DARP's first step is the ninth): four
    # estimates. A tiny model's confusion gives negative entries, so none is kept and the target stays the
    # labeled prior (the kept path is pinned on a hand-made confusion above).
    assert (int(alg.estimates_made), int(alg.estimates_kept)) == (4, 0)
    assert bool(alg.target_fixed) and int(alg.solves) >= 1
    pool = len(straight.data.split.unlabeled)
    torch.testing.assert_close(alg.target_counts, (alg._labeled_prior * pool).float())


def test_darp_target_settings_are_checked(capsys):
    from semi.config import load_config
    from semi.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a validation split"):
        load_config(None, ["algorithm.name=darp", "darp.target=estimated"])
    with pytest.raises(ConfigError, match="darp.target_file must name a file"):
        load_config(None, ["algorithm.name=darp+semi", "darp.target=given"])
    load_config(None, ["algorithm.name=fixmatch", "darp.target=estimated"])  # not DARP: no check
