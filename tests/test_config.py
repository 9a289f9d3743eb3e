"""The typed config tree: YAML, extends, dotted overrides, and every problem reported at once."""

import pytest

from semi.config import load_config, parse_overrides
from semi.errors import ConfigError


def test_defaults_and_overrides_win(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  seed: 3\n  batch_size: 16\nalgorithm:\n  name: acr\n")
    cfg = load_config(f, ["train.seed=7", "optim.lr=0.1", "data.image_size=null"])
    assert cfg.train.seed == 7 and cfg.train.batch_size == 16
    assert cfg.algorithm.name == "acr" and cfg.optim.lr == 0.1 and cfg.data.image_size is None
    assert isinstance(cfg.optim.lr, float)


def test_extends_chain(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 9\n  seed: 1\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  seed: 2\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.train.epochs, cfg.train.seed) == (9, 2)


def test_every_problem_is_reported_with_its_key():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.sed=1", "train.batch_size=abc", "data.unlabeled_distribution=skewed",
                           "data.imbalance_labeled=0.5", "algorithm.name=mixmatch"])
    msg = str(err.value)
    assert "5 problem(s)" in msg
    assert "train.sed: unknown key" in msg and "seed" in msg
    assert "train.batch_size: expected int, got 'abc'" in msg
    assert "data.unlabeled_distribution: 'skewed' is not allowed; allowed values: consistent, uniform, reversed" in msg
    assert "data.imbalance_labeled: gamma_l must be >= 1" in msg
    assert "algorithm.name: 'mixmatch' is not allowed; allowed values:" in msg and "fixmatch+semi" in msg


def test_bool_is_not_an_int_and_sections_need_mappings():
    with pytest.raises(ConfigError, match="train.epochs: expected int, got True"):
        load_config(None, ["train.epochs=true"])
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(None, ["train=3"])


def test_prototypes_need_the_bank():
    with pytest.raises(ConfigError, match="semi.prototypes: needs semi.memory_bank=true"):
        load_config(None, ["semi.memory_bank=false"])
    cfg = load_config(None, ["semi.memory_bank=false", "semi.prototypes=false"])
    assert not cfg.semi.memory_bank


def test_override_syntax():
    nested, problems = parse_overrides(["a.b=1", "broken"])
    assert nested == {"a": {"b": 1}} and "expected key=value" in problems[0]


def test_shipped_configs_all_load():
    from semi.cli import CONFIG_DIR

    names = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(names) >= 12
    for path in names:
        load_config(path)


def test_shipped_paper_configs_follow_the_spec_skeleton():
    """Spec section 2: SeMi at paper scale trains with B = 64, mu = 1, lr 0.03, weight decay 5e-4, 500 x 500
    steps; CIFAR-100 uses the bank K = 512 and decay every 200 steps."""
    from semi.cli import CONFIG_DIR

    for name in ("cifar10_lt", "cifar100_lt", "stl10_lt", "imagenet127_32", "imagenet127_64"):
        cfg = load_config(CONFIG_DIR / f"{name}.yaml")
        assert cfg.algorithm.name == "semi", name
        assert (cfg.train.batch_size, cfg.train.mu, cfg.train.epochs, cfg.train.steps_per_epoch) == (64, 1, 500, 500)
        assert (cfg.optim.lr, cfg.optim.weight_decay) == (0.03, 5e-4), name
    c100 = load_config(CONFIG_DIR / "cifar100_lt.yaml")
    assert (c100.semi.bank_size, c100.semi.decay_every) == (512, 200)
