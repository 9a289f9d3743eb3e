"""SeMi+ (ours): choose a combination of the SeMi+ options on validation accuracy only, then confirm it on held-out
seeds, on the MNIST-LT protocol (`accuracy.py --protocol mnist`, optionally at a `--budget`).

    python benchmarks/semi_plus.py select --jobs 2    # every candidate, consistent / reversed / uniform, seeds 0-4
    python benchmarks/semi_plus.py choose             # the rule below, from the validation split only
    python benchmarks/semi_plus.py confirm --jobs 2   # the choice on seeds 5-9, and on four more bases (seeds 5-7)
    python benchmarks/semi_plus.py report             # Markdown tables of both stages
    python benchmarks/semi_plus.py select --round 2   # the second round (below); every stage takes --round
    python benchmarks/semi_plus.py select --round 3   # the third round (below)
    python benchmarks/semi_plus.py select --round 4   # the fourth round (below)

The candidates are SeMi (dual-head base + all its parts at 0.7) with the SeMi+ options alone and combined:
OHEML weights rescaled to mean 1 over the accepted images (`semi.oheml_normalize`), the prototype blend gated
by the prototypes' measured accuracy on the labeled batches (`semi.prototype_gate=labeled`), FlexMatch's
class-adaptive thresholds on SeMi's 0.7 (`+flex`).

The rule (written before any candidate ran): the candidate with the highest mean final EMA validation top-1 over
the three settings and seeds 0-4, i.e. the largest mean paired validation difference against the dual-head base;
ties go to the candidate with fewer options. The test set plays no part in the choice. The choice is confirmed on
seeds 5-9, which no stage before it ran: against its base and SeMi on the three settings (test top-1, paired
differences with 95% t-intervals), and attached to FixMatch, ACR, SimPro and ABC (seeds 5-7).

Round 2 (designed after round 1's choice and its confirmation on seeds 5-9 had been seen): FlexMatch's thresholds
fail two ways there. On consistent data its learning effects follow the class prior (the head class 1.0, the rarest
0.0), so the tail's thresholds sit near 0 all run; on uniform data the rarest class, learned late from its one
labeled image, keeps a threshold near 0 long enough to claim other classes' images (4s, 1s and 7s taken for 9s).
Its candidates change round 1's choice in one place each: `flex.normalize=predicted` (each class's count measured
against how often the model predicts that class), `flex.mapping=linear` (FlexMatch's other mapping, (beta + 1) / 2:
no threshold below half the base threshold), and both; beside round 1's choice, SeMi and the base. The same rule on
the same validation seeds 0-4 (cells both rounds hold are run once); the confirmation on seeds 10-14 (other bases
10-12), which no stage of either round ran.

Round 3 (designed after round 2's confirmation on seeds 10-14 and the budget curve's per-class differences had been
seen): at 2,000 and 6,000 steps SeMi costs the five most-labeled classes a few points in their mean, which the
2,000-step ablations put on OHEML's shrinking of the loss and (on consistent data) on the 0.7 threshold; and the
rarest class, once learned under thresholds of at most 0.7, goes on claiming its neighbours' images. Beside the
base and SeMi (candidates, as in round 2), its candidates add to round 2's choice (which it keeps as a candidate)
`semi.oheml_normalize` (`normalize`), SeMi's threshold at the base's 0.95 (`t95`: FlexMatch then scales
0.95, its own default, so a class that has claimed its share returns to the base's bar), and both. Beside them, not
eligible for the choice, a control: the base with FlexMatch's thresholds and no SeMi (`dualhead+flex_predicted`),
which says how much of any gain is FlexMatch's. The same rule on the same validation seeds 0-4; the confirmation on
seeds 15-19 against the base, SeMi and the control, which no stage of any round ran (no other bases this round).

Round 4 (designed after round 3's confirmation and a probe of its selection runs' last checkpoints,
`benchmarks/overclaim.py`), which points at the balanced head's training target for the rarest class's wrong
claims: the standard logits debiased by tau12 log pi (tau12 = 2: on MNIST-LT, one labeled image against 150, a lead
of about 10 nats); once FlexMatch's thresholds let the standard head give that class some mass, that lead may turn
its neighbours' ambiguous images into it. Its candidate halves the lead: round 3's choice with `algorithm.tau12=1`
(`t12_1`), beside round 3's choice, SeMi and the base. Controls, never chosen: round 3's (the base with FlexMatch's
thresholds), the same with `t12_1`, and the base with `t12_1` alone (whether halving the debiasing is a change of
the base rather than of SeMi+). The same rule on the same validation seeds 0-4 (cells earlier rounds hold are
reused); the confirmation on seeds 20-24, which no stage of any round ran, against the base, SeMi and the controls.

Records: results/semiplus-select[-<budget>].json (every round's selection cells),
results/semiplus-choice[-round<N>][-<budget>].json, results/semiplus-confirm[-round<N>][-<budget>].json; tables in
results/semiplus[-round<N>][-<budget>].md and BENCHMARKS.md's marked blocks; runs under
benchmarks/runs/<protocol>-semiplus/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402
import budget_curve  # noqa: E402

SETTINGS = ("consistent", "reversed", "uniform")
SELECT_SEEDS = range(0, 5)
OTHER_BASES = ("fixmatch", "acr", "simpro", "abc")

OPTIONS = {"normalize": ["semi.oheml_normalize=true"], "gate": ["semi.prototype_gate=labeled"], "flex": [],
           "flex_predicted": ["flex.normalize=predicted"], "flex_linear": ["flex.mapping=linear"],
           "t95": ["semi.threshold=0.95"], "t12_1": ["algorithm.tau12=1.0"]}
"""Each SeMi+ option's overrides (`flex` and its variants attach the flex component: they change the algorithm
name too)."""
FLEX_OPTIONS = {"flex", "flex_predicted", "flex_linear"}
CANDIDATES = ("dualhead", "semi", "semi+normalize", "semi+gate", "semi+flex", "semi+normalize+gate",
              "semi+normalize+flex", "semi+gate+flex", "semi+normalize+gate+flex")
"""Round 1: the base, SeMi, and SeMi with every non-empty combination of the first three options."""


@dataclasses.dataclass(frozen=True)
class Round:
    candidates: tuple[str, ...]
    confirm_seeds: range
    other_base_seeds: range
    suffix: str
    """Of the round's choice, confirmation and report files ('' for round 1)."""
    controls: tuple[str, ...] = ()
    """Run and reported beside the candidates, on the selection and the confirmation seeds; never chosen."""


ROUNDS = {1: Round(CANDIDATES, range(5, 10), range(5, 8), ""),
          2: Round(("dualhead", "semi", "semi+gate+flex", "semi+gate+flex_predicted", "semi+gate+flex_linear",
                    "semi+gate+flex_predicted+flex_linear"), range(10, 15), range(10, 13), "-round2"),
          3: Round(("dualhead", "semi", "semi+gate+flex_predicted", "semi+normalize+gate+flex_predicted",
                    "semi+gate+flex_predicted+t95", "semi+normalize+gate+flex_predicted+t95"), range(15, 20),
                   range(0), "-round3", controls=("dualhead+flex_predicted",)),
          4: Round(("dualhead", "semi", "semi+normalize+gate+flex_predicted+t95",
                    "semi+normalize+gate+flex_predicted+t95+t12_1"), range(20, 25), range(0), "-round4",
                   controls=("dualhead+flex_predicted", "dualhead+flex_predicted+t12_1", "dualhead+t12_1"))}
"""The selection rounds (the module docstring says why each round after the first)."""


def options_of(candidate: str) -> list[str]:
    return candidate.split("+")[1:]


def overrides(candidate: str, base: str = "dualhead") -> list[str]:
    """The cell overrides of a candidate attached to `base` (the dual-head base: SeMi as its authors built it);
    a candidate named `dualhead+<options>` is the base with those options and without SeMi (a control)."""
    if candidate == "dualhead":
        return accuracy.method_overrides(base)
    opts = options_of(candidate)
    with_semi = candidate.split("+")[0] == "semi"
    name = base + ("+semi" if with_semi else "") + ("+flex" if FLEX_OPTIONS & set(opts) else "")
    base_extra = [o for o in accuracy.method_overrides(base) if not o.startswith("algorithm.name=")]
    return [f"algorithm.name={name}", *base_extra, *(o for opt in opts for o in OPTIONS[opt])]


def protocol(budget: int | None) -> accuracy.Protocol:
    p = accuracy.with_budget(accuracy.PROTOCOLS["mnist"], budget)
    return dataclasses.replace(p, name=f"{p.name}-semiplus")


def result_path(stage: str, budget: int | None, round_: int = 1) -> Path:
    suffix = "" if stage == "select" else ROUNDS[round_].suffix
    return accuracy.ROOT / "results" / f"semiplus-{stage}{suffix}{f'-{budget}' if budget else ''}.json"


def select_cells(round_: int = 1) -> list[tuple[str, list[str]]]:
    rnd = ROUNDS[round_]
    return [(f"{s}/{c}/{seed}", overrides(c)) for seed in SELECT_SEEDS for s in SETTINGS
            for c in (*rnd.candidates, *rnd.controls)]


def validation_means(records: list[dict], candidates: tuple[str, ...] = CANDIDATES) -> dict[str, dict]:
    """Per candidate: mean validation top-1 per setting and overall, and the paired validation difference against
    the base per setting, over the seeds both have."""
    from semi.evaluation.metrics import paired_difference

    out = {}
    for c in candidates:
        per_setting = {s: [r["val_top1"] for r in records if r["method"] == c and r["setting"] == s]
                       for s in SETTINGS}
        if not all(per_setting.values()):
            continue
        diffs = {s: paired_difference(accuracy._by_seed(records, s, c, lambda r: r["val_top1"]),
                                      accuracy._by_seed(records, s, "dualhead", lambda r: r["val_top1"]))
                 for s in SETTINGS}
        out[c] = {"val_top1": {s: statistics.mean(v) for s, v in per_setting.items()},
                  "val_top1_mean": statistics.mean(statistics.mean(v) for v in per_setting.values()),
                  "seeds": {s: len(v) for s, v in per_setting.items()},
                  "val_minus_base": {s: d for s, d in diffs.items()}}
    return out


def choose(records: list[dict], round_: int = 1) -> dict:
    """The rule of the module docstring, applied to complete candidates only (every setting, every seed)."""
    candidates = ROUNDS[round_].candidates
    means = validation_means(records, candidates)
    complete = {c: m for c, m in means.items() if all(n == len(SELECT_SEEDS) for n in m["seeds"].values())}
    if len(complete) < len(candidates):
        missing = sorted(set(candidates) - set(complete))
        raise SystemExit(f"selection incomplete: {', '.join(missing)} lack seeds; run `select` first")
    best = max(complete, key=lambda c: (round(complete[c]["val_top1_mean"], 6), -len(options_of(c))))
    return {"choice": best, "options": options_of(best), "overrides": overrides(best), "round": round_,
            "rule": "highest mean final EMA validation top-1 over consistent/reversed/uniform and seeds 0-4; ties "
                    "to fewer options", "candidates": complete}


def confirm_cells(choice: dict, round_: int = 1) -> list[tuple[str, list[str]]]:
    name, rnd = choice["choice"], ROUNDS[round_]
    cells = [(f"{s}/{c}/{seed}", overrides(c)) for seed in rnd.confirm_seeds for s in SETTINGS
             for c in dict.fromkeys(("dualhead", "semi", name, *rnd.controls))]
    for base in OTHER_BASES:
        for c in ("dualhead", name):  # the base alone, then with the chosen SeMi+
            label = base if c == "dualhead" else f"{base}+{name}"
            cells += [(f"{s}/{label}/{seed}", overrides(c, base)) for seed in rnd.other_base_seeds for s in SETTINGS]
    return cells


def report_markdown(select: list[dict], choice: dict | None, confirm: list[dict], round_: int = 1) -> str:
    from semi.evaluation.metrics import paired_difference

    lines, rnd = [], ROUNDS[round_]
    means = validation_means(select, (*rnd.candidates, *rnd.controls))
    if means:
        lines += ["Selection (validation split only; seeds 0-4): mean final EMA validation top-1, and the paired "
                  "difference against the dual-head base", "",
                  "| candidate | " + " | ".join(f"{s}: val / - base" for s in SETTINGS) + " | mean val |",
                  "|---|" + "---:|" * (len(SETTINGS) + 1)]
        for c, m in sorted(means.items(), key=lambda kv: -kv[1]["val_top1_mean"]):
            cols = [f"{m['val_top1'][s]:.1f} / {accuracy._interval(m['val_minus_base'][s])}" for s in SETTINGS]
            label = f"{c} (control, not eligible)" if c in rnd.controls else c
            lines.append(f"| {label} | " + " | ".join(cols) + f" | {m['val_top1_mean']:.2f} |")
        lines.append("")
    if choice:
        lines += [f"Chosen: **{choice['choice']}** ({choice['rule']}).", ""]
    if confirm and choice:
        name = choice["choice"]
        planned = [(name, "dualhead"), (name, "semi"), ("semi", "dualhead"),
                   *((name, c) for c in rnd.controls), *((c, "dualhead") for c in rnd.controls),
                   *((f"{b}+{name}", b) for b in OTHER_BASES if rnd.other_base_seeds)]
        pairs = [(a, b) for a, b in dict.fromkeys(planned) if a != b]  # a choice of `semi` pairs once with the base
        lines += ["Confirmation on held-out seeds (test top-1; a - b paired over seeds, mean [95% t-interval]):", "",
                  "| a - b | " + " | ".join(SETTINGS) + " |", "|---|" + "---:|" * len(SETTINGS)]
        for a, b in pairs:
            cols = [accuracy._interval(paired_difference(accuracy._by_seed(confirm, s, a),
                                                         accuracy._by_seed(confirm, s, b))) for s in SETTINGS]
            lines.append(f"| {a} - {b} | " + " | ".join(cols) + " |")
        steps = int(confirm[0].get("budget") or confirm[0].get("steps") or 0)  # 0: unknown, shown as "-"
        per_class = budget_curve.per_class_markdown({steps: confirm}, tuple(pairs))
        if per_class:
            lines += ["", per_class]
        lines += ["", "Held-out runs that learn the rarest labeled class (test accuracy above "
                  f"{budget_curve.LEARNED:.0f}%), k of n:", "",
                  "| method | " + " | ".join(SETTINGS) + " |", "|---|" + "---:|" * len(SETTINGS)]
        for m in dict.fromkeys(r["method"] for r in confirm):
            cols = []
            for s in SETTINGS:
                rs = [r for r in confirm if r["method"] == m and r["setting"] == s]
                cols.append(f"{sum(budget_curve.learns_rarest(r) is True for r in rs)}/{len(rs)}" if rs else "-")
            lines.append(f"| {m} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("select", "choose", "confirm", "report", "list"))
    p.add_argument("--budget", type=int, default=None, help="as accuracy.py --budget (default: the 2,000 steps)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--round", type=int, choices=sorted(ROUNDS), default=1, dest="round_",
                   help="the selection round (2: FlexMatch's counts normalised by the predictions; 3: with OHEML's "
                        "loss scale kept and the base's threshold; 4: the balanced target's debiasing halved)")
    p.add_argument("--runs-dir", default=str(accuracy.ROOT / "runs"))
    args = p.parse_args(argv)
    proto = protocol(args.budget)
    paths = {stage: result_path(stage, args.budget, args.round_) for stage in ("select", "choice", "confirm")}
    select = accuracy.load_records(paths["select"])
    choice = json.loads(paths["choice"].read_text()) if paths["choice"].exists() else None
    if args.stage == "choose":
        choice = choose(select, args.round_)
        paths["choice"].write_text(json.dumps(choice, indent=1) + "\n")
    elif args.stage in ("select", "confirm", "list"):
        if args.stage == "confirm" and choice is None:
            raise SystemExit("no choice yet: run `choose` after `select`")
        stage = "select" if args.stage in ("select", "list") else "confirm"
        todo = select_cells(args.round_) if stage == "select" else confirm_cells(choice, args.round_)
        done = {r["cell"] for r in accuracy.load_records(paths[stage])}
        if args.stage == "list":
            for cell, _ in todo:
                print(("done  " if cell in done else "todo  ") + cell)
            return
        accuracy.run_cells(proto, [t for t in todo if t[0] not in done], paths[stage], Path(args.runs_dir),
                           args.jobs)
    text = report_markdown(accuracy.load_records(paths["select"]), choice, accuracy.load_records(paths["confirm"]),
                           args.round_)
    print(text)
    if text:
        name = f"semiplus{ROUNDS[args.round_].suffix}{f'-{args.budget}' if args.budget else ''}"
        (accuracy.ROOT / "results" / f"{name}.md").write_text(text + "\n")
        if accuracy.replace_marked(accuracy.ROOT.parent / "BENCHMARKS.md", name, text):
            print(f"updated BENCHMARKS.md: {name}")
        else:
            print(f"BENCHMARKS.md has no <!-- {name}:begin/end --> block: results/{name}.md only")


if __name__ == "__main__":
    main()
