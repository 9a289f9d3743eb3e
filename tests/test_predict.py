"""Using a trained model: the Python API matches the command line, `predict` reproduces `semi eval`'s test accuracy
(from an .npz and from image files), unreadable images are named, and the exported model gives the same outputs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

import semi
from semi.cli import main

OVERRIDES = ["train.epochs=2", "train.steps_per_epoch=4", "train.batch_size=16", "train.eval_every=4",
             "train.progress=false", "train.tensorboard=false", "model.width=8", "train.threads=1",
             "algorithm.est_epoch=0", "semi.warmup_epochs=0", "semi.bank_size=8", "semi.threshold=0.3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> semi.Results:
    out = tmp_path_factory.mktemp("predict") / "run"
    return semi.train(semi.load_config(None, [*OVERRIDES, f"train.out_dir={out}"]))


@pytest.fixture(scope="module")
def test_set(run):
    from semi.data.prepare import prepare_data

    data = prepare_data(semi.load_config(None, OVERRIDES))
    return data.test_images, data.test_labels


def test_python_train_matches_the_command_line(run, tmp_path, capsys):
    assert main(["train", *OVERRIDES, f"train.out_dir={tmp_path / 'cli'}"]) == 0
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert run.metrics == cli["metrics"] and run.results["history"] == cli["history"]
    assert run.results_path.is_file() and run.checkpoint.is_file() and run.config_path.is_file()
    assert run.metrics["head_used"] == "balanced"  # the default run is SeMi (on ACR): the balanced head


def test_predict_reproduces_the_test_accuracy_of_eval(run, test_set, tmp_path, capsys):
    images, labels = test_set
    npz = tmp_path / "test.npz"
    np.savez(npz, x=images)
    preds = semi.predict(run.checkpoint, npz)
    ev = semi.evaluate(run.checkpoint)
    assert 100.0 * float((preds.classes == labels).mean()) == pytest.approx(ev["top1"], abs=1e-9)
    assert preds.head == ev["head_used"] == "balanced"
    # the command line: CSV rows in input order, top-k columns
    out = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(run.checkpoint), str(npz), "--out", str(out), "--top-k", "2",
                 "--embeddings", str(tmp_path / "emb.npy")]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["source"] for r in rows] == [str(i) for i in range(len(labels))]
    assert [r["class"] for r in rows] == preds.labels and set(rows[0]) >= {"probability", "top1", "top2"}
    assert np.load(tmp_path / "emb.npy").shape[0] == len(labels)


def test_predict_on_image_files_matches_the_array(run, test_set, tmp_path):
    from PIL import Image

    images, _ = test_set
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(images[i, :, :, 0]).save(folder / f"{i:02d}.png")
    from_files = semi.predict(run.checkpoint, folder)
    from_array = semi.predict(run.checkpoint, images[:12])
    assert from_files.sources == [str(folder / f"{i:02d}.png") for i in range(12)]
    np.testing.assert_allclose(from_files.probabilities, from_array.probabilities, rtol=0, atol=1e-6)
    # a larger RGB image is converted and resized like the run's data, not refused
    Image.fromarray(np.repeat(np.kron(images[0], np.ones((2, 2, 1), np.uint8)), 3, axis=2)).save(tmp_path / "big.png")
    assert semi.predict(run.checkpoint, [tmp_path / "big.png"]).probabilities.shape == (1, 10)


def test_an_unreadable_image_is_named(run, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really an image" * 3)
    code = main(["predict", "--checkpoint", str(run.checkpoint), str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read image" in err and str(bad) in err and "Traceback" not in err


def test_exported_model_gives_the_same_outputs(run, test_set, tmp_path, capsys):
    images, _ = test_set
    path = tmp_path / "model.pt2"
    assert main(["export", "--checkpoint", str(run.checkpoint), "--out", str(path)]) == 0
    assert "torch.export" in capsys.readouterr().out
    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        probs = module(torch.from_numpy(images[:37])).numpy()  # another batch size than the export's example
    expected = semi.predict(run.checkpoint, images[:37]).probabilities
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-5)
    assert (probs.argmax(1) == expected.argmax(1)).all()
