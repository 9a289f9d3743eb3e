"""The command line: `semi data` prints the split, the registry leaves nothing out, the code is lint-clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from semi.cli import main
from semi.config import default_data_root

REPO = Path(__file__).resolve().parents[1]
CIFAR = default_data_root() / "cifar10" / "cifar10_test.npz"


@pytest.mark.skipif(not CIFAR.exists(), reason="CIFAR-10 npz files not present")
@pytest.mark.parametrize("dist,labeled,unlabeled", [
    ("consistent", [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15],
     [3000, 1798, 1078, 646, 387, 232, 139, 83, 50, 30]),
    ("reversed", [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15],
     [30, 50, 83, 139, 232, 387, 646, 1078, 1798, 3000]),
])
def test_semi_data_prints_the_cifar10_lt_counts(capsys, dist, labeled, unlabeled):
    assert main(["data", "--config", "cifar10_lt", f"data.unlabeled_distribution={dist}"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out if line.split() and line.split()[0] in
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    assert [int(r[1]) for r in rows] == labeled
    assert [int(r[2]) for r in rows] == unlabeled


def test_semi_data_on_the_default(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "digits: 10 classes, N_1=30" in out and "total" in out


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_clean():
    proc = subprocess.run(["ruff", "check", "semi", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


