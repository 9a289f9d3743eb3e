"""`semi config show`: the resolved config tree, each field with its documentation.

The docs are the string literals written under each dataclass field (attribute docstrings) in the module that
declares the section (semi/config.py for the core sections, each method's own module for its section); Python
keeps no trace of them at run time, so they are read from the source.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache

import yaml

from semi.config import Config, _type_name, get_value, recipe_record


@cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: its docstring, whitespace collapsed} of one config dataclass, read from its source."""
    node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    found: dict[str, str] = {}
    for stmt, nxt in zip(node.body, node.body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            found[stmt.target.id] = " ".join(nxt.value.value.split())
    return found


def show_config(cfg: Config, width: int = 118) -> str:
    """YAML of the resolved tree (it loads back as a config); above each field, its type and its doc as comments."""
    lines: list[str] = []
    for name, obj in cfg.sections():
        lines.append(f"{name}:")
        section_docs = field_docs(type(obj))
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            about = f"({_type_name(hints[f.name])}) {section_docs.get(f.name, '')}".strip()
            lines += textwrap.wrap(about, width, initial_indent="  # ", subsequent_indent="  #   ")
            value = yaml.safe_dump(getattr(obj, f.name), default_flow_style=True).strip()
            lines.append(f"  {f.name}: {value.removesuffix('...').strip()}")
    return "\n".join(lines + recipe_lines(cfg, width))


def recipe_lines(cfg: Config, width: int = 118) -> list[str]:
    """Comment lines: the recipe, and under `authors` each value it set with the authors' source."""
    record = recipe_record(cfg)
    if record["name"] != "authors":
        return ["# recipe: shared (every method on this config's common settings; algorithm.recipe=authors for "
                "each method's released recipe)"]
    lines = [f"# recipe: authors, data-set family {record['family']}: what it set, and where the authors' code "
             "sets it"]
    if not record["settings"]:
        lines.append("#   (this method declares no recipe of its own: the config's settings stand)")
    for key, s in record["settings"].items():
        used = "" if s["used"] else f" (overridden: {get_value(cfg, key)!r})"
        lines += textwrap.wrap(f"{key} = {s['value']!r}{used}  <- {s['source']}", width, initial_indent="#   ",
                               subsequent_indent="#       ")
    return lines
