"""Run directories: every run gets its own, and a resumed run keeps the meaning it was started with.

A new run without `train.out_dir` goes to `RUNS_DIR/NAME-ALGORITHM-YYYYmmdd-HHMMSS` (`-2`, `-3`, ... if taken);
`train.out_dir` names the directory exactly. A directory that already holds a run is never started into again
without `--resume`. Resuming takes the run's saved configuration; a setting that differs from it is refused unless
the change is asked for (`allow_changes`), and then it is recorded. Nothing here imports torch, except reading the
configuration inside a checkpoint file given by path, and nothing here writes to disk.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semi.config import Config, config_from_dict, deep_merge
from semi.errors import CheckpointError, ConfigError, SemiError

# Settings that say where and how a run executes, not what it computes: they may differ on resume.
OPERATIONAL = frozenset({
    "train.out_dir", "train.runs_dir", "train.progress", "train.tensorboard", "train.threads", "train.device",
    "train.keep_checkpoints", "data.root", "data.num_workers", "data.prefetch",
})
RUN_FILES = ("config.yaml", "results.json", "metrics.jsonl", "checkpoints")
_STAMP = re.compile(r"^\d{8}-\d{6}(-\d+)?$")


def run_label(cfg: Config) -> str:
    """NAME-ALGORITHM: the run's name (by default its config's name, else the data set's) and the algorithm."""
    name = cfg.train.name or cfg.data.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}-{cfg.algorithm.name.replace('+', '_')}")


def new_run_dir(cfg: Config, now: float | None = None) -> Path:
    """A directory name no run has used yet: RUNS_DIR/LABEL-YYYYmmdd-HHMMSS, with -2, -3, ... when taken."""
    base = Path(cfg.train.runs_dir) / f"{run_label(cfg)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def is_used(run_dir: Path) -> bool:
    """Does the folder hold (part of) a run? An empty or unrelated folder does not."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


def has_step_checkpoints(run_dir: Path) -> bool:
    folder = Path(run_dir) / "checkpoints"
    return folder.is_dir() and any(re.search(r"step-\d+\.pt$", p.name) for p in folder.iterdir())


def find_runs(runs_dir: Path, label: str | None = None) -> list[Path]:
    """Run directories under runs_dir (of one label, when given), oldest first by their time stamp."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for path in runs_dir.iterdir():
        if not (path.is_dir() and is_used(path)):
            continue
        if label is None or (path.name.startswith(label + "-") and _STAMP.match(path.name[len(label) + 1:])):
            found.append(path)
    return sorted(found, key=lambda p: (_stamp_key(p.name), p.stat().st_mtime))


def _stamp_key(name: str) -> tuple[str, int]:
    m = re.search(r"(\d{8}-\d{6})(?:-(\d+))?$", name)
    return (m.group(1), int(m.group(2) or 1)) if m else ("", 0)


def read_saved_config(run_dir: Path) -> Config | None:
    """The run's config.yaml (None if it has none); an unreadable one is an error, not silently a new run."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        values = yaml.safe_load(path.read_text()) or {}
        return config_from_dict(values)
    except (OSError, yaml.YAMLError, ConfigError, AttributeError, TypeError) as exc:
        raise SemiError(f"{path} (the run's saved configuration) cannot be used: {exc}") from None


def checkpoint_config(path: Path) -> Config:
    """The configuration a checkpoint was trained with."""
    from semi.engine.checkpoint import load_checkpoint  # torch: only for a checkpoint named by path

    values = load_checkpoint(path, trusted=True).get("config")
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} holds no run configuration (not written by `semi train`?)")
    return config_from_dict(values)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, new value) for every setting that changes what the run computes."""
    a, b = flatten(saved.to_dict()), flatten(new.to_dict())
    return [(k, a.get(k), b[k]) for k in b if k not in OPERATIONAL and a.get(k) != b[k]]


def format_changes(changes: list[tuple[str, Any, Any]]) -> str:
    return "\n".join(f"  - {k}: run {old!r}, now {new!r}" for k, old, new in changes)


@dataclass
class RunPlan:
    """What a `train` call will do: the final config (train.out_dir set), and whether and from what it resumes."""

    cfg: Config
    run_dir: Path
    resume: str | None = None
    """None: a new run; 'auto': the newest valid checkpoint of run_dir (a new run if there is none); or a path."""
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    """Settings changed on resume (allowed by allow_changes), recorded in config.yaml and results.json."""


def plan_run(requested: Config, resume: str | None = None, allow_changes: bool = False,
             overrides: dict[str, Any] | None = None) -> RunPlan:
    """Decide the run directory and the configuration of a `train` call, checking everything that can be checked
    before any work. `overrides` (the command line's, nested): on resume they apply to the run's saved config, so
    only they can differ from it; without them (the Python API) the whole `requested` config is compared."""
    cfg = config_from_dict(requested.to_dict())  # a copy: the caller's config is left as given
    t = cfg.train
    if t.out_dir is not None:
        run_dir = Path(t.out_dir)
    elif resume is None:
        run_dir = new_run_dir(cfg)
    elif resume == "auto":
        runs = find_runs(Path(t.runs_dir), run_label(cfg))
        if not runs:
            others = [p.name for p in find_runs(Path(t.runs_dir))]
            where = f"; runs there: {', '.join(others)}" if others else " (it holds no runs)"
            raise SemiError(f"no run of {run_label(cfg)} in {t.runs_dir}/ to resume{where}. Name one with "
                            f"train.out_dir=DIR, or start a new run without --resume")
        run_dir = runs[-1]
    else:
        ckpt = Path(resume)
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent

    if resume is None:
        if is_used(run_dir):
            raise SemiError(f"{run_dir} already holds a run; continue it with `semi train --resume auto "
                            f"train.out_dir={run_dir}`, or choose another train.out_dir (unset: a new directory "
                            f"under {t.runs_dir}/)")
        t.out_dir = str(run_dir)
        return RunPlan(cfg, run_dir)

    if resume == "auto":
        saved = read_saved_config(run_dir) if has_step_checkpoints(run_dir) else None
        source = run_dir / "config.yaml"
    else:
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise CheckpointError(f"checkpoint not found: {ckpt}")
        saved, source = checkpoint_config(ckpt), ckpt
        own = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        if is_used(run_dir) and run_dir.resolve() != own.resolve():
            raise SemiError(f"{run_dir} already holds another run; choose a new train.out_dir to continue "
                            f"{ckpt} there")
    if saved is None:  # nothing trained yet: a new run in that directory, as requested
        t.out_dir = str(run_dir)
        return RunPlan(cfg, run_dir, resume)
    if overrides is not None:
        cfg = config_from_dict(deep_merge(saved.to_dict(), overrides))
    cfg.train.out_dir = str(run_dir)
    changes = config_changes(saved, cfg)
    if changes and not allow_changes:
        raise SemiError(f"these settings differ from the run's saved configuration ({source}):\n"
                        f"{format_changes(changes)}\nresuming keeps the run's settings: drop them, or add "
                        f"--allow-changes to change the run (recorded in config.yaml and results.json)")
    return RunPlan(cfg, run_dir, resume, changes)


def check_can_create(run_dir: Path) -> None:
    """Could the run directory be created and written, without creating anything yet?"""
    path = Path(run_dir).absolute()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        why = "not a folder" if not probe.is_dir() else "no write permission"
        raise SemiError(f"output directory {run_dir} is not writable: {probe} is {why}" if probe != path else
                        f"output directory {run_dir} is not writable: {why}")
