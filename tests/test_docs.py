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
