"""DASO against a plain-torch transcription of its authors' released code (github.com/ytaek-oh/daso:
lib/models/feature_queue.py, lib/models/daso_model.py `forward_train`, lib/utils/dist_logger.py), on fixed
hand-made batches; then `daso` and `daso+semi` training, exact resume and DDP."""

from __future__ import annotations

import copy
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semi.algorithms.base import PseudoLabels, StepInfo, Views
from semi.algorithms.components.feature_queue import ClassFeatureQueue
from semi.algorithms.daso import DASO, batch_statistics, distribution_weights
from semi.algorithms.registry import build_algorithm
from semi.config import Config
from semi.models.heads import ModelOutput

C, D = 4, 3
ACTIVE = StepInfo(step=10, epoch=1, total_steps=100, total_epochs=10)


# ----------------------------------------------------------------------------- the authors' code, transcribed


class AuthorsFeatureQueue:
    """lib/models/feature_queue.py with bal_queue=True (DASO's setting): per class, append and keep the last
    max_size; the prototype of a class that received features is its queue's mean (others stay as they were)."""

    def __init__(self, num_classes: int, feat_dim: int, max_size: int):
        self.num_classes, self.max_size = num_classes, max_size
        self._bank = defaultdict(lambda: torch.empty(0, feat_dim))
        self.prototypes = torch.zeros(num_classes, feat_dim)

    def enqueue(self, features, labels):
        for idx in range(self.num_classes):
            max_size = self.max_size
            cls_inds = torch.where(labels == idx)[0]
            if len(cls_inds):
                feats_selected = features[cls_inds]
                self._bank[idx] = torch.cat([self._bank[idx], feats_selected], 0)
                current_size = len(self._bank[idx])
                if current_size > max_size:
                    self._bank[idx] = self._bank[idx][current_size - max_size:]
                self.prototypes[idx, :] = self._bank[idx].mean(0)


class AuthorsDistLogger:
    """The DASO part of lib/utils/dist_logger.py: every step's final pseudo-labels are pushed; every
    PL_DIST_UPDATE_PERIOD steps the class histogram of the pushed ones replaces the distribution."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self._pl_total_list = []
        self._pl_dist = [0 for _ in range(num_classes)]

    def push_pl_list(self, pl_list):
        self._pl_total_list.append(pl_list)

    def update_pl_dist(self):
        pl_total_list = torch.cat(self._pl_total_list, 0)
        for class_ind in range(self.num_classes):
            pl_row_inds = torch.where(pl_total_list == class_ind)[0]
            self._pl_dist[class_ind] = len(pl_row_inds)
        self._pl_total_list = []

    def get_pl_dist(self):
        pl_dist = torch.Tensor(self._pl_dist).float()
        return pl_dist / pl_dist.sum()


def authors_forward_train(logits_weak, feats_weak, feats_strong, prototypes, pl_dist, T_proto=0.05, T_dist=1.5,
                          conf_thres=0.95, with_dist_aware=True, interp_alpha=0.5):
    """lib/models/daso_model.py `forward_train` after pre-training (no ABC, no logit adjustment): the semantic
    pseudo-label, the semantic alignment loss, the distribution-aware blend and its mask."""
    similarity_fn = nn.CosineSimilarity(dim=2)
    with torch.no_grad():
        sim_weak = similarity_fn(feats_weak.unsqueeze(1), prototypes.unsqueeze(0)) / T_proto
        soft_target = sim_weak.softmax(dim=1)
    sim_strong = similarity_fn(feats_strong.unsqueeze(1), prototypes.unsqueeze(0)) / T_proto
    loss_assign = -1 * torch.sum(soft_target * F.log_softmax(sim_strong, dim=1), dim=1).sum() / sim_weak.size(0)
    with torch.no_grad():
        p = logits_weak.softmax(dim=1)
        confidence, pred_class = torch.max(p.detach(), dim=1)
        current_pl_dist = pl_dist ** (1. / T_dist)
        current_pl_dist = current_pl_dist / current_pl_dist.sum()
        current_pl_dist = current_pl_dist / current_pl_dist.max()
        pred_to_dist = current_pl_dist[pred_class].view(-1, 1)
        if not with_dist_aware:
            pred_to_dist = interp_alpha
        p = (1. - pred_to_dist) * p + pred_to_dist * soft_target
        confidence, pred_class = torch.max(p.detach(), dim=1)
        loss_weight = confidence.ge(conf_thres).float()
    return {"soft_target": soft_target, "loss_assign": loss_assign, "p": p, "pred_class": pred_class,
            "loss_weight": loss_weight, "weight": pred_to_dist}


# ----------------------------------------------------------------------------- a fixed hand-made batch

# Labeled features of two steps (every class present, so the authors' zero prototypes play no part).
LABELED = [
    (torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.1, 0.9, 0.3], [0.0, 0.0, 1.0],
                   [0.9, 0.0, 0.1]]), torch.tensor([0, 0, 1, 1, 2, 0])),
    (torch.tensor([[0.7, 0.1, 0.0], [0.5, 0.5, 0.5], [0.2, 0.1, 0.9], [0.6, 0.0, 0.2]]), torch.tensor([3, 3, 2, 0])),
]
WEAK_FEATS = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.6], [0.6, 0.3, 0.3], [0.2, 0.1, 0.7]])
STRONG_FEATS = torch.tensor([[0.7, 0.3, 0.1], [0.0, 1.0, 0.4], [0.4, 0.2, 0.5], [0.5, 0.5, 0.2], [0.1, 0.3, 0.9]])
STRONG_FEATS_2 = torch.tensor([[1.0, 0.0, 0.2], [0.3, 0.7, 0.0], [0.2, 0.2, 0.8], [0.6, 0.1, 0.4], [0.0, 0.2, 0.6]])
# Linear head logits: rows 0, 1 and 3 confident (0.95+); the semantic pseudo-label disagrees on rows 3 and 4.
LOGITS = torch.tensor([[5.0, 0.5, 0.0, 0.0], [0.0, 4.5, 0.5, 0.0], [0.2, 0.1, 1.0, 0.4], [5.0, 0.0, 0.0, 0.9],
                       [0.0, 0.3, 0.2, 2.5]])
PL_COUNTS = torch.tensor([50.0, 30.0, 15.0, 5.0])  # the last window's pseudo-label histogram: class 0 the head


def make_daso(embed_dim: int = D, **daso) -> DASO:
    cfg = Config()
    cfg.algorithm.name = "daso"
    cfg.daso.queue_size, cfg.daso.pretrain_epochs = 3, 0
    for k, v in daso.items():
        setattr(cfg.daso, k, v)
    algo = build_algorithm(cfg, C, torch.tensor([5.0, 3.0, 2.0, 1.0]), embed_dim=embed_dim)
    assert isinstance(algo, DASO) and algo.queue.features.shape == (C, cfg.daso.queue_size, embed_dim)
    return algo


def filled_pair(k: int = 3) -> tuple[DASO, AuthorsFeatureQueue]:
    algo, ref = make_daso(queue_size=k), AuthorsFeatureQueue(C, D, k)
    for feats, labels in LABELED:
        algo.queue.push(feats, labels)
        ref.enqueue(feats, labels)
    algo.pl_dist.copy_(PL_COUNTS)
    return algo, ref


def test_queue_prototypes_match_the_authors_queue():
    algo, ref = filled_pair()
    centres, available = algo.queue.prototypes()
    assert available.all()
    assert torch.allclose(centres, ref.prototypes, atol=1e-6)
    # by hand: class 0 received 4 features, K = 3 keeps the last three: (0.8,.2,0), (.9,0,.1), (.6,0,.2)
    assert centres[0].tolist() == pytest.approx([2.3 / 3, 0.2 / 3, 0.3 / 3])
    assert algo.queue.count.tolist() == [3, 2, 2, 2]


@pytest.mark.parametrize("seed", range(20))
def test_queue_equals_the_authors_fifo_on_random_pushes(seed):
    """Small K and batches with more than K images of a class, so rows wrap and slots collide within a batch."""
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(1, 5, (1,), generator=g))
    queue, ref = ClassFeatureQueue(C, k, D), AuthorsFeatureQueue(C, D, k)
    for _ in range(8):
        n = int(torch.randint(0, 12, (1,), generator=g))
        feats = torch.randn(n, D, generator=g)
        labels = torch.randint(0, C, (n,), generator=g)
        queue.push(feats, labels)
        ref.enqueue(feats, labels)
        centres, available = queue.prototypes()
        assert available.tolist() == [len(ref._bank[c]) > 0 for c in range(C)]
        assert torch.allclose(centres, ref.prototypes, atol=1e-5)
        for c in range(C):  # the same entries, as multisets (the ring's order is not the queue's)
            ours = queue.features[c, : queue.count[c]]
            assert sorted(map(tuple, ours.tolist())) == sorted(map(tuple, ref._bank[c].tolist()))


def test_distribution_weights_by_hand_and_direction():
    # m = (.6, .3, .1, 0); T = 1: v = m / max m = (1, 1/2, 1/6, 0); T = 0.5 squares before the max: (1, 1/4, 1/36, 0)
    counts = torch.tensor([6.0, 3.0, 1.0, 0.0])
    assert distribution_weights(counts, 1.0).tolist() == pytest.approx([1, 1 / 2, 1 / 6, 0])
    assert distribution_weights(counts, 0.5).tolist() == pytest.approx([1, 1 / 4, 1 / 36, 0])
    # T > 1 flattens: tail classes lean more on the semantic pseudo-label, the head one stays at 1
    flat = distribution_weights(counts, 1.5)
    assert flat[0] == 1 and 1 / 6 < flat[2] < 1 / 2
    assert distribution_weights(torch.zeros(4), 1.5).tolist() == [0, 0, 0, 0]  # before any window: no blend


def test_semantic_and_blended_pseudo_labels_match_the_authors_code():
    algo, ref_queue = filled_pair()
    ref = authors_forward_train(LOGITS, WEAK_FEATS, STRONG_FEATS, ref_queue.prototypes, PL_COUNTS / PL_COUNTS.sum())
    pl = algo.pseudo_labels(ModelOutput(WEAK_FEATS, LOGITS, LOGITS), ACTIVE)
    q, _, _, _, w = pl.notes["semantic"]
    assert torch.allclose(q, ref["soft_target"], atol=1e-6)
    assert torch.allclose(w, ref["weight"], atol=1e-6)
    assert torch.allclose(pl.probs, ref["p"], atol=1e-6)
    assert torch.allclose(pl.raw_probs, torch.softmax(LOGITS, 1))
    assert pl.target.tolist() == ref["pred_class"].tolist()
    assert pl.mask.float().tolist() == ref["loss_weight"].tolist()
    # The case the blend is for: row 3's linear label is the head class 0, confidently (0.97), but the head class
    # takes the full semantic pseudo-label (w = 1), which says class 3 (the tail); the blend relabels the image 3
    # with confidence 0.89, so it is not trained on: the authors' mask has no OR with the linear confidence
    # (raw_opens_mask=False). Row 4's linear label is the tail class 3 (w = 0.22): it keeps it against the
    # semantic class 2. Row 1 (class 1, w = 0.71) is the one image both agree on confidently.
    assert torch.softmax(LOGITS, 1)[3].max() >= 0.95 and w[3].item() == 1.0 and not pl.mask[3]
    assert w[:, 0].tolist() == pytest.approx([1.0, 0.7114, 0.4481, 1.0, 0.2154], abs=1e-4)
    assert pl.mask.tolist() == [False, True, False, False, False] and pl.target.tolist() == [0, 1, 2, 3, 3]


def test_fixed_blend_weight_without_distribution_awareness():
    algo, ref_queue = filled_pair()
    algo.cfg.daso.dist_aware = False
    ref = authors_forward_train(LOGITS, WEAK_FEATS, STRONG_FEATS, ref_queue.prototypes, PL_COUNTS / PL_COUNTS.sum(),
                                with_dist_aware=False, interp_alpha=0.5)
    pl = algo.pseudo_labels(ModelOutput(WEAK_FEATS, LOGITS, LOGITS), ACTIVE)
    assert torch.allclose(pl.probs, ref["p"], atol=1e-6)


def test_semantic_alignment_loss_and_its_gradient_match_the_authors_code():
    algo, ref_queue = filled_pair()
    pl_dist = PL_COUNTS / PL_COUNTS.sum()
    pl = algo.pseudo_labels(ModelOutput(WEAK_FEATS, LOGITS, LOGITS), ACTIVE)
    z1, z2 = STRONG_FEATS.clone().requires_grad_(), STRONG_FEATS_2.clone().requires_grad_()
    views = Views(None, ModelOutput(WEAK_FEATS, LOGITS, LOGITS),
                  (ModelOutput(z1, LOGITS, LOGITS), ModelOutput(z2, LOGITS, LOGITS)))
    loss = algo.base_unlabeled_losses(views, pl, {}, ACTIVE, {})["align"]
    r1, r2 = (STRONG_FEATS.clone().requires_grad_(), STRONG_FEATS_2.clone().requires_grad_())
    ref1 = authors_forward_train(LOGITS, WEAK_FEATS, r1, ref_queue.prototypes, pl_dist)["loss_assign"]
    ref2 = authors_forward_train(LOGITS, WEAK_FEATS, r2, ref_queue.prototypes, pl_dist)["loss_assign"]
    ref = 0.5 * (ref1 + ref2)  # ours averages over the two strong views; the authors' FixMatch has one
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    loss.backward()
    ref.backward()
    assert torch.allclose(z1.grad, r1.grad, atol=1e-6) and torch.allclose(z2.grad, r2.grad, atol=1e-6)
    algo.cfg.daso.align_weight = 0.25
    assert algo.base_unlabeled_losses(views, pl, {}, ACTIVE, {})["align"].item() == pytest.approx(0.25 * ref.item(),
                                                                                                  rel=1e-6)


def test_empty_classes_take_no_part_and_pretraining_is_fixmatch():
    """Ours leaves a class without queued features out of the semantic softmax (the authors' zero prototype has
    similarity 0 and takes part); and before daso.pretrain_epochs the pseudo-label is FixMatch's, with no loss."""
    algo = make_daso(pretrain_epochs=2)
    algo.queue.push(*LABELED[0])  # class 3 never seen
    algo.pl_dist.copy_(PL_COUNTS)
    weak = ModelOutput(WEAK_FEATS, LOGITS, LOGITS)
    pl = algo.pseudo_labels(weak, ACTIVE)  # epoch 1 < 2: pre-training
    assert pl.probs is pl.raw_probs and "semantic" not in pl.notes
    views = Views(None, weak, (weak, weak))
    assert algo.base_unlabeled_losses(views, pl, {}, ACTIVE, {})["align"].item() == 0.0
    later = StepInfo(step=20, epoch=2, total_steps=100, total_epochs=10)
    pl = algo.pseudo_labels(weak, later)
    q = pl.notes["semantic"][0]
    assert (q[:, 3] == 0).all() and torch.allclose(q.sum(1), torch.ones(len(q)))
    assert torch.isfinite(algo.base_unlabeled_losses(views, pl, {}, later, {})["align"])


def test_pseudo_label_distribution_windows_match_the_authors_logger():
    algo = make_daso(dist_update_every=3)
    ref = AuthorsDistLogger(C)
    g = torch.Generator().manual_seed(0)
    for step in range(8):
        target = torch.multinomial(torch.tensor([0.5, 0.3, 0.15, 0.05]), 6, replacement=True, generator=g)
        probs = F.one_hot(target, C).float() * 0.5 + 0.125  # masked or not, every pseudo-label counts
        pl = PseudoLabels(probs, probs, 0.95)
        info = StepInfo(step=step, epoch=0, total_steps=100, total_epochs=10)
        algo.observe(pl, None, {"u_y": target}, info, {})
        ref.push_pl_list(target)
        if (step + 1) % 3 == 0:
            ref.update_pl_dist()
        if step < 2:
            assert algo.pl_dist.sum() == 0  # no window closed yet (the authors' logger would divide 0 by 0)
        else:
            assert torch.allclose(algo.pl_dist / algo.pl_dist.sum(), ref.get_pl_dist())
    assert algo.pl_window.sum() == 2 * 6  # steps 6 and 7 of the open window


def test_queue_reads_the_ema_model_with_batch_statistics_and_leaves_it_unchanged():
    from semi.config import ModelConfig
    from semi.models import build_model

    torch.manual_seed(0)
    ema = build_model(ModelConfig(width=4), C, 3).eval()
    with torch.no_grad():  # running statistics far from the batch's, so the two modes differ
        for m in ema.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    before = copy.deepcopy(ema.state_dict())
    algo = make_daso(ema.embed_dim, queue_size=8)
    algo.attach_ema(ema)
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 1, 2, 3, 0])
    algo.enqueue_labeled(x, y)
    reference = copy.deepcopy(ema).train()
    with torch.no_grad():
        expected = reference(x).embedding
        running = copy.deepcopy(ema).eval()(x).embedding
    centres, _ = algo.queue.prototypes()
    assert torch.allclose(centres[1], expected[1:3].mean(0), atol=1e-5)
    assert not torch.allclose(centres[1], running[1:3].mean(0), atol=1e-3)
    after = ema.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats and counters untouched
    assert not ema.training and all(m.track_running_stats for m in ema.modules() if isinstance(m, nn.BatchNorm2d))
    with batch_statistics(ema):
        assert all(m.training for m in ema.modules() if isinstance(m, nn.BatchNorm2d))


def test_daso_alone_needs_the_ema_model():
    algo = make_daso()
    with pytest.raises(RuntimeError, match="EMA model"):
        algo.enqueue_labeled(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))


def test_daso_plus_semi_refines_daso_pseudo_label_with_the_or_mask():
    """daso+semi: SeMi's prototypes refine DASO's blended pseudo-label and bring back SeMi's OR-mask on the
    linear confidence; SeMi's lowered threshold applies."""
    cfg = Config()
    cfg.algorithm.name, cfg.daso.pretrain_epochs, cfg.semi.warmup_epochs = "daso+semi", 0, 0
    algo = build_algorithm(cfg, C, torch.tensor([5.0, 3.0, 2.0, 1.0]), embed_dim=D)
    assert isinstance(algo, DASO) and len(algo.components) == 4 and algo.threshold == 0.7
    for feats, labels in LABELED:
        algo.queue.push(feats, labels)
    algo.pl_dist.copy_(PL_COUNTS)
    bank = algo.components[0].bank
    bank.insert(STRONG_FEATS, torch.tensor([0, 1, 2, 3, 3]), torch.full((5,), 0.9))
    weak = ModelOutput(WEAK_FEATS, LOGITS, LOGITS)
    pl = algo.pseudo_labels(weak, ACTIVE)
    assert not pl.raw_opens_mask
    daso_probs = pl.probs
    views = Views(None, weak, (ModelOutput(STRONG_FEATS, LOGITS, LOGITS),) * 2)
    algo.components[1].refine(pl, views, ACTIVE, {})
    assert pl.raw_opens_mask and pl.probs is not daso_probs
    linear_conf = torch.softmax(LOGITS, 1).max(1).values
    assert pl.mask.tolist() == ((pl.confidence >= 0.7) | (linear_conf >= 0.7)).tolist()


# ----------------------------------------------------------------------------- training, resume, DDP


@pytest.mark.parametrize("name", ["daso", "daso+semi"])
def test_daso_resumes_bit_identically(exact_resume, tmp_path, name):
    """12 steps straight vs. the straight run's step-6 checkpoint resumed for 6 more; DASO is active from step 4
    (daso.pretrain_epochs=1 of 3) and its window closes every 3 steps (tests/conftest.py), so the queue, the
    pseudo-label window and distribution all cross the checkpoint."""
    straight, keys = exact_resume(name)
    assert {"alg.queue.features", "alg.pl_dist", "alg.pl_window"} <= keys
    alg = straight.algorithm
    assert alg.queue.count.sum() > 0 and alg.pl_dist.sum() > 0
    logs = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    align = [r["loss_align"] for r in logs if r.get("kind") == "train"]
    assert align[0] == 0 and align[-1] > 0  # pre-training, then the semantic alignment loss
    diag = json.loads((tmp_path / "a" / "results.json").read_text())["diagnostics"]
    assert len(diag["daso_queue_fill"]) == 10 and max(diag["daso_blend_weights"]) == 1.0
    assert ("bank_fill" in diag) == name.endswith("semi")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_two_ranks_hold_identical_daso_state(tmp_path):
    """Under DDP every rank pushes every rank's labeled features and counts the global batch's pseudo-labels:
    queues, distributions, banks and weights agree bit for bit."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_distributed import _overrides, _run_ddp

    rank0, rank1 = _run_ddp(_overrides(tmp_path, "daso+semi", "ddp"), tmp_path / "state")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert rank0["alg.queue.count"].sum() > 0 and rank0["alg.pl_dist"].sum() > 0


def test_blend_weights_follow_every_change_of_the_pseudo_label_distribution():
    """The weights are cached between windows; a closed window (or a loaded checkpoint) changes pl_dist in place and
    must refresh them."""
    algo, _ = filled_pair()
    weak = ModelOutput(WEAK_FEATS, LOGITS, LOGITS)
    before = algo.pseudo_labels(weak, ACTIVE).notes["semantic"][-1].clone()
    flipped = PL_COUNTS.flip(0)
    algo.pl_dist.copy_(flipped)
    now = algo.pseudo_labels(weak, ACTIVE).notes["semantic"][-1]
    p = torch.softmax(LOGITS, 1)
    expected = distribution_weights(flipped, algo.cfg.daso.dist_temperature)[p.argmax(1)][:, None]
    assert torch.allclose(now, expected) and not torch.allclose(before, expected)
    algo.load_state_dict({**algo.state_dict(), "pl_dist": PL_COUNTS.clone()})
    assert torch.allclose(algo.pseudo_labels(weak, ACTIVE).notes["semantic"][-1], before)
