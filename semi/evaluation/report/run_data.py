"""A run directory as the report reads it: metrics.jsonl, results.json, config.yaml, each possibly missing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semi.errors import SemiError


# ------------------------------------------------------------------------------------------ reading a run
@dataclass
class RunData:
    """What a run directory holds, read leniently. `notes` collects what was missing or unreadable."""

    run_dir: Path
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ---- derived views, each tolerant of missing pieces
    def section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name) if isinstance(self.config, dict) else None
        return value if isinstance(value, dict) else {}

    def cfg(self, section: str, key: str, default: Any = None) -> Any:
        value = self.section(section).get(key, default)
        return default if value is None else value

    @property
    def num_classes(self) -> int | None:
        r = self.results or {}
        metrics = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        for values in (r.get("class_names"), r.get("labeled_counts"), metrics.get("per_class_accuracy")):
            if values:
                return len(values)
        for rec in reversed(self.evals):
            for key in ("pseudo_label_precision", "acr_unlabeled_estimate", "bank_fill", "pseudo_label_counts"):
                if isinstance(rec.get(key), list) and rec[key]:
                    return len(rec[key])
        return None

    def class_names(self, num: int | None = None) -> list[str]:
        num = self.num_classes if num is None else num
        names = (self.results or {}).get("class_names") or []
        if num is None:
            return [str(n) for n in names]
        if len(names) == num:
            return [str(n) for n in names]
        return [str(k) for k in range(num)]

    @property
    def labeled_counts(self) -> list[int] | None:
        return (self.results or {}).get("labeled_counts") or None

    @property
    def unlabeled_counts(self) -> list[int] | None:
        return (self.results or {}).get("unlabeled_counts") or None

    @property
    def final(self) -> dict[str, Any]:
        """The final test metrics: results.json's, else the last evaluation logged in metrics.jsonl."""
        if self.results and isinstance(self.results.get("metrics"), dict):
            return self.results["metrics"]
        return self.evals[-1] if self.evals else {}

    @property
    def last_eval(self) -> dict[str, Any]:
        """The last evaluation's record (diagnostics): results.json's, else metrics.jsonl's last eval line."""
        diag = (self.results or {}).get("diagnostics")
        if isinstance(diag, dict) and diag:
            return diag
        return self.evals[-1] if self.evals else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        if self.evals:
            return self.evals
        return list((self.results or {}).get("history") or [])

    @property
    def algorithm(self) -> str:
        return str(self.cfg("algorithm", "name", "unknown"))

    @property
    def steps(self) -> int | None:
        if self.results and self.results.get("steps") is not None:
            return int(self.results["steps"])
        steps = [int(r["step"]) for r in self.train + self.evals if isinstance(r.get("step"), (int, float))]
        return max(steps) if steps else None

    @property
    def planned_steps(self) -> int | None:
        epochs, spe = self.cfg("train", "epochs"), self.cfg("train", "steps_per_epoch")
        return int(epochs) * int(spe) if epochs and spe else None


def read_metrics_jsonl(path: Path, notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and eval records sorted by step; a step logged twice (a resumed run) keeps its last record."""
    by_kind: dict[str, dict[int, dict[str, Any]]] = {"train": {}, "eval": {}}
    bad = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        notes.append(f"{path.name} could not be read ({exc.strerror or exc}).")
        return [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(rec, dict) or rec.get("kind") not in by_kind or not isinstance(rec.get("step"), (int, float)):
            bad += 1
            continue
        by_kind[rec["kind"]][int(rec["step"])] = rec
    if bad:
        notes.append(f"{bad} line(s) of {path.name} were not valid records and were skipped (a run killed while "
                     "writing?).")
    return ([by_kind["train"][s] for s in sorted(by_kind["train"])],
            [by_kind["eval"][s] for s in sorted(by_kind["eval"])])


def load_run(run_dir: Path) -> RunData:
    """Read metrics.jsonl, results.json and config.yaml of a run directory; missing or broken files become notes."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SemiError(f"run directory {run_dir} does not exist (expected train.out_dir of a run, holding "
                        "metrics.jsonl and results.json)")
    run = RunData(run_dir)
    metrics_path, results_path, config_path = (run_dir / n for n in ("metrics.jsonl", "results.json", "config.yaml"))
    if not metrics_path.is_file() and not results_path.is_file():
        run.notes.append(f"Neither metrics.jsonl nor results.json is in {run_dir}: nothing to report yet (has the "
                         "run started? is this the run's train.out_dir?).")
        return run
    if metrics_path.is_file():
        run.train, run.evals = read_metrics_jsonl(metrics_path, run.notes)
    else:
        run.notes.append("metrics.jsonl is missing: no training curves; the evaluation history comes from "
                         "results.json.")
    if results_path.is_file():
        try:
            loaded = json.loads(results_path.read_text())
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
            run.results = loaded
        except (OSError, ValueError) as exc:
            run.notes.append(f"results.json could not be read ({exc}); using metrics.jsonl only.")
    if run.results is None and not results_path.is_file():
        run.notes.append("results.json is missing (the run stopped early, or is still running): the numbers "
                         "and figures come from metrics.jsonl only. Per-class test accuracy, the confusion "
                         "matrix and the true unlabeled class distribution are not available.")
    if run.results and isinstance(run.results.get("config"), dict):
        run.config = run.results["config"]
    elif config_path.is_file():
        try:
            import yaml

            loaded = yaml.safe_load(config_path.read_text())
            run.config = loaded if isinstance(loaded, dict) else {}
        except Exception as exc:  # noqa: BLE001 - OSError, yaml.YAMLError...: a bad config must not stop the report
            run.notes.append(f"config.yaml could not be read ({type(exc).__name__}: {exc}).")
    if not run.train and not run.evals and run.results is None:
        run.notes.append("metrics.jsonl holds no records yet: there is nothing to plot.")
    return run


