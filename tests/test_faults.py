"""Faults: SIGKILL at random moments then --resume auto ends in the uninterrupted run's exact state; SIGTERM
saves and exits cleanly; a non-finite loss stops with the step and term named and keeps the good checkpoint;
a failed save leaves the previous file intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semi.engine.checkpoint import CheckpointManager, atomic_write_bytes, load_checkpoint, step_checkpoints
from semi.errors import SemiError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_overrides  # noqa: E402

STEPS = 60


def _args(tmp: Path, out: str) -> list[str]:
    return tiny_overrides(tmp, **{"train.out_dir": str(tmp / out), "train.epochs": 15, "train.steps_per_epoch": 4,
                                  "train.eval_every": 2, "algorithm.name": "semi", "train.threads": 1})


def _train(args: list[str], resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "semi", "train", *(["--resume", "auto"] if resume else []), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _final_state(run: Path) -> dict:
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == STEPS
    return state


def _assert_same(a: dict, b: dict) -> None:
    for part in ("model", "algorithm"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key}"
    for key, value in a["ema"]["module"].items():
        assert torch.equal(value, b["ema"]["module"][key]), f"ema.{key}"
    assert a["history"] == b["history"]


def _newest_step(run: Path) -> int:
    found = step_checkpoints(run / "checkpoints")
    return found[0][0] if found else -1


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path):
    """Three SIGKILLs, each at a random moment after the run has made progress since its (re)start (so the
    test does not depend on how fast this machine starts Python), some of them during checkpoint writes."""
    straight = _train(_args(tmp_path, "straight"))
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    # SEMI_KILL_SEED / SEMI_KILLS vary the kill moments and their number for a longer soak than CI's.
    rng = random.Random(int(os.environ.get("SEMI_KILL_SEED", "0")))
    wanted = int(os.environ.get("SEMI_KILLS", "3"))
    args, run = _args(tmp_path, "killed"), tmp_path / "killed"
    kills, proc = 0, _train(args)
    while kills < wanted:
        start_step = _newest_step(run)
        deadline = time.time() + 300
        while _newest_step(run) <= start_step and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.2))  # short: a quiet machine runs a step in milliseconds
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = _train(args, resume=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert kills >= min(2, wanted), "the run finished before it could be killed twice; lengthen it"
    print(f"killed {kills} times")
    _assert_same(_final_state(tmp_path / "straight"), _final_state(run))
    assert [p.name for p in run.rglob("*") if ".tmp" in p.name] == []  # a resumed run clears killed writes' files


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    args = _args(tmp_path, "run") + ["train.epochs=200"]  # long enough to still be running
    proc = _train(args)
    ckpts = tmp_path / "run" / "checkpoints"
    deadline = time.time() + 120
    while not step_checkpoints(ckpts) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by SIGTERM" in err and "--resume auto" in err and "Traceback" not in err
    step, path = step_checkpoints(ckpts)[0]
    assert load_checkpoint(path)["step"] == step > 0


def test_nonfinite_loss_stops_naming_step_and_term(tiny_config, monkeypatch):
    from semi.algorithms.fixmatch import FixMatch
    from semi.engine.trainer import Trainer

    original = FixMatch.training_step

    def poisoned(self, model, batch, info):
        result = original(self, model, batch, info)
        if info.step == 7:
            result.losses["unsup"] = result.losses["unsup"] * float("nan")
            result.loss = torch.stack(list(result.losses.values())).sum()
        return result

    monkeypatch.setattr(FixMatch, "training_step", poisoned)
    trainer = Trainer(tiny_config(**{"algorithm.name": "fixmatch"}))
    with pytest.raises(SemiError, match=r"non-finite loss at step 7 in loss term\(s\) unsup"):
        trainer.fit()
    # the step-6 checkpoint is the last one, and it holds finite weights
    (step, path), *_ = step_checkpoints(Path(trainer.cfg.train.out_dir) / "checkpoints")
    assert step == 6
    assert all(torch.isfinite(v).all() for v in load_checkpoint(path)["model"].values() if v.is_floating_point())
    assert not (Path(trainer.cfg.train.out_dir) / "results.json").exists()


def test_nonfinite_skip_mode_counts_skipped_steps(tiny_config, monkeypatch):
    from semi.algorithms.fixmatch import FixMatch
    from semi.engine.trainer import Trainer

    original = FixMatch.training_step

    def poisoned(self, model, batch, info):
        result = original(self, model, batch, info)
        if info.step in (3, 8):
            result.loss = result.loss * float("inf")
        return result

    monkeypatch.setattr(FixMatch, "training_step", poisoned)
    results = Trainer(tiny_config(**{"algorithm.name": "fixmatch", "train.nonfinite": "skip"})).fit()
    assert results["skipped_steps"] == 2 and results["steps"] == 12


def test_skip_mode_rolls_back_what_the_step_observed_and_still_evaluates(tiny_config, monkeypatch):
    """A skipped step leaves the algorithm state (bank, estimates, counters) as it was, and a skipped step that
    ends on an evaluation boundary (step 6 of eval_every 6) still evaluates and checkpoints."""
    from semi.algorithms.dual_head import DualHead
    from semi.engine.trainer import Trainer

    original = DualHead.training_step

    def poisoned(self, model, batch, info):
        result = original(self, model, batch, info)
        if info.step == 5:
            result.loss = result.loss * float("nan")
        return result

    monkeypatch.setattr(DualHead, "training_step", poisoned)
    trainer = Trainer(tiny_config(**{"algorithm.name": "acr+semi", "train.nonfinite": "skip"}))
    seen = {}
    train_step = trainer.train_step

    def spy(batch, info):
        before = {k: v.clone() for k, v in trainer.algorithm.state_dict().items()}
        out = train_step(batch, info)
        if info.step == 5:
            after = {k: v.clone() for k, v in trainer.algorithm.state_dict().items()}
            seen["before"], seen["after"], seen["out"] = before, after, out
        return out

    trainer.train_step = spy
    results = trainer.fit()
    assert seen["out"] is None and results["skipped_steps"] == 1 and results["steps"] == 12
    changed = [k for k, v in seen["before"].items() if not torch.equal(v, seen["after"][k])]
    assert changed == []
    assert [h["step"] for h in results["history"]] == [6, 12]
    assert 6 in [s for s, _ in step_checkpoints(Path(trainer.cfg.train.out_dir) / "checkpoints")]


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_bytes(target, b"old")

    def disk_full(fd, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SemiError, match="No space left on device") as err:
        atomic_write_bytes(target, b"new")
    assert "previous file" in str(err.value)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_keeps_the_last_k_checkpoints_and_latest(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (1, 2, 3):
        manager.save(step, {"step": step, "model": {}})
    assert [s for s, _ in step_checkpoints(manager.folder)] == [3, 2]
    assert load_checkpoint(manager.folder / "latest.pt")["step"] == 3


def test_resume_auto_skips_a_corrupt_newest_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(4, {"step": 4, "model": {}})
    (manager.folder / "step-0000008.pt").write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="step-0000008.pt"):
        path, state = manager.newest_valid()
    assert state["step"] == 4 and path.name == "step-0000004.pt"
    # The corrupt file is set aside, so it no longer takes one of the K slots of good checkpoints.
    assert (manager.folder / "step-0000008.pt.corrupt").is_file()
    for step in (5, 6, 7):
        manager.save(step, {"step": step, "model": {}})
    assert [s for s, _ in step_checkpoints(manager.folder)] == [7, 6, 5]


def test_only_the_setting_aside_process_renames_a_corrupt_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(4, {"step": 4, "model": {}})
    (manager.folder / "step-0000008.pt").write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="step-0000008.pt"):
        path, _ = manager.newest_valid(set_aside=False)  # another DDP rank: skip it, leave the file to rank 0
    assert path.name == "step-0000004.pt" and (manager.folder / "step-0000008.pt").is_file()


def test_failed_latest_update_is_reported_and_leaves_no_temporary(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"step": 1, "model": {}})

    real_replace = os.replace

    def read_only_latest(src, dst):  # the step file is written; updating latest.pt fails
        if Path(dst).name == "latest.pt":
            raise OSError(30, "Read-only file system")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", read_only_latest)
    with pytest.raises(SemiError, match="could not update .*latest.pt.*Read-only file system"):
        manager.save(2, {"step": 2, "model": {}})
    monkeypatch.undo()
    assert load_checkpoint(manager.folder / "latest.pt")["step"] == 1
    assert load_checkpoint(manager.folder / "step-0000002.pt")["step"] == 2  # complete, as the message says
    assert not list(manager.folder.glob(".*tmp-*"))


def test_a_resumed_run_logs_each_step_once(tiny_config, tmp_path):
    """A run killed after logging past its checkpoint logs those steps again on resume; metrics.jsonl keeps
    one copy (and a torn last line is dropped)."""
    import json

    from semi.engine.trainer import Trainer

    straight = tiny_config(**{"algorithm.name": "fixmatch", "train.out_dir": str(tmp_path / "a")})
    Trainer(straight).fit()
    cfg = tiny_config(**{"algorithm.name": "fixmatch", "train.out_dir": str(tmp_path / "b")})
    Trainer(cfg).fit()
    metrics = Path(cfg.train.out_dir) / "metrics.jsonl"
    with open(metrics, "a") as fh:
        fh.write('{"kind": "train", "st')  # the kill came mid-line
    trainer = Trainer(cfg)
    trainer.resume(str(Path(cfg.train.out_dir) / "checkpoints" / "step-0000006.pt"))
    with pytest.warns(UserWarning, match="step-0000012.pt"):  # the abandoned line's later step, set aside
        trainer.fit()

    def keys(path):
        return [(r["kind"], r["step"]) for r in map(json.loads, path.read_text().splitlines())]

    assert keys(metrics) == keys(Path(straight.train.out_dir) / "metrics.jsonl")


def test_resuming_from_an_older_checkpoint_sets_the_later_ones_aside(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (2, 4, 6):
        manager.save(step, {"step": step, "model": {}})
    manager.save_best({"step": 6, "model": {}})  # chosen by the abandoned line
    with pytest.warns(UserWarning, match="set aside") as caught:
        manager.set_aside_newer_than(4)
    assert sum("step-0000006.pt" in str(w.message) for w in caught) == 1
    assert (manager.folder / "best.pt.superseded").is_file() and not (manager.folder / "best.pt").exists()
    manager.save(5, {"step": 5, "model": {}})  # the new line of training: kept, and the newest
    assert [s for s, _ in step_checkpoints(manager.folder)] == [5, 4]
    assert manager.newest_valid()[1]["step"] == 5
    assert (manager.folder / "step-0000006.pt.superseded").is_file()


def test_a_new_run_in_a_used_directory_keeps_its_own_checkpoints(tiny_config):
    """The older run's later step files must neither crowd the new run's out of the last K nor be what
    `--resume auto` picks up."""
    from semi.engine.trainer import Trainer

    Trainer(tiny_config(**{"algorithm.name": "fixmatch"})).fit()  # steps 6 and 12 kept
    cfg = tiny_config(**{"algorithm.name": "fixmatch", "train.epochs": 2, "train.eval_every": 4})
    with pytest.warns(UserWarning, match="set aside") as caught:
        Trainer(cfg).fit()
    set_aside = {str(w.message).split(": ")[1].split(" ")[0] for w in caught if "set aside" in str(w.message)}
    assert set_aside == {"step-0000006.pt", "step-0000012.pt"}
    folder = Path(cfg.train.out_dir) / "checkpoints"
    assert [s for s, _ in step_checkpoints(folder)] == [8, 4]
    assert CheckpointManager(Path(cfg.train.out_dir), 2).newest_valid()[1]["step"] == 8
    assert (folder / "step-0000012.pt.superseded").is_file()


def test_dead_loader_worker_is_reported_not_hung_on(tiny_config, monkeypatch):
    from semi.data.loaders import StepBatches
    from semi.engine.trainer import Trainer

    original = StepBatches.__getitem__

    def dying(self, step):
        if step == 5:
            os._exit(1)  # the worker process dies abruptly
        return original(self, step)

    monkeypatch.setattr(StepBatches, "__getitem__", dying)
    trainer = Trainer(tiny_config(**{"data.num_workers": 1}))
    with pytest.raises(SemiError, match="data loader worker died"):
        trainer.fit()
