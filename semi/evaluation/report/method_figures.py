"""Figures that apply to some methods only, each saying from the method's spec when it applies: ACR's estimate
of the unlabeled class mix, SeMi's memory bank and its diagnostics; and why a figure was left out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from semi.evaluation.report.plotting import (
    GROUP_COLOURS,
    _class_width,
    _finish_percent_axis,
    _groups,
    _has_values,
    _new_figure,
    _no_data,
    _num,
    _save,
    _series,
    _set_class_ticks,
)
from semi.evaluation.report.run_data import RunData
from semi.specs import base_spec, offers_figure


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


