"""What a method is, declared without torch: its name, config section, capabilities and where its code lives.

Every method declares one `MethodSpec` in its own module: a base learner (`kind="base"`: FixMatch, ACR, DASO, ...)
or a component that attaches to any base that accepts components (`kind="component"`: SeMi's parts as one
attachment, CDMAD). The config tree, the name parser, the registry that builds algorithms, `semi config show`, the
report and the benchmarks ask the specs, so a new method is one module plus its test.

Names compose with '+': a base, then the components attached to it in hook order (`fixmatch+semi`,
`dualhead+semi+cdmad`); a spec may declare aliases (`semi` = `dualhead+semi`, SeMi as its authors built it).

Built-in methods are packages under `semi.algorithms` whose `__init__` declares the spec torch-free (so a config
error answers before torch loads) and whose `method` module holds the code. A method written outside `semi` (a
plugin, a test) declares its spec and its code in one module and registers it with `register` when imported.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["base", "component"]


@dataclass(frozen=True)
class Setting:
    """One value of an authors' recipe and where their released code sets it."""

    value: Any
    source: str
    """'owner/repo path:line' (or the paper) of the value."""


Recipe = Mapping[str, Mapping[str, Setting]]
"""Data-set family (cifar10, cifar100, stl10, ...; `default` for every other data set) -> dotted config key ->
the authors' value."""

def settings(repo: str, values: Mapping[str, tuple[Any, str]]) -> dict[str, Setting]:
    """{key: Setting(value, f'{repo} {where}')} from {key: (value, where)}: one recipe table of one repository."""
    return {key: Setting(value, f"{repo} {where}") for key, (value, where) in values.items()}


DATA_FAMILIES = {"cifar10": "cifar10", "cifar100": "cifar100", "stl10": "stl10", "svhn": "svhn",
                 "imagenet127": "imagenet127"}
"""data.name -> the family whose recipe applies; any other data set takes a recipe's `default`."""


@dataclass(frozen=True)
class MethodSpec:
    name: str
    """What users type in `algorithm.name` (a base) or after '+' (a component)."""
    kind: Kind
    summary: str
    """One line for `semi config show` and error messages."""
    implementation: str | Callable[[], Any]
    """A base: its Algorithm class; a component: a factory (cfg, num_classes, embed_dim) -> list of Components.
    Given as 'module:attribute' (imported when first built, so declaring costs no torch) or as the object."""
    section: str | None = None
    """Name of its config section (`daso.*`); None: no options of its own."""
    config: type | None = None
    """The section's dataclass: fields with defaults, each documented by the string literal below it."""
    check: Callable[[Any], list[str]] | None = None
    """Range and consistency checks on the whole config tree: returns every problem found (dotted key first)."""
    accepts_components: bool = False
    """A base whose step runs the component hooks (`base+component` is allowed)."""
    uses_unlabeled: bool = True
    """False: supervised-only, no unlabeled batches are drawn."""
    trains_on_true_labels: bool = False
    """The oracle: its labeled set is the labeled + unlabeled pool with true labels."""
    eval_head: Literal["standard", "balanced"] = "standard"
    """The head that predicts at evaluation and in `semi predict`."""
    extra_heads: int = 0
    """Heads the model needs beyond g1 and g2 (CPE: its third expert)."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Short names that expand to full compositions ('semi' -> 'dualhead+semi')."""
    eval_model: str | Callable[[Any], Any] | None = None
    """A function (model, cfg) -> model applied to the EMA model wherever it predicts: evaluation, `semi predict`, `semi
    export` (CDMAD: the logits minus those of a pattern-less image). 'module:function' or the function."""
    figures: tuple[str, ...] = ()
    """Report figures this method's runs can draw (names known to `semi.evaluation.report`)."""
    reference: str = ""
    """Paper and authors' code it follows."""
    input_files: tuple[str, ...] = ()
    """Dotted keys of its section that name files a new run reads (checked when a new run's config loads)."""
    model_options: Callable[[Any], Mapping[str, Any]] | None = None
    """cfg -> keyword arguments of `build_model` beyond the heads (CPE's classwise BatchNorm: bn_branches=3)."""
    recipes: Recipe = field(default_factory=dict)
    """The authors' released recipe per data-set family (`algorithm.recipe=authors` applies it)."""

    def load(self) -> Any:
        """The implementation (importing its module on first use)."""
        return _resolve(self.implementation)


def _resolve(ref: str | Callable[..., Any]) -> Any:
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class Problems(list):
    """The problems a config check collects: `need(condition, message)` adds the message when the condition fails."""

    def need(self, condition: bool, message: str) -> None:
        if not condition:
            self.append(message)


_SPECS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a spec (at import of the module that declares it). Registering the same spec object twice is a no-op
    (a module imported again); another spec under a taken name, section or alias is an error."""
    known = _SPECS.get(spec.name)
    if known is spec:
        return spec
    if known is not None:
        raise ValueError(f"method {spec.name!r} is registered twice ({known.implementation}, {spec.implementation})")
    for other in _SPECS.values():
        if spec.section is not None and spec.section == other.section:
            raise ValueError(f"config section {spec.section!r} of {spec.name!r} is already {other.name!r}'s")
        clash = set(spec.aliases) & ({other.name} | set(other.aliases))
        if clash or spec.name in other.aliases:
            raise ValueError(f"method {spec.name!r}: name or alias {sorted(clash) or [spec.name]} already taken")
    _SPECS[spec.name] = spec
    return spec


PLUGINS_ENV = "SEMI_PLUGINS"
"""Comma-separated modules to import before names are resolved: methods written outside `semi` (one module each,
registering their spec when imported), usable from the command line."""


def _discover() -> None:
    import semi.algorithms  # noqa: F401  (its packages declare the built-in specs; torch-free)

    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(module)


def all_specs() -> list[MethodSpec]:
    """Every registered spec, built-ins first in their declaration order."""
    _discover()
    return list(_SPECS.values())


def spec(name: str) -> MethodSpec:
    """The spec of one base or component name (not a composition; see `parse`)."""
    _discover()
    return _SPECS[name]


def aliases() -> dict[str, str]:
    return {a: full for s in all_specs() for a, full in s.aliases.items()}


def allowed_names() -> list[str]:
    """Every base, every accepting base with one component, and the aliases (longer compositions are allowed too)."""
    specs = all_specs()
    bases = [s for s in specs if s.kind == "base"]
    comps = [s for s in specs if s.kind == "component"]
    return [*(b.name for b in bases), *(f"{b.name}+{c.name}" for b in bases if b.accepts_components for c in comps),
            *aliases()]


def parse(name: str) -> tuple[MethodSpec, list[MethodSpec]]:
    """'fixmatch+semi' -> (FixMatch's spec, [SeMi's spec]); an alias is expanded first. Raises ValueError naming
    the allowed values."""
    full = aliases().get(name, name)
    base_name, *attached = full.split("+")
    known = {s.name: s for s in all_specs()}
    base = known.get(base_name)
    comps = [known.get(a) for a in attached]
    problem = None
    if base is None or base.kind != "base":
        problem = "unknown base"
    elif any(c is None or c.kind != "component" for c in comps):
        problem = "unknown component"
    elif comps and not base.accepts_components:
        problem = f"{base_name} takes no components"
    elif len(set(attached)) != len(attached):
        problem = "a component attached twice"
    if problem:
        raise ValueError(f"{name!r} is not allowed; allowed values: {', '.join(allowed_names())}, and a base that "
                         f"takes components with several (base+a+b) ({problem})")
    return base, comps  # type: ignore[return-value]


def data_family(data_name: str) -> str:
    return DATA_FAMILIES.get(data_name, "default")


def recipe_settings(algorithm: str, data_name: str) -> dict[str, Setting]:
    """What `algorithm.recipe=authors` sets for an algorithm on a data set: the base's recipe for the data set's
    family (else its `default`), then each attached component's (a later one wins on a shared key)."""
    base, comps = parse(algorithm)
    family = data_family(data_name)
    out: dict[str, Setting] = {}
    for s in (base, *comps):
        out.update(s.recipes.get(family, s.recipes.get("default", {})))
    return out


def base_spec(name: str) -> MethodSpec:
    """The base's spec of an algorithm name ('fixmatch+semi' -> FixMatch's)."""
    return parse(name)[0]


def attaches(name: str, component: str) -> bool:
    """Whether an algorithm name attaches a component ('semi' and 'acr+semi' attach 'semi'); False for a name
    that does not parse (an old run's record)."""
    try:
        return any(c.name == component for c in parse(name)[1])
    except ValueError:
        return False


def offers_figure(name: str, figure: str) -> bool:
    """Whether an algorithm name's base or components declare a report figure; an unknown name offers none."""
    try:
        base, comps = parse(name)
    except ValueError:
        return False
    return any(figure in s.figures for s in (base, *comps))


def evaluation_model(name: str, model: Any, cfg: Any) -> Any:
    """The model an algorithm name predicts with: `model` passed through the `eval_model` of its base and
    components (in that order); `model` itself when none declares one."""
    base, comps = parse(name)
    for s in (base, *comps):
        if s.eval_model is not None:
            model = _resolve(s.eval_model)(model, cfg)
    return model


def sections() -> list[tuple[str, type]]:
    """(section name, dataclass) of every registered method that has options."""
    ordered = sorted(all_specs(), key=lambda s: s.kind != "component")  # components' sections first, then bases'
    return [(s.section, s.config) for s in ordered if s.section is not None and s.config is not None]


def lazy_attributes(package: str, module: str = "method") -> Callable[[str], Any]:
    """A module `__getattr__` for a method package: names not declared in its torch-free `__init__` come from its
    code module (`from semi.algorithms.daso import DASO` imports the code on first use)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
