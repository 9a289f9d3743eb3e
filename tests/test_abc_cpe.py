"""ABC and CPE against transcriptions of their authors' training steps (LeeHyuck/ABC ABCfix.py; machengcheng2016/
CPE-LTSSL semilearn/imb_algorithms/cpe/cpe.py) on fixed hand-made batches; the models' extra heads (ModelOutput
.experts) through torch.compile, predict / export and DDP; abc+semi and cpe+semi resume bit-exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semi.algorithms.abc import ABC, balance_ratios, step_generator, unlabeled_keep_probs
from semi.algorithms.base import Component, StepInfo
from semi.algorithms.cpe import CPE, group_weights
from semi.config import Config, ModelConfig
from semi.models import build_model
from semi.models.heads import ModelOutput

sys.path.insert(0, str(Path(__file__).parent))  # the DDP test reuses test_distributed's helpers

COUNTS = torch.tensor([8.0, 4.0, 2.0, 1.0])


class FixedOutputs(nn.Module):
    """A stand-in model: returns the given outputs for the step's concatenated batch (x_l, u_w, u_s1, u_s2)."""

    def __init__(self, out: ModelOutput):
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> ModelOutput:
        assert len(x) == len(self.out.logits)
        return self.out


def _batch(b: int, n: int, y: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x_l": torch.zeros(b, 1), "y_l": y, "u_w": torch.zeros(n, 1), "u_s1": torch.zeros(n, 1),
            "u_s2": torch.zeros(n, 1), "u_y": torch.full((n,), -1)}


def _logits(g: torch.Generator, rows: int, c: int, confident_every: int = 2) -> torch.Tensor:
    """Random logits; every `confident_every`-th row has a margin of 8 on a random class (softmax > 0.95)."""
    x = torch.randn(rows, c, generator=g)
    boost = torch.zeros(rows, c)
    idx = torch.arange(0, rows, confident_every)
    boost[idx, torch.randint(0, c, (len(idx),), generator=g)] = 8.0
    return x + boost


# ------------------------------------------------------------------------------------------------- ABC


def abcfix_reference(g1: torch.Tensor, g2: torch.Tensor, y: torch.Tensor, b: int, n: int, epoch: int,
                     ir2: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ABCfix.py's train() loss for one batch (Lx + Lu + abcloss + abcloss1 + abcloss2), transcribed: g1 =
    `classify`, g2 = `classify2` outputs on [x, u (weak, q1), u2 (strong, q2), u3 (strong, q3)]. Its `ir2` is a
    float64 numpy array; here float32, so torch.bernoulli reads the same uniform draws as ours."""
    num_class = g1.shape[1]
    x1, w1, s11, s12 = g1.split([b, n, n, n])
    x2, w2, s21, s22 = g2.split([b, n, n, n])
    targets_x2 = torch.zeros(b, num_class).scatter_(1, y.view(-1, 1), 1)
    targets_u2 = torch.softmax(w1, dim=1)
    max_p, p_hat = torch.max(targets_u2, dim=1)
    p_hat = torch.zeros(n, num_class).scatter_(1, p_hat.view(-1, 1), 1)
    select_mask = max_p.ge(0.95)
    select_mask = torch.cat([select_mask, select_mask], 0).float()
    all_targets = torch.cat([targets_x2, p_hat, p_hat], dim=0)
    logits_u = torch.cat([s11, s12], dim=0)
    maskforbalance = torch.bernoulli(torch.sum(targets_x2 * ir2, dim=1), generator=gen)
    logits = F.softmax(x2, dim=1)
    logitsu1 = F.softmax(w2, dim=1)
    max_p2, label_u = torch.max(logitsu1, dim=1)
    select_mask2 = max_p2.ge(0.95)
    label_u = torch.zeros(n, num_class).scatter_(1, label_u.view(-1, 1), 1)
    ir22 = 1 - (epoch / 500) * (1 - ir2)
    maskforbalanceu = torch.bernoulli(torch.sum(label_u * ir22, dim=1), generator=gen)
    logitsu2 = F.softmax(s21, dim=1)
    logitsu3 = F.softmax(s22, dim=1)
    abcloss = -torch.mean(maskforbalance * torch.sum(torch.log(logits) * targets_x2, dim=1))
    abcloss1 = -torch.mean(select_mask2 * maskforbalanceu * torch.sum(torch.log(logitsu2) * logitsu1, dim=1))
    abcloss2 = -torch.mean(select_mask2 * maskforbalanceu * torch.sum(torch.log(logitsu3) * logitsu1, dim=1))
    lx = -torch.mean(torch.sum(F.log_softmax(x1, dim=1) * all_targets[:b], dim=1))
    lu = -torch.mean(torch.sum(F.log_softmax(logits_u, dim=1) * all_targets[b:], dim=1) * select_mask)
    return lx + lu + abcloss + abcloss1 + abcloss2, maskforbalance, maskforbalanceu


def test_balance_ratios_are_min_count_over_count():
    assert torch.equal(balance_ratios(COUNTS / COUNTS.sum()), torch.tensor([0.125, 0.25, 0.5, 1.0]))
    ratios = torch.tensor([0.125, 0.25, 0.5, 1.0])
    assert torch.allclose(unlabeled_keep_probs(ratios, 0.0), torch.ones(4))
    assert torch.allclose(unlabeled_keep_probs(ratios, 0.5), torch.tensor([0.5625, 0.625, 0.75, 1.0]))
    assert torch.allclose(unlabeled_keep_probs(ratios, 1.0), ratios)


@pytest.mark.parametrize("step,epoch", [(7, 0), (1234, 100), (99999, 499)])
def test_abc_step_matches_the_authors_abcfix(step, epoch):
    b, n, c = 6, 10, 4
    g = torch.Generator().manual_seed(step)
    y = torch.tensor([0, 0, 1, 2, 3, 0])
    g1 = _logits(g, b + 3 * n, c)
    g2 = _logits(g, b + 3 * n, c)
    cfg = Config()
    cfg.algorithm.name, cfg.train.seed = "abc", 5
    alg = ABC(cfg, c, COUNTS / COUNTS.sum(), [])
    info = StepInfo(step=step, epoch=epoch, total_steps=500 * 500, total_epochs=500)
    result = alg.training_step(FixedOutputs(ModelOutput(torch.zeros(len(g1), 2), g1, g2)), _batch(b, n, y), info)
    ref, keep_l, keep_u = abcfix_reference(g1, g2, y, b, n, epoch, torch.tensor([0.125, 0.25, 0.5, 1.0]),
                                           step_generator(5, step, torch.device("cpu")))
    assert torch.allclose(result.loss, ref, rtol=1e-6, atol=1e-6)
    assert set(result.losses) == {"sup", "unsup", "abc_sup", "abc_unsup"}
    assert result.logs["abc_keep_labeled"] == keep_l.mean()
    assert keep_l[y == 3].all() and keep_l.sum() < b  # the rarest class always kept, some head images dropped
    assert keep_u.sum() < n or epoch == 0  # at epoch 0 every unlabeled image is kept (probability 1)


def test_abc_hard_target_option_is_the_one_hot_cross_entropy():
    b, n, c = 4, 6, 4
    g = torch.Generator().manual_seed(0)
    g1, g2 = _logits(g, b + 3 * n, c, 1), _logits(g, b + 3 * n, c, 1)  # every weak row confident
    y = torch.tensor([0, 1, 2, 3])
    cfg = Config()
    cfg.abc.unlabeled_target = "hard"
    alg = ABC(cfg, c, torch.ones(c) / c, [])  # balanced labels: every mask keeps everything
    info = StepInfo(step=0, epoch=0, total_steps=10, total_epochs=1)
    result = alg.training_step(FixedOutputs(ModelOutput(torch.zeros(len(g1), 2), g1, g2)), _batch(b, n, y), info)
    _, w2, s21, s22 = g2.split([b, n, n, n])
    target = w2.argmax(1)
    want = F.cross_entropy(s21, target) + F.cross_entropy(s22, target)
    assert torch.allclose(result.losses["abc_unsup"], want, rtol=1e-6)


def test_abc_draws_are_a_function_of_seed_and_step_not_the_global_rng():
    p = torch.full((1000,), 0.3)
    a = torch.bernoulli(p, generator=step_generator(1, 42, torch.device("cpu")))
    torch.manual_seed(123)  # the global RNG does not matter
    torch.rand(10)
    b = torch.bernoulli(p, generator=step_generator(1, 42, torch.device("cpu")))
    c = torch.bernoulli(p, generator=step_generator(1, 43, torch.device("cpu")))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.mean().item() - 0.3) < 0.06


# ------------------------------------------------------------------------------------------------- CPE


def cpe_reference(lb: list[torch.Tensor], w: list[torch.Tensor], s: list[torch.Tensor], y: torch.Tensor,
                  p_hat_lb: torch.Tensor, taus=(0.0, 2.0, 4.0), cut1: int = 2, cut2: int = 4, lambda_u: float = 1.0,
                  p_cutoff: float = 0.95, ensemble: bool = False, groups: bool = True) -> torch.Tensor:
    """cpe.py's train_step total_loss, transcribed with its three classwise-BN branches collapsed into one
    (logitsH_i = logitsM_i = logitsT_i = the expert's logits). lb, w, s: the three experts' logits on the labeled,
    weak and one strong view. `ensemble` (ours, not the authors'): every expert takes the mean softmax's label;
    `groups=False` (ours): drop the M and T terms."""
    num_classes = lb[0].shape[1]
    total = torch.zeros(())
    ens = torch.stack([torch.softmax(wi, dim=-1) for wi in w]).mean(0)
    for i in range(3):
        sup_loss = F.cross_entropy(lb[i] + taus[i] * torch.log(p_hat_lb), y, reduction="mean")
        probs = ens if ensemble else torch.softmax(w[i], dim=-1)
        mask = probs.amax(dim=-1).ge(p_cutoff)
        pseudo_label = probs.argmax(dim=-1)
        pl_h = F.one_hot(pseudo_label, num_classes).sum(dim=1) * mask.float()
        pl_m = F.one_hot(pseudo_label, num_classes)[:, cut1:].sum(dim=1) * mask.float()
        pl_t = F.one_hot(pseudo_label, num_classes)[:, cut2:].sum(dim=1) * mask.float()
        if not groups:
            pl_m, pl_t = pl_m * 0, pl_t * 0
        ce = F.cross_entropy(s[i], pseudo_label, reduction="none")
        unsup = (ce * pl_h).sum() + (ce * pl_m).sum() + (ce * pl_t).sum()
        unsup = unsup / (pl_h.sum() + pl_m.sum() + pl_t.sum() + 1e-12)
        total = total + sup_loss + lambda_u * unsup
    return total


def test_group_weights_follow_the_authors_cuts():
    assert torch.equal(group_weights(torch.tensor([0, 1, 2, 3, 4, 9]), 2, 4), torch.tensor([1., 1, 2, 2, 3, 3]))
    alg = CPE(Config(), 100, torch.ones(100) / 100, [])
    assert (alg.medium_from, alg.tail_from) == (20, 40)


@pytest.mark.parametrize("mode,groups", [("own", True), ("ensemble", True), ("own", False)])
def test_cpe_step_matches_the_authors_code(mode, groups):
    b, n, c = 8, 12, 10
    g = torch.Generator().manual_seed(3)
    counts = torch.tensor([50.0, 30, 18, 11, 7, 4, 3, 2, 1, 1])
    y = torch.tensor([0, 0, 1, 2, 3, 5, 7, 9])
    heads = [_logits(g, b + 3 * n, c) for _ in range(3)]  # consistent (g1), uniform (g2), reversed (extra)
    cfg = Config()
    cfg.algorithm.name, cfg.cpe.pseudo_labels, cfg.cpe.group_weights = "cpe", mode, groups
    prior = counts / counts.sum()
    alg = CPE(cfg, c, prior, [])
    out = ModelOutput(torch.zeros(b + 3 * n, 2), heads[0], heads[1], heads[2].unsqueeze(1))
    info = StepInfo(step=3, epoch=0, total_steps=10, total_epochs=1)
    result = alg.training_step(FixedOutputs(out), _batch(b, n, y), info)
    parts = [h.split([b, n, n, n]) for h in heads]
    lb, w = [p[0] for p in parts], [p[1] for p in parts]
    refs = [cpe_reference(lb, w, [p[k] for p in parts], y, prior, ensemble=mode == "ensemble", groups=groups)
            for k in (2, 3)]
    assert torch.allclose(result.loss, 0.5 * (refs[0] + refs[1]), rtol=1e-6, atol=1e-6)
    assert {"sup", "sup_uniform", "sup_reversed", "unsup", "unsup_uniform", "unsup_reversed"} == set(result.losses)
    assert 0 < result.logs["mask_rate"] < 1  # the batch does exercise the masks


class LowerThreshold(Component):
    """A component that lowers every mask of the step, as SeMi does (0.7)."""

    threshold = 0.7

    def mask_threshold(self, base, info):
        return 0.7


@pytest.mark.parametrize("expert_threshold", ["step", "base"])
def test_cpe_expert_threshold_keeps_the_base_threshold_for_experts_2_and_3(expert_threshold):
    b, n, c = 4, 40, 4
    g = torch.Generator().manual_seed(0)
    heads = [torch.randn(b + 3 * n, c, generator=g) * 3 for _ in range(3)]
    cfg = Config()
    cfg.algorithm.name, cfg.cpe.expert_threshold = "cpe", expert_threshold
    alg = CPE(cfg, c, torch.tensor([0.4, 0.3, 0.2, 0.1]), [LowerThreshold()])
    out = ModelOutput(torch.zeros(b + 3 * n, 2), heads[0], heads[1], heads[2].unsqueeze(1))
    info = StepInfo(step=3, epoch=0, total_steps=10, total_epochs=1)
    result = alg.training_step(FixedOutputs(out), _batch(b, n, torch.tensor([0, 1, 2, 3])), info)
    conf = [torch.softmax(h[b:b + n], dim=1).amax(1) for h in heads]
    expert = 0.95 if expert_threshold == "base" else 0.7
    assert result.logs["mask_rate"] == (conf[0] >= 0.7).float().mean()  # expert 1: the component's threshold
    assert result.logs["mask_rate_uniform"] == (conf[1] >= expert).float().mean()
    assert result.logs["mask_rate_reversed"] == (conf[2] >= expert).float().mean()
    assert (conf[1] >= 0.7).float().mean() > (conf[1] >= 0.95).float().mean()  # the two differ on this batch


# ------------------------------------------------------------------------------------------------- extra heads


def test_extra_heads_shapes_init_and_checkpoint_compatibility():
    torch.manual_seed(0)
    two = build_model(ModelConfig(name="small_cnn", width=8), 10, 3)
    torch.manual_seed(0)
    three = build_model(ModelConfig(name="small_cnn", width=8), 10, 3, extra_heads=2)
    assert not any(k.startswith("experts") for k in two.state_dict())  # two-headed checkpoints are unchanged
    assert three.experts.weight.shape == (20, two.embed_dim)
    x = torch.randn(5, 3, 16, 16)
    o2, o3 = two.eval()(x), three.eval()(x)
    assert o2.experts.shape == (5, 0, 10) and o3.experts.shape == (5, 2, 10)
    assert o3.all_heads().shape == (5, 4, 10) and torch.equal(o3.all_heads()[:, 2:], o3.experts)
    assert torch.allclose(o3.experts[:, 1], F.linear(o3.embedding, three.experts.weight[10:], three.experts.bias[10:]))
    # each expert block is initialised like g1 (xavier-normal over a [C, D] matrix): similar spread
    ratio = three.experts.weight[10:].std() / three.g1.weight.std()
    assert 0.8 < ratio < 1.25
    assert torch.equal(o2.logits, two(x).logits)


COMPILE_CHECK = """
import torch
from semi.config import ModelConfig
from semi.models import build_model
from semi.models.heads import ModelOutput
for extra, branches in ((0, 0), (1, 0), (1, 3)):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="small_cnn", width=8), 10, 1, extra_heads=extra,
                        bn_branches=branches).eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, backend="aot_eager", dynamic=False)(x)
    assert isinstance(got, ModelOutput)
    assert (got.branch_logits is None) == (branches == 0)
    for a, b in zip(got, want, strict=True):
        assert (a is None and b is None) or (a.shape == b.shape and torch.allclose(a, b, atol=1e-5))
print("ok")
"""


def test_extra_heads_survive_torch_compile():
    """In a child process: after torch.compile has run here, fork-based DDP tests (test_distributed) could no
    longer fork a process that has run autograd."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", COMPILE_CHECK], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_cpe_checkpoint_predicts_and_exports_with_its_extra_head(tiny_config, tmp_path):
    import semi
    from semi.engine.trainer import Trainer

    cfg = tiny_config(**{"algorithm.name": "cpe", "train.epochs": 1, "train.eval_every": 4})
    Trainer(cfg).fit()
    ckpt = Path(cfg.train.out_dir) / "checkpoints" / "latest.pt"
    from semi.data.prepare import prepare_data

    data = prepare_data(cfg)
    images, labels = data.test_images, data.test_labels
    preds = semi.predict(ckpt, images)
    ev = semi.evaluate(ckpt)
    assert preds.head == ev["head_used"] == "balanced"  # the uniform expert, as the authors evaluate
    assert 100.0 * float((preds.classes == labels).mean()) == pytest.approx(ev["top1"], abs=1e-9)
    from semi.inference import export_model, load_model

    path = tmp_path / "cpe.pt2"
    export_model(load_model(ckpt), path)
    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        probs = module(torch.from_numpy(images[:9])).numpy()
    np.testing.assert_allclose(probs, preds.probabilities[:9], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["abc+semi", "cpe+semi"])
def test_resume_gives_bit_identical_state(exact_resume, name):
    """12 steps straight vs. resuming the straight run's step-6 checkpoint into a new run for 6 more (ABC's
    Bernoulli masks come from (seed, step): the resumed run draws the same)."""
    straight, _ = exact_resume(name)
    assert any(k.startswith("experts") for k in straight.model.state_dict()) == name.startswith("cpe")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
@pytest.mark.parametrize("name", ["abc+semi", "cpe+semi"])
def test_two_ranks_train_every_head_and_agree(tmp_path, name):
    """DDP without the unused-parameter search (both bases train g2, CPE its extra head too): it would raise if a
    head took no gradient. Both ranks end with identical weights (ABC's masks differ per rank; gradients are
    averaged)."""
    from test_distributed import _overrides, _run_ddp

    rank0, rank1 = _run_ddp(_overrides(tmp_path, name, "ddp"), tmp_path / "state")
    assert rank0.keys() == rank1.keys()
    assert any(".experts." in k for k in rank0) == name.startswith("cpe")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


# ----------------------------------------------------------------------------------------------- classwise BN


def authors_cbn_logits(fmap, bnh, bnm, bnt, classifier):
    """A transcription of the authors' WideResNetCBN.forward after `extract` (semilearn/nets/wrn/wrn_cbn.py) with
    one of CBNNet's classifiers: three BN branches, pooled, one classifier, chunked, averaged."""
    head_fs, medium_fs, tail_fs = bnh(fmap), bnm(fmap), bnt(fmap)
    fs = torch.cat((head_fs, medium_fs, tail_fs), dim=0)
    out = torch.nn.AdaptiveAvgPool2d((1, 1))(fs).view(fs.size(0), -1)
    output = classifier(out)
    logits_h, logits_m, logits_t = output.chunk(3)
    return logits_h, logits_m, logits_t, (logits_h + logits_m + logits_t) / 3


def authors_cpe_unsup_loss(probs_w, logits_s_h, logits_s_m, logits_s_t, p_cutoff, cut1, cut2, num_classes):
    """A transcription of one expert's unlabeled loss in the authors' CPE.train_step (semilearn/imb_algorithms/
    cpe/cpe.py): hard labels, the mask, the branch indicators, the sum over branches over their count."""
    mask1 = probs_w.amax(dim=-1).ge(p_cutoff)
    pseudo_label1 = probs_w.argmax(dim=-1)
    pseudo_label1h = F.one_hot(pseudo_label1, num_classes).sum(dim=1) * mask1.float()
    pseudo_label1m = F.one_hot(pseudo_label1, num_classes)[:, cut1:].sum(dim=1) * mask1.float()
    pseudo_label1t = F.one_hot(pseudo_label1, num_classes)[:, cut2:].sum(dim=1) * mask1.float()
    loss = (F.cross_entropy(logits_s_h, pseudo_label1, reduction="none") * pseudo_label1h).sum()
    loss += (F.cross_entropy(logits_s_m, pseudo_label1, reduction="none") * pseudo_label1m).sum()
    loss += (F.cross_entropy(logits_s_t, pseudo_label1, reduction="none") * pseudo_label1t).sum()
    return loss / (pseudo_label1h.sum() + pseudo_label1m.sum() + pseudo_label1t.sum() + 1e-12)


def test_classwise_bn_model_matches_the_authors_forward():
    from semi.config import ModelConfig
    from semi.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="wrn28_2"), 10, 3, extra_heads=1, bn_branches=3).train()
    x = torch.randn(6, 3, 16, 16)
    out = model(x)
    fmap = model.backbone.feature_map(x)
    for head, ours in ((model.g1, out.logits), (model.g2, out.logits_balanced)):
        h, m, t, mean = authors_cbn_logits(fmap, *model.branches, head)
        torch.testing.assert_close(ours, mean)
        k = 0 if head is model.g1 else 1
        for b, branch in enumerate((h, m, t)):
            torch.testing.assert_close(out.branch_logits[:, b, k], branch)
    assert out.branch_logits.shape == (6, 3, 3, 10) and out.experts.shape == (6, 1, 10)
    assert out.embedding.shape == (6, 128)


def test_classwise_bn_unlabeled_loss_matches_the_authors():
    from semi.algorithms.cpe.method import branch_membership, expert_unlabeled_loss

    g = torch.Generator().manual_seed(1)
    n, c, cut1, cut2 = 32, 10, 3, 6
    probs = torch.softmax(3 * torch.randn(n, c, generator=g), dim=1)
    strong = torch.randn(n, 3, c, generator=g)
    theirs = authors_cpe_unsup_loss(probs, strong[:, 0], strong[:, 1], strong[:, 2], 0.7, cut1, cut2, c)
    conf, target = probs.max(dim=1)
    mask = (conf >= 0.7).float()
    assert 0 < mask.sum() < n
    ours = expert_unlabeled_loss((strong,), target, mask[:, None] * branch_membership(target, cut1, cut2))
    torch.testing.assert_close(ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpe", "cpe+semi"])
def test_classwise_bn_cpe_resumes_bit_identically(exact_resume, name):
    # a low threshold: the branches differ only through the unlabeled loss (the labeled one reads their mean)
    straight, keys = exact_resume(name, **{"cpe.classwise_bn": True, "algorithm.threshold": 0.3})
    assert "model.branches.2.running_mean" in keys
    assert not torch.equal(straight.model.branches[0].weight, straight.model.branches[2].weight)
