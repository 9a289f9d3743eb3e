"""Pretrained backbones (model.pretrained, timm models), the fine-tuning optimiser (AdamW, layer-wise decay) and
`semi embed` with encoders whose weights the test saves itself."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_inputs import png, run_cli

from semi.config import OptimConfig, load_config
from semi.engine.optim import backbone_layers, build_optimizer, parameter_groups
from semi.errors import SemiError
from semi.models import build_model
from semi.models.pretrained import load_pretrained

TINY = ["train.epochs=1", "train.steps_per_epoch=4", "train.batch_size=8", "train.eval_every=4",
        "train.progress=false", "train.tensorboard=false", "model.width=8", "algorithm.name=fixmatch"]


def _cfg(tmp_path: Path, *extra: str):
    return load_config(None, [*TINY, f"train.out_dir={tmp_path / 'run'}", *extra])


# ------------------------------------------------------------------------------------------------- loading


def test_a_state_dict_with_prefixes_loads_into_the_backbone_and_ignores_the_classifier(tmp_path):
    cfg = _cfg(tmp_path).model
    source = build_model(cfg, 10, 1)
    state = {f"module.backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    state["fc.weight"] = torch.zeros(3, 3)  # a classifier the backbone does not have
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    target = build_model(cfg, 4, 1)  # another class count: the heads are not loaded
    loaded, ignored = load_pretrained(target.backbone, tmp_path / "w.pt")
    assert (loaded, ignored) == (len(source.backbone.state_dict()), 1)
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(target.backbone.state_dict()[k], v), k


def test_wrong_pretrained_files_are_clear_errors(tmp_path):
    backbone = build_model(_cfg(tmp_path).model, 10, 1).backbone
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(SemiError, match=r"lacks \d+ of the backbone's \d+ tensors"):
        load_pretrained(backbone, tmp_path / "other.pt")
    wide = build_model(_cfg(tmp_path, "model.width=16").model, 10, 1).backbone
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(SemiError, match="tensors of other shapes"):
        load_pretrained(backbone, tmp_path / "wide.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(SemiError, match="cannot read .* as tensors only"):
        load_pretrained(backbone, tmp_path / "junk.pt")


def test_missing_pretrained_file_is_a_config_error(tmp_path, capsys):
    assert run_cli(["train", *TINY, f"model.pretrained={tmp_path / 'none.pt'}"]) != 0
    assert "model.pretrained: " in capsys.readouterr().err


@pytest.mark.slow
def test_a_semi_checkpoint_pretrains_a_run_on_other_classes(tmp_path):
    from semi.engine.trainer import Trainer

    first = Trainer(_cfg(tmp_path / "a"))
    first.fit()
    ckpt = tmp_path / "a" / "run" / "checkpoints" / "latest.pt"
    second = Trainer(_cfg(tmp_path / "b", f"model.pretrained={ckpt}", "data.num_labeled_max=20"))
    for k, v in first.ema.module.backbone.state_dict().items():
        assert torch.equal(second.model.backbone.state_dict()[k], v), k
        assert torch.equal(second.ema.module.backbone.state_dict()[k], v), k  # the EMA starts from them too


# ------------------------------------------------------------------------------------------------- optimiser


def test_layer_decay_scales_the_backbone_layers_from_the_top():
    model = build_model(load_config(None, ["model.name=mlp", "data.name=features", "model.depth=2",
                                           "model.width=8"]).model, 3, 5)
    layers = backbone_layers(model.backbone)
    assert [type(m).__name__ for m in layers] == ["Linear", "BatchNorm1d", "Linear", "BatchNorm1d"]
    groups = parameter_groups(model, 5e-4, layer_decay=0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale_of[id(model.g1.weight)] == scale_of[id(model.g2.bias)] == 1.0
    assert [scale_of[id(m.weight)] for m in layers] == [0.5 ** 4, 0.5 ** 3, 0.5 ** 2, 0.5]
    assert all(g["weight_decay"] == (5e-4 if g["params"][0].ndim > 1 else 0.0) for g in groups)
    opt = build_optimizer(model, OptimConfig(name="adamw", lr=0.1, layer_decay=0.5, weight_decay=0.01))
    assert isinstance(opt, torch.optim.AdamW)
    assert sorted({g["lr"] for g in opt.param_groups}) == [0.1 * 0.5 ** k for k in (4, 3, 2, 1, 0)]


def test_without_layer_decay_the_groups_are_the_two_of_before():
    model = build_model(load_config(None, ["model.width=8"]).model, 3, 1)
    groups = parameter_groups(model, 5e-4)
    assert [(g["weight_decay"], g["lr_scale"]) for g in groups] == [(5e-4, 1.0), (0.0, 1.0)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# ------------------------------------------------------------------------------------------------- timm


@pytest.mark.slow
def test_a_timm_backbone_trains_and_takes_its_pretrained_weights(tmp_path):
    timm = pytest.importorskip("timm")
    from semi.engine.trainer import Trainer

    net = timm.create_model("test_resnet", pretrained=False, num_classes=0, in_chans=1)
    torch.save(net.state_dict(), tmp_path / "timm.pt")
    trainer = Trainer(_cfg(tmp_path, "model.name=timm:test_resnet", f"model.pretrained={tmp_path / 'timm.pt'}",
                           "optim.name=adamw", "optim.lr=0.001", "optim.layer_decay=0.7"))
    assert trainer.model.embed_dim == net.num_features
    for k, v in net.state_dict().items():
        assert torch.equal(trainer.model.backbone.net.state_dict()[k], v), k
    trainer.fit()
    assert (tmp_path / "run" / "results.json").is_file()


def test_an_unknown_timm_model_is_one_error(tmp_path, capsys):
    pytest.importorskip("timm")
    assert run_cli(["train", *TINY, "model.name=timm:no_such_net_xyz", f"train.out_dir={tmp_path / 'r'}"]) != 0
    err = capsys.readouterr().err
    assert "model.name=timm:no_such_net_xyz" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------- embed


def _image_folder(root: Path) -> Path:
    """Two classes of five random 16 px greyscale PNGs (the last of each is held out as the test set)."""
    for k, name in enumerate(("cat", "dog")):
        (root / "imgs" / name).mkdir(parents=True)
        for i in range(5):
            png(seed=10 * k + i)(root / "imgs" / name / f"{i}.png")
    return root / "imgs"


@pytest.mark.slow
def test_embed_with_a_semi_checkpoint_gives_its_embeddings(tmp_path):
    from semi.inference import load_model, read_images, run_model

    assert run_cli(["train", *TINY, f"train.out_dir={tmp_path / 'run'}"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    folder = _image_folder(tmp_path)
    assert run_cli(["embed", str(folder), "--encoder", f"semi:{ckpt}", "-o", str(tmp_path / "f.npz")]) == 0
    z = np.load(tmp_path / "f.npz")
    assert z["x"].shape == (8, 32) and z["x_test"].shape == (2, 32)  # 4 + 4 train, 1 + 1 held out; 4 * width
    assert z["y"].tolist() == [0] * 4 + [1] * 4 and z["class_names"].tolist() == ["cat", "dog"]
    loaded = load_model(ckpt, "cpu")
    files = sorted((folder / "cat").glob("*.png"))[:4]
    np.testing.assert_allclose(z["x"][:4], run_model(loaded, read_images(files, loaded.image_shape, "digits"))[1])
    # and the features file trains
    assert run_cli(["train", *TINY, "data.name=features", f"data.path={tmp_path / 'f.npz'}", "model.name=mlp",
                    "data.num_labeled_max=4", "data.num_unlabeled_max=0", "data.imbalance_labeled=1",
                    f"train.out_dir={tmp_path / 'run2'}"]) == 0


@pytest.mark.slow
def test_embed_with_torchvision_weights_on_disk(tmp_path):
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    net = models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    folder = _image_folder(tmp_path)
    assert run_cli(["embed", str(folder), "--encoder", "torchvision:resnet18", "--weights", str(tmp_path / "r18.pt"),
                    "--image-size", "32", "-o", str(tmp_path / "f.npz")]) == 0
    z = np.load(tmp_path / "f.npz")
    assert z["x"].shape == (8, 512)
    net.fc = torch.nn.Identity()
    from PIL import Image

    img = np.asarray(Image.open(folder / "cat" / "0.png").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    x = torch.from_numpy(img / 255).view(1, 1, 32, 32).expand(1, 3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        np.testing.assert_allclose(z["x"][0], net.eval()(x)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_embed_text_with_a_local_sentence_transformer(tmp_path, monkeypatch):
    calls = {}

    class FakeModel:  # stands in for sentence_transformers.SentenceTransformer (the text extra)
        def __init__(self, path, device):
            calls["path"], calls["device"] = path, device

        def encode(self, texts, batch_size, convert_to_numpy):
            return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float64)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel))
    (tmp_path / "model").mkdir()
    (tmp_path / "t.txt").write_text("pos\ta banana\nneg\tno\n\npos\tcat\n")
    assert run_cli(["embed", str(tmp_path / "t.txt"), "--encoder", f"sentence-transformers:{tmp_path / 'model'}",
                    "-o", str(tmp_path / "f.npz")]) == 0
    z = np.load(tmp_path / "f.npz")
    assert z["x"].tolist() == [[8, 4], [2, 0], [3, 1]] and z["y"].tolist() == ["pos", "neg", "pos"]
    assert calls == {"path": str(tmp_path / "model"), "device": "cpu"}
    (tmp_path / "u.txt").write_text("just text\nmore text\n")
    assert run_cli(["embed", str(tmp_path / "u.txt"), "--encoder", f"sentence-transformers:{tmp_path / 'model'}",
                    "-o", str(tmp_path / "u.npz")]) == 0
    assert set(np.load(tmp_path / "u.npz").files) == {"x"}


@pytest.mark.parametrize("argv, expect", [
    (["{tmp}/nope", "--encoder", "torchvision:resnet18", "--weights", "{tmp}/w.pt"], "does not exist"),
    (["{tmp}/imgs", "--encoder", "clip:vit"], "expected one of semi:..., torchvision:..."),
    (["{tmp}/imgs", "--encoder", "torchvision:resnet18"], "needs --weights FILE"),
    (["{tmp}/imgs", "--encoder", "torchvision:resnet18", "--weights", "{tmp}/none.pt"], "is not a file"),
    (["{tmp}/imgs", "--encoder", "torchvision:resnet18", "--weights", "{tmp}/w.pt"], "not the weights of"),
    (["{tmp}/t.txt", "--encoder", "sentence-transformers:{tmp}"], "needs sentence_transformers"),
    (["{tmp}/mixed.txt", "--encoder", "sentence-transformers:{tmp}"], "line 2 differs from line 1"),
])
def test_embed_errors_are_one_line(argv, expect, tmp_path, capsys, monkeypatch):
    pytest.importorskip("torchvision")
    if "mixed" in argv[0]:
        monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=None))
    else:
        monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # the text extra absent
    _image_folder(tmp_path)
    torch.save({"x": torch.zeros(1)}, tmp_path / "w.pt")
    (tmp_path / "t.txt").write_text("a\tb\n")
    (tmp_path / "mixed.txt").write_text("a\tb\nno tab\n")
    capsys.readouterr()
    code = run_cli(["embed", *(a.format(tmp=tmp_path) for a in argv), "-o", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code != 0 and expect.format(tmp=tmp_path) in err and "Traceback" not in err, err
    assert not (tmp_path / "o.npz").exists()
