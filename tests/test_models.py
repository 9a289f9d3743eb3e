"""Backbones + two heads: shapes, embedding sizes, parameter counts, gradient flow, determinism, channels_last."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import semi.models as models
from semi.config import ModelConfig
from semi.errors import SemiError
from semi.models import DualHeadClassifier, ModelOutput, build_model, model_names, register_model

NUM_CLASSES = 7  # differs from every embed_dim and channel count, so a transposed shape cannot pass
NAMES = ["small_cnn", "wrn28_2", "wrn28_8", "resnet50"]
EMBED_DIM = {"small_cnn": 128, "wrn28_2": 128, "wrn28_8": 512, "resnet50": 2048}
WRN28_2_PARAMS = 1_468_900
"""Two heads, 10 classes: FixMatch's single-head WRN-28-2 (1,467,610) plus a second Linear(128, 10) (1,290)."""
WRN28_8_PARAMS = 23_359_972  # two heads, 10 classes


def _cases() -> list[tuple[str, int, int]]:
    """(name, channels, size): every model at 1 and 3 channels; 16 and 32 px except ResNet-50 (32 only, slow)."""
    return [(n, c, s) for n in NAMES for c in (1, 3) for s in (16, 32) if not (n == "resnet50" and s != 32)]


def _assert_close_scaled(got: torch.Tensor, want: torch.Tensor, tol: float = 1e-5) -> None:
    """|got - want| <= tol * max|want|: kernels may sum in another order, and a randomly initialised deep net in
    eval mode (running stats still 0/1) has activations of order 10-30, so a bare 1e-5 would test rounding."""
    if got is None or want is None:  # `branch_logits` of a model without BatchNorm branches
        assert got is None and want is None
        return
    assert got.shape == want.shape
    if want.numel() == 0:  # the empty `experts` of a model without extra heads
        return
    assert (got - want).abs().max() <= tol * want.abs().max().clamp_min(1.0)


def _build(name: str, in_channels: int = 3, num_classes: int = NUM_CLASSES, **kw) -> DualHeadClassifier:
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, **kw), num_classes, in_channels)


@pytest.mark.parametrize("name,channels,size", _cases())
def test_output_shapes(name: str, channels: int, size: int) -> None:
    model = _build(name, channels).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert isinstance(out, ModelOutput)
    assert out.embedding.shape == (2, EMBED_DIM[name])
    assert out.logits.shape == out.logits_balanced.shape == (2, NUM_CLASSES)
    assert out.branch_logits is None and all(torch.isfinite(t).all() for t in out if t is not None)


@pytest.mark.parametrize("name", NAMES)
def test_embed_dim(name: str) -> None:
    model = _build(name)
    assert model.embed_dim == EMBED_DIM[name]
    assert model.g1.in_features == model.g2.in_features == EMBED_DIM[name]
    assert model.g1.out_features == model.g2.out_features == NUM_CLASSES


@pytest.mark.parametrize("width", [8, 16, 32])
def test_small_cnn_embedding_is_four_widths(width: int) -> None:
    model = _build("small_cnn", 1, width=width)
    assert model.embed_dim == 4 * width
    assert model(torch.randn(2, 1, 16, 16)).embedding.shape == (2, 4 * width)


@pytest.mark.parametrize("size", [8, 9, 11, 28, 33])
def test_small_cnn_any_size_from_8(size: int) -> None:
    out = _build("small_cnn", 1, width=8).eval()(torch.randn(2, 1, size, size))
    assert out.logits.shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", NAMES)
def test_heads_are_distinct(name: str) -> None:
    model = _build(name)
    assert isinstance(model.g1, nn.Linear) and isinstance(model.g2, nn.Linear)
    assert model.g1.weight.data_ptr() != model.g2.weight.data_ptr()
    assert model.g1.bias.data_ptr() != model.g2.bias.data_ptr()
    assert not torch.equal(model.g1.weight, model.g2.weight)  # independently initialised
    assert torch.count_nonzero(model.g1.bias) == torch.count_nonzero(model.g2.bias) == 0
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids))
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 16, 16))
    assert not torch.allclose(out.logits, out.logits_balanced)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_backbone_and_both_heads(name: str) -> None:
    size = 16  # the smallest shape-tested size; the code path is the same at 32 px
    model = _build(name).train()
    out = model(torch.randn(2, 3, size, size))
    (out.logits.square().mean() + out.logits_balanced.square().mean()).backward()
    for head in (model.g1, model.g2):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    missing = [n for n, p in model.backbone.named_parameters() if p.grad is None]
    assert not missing, f"backbone parameters without gradient (DDP would fail on them): {missing[:5]}"
    first = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first.grad.abs().sum() > 0


def test_standard_head_loss_leaves_balanced_head_without_gradient() -> None:
    model = _build("small_cnn", 1, width=8)
    model(torch.randn(4, 1, 16, 16)).logits.sum().backward()
    assert model.g1.weight.grad is not None and model.g2.weight.grad is None


def test_wrn28_2_parameter_count() -> None:
    model = _build("wrn28_2", 3, num_classes=10)
    total = sum(p.numel() for p in model.parameters())
    assert total == WRN28_2_PARAMS
    single_head = total - sum(p.numel() for p in model.g2.parameters())
    assert single_head == 1_467_610  # FixMatch's WRN-28-2, 10 classes
    assert abs(total - 1_467_610) / 1_467_610 < 0.01


def test_wrn28_8_parameter_count() -> None:
    assert sum(p.numel() for p in _build("wrn28_8", 3, num_classes=10).parameters()) == WRN28_8_PARAMS


def test_wrn_follows_fixmatch() -> None:
    model = _build("wrn28_2", bn_momentum=0.001)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 25 and all(m.momentum == 0.001 for m in bns)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 28 and all(m.bias is None for m in convs)  # 1 stem + 24 block convs + 3 shortcuts
    assert _build("wrn28_2", bn_momentum=0.01).backbone.bn.momentum == 0.01


def test_resnet50_small_input_stem() -> None:
    net = _build("resnet50", 1).backbone.net
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.in_channels == 1
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic(name: str) -> None:
    size = 16  # the smallest shape-tested size; the code path is the same at 32 px
    model = _build(name, dropout=0.3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[:1])
    for ta, tb in zip(a, b, strict=True):
        assert (ta is None and tb is None) or torch.equal(ta, tb)
    _assert_close_scaled(single.logits, a.logits[:1])  # no coupling between samples in eval mode


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_same_output(name: str) -> None:
    size = 16  # the smallest shape-tested size; the code path is the same at 32 px
    model = _build(name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        input_only = model(x.contiguous(memory_format=torch.channels_last))
        both = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    for out in (input_only, both):
        for got, want in zip(out, ref, strict=True):
            _assert_close_scaled(got, want)


@pytest.mark.parametrize("name", ["small_cnn", "wrn28_2"])
def test_dropout_only_in_training(name: str) -> None:
    model = _build(name, 1, dropout=0.5).train()
    x = torch.randn(4, 1, 16, 16)
    a, b = model(x), model(x)
    assert not torch.equal(a.logits, b.logits)
    if name == "small_cnn":  # head dropout: the embedding the algorithms store is not perturbed
        torch.testing.assert_close(a.embedding, b.embedding)


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(SemiError) as err:
        build_model(ModelConfig(name="vgg16"), 10, 3)  # type: ignore[arg-type]
    assert "vgg16" in str(err.value)
    for name in NAMES:
        assert name in str(err.value)


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    class Tiny(nn.Module):
        embed_dim = 5

        def __init__(self, c: int):
            super().__init__()
            self.lin = nn.Linear(c, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.mean((2, 3)))

    @register_model("tiny")
    def _tiny(cfg: ModelConfig, in_channels: int) -> nn.Module:
        return Tiny(in_channels)

    assert "tiny" in model_names() and set(NAMES) <= set(model_names())
    out = build_model(ModelConfig(name="tiny"), 3, 2)(torch.randn(4, 2, 8, 8))  # type: ignore[arg-type]
    assert out.embedding.shape == (4, 5) and out.logits.shape == (4, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(_tiny)
