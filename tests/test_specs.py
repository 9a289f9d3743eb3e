"""Method specs: one place per method. Names parse from the specs, capabilities come from them, the layers import
downward only, and a new base and a new component each written in one module train with '+' composition."""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from semi import specs

REPO = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"


def test_every_built_in_spec_loads_and_its_class_carries_it():
    bases = [s for s in specs.all_specs() if s.kind == "base"]
    assert {s.name for s in bases} == {"supervised", "oracle", "fixmatch", "dualhead", "acr", "daso", "abc", "cpe",
                                       "darp", "simpro", "remixmatch"}
    for s in bases:
        assert s.load().spec is s, s.name
    for s in specs.all_specs():
        if s.kind == "component":
            assert callable(s.load())
    # every package under semi/algorithms declares at least one spec (USB's failure mode: one left out of a list)
    packages = {p.parent.name for p in (REPO / "semi" / "algorithms").glob("*/__init__.py")}
    declared = {s.implementation.split(".")[2] for s in specs.all_specs() if isinstance(s.implementation, str)}
    assert packages == declared


def test_capabilities_come_from_the_spec():
    from semi.algorithms.cpe import CPE
    from semi.algorithms.supervised import Oracle

    assert specs.spec("cpe").extra_heads == 1 and CPE.spec.eval_head == "balanced"
    assert not Oracle.spec.uses_unlabeled and Oracle.spec.trains_on_true_labels
    assert specs.base_spec("semi").name == "dualhead" and specs.base_spec("acr+semi").eval_head == "balanced"


@pytest.mark.parametrize("name, base, comps", [
    ("semi", "dualhead", ["semi"]), ("fixmatch+semi", "fixmatch", ["semi"]), ("acr", "acr", []),
])
def test_names_parse(name, base, comps):
    b, cs = specs.parse(name)
    assert (b.name, [c.name for c in cs]) == (base, comps)


@pytest.mark.parametrize("name, why", [
    ("mixmatch", "unknown base"), ("fixmatch+bank", "unknown component"), ("supervised+semi", "takes no components"),
    ("fixmatch+semi+semi", "attached twice"), ("semi+fixmatch", "unknown base"),
])
def test_bad_names_are_refused_with_the_allowed_values(name, why):
    with pytest.raises(ValueError) as exc:
        specs.parse(name)
    assert why in str(exc.value) and "allowed values: " in str(exc.value) and "fixmatch+semi" in str(exc.value)


def test_a_spec_cannot_take_a_name_or_section_twice(monkeypatch):
    monkeypatch.setattr(specs, "_SPECS", dict(specs._SPECS))
    with pytest.raises(ValueError, match="registered twice"):
        specs.register(specs.MethodSpec("daso", "base", "x", "m:a"))
    with pytest.raises(ValueError, match="section 'semi'"):
        specs.register(specs.MethodSpec("other", "component", "x", "m:a", section="semi", config=dict))
    with pytest.raises(ValueError, match="already taken"):
        specs.register(specs.MethodSpec("other", "component", "x", "m:a", aliases={"semi": "fixmatch"}))


LOWER_LAYERS = ("algorithms", "data", "models", "evaluation")
UPPER = ("semi.engine", "semi.runs", "semi.api", "semi.cli", "semi.inference")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_lower_layers_never_import_upper_ones():
    files = [p for layer in LOWER_LAYERS for p in (REPO / "semi" / layer).rglob("*.py")]
    files += [REPO / "semi" / f for f in ("config.py", "specs.py", "files.py", "distributed.py", "errors.py")]
    bad = {str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.startswith(UPPER)) for p in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_config_and_specs_load_without_torch():
    code = ("import sys, semi.config, semi.specs\n"
            "cfg = semi.config.load_config(None, ['algorithm.name=daso+semi', 'daso.queue_size=4'])\n"
            "assert cfg.daso.queue_size == 4 and semi.specs.base_spec('cpe').extra_heads == 1\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _method_names() -> set[str]:
    return {s.name for s in specs.all_specs()} | set(specs.aliases())


# The report's module of method-specific figures (ACR's estimate, SeMi's bank and diagnostics) reads those methods'
# config sections by name; when each figure applies comes from the specs.
NAME_STRINGS_ALLOWED_IN = {"semi/evaluation/report/method_figures.py"}
NAME_STRINGS_ALLOWED = {
    ("semi/cli.py", "semi"), ("semi/engine/logging.py", "semi"),  # the package's own name, not the method
    ("semi/evaluation/report/page.py", "semi"),  # the package's version in the environment record
    ("semi/embed.py", "semi"),  # the encoder kind semi:CHECKPOINT (a checkpoint of this package)
    # a benchmark list: the default methods of the per-class sweep figure
    ("semi/evaluation/report/sweep_figures.py", "fixmatch"), ("semi/evaluation/report/sweep_figures.py", "acr"),
    ("semi/evaluation/report/sweep_figures.py", "semi"),
    # the default algorithm, and ACR's option values in the `algorithm` section (kept there so that existing
    # commands such as algorithm.tau1_schedule=acr keep working)
    ("semi/config.py", "fixmatch"), ("semi/config.py", "acr"),
}


def test_no_method_name_string_outside_its_module():
    names = _method_names()
    found = {}
    for path in (REPO / "semi").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("semi/algorithms/") and rel.count("/") >= 3 or rel in NAME_STRINGS_ALLOWED_IN:
            continue  # inside a method's own package
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        hits = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and id(n) not in docstrings and n.value in names and (rel, n.value) not in NAME_STRINGS_ALLOWED]
        if hits:
            found[rel] = hits
    assert found == {}


# --------------------------------------------------------------------------------------------- a new method


@pytest.fixture
def toy_methods(monkeypatch):
    """The two toy modules registered in a copy of the registry (gone after the test)."""
    monkeypatch.setattr(specs, "_SPECS", dict(specs._SPECS))
    for name in ("toy_base", "toy_component"):
        runpy.run_path(str(PLUGINS / f"{name}.py"), run_name=f"toy_{name}")


def test_a_toy_base_and_component_train_with_composition(toy_methods, tiny_config):
    from semi.engine.trainer import Trainer

    assert "toymatch+smooth" in specs.allowed_names()
    trainer = Trainer(tiny_config(**{"algorithm.name": "toymatch+smooth", "toymatch.sharpen": 0.7}))
    trainer.fit()
    assert type(trainer.algorithm).__name__ == "ToyMatch" and trainer.cfg.toymatch.sharpen == 0.7
    assert trainer.algorithm.diagnostics()["smooth_steps"] == trainer.cfg.total_steps
    assert "components.0.steps" in trainer.algorithm.state_dict()
    # the component composes with SeMi's on another base, in the order named
    both = Trainer(tiny_config(**{"algorithm.name": "dualhead+semi+smooth", "train.out_dir": str(
        Path(trainer.run_dir).parent / "both")}))
    assert [type(c).__name__ for c in both.algorithm.components][-1] == "SmoothPseudoLabels"
    assert len(both.algorithm.components) == 5


def test_a_toy_method_resumes_exactly(toy_methods, exact_resume):
    exact_resume("toymatch+smooth")


def test_a_toy_config_error_names_its_key(toy_methods):
    from semi.config import load_config
    from semi.errors import ConfigError

    with pytest.raises(ConfigError, match="toymatch.sharpen: must be > 0"):
        load_config(None, ["algorithm.name=toymatch", "toymatch.sharpen=0"])


@pytest.mark.slow
def test_plugins_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(REPO)]),
           specs.PLUGINS_ENV: "toy_base,toy_component"}
    args = ["algorithm.name=toymatch+smooth", "train.epochs=1", "train.steps_per_epoch=3", "train.eval_every=3",
            "model.width=8", "train.batch_size=8", "train.progress=false", "train.tensorboard=false",
            f"train.out_dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, "-m", "semi", "train", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").is_file()


def test_a_checkpoint_written_before_the_redesign_still_resumes(tmp_path):
    """tests/data/pre-redesign-semi-*: the checkpoint and config.yaml of `semi train algorithm.name=semi
    train.epochs=2 train.steps_per_epoch=3 train.eval_every=3 train.batch_size=8 model.width=4 semi.bank_size=4` at
    commit 426a5a6 (before method specs), step 6 of 6. Resumed and extended by one epoch with today's code."""
    import shutil

    from semi.cli import main

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "pre-redesign-semi-step6.pt", out / "checkpoints" / "step-0000006.pt")
    shutil.copy(REPO / "tests" / "data" / "pre-redesign-semi-config.yaml", out / "config.yaml")  # the run's settings
    code = main(["train", "--resume", "auto", "--allow-changes", f"train.out_dir={out}", "train.epochs=3",
                 "train.progress=false", "train.tensorboard=false"])
    assert code == 0
    results = __import__("json").loads((out / "results.json").read_text())
    assert results["steps"] == 9 and results["config"]["semi"]["bank_size"] == 4
