"""Bad inputs given to the real command line (`semi.cli.main`, in-process): each one ends with a non-zero exit code
and one `semi <cmd>: error: ...` line that names the key, the file or what differs, never a traceback, and leaves no
results.json and no temporary file behind. A corrupt newest checkpoint under `--resume auto` is the one success
case: the run warns naming the file and resumes from the newest valid checkpoint."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from semi.cli import main

# A file to create before the command runs: text, bytes, or a function that writes the file at the given path.
Content = str | bytes | Callable[[Path], None]

TINY = {  # fails fast, and the trained run below takes a second or two
    "train.epochs": 1, "train.steps_per_epoch": 2, "train.batch_size": 8, "train.eval_every": 1,
    "train.progress": False, "train.tensorboard": False, "train.channels_last": False, "train.threads": 1,
    "model.width": 8, "algorithm.name": "fixmatch",
}


def tiny_args(out_dir: Path) -> list[str]:
    return [f"{k}={v}" for k, v in {**TINY, "train.out_dir": out_dir}.items()]


def npz(n: int = 40, classes: int = 2, size: int = 16, **changes: np.ndarray) -> Callable[[Path], None]:
    """A valid numpy-source .npz (n training images per class, uint8), with some arrays replaced."""

    def write(path: Path) -> None:
        y = np.repeat(np.arange(classes), n)
        yt = np.repeat(np.arange(classes), 5)
        arrays = {"x_train": np.full((len(y), size, size, 1), 128, np.uint8), "y_train": y,
                  "x_test": np.full((len(yt), size, size, 1), 128, np.uint8), "y_test": yt}
        np.savez(path, **{**arrays, **changes})

    return write


def png(size: int = 16, seed: int = 0, keep: float = 1.0) -> Callable[[Path], None]:
    """A random greyscale PNG; keep < 1 truncates the file (a valid header, then the data stops)."""

    def write(path: Path) -> None:
        from PIL import Image

        pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        data = buffer.getvalue()
        path.write_bytes(data[: int(len(data) * keep)])

    return write


def image_folder(bad: str, content: Content) -> dict[str, Content]:
    """Two classes of three good images each, plus one bad file in the first class."""
    files: dict[str, Content] = {f"images/{c}/{i}.png": png(seed=10 * k + i)
                                 for k, c in enumerate(("cat", "dog")) for i in range(3)}
    files[f"images/cat/{bad}"] = content
    return files


@dataclass(frozen=True)
class Case:
    """`argv` and `expect` may use {tmp} (the test's folder), {out} (train.out_dir) and {trained} (a finished 2-step
    run). A `train` command gets the tiny settings first, so the case's own overrides win."""

    id: str
    argv: list[str]
    expect: list[str]
    files: dict[str, Content] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()


GARBAGE = b"\x00\x9f garbage, not a checkpoint \xff" * 8
NUMPY = ["data.name=numpy", "data.path={tmp}/d.npz", "data.num_labeled_max=10", "data.num_unlabeled_max=10"]
FOLDER = ["data.name=image_folder", "data.path={tmp}/images", "data.num_labeled_max=2", "data.num_unlabeled_max=0"]
INVALID = "invalid configuration"

CASES = [
    # ---- the config tree: keys, types, allowed values, ranges
    Case("unknown key", ["train", "train.epoch=3"], [INVALID, "train.epoch: unknown key; known keys here:"]),
    Case("unknown section", ["train", "dataset.name=digits"], ["dataset: unknown key"]),
    Case("wrong type", ["train", "train.epochs=three"], ["train.epochs: expected int, got 'three'"]),
    Case("float for int", ["train", "train.batch_size=1.5"], ["train.batch_size: expected int, got 1.5"]),
    Case("value not allowed", ["train", "data.unlabeled_distribution=skewed"],
         ["data.unlabeled_distribution: 'skewed' is not allowed; allowed values: consistent, uniform, reversed"]),
    Case("gamma_l below 1", ["train", "data.imbalance_labeled=0.5"],
         ["data.imbalance_labeled: gamma_l must be >= 1, got 0.5"]),
    Case("unknown algorithm", ["train", "algorithm.name=mixmatch"],
         ["algorithm.name: 'mixmatch' is not allowed; allowed values:", "fixmatch+semi"]),
    Case("prototypes without memory bank", ["train", "semi.memory_bank=false"],
         ["semi.prototypes: needs semi.memory_bank=true"]),
    Case("batch_size 0", ["train", "train.batch_size=0"], ["train.batch_size: must be >= 1, got 0"]),
    Case("eval_every 0", ["train", "train.eval_every=0"], ["train.eval_every: must be >= 1, got 0"]),
    Case("all problems at once", ["train", "train.batch_size=0", "optim.lr=-1", "semi.alpha=2"],
         ["3 problem(s)", "train.batch_size:", "optim.lr: must be > 0", "semi.alpha: must be in [0, 1]"]),
    Case("seed beyond 64 bits", ["train", "train.seed=99999999999999999999999"],
         ["train.seed: must be a 64-bit signed integer"]),
    Case("negative split seed", ["train", "data.split_order=shuffle", "data.split_seed=-1"],
         ["data.split_seed: must be >= 0, got -1"]),
    Case("negative threads", ["train", "train.threads=-2"], ["train.threads: must be >= 0"]),
    Case("model width 0", ["train", "model.width=0"], ["model.width: must be >= 1, got 0"]),
    Case("dropout above 1", ["train", "model.dropout=2"], ["model.dropout: must be in [0, 1), got 2.0"]),
    Case("ACR's estimate threshold above 1", ["train", "algorithm.estimate_threshold=1.5"],
         ["algorithm.estimate_threshold: must be in (0, 1] or null, got 1.5"]),
    Case("empty out_dir", ["train", "train.out_dir="], ["train.out_dir: must name a folder"]),
    # ---- the command line and config files
    Case("override without =", ["train", "train.seed"], ["override 'train.seed': expected key=value"]),
    Case("override under a value", ["train", "train.seed=1", "train.seed.x=2"],
         ["override 'train.seed.x=2': seed is not a section"]),
    Case("unknown option", ["train", "--bogus"], ["unrecognized arguments: --bogus"]),
    Case("override after an option", ["train", "--config", "digits_lt", "train.epoch=3"],
         ["train.epoch: unknown key"]),
    Case("missing config file", ["train", "--config", "{tmp}/nope.yaml"], ["config file not found", "nope.yaml"]),
    Case("unknown config name", ["train", "--config", "cifar11_lt"],
         ["'cifar11_lt' is neither a file nor a shipped config", "cifar10_lt"]),
    Case("config is a folder", ["train", "--config", "{tmp}/confs"], ["confs is a folder, not a config file"],
         dirs=("confs",)),
    Case("malformed YAML", ["train", "--config", "{tmp}/bad.yaml"], ["bad.yaml: not valid YAML", "line 2"],
         files={"bad.yaml": "train:\n  epochs: [1, 2\n"}),
    Case("binary config file", ["train", "--config", "{tmp}/bin.yaml"], ["bin.yaml: not a UTF-8 text file"],
         files={"bin.yaml": b"\xff\xfe\x00\x81"}),
    Case("YAML top level a list", ["train", "--config", "{tmp}/list.yaml"],
         ["list.yaml: the top level must be a mapping"], files={"list.yaml": "- train.seed=1\n"}),
    Case("extends cycle", ["train", "--config", "{tmp}/a.yaml"], ["'extends' forms a cycle"],
         files={"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\ntrain:\n  seed: 1\n"}),
    Case("extends not a string", ["train", "--config", "{tmp}/e.yaml"],
         ["e.yaml: 'extends' must be a file name (a string), got 5"], files={"e.yaml": "extends: 5\n"}),
    Case("extends a missing file", ["train", "--config", "{tmp}/m.yaml"], ["config file not found", "gone.yaml"],
         files={"m.yaml": "extends: gone.yaml\n"}),
    Case("section given a value in YAML", ["train", "--config", "{tmp}/s.yaml"], ["train: expected a mapping of"],
         files={"s.yaml": "train: 5\n"}),
    # ---- data: the imbalance setting, sources, missing files
    Case("N_1 larger than a class", ["train", "data.num_labeled_max=200"],
         ["the imbalance setting does not fit the data", "class 0 (0) needs 200 labeled"]),
    Case("a class with zero labeled", ["train", "data.num_labeled_max=5", "data.imbalance_labeled=10"],
         ["class 9 (9) gets 0 labeled images"]),
    Case("validation larger than a class", ["data", "data.val_per_class=500"], ["+ 500 validation images"]),
    Case("uniform with a gamma_u", ["data", "data.unlabeled_distribution=uniform", "data.imbalance_unlabeled=10"],
         ["data.imbalance_unlabeled: 10.0 contradicts data.unlabeled_distribution=uniform"]),
    Case("unknown data set", ["train", "data.name=imagenet1k"], ["unknown data set 'imagenet1k'; available:", "svhn"]),
    Case("missing data directory", ["train", "data.name=cifar10", "data.root={tmp}/empty"],
         ["cifar10: missing file(s)", "{tmp}/empty/cifar-10-batches-py/data_batch_1", "test_batch"],
         dirs=("empty",)),
    Case("numpy without data.path", ["train", "data.name=numpy"], ["numpy: set data.path"]),
    Case("numpy file missing", ["train", *NUMPY], ["data.path {tmp}/d.npz does not exist"]),
    Case("numpy garbage file", ["train", *NUMPY], ["cannot read {tmp}/d.npz"], files={"d.npz": GARBAGE}),
    Case("numpy missing array", ["train", *NUMPY], ["d.npz lacks array(s) x_test, y_test"],
         files={"d.npz": lambda p: np.savez(p, x_train=np.zeros((2, 8, 8), np.uint8), y_train=np.zeros(2, int))}),
    Case("numpy float images outside [0, 1]", ["train", *NUMPY],
         ["d.npz: x_train is float64 with values 0..255; float images must lie in [0, 1]"],
         files={"d.npz": npz(x_train=np.linspace(0, 255, 80 * 256).reshape(80, 16, 16, 1))}),
    Case("numpy int32 images", ["train", *NUMPY], ["d.npz: x_test has dtype int32"],
         files={"d.npz": npz(x_test=np.zeros((10, 16, 16, 1), np.int32))}),
    Case("numpy channels-first images", ["train", *NUMPY], ["x_train must have shape (N, H, W, C)", "channels-first"],
         files={"d.npz": npz(x_train=np.zeros((80, 3, 16, 16), np.uint8))}),
    Case("numpy 3-D labels", ["train", *NUMPY], ["train labels must be a 1-D array", "labels of shape (80, 1, 1)"],
         files={"d.npz": npz(y_train=np.zeros((80, 1, 1), np.int64))}),
    Case("numpy mismatched lengths", ["train", *NUMPY], ["80 images, labels of shape (79,)"],
         files={"d.npz": npz(y_train=np.zeros(79, np.int64))}),
    Case("numpy float labels", ["train", *NUMPY], ["y_train must hold integer class labels, got dtype float64"],
         files={"d.npz": npz(y_train=np.zeros(80))}),
    Case("numpy labels out of range", ["train", *NUMPY], ["test labels must lie in [0, 1] for 2 classes, found 0..7"],
         files={"d.npz": npz(y_test=np.arange(10) % 8, class_names=np.array(["a", "b"]))}),
    Case("numpy negative labels", ["train", *NUMPY], ["train labels must lie in", "found -1..1"],
         files={"d.npz": npz(y_train=np.repeat([-1, 0, 1], [1, 40, 39]))}),
    Case("image_folder garbage image", ["train", *FOLDER], ["cannot read image", "images/cat/9-bad.png"],
         files=image_folder("9-bad.png", b"\x89PNG not really" * 4)),
    Case("image_folder truncated image", ["train", *FOLDER], ["cannot decode image", "images/cat/9-cut.png"],
         files=image_folder("9-cut.png", png(seed=99, keep=0.5))),
    # ---- outputs and checkpoints
    Case("output directory under a file", ["train", "train.out_dir={tmp}/afile/run"],
         ["output directory {tmp}/afile/run is not writable"], files={"afile": "a regular file"}),
    Case("eval a missing checkpoint", ["eval", "--checkpoint", "{tmp}/nope.pt"], ["checkpoint not found", "nope.pt"]),
    Case("eval a corrupt checkpoint", ["eval", "--checkpoint", "{tmp}/bad.pt"],
         ["checkpoint {tmp}/bad.pt is corrupt or not a semi checkpoint"], files={"bad.pt": GARBAGE}),
    Case("eval a foreign torch file", ["eval", "--checkpoint", "{tmp}/other.pt"], ["other.pt is not a semi checkpoint"],
         files={"other.pt": lambda p: torch.save({"weights": [1, 2]}, p)}),
    Case("eval a checkpoint without config", ["eval", "--checkpoint", "{tmp}/bare.pt"],
         ["bare.pt holds no run configuration"],
         files={"bare.pt": lambda p: torch.save({"step": 1, "model": {}}, p)}),
    Case("eval override without =", ["eval", "--checkpoint", "{trained}/checkpoints/latest.pt", "data.root"],
         ["override 'data.root': expected key=value"]),
    Case("resume a missing checkpoint", ["train", "--resume", "{tmp}/nope.pt"], ["checkpoint not found", "nope.pt"]),
    Case("resume a corrupt checkpoint", ["train", "--resume", "{tmp}/bad.pt"], ["bad.pt is corrupt"],
         files={"bad.pt": GARBAGE}),
    Case("resume with another setting", ["train", "--resume", "{trained}/checkpoints/latest.pt",
                                          "model.name=wrn28_2"],
         ["differ from the run's saved configuration", "model.name: run 'small_cnn', now 'wrn28_2'",
          "--allow-changes"]),
    Case("resume another model", ["train", "--resume", "{trained}/checkpoints/latest.pt", "--allow-changes",
                                  "model.name=wrn28_2"],
         ["comes from a different setup", "model: checkpoint 'small_cnn', this run 'wrn28_2'"]),
    Case("resume another class count", ["train", "--resume", "{trained}/checkpoints/latest.pt", "--allow-changes",
                                        *NUMPY],
         ["comes from a different setup", "num_classes: checkpoint 10, this run 2"], files={"d.npz": npz()}),
    Case("train into a used run directory", ["train", "train.out_dir={trained}"],
         ["{trained} already holds a run", "--resume auto"]),
    Case("report a missing run", ["report", "{tmp}/norun"], ["run directory {tmp}/norun does not exist"]),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-step run on the default digits (checkpoints at steps 1 and 2)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *tiny_args(run)]) == 0
    assert (run / "checkpoints" / "step-0000002.pt").is_file()
    return run


def _write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)


def run_cli(argv: list[str]) -> int:
    """`semi ...` in-process; argparse's own errors end in SystemExit, which the console script turns into the code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def leftovers(folder: Path) -> list[str]:
    """results.json files and temporary files (a hidden name with '.tmp' in it) anywhere under folder."""
    return [str(p) for p in folder.rglob("*")
            if p.name == "results.json" or (p.name.startswith(".") and ".tmp" in p.name)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_with_one_clear_message(case: Case, tmp_path: Path, request: pytest.FixtureRequest,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    needs_run = any("{trained}" in a for a in case.argv)
    names = {"tmp": tmp_path, "out": out, "trained": request.getfixturevalue("trained") if needs_run else ""}
    for folder in case.dirs:
        (tmp_path / folder).mkdir(parents=True)
    for rel, content in case.files.items():
        _write(tmp_path / rel, content)
    command, *rest = case.argv
    argv = [command, *(tiny_args(out) if command == "train" else []), *(a.format(**names) for a in rest)]
    capsys.readouterr()

    code = run_cli(argv)

    err = capsys.readouterr().err
    assert code != 0, err
    assert len(re.findall(r"^semi(?: \w+)?: error: ", err, flags=re.M)) == 1, err  # argparse's own: `semi: error:`
    for text in case.expect:
        assert text.format(**names) in err, err
    assert "Traceback" not in err and 'File "' not in err, err
    assert leftovers(tmp_path) == []


def test_resume_auto_skips_a_corrupt_newest_checkpoint(trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The success case: a garbage step-9999999.pt is skipped with a warning naming it, and the run resumes from
    the newest valid checkpoint (step 2) and finishes its two more steps."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "results.json").unlink()
    corrupt = run / "checkpoints" / "step-9999999.pt"
    corrupt.write_bytes(GARBAGE)
    capsys.readouterr()

    with pytest.warns(UserWarning, match=r"skipping unreadable checkpoint .*step-9999999\.pt"):
        code = run_cli(["train", "--resume", "auto", "--allow-changes", *tiny_args(run), "train.epochs=2"])

    err = capsys.readouterr().err
    assert code == 0, err
    assert f"resumed from {run / 'checkpoints' / 'step-0000002.pt'} at step 2" in err
    assert "Traceback" not in err and "error:" not in err
    assert (run / "results.json").is_file()
    assert [p for p in leftovers(run) if p != str(run / "results.json")] == []
