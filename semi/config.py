"""One typed configuration tree: YAML files plus dotted `key=value` overrides, validated with clear errors.

A run is `semi train --config FILE key=value ...`; the command line wins over the file, the file over the
defaults below. A YAML file may name a parent with `extends: other.yaml` (relative to itself). Every problem
(unknown key, wrong type, value outside its allowed set or range) is collected and reported at once with its
dotted key path, and the resolved tree is written next to the results so each run can be reproduced.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from semi.errors import ConfigError

DATA_ROOT_ENV = "SEMI_DATA_ROOT"

Distribution = Literal["consistent", "uniform", "reversed", "middle", "head_tail"]
"""How the unlabeled class counts relate to the labeled ones; middle and head_tail are SimPro's settings."""


@dataclass
class DataConfig:
    name: str = "digits"
    """Source: digits, mnist, fashion_mnist, cifar10, cifar100, svhn, stl10, imagenet127, image_folder, numpy."""
    root: str | None = None
    """Where the data set lives; default: $SEMI_DATA_ROOT, else ../shared/data next to the repo, else ./data."""
    path: str | None = None
    """A file or folder for the user-data sources (numpy: an .npz; image_folder: the folder)."""
    num_labeled_max: int = 30
    """N_1: labeled images of the largest class."""
    num_unlabeled_max: int = 90
    """M_1: unlabeled images of the largest unlabeled class."""
    imbalance_labeled: float = 10.0
    """gamma_l >= 1."""
    imbalance_unlabeled: float | None = None
    """gamma_u >= 1; default: gamma_l for consistent/reversed, 1 for uniform."""
    unlabeled_distribution: Distribution = "consistent"
    """consistent (gamma_u, same order), uniform, reversed (the consistent counts backwards), and SimPro's middle
    (largest counts in the middle classes) and head_tail (largest at both ends)."""
    split_order: Literal["first", "shuffle"] = "first"
    """first: the first N_k images of a class in data order are labeled (the literature); shuffle: seeded."""
    split_seed: int = 0
    val_per_class: int = 0
    """>0 holds out this many training images per class as a balanced validation set for model selection."""
    labeled_fraction: float = 0.1
    """For sources with a natural unlabeled split (imagenet127): the labeled share of each class."""
    image_size: int | None = None
    """Resize images to this size at load time (STL-10 defaults to 32); None keeps the source's size."""
    hflip: bool | None = None
    """Random horizontal flips in the weak (and so the strong) view; None: the source's default, on except for
    digits, mnist and svhn (a mirrored digit is another glyph; FixMatch does not flip SVHN either)."""
    cutout: float = 0.5
    """Side of the strong view's Cutout square as a fraction of the image side (FixMatch: 0.5; 0 = none)."""
    num_workers: int = 0
    """Data loader worker processes; 0 builds batches in the training process."""
    prefetch: int = 2


@dataclass
class ModelConfig:
    name: Literal["small_cnn", "wrn28_2", "wrn28_8", "resnet50"] = "small_cnn"
    width: int = 32
    """Base channel width of small_cnn."""
    dropout: float = 0.0
    bn_momentum: float = 0.001
    """BatchNorm momentum of the WRNs (FixMatch's choice); other models use PyTorch's default."""


@dataclass
class OptimConfig:
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    """cosine: lr * cos(7*pi*t / (16*T)) as in FixMatch."""


@dataclass
class TrainConfig:
    epochs: int = 30
    steps_per_epoch: int = 50
    batch_size: int = 64
    """Labeled images per step (per process under DDP: the global batch is batch_size * world size)."""
    mu: int = 1
    """Unlabeled images per step = mu * batch_size (each with one weak and two strong views)."""
    eval_every: int = 250
    """Steps between evaluations (and checkpoints); the last step always evaluates."""
    ema_decay: float = 0.999
    ema_warmup: bool = True
    """Use min(decay, (1+t)/(10+t)) so short runs do not keep the random initial weights."""
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:N."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed precision: bf16 autocast (CUDA or CPU), or fp16 autocast with a gradient scaler (CUDA only)."""
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    """Under DDP, convert BatchNorm to SyncBatchNorm (batch statistics over the global batch; CUDA only)."""
    out_dir: str | None = None
    """The run directory, exactly. Unset: a new one per run, RUNS_DIR/NAME-ALGORITHM-YYYYmmdd-HHMMSS."""
    runs_dir: str = "runs"
    """Where new run directories are made when train.out_dir is unset."""
    name: str | None = None
    """The run's name in its directory's name; unset: the config's name (digits_lt), else the data set's."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep besides latest.pt and best.pt."""
    progress: bool = True
    tensorboard: bool = True
    log_every: int = 10
    threads: int = 0
    """torch intra-op threads; 0 keeps PyTorch's default."""
    nonfinite: Literal["stop", "skip"] = "stop"
    """What to do on a non-finite loss: stop the run, or skip the step and count it."""


@dataclass
class AlgorithmConfig:
    name: str = "fixmatch"
    """supervised, oracle, fixmatch, dualhead, acr, daso (DASO on FixMatch; its options: the daso section), abc,
    cpe, darp, simpro, <base>+semi, semi (= dualhead+semi: SeMi on its authors' base, the logit-adjusted dual-head
    learner without ACR's adaptive tau1)."""
    threshold: float = 0.95
    """Confidence threshold tau of the base (SeMi overrides it with semi.threshold)."""
    lambda_u: float = 1.0
    temperature: float = 1.0
    balanced_loss: bool = False
    """Also train the balanced head with the logit-adjusted labeled loss (always on for dualhead and acr)."""
    tau2: float = 2.0
    """Logit adjustment of the balanced head's labeled loss."""
    tau12: float = 2.0
    """Debiasing of the balanced head's pseudo-labels."""
    tau_min: float = 0.0
    tau_max: float = 2.0
    tau1_init: float | None = None
    """ACR's tau1 before estimation starts; None = tau_max (the full correction, as ACR's released code). At
    short budgets tau_max can lock the standard head into tail pseudo-labels."""
    tau1_schedule: Literal["acr", "after_first_estimate"] = "acr"
    """acr: at the start of every epoch after E_est, tau1 = f(previous epoch's KL sum / steps per epoch), as ACR's
    released code (so 2/3 at the first such epoch, whose sums are still zero); after_first_estimate (ours before
    2026-11-30): tau1 keeps its initial value until an epoch has accumulated a KL, then f(mean KL)."""
    debias_warmup_epochs: float = 0.0
    """Ramp the pseudo-label debiasing strengths (tau1, tau12) linearly from 0 over this many epochs (0 = off,
    the spec). Ours, not ACR's: an untrained head debiased by 2*log(prior) labels nearly every image with the
    rarest class, which the balanced head then learns and the distribution estimate reads back as tail-heavy."""
    est_epoch: int = 5
    """ACR: epoch from which the unlabeled distribution is estimated (E_est)."""
    est_momentum: float = 0.99
    """EMA rate of ACR's unlabeled-distribution estimate: 0.99 in ACR's published commands (its code's default
    is 0.9)."""
    estimate_from: Literal["balanced_head", "debiased"] = "balanced_head"
    """ACR's unlabeled-distribution estimate counts the balanced head's confident predictions (argmax g2 where
    max softmax(g2) >= tau; the spec's "balanced head's masked pseudo-labels"), or 'debiased': the targets of the
    balanced-head loss (argmax p12 under its OR-mask). The latter over-counts tail classes early in training
    (tau12 = 2 over-corrects an untrained head) and locked tau1 at tau_max in our CIFAR-10-LT CPU runs."""
    symmetric_kl: Literal["sum", "mean"] = "mean"
    """The symmetric KL between the estimate and each anchor: 'mean' = 0.5 KL(u||a) + 0.5 KL(a||u), as ACR's
    released code computes it; 'sum' = the full Jeffreys divergence (ours before). The softmax over the three
    anchors is not scale-free, so 'mean' gives a less extreme tau1 (u = prior, gamma 100: 0.08 vs 0.004)."""
    estimate_counting: Literal["images", "presence"] = "presence"
    """How a batch adds to ACR's estimate: 'presence' counts each class present in the batch once, as ACR's
    released code does (an advanced-index `+=` with repeated indices writes once per class); 'images' counts
    every counted image (ours before). Presence counts compress the estimate toward uniform."""


@dataclass
class SemiConfig:
    """SeMi components; attached when the algorithm name has '+semi' (or is 'semi')."""

    memory_bank: bool = True
    prototypes: bool = True
    oheml: bool = True
    feature_consistency: bool = True
    threshold: float = 0.7
    """SeMi's lowered tau for every mask of the step (spec 5.3; the bases keep algorithm.threshold)."""
    threshold_schedule: Literal["always", "after_warmup"] = "always"
    """always: semi.threshold from the first step (the authors' commands); after_warmup: the base's threshold
    until the epoch index exceeds semi.warmup_epochs, then semi.threshold (an ablation of ours)."""
    bank_size: int = 128
    decay_every: int = 100
    decay: float = 0.99
    alpha: float = 0.4
    t_tar: float = 0.1
    oheml_strength: float = 0.75
    oheml_normalize: bool = False
    """Divide the OHEML weights by their mean over the masked samples of the step, so hard samples still count more
    than easy ones but the unlabeled loss keeps its scale (ours, off by default; the spec's weights average ~0.27 on
    MNIST-LT, which scales the standard head's L_u down almost 4x)."""
    t_p: float = 0.1
    center_momentum: float = 0.9
    lambda_c: float = 0.15
    warmup_epochs: int = 5
    """Prototypes, OHEML and L_cons start when the epoch index exceeds this (E_est)."""
    query_view: Literal["strong", "weak"] = "strong"
    pseudo_label_source: Literal["base", "raw"] = "base"
    """base: blend the base's pseudo-label distribution (dualhead and FixMatch: the raw softmax; ACR: p1, debiased
    by tau1); raw: always the unadjusted softmax."""


@dataclass
class DasoConfig:
    """DASO (Oh et al., CVPR 2022), the `daso` base: FixMatch whose pseudo-label blends in a semantic one from
    prototypes of labeled features, weighted by the pseudo-label distribution, plus the semantic alignment loss.
    Defaults: the authors' released code and CIFAR-10-LT config (configs/cifar10/fixmatch_daso.yaml)."""

    queue_size: int = 256
    """Labeled features kept per class (a FIFO queue, the same size for every class; MODEL.QUEUE.MAX_SIZE)."""
    pretrain_epochs: float = 10.0
    """Plain FixMatch (the queue and the pseudo-label counts still fill) until the epoch index reaches this; the
    authors' PRETRAIN_STEPS = 5000, i.e. 10 epochs of 500 steps at paper scale (2% of training)."""
    proto_temperature: float = 0.05
    """T_proto: the semantic pseudo-label is softmax_k(cos(z, c_k) / T_proto)."""
    dist_aware: bool = True
    """Blend weight from the pseudo-label distribution (DASO); false: the fixed weight daso.interp_alpha."""
    dist_temperature: float = 1.5
    """T_dist, sharpening (< 1) or flattening (> 1) the pseudo-label distribution before it becomes the blend
    weights. The authors use 1.5 on CIFAR-10-LT when gamma_u = gamma_l, else 0.3 (and 0.3 on CIFAR-100-LT, STL-10)."""
    interp_alpha: float = 0.5
    """The fixed blend weight with daso.dist_aware=false (the authors' ablation)."""
    dist_update_every: int = 100
    """Steps per window: the pseudo-label distribution is the class histogram of all (not only masked) final
    pseudo-labels of the last full window (PL_DIST_UPDATE_PERIOD)."""
    align_weight: float = 1.0
    """Weight of the semantic alignment loss (PSA_LOSS_WEIGHT; 0 = off)."""


@dataclass
class AbcConfig:
    """ABC (Lee et al., NeurIPS 2021): the auxiliary balanced classifier, here the balanced head g2."""

    unlabeled_target: Literal["soft", "hard"] = "soft"
    """The auxiliary classifier's unlabeled target: soft = its whole weak-view softmax, as the authors' ABCfix.py
    trains it; hard = the one-hot argmax (the paper's equation and USB's reimplementation)."""
    loss_weight: float = 1.0
    """Weight of the auxiliary classifier's loss (labeled + unlabeled) in the total; 1 in the authors' code."""


@dataclass
class CpeConfig:
    """CPE (Ma et al., AAAI 2024): three experts on one embedding, logit-adjusted for three unlabeled priors."""

    tau_consistent: float = 0.0
    """Logit adjustment of expert 1 (the standard head g1) in its labeled loss CE(g + tau log pi, y)."""
    tau_uniform: float = 2.0
    """... of expert 2 (the balanced head g2, used for prediction as in the authors' code)."""
    tau_reversed: float = 4.0
    """... of expert 3 (the model's extra head)."""
    medium_from: float = 0.2
    """Class groups of the authors' classwise-BN loss weights, as a share of the classes: pseudo-labels of class
    index >= round(medium_from * C) count twice, >= round(tail_from * C) three times (their CIFAR-10 configs:
    cut 2 and 4 of 10, i.e. 0.2 / 0.4; CIFAR-100: 35 and 70 of 100, i.e. 0.35 / 0.7)."""
    tail_from: float = 0.4
    group_weights: bool = True
    """Weight each masked pseudo-label by its class group (1, 2 or 3) and normalise by the weights' sum, which is
    the authors' loss with its three BN branches collapsed into one; false: the plain mean over masked samples."""
    pseudo_labels: Literal["own", "ensemble"] = "own"
    """own: each expert trains on its own weak-view pseudo-labels (the authors' code); ensemble: all three train
    on the argmax of the mean of the experts' softmaxes, masked by its confidence (ours, an option)."""


@dataclass
class DarpConfig:
    """DARP (Kim et al., NeurIPS 2020) on FixMatch: refined pseudo-labels of the whole unlabeled pool, solved
    periodically so that their class totals match a target distribution (algorithm.name=darp)."""

    warmup: float = 0.4
    """DARP starts when the epoch index exceeds warmup * train.epochs (the authors' commands: --warm 200 of 500
    epochs); before that it is FixMatch."""
    solve_every: int = 10
    """Steps between solves, counted from each epoch's first step (the authors' --num_iter: 10 for CIFAR-10, 100
    for CIFAR-100 and STL-10). Between solves an image's target is its refined label from the last solve."""
    target: Literal["labeled_prior", "uniform"] = "labeled_prior"
    """The class distribution the refined labels must match, times the pool size: the labeled set's (the authors'
    code without --est) or uniform."""
    alpha: float = 2.0
    """Noise removal before the solve: each class k keeps only its floor(alpha * target_k) most probable images
    (the authors' --alpha)."""
    iterations: int = 10
    """Outer iterations T of the coordinate ascent (the authors' --iter_T: 10; 20 for CIFAR-100 and STL-10)."""
    root_finder: Literal["secant", "newton"] = "secant"
    """How each class's dual variable is solved within an iteration: the authors' code calls scipy's newton without
    a derivative, which is the secant method, from the previous solution; newton uses the analytic derivative
    (Newton's method, as the paper names it) and a tight tolerance."""
    tolerance: float = 0.1
    """Stopping tolerance of the secant steps on the dual variable (the authors': 0.1 for CIFAR-10, 0.3 for
    CIFAR-100 and STL-10); root_finder=newton uses 1e-10 instead."""
    root_iterations: int = 30
    """At most this many secant / Newton steps per class and iteration (the authors': 30)."""


@dataclass
class SimProConfig:
    """SimPro (Du et al., ICML 2024): an EM estimate of the unknown unlabeled class prior and Bayes-optimal
    pseudo-labels from a logit-adjusted head (algorithm.name=simpro)."""

    tau: float = 2.0
    """Strength of the logit adjustments log(prior^tau) (the authors' scripts: 2.0 for CIFAR-10 and STL-10, 1.0
    for CIFAR-100 and ImageNet-127)."""
    momentum: float = 0.9
    """EMA rate of the per-epoch prior updates (the authors' ema_u)."""
    soft_targets: bool = True
    """Train the unlabeled loss on the soft pseudo-label distribution (the authors' code); false: its argmax."""
    labeled_loss_scale: Literal["loader_ratio", "none"] = "loader_ratio"
    """loader_ratio: divide the labeled loss by (unlabeled batches per pass) / (labeled batches per pass), as the
    authors' code does (its probabilistic model weighs the two sets by their sizes); none: weight 1."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)
    daso: DasoConfig = field(default_factory=DasoConfig)
    abc: AbcConfig = field(default_factory=AbcConfig)
    cpe: CpeConfig = field(default_factory=CpeConfig)
    darp: DarpConfig = field(default_factory=DarpConfig)
    simpro: SimProConfig = field(default_factory=SimProConfig)

    @property
    def total_steps(self) -> int:
        return self.train.epochs * self.train.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if _is_optional(tp):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check `value` against the annotation `tp`; return it (ints accepted for floats) or record a problem."""
    if _is_optional(tp):
        if value is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _coerce(value, inner[0], key, problems)
    if get_origin(tp) is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            problems.append(f"{key}: {value!r} is not allowed; allowed values: {', '.join(map(str, allowed))}")
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported config annotation {tp} for {key}")
    if not ok:
        problems.append(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return value
    return float(value) if tp is float else value


def _merge_into(obj: Any, values: dict[str, Any], prefix: str, problems: list[str]) -> None:
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in fields:
            problems.append(f"{path}: unknown key; known keys here: {', '.join(sorted(fields))}")
            continue
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                names = ", ".join(f.name for f in dataclasses.fields(current))
                problems.append(f"{path}: expected a mapping of {names}")
                continue
            _merge_into(current, value, f"{path}.", problems)
        else:
            before = len(problems)
            coerced = _coerce(value, hints[key], path, problems)
            if len(problems) == before:  # a bad value keeps the default, so range checks still run safely
                setattr(obj, key, coerced)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError([f"{path}: 'extends' forms a cycle"])
    if path.is_dir():
        raise ConfigError([f"{path} is a folder, not a config file"])
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError([f"{path}: 'extends' must be a file name (a string), got {parent!r}"])
    base = _read_yaml(path.parent / parent, (*seen, path))
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn ['train.seed=3', 'algorithm.name=semi'] into a nested dict; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        if "=" not in item:
            problems.append(f"override {item!r}: expected key=value (for example train.seed=1)")
            continue
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override {item!r}: {part} is not a section")
                break
        else:
            node[parts[-1]] = value
    return nested, problems


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file (with its `extends` chain) <- command-line overrides; then validate."""
    cfg = Config()
    problems: list[str] = []
    if path is not None:
        _merge_into(cfg, _read_yaml(Path(path)), "", problems)
    over, parse_problems = parse_overrides(overrides or [])
    problems += parse_problems
    _merge_into(cfg, over, "", problems)
    problems += validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def config_from_dict(values: dict[str, Any]) -> Config:
    cfg = Config()
    problems: list[str] = []
    _merge_into(cfg, values, "", problems)
    problems += validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def validate(cfg: Config) -> list[str]:
    """Range and consistency checks that types cannot express; returns every problem found."""
    from semi.algorithm_names import split_algorithm_name  # torch-free: a typo must fail before torch loads

    p: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    d, t, o, a, s = cfg.data, cfg.train, cfg.optim, cfg.algorithm, cfg.semi
    need(d.num_labeled_max >= 1, f"data.num_labeled_max: must be >= 1, got {d.num_labeled_max}")
    need(d.num_unlabeled_max >= 0, f"data.num_unlabeled_max: must be >= 0, got {d.num_unlabeled_max}")
    need(d.imbalance_labeled >= 1, f"data.imbalance_labeled: gamma_l must be >= 1, got {d.imbalance_labeled}")
    if d.imbalance_unlabeled is not None:
        need(d.imbalance_unlabeled >= 1, f"data.imbalance_unlabeled: gamma_u must be >= 1, got {d.imbalance_unlabeled}")
        need(d.unlabeled_distribution != "uniform" or d.imbalance_unlabeled == 1,
             f"data.imbalance_unlabeled: {d.imbalance_unlabeled} contradicts data.unlabeled_distribution=uniform "
             "(gamma_u = 1); leave it unset, or use consistent/reversed")
    need(d.val_per_class >= 0, f"data.val_per_class: must be >= 0, got {d.val_per_class}")
    need(d.split_seed >= 0, f"data.split_seed: must be >= 0, got {d.split_seed}")
    need(0 < d.labeled_fraction <= 1, f"data.labeled_fraction: must be in (0, 1], got {d.labeled_fraction}")
    need(d.image_size is None or d.image_size >= 8, f"data.image_size: must be >= 8, got {d.image_size}")
    need(0 <= d.cutout <= 1, f"data.cutout: must be in [0, 1], got {d.cutout}")
    need(d.num_workers >= 0, f"data.num_workers: must be >= 0, got {d.num_workers}")
    need(d.prefetch >= 1, f"data.prefetch: must be >= 1, got {d.prefetch}")
    need(t.epochs >= 1, f"train.epochs: must be >= 1, got {t.epochs}")
    need(t.steps_per_epoch >= 1, f"train.steps_per_epoch: must be >= 1, got {t.steps_per_epoch}")
    need(t.batch_size >= 1, f"train.batch_size: must be >= 1, got {t.batch_size}")
    need(t.mu >= 1, f"train.mu: must be >= 1, got {t.mu}")
    need(t.eval_every >= 1, f"train.eval_every: must be >= 1, got {t.eval_every}")
    need(0 <= t.ema_decay < 1, f"train.ema_decay: must be in [0, 1), got {t.ema_decay}")
    need(t.keep_checkpoints >= 1, f"train.keep_checkpoints: must be >= 1, got {t.keep_checkpoints}")
    need(t.log_every >= 1, f"train.log_every: must be >= 1, got {t.log_every}")
    need(-(2**63) <= t.seed < 2**63, f"train.seed: must be a 64-bit signed integer, got {t.seed}")
    need(t.threads >= 0, f"train.threads: must be >= 0 (0 keeps PyTorch's default), got {t.threads}")
    need(t.out_dir is None or t.out_dir.strip() != "", "train.out_dir: must name a folder, got an empty string")
    need(t.runs_dir.strip() != "", "train.runs_dir: must name a folder, got an empty string")
    need(t.name is None or (t.name.strip() != "" and "/" not in t.name),
         f"train.name: must be a non-empty name without '/', got {t.name!r}")
    need(cfg.model.width >= 1, f"model.width: must be >= 1, got {cfg.model.width}")
    need(0 <= cfg.model.dropout < 1, f"model.dropout: must be in [0, 1), got {cfg.model.dropout}")
    need(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
         f"train.device: {t.device!r} is not allowed; allowed values: auto, cpu, cuda, cuda:N")
    need(o.lr > 0, f"optim.lr: must be > 0, got {o.lr}")
    need(0 <= o.momentum < 1, f"optim.momentum: must be in [0, 1), got {o.momentum}")
    need(o.weight_decay >= 0, f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
    need(0 < a.threshold <= 1, f"algorithm.threshold: must be in (0, 1], got {a.threshold}")
    need(a.temperature > 0, f"algorithm.temperature: must be > 0, got {a.temperature}")
    need(a.debias_warmup_epochs >= 0, f"algorithm.debias_warmup_epochs: must be >= 0, got {a.debias_warmup_epochs}")
    need(a.tau_max >= a.tau_min, f"algorithm.tau_max: must be >= algorithm.tau_min ({a.tau_min}), got {a.tau_max}")
    need(0 <= a.est_momentum < 1, f"algorithm.est_momentum: must be in [0, 1), got {a.est_momentum}")
    need(a.est_epoch >= 0, f"algorithm.est_epoch: must be >= 0, got {a.est_epoch}")
    try:
        split_algorithm_name(a.name)
    except ValueError as exc:
        p.append(f"algorithm.name: {exc}")
    need(0 < s.threshold <= 1, f"semi.threshold: must be in (0, 1], got {s.threshold}")
    need(s.bank_size >= 1, f"semi.bank_size: must be >= 1, got {s.bank_size}")
    need(s.decay_every >= 1, f"semi.decay_every: must be >= 1, got {s.decay_every}")
    need(0 < s.decay <= 1, f"semi.decay: must be in (0, 1], got {s.decay}")
    need(0 <= s.alpha <= 1, f"semi.alpha: must be in [0, 1], got {s.alpha}")
    need(s.t_tar > 0, f"semi.t_tar: must be > 0, got {s.t_tar}")
    need(0 <= s.oheml_strength <= 1, f"semi.oheml_strength: must be in [0, 1], got {s.oheml_strength}")
    need(s.t_p > 0, f"semi.t_p: must be > 0, got {s.t_p}")
    need(0 <= s.center_momentum < 1, f"semi.center_momentum: must be in [0, 1), got {s.center_momentum}")
    need(s.lambda_c >= 0, f"semi.lambda_c: must be >= 0, got {s.lambda_c}")
    need(s.warmup_epochs >= 0, f"semi.warmup_epochs: must be >= 0, got {s.warmup_epochs}")
    g = cfg.daso
    need(g.queue_size >= 1, f"daso.queue_size: must be >= 1, got {g.queue_size}")
    need(g.pretrain_epochs >= 0, f"daso.pretrain_epochs: must be >= 0, got {g.pretrain_epochs}")
    need(g.proto_temperature > 0, f"daso.proto_temperature: must be > 0, got {g.proto_temperature}")
    need(g.dist_temperature > 0, f"daso.dist_temperature: must be > 0, got {g.dist_temperature}")
    need(0 <= g.interp_alpha <= 1, f"daso.interp_alpha: must be in [0, 1], got {g.interp_alpha}")
    need(g.dist_update_every >= 1, f"daso.dist_update_every: must be >= 1, got {g.dist_update_every}")
    need(g.align_weight >= 0, f"daso.align_weight: must be >= 0, got {g.align_weight}")
    dp, sp = cfg.darp, cfg.simpro
    need(dp.warmup >= 0, f"darp.warmup: must be >= 0, got {dp.warmup}")
    need(dp.solve_every >= 1, f"darp.solve_every: must be >= 1, got {dp.solve_every}")
    need(dp.alpha > 0, f"darp.alpha: must be > 0, got {dp.alpha}")
    need(dp.iterations >= 1, f"darp.iterations: must be >= 1, got {dp.iterations}")
    need(dp.tolerance > 0, f"darp.tolerance: must be > 0, got {dp.tolerance}")
    need(dp.root_iterations >= 1, f"darp.root_iterations: must be >= 1, got {dp.root_iterations}")
    need(sp.tau >= 0, f"simpro.tau: must be >= 0, got {sp.tau}")
    need(0 <= sp.momentum < 1, f"simpro.momentum: must be in [0, 1), got {sp.momentum}")
    need(not (s.prototypes and not s.memory_bank),
         "semi.prototypes: needs semi.memory_bank=true (prototypes are the bank's class means); "
         "set semi.prototypes=false too to ablate the bank")
    need(cfg.abc.loss_weight >= 0, f"abc.loss_weight: must be >= 0, got {cfg.abc.loss_weight}")
    c = cfg.cpe
    need(0 <= c.medium_from <= c.tail_from <= 1,
         f"cpe.medium_from, cpe.tail_from: need 0 <= medium_from <= tail_from <= 1, got {c.medium_from}, {c.tail_from}")
    return p


def default_data_root() -> Path:
    """$SEMI_DATA_ROOT, else ../shared/data beside the repository (this project's layout), else ./data."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path("data")


def save_config(cfg: Config, path: Path, comments: list[str] | None = None) -> None:
    """The resolved tree as YAML, after `# comment` lines (e.g. the settings changed on resume)."""
    from semi.engine.checkpoint import atomic_write_text

    head = "".join(f"# {line}\n" for line in comments or [])
    atomic_write_text(path, head + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
