"""The README's Python snippets run as written (in a temporary folder: they train a short run)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_snippets_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(REPO / "README.md")
    assert blocks, "the README has no Python snippet"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "True" in out and "(4, 10)" in out
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("digits_lt-semi-") and (run / "results.json").is_file()


def test_new_method_guide_shows_the_suite_own_toy_methods():
    """docs/new-method.md's code is the toy modules tests/test_specs.py trains: each top-level block of the guide's
    snippets appears verbatim in one of them."""
    plugins = "\n".join(p.read_text() for p in (REPO / "tests" / "plugins").glob("*.py"))
    blocks = python_blocks(REPO / "docs" / "new-method.md")
    assert len(blocks) == 2
    for block in blocks:
        for chunk in re.split(r"\n\n\n", block.strip()):
            assert chunk in plugins, chunk
