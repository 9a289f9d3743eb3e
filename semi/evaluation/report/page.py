"""The report page: a summary table, the per-class table and the figures in one self-contained HTML file."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Callable
from pathlib import Path

from semi.errors import SemiError
from semi.evaluation.metrics import summarize_history
from semi.evaluation.report.method_figures import _known, _why_absent, plot_acr, plot_memory_bank, plot_semi_diagnostics
from semi.evaluation.report.plotting import _fmt, _num
from semi.evaluation.report.run_data import RunData, load_run
from semi.evaluation.report.training_figures import (
    plot_confusion,
    plot_per_class_accuracy,
    plot_pseudo_label_quality,
    plot_training_curves,
)
from semi.specs import base_spec


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
    if f.get("macro_f1") is not None:
        shifted = f.get("shifted_accuracy") or {}
        rows.append(("Macro-F1 / ECE / top-5", f"{_fmt(f.get('macro_f1'), 2, '%')} / {_fmt(f.get('ece'), 2, '%')} / "
                     f"{_fmt(f.get('top5'), 2, '%')}"))
        rows.append(("Test set resampled: labeled class mix / reversed",
                     f"{_fmt(shifted.get('consistent'), 2, '%')} / {_fmt(shifted.get('reversed'), 2, '%')}"))
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


