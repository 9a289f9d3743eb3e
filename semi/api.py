"""The Python API, the same operations and defaults as the command line (which calls these functions).

    import semi
    cfg = semi.load_config("digits_lt", ["algorithm.name=fixmatch", "train.epochs=2"])
    result = semi.train(cfg)                      # -> Results (metrics, run_dir, paths)
    semi.evaluate(result.checkpoint)              # -> dict of metrics on the run's test set
    semi.predict(result.checkpoint, "images/")    # -> Predictions (classes, probabilities, CSV)

Nothing here imports torch until a function needs it, so `import semi` stays cheap and configuration errors come
back at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semi.config import Config
from semi.config import load_config as _load_config
from semi.errors import ConfigError, SemiError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = "digits_lt"


def resolve_config_path(name: str | Path | None) -> Path:
    """A path, or the name of a shipped config (`cifar10_lt` -> semi/configs/cifar10_lt.yaml); None: the default run."""
    if name is None:
        name = DEFAULT_CONFIG
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    shipped = CONFIG_DIR / f"{name}.yaml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise SemiError(f"config {str(name)!r} is neither a file nor a shipped config; shipped configs: {known}")


def load_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A shipped config's name or a YAML path (None: digits_lt, the CLI's default) plus `key=value` overrides,
    validated (ConfigError lists every problem). train.name defaults to the config's name (it names run folders),
    or to the data set's when the overrides change the data set (digits_lt's name on a features run would mislead)."""
    path = resolve_config_path(name_or_path)
    cfg = _load_config(path, overrides)
    if cfg.train.name is None:
        file_data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        cfg.train.name = path.stem if cfg.data.name == file_data.get("name", cfg.data.name) else cfg.data.name
    return cfg


@dataclass
class Results:
    """What a training run produced. `results` is results.json's content (see README: Outputs)."""

    run_dir: Path
    metrics: dict[str, Any]
    """Test metrics of the evaluation head: top1, balanced_accuracy, head/medium/tail_accuracy, per_class_accuracy..."""
    results: dict[str, Any] = field(repr=False)

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def checkpoint(self) -> Path:
        """checkpoints/latest.pt: the final model."""
        return self.run_dir / "checkpoints" / "latest.pt"

    @property
    def best_checkpoint(self) -> Path | None:
        """checkpoints/best.pt (chosen on the validation split), if the run had one."""
        best = self.run_dir / "checkpoints" / "best.pt"
        return best if best.is_file() else None


def train(config: Config | str | Path | None = None, *, resume: str | Path | None = None,
          allow_changes: bool = False, overrides: list[str] | None = None) -> Results:
    """Train one run into its own directory and return its results.

    config: a Config, or a config name/path for load_config (None: digits_lt). Without train.out_dir a new
    directory RUNS_DIR/NAME-ALGORITHM-TIME is made; a directory that holds a run is refused unless `resume` is
    given: 'auto' (the newest valid checkpoint of train.out_dir, else of the newest run of this config) or a
    checkpoint path. On resume the config must equal the run's saved one, except for settings changed on purpose
    with allow_changes=True (recorded in config.yaml and results.json) and operational ones (devices, paths,
    threads). `overrides` are for the command line's meaning: applied to the run's saved config on resume."""
    from semi.config import config_from_dict, deep_merge, parse_overrides
    from semi.runs import plan_run

    nested = None
    if overrides is not None:
        nested, problems = parse_overrides(overrides)
        if problems:
            raise ConfigError(problems)
    if not isinstance(config, Config):
        cfg = load_config(config, overrides)
    elif nested:
        cfg = config_from_dict(deep_merge(config.to_dict(), nested))
    else:
        cfg = config
    plan = plan_run(cfg, None if resume is None else str(resume), allow_changes, nested)
    return _run(plan)


def _say(text: str, main: bool = True) -> None:
    if main:
        print(text, file=sys.stderr, flush=True)


def _run(plan: Any) -> Results:
    """Prepare the data (torch-free for the checks), then train; the run directory appears only if all is well."""
    from semi.data.prepare import prepare_data
    from semi.runs import check_can_create

    cfg = plan.cfg
    data = prepare_data(cfg)
    check_can_create(plan.run_dir)

    from semi import distributed
    from semi.engine.threads import configure_threads

    configure_threads(cfg.train.threads)
    distributed.init_from_env(cfg.train.device)
    try:
        if distributed.world_size() > 1:  # rank 0's run directory (each rank named one; the clocks may differ)
            import torch.distributed as tdist

            box = [cfg.train.out_dir]
            tdist.broadcast_object_list(box, src=0)
            cfg.train.out_dir = box[0]
        from semi.engine.trainer import Trainer

        trainer = Trainer(cfg, data=data)
        main = trainer.is_main
        _say(f"run directory: {trainer.run_dir}", main)
        if plan.resume is not None:
            path = trainer.resume(plan.resume)
            if path is not None:
                _say(f"resumed from {path} at step {trainer.step}", main)
            if plan.changes and path is not None:
                trainer.config_changes.append({"step": trainer.step, "changes": {
                    k: [old, new] for k, old, new in plan.changes}})
                _say("changed on resume: " + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in plan.changes),
                     main)
        _say(trainer.data.describe().splitlines()[-1], main)
        results = trainer.fit()
        _say(f"run directory: {trainer.run_dir}", main)
    finally:
        distributed.shutdown()
    return Results(Path(cfg.train.out_dir), results["metrics"], results)


def evaluate(checkpoint: str | Path, data: dict[str, Any] | None = None,
             overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint's EMA model on its run's test set (and validation split). `data`: data-section
    settings to change, e.g. {"root": "/elsewhere"}; `overrides`: `key=value` strings. Returns the metrics of the
    evaluation head (`head_used`) plus `heads` (both heads), `checkpoint` and `step`."""
    from semi.config import config_from_dict, deep_merge, parse_overrides
    from semi.engine.checkpoint import load_checkpoint
    from semi.engine.trainer import Trainer
    from semi.errors import CheckpointError

    state = load_checkpoint(Path(checkpoint))
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{checkpoint} holds no run configuration (not written by `semi train`?)")
    over, problems = parse_overrides(overrides or [])
    if problems:
        raise SemiError("\n".join(problems))
    if data:
        over = deep_merge(over, {"data": dict(data)})
    values = deep_merge(state["config"], over)
    values["train"] = {**values.get("train", {}), "progress": False, "tensorboard": False}
    cfg = config_from_dict(values)
    trainer = Trainer(cfg, read_only=True)
    trainer.load_state_dict(state, Path(checkpoint))
    ev = trainer.evaluate()
    return {"checkpoint": str(checkpoint), "step": trainer.step, "class_names": trainer.data.class_names, **ev}


def predict(checkpoint: str | Path, images: Any, *, head: str | None = None, device: str = "auto",
            batch_size: int = 256, embeddings: bool = False) -> Any:
    """Classify new images with a checkpoint's EMA model, preprocessed as its run's evaluation.

    images: image files and folders (a list, or one path), one .npz path, or a uint8 array (N, H, W[, C]).
    head: None = the algorithm's evaluation head (balanced for ACR and SeMi). Returns inference.Predictions:
    `.labels`, `.classes`, `.probabilities`, `.top_k(k)`, `.to_csv(path)`, `.embeddings` (if asked for)."""
    from semi.inference import load_model
    from semi.inference import predict as _predict

    return _predict(load_model(checkpoint, device, head), images, batch_size, embeddings)


def export(checkpoint: str | Path, out: str | Path, head: str | None = None) -> str:
    """Write the checkpoint's model as a file torch alone can load and run (see inference.export_model)."""
    from semi.inference import export_model, load_model

    return export_model(load_model(checkpoint, "cpu", head), out)
