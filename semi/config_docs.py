"""`semi config show`: the resolved config tree, each field with its documentation from semi/config.py.

The docs are the string literals written under each dataclass field (attribute docstrings); Python keeps no trace
of them at run time, so they are read from the module's source.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import lru_cache

import yaml

from semi import config as config_module
from semi.config import Config, _type_name


@lru_cache(maxsize=1)
def field_docs() -> dict[str, dict[str, str]]:
    """{dataclass name: {field name: its docstring, whitespace collapsed}} for every dataclass in semi.config."""
    tree = ast.parse(inspect.getsource(config_module))
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        found: dict[str, str] = {}
        for stmt, nxt in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                found[stmt.target.id] = " ".join(nxt.value.value.split())
        docs[node.name] = found
    return docs


def show_config(cfg: Config, width: int = 118) -> str:
    """YAML of the resolved tree (it loads back as a config); above each field, its type and its doc as comments."""
    docs = field_docs()
    lines: list[str] = []
    for section in dataclasses.fields(cfg):
        obj = getattr(cfg, section.name)
        lines.append(f"{section.name}:")
        section_docs = docs.get(type(obj).__name__, {})
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            about = f"({_type_name(hints[f.name])}) {section_docs.get(f.name, '')}".strip()
            lines += textwrap.wrap(about, width, initial_indent="  # ", subsequent_indent="  #   ")
            value = yaml.safe_dump(getattr(obj, f.name), default_flow_style=True).strip()
            lines.append(f"  {f.name}: {value.removesuffix('...').strip()}")
    return "\n".join(lines)
