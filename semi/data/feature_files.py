"""Feature files, torch-free: reading `.npz`, folders of `.npy`, `.csv` and `.parquet` into checked arrays.

A features file holds float feature vectors of any modality (text or audio embeddings, tabular columns, sensor
statistics) and their labels. Its parts, named as the arrays of an `.npz` (or the `.npy` files of a folder):

    x            (N, D)     training vectors (also accepted as x_train)
    y            (N,)       their labels: integers 0..K-1, or strings (the sorted distinct strings become the
                            class names); also accepted as y_train
    x_unlabeled  (M, D)     optional: vectors without labels (added to the unlabeled set)
    x_test       (T, D)     optional, with y_test: the test part; without it the last 20% of each class (in row
    y_test       (T,)       order) is held out as the test set, as the image_folder source does
    class_names  (K,)       optional, for integer labels
    views        (N, K', D) optional: K' precomputed encodings of K' augmentations of each training row (as USB
                            precomputes back-translations); `data.views=offline` draws the training views from them
    views_unlabeled (M, K', D) the same for x_unlabeled (needed when both views and x_unlabeled are given)

A `.csv` (header row) or `.parquet` table: one column of labels (`data.label_column`, default `label`), an
optional `split` column (train / unlabeled / test; an unlabeled row may leave its label empty), every other column a
numeric feature. Every check raises a DataError that names the file and the part: ragged or non-numeric rows,
NaN or infinite values, a D that differs between parts, labels of the wrong kind, test labels the training part
does not have.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semi.data.protocol import holdout_count
from semi.errors import DataError

FEATURE_SUFFIXES = (".npz", ".npy", ".csv", ".parquet")
PARTS = ("x", "y", "x_unlabeled", "x_test", "y_test", "class_names", "views", "views_unlabeled")
ALIASES = {"x_train": "x", "y_train": "y"}
SPLIT_VALUES = ("train", "unlabeled", "test")


@dataclass
class FeatureArrays:
    """The checked parts of a features file: float32 vectors, int64 labels in [0, K)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    x_unlabeled: np.ndarray | None = None
    views: np.ndarray | None = None
    views_unlabeled: np.ndarray | None = None
    held_out: bool = False
    """True when the test part was held out of x (no x_test in the file)."""

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])


# ------------------------------------------------------------------------------------------------- reading


def read_raw(path: Path, label_column: str = "label") -> dict[str, np.ndarray]:
    """The named parts of a features file as raw arrays (not yet checked)."""
    if not path.exists():
        raise DataError(f"features: {path} does not exist")
    if path.is_dir() or path.suffix == ".npy":
        return _read_npy_folder(path if path.is_dir() else path.parent)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".csv":
        return _table_parts(path, *_read_csv(path), label_column)
    if suffix == ".parquet":
        return _table_parts(path, *_read_parquet(path), label_column)
    raise DataError(f"features: {path} is not a features file; use one of {', '.join(FEATURE_SUFFIXES)} "
                    "(or a folder of .npy files)")


def _named(parts: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in parts.items():
        name = ALIASES.get(key, key)
        if name not in PARTS:
            raise DataError(f"features: {path} has an array {key!r} that is not a part of a features file "
                            f"(allowed: {', '.join(PARTS)})")
        if name in out:
            raise DataError(f"features: {path} holds both {name} and its alias {key}")
        out[name] = value
    if "x" not in out:
        raise DataError(f"features: {path} has no training vectors (an array named x, of shape (N, D))")
    if "y" not in out:
        raise DataError(f"features: {path} has no training labels (an array named y, of shape (N,))")
    return out


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001  (zip or format errors; a pickled array is refused here too)
        raise DataError(f"features: cannot read {path}: {type(exc).__name__}: {exc}") from None
    return _named(parts, path)


def _read_npy_folder(folder: Path) -> dict[str, np.ndarray]:
    parts = {}
    for f in sorted(folder.glob("*.npy")):
        try:
            parts[f.stem] = np.load(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"features: cannot read {f}: {type(exc).__name__}: {exc}") from None
    if not parts:
        raise DataError(f"features: {folder} holds no .npy files (expected x.npy and y.npy)")
    return _named(parts, folder)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"features: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not rows:
        raise DataError(f"features: {path} is empty (expected a header row, then one row per example)")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(f"features: {path} row {i + 2} has {len(r)} fields but the header has {len(header)} "
                            "(ragged rows)")
    return header, body


def _read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    from semi.extras import require

    pq = require("pyarrow.parquet", f"features: reading {path} (or save the table as .csv or .npz)")
    try:
        columns = pq.read_table(path).to_pydict()
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"features: cannot read {path}: {type(exc).__name__}: {exc}") from None
    header = list(columns)
    body = [["" if v is None else str(v) for v in row] for row in zip(*columns.values())]
    return header, body


def _table_parts(path: Path, header: list[str], body: list[list[str]], label_column: str) -> dict[str, np.ndarray]:
    if label_column not in header:
        raise DataError(f"features: {path} has no label column {label_column!r} (columns: {', '.join(header[:12])}"
                        f"{' ...' if len(header) > 12 else ''}); set data.label_column")
    li = header.index(label_column)
    si = header.index("split") if "split" in header else None
    feature_cols = [i for i in range(len(header)) if i not in (li, si)]
    if not feature_cols:
        raise DataError(f"features: {path} has no feature columns besides {label_column!r}")
    split = [r[si].strip() for r in body] if si is not None else ["train"] * len(body)
    bad = sorted({s for s in split if s not in SPLIT_VALUES})
    if bad:
        raise DataError(f"features: {path}: the split column may hold {', '.join(SPLIT_VALUES)}; found {bad}")
    x = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    for r, row in enumerate(body):
        for c, i in enumerate(feature_cols):
            try:
                x[r, c] = float(row[i])
            except ValueError:
                raise DataError(f"features: {path} row {r + 2}, column {header[i]!r}: {row[i]!r} is not a number"
                                ) from None
    labels = np.array([r[li].strip() for r in body], dtype=object)
    mask = {s: np.array([v == s for v in split], dtype=bool) for s in SPLIT_VALUES}
    missing = np.flatnonzero((labels == "") & ~mask["unlabeled"])
    if len(missing):
        raise DataError(f"features: {path} row {missing[0] + 2} has no label (only rows with split=unlabeled may "
                        "leave it empty)")
    parts = {"x": x[mask["train"]], "y": _table_labels(labels[mask["train"]])}
    if mask["unlabeled"].any():
        parts["x_unlabeled"] = x[mask["unlabeled"]]
    if mask["test"].any():
        parts["x_test"], parts["y_test"] = x[mask["test"]], _table_labels(labels[mask["test"]])
    return parts


def _table_labels(labels: np.ndarray) -> np.ndarray:
    """Integer labels when every label reads as an integer ("3", or "3.0" as pandas writes a column with missing
    values), else the strings."""
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return labels.astype(str)
    if all(np.isfinite(v) and float(v).is_integer() for v in values):
        return np.array(values, dtype=np.int64)
    return labels.astype(str)


# ------------------------------------------------------------------------------------------------- checking


def check_vectors(x: np.ndarray, path: Path, part: str, dim: int | None = None) -> np.ndarray:
    """A (N, D) numeric array of finite values as float32."""
    x = np.asarray(x)
    if x.dtype == object:
        raise DataError(f"features: {path}: {part} has ragged rows (rows of different lengths); every row needs the "
                        "same number of features")
    if x.dtype.kind not in "fiub":
        raise DataError(f"features: {path}: {part} must hold numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = " (one feature per row? reshape to (N, 1))" if x.ndim == 1 else ""
        raise DataError(f"features: {path}: {part} must have shape (N, D), got {x.shape}{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"features: {path}: {part} is empty (shape {x.shape})")
    if dim is not None and x.shape[1] != dim:
        raise DataError(f"features: {path}: {part} has {x.shape[1]} features per row but x has {dim}")
    return _finite_float32(x, path, part)


def _finite_float32(x: np.ndarray, path: Path, part: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: reported below
        out = x.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        where = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(out).any() else "infinite (or too large for float32)"
        raise DataError(f"features: {path}: {part} holds {int(bad.sum())} {kind} value(s), the first at row "
                        f"{where[0]}, column {where[1]}; impute or drop them first")
    return out


def check_views(v: np.ndarray, rows: int, dim: int, path: Path, part: str) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype.kind not in "fiub" or v.ndim != 3 or v.shape[0] != rows or v.shape[2] != dim or v.shape[1] < 1:
        raise DataError(f"features: {path}: {part} must have shape ({rows}, K, {dim}) (K encodings of each row), "
                        f"got {v.shape} of dtype {v.dtype}")
    return _finite_float32(v, path, part)


def _labels(y: np.ndarray, rows: int, path: Path, part: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != rows:
        raise DataError(f"features: {path}: {part} must hold one label per row: {rows} rows, labels of shape "
                        f"{y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"features: {path}: {part} holds non-integer numbers; labels are integers 0..K-1 or "
                            "strings")
        y = y.astype(np.int64)
    if y.dtype.kind in "iu" and len(y) and y.min() < 0:
        raise DataError(f"features: {path}: {part} holds a negative label ({y.min()}); labels are 0..K-1")
    if y.dtype.kind not in "iuUS":
        raise DataError(f"features: {path}: {part} must hold integer or string labels, got dtype {y.dtype}")
    return y


def check_parts(parts: dict[str, np.ndarray], path: Path) -> FeatureArrays:
    """Every part checked against the others; labels mapped to 0..K-1."""
    x = check_vectors(parts["x"], path, "x")
    dim = x.shape[1]
    y = _labels(parts["y"], len(x), path, "y")
    if ("x_test" in parts) != ("y_test" in parts):
        have, lack = ("x_test", "y_test") if "x_test" in parts else ("y_test", "x_test")
        raise DataError(f"features: {path} has {have} but no {lack}: give both, or neither (the last 20% of each "
                        "class is then the test set)")
    x_test = check_vectors(parts["x_test"], path, "x_test", dim) if "x_test" in parts else None
    y_test = _labels(parts["y_test"], len(x_test), path, "y_test") if x_test is not None else None
    strings = y.dtype.kind in "US"
    if y_test is not None and (y_test.dtype.kind in "US") != strings:
        raise DataError(f"features: {path}: y holds {'strings' if strings else 'integers'} but y_test does not")
    if strings:
        if "class_names" in parts:
            raise DataError(f"features: {path}: class_names is for integer labels; string labels name themselves")
        names = sorted(set(y.tolist()))
        index = {n: k for k, n in enumerate(names)}
        if y_test is not None:
            unknown = sorted(set(y_test.tolist()) - set(names))
            if unknown:
                raise DataError(f"features: {path}: y_test has label(s) the training part lacks: {unknown[:10]}")
            y_test = np.array([index[v] for v in y_test.tolist()], dtype=np.int64)
        y = np.array([index[v] for v in y.tolist()], dtype=np.int64)
    else:
        y = y.astype(np.int64)
        top = int(y.max())
        if "class_names" in parts:
            names = [str(n) for n in np.asarray(parts["class_names"]).reshape(-1)]
            if len(names) <= top:
                raise DataError(f"features: {path}: {len(names)} class_names but labels up to {top}")
        else:
            names = [str(k) for k in range(top + 1)]
        if y_test is not None:
            y_test = y_test.astype(np.int64)
            if len(y_test) and y_test.max() >= len(names):
                raise DataError(f"features: {path}: y_test has label {int(y_test.max())}, which the training part "
                                f"lacks (classes 0..{len(names) - 1})")
    if len(names) < 2:
        raise DataError(f"features: {path}: the training labels name one class only; a classifier needs two or more")
    x_unl = check_vectors(parts["x_unlabeled"], path, "x_unlabeled", dim) if "x_unlabeled" in parts else None
    views = check_views(parts["views"], len(x), dim, path, "views") if "views" in parts else None
    views_unl = None
    if "views_unlabeled" in parts:
        if views is None or x_unl is None:
            raise DataError(f"features: {path}: views_unlabeled needs views and x_unlabeled too")
        views_unl = check_views(parts["views_unlabeled"], len(x_unl), dim, path, "views_unlabeled")
        if views_unl.shape[1] != views.shape[1]:
            raise DataError(f"features: {path}: views has {views.shape[1]} encodings per row but views_unlabeled "
                            f"{views_unl.shape[1]}")
    elif views is not None and x_unl is not None:
        raise DataError(f"features: {path}: with views and x_unlabeled, give views_unlabeled too (the unlabeled "
                        "rows' encodings)")
    held_out = x_test is None
    if held_out:
        x, y, x_test, y_test, keep = _hold_out(x, y, len(names))
        views = views[keep] if views is not None else None
    return FeatureArrays(x, y, x_test, y_test, names, x_unl, views, views_unl, held_out)


def _hold_out(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The last 20% of each class's rows (in row order) as the test set."""
    test = np.zeros(len(y), dtype=bool)
    for c in range(k):
        rows = np.flatnonzero(y == c)
        test[rows[len(rows) - holdout_count(len(rows)):]] = True
    keep = ~test
    return x[keep], y[keep], x[test], y[test], keep


def read_features(path: Path, label_column: str = "label") -> FeatureArrays:
    """A features file read and checked."""
    return check_parts(read_raw(path, label_column), path)


def read_prediction_vectors(path: Path, dim: int, label_column: str = "label") -> np.ndarray:
    """The vectors to predict from a features file: its `x` if present, else `x_test` (an `.npz` or a folder of
    `.npy` parts), a bare `.npy` array, or every row of a table (its label and split columns ignored); checked to
    have the run's D."""
    if not path.exists():
        raise DataError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy") or path.is_dir():
        try:
            if path.is_dir():
                files = sorted(path.glob("*.npy"))
                arrays = {ALIASES.get(f.stem, f.stem): np.load(f, allow_pickle=False) for f in files}
            elif suffix == ".npy":
                arrays = {"x": np.load(path, allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {ALIASES.get(k, k): z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        key = next((k for k in ("x", "x_test") if k in arrays), next(iter(arrays)) if len(arrays) == 1 else None)
        if key is None:
            raise DataError(f"{path}: name the vectors array x or x_test (found {', '.join(arrays)})")
        return check_vectors(arrays[key], path, key, dim)
    if suffix in (".csv", ".parquet"):
        header, body = _read_csv(path) if suffix == ".csv" else _read_parquet(path)
        cols = [i for i, h in enumerate(header) if h not in (label_column, "split")]
        try:
            x = np.array([[float(r[i]) for i in cols] for r in body], dtype=np.float64).reshape(len(body), len(cols))
        except ValueError as exc:
            raise DataError(f"{path}: a feature value is not a number ({exc})") from None
        return check_vectors(x, path, "the feature columns", dim)
    raise DataError(f"{path}: give a features file ({', '.join(FEATURE_SUFFIXES)}) to a model trained on features")
