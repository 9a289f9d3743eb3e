"""train.compile: the backbone and heads compiled in place; a compiled run resumes bit-identically into a compiled
run, keeps the eager parameter names, and reports the first step's time (which holds the compilation). In a child
process: after torch.compile has run, fork-based DDP tests in the same process could hang."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import sys, torch
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import _flat_state, tiny_overrides
from test_features import features_npz
from semi.config import load_config
from semi.engine.trainer import Trainer
tmp = Path({tmp!r}); features_npz()(tmp / "f.npz")
extra = {{"model.name": "mlp", "data.name": "features", "data.path": str(tmp / "f.npz"), "data.num_labeled_max": 20,
         "data.num_unlabeled_max": 10, "data.imbalance_labeled": 2, "train.compile": True, "algorithm.name": "semi"}}
a = Trainer(load_config(None, tiny_overrides(tmp, **{{**extra, "train.out_dir": str(tmp / "a")}})))
results = a.fit()
assert all("_orig_mod" not in k for k in a.model.state_dict()), "compiled parameter names leak into checkpoints"
b = Trainer(load_config(None, tiny_overrides(tmp, **{{**extra, "train.out_dir": str(tmp / "b")}})))
b.resume(str(tmp / "a" / "checkpoints" / "step-0000006.pt"))
b.fit()
x, y = _flat_state(a), _flat_state(b)
assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), "resume differs"
assert a.history == b.history
assert results["first_step_seconds"] > 0
print("ok", results["first_step_seconds"])
"""


@pytest.mark.slow
def test_a_compiled_run_resumes_bit_identically(tmp_path):
    code = CHILD.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
