"""Feature vectors as data: the file formats, their checks, the standardisation, the vector views, the MLP, and a
run on features that trains, evaluates, predicts, exports and resumes exactly."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_inputs import leftovers, run_cli

from semi.config import load_config
from semi.data.feature_files import read_features
from semi.data.prepare import prepare_data
from semi.data.vector_views import VectorViews
from semi.errors import DataError
from semi.models.mlp import MLP

COUNTS, TEST_PER_CLASS, DIM = (60, 40, 30), 10, 4


def blobs(seed: int = 0, counts: tuple[int, ...] = COUNTS, test: int = TEST_PER_CLASS, dim: int = DIM,
          spread: float = 4.0):
    """Gaussian blobs (separable at the default spread): (x, y, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(counts), dim)) * spread
    y = np.repeat(np.arange(len(counts)), counts)
    yt = np.repeat(np.arange(len(counts)), test)
    return centers[y] + rng.normal(size=(len(y), dim)), y, centers[yt] + rng.normal(size=(len(yt), dim)), yt


def features_npz(**changes) -> Callable[[Path], None]:
    """A valid features .npz with some parts replaced (a value of None drops the part)."""

    def write(path: Path) -> None:
        x, y, xt, yt = blobs()
        parts = {"x": x, "y": y, "x_test": xt, "y_test": yt, **changes}
        np.savez(path, **{k: v for k, v in parts.items() if v is not None})

    return write


def write_csv(path: Path, rows: list[list[object]], header: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def table_rows(with_split: bool = True) -> tuple[list[str], list[list[object]]]:
    x, y, xt, yt = blobs()
    names = np.array(["ant", "bee", "cat"])
    header = [f"f{j}" for j in range(DIM)] + ["label"] + (["split"] if with_split else [])
    rows = [[*map(float, r), names[c], *(["train"] if with_split else [])] for r, c in zip(x, y)]
    if with_split:
        rows += [[*map(float, r), names[c], "test"] for r, c in zip(xt, yt)]
    return header, rows


# ------------------------------------------------------------------------------------------------- formats


def test_npz_npy_folder_and_csv_read_the_same_parts(tmp_path):
    features_npz()(tmp_path / "f.npz")
    x, y, xt, yt = blobs()
    (tmp_path / "parts").mkdir()
    for name, a in {"x": x, "y": y, "x_test": xt, "y_test": yt}.items():
        np.save(tmp_path / "parts" / f"{name}.npy", a)
    header, rows = table_rows()
    rows = [[*r[:DIM], int(np.searchsorted(["ant", "bee", "cat"], r[DIM])), r[DIM + 1]] for r in rows]
    write_csv(tmp_path / "f.csv", rows, header)
    reads = [read_features(p) for p in (tmp_path / "f.npz", tmp_path / "parts", tmp_path / "parts" / "x.npy",
                                        tmp_path / "f.csv")]
    for f in reads:
        assert f.x.dtype == np.float32 and f.x.shape == (sum(COUNTS), DIM)
        np.testing.assert_array_equal(f.x, x.astype(np.float32))
        np.testing.assert_array_equal(f.y, y)
        np.testing.assert_array_equal(f.x_test, xt.astype(np.float32))
        np.testing.assert_array_equal(f.y_test, yt)
        assert f.class_names == ["0", "1", "2"] and not f.held_out


def test_string_labels_become_sorted_class_names_and_rows_without_a_test_part_are_held_out(tmp_path):
    header, rows = table_rows(with_split=False)
    rows = [r[:DIM] + [{"ant": "zebra", "bee": "ant", "cat": "moth"}[r[DIM]]] for r in rows]
    write_csv(tmp_path / "t.csv", rows, header)
    f = read_features(tmp_path / "t.csv")
    assert f.class_names == ["ant", "moth", "zebra"] and f.held_out
    # class 0 of the blobs ("ant" -> "zebra", 60 rows) is index 2 now: ceil(20%) of each class held out, the last
    # rows in file order
    assert np.bincount(f.y_test, minlength=3).tolist() == [8, 6, 12]
    assert np.bincount(f.y, minlength=3).tolist() == [32, 24, 48]
    x, _, _, _ = blobs()
    np.testing.assert_array_equal(f.x_test[f.y_test == 2], x[48:60].astype(np.float32))


def test_a_csv_split_column_gives_unlabeled_rows_without_labels(tmp_path):
    header, rows = table_rows()
    rows[0][DIM], rows[0][DIM + 1] = "", "unlabeled"
    rows[1][DIM + 1] = "unlabeled"
    write_csv(tmp_path / "t.csv", rows, header)
    f = read_features(tmp_path / "t.csv")
    assert f.x_unlabeled.shape == (2, DIM) and len(f.x) == sum(COUNTS) - 2


def test_parquet_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    header, rows = table_rows()
    pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(header)}), tmp_path / "t.parquet")
    write_csv(tmp_path / "t.csv", rows, header)
    a, b = read_features(tmp_path / "t.parquet"), read_features(tmp_path / "t.csv")
    np.testing.assert_array_equal(a.x, b.x)
    assert a.class_names == b.class_names == ["ant", "bee", "cat"]


# ------------------------------------------------------------------------------------------------- bad files

BASE = ["model.name=mlp", "data.name=features", "data.num_labeled_max=20", "data.num_unlabeled_max=10",
        "data.imbalance_labeled=2"]
BAD_FILES: list[tuple[str, str, object, str]] = [
    # (id, file name, content, expected text)
    ("missing file", "nope.npz", None, "does not exist"),
    ("unknown suffix", "f.txt", "1,2,3\n", "is not a features file"),
    ("no x", "f.npz", features_npz(x=None), "has no training vectors"),
    ("no y", "f.npz", features_npz(y=None), "has no training labels"),
    ("unknown part", "f.npz", features_npz(x_tset=np.zeros((3, DIM))), "'x_tset' that is not a part"),
    ("x one-dimensional", "f.npz", features_npz(x=np.zeros(130)), "x must have shape (N, D), got (130,)"),
    ("x not numbers", "f.npz", features_npz(x=np.full((130, DIM), "a")), "x must hold numbers"),
    ("NaN", "f.npz", features_npz(x=np.where(np.eye(130, DIM) > 0, np.nan, 1.0)), "NaN value(s), the first at row 0"),
    ("infinite", "f.npz", features_npz(x_test=np.full((30, DIM), np.inf)), "x_test holds 120 infinite"),
    ("too large for float32", "f.npz", features_npz(x=np.full((130, DIM), 1e300)), "too large for float32"),
    ("labels of another length", "f.npz", features_npz(y=np.zeros(7, int)), "130 rows, labels of shape (7,)"),
    ("negative label", "f.npz", features_npz(y=np.r_[-1, np.zeros(129, int)]), "negative label (-1)"),
    ("fractional labels", "f.npz", features_npz(y=np.full(130, 0.5)), "non-integer numbers"),
    ("test D differs", "f.npz", features_npz(x_test=np.zeros((30, 3))), "x_test has 3 features per row but x has 4"),
    ("unlabeled D differs", "f.npz", features_npz(x_unlabeled=np.zeros((5, 2))), "x_unlabeled has 2 features"),
    ("x_test without y_test", "f.npz", features_npz(y_test=None), "has x_test but no y_test"),
    ("test label unknown", "f.npz", features_npz(y_test=np.full(30, 7)), "y_test has label 7"),
    ("test string unknown", "f.npz",
     features_npz(y=np.repeat(["a", "b", "c"], COUNTS), y_test=np.repeat(["a", "b", "d"], 10)),
     "y_test has label(s) the training part lacks: ['d']"),
    ("one class", "f.npz", features_npz(y=np.zeros(130, int), y_test=np.zeros(30, int)), "one class only"),
    ("views of the wrong shape", "f.npz", features_npz(views=np.zeros((130, DIM))),
     "views must have shape (130, K, 4)"),
    ("ragged csv", "f.csv", "a,b,label\n1,2,0\n1,0\n", "row 3 has 2 fields but the header has 3 (ragged rows)"),
    ("csv text feature", "f.csv", "a,b,label\n1,x,0\n1,2,1\n", "row 2, column 'b': 'x' is not a number"),
    ("csv without the label column", "f.csv", "a,b,class\n1,2,0\n", "has no label column 'label'"),
    ("csv bad split", "f.csv", "a,label,split\n1,0,train\n2,1,valid\n", "the split column may hold"),
    ("csv train row without label", "f.csv", "a,label\n1,0\n2,\n", "row 3 has no label"),
    ("empty csv", "f.csv", "", "is empty"),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_features_file_fails_with_one_clear_message(case, tmp_path, capsys):
    _, name, content, expect = case
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        content(path)
    out = tmp_path / "run"
    capsys.readouterr()
    code = run_cli(["train", *BASE, f"data.path={path}", f"train.out_dir={out}", "train.progress=false"])
    err = capsys.readouterr().err
    assert code != 0, err
    assert len(re.findall(r"^semi(?: \w+)?: error: ", err, flags=re.M)) == 1, err
    assert expect in err, err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == [] and not out.exists()


@pytest.mark.parametrize("overrides, expect", [
    (["data.name=features", "model.name=small_cnn"], "model.name=small_cnn does not fit data.name=features"),
    (["data.name=digits", "model.name=mlp"], "model.name=mlp does not fit data.name=digits"),
    (["data.name=features", "model.name=mlp", "data.image_size=32"], "data.image_size: feature vectors have no"),
    (["data.views=offline"], "data.views=offline: is for feature vectors"),
    (["data.feature_corruption=1.5"], "data.feature_corruption: must be in [0, 1]"),
])
def test_feature_settings_that_do_not_fit_are_config_errors(overrides, expect, capsys):
    assert run_cli(["train", *overrides]) != 0
    assert expect in capsys.readouterr().err


def test_offline_views_asked_of_a_file_without_them(tmp_path, capsys):
    features_npz()(tmp_path / "f.npz")
    code = run_cli(["train", *BASE, f"data.path={tmp_path / 'f.npz'}", "data.views=offline",
                    f"train.out_dir={tmp_path / 'run'}"])
    assert code != 0 and "the features file holds no views array" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- standardisation


def _config(path: Path, tmp_path: Path, *extra: str):
    return load_config(None, [*BASE, f"data.path={path}", f"train.out_dir={tmp_path / 'run'}", *extra])


def test_vectors_are_standardised_with_the_labeled_rows_statistics_only(tmp_path):
    x, y, xt, yt = blobs()
    x[:, 2] = 5.0  # constant: keeps its scale
    np.savez(tmp_path / "a.npz", x=x, y=y, x_test=xt, y_test=yt)
    d = prepare_data(_config(tmp_path / "a.npz", tmp_path))
    assert d.is_vector and d.images.dtype == np.float32
    lab = d.images[d.split.labeled].astype(np.float64)
    np.testing.assert_allclose(d.mean, lab.mean(0), rtol=1e-6)
    np.testing.assert_allclose(d.std, np.r_[lab.std(0)[:2], 1.0, lab.std(0)[3]], rtol=1e-6)
    unlabeled_only = np.setdiff1d(d.split.unlabeled, d.split.labeled)
    x2 = x.copy()
    x2[unlabeled_only] += 100.0  # the unlabeled rows move; the statistics must not
    np.savez(tmp_path / "b.npz", x=x2, y=y, x_test=xt, y_test=yt)
    d2 = prepare_data(_config(tmp_path / "b.npz", tmp_path))
    assert d2.mean == d.mean and d2.std == d.std


# ------------------------------------------------------------------------------------------------- views


def test_weak_view_adds_noise_scaled_per_dimension():
    x = torch.zeros(20000, 3)
    views = VectorViews(torch.zeros(5, 3), torch.tensor([1.0, 10.0, 0.5]), noise=0.2)
    w = views.weak(x, torch.Generator().manual_seed(0))
    expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.2, 2.0, 0.1])
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.std(0), torch.tensor([0.2, 2.0, 0.1]), rtol=0.03, atol=0)


def test_strong_view_replaces_a_share_of_entries_by_the_same_feature_of_training_rows():
    pool = torch.arange(100.0).view(25, 4) * 1000 + torch.arange(4.0)  # value % 1000 = its feature index
    views = VectorViews(pool, torch.ones(4), noise=0.0, corruption=0.3)
    x = torch.full((5000, 4), -1.0)
    s = views.corrupt(x, torch.Generator().manual_seed(1))
    replaced = s != -1
    assert abs(replaced.float().mean().item() - 0.3) < 0.02
    cols = torch.arange(4).expand_as(s)
    assert torch.equal(s[replaced] % 1000, cols[replaced].float())  # a value of the same feature
    assert torch.isin(s[replaced], pool).all()
    a, b, c = views.views(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, x) and not torch.equal(b, c)  # noise 0: weak is x; the two strong views differ


def test_offline_views_pick_one_encoding_per_row():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2 * 5, 3)[:, None, :].repeat(1, 4, 1)
    x = x + torch.arange(4.0).view(1, 4, 1) * 100  # encoding k adds 100 k
    views = VectorViews(torch.zeros(1, 3), torch.ones(3))
    w, s1, s2 = views.views(x, torch.Generator().manual_seed(0))
    for v in (w, s1, s2):
        k = (v - x[:, 0]) / 100
        assert torch.equal(k, k[:, :1].expand_as(k)) and set(k[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_mlp_embeds_with_its_depth_and_width():
    m = MLP(7, width=16, depth=3, norm="layer", dropout=0.1)
    assert m.embed_dim == 16 and m(torch.randn(5, 7)).shape == (5, 16)
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == 3
    flat = MLP(7, depth=0)
    assert flat.embed_dim == 7 and torch.equal(flat(torch.ones(2, 7)), torch.ones(2, 7))


# ------------------------------------------------------------------------------------------------- a run


@pytest.mark.slow
def test_semi_on_features_trains_predicts_what_eval_scores_and_exports(tmp_path):
    from semi import api

    x, y, xt, yt = blobs(spread=1.0)  # overlapping: some test rows are misclassified
    np.savez(tmp_path / "f.npz", x=x, y=y, x_test=xt, y_test=yt)
    overrides = [*BASE, f"data.path={tmp_path / 'f.npz'}", "algorithm.name=semi", "train.epochs=3",
                 "train.steps_per_epoch=10", "train.eval_every=10", "train.batch_size=16", "train.progress=false",
                 "train.tensorboard=false", f"train.out_dir={tmp_path / 'run'}", "semi.warmup_epochs=0"]
    res = api.train(api.load_config(None, overrides))
    assert 40 < res.metrics["top1"] < 100
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    preds = api.predict(ckpt, xt.astype(np.float32))
    per_class = [100 * float((preds.classes[yt == k] == k).mean()) for k in range(3)]
    scored = api.evaluate(ckpt)
    np.testing.assert_allclose(per_class, scored["per_class_accuracy"], atol=1e-9)
    np.save(tmp_path / "new.npy", xt)  # a file of new rows: the same predictions
    from_file = api.predict(ckpt, tmp_path / "new.npy")
    np.testing.assert_array_equal(from_file.probabilities, preds.probabilities)
    assert run_cli(["predict", "--checkpoint", str(ckpt), str(tmp_path / "f.npz"), "-o", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == sum(COUNTS) + 1  # x of the file, plus the header
    assert api.export(ckpt, tmp_path / "m.pt2") in ("torch.export", "torchscript")
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    with torch.no_grad():
        probs = program(torch.from_numpy(xt.astype(np.float32)))
    np.testing.assert_allclose(probs.numpy(), preds.probabilities, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_run_on_features_resumes_bit_identically(exact_resume, tmp_path):
    features_npz()(tmp_path / "f.npz")
    extra = {"model.name": "mlp", "data.name": "features", "data.path": str(tmp_path / "f.npz"),
             "data.num_labeled_max": 20, "data.num_unlabeled_max": 10, "data.imbalance_labeled": 2,
             "model.width": 32}
    exact_resume("semi", **extra)


@pytest.mark.slow
def test_offline_views_feed_the_training_batches(tmp_path):
    from semi.engine.trainer import Trainer

    x, y, xt, yt = blobs()
    views = np.stack([x + 100 * k for k in range(3)], axis=1)
    np.savez(tmp_path / "v.npz", x=x, y=y, x_test=xt, y_test=yt, views=views)
    trainer = Trainer(_config(tmp_path / "v.npz", tmp_path, "train.progress=false", "train.tensorboard=false",
                              "algorithm.name=fixmatch"))
    assert trainer.data.views is not None
    batch = trainer.batches[0]
    rows = torch.from_numpy(x.astype(np.float32))[batch["u_idx"]]
    for view in ("u_w", "u_s1", "u_s2"):
        k = ((batch[view] - rows) / 100).round()
        assert torch.equal(k, k[:, :1].expand_as(k)) and set(k[:, 0].tolist()) <= {0.0, 1.0, 2.0}
    assert not torch.equal(batch["u_s1"], batch["u_s2"])  # drawn independently


def test_float_formatted_integer_labels_stay_integers(tmp_path):
    header, rows = table_rows()
    rows = [[*r[:DIM], f"{['ant', 'bee', 'cat'].index(r[DIM])}.0", r[DIM + 1]] for r in rows]
    write_csv(tmp_path / "t.csv", rows, header)
    f = read_features(tmp_path / "t.csv")
    assert f.class_names == ["0", "1", "2"] and np.bincount(f.y).tolist() == list(COUNTS)


def test_predicting_from_a_missing_or_folder_file(tmp_path):
    from semi.data.feature_files import read_prediction_vectors

    with pytest.raises(DataError, match="does not exist"):
        read_prediction_vectors(tmp_path / "none.npy", DIM)
    (tmp_path / "parts").mkdir()
    np.save(tmp_path / "parts" / "x_test.npy", np.ones((3, DIM)))
    assert read_prediction_vectors(tmp_path / "parts", DIM).shape == (3, DIM)
