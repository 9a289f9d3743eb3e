"""Data sources on small files written here in each data set's real on-disk format, plus the real shared data when
it is present. Pixel values are random, so the layout conversions (CHW planes, column-major STL-10, SVHN's
(H, W, C, N)) are checked by exact round trips."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semi.config import Config, DataConfig
from semi.data.sources import available_sources, get_source, imagenet, mnist, stl10
from semi.data.sources.base import ImageData
from semi.errors import DataError

RNG = np.random.default_rng(0)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def cfg(**data) -> Config:
    return Config(data=DataConfig(**data))


def load(name: str, root: Path, **data) -> ImageData:
    return get_source(name)(root, cfg(name=name, **data))


def images(n: int, size: int = 32, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def test_every_source_is_registered():
    assert set(available_sources()) >= {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10",
                                        "imagenet127", "image_folder", "numpy"}


# ------------------------------------------------------------------------------------------ MNIST / Fashion-MNIST


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, x, y, xt, yt, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in zip(mnist.IDX_NAMES, (x, y, xt, yt)):
        data = idx_bytes(a)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def small_idx_set(n: int = 6, nt: int = 4):
    x, xt = images(n, 28, 1)[..., 0], images(nt, 28, 1)[..., 0]
    return x, np.arange(n) % 10, xt, (np.arange(nt) + 3) % 10


def test_mnist_npz(tmp_path):
    (tmp_path / "mnist").mkdir()
    x, y, xt, yt = small_idx_set()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=x, y_train=y.astype(np.uint8), x_test=xt, y_test=yt)
    d = load("mnist", tmp_path)
    assert d.train_images.shape == (6, 28, 28, 1) and d.train_images.dtype == np.uint8
    assert np.array_equal(d.train_images[..., 0], x) and np.array_equal(d.test_images[..., 0], xt)
    assert d.train_labels.dtype == np.int64 and d.train_labels.tolist() == y.tolist()
    assert d.class_names == [str(k) for k in range(10)] and d.files == [tmp_path / "mnist" / "mnist.npz"]


def test_mnist_npz_missing_array_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"mnist\.npz"):
        load("mnist", tmp_path)
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks array.*y_train"):
        load("mnist", tmp_path)


def test_mnist_from_torchvision_idx_layout(tmp_path):
    x, y, xt, yt = small_idx_set()
    write_idx_set(tmp_path / "MNIST" / "raw", x, y, xt, yt)
    d = load("mnist", tmp_path)
    assert np.array_equal(d.train_images[..., 0], x) and d.test_labels.tolist() == yt.tolist()


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_round_trip(tmp_path, monkeypatch, gz):
    monkeypatch.setattr(mnist, "DEBIAN_FASHION", tmp_path / "nowhere")
    x, y, xt, yt = small_idx_set()
    write_idx_set(tmp_path / ("fashion-mnist" if gz else "fashion_mnist"), x, y, xt, yt, gz=gz)
    d = load("fashion_mnist", tmp_path)
    assert d.train_images.shape == (6, 28, 28, 1) and d.test_images.shape == (4, 28, 28, 1)
    assert np.array_equal(d.train_images[..., 0], x) and np.array_equal(d.test_images[..., 0], xt)
    assert d.train_labels.tolist() == y.tolist() and d.test_labels.tolist() == yt.tolist()
    assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot" and len(d.files) == 4


def test_fashion_mnist_found_in_debian_folder(tmp_path, monkeypatch):
    x, y, xt, yt = small_idx_set()
    write_idx_set(tmp_path / "debian", x, y, xt, yt)
    monkeypatch.setattr(mnist, "DEBIAN_FASHION", tmp_path / "debian")
    d = load("fashion_mnist", tmp_path / "root")
    assert d.files[0] == tmp_path / "debian" / "train-images-idx3-ubyte.gz"


def test_fashion_mnist_missing_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "DEBIAN_FASHION", tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        load("fashion_mnist", tmp_path)
    for name in mnist.IDX_NAMES:
        assert str(tmp_path / "fashion-mnist" / (name + ".gz")) in str(err.value)
    assert "dataset-fashion-mnist" in str(err.value)
    x, y, xt, yt = small_idx_set()
    write_idx_set(tmp_path / "fashion-mnist", x, y, xt, yt)
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load("fashion_mnist", tmp_path)


def test_idx_damage_is_reported_with_the_file(tmp_path):
    x = images(3, 28, 1)[..., 0]
    good = idx_bytes(x)
    bad_magic = tmp_path / "magic.gz"
    bad_magic.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + good[4:]))
    short = tmp_path / "short"
    short.write_bytes(good[:-10])
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(good)[:-40])
    for path, message in ((bad_magic, "magic"), (short, "truncated"), (broken_gz, "cannot read")):
        with pytest.raises(DataError, match=message) as err:
            mnist.read_idx(path)
        assert str(path) in str(err.value)
    plain = tmp_path / "plain-idx"
    plain.write_bytes(good)
    assert np.array_equal(mnist.read_idx(plain), x)


def test_idx_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "DEBIAN_FASHION", tmp_path / "nowhere")
    x, y, xt, yt = small_idx_set()
    write_idx_set(tmp_path / "fashion-mnist", x, y[:-1], xt, yt)
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load("fashion_mnist", tmp_path)


# ------------------------------------------------------------------------------------------------- CIFAR


def planes(x: np.ndarray) -> np.ndarray:
    """NHWC -> the (N, 3*S*S) R, G, B plane rows of the CIFAR / downsampled-ImageNet pickles."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(folder: Path, per_batch: int = 4, bytes_keys: bool = True):
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = images(per_batch)
        y = RNG.integers(0, 10, per_batch).tolist()
        dump(folder / name, {k("data"): planes(x), k("labels"): y, k("batch_label"): k(name)})
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs[:5]), sum(ys[:5], []), xs[5], ys[5]


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_pickles_round_trip_in_order(tmp_path, bytes_keys):
    x, y, xt, yt = write_cifar10(tmp_path / "cifar-10-batches-py", bytes_keys=bytes_keys)
    d = load("cifar10", tmp_path)
    assert d.train_images.shape == (20, 32, 32, 3) and d.train_images.dtype == np.uint8
    assert np.array_equal(d.train_images, x) and np.array_equal(d.test_images, xt)
    assert d.train_labels.tolist() == y and d.test_labels.tolist() == yt
    assert d.class_names[0] == "airplane" and len(d.files) == 6


def test_cifar10_pickle_pixel_layout_is_chw_planes(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    row = np.zeros(3072, dtype=np.uint8)
    row[0], row[1], row[32], row[1024], row[2048 + 1023] = 10, 20, 30, 40, 50  # R(0,0) R(0,1) R(1,0) G(0,0) B(31,31)
    dump(tmp_path / "cifar-10-batches-py" / "data_batch_1", {b"data": row[None], b"labels": [3]})
    img = load("cifar10", tmp_path).train_images[0]
    assert (img[0, 0, 0], img[0, 1, 0], img[1, 0, 0], img[0, 0, 1], img[31, 31, 2]) == (10, 20, 30, 40, 50)


def test_cifar10_names_from_batches_meta_and_nested_folder(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar10(folder)
    names = [f"c{k}".encode() for k in range(10)]
    dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    d = load("cifar10", tmp_path)
    assert d.class_names == [f"c{k}" for k in range(10)] and folder / "batches.meta" in d.files


def test_cifar10_npz_chunks(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    xs = [images(3) for _ in range(6)]
    ys = [RNG.integers(0, 10, 3).astype(np.uint8) for _ in range(6)]
    for k in range(5):
        np.savez_compressed(folder / f"cifar10_train_{k}.npz", x=xs[k], y=ys[k])
    np.savez_compressed(folder / "cifar10_test.npz", x=xs[5], y=ys[5])
    d = load("cifar10", tmp_path)
    assert np.array_equal(d.train_images, np.concatenate(xs[:5])) and d.train_labels.dtype == np.int64
    assert d.train_labels.tolist() == np.concatenate(ys[:5]).tolist() and np.array_equal(d.test_images, xs[5])
    (folder / "cifar10_train_3.npz").unlink()
    with pytest.raises(DataError, match="cifar10_train_3.npz"):
        load("cifar10", tmp_path)


def test_cifar10_missing_files_are_named(tmp_path):
    with pytest.raises(DataError) as err:
        load("cifar10", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg and "test_batch" in msg


def test_cifar_damaged_or_unsafe_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    good = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="data_batch_2"):
        load("cifar10", tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    dump(folder / "data_batch_2", {b"data": Evil(), b"labels": [0]})
    with pytest.raises(DataError, match="not allowed"):
        load("cifar10", tmp_path)
    dump(folder / "data_batch_2", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match=r"data_batch_2.*\(N, 3072\)"):
        load("cifar10", tmp_path)
    dump(folder / "data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(DataError, match=r"labels must lie in \[0, 9\]"):
        load("cifar10", tmp_path)


def test_cifar100_fine_labels_and_names(tmp_path):
    folder = tmp_path / "cifar-100-python"
    x, xt = images(20), images(6)
    y, yt = RNG.integers(0, 100, 20).tolist(), RNG.integers(0, 100, 6).tolist()
    dump(folder / "train", {b"data": planes(x), b"fine_labels": y, b"coarse_labels": [0] * 20})
    dump(folder / "test", {b"data": planes(xt), b"fine_labels": yt, b"coarse_labels": [0] * 6})
    dump(folder / "meta", {b"fine_label_names": [f"n{k}".encode() for k in range(100)]})
    d = load("cifar100", tmp_path)
    assert np.array_equal(d.train_images, x) and np.array_equal(d.test_images, xt)
    assert d.train_labels.tolist() == y and d.test_labels.tolist() == yt
    assert d.num_classes == 100 and d.class_names[7] == "n7"


def test_cifar100_missing(tmp_path):
    with pytest.raises(DataError, match=r"cifar-100-python.*train"):
        load("cifar100", tmp_path)


# --------------------------------------------------------------------------------------------------- SVHN


def write_svhn(folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1).astype(np.uint8)})


@pytest.mark.parametrize("in_root", [False, True])
def test_svhn_mat_round_trip_and_label_10_is_digit_0(tmp_path, in_root):
    folder = tmp_path if in_root else tmp_path / "svhn"
    x, xt = images(7), images(3)
    write_svhn(folder, "train_32x32.mat", x, np.array([10, 1, 2, 3, 9, 10, 5]))
    write_svhn(folder, "test_32x32.mat", xt, np.array([10, 10, 4]))
    d = load("svhn", tmp_path)
    assert d.train_images.shape == (7, 32, 32, 3) and np.array_equal(d.train_images, x)
    assert np.array_equal(d.test_images, xt)
    assert d.train_labels.tolist() == [0, 1, 2, 3, 9, 0, 5] and d.test_labels.tolist() == [0, 0, 4]
    assert d.class_names == [str(k) for k in range(10)]


def test_svhn_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load("svhn", tmp_path)
    assert "train_32x32.mat" in str(err.value) and "test_32x32.mat" in str(err.value)
    write_svhn(tmp_path / "svhn", "train_32x32.mat", images(2), np.array([1, 11]))
    write_svhn(tmp_path / "svhn", "test_32x32.mat", images(1), np.array([1]))
    with pytest.raises(DataError, match=r"train_32x32\.mat.*1\.\.10"):
        load("svhn", tmp_path)
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(DataError, match="cannot read .*train_32x32.mat"):
        load("svhn", tmp_path)


# ------------------------------------------------------------------------------------------------- STL-10


def write_stl(folder: Path, n_train: int = 5, n_test: int = 3, n_unlabeled: int = 5):
    """HWC images written as the binary files store them: (N, 3, 96, 96) bytes that read column-major."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        x = images(n, 96)
        x.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        out[split] = x
        if split != "unlabeled":
            y = (np.arange(n) % 10 + 1).astype(np.uint8)
            y.tofile(folder / f"{split}_y.bin")
            out[split + "_y"] = y
    return out


def test_stl10_binary_round_trip_at_96(tmp_path, monkeypatch):
    monkeypatch.setattr(stl10, "CHUNK", 2)  # several chunks from the memory map
    w = write_stl(tmp_path / "stl10_binary")
    d = load("stl10", tmp_path, image_size=96)
    assert d.train_images.shape == (5, 96, 96, 3) and np.array_equal(d.train_images, w["train"])
    assert np.array_equal(d.test_images, w["test"]) and np.array_equal(d.extra_unlabeled, w["unlabeled"])
    assert d.train_labels.tolist() == (w["train_y"].astype(int) - 1).tolist() == [0, 1, 2, 3, 4]
    assert d.class_names[0] == "airplane" and len(d.files) == 5


def test_stl10_column_major_layout(tmp_path):
    write_stl(tmp_path / "stl10_binary", n_train=1)
    raw = np.zeros((1, 3, 96, 96), dtype=np.uint8)
    raw[0, 0, 5, 0] = 200  # column-major: the second index of a channel plane is x (width), the third is y
    raw[0, 2, 0, 7] = 100
    raw.tofile(tmp_path / "stl10_binary" / "train_X.bin")
    img = load("stl10", tmp_path, image_size=96).train_images[0]
    assert img[0, 5, 0] == 200 and img[7, 0, 2] == 100 and int(img.sum()) == 300


def test_stl10_resized_to_32_by_default(tmp_path, monkeypatch):
    from semi.data.prepare import resize_images

    monkeypatch.setattr(stl10, "CHUNK", 2)
    w = write_stl(tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    d = load("stl10", tmp_path)
    assert d.train_images.shape == (5, 32, 32, 3) and d.extra_unlabeled.shape == (5, 32, 32, 3)
    assert np.array_equal(d.train_images, resize_images(w["train"], 32))
    assert np.array_equal(d.extra_unlabeled, resize_images(w["unlabeled"], 32))
    assert d.class_names[3] == "k3"


def test_stl10_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load("stl10", tmp_path)
    assert all(n in str(err.value) for n in stl10.STL10_FILES)
    folder = tmp_path / "stl10_binary"
    write_stl(folder)
    np.array([1, 2, 11, 4, 5], dtype=np.uint8).tofile(folder / "train_y.bin")
    with pytest.raises(DataError, match=r"train_y\.bin.*1\.\.10"):
        load("stl10", tmp_path)
    np.array([1, 2, 3], dtype=np.uint8).tofile(folder / "train_y.bin")
    with pytest.raises(DataError, match="3 labels .* 5 images"):
        load("stl10", tmp_path)
    write_stl(folder)
    with open(folder / "unlabeled_X.bin", "ab") as fh:
        fh.write(b"\x00" * 100)
    with pytest.raises(DataError, match=r"unlabeled_X\.bin.*multiple of 27648"):
        load("stl10", tmp_path)


# ----------------------------------------------------------------------------------------------- ImageNet-127


def write_imagenet(folder: Path, size: int = 32, per_batch: int = 2, npz: bool = False, layout: str = "flat"):
    xs, ys = [], []
    for name in imagenet.TRAIN_FILES + [imagenet.VAL_FILE]:
        x = images(per_batch, size)
        y = RNG.integers(1, 1001, per_batch).tolist()
        sub = folder
        if layout == "zips":
            sub = folder / (f"Imagenet{size}_val" if name == "val_data" else f"Imagenet{size}_train")
        d = {"data": planes(x), "labels": y, "mean": np.zeros(3 * size * size)}
        if npz:
            sub.mkdir(parents=True, exist_ok=True)
            np.savez(sub / (name + ".npz"), data=d["data"], labels=np.array(y), mean=d["mean"])
        else:
            dump(sub / name, d)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs[:-1]), sum(ys[:-1], []), xs[-1], ys[-1]


def test_imagenet127_shipped_class_map():
    doc = json.loads(imagenet.MAP_FILE.read_text())
    table, names = imagenet.load_class_map()
    assert len(table) == 1000 and len(names) == 127 and set(table.tolist()) == set(range(127))
    assert len(set(doc["imagenet_wnids"])) == 1000 and len(set(doc["class_wnids"])) == 127
    wnid = {w: i for i, w in enumerate(doc["imagenet_wnids"])}
    by_wnid = {w: names[table[i]] for w, i in wnid.items()}
    assert doc["imagenet_wnids"][0] == "n02119789" and by_wnid["n02119789"] == "mammal"  # label 1: kit fox
    assert by_wnid["n01440764"] == "soft-finned fish"  # tench
    assert by_wnid["n02012849"] == "bird" and by_wnid["n03126707"] == "device"  # the two cranes
    assert by_wnid["n09835506"] == "athlete"  # ballplayer
    assert np.bincount(table, minlength=127).max() == 218  # mammal: the head class


@pytest.mark.parametrize("npz,layout", [(False, "flat"), (True, "flat"), (False, "zips")])
def test_imagenet127_batches_map_to_127_classes(tmp_path, npz, layout):
    x, y, xt, yt = write_imagenet(tmp_path / "imagenet32", npz=npz, layout=layout)
    table, names = imagenet.load_class_map()
    d = load("imagenet127", tmp_path)
    assert d.train_images.shape == (20, 32, 32, 3) and np.array_equal(d.train_images, x)
    assert np.array_equal(d.test_images, xt)
    assert d.train_labels.tolist() == table[np.array(y) - 1].tolist()
    assert d.test_labels.tolist() == table[np.array(yt) - 1].tolist()
    assert d.num_classes == 127 and d.class_names == names and d.natural_unlabeled and len(d.files) == 11


def test_imagenet127_64_and_custom_map(tmp_path):
    x, y, _, _ = write_imagenet(tmp_path / "imagenet64", size=64, per_batch=1)
    custom = tmp_path / "map.json"
    custom.write_text(json.dumps({"map": [k % 3 for k in range(1000)], "class_names": ["a", "b", "c"]}))
    d = load("imagenet127", tmp_path, image_size=64, path=str(custom))
    assert d.train_images.shape == (10, 64, 64, 3) and np.array_equal(d.train_images, x)
    assert d.class_names == ["a", "b", "c"] and d.train_labels.tolist() == [(v - 1) % 3 for v in y]


def test_imagenet127_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load("imagenet127", tmp_path)
    assert str(tmp_path / "imagenet32" / "train_data_batch_1") in str(err.value) and "val_data" in str(err.value)
    write_imagenet(tmp_path / "imagenet32")
    dump(tmp_path / "imagenet32" / "train_data_batch_4", {"data": planes(images(2)), "labels": [5, 1001]})
    with pytest.raises(DataError, match=r"train_data_batch_4.*1\.\.1000"):
        load("imagenet127", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load("imagenet127", tmp_path, path=str(tmp_path / "no-map.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"map": [0] * 999}))
    with pytest.raises(DataError, match="1000"):
        load("imagenet127", tmp_path, path=str(bad))


# ---------------------------------------------------------------------------------------------- image folder


def write_png(path: Path, a: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a, mode).save(path)


def test_image_folder_train_test_layout(tmp_path):
    x = images(5, 8)
    files = [("train/cat/a.png", 0), ("train/cat/b.png", 1), ("train/ant/z.png", 2), ("test/ant/q.png", 3),
             ("test/cat/p.png", 4)]
    for name, i in files:
        write_png(tmp_path / name, x[i])
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    d = load("image_folder", tmp_path, path=str(tmp_path))
    assert d.class_names == ["ant", "cat"]
    assert d.train_images.shape == (3, 8, 8, 3) and d.train_images.dtype == np.uint8
    assert np.array_equal(d.train_images, x[[2, 0, 1]]) and d.train_labels.tolist() == [0, 1, 1]
    assert np.array_equal(d.test_images, x[[3, 4]]) and d.test_labels.tolist() == [0, 1]
    assert d.files[0] == tmp_path / "train" / "ant" / "z.png"


def test_image_folder_flat_layout_holds_out_last_20_percent(tmp_path):
    x = images(8, 6)
    for i in range(5):
        write_png(tmp_path / "b" / f"{i:02d}.png", x[i])
    for i in range(3):
        write_png(tmp_path / "a" / f"{i:02d}.bmp", x[5 + i])
    d = load("image_folder", tmp_path, path=str(tmp_path))
    assert d.class_names == ["a", "b"]
    assert d.train_labels.tolist() == [0, 0, 1, 1, 1, 1] and d.test_labels.tolist() == [0, 1]
    assert np.array_equal(d.test_images, x[[7, 4]]) and np.array_equal(d.train_images, x[[5, 6, 0, 1, 2, 3]])


def test_image_folder_greyscale_mixed_and_resize(tmp_path):
    g = images(4, 10, 1)
    for i in range(2):
        write_png(tmp_path / "g" / "train" / "k" / f"{i}.png", g[i])
        write_png(tmp_path / "g" / "test" / "k" / f"{i}.png", g[2 + i])
    d = load("image_folder", tmp_path, path=str(tmp_path / "g"))
    assert d.train_images.shape == (2, 10, 10, 1) and np.array_equal(d.train_images, g[:2])
    write_png(tmp_path / "g" / "test" / "k" / "9.png", images(1, 12)[0])  # one RGB image of another size
    with pytest.raises(DataError, match=r"9\.png is 12x12"):
        load("image_folder", tmp_path, path=str(tmp_path / "g"))
    d = load("image_folder", tmp_path, path=str(tmp_path / "g"), image_size=16)
    assert d.train_images.shape == (2, 16, 16, 3) and d.test_images.shape == (3, 16, 16, 3)
    assert np.array_equal(d.train_images[..., 0], d.train_images[..., 2])  # greyscale pixels, now RGB


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="data.path"):
        load("image_folder", tmp_path)
    write_png(tmp_path / "ok" / "a" / "0.png", images(1, 4)[0])
    write_png(tmp_path / "ok" / "a" / "1.png", images(1, 4)[0])
    (tmp_path / "ok" / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty holds no images"):
        load("image_folder", tmp_path, path=str(tmp_path / "ok"))
    (tmp_path / "ok" / "empty").rmdir()
    (tmp_path / "ok" / "a" / "2.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"2\.png"):
        load("image_folder", tmp_path, path=str(tmp_path / "ok"))
    png = tmp_path / "full.png"
    write_png(png, images(1, 64)[0])
    (tmp_path / "ok" / "a" / "2.png").write_bytes(png.read_bytes()[:300])  # valid header, truncated pixels
    with pytest.raises(DataError, match=r"cannot decode image .*2\.png"):
        load("image_folder", tmp_path, path=str(tmp_path / "ok"), image_size=4)
    write_png(tmp_path / "split" / "train" / "a" / "0.png", images(1, 4)[0])
    with pytest.raises(DataError, match="test"):
        load("image_folder", tmp_path, path=str(tmp_path / "split"))
    write_png(tmp_path / "split" / "test" / "zebra" / "0.png", images(1, 4)[0])
    with pytest.raises(DataError, match="zebra"):
        load("image_folder", tmp_path, path=str(tmp_path / "split"))


# ---------------------------------------------------------------------------------------------------- numpy


def test_numpy_source(tmp_path):
    x, xt = images(6, 5, 1)[..., 0], images(2, 5, 1)[..., 0]
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 1, 2, 0, 1, 2]), x_test=xt, y_test=np.array([[2], [0]]),
             class_names=np.array(["r", "s", "t"]))
    d = load("numpy", tmp_path, path=str(path))
    assert d.train_images.shape == (6, 5, 5, 1) and np.array_equal(d.train_images[..., 0], x)
    assert d.class_names == ["r", "s", "t"] and d.test_labels.tolist() == [2, 0] and d.files == [path]


def test_numpy_float_images_are_converted_with_a_warning(tmp_path):
    x = images(3, 4)
    path = tmp_path / "f.npz"
    np.savez(path, x_train=x.astype(np.float32) / 255, y_train=np.array([0, 1, 1]), x_test=x[:1] / 255.0,
             y_test=np.array([1]))
    with pytest.warns(UserWarning, match="converted to uint8"):
        d = load("numpy", tmp_path, path=str(path))
    assert d.train_images.dtype == np.uint8 and np.array_equal(d.train_images, x) and d.num_classes == 2


@pytest.mark.parametrize("change,message", [
    ({"x_train": np.full((2, 4, 4, 3), 2.0)}, r"values 2\.\.2.*\[0, 1\]"),
    ({"x_train": np.zeros((2, 4, 4, 3), np.int64)}, "dtype int64"),
    ({"x_train": np.zeros((2, 3, 4, 4), np.uint8)}, "channels-first"),
    ({"y_train": np.array([0.0, 1.0])}, "integer class labels"),
    ({"y_train": np.array([0, 5])}, r"labels must lie in \[0, 2\]"),
])
def test_numpy_source_errors(tmp_path, change, message):
    arrays = {"x_train": np.zeros((2, 4, 4, 3), np.uint8), "y_train": np.array([0, 1]),
              "x_test": np.zeros((1, 4, 4, 3), np.uint8), "y_test": np.array([1]),
              "class_names": np.array(["a", "b", "c"])}
    arrays.update(change)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load("numpy", tmp_path, path=str(path))


def test_numpy_source_missing_arrays(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, x_train=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(DataError, match="y_train"):
        load("numpy", tmp_path, path=str(path))
    with pytest.raises(DataError, match="does not exist"):
        load("numpy", tmp_path, path=str(tmp_path / "nope.npz"))


# ------------------------------------------------------------------------------------------ the real data sets


@pytest.mark.skipif(not (SHARED / "cifar10" / "cifar10_test.npz").exists(), reason="shared CIFAR-10 not present")
def test_real_cifar10():
    d = load("cifar10", SHARED)
    assert d.train_images.shape == (50000, 32, 32, 3) and d.test_images.shape == (10000, 32, 32, 3)
    assert d.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(d.train_labels).tolist() == [5000] * 10


@pytest.mark.skipif(not (SHARED / "mnist" / "mnist.npz").exists(), reason="shared MNIST not present")
def test_real_mnist():
    d = load("mnist", SHARED)
    assert d.train_images.shape == (60000, 28, 28, 1) and d.test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(d.test_labels).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.skipif(not (mnist.DEBIAN_FASHION / "train-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(tmp_path):
    d = load("fashion_mnist", tmp_path)
    assert d.train_images.shape == (60000, 28, 28, 1) and d.test_images.shape == (10000, 28, 28, 1)
    assert d.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
