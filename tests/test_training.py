"""Short real training runs on CPU: every algorithm completes, results.json holds the metrics, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semi.engine.logging import cpu_model
from semi.engine.trainer import Trainer

ALGORITHMS = ["supervised", "oracle", "fixmatch", "dualhead", "acr", "fixmatch+semi", "acr+semi", "semi",
              "daso", "daso+semi", "abc", "cpe", "abc+semi", "cpe+semi",
              "darp", "darp+semi", "simpro", "simpro+semi", "remixmatch", "remixmatch+semi"]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_each_algorithm_trains_and_writes_results(tiny_config, name):
    cfg = tiny_config(**{"algorithm.name": name})
    results = Trainer(cfg).fit()
    cfg_dir = Path(cfg.train.out_dir)
    saved = json.loads((cfg_dir / "results.json").read_text())
    m = saved["metrics"]
    for key in ("top1", "balanced_accuracy", "per_class_accuracy", "head_accuracy", "medium_accuracy",
                "tail_accuracy", "confusion_matrix"):
        assert key in m
    assert len(m["per_class_accuracy"]) == 10 and len(m["confusion_matrix"]) == 10
    assert {"best_top1", "mean_last20_top1"} <= set(saved["summary"])
    assert saved["steps"] == 12 and len(saved["history"]) == 2
    assert saved["seed"] == 0 and len(saved["split_digest"]) == 64
    assert saved["environment"]["torch"] == torch.__version__
    assert saved["environment"]["cpu"] == cpu_model()  # what a rerun on "the same CPU" compares
    assert saved["config"]["algorithm"]["name"] == name
    assert (cfg_dir / "config.yaml").exists() and (cfg_dir / "metrics.jsonl").exists()
    evals = [json.loads(line) for line in (cfg_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    # every evaluation logs the per-class test accuracy (the last one is the final metrics')
    assert [len(e["per_class_accuracy"]) for e in evals] == [10, 10]
    assert evals[-1]["per_class_accuracy"] == m["per_class_accuracy"]
    if name not in ("supervised", "oracle"):
        pl = saved["pseudo_labels"]
        assert len(pl["pseudo_label_precision"]) == 10 and 0 <= saved["mask_rate"] <= 1
    if name in ("dualhead", "acr", "acr+semi", "semi"):
        assert saved["metrics"]["head_used"] == "balanced"
    assert ("acr_tau1" in saved["diagnostics"]) == name.startswith("acr")
    if name.endswith("semi"):
        assert sum(saved["diagnostics"]["bank_fill"]) > 0
    assert results["metrics"]["top1"] == m["top1"]


@pytest.mark.parametrize("name", ["fixmatch", "semi"])
def test_resume_gives_bit_identical_state(exact_resume, name):
    """12 steps straight vs. resuming the straight run's step-6 checkpoint into a new run for 6 more."""
    exact_resume(name)


def test_checkpoint_from_another_setup_is_refused(tiny_config, tmp_path):
    from semi.errors import CheckpointError

    Trainer(tiny_config(**{"train.out_dir": str(tmp_path / "a"), "algorithm.name": "fixmatch"})).fit()
    other = Trainer(tiny_config(**{"train.out_dir": str(tmp_path / "b"), "algorithm.name": "fixmatch",
                                   "model.name": "wrn28_2", "data.num_labeled_max": 20}))
    with pytest.raises(CheckpointError, match="different setup") as err:
        other.resume(str(tmp_path / "a" / "checkpoints" / "latest.pt"))
    assert "model: checkpoint 'small_cnn', this run 'wrn28_2'" in str(err.value)
    assert "split_digest" in str(err.value)


def test_semi_eval_reports_the_checkpoint_metrics(tiny_config, capsys):
    from semi.cli import main

    cfg = tiny_config(**{"algorithm.name": "semi"})
    results = Trainer(cfg).fit()
    folder = Path(cfg.train.out_dir) / "checkpoints"
    in_flight = folder / ".step-0000099.pt.tmp-4242"  # a training process writing into the same run right now
    in_flight.write_bytes(b"partial")
    assert main(["eval", "--checkpoint", str(folder / "latest.pt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 12 and out["head_used"] == "balanced"
    assert out["top1"] == results["metrics"]["top1"]  # the same EMA model on the same test set
    assert in_flight.exists()  # eval touches nothing in the run directory
    assert main(["eval", "--checkpoint", str(folder / "latest.pt")]) == 0  # the table for people
    table = capsys.readouterr().out
    assert f"balanced   {results['metrics']['top1']:>7.2f}" in table and len(table.splitlines()) < 30


def test_step_checkpoints_carry_the_best_validation_score(tiny_config):
    """Resuming from a step checkpoint must not forget the best validation score it just reached, or best.pt
    could later be replaced by a worse model."""
    from semi.engine.checkpoint import load_checkpoint

    cfg = tiny_config(**{"algorithm.name": "fixmatch", "data.val_per_class": 2, "train.eval_every": 4,
                         "train.keep_checkpoints": 5})
    results = Trainer(cfg).fit()
    folder = Path(cfg.train.out_dir) / "checkpoints"
    for h in results["history"]:
        state = load_checkpoint(folder / f"step-{h['step']:07d}.pt")
        best_so_far = max(x["val_top1"] for x in results["history"] if x["step"] <= h["step"])
        assert state["best_val"] == best_so_far


def test_default_config_matches_the_readme_run():
    from semi.cli import resolve_config_path
    from semi.config import load_config

    cfg = load_config(resolve_config_path(None))
    assert (cfg.data.name, cfg.algorithm.name, cfg.model.name, cfg.total_steps) == ("digits", "semi", "small_cnn", 1500)


@pytest.mark.parametrize("name", ["supervised", "oracle"])
def test_logit_adjustment_uses_the_prior_of_the_training_labels(tiny_config, name):
    """Supervised adjusts by the labeled set's prior; the oracle, which trains on the whole pool with true labels,
    by the pool's (here reversed, so the two differ), with the standard strength tau = 1."""
    import numpy as np

    trainer = Trainer(tiny_config(**{"algorithm.name": name, "data.unlabeled_distribution": "reversed"}))
    d = trainer.data
    idx = d.split.labeled if name == "supervised" else np.union1d(d.split.labeled, d.split.unlabeled)
    counts = torch.tensor(np.bincount(d.labels[idx], minlength=d.num_classes), dtype=torch.float64)
    assert torch.allclose(trainer.algorithm.log_prior.exp().double(), counts / counts.sum(), atol=1e-6)
    assert trainer.algorithm.balanced_tau == (1.0 if name == "oracle" else trainer.cfg.algorithm.tau2)


@pytest.mark.parametrize("name", ["fixmatch+semi", "semi"])
def test_bf16_autocast_runs_the_whole_step(tiny_config, name):
    """train.amp=bf16 also autocasts on CPU, so the mixed-precision path (bf16 embeddings into the float32 bank,
    prototypes, losses) is exercised without a GPU: the forward really runs in bf16, the state stays float32."""
    trainer = Trainer(tiny_config(**{"algorithm.name": name, "train.amp": "bf16"}))
    seen = []
    trainer.model.register_forward_hook(lambda mod, inp, out: seen.append(out.logits.dtype) if mod.training else None)
    saved = trainer.fit()
    assert trainer.amp_dtype is torch.bfloat16 and set(seen) == {torch.bfloat16}
    bank = next(m for m in trainer.algorithm.modules() if hasattr(m, "class_sum"))
    assert bank.embeddings.dtype == bank.class_sum.dtype == torch.float32 and bank.fill_counts().sum() > 0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert 0 <= saved["metrics"]["top1"] <= 100


def test_fp16_on_cpu_falls_back_to_float32(capsys):
    from semi.engine.trainer import amp_dtype

    assert amp_dtype("fp16", torch.device("cpu")) is None and "needs CUDA" in capsys.readouterr().err
    assert amp_dtype("bf16", torch.device("cpu")) is torch.bfloat16 and amp_dtype("none", torch.device("cpu")) is None


def test_training_seconds_leave_out_evaluations_and_checkpoints(tiny_config, monkeypatch):
    """The window clock pauses while the trainer evaluates and checkpoints: a slow evaluation (1 s, at steps 6 and
    12) shows neither in the next log window's step_seconds (steps 7-8) nor in train_seconds."""
    import json
    import time

    from semi.engine.trainer import Trainer

    trainer = Trainer(tiny_config(**{"algorithm.name": "fixmatch"}))
    evaluate = trainer.evaluate_and_checkpoint

    def slow(logger):
        time.sleep(1.0)
        return evaluate(logger)

    monkeypatch.setattr(trainer, "evaluate_and_checkpoint", slow)
    results = trainer.fit()
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    after_eval = next(r for r in rows if r["kind"] == "train" and r["step"] == 8)
    assert after_eval["step_seconds"] < 0.25  # 1 s over its 2 steps would be 0.5
    # train_seconds is the windows' time and nothing else (each row: its window's mean step time x its 2 steps)
    windows = sum(2 * r["step_seconds"] for r in rows if r["kind"] == "train")
    assert results["train_seconds"] == pytest.approx(windows, rel=1e-6)


def test_cpu_model_reads_the_model_name(tmp_path, monkeypatch):
    from semi.engine import logging as semi_logging

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: avx2\n")
    real_path = semi_logging.Path
    monkeypatch.setattr(semi_logging, "Path", lambda p: info if p == "/proc/cpuinfo" else real_path(p))
    assert semi_logging.cpu_model() == "AMD EPYC 7B13"
    monkeypatch.setattr(semi_logging, "Path", lambda p: tmp_path / "missing")
    monkeypatch.setattr(semi_logging.platform, "processor", lambda: "x86_64")
    assert semi_logging.cpu_model() == "x86_64"
