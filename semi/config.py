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
VECTOR_MODELS = frozenset({"mlp"})
"""Backbones that take feature vectors (N, D); every other model takes images."""
BUILTIN_MODELS = ("small_cnn", "wrn28_2", "wrn28_8", "resnet50", "mlp")
TIMM_PREFIX = "timm:"
"""model.name=timm:<name> builds a timm model (the timm extra) as the backbone."""

Distribution = Literal["consistent", "uniform", "reversed", "middle", "head_tail"]
"""How the unlabeled class counts relate to the labeled ones; middle and head_tail are SimPro's settings."""


@dataclass
class DataConfig:
    name: str = "digits"
    """Source: digits, mnist, fashion_mnist, cifar10, cifar100, svhn, stl10, imagenet127, image_folder, numpy, and
    features (feature vectors of any modality from a file; train them with model.name=mlp)."""
    root: str | None = None
    """Where the data set lives; default: $SEMI_DATA_ROOT, else ../shared/data next to the repo, else ./data."""
    path: str | None = None
    """A file or folder for the user-data sources (numpy: an .npz; image_folder: the folder; features: an .npz, a
    folder of .npy files, a .csv or a .parquet)."""
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
    label_column: str = "label"
    """features from a .csv / .parquet table: the column of labels (an optional `split` column says train,
    unlabeled or test per row; every other column is a feature)."""
    views: Literal["auto", "generated", "offline"] = "auto"
    """Views of feature vectors. generated: weak = Gaussian noise of data.feature_noise times each dimension's std;
    strong = SCARF corruption (each feature, with probability data.feature_corruption, replaced by the same
    feature of a random training row), then the weak noise. offline: each view is one of the file's precomputed
    encodings of the row (its `views` array), drawn uniformly. auto: offline when the file has views."""
    labeled_in_pool: bool = True
    """The labeled images are also in the unlabeled set, their labels hidden (the literature's default, and DARP's
    FixMatch code); false: the unlabeled set is the M_k images beyond them only."""
    feature_noise: float = 0.1
    """Std of the weak view's Gaussian noise, in units of each dimension's std (generated views)."""
    feature_corruption: float = 0.3
    """Share of features the strong view replaces from their empirical marginals (SCARF, Bahri et al., ICLR 2022,
    uses 0.6 for contrastive pre-training; a pseudo-label must survive this view, hence less)."""
    num_workers: int = 0
    """Data loader worker processes; 0 builds batches in the training process."""
    prefetch: int = 2
    augment_on: Literal["loader", "device"] = "loader"
    """Where image batches are augmented: loader = in the loader (its workers, or the training process with
    num_workers=0); device = on the training device, after the raw uint8 images are moved there (for a GPU the
    loader's CPU cores cannot feed). The random draws are the same (made on the CPU from the step's generator), so
    both give the same views. Images only."""


@dataclass
class ModelConfig:
    name: str = "small_cnn"
    """Backbone: the image models small_cnn, wrn28_2, wrn28_8, resnet50, timm:<name> (any timm model, the timm
    extra), or mlp for feature vectors."""
    pretrained: str | None = None
    """A weights file loaded into the backbone before training (never into the heads): a `semi` checkpoint (its
    EMA backbone), or a state dict of the backbone (keys may carry a module. / backbone. prefix; a timm or
    torchvision classifier's keys are ignored). Every backbone tensor must be found, with its shape."""
    width: int | None = None
    """small_cnn: base channel width (default 32); mlp: units per hidden layer (default 256)."""
    depth: int = 2
    """mlp: hidden layers (0: the heads act on the standardised vectors directly)."""
    norm: Literal["batch", "layer", "none"] = "batch"
    """mlp: normalisation after each hidden layer's linear map."""
    dropout: float = 0.0
    bn_momentum: float = 0.001
    """BatchNorm momentum of the WRNs (FixMatch's choice); other models use PyTorch's default."""


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    """sgd: Nesterov SGD (FixMatch's); adam: Adam (DARP's and ABC's released code); adamw: AdamW, with
    optim.layer_decay the fine-tuning recipe USB uses for pretrained backbones."""
    lr: float = 0.03
    momentum: float = 0.9
    """SGD's momentum; AdamW's beta1."""
    nesterov: bool = True
    layer_decay: float = 1.0
    """Layer-wise learning-rate decay: the heads train at lr, the backbone's last layer at lr * layer_decay, the
    one before at lr * layer_decay^2, ... (a layer: each child module of the backbone that holds parameters,
    looking through single-child wrappers); 1 = one rate for all."""
    weight_decay: float = 5e-4
    weight_decay_mode: Literal["optimizer", "ema_step"] = "optimizer"
    """optimizer: the optimiser's weight decay (weights only, not biases or norm parameters); ema_step: none in the
    optimiser, instead every parameter is multiplied by (1 - weight_decay) after each EMA update (DARP's and ABC's
    WeightEMA, where weight_decay is 0.02 * lr per step)."""
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
    """torch.compile the backbone and heads of the training model (static shapes; the algorithm stays eager). The
    first step holds the compilation: results.json reports the first step's wall time (its batch included) of the
    latest start as first_step_seconds; inductor's on-disk cache makes a resumed run's compilation shorter."""
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
    recipe: Literal["shared", "authors"] = "shared"
    """shared: every method on this config's common recipe (fair comparisons at one budget); authors: each
    method's released recipe for the data set's family (mu, optimiser and where its weight decay goes, schedule,
    learning rate, temperatures, thresholds, solver settings, the unlabeled pool) set over the config file, with
    command-line overrides still winning. `semi config show` lists the recipe's values and their sources."""
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
    released code (so 2/3 at the first such epoch, whose sums are still zero); after_first_estimate (ours, an
    option): tau1 keeps its initial value until an epoch has accumulated a KL, then f(mean KL)."""
    debias_warmup_epochs: float = 0.0
    """Ramp the pseudo-label debiasing strengths (tau1, tau12) linearly from 0 over this many epochs (0 = off,
    SeMi's and ACR's). Ours, not ACR's: an untrained head debiased by 2*log(prior) labels nearly every image with the
    rarest class, which the balanced head then learns and the distribution estimate reads back as tail-heavy."""
    est_epoch: int = 5
    """ACR: epoch from which the unlabeled distribution is estimated (E_est)."""
    est_momentum: float = 0.99
    """EMA rate of ACR's unlabeled-distribution estimate: 0.99 in ACR's published commands (its code's default
    is 0.9)."""
    estimate_from: Literal["balanced_head", "debiased"] = "balanced_head"
    """ACR's unlabeled-distribution estimate counts the balanced head's confident predictions (argmax g2 where
    max softmax(g2) >= tau: the balanced head's masked pseudo-labels), or 'debiased': the targets of the
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
    estimate_threshold: float | None = None
    """ACR's estimate counts the balanced head's predictions whose confidence reaches this; None: the mask's
    threshold of the step (ACR's code, where both are its tau = 0.95). A component that lowers the mask's threshold
    (SeMi's 0.7) lowers the estimate's with it, and presence counts then drift toward uniform (BENCHMARKS.md,
    section 5); 0.95 keeps ACR's estimate while the mask uses the component's threshold."""


CORE_SECTIONS = ("data", "model", "optim", "train", "algorithm")
"""Sections every run has; each method with options adds its own (`semi.specs.MethodSpec.section`)."""


def _method_sections() -> dict[str, Any]:
    from semi import specs  # torch-free: the method packages declare their specs without torch

    return {name: cls() for name, cls in specs.sections()}


@dataclass
class Config:
    """The whole tree: the core sections, then one section per registered method with options (`cfg.semi`,
    `cfg.daso`, ...: read as attributes like the core ones)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    methods: dict[str, Any] = field(default_factory=_method_sections, repr=False)
    """Method sections by name."""

    def __getattr__(self, name: str) -> Any:  # only called for names that are not plain attributes
        methods = self.__dict__.get("methods")
        if methods is not None and name in methods:
            return methods[name]
        raise AttributeError(f"config has no section {name!r}")

    def sections(self) -> list[tuple[str, Any]]:
        """(name, section object) of every section, core first."""
        return [*((n, getattr(self, n)) for n in CORE_SECTIONS), *self.methods.items()]

    @property
    def total_steps(self) -> int:
        return self.train.epochs * self.train.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(obj) for name, obj in self.sections()}


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


def _merge_config(cfg: Config, values: dict[str, Any], problems: list[str]) -> None:
    sections = dict(cfg.sections())
    for key, value in values.items():
        if key not in sections:
            problems.append(f"{key}: unknown key; known keys here: {', '.join(sorted(sections))}")
        elif not isinstance(value, dict):
            names = ", ".join(f.name for f in dataclasses.fields(sections[key]))
            problems.append(f"{key}: expected a mapping of {names}")
        else:
            _merge_into(sections[key], value, f"{key}.", problems)


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
        _merge_config(cfg, _read_yaml(Path(path)), problems)
    over, parse_problems = parse_overrides(overrides or [])
    problems += parse_problems
    _merge_config(cfg, over, problems)
    if cfg.algorithm.recipe == "authors" and not problems:
        problems += apply_recipe(cfg)
        _merge_config(cfg, over, problems)  # the command line wins over the recipe
    problems += validate(cfg) + input_file_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def input_file_problems(cfg: Config) -> list[str]:
    """Files a new run reads at its start (model.pretrained and the specs' `input_files`), checked when a config
    is loaded for a new run only: a checkpoint already holds what they gave, so evaluating, predicting or
    resuming a run must not need them."""
    from semi import specs

    keys = ["model.pretrained", *(k for s in specs.all_specs() for k in s.input_files)]
    return [f"{k}: {get_value(cfg, k)} is not a file" for k in keys
            if get_value(cfg, k) is not None and not Path(str(get_value(cfg, k))).expanduser().is_file()]


def apply_recipe(cfg: Config) -> list[str]:
    """Set the authors' recipe of cfg's algorithm for its data set (over the file's values); returns problems."""
    from semi import specs

    try:
        settings = specs.recipe_settings(cfg.algorithm.name, cfg.data.name)
    except ValueError:
        return []  # an unknown algorithm name: validate() says so
    problems: list[str] = []
    nested: dict[str, dict[str, Any]] = {}
    for key, setting in settings.items():
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = setting.value
    _merge_config(cfg, nested, problems)
    return [f"algorithm.recipe=authors: {p}" for p in problems]


def recipe_record(cfg: Config) -> dict[str, Any]:
    """The recipe a config ran with, for results.json and `semi config show`: its name, the data-set family, and
    under `authors` each recipe value with its source and whether the run used it (False: overridden)."""
    from semi import specs

    out: dict[str, Any] = {"name": cfg.algorithm.recipe, "family": specs.data_family(cfg.data.name)}
    if cfg.algorithm.recipe == "authors":
        settings = specs.recipe_settings(cfg.algorithm.name, cfg.data.name)
        out["settings"] = {k: {"value": s.value, "source": s.source, "used": get_value(cfg, k) == s.value}
                           for k, s in settings.items()}
    return out


def get_value(cfg: Config, dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    return getattr(getattr(cfg, section), key)


def config_from_dict(values: dict[str, Any]) -> Config:
    cfg = Config()
    problems: list[str] = []
    _merge_config(cfg, values, problems)
    problems += validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def validate(cfg: Config) -> list[str]:
    """Range and consistency checks that types cannot express; returns every problem found."""
    from semi import specs  # torch-free: a typo must fail before torch loads

    p: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    d, t, o, a = cfg.data, cfg.train, cfg.optim, cfg.algorithm
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
    need(d.augment_on == "loader" or d.name != "features",
         "data.augment_on=device: feature vectors' views are made in the loader; use data.augment_on=loader")
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
    need(cfg.model.width is None or cfg.model.width >= 1, f"model.width: must be >= 1, got {cfg.model.width}")
    need(cfg.model.depth >= 0, f"model.depth: must be >= 0, got {cfg.model.depth}")
    m = cfg.model.name
    need(m in BUILTIN_MODELS or (m.startswith(TIMM_PREFIX) and len(m) > len(TIMM_PREFIX)),
         f"model.name: {m!r} is not allowed; allowed values: {', '.join(BUILTIN_MODELS)}, {TIMM_PREFIX}<name>")
    need(o.layer_decay > 0 and o.layer_decay <= 1, f"optim.layer_decay: must be in (0, 1], got {o.layer_decay}")
    need(d.feature_noise >= 0, f"data.feature_noise: must be >= 0, got {d.feature_noise}")
    need(0 <= d.feature_corruption <= 1, f"data.feature_corruption: must be in [0, 1], got {d.feature_corruption}")
    vectors, vector_model = d.name == "features", cfg.model.name in VECTOR_MODELS
    need(vectors == vector_model,
         f"model.name={cfg.model.name} does not fit data.name={d.name}: feature vectors train with "
         f"{' or '.join(sorted(VECTOR_MODELS))}, images with an image model (small_cnn, wrn28_2, wrn28_8, resnet50)")
    if vectors:
        need(d.image_size is None, "data.image_size: feature vectors have no image size; leave it unset")
    need(d.views == "auto" or vectors, f"data.views={d.views}: is for feature vectors (data.name=features)")
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
    need(a.estimate_threshold is None or 0 < a.estimate_threshold <= 1,
         f"algorithm.estimate_threshold: must be in (0, 1] or null, got {a.estimate_threshold}")
    try:
        specs.parse(a.name)
    except ValueError as exc:
        p.append(f"algorithm.name: {exc}")
    for spec in specs.all_specs():  # each method checks its own section
        if spec.check is not None:
            p += spec.check(cfg)
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
    from semi.files import atomic_write_text

    head = "".join(f"# {line}\n" for line in comments or [])
    atomic_write_text(path, head + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
