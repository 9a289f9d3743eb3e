"""CDMAD (`+cdmad`): the probe, the debiased pseudo-labels and the test-time correction, each against a
transcription of the authors' released code (LeeHyuck/CDMAD, fixmatchcdmad.py: train() and validate()), on
hand-made models; the warm-up, the paper's hard-label option, composition with SeMi, exact resume."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semi.algorithms.base import StepInfo
from semi.algorithms.cdmad import CdmadConfig
from semi.algorithms.cdmad.method import DebiasedModel, debiased_model, probe
from semi.algorithms.registry import build_algorithm
from semi.config import load_config
from semi.models.heads import ModelOutput

C = 4


class TinyNet(nn.Module):
    """conv -> BatchNorm -> mean pool -> two linear heads; the authors' model returns (logits, features)."""

    def __init__(self, bn: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3, momentum=0.3) if bn else nn.Identity()
        self.g1, self.g2 = nn.Linear(3, C), nn.Linear(3, C)
        self.embed_dim = 3

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return ModelOutput(h, self.g1(h), self.g2(h), h.new_zeros(len(h), 0, C))


# ------------------------------------------------------------------- transcriptions of the authors' code


def authors_probe(model, shape):
    """train(): white = torch.ones((1, 3, 32, 32)); biaseddegree, _ = model(white) (in model.train(), no_grad)."""
    with torch.no_grad():
        white = torch.ones((1, *shape))
        return model(white).logits


def authors_targets_and_loss(logits_weak, bias, logits_u2, logits_u3, epoch, debiasstart, tau):
    """train(): outputs_u - biaseddegree after debiasstart, softmax targets, mask max_p >= tau, SemiLoss's Lu."""
    outputs_u = logits_weak
    if epoch > debiasstart:
        outputs_u = outputs_u - bias
    targets_u2 = F.softmax(outputs_u, dim=1)
    max_p, _ = torch.max(targets_u2, dim=1)
    select_mask = torch.cat([max_p.ge(tau), max_p.ge(tau)], 0).float()
    logits_u = torch.cat([logits_u2, logits_u3], dim=0)
    targets_u = torch.cat([targets_u2, targets_u2], dim=0)
    lu = -torch.mean(torch.sum(torch.log(F.softmax(logits_u, dim=1) + 1e-8) * targets_u, dim=1) * select_mask)
    return targets_u2, lu


def authors_validate(model, inputs):
    """validate(): model.eval(); biaseddegree = model(ones(1, 3, 32, 32)); outputs2 = outputs - biaseddegree."""
    model.eval()
    with torch.no_grad():
        white = torch.ones(1, *inputs.shape[1:])
        return model(inputs).logits - model(white).logits


# --------------------------------------------------------------------------------------------- the probe


def test_probe_in_train_mode_is_the_authors_and_moves_batch_norm_as_theirs():
    ours, theirs = TinyNet().train(), TinyNet().train()
    like = torch.randn(5, 1, 6, 6)
    out = probe(ours, like, "train")
    expected = authors_probe(theirs, (1, 6, 6))
    torch.testing.assert_close(out.logits, expected)
    # the running statistics moved toward the pattern-less image's, exactly as the authors' call moves them
    torch.testing.assert_close(ours.bn.running_mean, theirs.bn.running_mean)
    torch.testing.assert_close(ours.bn.running_var, theirs.bn.running_var)
    assert not torch.equal(ours.bn.running_mean, torch.zeros(3))
    assert ours.training


def test_probe_batch_stats_leaves_running_statistics_and_eval_uses_them():
    net = TinyNet().train()
    net.bn.running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in net.bn.state_dict().items()}
    like = torch.randn(5, 1, 6, 6)
    train_out = probe(copy.deepcopy(net), like, "train")
    kept = probe(net, like, "batch_stats")
    torch.testing.assert_close(kept.logits, train_out.logits)  # the same batch statistics
    for k, v in net.bn.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing moved, num_batches_tracked included
    ev = probe(net, like, "eval")
    torch.testing.assert_close(ev.logits, copy.deepcopy(net).eval()(torch.ones(1, 1, 6, 6)).logits)
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.bn.state_dict().items())


# ------------------------------------------------------------------------------ the debiased pseudo-labels


def _algorithm(name="fixmatch+cdmad", **extra):
    overrides = [f"algorithm.name={name}", "cdmad.warmup_epochs=2", *[f"{k}={v}" for k, v in extra.items()]]
    return build_algorithm(load_config(None, overrides), C, torch.tensor([0.4, 0.3, 0.2, 0.1]), embed_dim=3)


def _batch(n=6, b=3):
    g = torch.Generator().manual_seed(1)
    return {"x_l": torch.randn(b, 1, 6, 6, generator=g), "y_l": torch.tensor([0, 1, 2]),
            "u_w": torch.randn(n, 1, 6, 6, generator=g), "u_s1": torch.randn(n, 1, 6, 6, generator=g),
            "u_s2": torch.randn(n, 1, 6, 6, generator=g), "u_y": torch.tensor([0, 1, 2, 3, -1, 0])}


@pytest.mark.parametrize("epoch", [1, 3])  # before the warm-up ends (epoch <= 2) and after
def test_fixmatch_cdmad_step_matches_the_authors(epoch):
    """A BatchNorm-free model, so that our single pass over every view equals their separate passes."""
    model = TinyNet(bn=False).train()
    algo = _algorithm()
    batch = _batch()
    info = StepInfo(step=epoch * 10, epoch=epoch, total_steps=100, total_epochs=10)
    res = algo.training_step(model, batch, info)
    with torch.no_grad():
        bias = authors_probe(model, (1, 6, 6))
        weak = model(batch["u_w"]).logits
        s1, s2 = model(batch["u_s1"]).logits, model(batch["u_s2"]).logits
    targets, lu = authors_targets_and_loss(weak, bias, s1, s2, epoch, debiasstart=2, tau=0.0)
    torch.testing.assert_close(res.losses["unsup"], lu, atol=1e-6, rtol=1e-5)  # theirs adds 1e-8 in the log
    assert res.logs["mask_rate"] == 1.0  # tau 0: every image, as the authors' --tau default
    # the pseudo-labels the base formed are the debiased softmax (after the warm-up) or the plain one
    pl = algo.batch_pseudo_labels(algo_weak(model, batch, algo, info), batch, info, {})
    torch.testing.assert_close(pl.probs, targets)


def algo_weak(model, batch, algo, info):
    """The weak view's detached outputs after the components' adjustment, as the step forms them."""
    comp = next(c for c in algo.components if type(c).__name__ == "CDMAD")
    comp.before_forward(model, batch, info, {})
    with torch.no_grad():
        weak = model(batch["u_w"])
    return comp.adjust_weak_logits(weak, None, info, {})


def test_paper_option_hard_labels_at_the_base_threshold():
    model = TinyNet(bn=False).train()
    algo = _algorithm(**{"cdmad.soft_targets": "false", "cdmad.threshold": "null"})
    assert algo.threshold == 0.95
    info = StepInfo(step=30, epoch=3, total_steps=100, total_epochs=10)
    batch = _batch()
    res = algo.training_step(model, batch, info)
    weak = algo_weak(model, batch, algo, info)
    p = torch.softmax(weak.logits, dim=1)
    conf, target = p.max(1)
    mask = (conf >= 0.95).float()
    with torch.no_grad():
        both = torch.cat([model(batch["u_s1"]).logits, model(batch["u_s2"]).logits])
    expected = (F.cross_entropy(both, torch.cat([target, target]), reduction="none").view(2, -1) * mask).mean()
    torch.testing.assert_close(res.losses["unsup"], expected)


def test_with_semi_the_bias_is_removed_before_semi_sees_the_pseudo_labels():
    with pytest.raises(ValueError, match="different mask thresholds"):
        _algorithm("dualhead+semi+cdmad")  # SeMi's 0.7 and CDMAD's 0: refused, not silently one of them
    algo = _algorithm("dualhead+semi+cdmad", **{"cdmad.threshold": "null", "semi.warmup_epochs": 0})
    assert algo.threshold == 0.7 and type(algo.components[-1]).__name__ == "CDMAD"
    model = TinyNet(bn=False).train()
    info = StepInfo(step=30, epoch=3, total_steps=100, total_epochs=10)
    batch = _batch()
    seen = {}
    oheml = next(c for c in algo.components if type(c).__name__ == "OHEMLComponent")
    original = oheml.sample_weights

    def spy(pl, info, logs):
        seen["raw"] = pl.raw_probs.clone()
        return original(pl, info, logs)

    oheml.sample_weights = spy
    algo.training_step(model, batch, info)
    weak = algo_weak(model, batch, algo, info)
    torch.testing.assert_close(seen["raw"], torch.softmax(weak.logits, dim=1))  # SeMi's confidence: debiased


# ---------------------------------------------------------------------------------------------- test time


def test_test_time_correction_is_the_authors_validate():
    model = TinyNet().train()
    for _ in range(3):  # some running statistics
        model(torch.randn(8, 1, 6, 6))
    x = torch.randn(7, 1, 6, 6)
    expected = authors_validate(copy.deepcopy(model), x)
    wrapped = DebiasedModel(model).eval()
    with torch.no_grad():
        out = wrapped(x)
        plain = model(x)
        white = model(torch.ones(1, 1, 6, 6))
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(out.logits_balanced, plain.logits_balanced - white.logits_balanced)
    cfg = load_config(None, ["algorithm.name=fixmatch+cdmad", "cdmad.test_time=false"])
    assert debiased_model(model, cfg) is model


def test_config_checks():
    from semi.errors import ConfigError

    with pytest.raises(ConfigError, match="cdmad.threshold: must be in"):
        load_config(None, ["algorithm.name=fixmatch+cdmad", "cdmad.threshold=2"])
    assert CdmadConfig().threshold == 0.0 and CdmadConfig().soft_targets  # the released code's defaults


@pytest.mark.slow
def test_cdmad_resumes_exactly_and_predicts_debiased(exact_resume, tmp_path):
    straight, keys = exact_resume("fixmatch+cdmad", **{"cdmad.warmup_epochs": 0})
    assert isinstance(straight.eval_model, DebiasedModel)
    from semi.inference import load_model

    loaded = load_model(straight.run_dir / "checkpoints" / "latest.pt", device="cpu")
    assert isinstance(loaded.model, DebiasedModel)
