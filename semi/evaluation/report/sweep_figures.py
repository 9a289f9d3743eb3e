"""Figures of a benchmark sweep's records (one dict per run), reused by the benchmark scripts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semi.evaluation.report.plotting import _class_width, _new_figure, _no_data, _num, _save, _set_class_ticks


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
