"""Accuracy benchmark: every method on the same model, steps, seeds, data and schedule (equal steps, as in the
literature), with the unlabeled set consistent, uniform and reversed.

    python benchmarks/accuracy.py --protocol mnist              # MNIST-LT, the calibrated CPU protocol
    python benchmarks/accuracy.py --protocol fashion            # Fashion-MNIST-LT (the harder one)
    python benchmarks/accuracy.py --protocol cifar10            # CIFAR-10-LT from ../shared/data/cifar10
    python benchmarks/accuracy.py --protocol wordnet            # text: WordNet supersenses as LSA features
    python benchmarks/accuracy.py --protocol quick              # digits, a few minutes: a smoke test of the sweep
    python benchmarks/accuracy.py --protocol fashion --cells 'reversed/semi*' --cells 'consistent/acr/*'
    python benchmarks/accuracy.py --protocol fashion --list     # the cells and which are done
    python benchmarks/accuracy.py --protocol mnist --budget 6000 --jobs 2   # the same protocol, 6,000 steps

Cells run one after another as separate `semi train` processes; a finished cell (its record in
benchmarks/results/accuracy-<protocol>.json) is not rerun, so an interrupted sweep resumes where it stopped.
Each record holds the protocol, setting, method, seed, the metrics of results.json, steps and wall time. A
Markdown table (mean +- std over seeds) is written next to the JSON.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SETTINGS = ("consistent", "uniform", "reversed", "middle", "head_tail")
RECIPE_BASES = ("daso", "abc", "cpe", "darp", "simpro", "remixmatch")
"""The bases also run under their authors' recipe (algorithm.recipe=authors), alone and with SeMi."""
METHODS = ("supervised", "oracle", "fixmatch", "fixmatch+semi", "dualhead", "semi", "acr", "acr+semi",
           "daso", "daso+semi", "abc", "abc+semi", "cpe", "cpe+semi", "darp", "darp+semi", "simpro", "simpro+semi",
           "remixmatch", "remixmatch+semi", "fixmatch+cdmad", "dualhead+cdmad", "semi+cdmad", "fixmatch+cdmad-paper",
           "dualhead+cdmad-paper",
           "dualhead-bf16", "semi-bf16", *(f"{b}-authors" for b in RECIPE_BASES),
           *(f"{b}+semi-authors" for b in RECIPE_BASES))
# Per-method settings scaled to the CPU budgets (20 epochs): DASO's FixMatch pre-training is 10 epochs by default (the
# authors' 5000 steps at paper scale), so here it starts after 1, like SeMi's warm-up (semi.warmup_epochs=1). DASO's
# distribution temperature stays at its default for every setting: the unlabeled distribution is taken as unknown.
# SimPro's labeled loss is divided by (unlabeled batches) / (labeled batches) per pass, as in its authors' code: 1 to 4
# in their CIFAR settings, 21 here (20x more unlabeled images, mu = 1). At 2,000 steps that starves it: labeled loss
# 0.08 from the first step, mask rate 0 throughout, 29.0% top-1 (consistent, seed 0; 21.2% with SeMi). With weight 1
# it learns (validation 85.2%), so the benchmark runs it so (diagnosed on training curves and validation, not test).
# CDMAD debiases after the authors' 20% of training (--debiasstart 100 of 500 epochs): 4 of the protocols' 20
# epochs. With SeMi attached it keeps SeMi's threshold (two thresholds are refused): `semi+cdmad` is
# dualhead+semi+cdmad with cdmad.threshold=null.
CDMAD = ["cdmad.warmup_epochs=4"]
METHOD_OVERRIDES = {"daso": ["daso.pretrain_epochs=1"], "daso+semi": ["daso.pretrain_epochs=1"],
                    "simpro": ["simpro.labeled_loss_scale=none"], "simpro+semi": ["simpro.labeled_loss_scale=none"],
                    "fixmatch+cdmad": CDMAD, "dualhead+cdmad": CDMAD,
                    "semi+cdmad": ["algorithm.name=dualhead+semi+cdmad", *CDMAD, "cdmad.threshold=null"],
                    # the paper's variant: hard labels at the base's threshold (the code: soft targets, threshold 0)
                    "fixmatch+cdmad-paper": ["algorithm.name=fixmatch+cdmad", *CDMAD, "cdmad.soft_targets=false",
                                             "cdmad.threshold=null"],
                    "dualhead+cdmad-paper": ["algorithm.name=dualhead+cdmad", *CDMAD, "cdmad.soft_targets=false",
                                             "cdmad.threshold=null"],
                    # bf16 autocast against float32 (the accuracy side of the speed mode; needs a CPU with native
                    # bf16, AVX-512 BF16 or AMX, to run in reasonable time)
                    "dualhead-bf16": ["algorithm.name=dualhead", "train.amp=bf16"],
                    "semi-bf16": ["algorithm.name=semi", "train.amp=bf16"]}
# The authors' recipes (algorithm.recipe=authors): the recipe's values replace the protocol's own for the keys it
# sets (mu, optimiser, schedule, pool composition, ...; see `run_cell`); the budget, model and data stay the
# protocol's. MNIST takes each recipe's CIFAR-10 (default) values.
for _base in RECIPE_BASES:
    METHOD_OVERRIDES[f"{_base}-authors"] = [f"algorithm.name={_base}", "algorithm.recipe=authors",
                                            *METHOD_OVERRIDES.get(_base, [])]
    METHOD_OVERRIDES[f"{_base}+semi-authors"] = [f"algorithm.name={_base}+semi", "algorithm.recipe=authors",
                                                 *METHOD_OVERRIDES.get(f"{_base}+semi", [])]
# SimPro's labeled-loss override patched the shared recipe's mu = 1 (its loader ratio starves the labeled loss
# there); under its own recipe (mu = 8) the authors' loader ratio is kept.
for _name in ("simpro-authors", "simpro+semi-authors"):
    METHOD_OVERRIDES[_name] = [o for o in METHOD_OVERRIDES[_name] if not o.startswith("simpro.labeled_loss_scale")]
# CPE's uniform and reversed experts lean toward the tail by their logit adjustment; SeMi's 0.7 reaching their masks
# made cpe+semi-authors collapse on consistent data (BENCHMARKS.md section 12): the variant keeps 0.95 for them.
METHOD_OVERRIDES["cpe+semi-experts_0.95-authors"] = [*METHOD_OVERRIDES["cpe+semi-authors"], "cpe.expert_threshold=base"]
METHODS = (*METHODS, "cpe+semi-experts_0.95-authors")
# DARP's authors run mismatched unlabeled sets with --est (a target estimated from the validation split); their
# recipe's default target is the labeled prior, which reversed data contradicts.
METHOD_OVERRIDES["darp-estimated-authors"] = [*METHOD_OVERRIDES["darp-authors"], "darp.target=estimated"]
METHODS = (*METHODS, "darp-estimated-authors")
METHOD_SETTINGS = {m: ("consistent", "reversed") for m in ("fixmatch+cdmad", "dualhead+cdmad", "semi+cdmad",
                                                            "fixmatch+cdmad-paper", "dualhead+cdmad-paper",
                                                            "dualhead-bf16", "semi-bf16",
                                                            "remixmatch", "remixmatch+semi",
                                                            "cpe+semi-experts_0.95-authors",
                                                            "darp-estimated-authors",
                                                            *(f"{b}-authors" for b in RECIPE_BASES),
                                                            *(f"{b}+semi-authors" for b in RECIPE_BASES))}
"""Methods run on some settings only (CDMAD: the two the MNIST-LT comparison asks for)."""
METHOD_SEEDS = {m: 3 for m in METHOD_SETTINGS}
"""Methods run with fewer seeds than the protocol's."""


def method_overrides(method: str) -> list[str]:
    """The overrides of a method's cells; a benchmark name that is not an algorithm name sets its own."""
    extra = METHOD_OVERRIDES.get(method, [])
    named = any(o.startswith("algorithm.name=") for o in extra)
    return [*([] if named else [f"algorithm.name={method}"]), *extra]


# Paired comparisons (a - b over the same seeds): SeMi vs its base, vs ACR, vs FixMatch; ACR vs FixMatch; each base
# vs base+SeMi.
BASES = ("fixmatch", "dualhead", "acr", "daso", "abc", "cpe", "darp", "simpro", "remixmatch")
"""The bases SeMi's components attach to (`semi` = dualhead + SeMi)."""


def with_semi(base: str) -> str:
    return "semi" if base == "dualhead" else f"{base}+semi"


PAIRS = (*((f"{b}-authors", b) for b in RECIPE_BASES), *((f"{b}+semi-authors", f"{b}-authors") for b in RECIPE_BASES),
         ("cpe+semi-experts_0.95-authors", "cpe-authors"), ("cpe+semi-experts_0.95-authors", "cpe+semi-authors"),
         ("darp-estimated-authors", "darp-authors"),
         ("semi", "acr"), ("semi", "fixmatch"), ("acr", "fixmatch"), ("acr", "dualhead"),
         *((with_semi(b), b) for b in BASES),
         ("fixmatch+cdmad", "fixmatch"), ("dualhead+cdmad", "dualhead"), ("semi+cdmad", "semi"),
         ("fixmatch+cdmad-paper", "fixmatch"), ("dualhead+cdmad-paper", "dualhead"),
         ("dualhead-bf16", "dualhead"), ("semi-bf16", "semi"))
# The ablation, from the working SeMi config (semi = dualhead + all parts at threshold 0.7): each part removed; each
# part alone on the base at the base's threshold 0.95; the threshold alone; 0.95 for SeMi; 0.7 only after warm-up.
ALL_OFF = ["semi.memory_bank=false", "semi.prototypes=false", "semi.oheml=false", "semi.feature_consistency=false"]
ABLATIONS = {
    "semi-no_bank": ["algorithm.name=semi", "semi.memory_bank=false", "semi.prototypes=false"],
    "semi-no_oheml": ["algorithm.name=semi", "semi.oheml=false"],
    "semi-no_consistency": ["algorithm.name=semi", "semi.feature_consistency=false"],
    "semi-threshold_0.95": ["algorithm.name=semi", "semi.threshold=0.95"],
    "semi-threshold_after_warmup": ["algorithm.name=semi", "semi.threshold_schedule=after_warmup"],
    "dualhead+bank_prototypes": ["algorithm.name=semi", *ALL_OFF[2:], "semi.threshold=0.95"],
    "dualhead+oheml": ["algorithm.name=semi", *ALL_OFF[:2], ALL_OFF[3], "semi.threshold=0.95"],
    "dualhead+consistency": ["algorithm.name=semi", *ALL_OFF[:3], "semi.threshold=0.95"],
    "dualhead+threshold_0.7": ["algorithm.name=dualhead", "algorithm.threshold=0.7"],
    # Not a removal: SeMi with OHEML's weights rescaled to mean 1 over the accepted images (ours, section 4's fix).
    "semi+oheml_normalize": ["algorithm.name=semi", "semi.oheml_normalize=true"],
    # SeMi on ACR at ACR's own threshold: is SeMi's lower threshold what costs ACR+SeMi its accuracy? And at SeMi's
    # threshold with ACR's estimate counting every confident image instead of each class once per batch (ACR's
    # code), which a lower threshold saturates towards uniform.
    "acr+semi-threshold_0.95": ["algorithm.name=acr+semi", "semi.threshold=0.95"],
    "acr+semi-count_images": ["algorithm.name=acr+semi", "algorithm.estimate_counting=images"],
    # ... and with SeMi's threshold on the mask, ACR's own 0.95 on its estimate
    "acr+semi-estimate_0.95": ["algorithm.name=acr+semi", "algorithm.estimate_threshold=0.95"],
}


def ablation_references(variant: str) -> tuple[str, ...]:
    """What an ablation cell is compared with: the method it changes (`semi-*`: SeMi; `acr+semi-*`: ACR+SeMi, and
    ACR itself), else the dual-head base (`dualhead+*`: a part added; `semi+oheml_normalize`: does the fix beat
    the base?)."""
    if variant.startswith("semi-"):
        return ("semi",)
    if variant.startswith("acr+semi-"):
        return ("acr+semi", "acr")
    return ("dualhead",)


VARIANTS: dict[str, list[str]] = {}
"""Method variants run once per setting when a protocol asks for them (kept for older protocols' records)."""


@dataclass
class Protocol:
    name: str
    overrides: list[str]
    seeds: int
    """Seeds of every method on consistent and reversed."""
    other_seeds: dict[str, int] = field(default_factory=lambda: {"uniform": 1})
    """Seeds of every method on the other settings it runs (uniform, middle, head_tail)."""
    ablation_seeds: int = 0
    """Seeds of each ablation cell on the ablation settings (0: no ablation)."""
    ablations: tuple[str, ...] | None = None
    """Which of ABLATIONS run (None: all)."""
    ablation_settings: tuple[str, ...] | None = None
    """Where the ablation runs (None: the paired settings)."""
    methods: tuple[str, ...] = METHODS
    paired_settings: tuple[str, ...] = ("consistent", "reversed")
    """Settings run seed by seed (a partial sweep holds complete paired rounds over them)."""
    method_seeds: dict[str, int] = field(default_factory=dict)
    """Fewer seeds for some methods (on every setting): a budget plan's cheaper comparisons."""
    budget: int | None = None
    """Training steps when the protocol is a budget variant (`--budget`); None: the protocol's own length."""

    @property
    def settings(self) -> tuple[str, ...]:
        return (*self.paired_settings, *self.other_seeds)

    def seeds_of(self, method: str, seeds: int, setting: str) -> int:
        if setting not in METHOD_SETTINGS.get(method, (setting,)):
            return 0
        return min(seeds, self.method_seeds.get(method, seeds), METHOD_SEEDS.get(method, seeds))


SMALL_CNN = ["model.name=small_cnn", "model.width=16", "train.channels_last=true", "train.batch_size=64", "train.mu=1",
             "train.threads=2"]
PROTOCOLS = {
    # Calibrated on this CPU (BENCHMARKS.md, benchmarks/calibrate.py): semi-supervision pays here.
    "mnist": Protocol("mnist", [
        "data.name=mnist", "data.num_labeled_max=150", "data.num_unlabeled_max=3000", "data.imbalance_labeled=100",
        "data.val_per_class=50", *SMALL_CNN, "train.epochs=20", "train.steps_per_epoch=100", "train.eval_every=100",
        "algorithm.est_epoch=1", "semi.warmup_epochs=1", "semi.bank_size=128", "semi.decay_every=100"],
        seeds=5, other_seeds={"uniform": 5, "middle": 1, "head_tail": 1}, ablation_seeds=3),
    # The harder second protocol (N_1 = 150: supervised-only is well below the oracle).
    "fashion": Protocol("fashion", [
        "data.name=fashion_mnist", "data.num_labeled_max=150", "data.num_unlabeled_max=3000",
        "data.imbalance_labeled=100", *SMALL_CNN,
        "train.epochs=20", "train.steps_per_epoch=100", "train.eval_every=100", "algorithm.est_epoch=1",
        "semi.warmup_epochs=1", "semi.bank_size=128", "semi.decay_every=100"], seeds=3),
    "cifar10": Protocol("cifar10", [
        "data.name=cifar10", "data.num_labeled_max=1500", "data.num_unlabeled_max=3000",
        "data.imbalance_labeled=100", *SMALL_CNN, "train.epochs=20", "train.steps_per_epoch=200",
        "train.eval_every=200", "algorithm.est_epoch=1", "semi.warmup_epochs=1", "semi.bank_size=128",
        "semi.decay_every=100"], seeds=2),
    # Text: WordNet glosses labeled with their supersense (22 classes with >= 1,300 glosses, the most frequent first),
    # as 256-d LSA features (benchmarks/wordnet_features.py builds the file); an MLP; N_1 = 100, M_1 = 1000,
    # gamma = 50. SeMi's warm-up, E_est and the bank's decay as in the MNIST protocol (epochs of 100 steps).
    "wordnet": Protocol("wordnet", [
        "data.name=features", f"data.path={ROOT / 'data' / 'wordnet-supersenses.npz'}", "model.name=mlp",
        "data.num_labeled_max=100", "data.num_unlabeled_max=1000", "data.imbalance_labeled=50",
        "data.val_per_class=20", "train.batch_size=64", "train.mu=2", "train.threads=2",
        "train.epochs=20", "train.steps_per_epoch=100", "train.eval_every=100", "algorithm.est_epoch=1",
        "semi.warmup_epochs=1", "semi.bank_size=128", "semi.decay_every=100"],
        seeds=3, other_seeds={}, methods=("supervised", "oracle", "fixmatch", "dualhead", "semi", "acr", "cpe",
                                          # SeMi+ candidate: FlexMatch's class-adaptive thresholds on SeMi's 0.7
                                          # (judged on validation accuracy only)
                                          "dualhead+semi+flex")),
    "quick": Protocol("quick", [
        "data.name=digits", "data.num_labeled_max=30", "data.num_unlabeled_max=90", "data.imbalance_labeled=10",
        "model.name=small_cnn", "model.width=16", "train.batch_size=32", "train.epochs=6", "train.steps_per_epoch=25",
        "train.eval_every=50", "algorithm.est_epoch=0", "semi.warmup_epochs=0", "semi.bank_size=32",
        "semi.decay_every=25"], seeds=1, other_seeds={}),
}


def cells(protocol: Protocol) -> list[tuple[str, list[str]]]:
    """(cell id 'setting/method/seed', overrides) in run order: seed by seed over the paired settings (so a
    partial sweep always holds complete paired rounds), then the other settings, then the ablation seed by seed."""
    out = []
    paired = protocol.paired_settings

    def round_of(setting: str, seed: int, seeds: int) -> list[tuple[str, list[str]]]:
        return [(f"{setting}/{m}/{seed}", method_overrides(m)) for m in protocol.methods
                if seed < protocol.seeds_of(m, seeds, setting)]

    for seed in range(protocol.seeds):
        for setting in paired:
            out += round_of(setting, seed, protocol.seeds)
    for setting, seeds in protocol.other_seeds.items():
        for seed in range(seeds):
            out += round_of(setting, seed, seeds)
    variants = protocol.ablations if protocol.ablations is not None else tuple(ABLATIONS)
    for seed in range(protocol.ablation_seeds):
        for setting in protocol.ablation_settings if protocol.ablation_settings is not None else paired:
            out += [(f"{setting}/{variant}/{seed}", ABLATIONS[variant]) for variant in variants]
    return out


STEPS_PER_EPOCH = 100
"""Steps per epoch of the MNIST and Fashion-MNIST protocols: a budget variant keeps it, so E_est, SeMi's warm-up
and the bank's decay interval (in epochs / steps of 100) stay where they are in training time, as the paper keeps
them in epochs while its schedule runs over the whole run."""
EVALUATIONS_PER_RUN = 20
"""A budget variant evaluates 20 times per run, as the 2,000-step protocol does (so the diagnostics' windows grow
with the budget instead of the evaluation cost)."""
BUDGET_PLANS: dict[tuple[str, int], dict] = {
    # The budget curve (SeMi and training length): the same protocol, the cosine schedule stretched over the run.
    ("mnist", 6000): {"methods": ("dualhead", "semi", "acr", "fixmatch"), "seeds": 5,
                      "paired_settings": ("consistent", "reversed", "uniform"), "other_seeds": {},
                      # which of SeMi's parts its rarest-class take-offs need (the budget curve's traces): the
                      # bank with its prototypes, or OHEML's weights, removed where the take-offs happened; and
                      # SeMi's lower threshold alone on the base
                      "ablation_seeds": 5, "ablations": ("semi-no_bank", "semi-no_oheml", "dualhead+threshold_0.7"),
                      "ablation_settings": ("reversed", "uniform")},
    ("mnist", 20000): {"methods": ("dualhead", "semi", "acr", "fixmatch"), "seeds": 5,
                       "method_seeds": {"acr": 2, "fixmatch": 2},
                       "paired_settings": ("consistent", "reversed", "uniform"), "other_seeds": {}},
    ("fashion", 20000): {"methods": ("supervised", "dualhead", "semi"), "seeds": 3,
                         "paired_settings": ("consistent", "reversed"), "other_seeds": {}},
}
"""Which methods and seeds each (protocol, budget) runs; a budget without a plan runs the protocol's own cells."""


def with_budget(protocol: Protocol, budget: int | None) -> Protocol:
    """The protocol trained for `budget` steps: its epochs and evaluation interval rescaled, everything else kept;
    records go to `accuracy-<protocol>-<budget>.json`. None or the protocol's own length: the protocol itself."""
    if budget is None:
        return protocol
    if budget % (STEPS_PER_EPOCH * EVALUATIONS_PER_RUN):
        raise SystemExit(f"--budget must be a multiple of {STEPS_PER_EPOCH * EVALUATIONS_PER_RUN} steps")
    if f"train.steps_per_epoch={STEPS_PER_EPOCH}" not in protocol.overrides:
        raise SystemExit(f"--budget needs a protocol with {STEPS_PER_EPOCH} steps per epoch (mnist, fashion)")
    keep = [o for o in protocol.overrides if not o.startswith(("train.epochs=", "train.eval_every="))]
    plan = BUDGET_PLANS.get((protocol.name, budget), {})
    unknown = set(plan.get("ablations") or ()) - set(ABLATIONS)
    if unknown:
        raise SystemExit(f"budget plan {protocol.name}/{budget}: unknown ablations {sorted(unknown)}")
    return Protocol(f"{protocol.name}-{budget}", [*keep, f"train.epochs={budget // STEPS_PER_EPOCH}",
                                                  f"train.eval_every={budget // EVALUATIONS_PER_RUN}"],
                    seeds=plan.get("seeds", protocol.seeds),
                    other_seeds=plan.get("other_seeds", protocol.other_seeds),
                    ablation_seeds=plan.get("ablation_seeds", 0), ablations=plan.get("ablations"),
                    ablation_settings=plan.get("ablation_settings"),
                    methods=plan.get("methods", protocol.methods),
                    paired_settings=plan.get("paired_settings", protocol.paired_settings),
                    method_seeds=plan.get("method_seeds", {}), budget=budget)


DIAGNOSTICS = ("acr_tau1", "acr_estimate_kl_to_true", "bank_fill", "bank_purity", "bank_purity_per_class",
               "window_proto_acc", "window_classifier_acc", "window_blend_acc", "window_hard_acc", "window_mask_rate",
               "window_pseudo_label_acc", "oheml_weight_per_class", "pseudo_label_accuracy", "mask_rate_known",
               "window_blend_change", "window_blend_fix", "proto_labeled_acc", "flex_learning_effect")
"""What a record keeps of the last evaluation's diagnostics (the full history stays in the run's metrics.jsonl)."""


def setting_overrides(setting: str) -> list[str]:
    return [f"data.unlabeled_distribution={setting}"]


def recipe_free(overrides: list[str], extra: list[str]) -> list[str]:
    """The protocol's overrides, less those an authors' recipe in `extra` sets (command-line overrides win over a
    recipe, so the protocol's mu = 1 would otherwise undo the recipe's)."""
    if "algorithm.recipe=authors" not in extra:
        return overrides
    from semi import specs

    name = next(o.split("=", 1)[1] for o in extra if o.startswith("algorithm.name="))
    data = next((o.split("=", 1)[1] for o in overrides if o.startswith("data.name=")), "digits")
    keys = set(specs.recipe_settings(name, data))
    return [o for o in overrides if o.split("=", 1)[0] not in keys]


def rarest_class_trace(run_dir: Path) -> dict | None:
    """How a run's rarest labeled class (fewest labeled images; ties: the last) fared at each evaluation, from the
    run's results.json and metrics.jsonl: its test accuracy (None in logs without `per_class_accuracy`), the
    pseudo-labels accepted for it since the previous evaluation and their precision, its memory-bank row's fill
    and capacity, and how many accepted labels SeMi's prototype blend has moved into it since the start and how
    many of those were right (methods without a bank or prototypes, or logs from before: None). None without the
    files."""
    results, metrics = run_dir / "results.json", run_dir / "metrics.jsonl"
    if not (results.exists() and metrics.exists()):
        return None
    res = json.loads(results.read_text())
    counts = res["labeled_counts"]
    k = max(range(len(counts)), key=lambda c: (-counts[c], c))

    def at(row: dict, key: str) -> float | None:
        v = (row.get(key) or [None] * len(counts))[k]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    from semi.evaluation.report.run_data import read_metrics_jsonl

    _, rows = read_metrics_jsonl(metrics, [])  # by step, the last line of a step winning, torn lines skipped
    evaluations = [{"step": r["step"], "test_accuracy": at(r, "per_class_accuracy"),
                    "accepted": at(r, "pseudo_label_counts"), "precision": at(r, "pseudo_label_precision"),
                    "bank_fill": at(r, "bank_fill"), "moved_in": at(r, "blend_moved_into"),
                    "moved_in_right": at(r, "blend_moved_into_right")} for r in rows]
    has_bank = any(e["bank_fill"] is not None for e in evaluations)
    return {"class": k, "labeled": counts[k],
            "bank_size": res["config"].get("semi", {}).get("bank_size") if has_bank else None,
            "evaluations": evaluations}


def run_cell(protocol: Protocol, cell: str, extra: list[str], runs_dir: Path, fresh: bool = False,
             setting_override: bool = True, threads: int | None = None) -> dict:
    """Train one cell. A run folder left by an interrupted sweep is resumed (`--resume auto`); `fresh` deletes it
    first (for --rerun: resuming a finished run would return its old result). `setting_override`: the cell's
    setting names the unlabeled distribution (False: the overrides say it). `threads` replaces the protocol's
    `train.threads` (parallel cells run single-threaded; recorded in the record's overrides)."""
    setting, method, seed = cell.split("/")
    out_dir = runs_dir / protocol.name / cell.replace("/", "_")
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    distribution = setting_overrides(setting) if setting_override else []
    args = [*recipe_free(protocol.overrides, extra), *distribution, *extra, f"train.seed={seed}",
            f"train.out_dir={out_dir}",
            "train.progress=false", "train.tensorboard=false", *([f"train.threads={threads}"] if threads else [])]
    cmd = [sys.executable, "-m", "semi", "train", "--resume", "auto", *args]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"cell {cell} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads((out_dir / "results.json").read_text())
    m = results["metrics"]
    record = {
        "protocol": protocol.name, "setting": setting, "method": method, "seed": int(seed), "cell": cell,
        "top1": m["top1"], "balanced_accuracy": m["balanced_accuracy"], "head_accuracy": m["head_accuracy"],
        "medium_accuracy": m["medium_accuracy"], "tail_accuracy": m["tail_accuracy"],
        "per_class_accuracy": m["per_class_accuracy"], "head_used": m["head_used"],
        "std_top1": results["metrics_by_head"]["standard"]["top1"],
        "val_top1": (m.get("validation") or {}).get("top1"),
        "balanced_head": {k: results["metrics_by_head"]["balanced"][k] for k in
                          ("top1", "balanced_accuracy", "head_accuracy", "medium_accuracy", "tail_accuracy")},
        "summary": results["summary"], "mask_rate": results.get("mask_rate"),
        "pseudo_label_accuracy": (results.get("pseudo_labels") or {}).get("pseudo_label_accuracy"),
        "diagnostics": {k: v for k, v in results.get("diagnostics", {}).items() if k in DIAGNOSTICS},
        "budget": protocol.budget or results["steps"], "steps": results["steps"],
        "train_seconds": results["train_seconds"], "wall_seconds": wall,
        "overrides": args, "git_commit": results["environment"]["git_commit"],
        "rarest_class": rarest_class_trace(out_dir),
    }
    return record


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"] if path.exists() else []


def save_records(path: Path, protocol: Protocol, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"protocol": protocol.name, "overrides": protocol.overrides, "records": records},
                              indent=1))
    tmp.replace(path)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _by_seed(records: list[dict], setting: str, method: str, key=lambda r: r["top1"]) -> dict[int, float]:
    return {r["seed"]: key(r) for r in records if r["setting"] == setting and r["method"] == method}


def _interval(d: dict | None) -> str:
    if d is None:
        return "-"
    if d["n"] == 1:
        return f"{d['mean']:+.1f} (1 seed)"
    return f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"


def markdown(records: list[dict]) -> str:
    """Per setting: each method (mean ± std over seeds; `top-1` with the head the method predicts with), the
    balanced heads of supervised-only and the oracle; then the paired differences with 95% t-intervals."""
    from semi.evaluation.metrics import paired_difference

    lines = []
    for setting in SETTINGS:
        rows = [r for r in records if r["setting"] == setting]
        if not rows:
            continue
        lines += [f"**{setting}**", "",
                  "| method | n | top-1 | head | medium | tail | mask rate | pseudo-label acc. | time/run |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        order = [m for m in METHODS if m in methods] + [m for m in methods if m not in METHODS]
        for method in order:
            rs = [r for r in rows if r["method"] == method]
            col = lambda key, rs=rs: _fmt([r[key] for r in rs])  # noqa: E731
            mask = [100 * r["mask_rate"] for r in rs if r.get("mask_rate") is not None]
            acc = [100 * r["pseudo_label_accuracy"] for r in rs if r.get("pseudo_label_accuracy") is not None]
            lines.append(f"| {method} | {len(rs)} | {col('top1')} | {col('head_accuracy')} | "
                         f"{col('medium_accuracy')} | {col('tail_accuracy')} | {_fmt(mask)} | {_fmt(acc)} | "
                         f"{statistics.mean(r['wall_seconds'] for r in rs):.0f} s |")
            if method in ("supervised", "oracle"):
                b = [r["balanced_head"] for r in rs]
                lines.append(f"| {method}, balanced (logit-adjusted) head | {len(rs)} | {_fmt([x['top1'] for x in b])}"
                             f" | {_fmt([x['head_accuracy'] for x in b])} | {_fmt([x['medium_accuracy'] for x in b])}"
                             f" | {_fmt([x['tail_accuracy'] for x in b])} | | | |")
        lines.append("")
        ablation = [(v, ref) for v in ABLATIONS for ref in ablation_references(v)]
        pairs = [(a, b) for a, b in (*PAIRS, *ablation) if a in methods and b in methods]
        sup_bal = _by_seed(records, setting, "supervised", lambda r: r["balanced_head"]["top1"])
        if pairs or sup_bal:
            lines += [f"Paired differences, {setting} (top-1 points, a - b over common seeds; mean [95% t-interval];"
                      " min = the worst seed):", "", "| a - b | n | mean [95% CI] | min |", "|---|---:|---:|---:|"]
            for a, b in pairs:
                d = paired_difference(_by_seed(records, setting, a), _by_seed(records, setting, b))
                lines.append(f"| {a} - {b} | {d['n'] if d else 0} | {_interval(d)} | "
                             f"{'' if d is None else format(d['min'], '+.1f')} |")
            for m in order:
                if m in ("supervised", "oracle") or not sup_bal:
                    continue
                d = paired_difference(_by_seed(records, setting, m), sup_bal)
                lines.append(f"| {m} - supervised (balanced head) | {d['n'] if d else 0} | {_interval(d)} | "
                             f"{'' if d is None else format(d['min'], '+.1f')} |")
            lines.append("")
    return "\n".join(lines)


def _cell(records: list[dict], setting: str, method: str) -> str:
    values = [r["top1"] for r in records if r["setting"] == setting and r["method"] == method]
    return f"{_fmt(values)} ({len(values)})" if values else "-"


def semi_effect_markdown(records: list[dict]) -> str:
    """Per base and setting: the base's top-1, the base with SeMi's components, and their paired difference over
    common seeds (mean [95% t-interval]; one seed: the difference alone)."""
    from semi.evaluation.metrics import paired_difference

    settings = [s for s in SETTINGS if any(r["setting"] == s for r in records)]
    lines = ["| base | " + " | ".join(f"{s}: base / +SeMi / paired difference" for s in settings) + " |",
             "|---|" + "---:|" * len(settings)]
    for base in BASES:
        cells = []
        for s in settings:
            d = paired_difference(_by_seed(records, s, with_semi(base)), _by_seed(records, s, base))
            cells.append(f"{_cell(records, s, base)} / {_cell(records, s, with_semi(base))} / {_interval(d)}")
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CDMAD_PAIRS = (("fixmatch+cdmad", "fixmatch"), ("fixmatch+cdmad-paper", "fixmatch"), ("dualhead+cdmad", "dualhead"),
               ("dualhead+cdmad-paper", "dualhead"), ("semi+cdmad", "semi"))
"""CDMAD beside the base it is attached to: as its released code (soft targets, threshold 0) and as its paper (hard
labels at the base's threshold); `semi+cdmad` keeps SeMi's threshold."""


RECIPE_PAIRS = (*(p for b in RECIPE_BASES for p in ((f"{b}-authors", b), (f"{b}+semi-authors", f"{b}-authors"),
                                                      (f"{b}+semi-authors", with_semi(b)))),
                ("cpe+semi-experts_0.95-authors", "cpe-authors"),
                ("cpe+semi-experts_0.95-authors", "cpe+semi-authors"),
                ("darp-estimated-authors", "darp-authors"))
"""Each base under its authors' recipe against the shared recipe, SeMi's components on it, and SeMi under either
recipe; CPE with SeMi's threshold kept off its tail-leaning experts."""


def pairs_markdown(records: list[dict], pairs: tuple[tuple[str, str], ...],
                   settings: tuple[str, ...] = ("consistent", "reversed")) -> str:
    """Per pair and setting: b's top-1, a's, and their paired difference over common seeds."""
    from semi.evaluation.metrics import paired_difference

    lines = ["| a vs b | " + " | ".join(f"{s}: b / a / a - b" for s in settings) + " |",
             "|---|" + "---:|" * len(settings)]
    for a, b in pairs:
        if not any(r["method"] == a for r in records):
            continue
        cells = []
        for s in settings:
            d = paired_difference(_by_seed(records, s, a), _by_seed(records, s, b))
            cells.append(f"{_cell(records, s, b)} / {_cell(records, s, a)} / {_interval(d)}")
        lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_markdown(records: list[dict]) -> str:
    """Every method (rows) by setting (columns): mean ± std (seeds); supervised and oracle with their balanced
    (logit-adjusted) head, the fair reference for the two-head methods."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in records)]
    lines = ["| method | " + " | ".join(settings) + " |", "|---|" + "---:|" * len(settings)]
    for method in METHODS:
        if not any(r["method"] == method for r in records):
            continue
        lines.append(f"| {method} | " + " | ".join(_cell(records, s, method) for s in settings) + " |")
        if method in ("supervised", "oracle"):
            bal = [{**r, "top1": r["balanced_head"]["top1"]} for r in records if r["method"] == method]
            lines.append(f"| {method} (balanced head) | " + " | ".join(_cell(bal, s, method) for s in settings) + " |")
    return "\n".join(lines)


def replace_marked(path: Path, name: str, body: str) -> bool:
    """Rewrite the text between `<!-- name:begin -->` and `<!-- name:end -->` in a document; False if absent."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    path.write_text(f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}")
    return True


def report(protocol: Protocol, records: list[dict]) -> None:
    """The protocol's Markdown (next to its JSON), its figures, and the marked tables of BENCHMARKS.md and the
    README (`<!-- accuracy-<protocol>-...:begin/end -->`), all from the records."""
    path = ROOT / "results" / f"accuracy-{protocol.name}.md"
    path.write_text(markdown(records) + "\n")
    print(path.read_text())
    repo = ROOT.parent
    for doc in (repo / "BENCHMARKS.md", repo / "README.md"):
        for name, body in ((f"accuracy-{protocol.name}-methods", methods_markdown(records)),
                           (f"accuracy-{protocol.name}-semi-effect", semi_effect_markdown(records)),
                           (f"accuracy-{protocol.name}-sweep", markdown(records)),
                           (f"accuracy-{protocol.name}-cdmad", pairs_markdown(records, CDMAD_PAIRS)),
                           (f"accuracy-{protocol.name}-recipes", pairs_markdown(records, RECIPE_PAIRS))):
            if replace_marked(doc, name, body):
                print(f"updated {doc.name}: {name}")
    for fig in figures(records, protocol.name):
        print(f"figure: {fig}")


def figures(records: list[dict], protocol: str) -> list[Path]:
    try:
        from semi.evaluation.report import plot_method_comparison, plot_per_class
    except ImportError:
        return []
    order = {s: i for i, s in enumerate(SETTINGS)}
    records = sorted(records, key=lambda r: order.get(r["setting"], len(order)))
    # On a balanced test set top-1 equals balanced accuracy, so the second bar is the tail classes' accuracy.
    metrics = (("top1", "top-1 (= balanced: balanced test set)", "#1f77b4"), ("tail_accuracy", "tail", "#2ca02c"))
    main = [r for r in records if r["method"] in METHODS]
    bal = [{**r, **r["balanced_head"], "method": f"{r['method']} (LA head)"} for r in main
           if r["method"] in ("supervised", "oracle")]
    extra = [r for r in records if r["method"] in VARIANTS or r["method"] in ABLATIONS]
    out = [ROOT / "results" / f"accuracy-{protocol}-methods.png",
           ROOT / "results" / f"accuracy-{protocol}-per-class.png",
           ROOT / "results" / f"accuracy-{protocol}-ablation.png"]
    plot_method_comparison(main + bal, out[0], metrics,
                           f"{protocol}: final EMA test accuracy per method (mean ± std over seeds)")
    plot_per_class(main, out[1], setting="reversed", methods=("fixmatch", "dualhead", "acr", "semi"))
    ablated = {r["setting"] for r in extra}  # the settings the ablation ran on (a budget plan may pick them)
    references = {ref for r in extra if r["method"] in ABLATIONS for ref in ablation_references(r["method"])}
    base = [r for r in main if r["method"] in references | {"dualhead", "semi"} and r["setting"] in ablated]
    if extra:
        plot_method_comparison(base + extra, out[2], metrics,
                               f"{protocol}: SeMi ablation (each part removed; each part alone on the dual-head base;"
                               " thresholds; SeMi on ACR) beside the methods they change")
    else:
        out.pop()
    return out


def run_cells(protocol: Protocol, todo: list[tuple[str, list[str]]], path: Path, runs_dir: Path, jobs: int,
              fresh: bool = False) -> None:
    """Run cells `jobs` at a time (each single-threaded when several), saving each record to `path` as it lands."""
    threads = 1 if jobs > 1 else None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_cell, protocol, cell, extra, runs_dir, fresh, True, threads): cell
                   for cell, extra in todo}
        for future in as_completed(futures):
            cell = futures[future]
            try:
                record = future.result()
            except RuntimeError as err:  # one failed cell is reported; the others still run and are kept
                print(f"[{time.strftime('%H:%M:%S')}] {err}", flush=True)
                continue
            # Records are read back before each save so that two sweeps of one protocol never drop each other's.
            records = [r for r in load_records(path) if r["cell"] != cell] + [record]
            save_records(path, protocol, records)
            print(f"[{time.strftime('%H:%M:%S')}] {protocol.name} {cell}: top-1 {record['top1']:.1f}  "
                  f"balanced {record['balanced_accuracy']:.1f}  tail {record['tail_accuracy']:.1f}  "
                  f"({record['wall_seconds']:.0f} s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="quick")
    p.add_argument("--cells", action="append", help="glob over 'setting/method/seed' (repeatable)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--budget", type=int, default=None,
                   help="train every cell for this many steps (the schedule stretched over it; E_est, warm-up and "
                        "bank decay kept in epochs of 100 steps); records go to accuracy-<protocol>-<budget>.json")
    p.add_argument("--runs-dir", default=str(ROOT / "runs"))
    p.add_argument("--rerun", action="store_true", help="run selected cells even if they have a record")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write the Markdown, figures and the marked tables of BENCHMARKS.md / README.md "
                        "from the records")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells run at once, each single-threaded (2 on this 2-core machine: about twice the cells per "
                        "hour of one two-threaded cell; results differ from --jobs 1 only by float summation order)")
    args = p.parse_args()
    protocol = with_budget(PROTOCOLS[args.protocol], args.budget)
    needed = [Path(o.split("=", 1)[1]) for o in protocol.overrides if o.startswith("data.path=")]
    if any(not p.exists() for p in needed) and not (args.list or args.report):
        raise SystemExit(f"{needed[0]} is missing: build it first (python benchmarks/wordnet_features.py)")
    path = ROOT / "results" / f"accuracy-{protocol.name}.json"
    records = load_records(path)
    done = {r["cell"] for r in records}
    todo = [(c, extra) for c, extra in cells(protocol)
            if not args.cells or any(fnmatch.fnmatch(c, pat) for pat in args.cells)]
    if args.list:
        for c, _ in todo:
            print(("done  " if c in done else "todo  ") + c)
        return
    if args.report:
        report(protocol, records)
        return
    todo = [(c, extra) for c, extra in todo if args.rerun or c not in done]
    run_cells(protocol, todo, path, Path(args.runs_dir), args.jobs, args.rerun)
    report(protocol, load_records(path))


if __name__ == "__main__":
    main()
