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


def test_the_own_data_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/tutorial-own-data.md, block by block in order: Python blocks executed, each line of a bash block run
    through the command line in-process; every command must succeed and leave what the page says it does."""
    import shlex

    import pytest

    pytest.importorskip("matplotlib")  # the page draws a report
    from semi.cli import main

    text = (REPO / "docs" / "tutorial-own-data.md").read_text()
    blocks = re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.S)
    assert [kind for kind, _ in blocks].count("bash") >= 5
    monkeypatch.chdir(tmp_path)
    for kind, body in blocks:
        if kind == "python":
            exec(compile(body, "tutorial-own-data.md", "exec"), {"__name__": "__tutorial__"})
            continue
        for line in body.strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "semi", line
            assert main(argv[1:]) == 0, (line, capsys.readouterr().err[-2000:])
    for run in ("folder", "arrays", "table", "embedded"):
        assert (tmp_path / "runs" / run / "results.json").is_file(), run
    assert (tmp_path / "runs" / "folder" / "report" / "index.html").is_file()
    threes = len(list((tmp_path / "my_images" / "three").iterdir()))
    assert (tmp_path / "predictions.csv").read_text().count("\n") == 1 + threes
    assert (tmp_path / "table_predictions.csv").read_text().count("\n") == 1 + 1797  # every row of the table
    assert "(3, 10)" in capsys.readouterr().out
