"""A run's report: PNG figures in `run_dir/report/` and one self-contained HTML page (`report/index.html`, the
figures embedded as base64 data URIs, so the single file can be mailed).

Inputs are what the trainer writes: `metrics.jsonl` (one JSON object per line, {"kind": "train" | "eval",
"step": N, ...}), `results.json` (final metrics, labeled/unlabeled counts, class names, the config) and
`config.yaml`. Anything may be missing (a run stopped early has no results.json; a supervised run has no
pseudo-labels; FixMatch has no ACR estimate; only SeMi has a memory bank): the report draws what the data allow and
says on the page what it left out and why.

`plot_method_comparison` and `plot_per_class` draw a benchmark sweep's records (one dict per run) and are reused
by sweep scripts.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot, so making a
report neither changes the caller's matplotlib backend nor leaves figures open.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from semi.errors import SemiError
from semi.evaluation.metrics import class_groups, summarize_history
from semi.specs import base_spec, offers_figure

DPI = 100
LOSS_NAMES = {
    "loss": "total",
    "loss_sup": "supervised (L_x)",
    "loss_unsup": "unsupervised (L_u)",
    "loss_sup_bal": "balanced head, supervised",
    "loss_unsup_bal": "balanced head, unsupervised",
    "loss_cons": "feature consistency",
}
GROUP_COLOURS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728"}


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


def _read_jsonl(path: Path, notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
        run.train, run.evals = _read_jsonl(metrics_path, run.notes)
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


# ------------------------------------------------------------------------------------------ small helpers
def _num(value: Any) -> float:
    """A float, NaN for None / non-numbers."""
    if isinstance(value, bool) or value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _series(records: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that have `key`; None becomes NaN."""
    pairs = [(r["step"], _num(r[key]) * scale) for r in records if key in r and not isinstance(r[key], (list, dict))]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs, strict=True)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _class_series(records: Sequence[dict[str, Any]], key: str, num: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values [evaluations, classes]) of a per-class list field; null entries become NaN."""
    rows = [(r["step"], r[key]) for r in records if isinstance(r.get(key), list) and len(r[key]) == num]
    if not rows:
        return np.zeros(0), np.zeros((0, num))
    return (np.asarray([s for s, _ in rows], dtype=float),
            np.asarray([[_num(v) for v in vals] for _, vals in rows], dtype=float))


def _has_values(values: np.ndarray) -> bool:
    return values.size > 0 and bool(np.isfinite(values).any())


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15, facecolor="white")
    return path


def _class_width(num: int, per_class: float = 0.45, minimum: float = 7.0) -> float:
    return float(min(32.0, max(minimum, per_class * num + 2.0)))


def _set_class_ticks(ax: Any, names: Sequence[str], counts: Sequence[int] | None = None) -> None:
    """Class names on the x axis in data-set order; rotated when long or many, optionally with a count line."""
    num = len(names)
    labels = [f"{n}\n(n={c})" for n, c in zip(names, counts, strict=True)] if counts is not None else list(names)
    longest = max((len(n) for n in names), default=0)
    ax.set_xticks(range(num))
    if num > 40:
        ax.set_xticklabels(list(names), rotation=90, fontsize=7)
    elif longest > 3 or num > 16:
        ax.set_xticklabels(labels if counts is None else list(names), rotation=45, ha="right",
                           rotation_mode="anchor", fontsize=9)
    else:
        ax.set_xticklabels(labels, fontsize=9)
    ax.set_xlim(-0.6, num - 0.4)


def _class_colours(num: int) -> list[Any]:
    from matplotlib import colormaps

    if num <= 10:
        cmap = colormaps["tab10"]
        return [cmap(k) for k in range(num)]
    if num <= 20:
        cmap = colormaps["tab20"]
        return [cmap(k) for k in range(num)]
    cmap = colormaps["viridis"]
    return [cmap(k / max(1, num - 1)) for k in range(num)]


def _groups(run: RunData, num: int) -> dict[str, list[int]] | None:
    groups = run.final.get("class_groups") if isinstance(run.final, dict) else None
    if isinstance(groups, dict) and groups:
        return {str(g): [int(k) for k in ks] for g, ks in groups.items()}
    counts = run.labeled_counts
    if counts and len(counts) == num:
        return class_groups(counts)
    return None


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}{suffix}"


class _PlainLogFormatter(LogFormatter):
    """Log-axis tick labels as plain numbers (0.3, 2, 10) instead of 3 x 10^-1; same choice of labelled ticks."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _outline() -> Any:
    from matplotlib import patheffects

    return patheffects.withStroke(linewidth=4.0, foreground="white")


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _finish_percent_axis(ax: Any, n_lines: int, ylabel: str, empty_text: str) -> None:
    """Labels, 0-100 range, grid and (for several lines) a legend for a percentage over training steps; a
    placeholder text when nothing was drawn."""
    if not n_lines:
        _no_data(ax, empty_text)
        return
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    if n_lines > 1:
        ax.legend(fontsize=8, loc="best")


# ------------------------------------------------------------------------------------------ the run's figures
def plot_training_curves(run: RunData, out_png: Path) -> Path | None:
    """Loss terms (log y when positive), test accuracy over evaluations, mask rate over training."""
    loss_keys = [k for k in LOSS_NAMES if any(k in r for r in run.train)]
    loss_keys += sorted({k for r in run.train for k in r if k.startswith("loss") and k not in LOSS_NAMES})
    acc_keys = [("top1", "top-1"), ("balanced_accuracy", "balanced"), ("head_accuracy", "head"),
                ("medium_accuracy", "medium"), ("tail_accuracy", "tail"), ("val_top1", "validation top-1")]
    history = run.history
    if not loss_keys and not any(_has_values(_series(history, k)[1]) for k, _ in acc_keys):
        return None
    fig = _new_figure(17, 4.8)
    ax_loss, ax_acc, ax_mask = fig.subplots(1, 3)

    # losses
    drawn, zero_only, negative, zeros, points = [], [], False, 0, 0
    for key in loss_keys:
        steps, values = _series(run.train, key)
        if not _has_values(values):
            continue
        finite = values[np.isfinite(values)]
        if np.all(finite == 0):
            zero_only.append(LOSS_NAMES.get(key, key))
            continue
        negative |= bool(np.any(finite < 0))
        zeros += int(np.sum(finite == 0))
        points += finite.size
        drawn.append((key, steps, values))
    log = bool(drawn) and not negative and zeros <= 0.25 * points  # a few zeros (warm-up) become gaps on log y
    for key, steps, values in drawn:
        if log:
            values = np.where(values > 0, values, np.nan)
        style = {"color": "black", "linewidth": 2.2} if key == "loss" else {"linewidth": 1.4}
        ax_loss.plot(steps, values, marker="." if len(steps) < 30 else None, label=LOSS_NAMES.get(key, key), **style)
    if drawn:
        if log:
            ax_loss.set_yscale("log")
            ax_loss.yaxis.set_major_formatter(_PlainLogFormatter())
            ax_loss.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))
        ax_loss.set_xlabel("training step")
        ax_loss.set_ylabel("loss (mean over logging window)" + (", log scale" if log else ""))
        title = "Training losses"
        notes = ([f"zero throughout, not drawn: {', '.join(zero_only)}"] if zero_only else []) + \
            (["zero values are gaps on the log axis"] if log and zeros else [])
        if notes:
            title += "\n(" + "; ".join(notes) + ")"
        ax_loss.set_title(title)
        if len(drawn) > 1:
            ax_loss.legend(fontsize=8, loc="best")
        ax_loss.grid(True, which="major", alpha=0.3)
    else:
        ax_loss.set_title("Training losses")
        _no_data(ax_loss, "no training records\nin metrics.jsonl")

    # accuracy
    # top-1 and balanced coincide on a balanced test set: balanced is dashed on top of a wider solid top-1
    styles = {"top1": ("black", "-", 3.0, "o"), "balanced_accuracy": ("#e377c2", (0, (4, 3)), 1.6, "s"),
              "head_accuracy": (GROUP_COLOURS["head"], "-", 1.3, "^"),
              "medium_accuracy": (GROUP_COLOURS["medium"], "-", 1.3, "D"),
              "tail_accuracy": (GROUP_COLOURS["tail"], "-", 1.3, "v"), "val_top1": ("0.5", ":", 1.5, "x")}
    n_acc = 0
    for key, label in acc_keys:
        steps, values = _series(history, key)
        if not _has_values(values):
            continue
        colour, ls, lw, marker = styles[key]
        ax_acc.plot(steps, values, color=colour, linestyle=ls, marker=marker if len(steps) <= 40 else None,
                    markersize=4, label=label, linewidth=lw)
        n_acc += 1
    head = run.final.get("head_used") if isinstance(run.final, dict) else None
    ax_acc.set_title("Test accuracy over evaluations" + (f"\n(EMA model, {head} head)" if head else ""))
    _finish_percent_axis(ax_acc, n_acc, "accuracy (%)", "no evaluations logged")

    # mask rate
    n_mask = 0
    for key, label, colour in (("mask_rate", "standard head", "#2ca02c"),
                               ("mask_rate_bal", "balanced head", "#8c564b")):
        steps, values = _series(run.train, key, 100.0)
        if _has_values(values):
            ax_mask.plot(steps, values, color=colour, label=label, linewidth=1.5,
                         marker="." if len(steps) < 30 else None)
            n_mask += 1
    if not n_mask:  # no step logs: the evaluation windows' mask rate
        steps, values = _series(run.evals, "mask_rate_known", 100.0)
        if _has_values(values):
            ax_mask.plot(steps, values, color="#2ca02c", marker="o", label="per evaluation window")
            n_mask += 1
    ax_mask.set_title("Mask rate (unlabeled images above the threshold)")
    _finish_percent_axis(ax_mask, n_mask, "mask rate (% of unlabeled batch)",
                         "no mask rate logged\n(the algorithm uses no pseudo-labels)")
    return _save(fig, out_png)


def plot_per_class_accuracy(run: RunData, out_png: Path) -> Path | None:
    per_class = run.final.get("per_class_accuracy") if isinstance(run.final, dict) else None
    if not per_class:
        return None
    num = len(per_class)
    names = run.class_names(num)
    values = np.asarray([_num(v) for v in per_class])
    counts = run.labeled_counts if run.labeled_counts and len(run.labeled_counts) == num else None
    groups = _groups(run, num) or {}
    colour_of = {k: GROUP_COLOURS.get(g, "0.5") for g, ks in groups.items() for k in ks}
    fig = _new_figure(_class_width(num, 0.55, 8.0), 4.8)
    ax = fig.subplots()
    bars = ax.bar(range(num), np.nan_to_num(values), color=[colour_of.get(k, "#7f7f7f") for k in range(num)],
                  edgecolor="black", linewidth=0.5)
    annotate = counts is not None and num <= 40
    if annotate:
        for k, (bar, n) in enumerate(zip(bars, counts, strict=True)):
            txt = f"n={n}" if math.isfinite(values[k]) else f"n={n}\n(no test images)"
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1.0, txt, ha="center", va="bottom",
                    fontsize=8 if num <= 20 else 6.5, rotation=0 if num <= 20 else 90)
    balanced = _num(run.final.get("balanced_accuracy"))
    handles = [ax.axhline(balanced, color="black", linestyle="--", linewidth=1.2,
                          label=f"balanced accuracy {balanced:.1f}%")] if math.isfinite(balanced) else []
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=GROUP_COLOURS[g], edgecolor="black", label=f"{g} classes") for g in
               ("head", "medium", "tail") if g in groups] + handles
    _set_class_ticks(ax, names)
    ax.set_xlabel("class (data-set order)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 118 if annotate else 105)
    ax.set_yticks(range(0, 101, 20))
    head = run.final.get("head_used")
    ax.set_title("Per-class test accuracy" + (f" ({head} head)" if head else "") +
                 ("; n = labeled images of the class" if annotate else ""))
    ax.grid(True, axis="y", alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper center", ncols=len(handles), framealpha=0.9,
                  bbox_to_anchor=(0.5, 1.0))
    return _save(fig, out_png)


def plot_confusion(run: RunData, out_png: Path) -> Path | None:
    cm = run.final.get("confusion_matrix") if isinstance(run.final, dict) else None
    if not cm:
        return None
    counts = np.asarray(cm, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        return None
    num = counts.shape[0]
    names = run.class_names(num)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(support > 0, 100.0 * counts / np.maximum(support, 1), np.nan)
    side = min(30.0, max(6.5, 0.42 * num + 3.0))
    fig = _new_figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("share of the true class's test images (%)")
    if num <= 20:
        fontsize = 9 if num <= 12 else 7
        for i in range(num):
            for j in range(num):
                v = share[i, j]
                if not math.isfinite(v):
                    continue
                if v == 0:
                    continue  # empty cells stay blank: easier to read than a sea of zeros
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=fontsize,
                        color="white" if v > 55 else "black")
    ax.set_xticks(range(num))
    ax.set_yticks(range(num))
    longest = max((len(n) for n in names), default=0)
    small = 7 if num > 40 else 9
    if num > 40 or longest > 3:
        ax.set_xticklabels(names, rotation=90 if num > 40 else 45, ha="center" if num > 40 else "right",
                           rotation_mode="anchor" if num <= 40 else "default", fontsize=small)
    else:
        ax.set_xticklabels(names, fontsize=small)
    ax.set_yticklabels(names, fontsize=small)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    head = run.final.get("head_used")
    ax.set_title("Confusion matrix, row-normalised (%)" + (f", {head} head" if head else "") +
                 ("\ncells: % of the row; blank = 0" if num <= 20 else ""))
    return _save(fig, out_png)


def plot_pseudo_label_quality(run: RunData, out_png: Path) -> Path | None:
    num = run.num_classes
    if not num:
        return None
    p_steps, precision = _class_series(run.evals, "pseudo_label_precision", num)
    r_steps, recall = _class_series(run.evals, "pseudo_label_recall", num)
    if not _has_values(precision) and not _has_values(recall):
        return None
    names = run.class_names(num)
    colours = _class_colours(num)
    legend = num <= 20
    groups = _groups(run, num)
    fig = _new_figure(15 if legend else 14, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    marker = "o" if max(len(p_steps), len(r_steps)) <= 30 else None
    for ax, steps, values, what in ((axes[0], p_steps, precision, "precision"), (axes[1], r_steps, recall, "recall")):
        for k in range(num):
            if values.size and np.isfinite(values[:, k]).any():
                if legend:
                    ax.plot(steps, 100.0 * values[:, k], color=colours[k], marker=marker, markersize=3.5,
                            linewidth=1.3, label=names[k], linestyle="-" if k < 10 else "--")
                else:  # many classes: faint per-class lines under bold head/medium/tail means
                    ax.plot(steps, 100.0 * values[:, k], color=colours[k], linewidth=0.7, alpha=0.35)
        if not legend and groups and values.size:
            for g, ks in groups.items():
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean of nothing
                    mean = np.nanmean(values[:, ks], axis=1)
                ax.plot(steps, 100.0 * mean, color=GROUP_COLOURS.get(g, "black"), linewidth=2.6, marker=marker,
                        label=f"{g} classes (mean)", path_effects=[_outline()])
        ax.set_xlabel("training step")
        ax.set_ylim(-2, 102)
        ax.grid(True, alpha=0.3)
        if what == "precision":
            ax.set_title("Pseudo-label precision per class\n(of masked pseudo-labels predicted k, % truly k)")
            ax.set_ylabel("pseudo-label quality (%)")
        else:
            ax.set_title("Pseudo-label recall per class\n(of unlabeled images truly k, % masked and predicted k)")
        if not _has_values(values):
            _no_data(ax, f"no {what} logged")
    if legend:
        axes[1].legend(title="class", fontsize=8, title_fontsize=9, loc="center left", bbox_to_anchor=(1.02, 0.5),
                       ncols=1 if num <= 12 else 2)
    else:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(norm=Normalize(0, num - 1), cmap=colormaps["viridis"])
        fig.colorbar(mappable, ax=list(axes), label="thin lines: class index (data-set order)", fraction=0.03,
                     pad=0.02)
        if groups:
            axes[0].legend(fontsize=8, loc="lower right")
    return _save(fig, out_png)


def plot_acr(run: RunData, out_png: Path) -> Path | None:
    """ACR: the estimated unlabeled class distribution against the true one; tau1 (and the KL) over training."""
    last = next((r for r in reversed(run.evals) if isinstance(r.get("acr_unlabeled_estimate"), list)), None)
    if last is None and isinstance(run.last_eval.get("acr_unlabeled_estimate"), list):
        last = run.last_eval
    tau_steps, tau = _series(run.train, "tau1")
    tau_eval_steps, tau_eval = _series(run.evals, "acr_tau1")
    if last is None and not _has_values(tau_eval):
        return None
    kl_steps, kl = _series(run.evals, "acr_estimate_kl_to_true")
    panels = 3 if _has_values(kl) else 2
    num = len(last["acr_unlabeled_estimate"]) if last is not None else 0
    if num > 30:  # many classes: the distribution gets a full-width row
        fig = _new_figure(_class_width(num, 0.22, 14.0), 9.5)
        mosaic = fig.subplot_mosaic([["dist"] * (panels - 1), ["tau", "kl"][: panels - 1]])
        axes = [mosaic["dist"], mosaic["tau"]] + ([mosaic["kl"]] if panels == 3 else [])
    else:
        fig = _new_figure(17 if panels == 3 else 14, 4.8)
        axes = list(fig.subplots(1, panels, gridspec_kw={"width_ratios": [1.6] + [1] * (panels - 1)}))
    ax = axes[0]
    if last is not None:
        estimate = np.asarray([_num(v) for v in last["acr_unlabeled_estimate"]])
        names = run.class_names(num)
        series = [("ACR estimate (last evaluation)", estimate, "#1f77b4")]
        true = run.unlabeled_counts
        if true and len(true) == num and sum(true) > 0:
            series.append(("true (hidden labels of the pool)", np.asarray(true, float) / sum(true), "#ff7f0e"))
        labeled = run.labeled_counts
        if labeled and len(labeled) == num and sum(labeled) > 0:
            series.append(("labeled set (reference)", np.asarray(labeled, float) / sum(labeled), "#c7c7c7"))
        if num <= 30:
            width = 0.8 / len(series)
            for i, (label, values, colour) in enumerate(series):
                ax.bar(np.arange(num) + (i - (len(series) - 1) / 2) * width, 100.0 * values, width, label=label,
                       color=colour, edgecolor="black", linewidth=0.4)
        else:  # many classes: the estimate as bars, the references as step lines over them
            label, values, colour = series[0]
            ax.bar(np.arange(num), 100.0 * values, 0.8, label=label, color=colour)
            for label, values, _colour in series[1:]:
                ax.step(np.arange(num), 100.0 * values, where="mid", label=label, linewidth=1.6,
                        color="black" if label.startswith("true") else "0.55",
                        linestyle="-" if label.startswith("true") else "--")
        _set_class_ticks(ax, names)
        ax.set_xlabel("class (data-set order)")
        ax.set_ylabel("share of unlabeled images (%)")
        kl_last = _num(last.get("acr_estimate_kl_to_true"))
        has_true = any(label.startswith("true") for label, _, _ in series)
        detail = [f"symmetric KL estimate-to-true {kl_last:.3f}"] if math.isfinite(kl_last) else []
        if not has_true:
            detail.append("true distribution unavailable: no results.json")
        ax.set_title(f"Unlabeled class distribution at step {last.get('step', '?')}" +
                     (f"\n({'; '.join(detail)})" if detail else ""))
        ax.set_ylim(0, 100.0 * max(float(np.nanmax(v)) if _has_values(v) else 0.0 for _, v, _ in series) * 1.3
                    + 1e-9)
        ax.legend(fontsize=8, loc="best")
        ax.grid(True, axis="y", alpha=0.3)
    else:
        ax.set_title("Unlabeled class distribution")
        _no_data(ax, "no ACR estimate logged")
    ax = axes[1]
    n = 0
    if _has_values(tau):
        ax.plot(tau_steps, tau, color="#2ca02c", linewidth=1.5, label="tau1 (step logs)",
                marker="." if len(tau_steps) < 30 else None)
        n += 1
    if _has_values(tau_eval):
        ax.plot(tau_eval_steps, tau_eval, linestyle="none", marker="o", color="black", markersize=4,
                label="tau1 at evaluations")
        n += 1
    ax.set_title("ACR's adaptive logit-adjustment strength tau1")
    ax.set_xlabel("training step")
    ax.set_ylabel("tau1 (dimensionless)")
    ax.grid(True, alpha=0.3)
    if n > 1:
        ax.legend(fontsize=8, loc="best")
    if panels == 3:
        ax = axes[2]
        ax.plot(kl_steps, kl, color="#9467bd", marker="o", markersize=3.5, linewidth=1.5)
        ax.set_title("Estimate vs true distribution")
        ax.set_xlabel("training step")
        ax.set_ylabel("symmetric KL divergence (nats)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    return _save(fig, out_png)


def plot_memory_bank(run: RunData, out_png: Path) -> Path | None:
    """SeMi: per-class fill and mean confidence of the memory bank at the last evaluation."""
    last = next((r for r in reversed(run.evals) if isinstance(r.get("bank_fill"), list)), None)
    if last is None and isinstance(run.last_eval.get("bank_fill"), list):
        last = run.last_eval
    if last is None:
        return None
    fill = np.asarray([_num(v) for v in last["bank_fill"]])
    num = len(fill)
    names = run.class_names(num)
    conf_raw = last.get("bank_mean_confidence")
    conf = np.asarray([_num(v) for v in conf_raw]) if isinstance(conf_raw, list) and len(conf_raw) == num else None
    capacity = _num(run.cfg("semi", "bank_size"))
    if num > 30:  # many classes: one panel per row
        fig = _new_figure(_class_width(num, 0.22, 12.0), 9.0)
        ax_fill, ax_conf = fig.subplots(2, 1)
    else:
        fig = _new_figure(max(12.0, 2 * _class_width(num, 0.35, 6.0)), 4.6)
        ax_fill, ax_conf = fig.subplots(1, 2)
    colours = ["#1f77b4"] * num
    ax_fill.bar(range(num), np.nan_to_num(fill), color=colours, edgecolor="black", linewidth=0.5)
    if math.isfinite(capacity):
        ax_fill.axhline(capacity, color="black", linestyle="--", linewidth=1.2,
                        label=f"capacity per class (semi.bank_size = {capacity:.0f})")
        ax_fill.set_ylim(0, capacity * 1.18)
        ax_fill.legend(fontsize=8, loc="upper right")
    _set_class_ticks(ax_fill, names)
    ax_fill.set_xlabel("class (data-set order)")
    ax_fill.set_ylabel("filled slots (entries)")
    ax_fill.set_title(f"Memory-bank fill per class (step {last.get('step', '?')})")
    ax_fill.grid(True, axis="y", alpha=0.3)
    if conf is not None:
        shown = np.where(fill > 0, conf, np.nan)
        ax_conf.bar(range(num), np.nan_to_num(shown), color=colours, edgecolor="black", linewidth=0.5)
        for k in range(num):
            if not fill[k] > 0 and num <= 60:
                ax_conf.text(k, 0.02, "empty", ha="center", va="bottom", rotation=90, fontsize=8, color="0.35")
        _set_class_ticks(ax_conf, names)
        ax_conf.set_xlabel("class (data-set order)")
        ax_conf.set_ylabel("mean confidence (softmax probability, decayed)")
        ax_conf.set_ylim(0, 1.05)
        ax_conf.set_title(f"Memory-bank mean confidence per class (step {last.get('step', '?')})")
        ax_conf.grid(True, axis="y", alpha=0.3)
    else:
        ax_conf.set_title("Memory-bank mean confidence per class")
        _no_data(ax_conf, "not logged")
    return _save(fig, out_png)


SEMI_KEYS = ("bank_purity", "window_proto_acc", "window_classifier_acc", "window_blend_acc",
             "oheml_weight_per_class")
"""Eval-record keys only SeMi's components log (window_hard_acc is every semi-supervised algorithm's)."""


def _has_semi(algo: str) -> bool:
    """Whether an algorithm name's methods offer SeMi's figures ('semi' = 'dualhead+semi', '<base>+semi')."""
    return offers_figure(algo, "semi_parts")


def _known(algo: str) -> bool:
    """Whether an algorithm name parses (a run's name may come from another version of semi)."""
    try:
        base_spec(algo)
    except ValueError:
        return False
    return True


def _eval_records(run: RunData) -> list[dict[str, Any]]:
    """metrics.jsonl's evaluations, else results.json's last one (one point) when it carries a step."""
    if run.evals:
        return run.evals
    last = run.last_eval
    return [last] if isinstance(last, dict) and isinstance(last.get("step"), (int, float)) else []


def plot_semi_diagnostics(run: RunData, out_png: Path) -> Path | None:
    """SeMi: prototype vs classifier vs blended pseudo-label accuracy and bank purity; the hard (rejected) share and
    its accuracy; OHEML's mean weight per hidden class at the last evaluation that has it."""
    if run.algorithm != "unknown" and not _has_semi(run.algorithm):
        return None
    records = _eval_records(run)
    if not any(k in r for r in records for k in SEMI_KEYS):
        return None
    lines = [  # panel 1: (key, label, colour, style, width)
        ("window_proto_acc", "prototypes alone (nearest bank class mean)", "#9467bd", "-", 1.5),
        ("window_classifier_acc", "classifier alone (base pseudo-label)", "#1f77b4", "-", 1.5),
        ("window_blend_acc", "blend (the pseudo-label used)", "black", "-", 2.4),
        ("bank_purity", "bank purity (entries truly of their row's class)", "#2ca02c", (0, (4, 3)), 1.6),
    ]
    acc = [(label, colour, ls, lw, *_series(records, key, 100.0)) for key, label, colour, ls, lw in lines]
    # before the prototypes start (warm-up) or with them off, the used pseudo-label is the classifier's
    blend = {s: v for s, v in zip(*_series(records, "window_blend_acc"), strict=True) if math.isfinite(v)}
    used_steps, used = _series(records, "pseudo_label_accuracy", 100.0)
    used = np.where([s in blend for s in used_steps], np.nan, used)  # gaps where the blend is drawn
    used_label = "pseudo-label used, no blend " + \
        ("(semi.prototypes=false)" if run.cfg("semi", "prototypes", True) is False else "yet (warm-up)")
    acc.append((used_label, "0.55", ":", 1.6, used_steps, used))
    hard_steps, hard_acc = _series(records, "window_hard_acc", 100.0)
    share_steps, mask = _series(records, "window_mask_rate")
    if not _has_values(mask):
        share_steps, mask = _series(records, "mask_rate_known")
    hard = [("hard share (1 - mask rate)", "#d62728", "-", 2.0, share_steps, 100.0 * (1.0 - mask)),
            ("hard images' pseudo-label accuracy", "#ff7f0e", "-", 1.6, hard_steps, hard_acc),
            ("accepted images' pseudo-label accuracy", "0.55", ":", 1.6, *_series(records, "pseudo_label_accuracy",
                                                                                   100.0))]
    weights_rec = next((r for r in reversed(records) if isinstance(r.get("oheml_weight_per_class"), list)
                        and _has_values(np.asarray([_num(v) for v in r["oheml_weight_per_class"]]))), None)
    if not any(_has_values(v) for *_, v in acc[:4]) and weights_rec is None:  # only the non-SeMi lines: none
        return None
    num = len(weights_rec["oheml_weight_per_class"]) if weights_rec is not None else (run.num_classes or 0)
    if num > 30:  # many classes: the per-class bars get a full-width row
        fig = _new_figure(_class_width(num, 0.22, 14.0), 9.5)
        mosaic = fig.subplot_mosaic([["acc", "hard"], ["oheml", "oheml"]])
        ax_acc, ax_hard, ax_w = mosaic["acc"], mosaic["hard"], mosaic["oheml"]
    else:
        bar_width = _class_width(num, 0.4, 5.5)
        fig = _new_figure(11.5 + bar_width, 4.8)
        ax_acc, ax_hard, ax_w = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, bar_width / 5.5]})

    for ax, series in ((ax_acc, acc), (ax_hard, hard)):
        n = 0
        for label, colour, ls, lw, steps, values in series:
            if _has_values(values):
                ax.plot(steps, values, color=colour, linestyle=ls, linewidth=lw, label=label,
                        marker="o" if len(steps) <= 40 else None, markersize=3.5)
                n += 1
        if ax is ax_acc:
            ax.set_title("Pseudo-label accuracy on masked images\n(hidden labels: prototypes vs classifier vs blend)")
            off = run.cfg("semi", "prototypes", True) is False and run.cfg("semi", "memory_bank", True) is False
            empty = ("prototypes and memory bank switched off" if off else
                     "no prototype or bank accuracy logged\n(the prototypes start after semi.warmup_epochs)")
        else:
            ax.set_title("Hard (rejected) unlabeled images\n(below the confidence threshold)")
            empty = "no hard-sample statistics logged"
        _finish_percent_axis(ax, n, "% (over each evaluation window)", empty)

    if weights_rec is not None:
        w = np.asarray([_num(v) for v in weights_rec["oheml_weight_per_class"]])
        groups = _groups(run, num) or {}
        colour_of = {k: GROUP_COLOURS.get(g, "0.5") for g, ks in groups.items() for k in ks}
        ax_w.bar(range(num), np.nan_to_num(w), color=[colour_of.get(k, "#7f7f7f") for k in range(num)],
                 edgecolor="black", linewidth=0.5)
        for k in range(num):
            if not math.isfinite(w[k]) and num <= 60:
                ax_w.text(k, 0.02, "none masked", ha="center", va="bottom", rotation=90, fontsize=8, color="0.35")
        strength = _num(run.cfg("semi", "oheml_strength"))
        handles = []
        if math.isfinite(strength):
            handles.append(ax_w.axhline(1.0 - strength, color="black", linestyle="--", linewidth=1.1,
                                        label=f"floor {1.0 - strength:g}: fully confident\n"
                                              "(1 - semi.oheml_strength)"))
        handles.append(ax_w.axhline(1.0, color="black", linestyle=":", linewidth=1.1,
                                    label="ceiling 1: uniform prediction"))
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=GROUP_COLOURS[g], edgecolor="black", label=f"{g} classes") for g in
                   ("head", "medium", "tail") if g in groups] + handles
        _set_class_ticks(ax_w, run.class_names(num))
        ax_w.set_xlabel("hidden class of the masked image (data-set order)")
        ax_w.set_ylabel("mean OHEML loss weight")
        ax_w.set_ylim(0, 1.08 if num <= 12 else 1.25)
        ax_w.set_yticks(np.arange(0, 1.01, 0.25))
        ax_w.set_title(f"OHEML mean weight per class (step {weights_rec.get('step', '?')})\n"
                       "(higher = less confident pseudo-labels, weighted more)")
        if num <= 12:  # a narrow panel: the legend beside it
            ax_w.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        else:
            ax_w.legend(handles=handles, fontsize=8, loc="upper center", ncols=len(handles), framealpha=0.9)
        ax_w.grid(True, axis="y", alpha=0.3)
    else:
        ax_w.set_title("OHEML mean weight per class")
        _no_data(ax_w, "OHEML is switched off (semi.oheml=false)" if run.cfg("semi", "oheml", True) is False else
                 "no OHEML weights logged\n(they start after semi.warmup_epochs)")
    return _save(fig, out_png)


FIGURES: list[tuple[str, str, Callable[[RunData, Path], Path | None], str]] = [
    # (file, heading, function, caption)
    ("training_curves.png", "Training curves", plot_training_curves,
     "Loss terms averaged over each logging window; test accuracy of the EMA model at each evaluation (top-1, "
     "balanced = mean per-class accuracy, and the head/medium/tail thirds of the classes by labeled count); the "
     "share of unlabeled images whose pseudo-label passed the confidence threshold."),
    ("per_class_accuracy.png", "Per-class test accuracy", plot_per_class_accuracy,
     "Final test accuracy of each class in data-set order, coloured by head/medium/tail group; n = the class's "
     "labeled images."),
    ("confusion_matrix.png", "Confusion matrix", plot_confusion,
     "Row-normalised: each row is a true class and sums to 100%."),
    ("pseudo_label_quality.png", "Pseudo-label quality per class", plot_pseudo_label_quality,
     "Precision and recall of the masked pseudo-labels of each class over each evaluation window, measured with "
     "the hidden labels of the unlabeled images."),
    ("acr_distribution.png", "ACR: unlabeled class distribution and tau1", plot_acr,
     "ACR's running estimate of the unlabeled class distribution at the last evaluation against the true "
     "(hidden) one, and its adaptive logit-adjustment strength tau1."),
    ("memory_bank.png", "SeMi: memory bank", plot_memory_bank,
     "Entries per class in SeMi's class-balanced memory bank and their mean (decayed) confidence at the last "
     "evaluation."),
    ("semi_diagnostics.png", "SeMi: what its parts do", plot_semi_diagnostics,
     "Left: of the unlabeled images that passed the confidence threshold (masked), the share whose pseudo-label "
     "equals the image's hidden true label, over each evaluation window: for the prototype guess alone (the "
     "nearest class mean of the memory bank), the classifier's own guess alone, and the blend of the two that "
     "training actually uses (grey dotted: the pseudo-label used before the blend starts). Dashed green: bank "
     "purity, the share of memory-bank entries that truly belong to the class they are stored under. Middle: the "
     "share of unlabeled images rejected by the threshold (the hard ones) and how often their pseudo-label would "
     "have been right, next to the accepted images'. Right: OHEML's mean loss weight for the masked images of "
     "each true class at the last evaluation; the weight grows with the prediction's uncertainty, so classes the "
     "model is unsure about count more."),
]


def _why_absent(run: RunData, name: str) -> str:
    """Why a figure has no data, in the words of what the run is."""
    algo = run.algorithm
    if not run.train and not run.evals and run.results is None:
        return "no data in the run directory yet"
    if not run.evals and not run.history:
        wait = "no evaluation logged yet"
    else:
        wait = "not logged"
    if name == "training_curves.png":
        return "no training or evaluation records"
    if name in ("per_class_accuracy.png", "confusion_matrix.png"):
        return "needs results.json (written when the run finishes; metrics.jsonl does not hold it)" \
            if run.results is None else "not in results.json"
    if name == "pseudo_label_quality.png":
        if algo != "unknown" and _known(algo) and not base_spec(algo).uses_unlabeled:
            return f"{algo} makes no pseudo-labels"
        return f"per-class pseudo-label statistics {wait}"
    if name == "acr_distribution.png":
        if algo != "unknown" and not offers_figure(algo, "acr_estimate"):  # semi = dualhead+semi: no estimate
            return f"{algo} is not ACR-based"
        return f"ACR's estimate {wait}"
    if name == "memory_bank.png":
        if algo != "unknown" and not _has_semi(algo):
            return f"{algo} has no SeMi memory bank"
        if run.cfg("semi", "memory_bank", True) is False:
            return "the memory bank is switched off (semi.memory_bank=false)"
        return f"the memory bank's state {wait}"
    if name == "semi_diagnostics.png":
        if algo != "unknown" and not _has_semi(algo):
            return f"{algo} has no SeMi components"
        if all(run.cfg("semi", part, True) is False for part in ("memory_bank", "prototypes", "oheml")):
            return "SeMi's memory bank, prototypes and OHEML are switched off (semi.memory_bank, semi.prototypes, " \
                "semi.oheml = false)"
        if any(k in r for r in _eval_records(run) for k in SEMI_KEYS):
            return "SeMi's diagnostics hold no values yet (no masked images with a known hidden label)"
        if not run.evals and not run.history:
            return "SeMi's diagnostics: no evaluation logged yet"
        return "SeMi's diagnostics (bank purity, prototype and OHEML statistics) not logged (a run from before " \
            "they were added?)"
    return "no data"


# ------------------------------------------------------------------------------------------ the page
def _summary_rows(run: RunData) -> list[tuple[str, str]]:
    f = run.final if isinstance(run.final, dict) else {}
    rows: list[tuple[str, str]] = []
    head = f.get("head_used")
    rows.append(("Algorithm", run.algorithm + (f" (evaluated with the {head} head)" if head else "")))
    d = run.section("data")
    num = run.num_classes
    model = run.cfg("model", "name")
    rows.append(("Data set", f"{d.get('name', 'unknown')}" + (f", {num} classes" if num else "") +
                 (f"; model {model}" if model else "")))
    if d:
        dist = d.get("unlabeled_distribution", "?")
        gamma_u = d.get("imbalance_unlabeled")
        if gamma_u is None:
            gamma_u_text = "1 (uniform)" if dist == "uniform" else f"{d.get('imbalance_labeled', '?')} (= gamma_l)"
        else:
            gamma_u_text = str(gamma_u)
        rows.append(("Imbalance", f"N_1 = {d.get('num_labeled_max', '?')}, M_1 = {d.get('num_unlabeled_max', '?')}, "
                                  f"gamma_l = {d.get('imbalance_labeled', '?')}, gamma_u = {gamma_u_text}, "
                                  f"unlabeled distribution {dist}"))
    lc, uc = run.labeled_counts, run.unlabeled_counts
    if lc or uc:
        rows.append(("Images", (f"{sum(lc)} labeled" if lc else "") + (", " if lc and uc else "") +
                     (f"{sum(uc)} in the unlabeled set (the labeled images included, labels hidden)" if uc else "")))
    source = "" if run.results or not f else f" (last evaluation in metrics.jsonl, step {f.get('step', '?')})"
    rows.append(("Test top-1", _fmt(f.get("top1"), 2, "%") + source))
    rows.append(("Balanced accuracy", _fmt(f.get("balanced_accuracy"), 2, "%")))
    rows.append(("Head / medium / tail", " / ".join(_fmt(f.get(f"{g}_accuracy"), 1, "%")
                                                     for g in ("head", "medium", "tail"))))
    history = run.history
    summary = (run.results or {}).get("summary") or summarize_history(history)
    n_hist = len([h for h in history if "top1" in h])
    if summary:
        rows.append(("Best (top-1 / balanced)", f"{_fmt(summary.get('best_top1'), 2, '%')} / "
                                                f"{_fmt(summary.get('best_balanced_accuracy'), 2, '%')}"))
        rows.append(("Mean of the last 20 evaluations (top-1 / balanced)" +
                     (f", {n_hist} available" if 0 < n_hist < 20 else ""),
                     f"{_fmt(summary.get('mean_last20_top1'), 2, '%')} / "
                     f"{_fmt(summary.get('mean_last20_balanced_accuracy'), 2, '%')}"))
        if summary.get("best_val_top1") is not None:
            rows.append(("Best validation top-1", _fmt(summary.get("best_val_top1"), 2, "%")))
    mask = (run.results or {}).get("mask_rate")
    if mask is None:
        mask = run.last_eval.get("mask_rate_known")
    pl_acc = ((run.results or {}).get("pseudo_labels") or {}).get("pseudo_label_accuracy",
                                                                   run.last_eval.get("pseudo_label_accuracy"))
    if mask is not None or pl_acc is not None:
        rows.append(("Mask rate / pseudo-label accuracy (last window)",
                     f"{_fmt(100 * _num(mask), 1, '%')} / {_fmt(100 * _num(pl_acc), 1, '%')}"))
    else:
        no_pl = _known(run.algorithm) and not base_spec(run.algorithm).uses_unlabeled
        rows.append(("Mask rate", "n/a" + (" (no pseudo-labels)" if no_pl else "")))
    steps, planned = run.steps, run.planned_steps
    text = "n/a" if steps is None else f"{steps}" + (f" of {planned}" if planned else "")
    secs = (run.results or {}).get("train_seconds")
    if secs is not None:
        text += f" in {_num(secs):.0f} s"
    if (run.results or {}).get("skipped_steps"):
        text += f" ({run.results['skipped_steps']} non-finite steps skipped)"
    rows.append(("Steps", text))
    seed = (run.results or {}).get("seed", run.cfg("train", "seed"))
    if seed is not None:
        rows.append(("Seed", str(seed)))
    return rows


def _per_class_table(run: RunData) -> str:
    num = run.num_classes
    if not num:
        return ""
    names = run.class_names(num)
    f = run.final if isinstance(run.final, dict) else {}
    cols: list[tuple[str, list[str]]] = []
    lc, uc = run.labeled_counts, run.unlabeled_counts
    if lc and len(lc) == num:
        cols.append(("labeled", [str(v) for v in lc]))
    if uc and len(uc) == num:
        cols.append(("unlabeled set (true classes, incl. labeled)", [str(v) for v in uc]))
    acc = f.get("per_class_accuracy")
    if isinstance(acc, list) and len(acc) == num:
        cols.append(("test accuracy", [_fmt(v, 1, "%") for v in acc]))
    last = run.last_eval
    for key, label in (("pseudo_label_precision", "PL precision"), ("pseudo_label_recall", "PL recall")):
        values = last.get(key)
        if isinstance(values, list) and len(values) == num:
            cols.append((label, [_fmt(100 * _num(v), 1, "%") for v in values]))
    est = last.get("acr_unlabeled_estimate")
    if isinstance(est, list) and len(est) == num:
        cols.append(("ACR estimate", [_fmt(100 * _num(v), 1, "%") for v in est]))
    if not cols:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c, _ in cols)
    body = "".join("<tr><td>" + html.escape(names[k]) + "</td>" + "".join(f"<td>{v[k]}</td>" for _, v in cols) +
                   "</tr>" for k in range(num))
    return (f"<details><summary>Per-class numbers ({num} classes)</summary><table class='num'><tr><th>class</th>"
            f"{head}</tr>{body}</table></details>")


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1800px;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.sub { color: #666; font-size: 13px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f3f3f3; } table.num td { text-align: right; } table.num td:first-child { text-align: left; }
.notes { background: #fff8e1; border: 1px solid #f0d98c; padding: 8px 14px; margin: 12px 0; font-size: 14px; }
figure { margin: 16px 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; max-width: 1100px; margin-top: 4px; }
.skipped { color: #777; font-size: 13px; }
"""


def _page(run: RunData, figures: list[tuple[str, str, Path]], skipped: list[tuple[str, str]]) -> str:
    esc = html.escape
    title = f"semi report: {run.run_dir.name or run.run_dir}"
    env = (run.results or {}).get("environment") or {}
    sub = [f"run directory {esc(str(run.run_dir.resolve()))}"]
    if env.get("git_commit"):
        sub.append(f"git {esc(str(env['git_commit'])[:12])}")
    if env.get("semi"):
        sub.append(f"semi {esc(str(env['semi']))}")
    sub.append(f"generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
             f"<div class='sub'>{' &middot; '.join(sub)}</div>"]
    if run.notes:
        parts.append("<div class='notes'><b>Note</b><ul>" + "".join(f"<li>{esc(n)}</li>" for n in run.notes) +
                     "</ul></div>")
    parts.append("<h2>Summary</h2><table>")
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _summary_rows(run)]
    parts.append("</table>")
    parts.append(_per_class_table(run))
    for heading, caption, png in figures:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(heading)}</h2><figure><img src='data:image/png;base64,{data}' alt='{esc(heading)}'>"
                     f"<figcaption>{esc(caption)} (file: report/{esc(png.name)})</figcaption></figure>")
    if skipped:
        parts.append("<h2>Not drawn</h2><ul class='skipped'>" +
                     "".join(f"<li><b>{esc(h)}</b>: {esc(why)}</li>" for h, why in skipped) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(run_dir: Path) -> Path:
    """Write the figures to `run_dir/report/*.png` and the self-contained page `run_dir/report/index.html`;
    returns the page's path. Missing or partial inputs never stop it: the page says what was left out."""
    run = load_run(Path(run_dir))
    out = run.run_dir / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SemiError(f"cannot create {out}: {exc.strerror or exc}") from None
    figures: list[tuple[str, str, Path]] = []
    skipped: list[tuple[str, str]] = []
    for name, heading, draw, caption in FIGURES:
        target = out / name
        try:
            png = draw(run, target)
            absent = "" if png is not None else _why_absent(run, name)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not cost the whole report
            png = None
            absent = f"could not be drawn ({type(exc).__name__}: {exc})"
        if png is None:
            if target.exists():  # a stale figure of an earlier report
                target.unlink()
            skipped.append((heading, absent))
        else:
            figures.append((heading, caption, png))
    page = out / "index.html"
    try:
        text = _page(run, figures, skipped)
    except Exception as exc:  # noqa: BLE001 - an unexpected value in a file: still deliver the figures
        run.notes.append(f"the summary could not be built ({type(exc).__name__}: {exc}); figures only.")
        run.config, run.results = {}, None
        text = _page(run, figures, skipped)
    page.write_text(text, encoding="utf-8")
    return page


# ------------------------------------------------------------------------------------------ sweep figures
def _ordered(values: Iterable[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    vals = np.asarray([v for v in (_num(x) for x in values) if math.isfinite(v)], dtype=float)
    if vals.size == 0:
        return float("nan"), float("nan"), 0
    return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0, int(vals.size)


def _placeholder(out_png: Path, text: str) -> Path:
    fig = _new_figure(7, 3)
    ax = fig.subplots()
    ax.set_title("No data")
    _no_data(ax, text)
    return _save(fig, Path(out_png))


_COMPARISON_METRICS = (("top1", "top-1", "#1f77b4"), ("balanced_accuracy", "balanced", "#ff7f0e"))


def plot_method_comparison(records: Sequence[dict[str, Any]], out_png: Path | str,
                           metrics: Sequence[tuple[str, str, str]] = _COMPARISON_METRICS,
                           title: str = "Method comparison: top-1 and balanced accuracy") -> Path:
    """One panel per setting; per method, bars of the mean of each metric over seeds (default top-1 and balanced
    accuracy; `metrics` = (record key, label, colour) pairs) with the standard deviation as error bars (n =
    number of seeds). Records: dicts with setting, method, seed and the metric keys (percent). Settings and
    methods keep their order of first appearance."""
    out_png = Path(out_png)
    records = [r for r in records if isinstance(r, dict)]
    if not records:
        return _placeholder(out_png, "no records to compare")
    settings = _ordered(str(r.get("setting", "?")) for r in records)
    methods = _ordered(str(r.get("method", "?")) for r in records)
    width = max(3.8, 1.0 * len(methods) + 1.4)
    fig = _new_figure(min(40.0, width * len(settings) + 0.5), 5.0)
    axes = np.atleast_1d(fig.subplots(1, len(settings), sharey=True, squeeze=False)[0])
    long_names = max(len(m) for m in methods) > 7 or len(methods) > 4
    top = 0.0
    for ax, setting in zip(axes, settings, strict=True):
        rows = [r for r in records if str(r.get("setting", "?")) == setting]
        bar_w = 0.76 / len(metrics)
        for i, (key, label, colour) in enumerate(metrics):
            stats = [_mean_std([r.get(key) for r in rows if str(r.get("method", "?")) == m]) for m in methods]
            means = np.asarray([s[0] for s in stats])
            stds = np.asarray([s[1] for s in stats])
            xs = np.arange(len(methods)) + (i - (len(metrics) - 1) / 2) * bar_w
            ax.bar(xs, np.nan_to_num(means), bar_w, yerr=np.nan_to_num(stds), capsize=3, color=colour,
                   edgecolor="black", linewidth=0.5, label=label, error_kw={"elinewidth": 1.0})
            for x, (mean, std, n) in zip(xs, stats, strict=True):
                if not n:
                    continue
                top = max(top, mean + std)
                if mean >= 15:  # the value inside the bar, clear of the error bar's line
                    ax.text(x, 1.5, f"{mean:.1f}", ha="center", va="bottom", fontsize=8, rotation=90, color="white",
                            fontweight="bold")
                else:
                    ax.text(x, mean + std + 1.0, f"{mean:.1f}", ha="center", va="bottom", fontsize=8, rotation=90)
        counts = [len({r.get("seed") for r in rows if str(r.get("method", "?")) == m}) for m in methods]
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([f"{m}\n(n={c})" if not long_names else f"{m} (n={c})" for m, c in zip(methods, counts,
                                                                                                    strict=True)],
                           rotation=30 if long_names else 0, ha="right" if long_names else "center",
                           rotation_mode="anchor" if long_names else "default", fontsize=9)
        ax.set_title(f"setting: {setting}")
        ax.set_xlabel("method (n = seeds)")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), mean ± std over seeds")
    axes[0].set_ylim(0, min(100.0, top) + 14 if top > 0 else 100)
    axes[0].legend(fontsize=8, loc="upper left", ncols=2)
    fig.suptitle(title)
    return _save(fig, out_png)


def plot_per_class(records: Sequence[dict[str, Any]], out_png: Path | str, setting: str = "reversed",
                   methods: Sequence[str] = ("fixmatch", "acr", "semi")) -> Path:
    """Grouped bars of the mean per-class test accuracy of each method (std over seeds as error bars) in one
    setting. Records carry setting, method, seed and per_class_accuracy (a list in percent, data-set order);
    optional class_names and labeled_counts label the x axis."""
    out_png = Path(out_png)
    rows = [r for r in records if isinstance(r, dict) and str(r.get("setting")) == str(setting)
            and isinstance(r.get("per_class_accuracy"), list) and r["per_class_accuracy"]]
    present = [m for m in methods if any(str(r.get("method")) == m for r in rows)]
    if not present:
        return _placeholder(out_png, f"no per-class records for setting {setting!r}\nand methods "
                                     f"{', '.join(methods)}")
    num = max(len(r["per_class_accuracy"]) for r in rows)
    names_rec = next((r["class_names"] for r in rows if isinstance(r.get("class_names"), list)
                      and len(r["class_names"]) == num), None)
    names = [str(n) for n in names_rec] if names_rec else [str(k) for k in range(num)]
    counts = next((r["labeled_counts"] for r in rows if isinstance(r.get("labeled_counts"), list)
                   and len(r["labeled_counts"]) == num), None)
    fig = _new_figure(_class_width(num, 0.25 * len(present) + 0.35, 9.0), 5.0)
    ax = fig.subplots()
    bar_w = 0.8 / len(present)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, method in enumerate(present):
        mine = [r["per_class_accuracy"] for r in rows if str(r.get("method")) == method]
        table = np.full((len(mine), num), np.nan)
        for j, values in enumerate(mine):
            table[j, :len(values)] = [_num(v) for v in values]
        stats = [_mean_std(table[:, k]) for k in range(num)]
        means = np.asarray([s[0] for s in stats])
        stds = np.asarray([s[1] for s in stats])
        xs = np.arange(num) + (i - (len(present) - 1) / 2) * bar_w
        ax.bar(xs, np.nan_to_num(means), bar_w, yerr=np.nan_to_num(stds), capsize=2, label=f"{method} (n={len(mine)})",
               color=colours[i % len(colours)], edgecolor="black", linewidth=0.4, error_kw={"elinewidth": 0.8})
    if counts is not None and num <= 30 and max(len(n) for n in names) <= 3:
        _set_class_ticks(ax, names, counts)
        ax.set_xlabel("class (data-set order; n = labeled images)")
    else:
        _set_class_ticks(ax, names)
        ax.set_xlabel("class (data-set order)")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    missing = [m for m in methods if m not in present]
    ax.set_title(f"Per-class test accuracy, setting: {setting}" +
                 (f"\n(no records for: {', '.join(missing)})" if missing else ""))
    ax.legend(fontsize=8, loc="upper center", ncols=len(present), bbox_to_anchor=(0.5, 1.0))
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out_png)
