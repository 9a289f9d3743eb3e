"""Drawing helpers shared by the report's figures: Agg figures (never pyplot), class axes, colours, placeholders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from semi.evaluation.metrics import class_groups
from semi.evaluation.report.run_data import RunData

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


