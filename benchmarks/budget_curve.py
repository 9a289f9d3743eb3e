"""SeMi and training length: the budget curve of the MNIST-LT protocol, from the accuracy benchmark's records.

    python benchmarks/budget_curve.py                    # tables (results/budget-mnist.md, BENCHMARKS.md) + figures
    python benchmarks/budget_curve.py --protocol fashion

Reads `results/accuracy-<protocol>.json` (the protocol's own 2,000 steps) and `results/accuracy-<protocol>-<B>.json`
(`accuracy.py --budget B`), and reports per setting and budget:
- paired differences (SeMi - its dual-head base, SeMi - ACR, SeMi - FixMatch, ACR - the base; mean and 95%
  t-interval over common seeds), as a table and a figure against steps; for Fashion-MNIST-LT also the dual-head
  base and SeMi against supervised-only's balanced head;
- per-class outcomes: which classes each run learns (test accuracy above 50%), and per method the share of runs that
  learn the rarest labeled class, with an exact (Clopper-Pearson) 95% binomial interval; paired by seed, which of
  SeMi and its base (or ACR) learns it, with the exact sign test on the seeds where only one does; and where SeMi's
  difference from its base (and each ablation's) falls, class by class;
- SeMi's diagnostics at the end of each run (the last evaluation window): prototype accuracy on accepted images,
  bank purity, OHEML's mean weight, hard-sample accuracy, mask rate and pseudo-label accuracy, as a table and a
  figure against steps;
- how the rarest class is learned, from each record's `rarest_class` trace (its accepted pseudo-labels, their
  precision and its bank row at every evaluation), runs that learn it against runs that do not, as a table and a
  figure of its accepted pseudo-labels against steps.

Records written before the trace existed get it from their run folders with `--backfill RUNS_DIR`
(`RUNS_DIR/<record protocol>/<setting>_<method>_<seed>/`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from accuracy import _by_seed, replace_marked  # noqa: E402

SETTINGS = ("consistent", "reversed", "uniform")
PAIRS = (("semi", "dualhead"), ("semi", "acr"), ("semi", "fixmatch"), ("acr", "dualhead"),
         ("semi-no_bank", "semi"), ("semi-no_oheml", "semi"), ("dualhead+threshold_0.7", "dualhead"))
"""The first three are the difference figure's lines; the last three are the ablations (a part of SeMi removed;
SeMi's threshold alone on the base)."""
SUPERVISED_PAIRS = (("dualhead", "supervised"), ("semi", "supervised"))
"""Whether semi-supervision pays at all (the Fashion-MNIST-LT question): against supervised-only's balanced
(logit-adjusted) head, the fair baseline for learners that are read from a balanced head, as the accuracy benchmark
compares them."""
METHODS = ("supervised", "fixmatch", "dualhead", "acr", "semi", "semi-no_bank", "semi-no_oheml",
           "dualhead+threshold_0.7")
LEARNED = 50.0
"""A class counts as learned when its test accuracy is above this (%)."""
DIAGNOSTICS = (("window_proto_acc", "prototype acc. (accepted)", 100), ("bank_purity", "bank purity", 100),
               ("oheml_mean_weight", "OHEML mean weight", 1), ("window_hard_acc", "hard-sample acc.", 100),
               ("window_mask_rate", "mask rate", 100), ("window_pseudo_label_acc", "pseudo-label acc.", 100),
               ("window_blend_change", "labels the blend changes", 100),
               ("window_blend_fix", "of those, made right", 100))


def load_budget_records(protocol: str) -> dict[int, list[dict]]:
    """{budget: records}: the protocol's own file (its records' step count) and every `-<budget>` file."""
    out: dict[int, list[dict]] = {}
    for path in sorted((ROOT / "results").glob(f"accuracy-{protocol}*.json")):
        suffix = path.stem[len(f"accuracy-{protocol}"):]
        if suffix and not suffix[1:].isdigit():
            continue
        for r in json.loads(path.read_text())["records"]:
            out.setdefault(int(r.get("budget") or r["steps"]), []).append(r)
    return dict(sorted(out.items()))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def diagnostic(record: dict, key: str) -> float | None:
    d = record.get("diagnostics") or {}
    if key == "oheml_mean_weight":
        w = [v for v in d.get("oheml_weight_per_class") or [] if v is not None and not math.isnan(v)]
        return statistics.mean(w) if w else None
    v = d.get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def rarest_class(record: dict) -> int:
    """The class with the fewest labeled images: its trace's, or (records without one) the last class, the rarest
    under the protocols' long tails."""
    trace = record.get("rarest_class")
    return trace["class"] if trace else len(record["per_class_accuracy"]) - 1


def learns_rarest(record: dict) -> bool | None:
    """Whether the run learns its rarest class (test accuracy above LEARNED); None: that accuracy is unknown."""
    acc = record["per_class_accuracy"][rarest_class(record)]
    return None if acc is None else acc > LEARNED


def _balanced_top1(record: dict) -> float | None:
    return (record.get("balanced_head") or {}).get("top1")


def markdown(by_budget: dict[int, list[dict]], supervised_pairs: tuple[tuple[str, str], ...] = ()) -> str:
    """The paired differences (PAIRS, then `supervised_pairs` against the baseline's balanced head), the runs that
    learn the rarest class and SeMi's diagnostics, per setting and budget."""
    from semi.evaluation.metrics import paired_difference

    lines = ["Paired differences of final EMA test top-1 (points; mean [95% t-interval], n seeds):", "",
             "| setting | a - b | " + " | ".join(f"{b:,} steps" for b in by_budget) + " |",
             "|---|---|" + "---:|" * len(by_budget)]
    rows = [(a, b, f"{a} - {b}", lambda r: r["top1"]) for a, b in PAIRS]
    rows += [(a, b, f"{a} - {b} (balanced head)", _balanced_top1) for a, b in supervised_pairs]
    for setting in SETTINGS:
        for a, b, label, b_key in rows:
            cells = []
            for recs in by_budget.values():
                base = {s: v for s, v in _by_seed(recs, setting, b, key=b_key).items() if v is not None}
                d = paired_difference(_by_seed(recs, setting, a), base)
                cells.append("-" if d is None else f"{d['mean']:+.1f} ({d['n']})" if d["n"] == 1 else
                             f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] ({d['n']})")
            if any(c != "-" for c in cells):
                lines.append(f"| {setting} | {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Runs that learn the rarest labeled class (test accuracy > {LEARNED:.0f}%): k of n, exact 95% "
              "interval of the share; and the mean number of classes learned:", "",
              "| setting | method | " + " | ".join(f"{b:,} steps" for b in by_budget) + " |",
              "|---|---|" + "---:|" * len(by_budget)]
    for setting in SETTINGS:
        for method in METHODS:
            cells = []
            for recs in by_budget.values():
                rs = [r for r in recs if r["setting"] == setting and r["method"] == method]
                if not rs:
                    cells.append("-")
                    continue
                k = sum(learns_rarest(r) is True for r in rs)
                low, high = clopper_pearson(k, len(rs))
                learned = statistics.mean(sum(v is not None and v > LEARNED for v in r["per_class_accuracy"])
                                          for r in rs)
                cells.append(f"{k}/{len(rs)} [{low:.2f}, {high:.2f}]; {learned:.1f} classes")
            if any(c != "-" for c in cells):
                lines.append(f"| {setting} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "SeMi's diagnostics in the last evaluation window (mean over seeds):", "",
              "| setting | diagnostic | " + " | ".join(f"{b:,} steps" for b in by_budget) + " |",
              "|---|---|" + "---:|" * len(by_budget)]
    for setting in SETTINGS:
        for key, label, scale in DIAGNOSTICS:
            cells = []
            for recs in by_budget.values():
                vals = [diagnostic(r, key) for r in recs if r["setting"] == setting and r["method"] == "semi"]
                vals = [v * scale for v in vals if v is not None]
                cells.append(f"{statistics.mean(vals):.{2 if scale == 1 else 1}f}" if vals else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {setting} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PER_CLASS_PAIRS = (("semi", "dualhead"), ("semi-no_oheml", "semi"), ("semi-no_bank", "semi"),
                   ("dualhead+threshold_0.7", "dualhead"))
"""SeMi against its base, then what removing each part of SeMi (or adding its threshold to the base) does, class by
class: where a mean top-1 difference comes from."""


def _per_class(r: dict) -> list[float | None]:
    return r["per_class_accuracy"]


def _mean(values: list[float | None]) -> float | None:
    """The mean of the known values (None: none known)."""
    known = [v for v in values if v is not None]
    return statistics.mean(known) if known else None


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def per_class_markdown(by_budget: dict[int, list[dict]],
                       pairs: tuple[tuple[str, str], ...] = PER_CLASS_PAIRS) -> str:
    """Per budget, setting and pair (`pairs`), the mean over common seeds of a - b in each class's test
    accuracy (points), and over the most-labeled half of the classes against the rest. Classes are numbered as the
    protocols' long tails order them: class 0 has the most labeled images. The seeds column counts the paired
    seeds; a class whose accuracy a record lacks (None) is averaged over the seeds that have it. Records of one
    protocol share a class count. Budget 0 (unknown) shows as "-". Empty without a common seed anywhere."""
    lines, width = [], 0
    for budget, recs in by_budget.items():
        for setting in SETTINGS:
            for a, b in pairs:
                pa, pb = _by_seed(recs, setting, a, _per_class), _by_seed(recs, setting, b, _per_class)
                seeds = sorted(set(pa) & set(pb))
                if not seeds:
                    continue
                n_classes = len(pa[seeds[0]])
                width = max(width, n_classes)
                diffs = [[None if x is None or y is None else x - y for x, y in zip(pa[s], pb[s])] for s in seeds]
                per_class = [_mean([d[c] for d in diffs]) for c in range(n_classes)]
                half = (n_classes + 1) // 2
                cols = [*per_class, _mean(per_class[:half]), _mean(per_class[half:])]
                lines.append(f"| {f'{budget:,}' if budget else '-'} | {setting} | {a} - {b} | {len(seeds)} | "
                             + " | ".join(_signed(v) for v in cols) + " |")
    if not lines:
        return ""
    half = (width + 1) // 2
    return "\n".join([
        "Where the differences fall, class by class: mean over common seeds of a - b in each class's test accuracy "
        f"(points; class 0 has the most labeled images, class {width - 1} the fewest), and over classes "
        f"0-{half - 1} against {half}-{width - 1}:", "",
        "| steps | setting | a - b | seeds | " + " | ".join(str(c) for c in range(width))
        + f" | 0-{half - 1} | {half}-{width - 1} |",
        "|---:|---|---|---:|" + "---:|" * (width + 2), *lines])


RAREST_PAIRS = (("semi", "dualhead"), ("semi", "acr"), ("semi-no_bank", "semi"), ("semi-no_oheml", "semi"),
                ("dualhead+threshold_0.7", "dualhead"))
"""SeMi against its base and ACR, then the ablations: which part of SeMi its rarest-class learning needs."""
RAREST_POOLED = ("reversed", "uniform")
"""The settings where the unlabeled pool's class mix is not the labeled one's, pooled in one more row."""


def sign_test(a_only: int, b_only: int) -> float | None:
    """Exact two-sided sign test (McNemar's exact test) of paired binary outcomes: the probability, if a and b were
    equally likely to be the one that learns, of a split of the discordant pairs at least this uneven. None: no
    discordant pair."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return None if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)


def paired_rarest_markdown(by_budget: dict[int, list[dict]],
                           pairs: tuple[tuple[str, str], ...] = RAREST_PAIRS) -> str:
    """Per budget, setting (and the RAREST_POOLED settings together) and pair, the seeds run by both methods, split
    by which of the two learns the rarest class (a only, b only, both, neither; a record whose rarest-class accuracy
    is unknown is left out), with the exact sign test on the discordant seeds. Empty without a common seed."""
    lines = []
    for budget, recs in by_budget.items():
        groups = [(s, (s,)) for s in SETTINGS] + [(" + ".join(RAREST_POOLED), RAREST_POOLED)]
        for label, settings in groups:
            for a, b in pairs:
                outcomes = []
                for setting in settings:
                    la, lb = _by_seed(recs, setting, a, learns_rarest), _by_seed(recs, setting, b, learns_rarest)
                    outcomes += [(la[s], lb[s]) for s in sorted(set(la) & set(lb))
                                 if la[s] is not None and lb[s] is not None]
                if not outcomes:
                    continue
                a_only = sum(x and not y for x, y in outcomes)
                b_only = sum(y and not x for x, y in outcomes)
                both = sum(x and y for x, y in outcomes)
                p = sign_test(a_only, b_only)
                lines.append(f"| {budget:,} | {label} | {a} - {b} | {len(outcomes)} | {a_only} | {b_only} | {both} | "
                             f"{len(outcomes) - a_only - b_only - both} | {'-' if p is None else f'{p:.3f}'} |")
    if not lines:
        return ""
    return "\n".join([
        "Which of two methods learns the rarest class on the same seed (test accuracy > "
        f"{LEARNED:.0f}%), and the exact two-sided sign test on the seeds where only one does (with 5 seeds the "
        "smallest possible p is 0.062):", "",
        "| steps | setting | a - b | seeds | a only | b only | both | neither | p |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|", *lines])


TRACE_METHODS = ("dualhead", "acr", "semi", "semi-no_bank", "semi-no_oheml", "dualhead+threshold_0.7")
TAKE_OFF_PER_STEP = 1 / 3
"""A run's rarest class has taken off at the first evaluation from which every window accepts at least one of its
pseudo-labels per 3 training steps (100 per window at 6,000 steps; a rate, so budgets with longer windows compare).
Sustained, because ACR's first window floods the class with mostly wrong pseudo-labels and then drops."""


def first_step(trace: dict, test: Callable[[dict], bool]) -> int | None:
    """The first evaluation step at which `test` holds (None: never)."""
    return next((e["step"] for e in trace["evaluations"] if test(e)), None)


def sustained_from(trace: dict, test: Callable[[dict, int], bool]) -> int | None:
    """The first evaluation step from which `test(evaluation, window length in steps)` holds at every later
    evaluation (None: not at the last)."""
    ev = trace["evaluations"]
    windows = [e["step"] - (ev[i - 1]["step"] if i else 0) for i, e in enumerate(ev)]
    step = None
    for e, window in zip(reversed(ev), reversed(windows)):
        if not test(e, window):
            break
        step = e["step"]
    return step


def trace_summary(trace: dict) -> dict:
    """When the rarest class got its first accepted pseudo-label, filled its bank row, and took off (None: never);
    what the last evaluation window accepted of it, and their precision; how many accepted labels the prototype
    blend had moved into it, and how many right, by the take-off (or the end without one; None: not traced)."""
    size = trace.get("bank_size")
    evaluations = trace["evaluations"]
    last = evaluations[-1] if evaluations else {}
    take_off = sustained_from(trace, lambda e, window: (e["accepted"] or 0) >= TAKE_OFF_PER_STEP * window)
    until = next((e for e in evaluations if e["step"] == take_off), last)
    return {"first": first_step(trace, lambda e: (e["accepted"] or 0) > 0),
            "bank_full": None if size is None else first_step(trace, lambda e: (e["bank_fill"] or 0) >= size),
            "take_off": take_off, "accepted": last.get("accepted"), "precision": last.get("precision"),
            "moved_in": until.get("moved_in"), "moved_in_right": until.get("moved_in_right")}


def _median_step(steps: list[int | None]) -> str:
    hit = [s for s in steps if s is not None]
    if not hit:
        return f"never (0/{len(steps)})"
    return f"{statistics.median(hit):,.0f} ({len(hit)}/{len(steps)})"


def _last_window(summaries: list[dict]) -> str:
    """Mean accepted per run, and their pooled precision (right / accepted over the runs), in the last window."""
    accepted = [x["accepted"] for x in summaries if x["accepted"] is not None]
    if not accepted:
        return "-"
    pooled = [(x["accepted"], x["precision"]) for x in summaries if x["accepted"] and x["precision"] is not None]
    total = sum(a for a, _ in pooled)
    precision = f" at {100 * sum(a * q for a, q in pooled) / total:.0f}%" if total else ""
    return f"{statistics.mean(accepted):,.0f}{precision}"


def _moved_in(summaries: list[dict]) -> str:
    """Mean labels the blend moved into the class per run by take-off (or the end), and the pooled share right."""
    traced = [x for x in summaries if x.get("moved_in") is not None]
    if not traced:
        return "-"
    moved = sum(x["moved_in"] for x in traced)
    right = f" at {100 * sum(x['moved_in_right'] or 0 for x in traced) / moved:.0f}%" if moved else ""
    return f"{moved / len(traced):,.0f}{right}"


def rarest_markdown(by_budget: dict[int, list[dict]]) -> str:
    """Per budget, setting and method, runs that learn the rarest class against runs that do not: median step of
    its first accepted pseudo-label, of its bank row filling, of its take-off (k of n runs that got there), and the
    last window's accepted count and pooled precision. Empty without traced records."""
    lines = []
    for budget, recs in by_budget.items():
        for setting in SETTINGS:
            for method in TRACE_METHODS:
                rs = [r for r in recs if r["setting"] == setting and r["method"] == method and r.get("rarest_class")]
                for learned in (True, False):
                    group = [r for r in rs if learns_rarest(r) is learned]
                    if not group:
                        continue
                    sums = [trace_summary(r["rarest_class"]) for r in group]
                    banked = group[0]["rarest_class"].get("bank_size") is not None
                    lines.append(
                        f"| {budget:,} | {setting} | {method} | {'yes' if learned else 'no'} | {len(group)} | "
                        f"{_median_step([x['first'] for x in sums])} | "
                        f"{_median_step([x['bank_full'] for x in sums]) if banked else '-'} | "
                        f"{_median_step([x['take_off'] for x in sums])} | {_last_window(sums)} | "
                        f"{_moved_in(sums)} |")
    if not lines:
        return ""
    return "\n".join([
        f"How the rarest class is learned, from each run's trace (runs that learn it, > {LEARNED:.0f}% test accuracy, "
        "against runs that do not; steps: the median over the runs that got there, which may fall between two "
        "evaluations, and k/n; take-off: the first evaluation from which every window accepts at least one of its "
        "pseudo-labels per 3 steps; last window: mean accepted per run, pooled precision; moved in: accepted labels "
        "SeMi's prototype blend changed into the class by the take-off, or the end without one, mean per run and "
        "pooled share right):", "",
        "| steps | setting | method | learned | runs | first accepted | bank row full | take-off | last window | "
        "moved in |", "|---:|---|---|---|---:|---:|---:|---:|---:|---:|", *lines])


def backfill(runs_dir: Path, protocol: str) -> int:
    """Add the `rarest_class` trace to records written before it existed, from their run folders
    (`runs_dir/<record protocol>/<cell>` or `runs_dir/<cell>`, e.g. another benchmark's rerun of the same cell);
    a folder counts only if its step count and final per-class test accuracies are the record's exactly (the same
    run, or a bit-identical rerun). Rewrites the records files: not while a sweep writes them. Returns how many
    records got a trace."""
    from accuracy import rarest_class_trace

    from semi.files import atomic_write_text

    def same_run(folder: Path, record: dict) -> bool:
        path = folder / "results.json"
        if not path.exists():
            return False
        results = json.loads(path.read_text())
        return (results["steps"] == record["steps"]
                and results["metrics"]["per_class_accuracy"] == record["per_class_accuracy"])

    added = 0
    for path in sorted((ROOT / "results").glob(f"accuracy-{protocol}*.json")):
        data = json.loads(path.read_text())
        changed = 0
        for r in data["records"]:
            if r.get("rarest_class") is not None:
                continue
            name = r["cell"].replace("/", "_")
            folder = next((f for f in (runs_dir / r["protocol"] / name, runs_dir / name) if same_run(f, r)), None)
            if folder is not None:
                r["rarest_class"] = rarest_class_trace(folder)
                changed += 1
        if changed:
            atomic_write_text(path, json.dumps(data, indent=1))
            added += changed
    return added


def present_settings(records: list[dict]) -> list[str]:
    """The settings (in SETTINGS order) some record covers: a figure has one panel per setting the protocol ran."""
    return [s for s in SETTINGS if any(r["setting"] == s for r in records)]


def figures(by_budget: dict[int, list[dict]], protocol: str) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from semi.evaluation.metrics import paired_difference

    budgets = list(by_budget)
    settings = present_settings([r for recs in by_budget.values() for r in recs])
    out = []
    fig = Figure(figsize=(4.2 * len(settings), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, setting in enumerate(settings):
        ax = fig.add_subplot(1, len(settings), i + 1)
        for j, (a, b) in enumerate(PAIRS[:3]):
            xs, ys, lo, hi = [], [], [], []
            for budget in budgets:
                d = paired_difference(_by_seed(by_budget[budget], setting, a), _by_seed(by_budget[budget], setting, b))
                if d is None:
                    continue
                xs.append(budget * (1 + 0.03 * (j - 1)))
                ys.append(d["mean"])
                lo.append(d["mean"] - d["low"] if d["n"] > 1 else 0.0)
                hi.append(d["high"] - d["mean"] if d["n"] > 1 else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=f"{a} - {b}")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.minorticks_off()
        ax.set_title(setting)
        ax.set_xlabel("training steps")
        if i == 0:
            ax.set_ylabel("paired top-1 difference (points, 95% CI)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = ROOT / "results" / f"budget-{protocol}-difference.png"
    fig.savefig(path)
    out.append(path)

    fig = Figure(figsize=(3.6 * len(DIAGNOSTICS), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    for i, (key, label, scale) in enumerate(DIAGNOSTICS):
        ax = fig.add_subplot(1, len(DIAGNOSTICS), i + 1)
        for setting in settings:
            xs, ys = [], []
            for budget in budgets:
                vals = [diagnostic(r, key) for r in by_budget[budget] if r["setting"] == setting
                        and r["method"] == "semi"]
                vals = [v * scale for v in vals if v is not None]
                if vals:
                    xs.append(budget)
                    ys.append(statistics.mean(vals))
            if xs:
                ax.plot(xs, ys, marker="o", label=setting)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.minorticks_off()
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("training steps")
        if i == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = ROOT / "results" / f"budget-{protocol}-diagnostics.png"
    fig.savefig(path)
    out.append(path)
    return out + rarest_figures(by_budget, protocol)


RAREST_COLOURS = {"dualhead": "tab:blue", "acr": "tab:green", "semi": "tab:red"}


def rarest_figures(by_budget: dict[int, list[dict]], protocol: str) -> list[Path]:
    """Per budget with traces, the rarest class's accepted pseudo-labels per evaluation window against steps: one
    panel per setting, one line per run of the methods in RAREST_COLOURS (solid: the run learns the class)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = []
    for budget, recs in by_budget.items():
        runs = [r for r in recs if r.get("rarest_class") and r["method"] in RAREST_COLOURS]
        if not runs:
            continue
        settings = present_settings(runs)
        fig = Figure(figsize=(4.2 * len(settings), 3.6), dpi=100)
        FigureCanvasAgg(fig)
        for i, setting in enumerate(settings):
            ax = fig.add_subplot(1, len(settings), i + 1)
            for r in runs:
                if r["setting"] != setting:
                    continue
                learned = learns_rarest(r) is True
                ev = r["rarest_class"]["evaluations"]
                ax.plot([e["step"] for e in ev], [e["accepted"] or 0 for e in ev], color=RAREST_COLOURS[r["method"]],
                        ls="-" if learned else ":", lw=1.4 if learned else 1.0, alpha=0.9)
            ax.set_yscale("symlog", linthresh=1)
            ax.set_title(f"{setting} ({budget:,} steps)")
            ax.set_xlabel("training step")
            if i == 0:
                ax.set_ylabel("rarest class: accepted per window")
                for m, c in RAREST_COLOURS.items():
                    if any(r["method"] == m for r in runs):
                        ax.plot([], [], color=c, label=m)
                ax.plot([], [], color="0.3", ls="-", label="learns it")
                ax.plot([], [], color="0.3", ls=":", label="does not")
                ax.legend(fontsize=8)
        fig.tight_layout()
        path = ROOT / "results" / f"budget-{protocol}-rarest-{budget}.png"
        fig.savefig(path)
        out.append(path)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="mnist", choices=("mnist", "fashion"))
    p.add_argument("--backfill", type=Path, default=None, metavar="RUNS_DIR",
                   help="first add the rarest-class trace to records without one, from their run folders")
    args = p.parse_args()
    if args.backfill:
        print(f"backfilled {backfill(args.backfill, args.protocol)} records from {args.backfill}")
    by_budget = load_budget_records(args.protocol)
    # Fashion-MNIST-LT's open question is whether semi-supervision pays at all; MNIST-LT's 2,000-step sections answer it
    parts = (markdown(by_budget, SUPERVISED_PAIRS if args.protocol == "fashion" else ()),
             paired_rarest_markdown(by_budget), per_class_markdown(by_budget), rarest_markdown(by_budget))
    text = "\n\n".join(t for t in parts if t)
    path = ROOT / "results" / f"budget-{args.protocol}.md"
    path.write_text(text + "\n")
    print(text)
    if replace_marked(ROOT.parent / "BENCHMARKS.md", f"budget-{args.protocol}", text):
        print(f"updated BENCHMARKS.md: budget-{args.protocol}")
    for fig in figures(by_budget, args.protocol):
        print(f"figure: {fig}")


if __name__ == "__main__":
    main()
