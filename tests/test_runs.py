"""Run directories and resume: two runs never share a directory, a used one is refused, resume keeps the run's
settings (a differing override is refused naming the keys; --allow-changes records it), and a bad start fails fast
and leaves nothing on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from semi.cli import main

TINY = {"train.epochs": 1, "train.steps_per_epoch": 3, "train.batch_size": 8, "train.eval_every": 3,
        "train.progress": False, "train.tensorboard": False, "train.threads": 1, "model.width": 8,
        "algorithm.name": "fixmatch"}
REPO = Path(__file__).resolve().parents[1]


def tiny(runs: Path, **extra) -> list[str]:
    return [f"{k}={v}" for k, v in {**TINY, "train.runs_dir": runs, **extra}.items()]


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def test_two_runs_never_share_a_directory(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", *tiny(runs)]) == 0
    assert main(["train", *tiny(runs)]) == 0  # same config, same second: a suffix tells them apart
    assert main(["train", *tiny(runs, **{"algorithm.name": "supervised"})]) == 0
    dirs = run_dirs(runs)
    assert len(dirs) == 3 and all((d / "results.json").is_file() for d in dirs)
    names = [d.name for d in dirs]
    assert sum(n.startswith("digits_lt-fixmatch-") for n in names) == 2
    assert sum(n.startswith("digits_lt-supervised-") for n in names) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(lines.count(f"run directory: {d}") == 2 for d in dirs)  # at the start and at the end


def test_a_used_directory_is_refused_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(tmp_path, **{"train.out_dir": out})]) == 0
    before = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["train", *tiny(tmp_path, **{"train.out_dir": out, "algorithm.name": "supervised"})]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a run" in err and "--resume auto" in err
    assert (out / "results.json").read_bytes() == before


def test_resume_keeps_the_runs_settings(tmp_path, capsys):
    """The issue's case: a run started with a shorter training, resumed with the bare `--resume auto`, keeps its
    own settings (not the config file's) and finds its directory by itself."""
    runs = tmp_path / "runs"
    assert main(["train", *tiny(runs, **{"train.steps_per_epoch": 2})]) == 0
    (run,) = run_dirs(runs)
    capsys.readouterr()
    assert main(["train", "--resume", "auto", f"train.runs_dir={runs}", "algorithm.name=fixmatch",
                 "train.progress=false"]) == 0
    err = capsys.readouterr().err
    assert f"run directory: {run}" in err and "resumed from" in err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps_per_epoch"] == 2 and saved["train"]["epochs"] == 1
    assert json.loads((run / "results.json").read_text())["steps"] == 2
    assert run_dirs(runs) == [run]


def test_resume_with_a_differing_override_is_refused_and_names_the_keys(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(tmp_path, **{"train.out_dir": out})]) == 0
    before = (out / "config.yaml").read_text()
    capsys.readouterr()
    code = main(["train", "--resume", "auto", *tiny(tmp_path, **{"train.out_dir": out, "train.epochs": 3,
                                                                  "optim.lr": 0.1})])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.epochs: run 1, now 3" in err and "optim.lr: run 0.03, now 0.1" in err and "--allow-changes" in err
    assert "train.batch_size" not in err  # only what differs
    assert (out / "config.yaml").read_text() == before


def test_resume_with_allow_changes_records_the_change(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(tmp_path, **{"train.out_dir": out})]) == 0
    assert main(["train", "--resume", "auto", "--allow-changes",
                 *tiny(tmp_path, **{"train.out_dir": out, "train.epochs": 2})]) == 0
    assert "changed on resume: train.epochs 1 -> 2" in capsys.readouterr().err
    text = (out / "config.yaml").read_text()
    assert "# changed on resume at step 3 (--allow-changes): train.epochs 1 -> 2" in text
    assert yaml.safe_load(text)["train"]["epochs"] == 2
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 6 and results["config"]["train"]["epochs"] == 2
    assert results["config_changes"] == [{"step": 3, "changes": {"train.epochs": [1, 2]}}]


def test_resume_auto_with_an_explicit_new_directory_starts_fresh(tmp_path, capsys):
    """benchmarks/accuracy.py's pattern: `--resume auto train.out_dir=DIR` on a folder that does not exist yet, or
    holds a killed run's config.yaml but no checkpoint, starts a new run there."""
    out = tmp_path / "cell"
    assert main(["train", "--resume", "auto", *tiny(tmp_path, **{"train.out_dir": out})]) == 0
    assert (out / "results.json").is_file()
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.yaml").write_text("train:\n  epochs: 7\n")
    assert main(["train", "--resume", "auto", *tiny(tmp_path, **{"train.out_dir": killed})]) == 0
    assert json.loads((killed / "results.json").read_text())["config"]["train"]["epochs"] == 1


def test_resume_auto_without_a_run_lists_what_exists(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", *tiny(runs)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "auto", *tiny(runs, **{"algorithm.name": "acr"})]) == 2
    err = capsys.readouterr().err
    assert "no run of digits_lt-acr" in err and "digits_lt-fixmatch-" in err


def test_a_typo_fails_fast_and_leaves_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "semi", "train", "foo.bar=1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and "foo: unknown key" in proc.stderr, proc.stderr
    assert elapsed < 3.0, f"a config typo took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_set_leaves_no_folder(tmp_path, capsys):
    code = main(["train", *tiny(tmp_path / "runs"), "data.name=cifar100", f"data.root={tmp_path / 'nodata'}"])
    assert code == 2 and "missing file(s)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_import_semi_and_config_errors_do_not_load_torch():
    code = ("import sys, semi\n"
            "from semi.errors import ConfigError\n"
            "try:\n    semi.load_config(None, ['algorithm.name=mixmatch'])\n"
            "except ConfigError:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert semi.load_config().algorithm.name == 'semi'\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["--version"]])
def test_version(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("semi 0.")


def test_config_show_prints_the_resolved_tree_with_docs(capsys):
    assert main(["config", "show", "algorithm.name=fixmatch"]) == 0
    out = capsys.readouterr().out
    values = yaml.safe_load(out)
    assert values["algorithm"]["name"] == "fixmatch" and values["train"]["name"] == "digits_lt"
    assert "# (int) N_1: labeled images of the largest class." in out
