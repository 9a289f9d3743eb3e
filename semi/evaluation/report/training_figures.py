"""Figures every run offers: training curves, per-class accuracy, the confusion matrices, pseudo-label quality."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from semi.evaluation.report.plotting import (
    GROUP_COLOURS,
    LOSS_NAMES,
    _class_colours,
    _class_series,
    _class_width,
    _finish_percent_axis,
    _groups,
    _has_values,
    _new_figure,
    _no_data,
    _num,
    _outline,
    _PlainLogFormatter,
    _save,
    _series,
    _set_class_ticks,
)
from semi.evaluation.report.run_data import RunData


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


