"""Recipes: `algorithm.recipe=authors` sets each method's released recipe for the data set's family over the config
file (the command line still wins), `semi config show` and results.json say what it set and from where; the
recipe's own knobs (Adam, weight decay in the EMA step, the labeled images outside the pool) do what they say."""

from __future__ import annotations

import json
import re

import pytest
import torch

from semi import specs
from semi.config import get_value, load_config, recipe_record
from semi.config_docs import show_config

FAMILY_DATA = {"cifar10": "cifar10", "cifar100": "cifar100", "stl10": "stl10", "svhn": "svhn", "default": "digits"}
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+(@[0-9a-f]{7})? \S+:\d+(-\d+)?(,\d+(-\d+)?)*( \(.+\))?$")

# The values that define each released recipe (a change here must be deliberate: it changes what
# `algorithm.recipe=authors` runs). (method, family) -> {key: value}.
PINNED = {
    ("daso", "cifar10"): {"train.mu": 2, "optim.schedule": "constant", "daso.dist_temperature": 1.5,
                          "data.labeled_in_pool": False},
    ("daso", "cifar100"): {"daso.dist_temperature": 0.3}, ("daso", "stl10"): {"daso.dist_temperature": 0.3},
    ("simpro", "cifar10"): {"train.mu": 8, "optim.lr": 0.17, "algorithm.threshold": 0.95, "simpro.tau": 2.0,
                            "data.labeled_in_pool": False},
    ("simpro", "cifar100"): {"train.mu": 8, "algorithm.threshold": 0.2, "simpro.tau": 1.0},
    ("simpro", "stl10"): {"train.mu": 16},
    ("cpe", "cifar10"): {"train.mu": 2, "optim.schedule": "constant", "cpe.medium_from": 0.2, "cpe.tail_from": 0.4,
                         "data.labeled_in_pool": False},
    ("cpe", "cifar100"): {"cpe.medium_from": 0.35, "cpe.tail_from": 0.7},
    ("cpe", "stl10"): {"data.labeled_in_pool": True},
    ("darp", "cifar10"): {"train.mu": 1, "optim.name": "adam", "optim.lr": 0.002, "optim.weight_decay": 4e-5,
                          "optim.weight_decay_mode": "ema_step", "optim.schedule": "constant", "darp.solve_every": 10,
                          "darp.iterations": 10, "darp.tolerance": 0.1, "data.labeled_in_pool": True},
    ("darp", "cifar100"): {"darp.solve_every": 100, "darp.iterations": 20, "darp.tolerance": 0.3},
    ("darp", "stl10"): {"darp.solve_every": 100, "darp.iterations": 20, "darp.tolerance": 0.3},
    ("abc", "cifar10"): {"optim.name": "adam", "optim.lr": 0.002, "optim.weight_decay_mode": "ema_step",
                         "data.labeled_in_pool": False},
    ("abc", "cifar100"): {"data.labeled_in_pool": True}, ("abc", "svhn"): {"data.labeled_in_pool": False},
    ("acr", "cifar10"): {"train.mu": 1, "optim.schedule": "cosine", "algorithm.est_momentum": 0.99,
                         "algorithm.est_epoch": 5, "data.labeled_in_pool": True},
    ("acr", "cifar100"): {"algorithm.est_momentum": 0.9}, ("acr", "stl10"): {"data.labeled_in_pool": False},
    ("fixmatch", "default"): {"train.mu": 7, "optim.weight_decay": 5e-4},
    ("fixmatch", "cifar100"): {"optim.weight_decay": 1e-3},
    ("remixmatch", "default"): {"train.mu": 1, "optim.name": "adam", "optim.lr": 0.002, "optim.weight_decay": 4e-5,
                                "optim.weight_decay_mode": "ema_step", "optim.schedule": "constant",
                                "remixmatch.match_weight": 1.5, "remixmatch.kl_weight": 0.5,
                                "remixmatch.rotation_weight": 0.5, "remixmatch.alignment_batches": 128},
}


def _recipes():
    return [(s.name, family, key, setting) for s in specs.all_specs() for family, table in s.recipes.items()
            for key, setting in table.items()]


@pytest.mark.parametrize("method, family", sorted({(m, f) for m, f, _, _ in _recipes()}))
def test_every_recipe_value_is_a_config_key_that_lands_with_its_source(method, family):
    data = FAMILY_DATA[family]
    cfg = load_config(None, [f"algorithm.name={method}", "algorithm.recipe=authors", f"data.name={data}",
                             "data.val_per_class=1"])
    table = specs.spec(method).recipes[family]
    for key, setting in table.items():
        assert get_value(cfg, key) == setting.value, key
        assert SOURCE.match(setting.source), setting.source
    for key, value in PINNED.get((method, family), {}).items():
        assert table[key].value == value, (method, family, key)


def test_every_pinned_entry_exists():
    for (method, family), values in PINNED.items():
        assert set(values) <= set(specs.spec(method).recipes[family]), (method, family)


def test_the_recipe_wins_over_the_file_and_the_command_line_over_the_recipe(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  mu: 1\noptim:\n  lr: 0.5\n")
    cfg = load_config(tmp_path / "c.yaml", ["algorithm.name=daso", "algorithm.recipe=authors", "optim.lr=0.01"])
    assert cfg.train.mu == 2 and cfg.optim.lr == 0.01 and cfg.optim.schedule == "constant"
    record = recipe_record(cfg)
    assert record["settings"]["train.mu"]["used"] and not record["settings"]["optim.lr"]["used"]
    shared = load_config(tmp_path / "c.yaml", ["algorithm.name=daso"])
    assert shared.train.mu == 1 and shared.optim.schedule == "cosine" and recipe_record(shared) == {
        "name": "shared", "family": "default"}


def test_config_show_lists_the_recipe_with_sources():
    text = show_config(load_config(None, ["algorithm.name=darp", "algorithm.recipe=authors", "data.name=cifar100",
                                          "darp.iterations=5"]))
    assert "# recipe: authors, data-set family cifar100" in text
    assert "darp.solve_every = 100  <- bbuing9/DARP@64a94b4 run.sh:20 (--num_iter 100)" in text
    assert "darp.iterations = 20 (overridden: 5)" in text
    assert "# recipe: authors" in show_config(load_config(None, ["algorithm.name=semi", "algorithm.recipe=authors"]))


def test_weight_decay_in_the_ema_step_scales_the_model_after_the_average():
    from semi.engine.ema import EMA

    model = torch.nn.Linear(3, 2)
    ema = EMA(model, 0.5, warmup=False, model_decay=0.1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(2.0)
        ema.module.weight.fill_(0.0)
        ema.module.bias.fill_(0.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, torch.full((2, 3), 0.5)) and torch.allclose(ema.module.bias,
                                                                                          torch.full((2,), 1.0))
    assert torch.allclose(model.weight, torch.full((2, 3), 0.9)) and torch.allclose(model.bias, torch.full((2,), 1.8))


def test_ema_step_decay_takes_the_decay_out_of_the_optimiser():
    from semi.config import OptimConfig
    from semi.engine.optim import build_optimizer

    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, OptimConfig(name="adam", lr=0.002, weight_decay=4e-5, weight_decay_mode="ema_step"))
    assert isinstance(opt, torch.optim.Adam) and all(g["weight_decay"] == 0.0 for g in opt.param_groups)


def test_labeled_images_can_stay_out_of_the_unlabeled_pool():
    from semi.data.prepare import prepare_data

    inside = prepare_data(load_config(None, []))
    outside = prepare_data(load_config(None, ["data.labeled_in_pool=false"]))
    assert set(inside.split.labeled) <= set(inside.split.unlabeled)
    assert not set(outside.split.labeled) & set(outside.split.unlabeled)
    assert len(outside.split.unlabeled) == len(inside.split.unlabeled) - len(inside.split.labeled)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fixmatch", "acr", "daso", "abc", "cpe", "darp", "simpro", "remixmatch"])
def test_each_method_trains_on_digits_under_its_authors_recipe(method, tmp_path):
    from semi.engine.trainer import Trainer

    cfg = load_config(None, [f"algorithm.name={method}", "algorithm.recipe=authors", "train.epochs=1",
                             "train.steps_per_epoch=3", "train.eval_every=3", "train.batch_size=8", "model.width=8",
                             "train.progress=false", "train.tensorboard=false", f"train.out_dir={tmp_path / 'r'}",
                             "daso.pretrain_epochs=0"])
    Trainer(cfg).fit()
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["recipe"]["name"] == "authors" and results["recipe"]["family"] == "default"
    assert results["recipe"]["settings"] == recipe_record(cfg)["settings"] and results["recipe"]["settings"]


def test_layer_decay_counts_block_stacks_and_puts_a_trunks_own_parameters_at_the_input():
    from semi.engine.optim import backbone_layers, layer_scales

    class Trunk(torch.nn.Module):  # a ViT-like trunk: its own position embedding, a stack of blocks, a norm
        def __init__(self):
            super().__init__()
            self.pos = torch.nn.Parameter(torch.zeros(1, 4))
            self.embed = torch.nn.Linear(4, 4)
            self.blocks = torch.nn.Sequential(*(torch.nn.Linear(4, 4) for _ in range(3)))
            self.norm = torch.nn.LayerNorm(4)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(Trunk())  # a single-child wrapper, looked through
            self.g1 = torch.nn.Linear(4, 2)

    model = Model()
    trunk = model.backbone[0]
    assert backbone_layers(model.backbone) == [trunk.embed, *trunk.blocks, trunk.norm]
    s = layer_scales(model, 0.5)
    assert s[id(model.g1.weight)] == 1.0 and s[id(trunk.norm.weight)] == 0.5
    assert [s[id(b.weight)] for b in trunk.blocks] == [0.5 ** 4, 0.5 ** 3, 0.5 ** 2]
    assert s[id(trunk.embed.weight)] == 0.5 ** 5 and s[id(trunk.pos)] == 0.5 ** 6


def test_a_run_evaluates_and_resumes_after_its_input_files_are_gone(tmp_path):
    """model.pretrained and darp.target_file are checked for a new run only: the checkpoint holds what they gave."""
    from semi import api
    from semi.errors import ConfigError

    tiny = ["train.epochs=1", "train.steps_per_epoch=2", "train.eval_every=2", "train.batch_size=8", "model.width=8",
            "train.progress=false", "train.tensorboard=false"]
    api.train(api.load_config(None, [*tiny, "algorithm.name=fixmatch", f"train.out_dir={tmp_path / 'a'}"]))
    weights = tmp_path / "w.pt"
    (tmp_path / "a" / "checkpoints" / "latest.pt").rename(weights)
    np_file = tmp_path / "t.txt"
    np_file.write_text(" ".join(["1"] * 10))
    cfg = api.load_config(None, [*tiny, "algorithm.name=darp", "darp.target=given", f"darp.target_file={np_file}",
                                 f"model.pretrained={weights}", f"train.out_dir={tmp_path / 'b'}"])
    api.train(cfg)
    weights.unlink()
    np_file.unlink()
    assert api.evaluate(tmp_path / "b" / "checkpoints" / "latest.pt")["top1"] >= 0
    with pytest.raises(ConfigError, match="model.pretrained: .* is not a file"):
        api.load_config(None, [*tiny, f"model.pretrained={weights}"])
    with pytest.raises(ConfigError, match="darp.target_file: .* is not a file"):
        api.load_config(None, [*tiny, "algorithm.name=darp", "darp.target=given", f"darp.target_file={np_file}"])
