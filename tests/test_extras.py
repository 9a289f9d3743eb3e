"""The lean core install: with the optional extras' modules unimportable, training on the embedded digits works,
and each feature that needs an extra fails with one line naming the install command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from semi.errors import SemiError
from semi.extras import EXTRAS, MissingExtra, install_hint, require

# scipy is left importable: scikit-learn (core) depends on it, so the svhn extra only makes the need explicit.
BLOCKED = ("matplotlib", "tensorboard", "PIL", "torchvision", "pyarrow", "timm", "sentence_transformers")
RUNNER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
for name in list(sys.modules):
    if name.split(".")[0] in {blocked!r}:
        del sys.modules[name]
from semi.cli import main
sys.exit(main(sys.argv[1:]))
"""


def semi_without_extras(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUNNER.format(blocked=BLOCKED), *argv], capture_output=True,
                          text=True, timeout=300)


def test_require_names_the_extra_to_install():
    assert install_hint("matplotlib.figure") == "pip install 'semi[report]'"
    assert install_hint("PIL.Image") == "pip install 'semi[images]'"
    assert install_hint("somethingelse") == "pip install somethingelse"
    with pytest.raises(MissingExtra, match=r"semi report needs no_such_module_xyz, which is not installed"):
        require("no_such_module_xyz", "semi report")
    assert issubclass(MissingExtra, SemiError) and set(BLOCKED) <= set(EXTRAS)


@pytest.mark.slow
def test_the_core_install_trains_and_each_extra_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    tiny = ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=8", "train.eval_every=2",
            "train.progress=false", "model.width=8", "algorithm.name=fixmatch", f"train.out_dir={run}"]
    done = semi_without_extras("train", *tiny)  # train.tensorboard defaults to true
    assert done.returncode == 0, done.stderr
    assert "TensorBoard logging is off (pip install 'semi[tensorboard]'" in done.stderr
    assert (run / "results.json").is_file()

    report = semi_without_extras("report", str(run))
    assert report.returncode != 0 and "Traceback" not in report.stderr
    assert report.stderr.strip().splitlines()[-1] == (
        "semi report: error: semi report needs matplotlib, which is not installed: pip install 'semi[report]'")

    (tmp_path / "a.png").write_bytes(b"not read: Pillow is missing")
    ckpt = run / "checkpoints" / "latest.pt"
    pred = semi_without_extras("predict", "--checkpoint", str(ckpt), str(tmp_path / "a.png"))
    assert pred.returncode != 0 and "Traceback" not in pred.stderr
    assert "needs PIL, which is not installed: pip install 'semi[images]'" in pred.stderr

    resnet = semi_without_extras("train", *tiny, "model.name=resnet50", f"train.out_dir={tmp_path / 'r'}")
    assert resnet.returncode != 0 and "model.name=resnet50 needs torchvision" in resnet.stderr
    assert not (tmp_path / "r" / "results.json").exists()
    timm = semi_without_extras("train", *tiny, "model.name=timm:resnet18", f"train.out_dir={tmp_path / 't'}")
    assert timm.returncode != 0 and "needs timm, which is not installed: pip install 'semi[timm]'" in timm.stderr
