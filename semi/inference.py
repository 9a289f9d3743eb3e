"""A trained model applied to new images or feature vectors: load a checkpoint's EMA model, read inputs, predict,
export.

New images are treated exactly as the run's evaluation treats its test set: decoded to 8 bits with the run's
channel count, resized to the run's image size the way its data source resizes (Pillow bilinear for image folders,
antialiased bilinear otherwise), scaled to [0, 1] and standardised with the run's per-channel statistics, then the
EMA model, no augmentation. New feature vectors (a run on `data.name=features`) are read from a features file or
an array, checked to have the run's D, and standardised with the run's statistics. The head is the algorithm's
evaluation head (the balanced head for ACR and SeMi).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semi.data.layout import is_vector_shape, normalize, stat_tensors, to_model_layout
from semi.errors import CheckpointError, DataError, SemiError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
HEADS = ("standard", "balanced")


@dataclass
class LoadedModel:
    """A checkpoint's EMA model, ready to predict, and the preprocessing of its run."""

    model: nn.Module
    head: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_shape: tuple[int, ...]
    """(H, W, C) of the run's images, or (D,) for a run on feature vectors."""
    class_names: list[str]
    source: str
    device: torch.device
    channels_last: bool
    step: int
    config: dict[str, Any]


def load_model(checkpoint: str | Path, device: str = "auto", head: str | None = None) -> LoadedModel:
    """The EMA model of a `semi train` checkpoint. head: 'standard' or 'balanced'; None = the algorithm's own."""
    from semi.config import config_from_dict
    from semi.engine.assembly import model_for, predicting_model
    from semi.engine.checkpoint import load_checkpoint
    from semi.engine.runtime import resolve_device
    from semi.specs import base_spec

    path = Path(checkpoint)
    state = load_checkpoint(path)
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path} holds no run configuration (not written by `semi train`?)")
    cfg = config_from_dict(state["config"])
    pre = state.get("preprocessing")
    if pre is None:  # a checkpoint from before they were stored: recompute them from the run's data
        pre = _preprocessing_from_data(cfg)
    if head is not None and head not in HEADS:
        raise SemiError(f"head {head!r} is not allowed; allowed values: {', '.join(HEADS)}")
    head = head or pre.get("eval_head") or base_spec(cfg.algorithm.name).eval_head
    dev = resolve_device(device)
    shape = tuple(int(v) for v in pre["image_shape"])
    model = model_for(cfg, len(pre["class_names"]), shape[-1])
    try:
        model.load_state_dict(state["ema"]["module"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: the EMA model does not fit its own configuration: "
                              f"{str(exc).splitlines()[0]}") from None
    model = model.to(dev).eval()
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = predicting_model(cfg, model)  # e.g. CDMAD's test-time correction
    return LoadedModel(model, head, tuple(pre["mean"]), tuple(pre["std"]), shape,  # type: ignore[arg-type]
                       list(pre["class_names"]), pre.get("source", cfg.data.name), dev, cfg.train.channels_last,
                       int(state["step"]), state["config"])


def _preprocessing_from_data(cfg: Any) -> dict[str, Any]:
    from semi.data.prepare import prepare_data

    d = prepare_data(cfg)
    return {"mean": list(d.mean), "std": list(d.std), "image_shape": list(d.test_images.shape[1:]),
            "class_names": list(d.class_names), "source": cfg.data.name}


# ------------------------------------------------------------------------------------------------- reading


def collect_inputs(inputs: list[str | Path]) -> tuple[list[Path], Path | None]:
    """Image files (a folder adds its images, recursively, sorted), or one .npz file."""
    files: list[Path] = []
    npz = [Path(p) for p in inputs if str(p).endswith(".npz")]
    if npz:
        if len(inputs) != 1:
            raise DataError("give one .npz file, or image files and folders, not both")
        if not npz[0].is_file():
            raise DataError(f"{npz[0]} does not exist")
        return [], npz[0]
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise DataError(f"{item} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item} does not exist")
    if not files:
        raise DataError("no input images given")
    return files, None


def read_npz(path: Path) -> np.ndarray:
    """The images of an .npz: its only array, or one named x / images / x_test (uint8, or floats in [0, 1])."""
    from semi.data.decode import as_images

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in ("x", "images", "x_test") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(f"{path}: name the images array x, images or x_test (found {', '.join(keys)})")
            return as_images(z[key], path, key)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_images(files: list[Path], shape: tuple[int, int, int], source: str) -> np.ndarray:
    """Decode image files to uint8 (N, H, W, C) with the run's channels and size."""
    from semi.data.decode import open_image, to_8bit
    from semi.extras import require

    Image = require("PIL.Image", "predicting on image files")

    height, width, channels = shape
    out = np.empty((len(files), height, width, channels), dtype=np.uint8)
    for i, f in enumerate(files):
        with open_image(f) as im:
            try:
                im.load()
                img = to_8bit(im, gray=im.mode in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"))
                img = img.convert("L" if channels == 1 else "RGB")
                if img.size != (width, height) and source == "image_folder":  # as the image_folder source does
                    img = img.resize((width, height), Image.Resampling.BILINEAR)
            except Exception as exc:  # noqa: BLE001  (Pillow raises OSError, SyntaxError, zlib errors, ...)
                raise DataError(f"cannot decode image {f} (corrupt or truncated?): {type(exc).__name__}: {exc}") \
                    from None
            a = np.array(img).reshape(img.size[1], img.size[0], channels)  # a copy: torch wants writable arrays
        out[i] = fit_images(a[None], shape)[0]
    return out


def fit_images(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 NHWC images brought to the run's (H, W, C): channels converted, size resized as load_source does."""
    from semi.data.prepare import resize_images

    if images.ndim == 3:
        images = images[..., None]
    height, width, channels = shape
    if images.shape[-1] != channels:
        if channels == 1:  # ITU-R 601 luma, as Pillow's convert("L")
            images = np.rint(images[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114])[..., None].astype(np.uint8)
        else:
            images = np.repeat(images[..., :1], 3, axis=-1)
    return resize_images(np.ascontiguousarray(images), (height, width))


# ------------------------------------------------------------------------------------------------- predicting


@torch.no_grad()
def run_model(loaded: LoadedModel, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, K] of the chosen head, embeddings [N, D]) for uint8 NHWC images of the run's shape, or
    float vectors (N, D) of a features run."""
    mean, std = stat_tensors(loaded.mean, loaded.std, loaded.image_shape, loaded.device)
    probs, embs = [], []
    for i in range(0, len(images), batch_size):
        x = to_model_layout(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size]))).to(loaded.device)
        x = normalize(x, mean, std)
        if loaded.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = loaded.model(x)
        logits = out.logits if loaded.head == "standard" else out.logits_balanced
        probs.append(logits.float().softmax(1).cpu())
        embs.append(out.embedding.float().cpu())
    k = len(loaded.class_names)
    if not probs:
        return np.zeros((0, k), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(probs).numpy(), torch.cat(embs).numpy()


@dataclass
class Predictions:
    """One row per input: `sources` (file paths, or array indices), predicted class, its probability, top-k."""

    sources: list[str]
    probabilities: np.ndarray
    """[N, K] softmax of the head used."""
    class_names: list[str]
    head: str
    embeddings: np.ndarray | None = None

    @property
    def classes(self) -> np.ndarray:
        return self.probabilities.argmax(1)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[k] for k in self.classes]

    def top_k(self, k: int) -> np.ndarray:
        return np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]

    def to_csv(self, path: str | Path | None = None, k: int = 3) -> str:
        """source, class, probability, then top-k as class:probability pairs; written to path if given."""
        import csv
        import io

        k = min(k, len(self.class_names))
        buffer = io.StringIO()
        w = csv.writer(buffer, lineterminator="\n")
        w.writerow(["source", "class", "probability", *[f"top{j + 1}" for j in range(k)]])
        top = self.top_k(k)
        for i, src in enumerate(self.sources):
            p = self.probabilities[i]
            w.writerow([src, self.class_names[top[i, 0]], f"{p[top[i, 0]]:.6f}",
                        *[f"{self.class_names[c]}:{p[c]:.6f}" for c in top[i]]])
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def predict(loaded: LoadedModel, inputs: Any, batch_size: int = 256, embeddings: bool = False) -> Predictions:
    """inputs: image files and folders, one .npz path, or a uint8 array (N, H, W[, C]); for a model trained on
    feature vectors, one features file (.npz, .npy, .csv, .parquet) or a float array (N, D)."""
    if is_vector_shape(loaded.image_shape):
        images, sources = read_vectors(loaded, inputs)
    elif isinstance(inputs, np.ndarray):
        images, sources = fit_images(_as_uint8(inputs), loaded.image_shape), [str(i) for i in range(len(inputs))]
    else:
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        files, npz = collect_inputs(items)
        if npz is not None:
            raw = read_npz(npz)
            images, sources = fit_images(raw, loaded.image_shape), [str(i) for i in range(len(raw))]
        else:
            images, sources = read_images(files, loaded.image_shape, loaded.source), [str(f) for f in files]
    probs, emb = run_model(loaded, images, batch_size)
    return Predictions(sources, probs, loaded.class_names, loaded.head, emb if embeddings else None)


def read_vectors(loaded: LoadedModel, inputs: Any) -> tuple[np.ndarray, list[str]]:
    """The vectors to predict, checked against the run's D; their sources are the row numbers."""
    from semi.data.feature_files import check_vectors, read_prediction_vectors

    dim = loaded.image_shape[0]
    if isinstance(inputs, np.ndarray):
        x = check_vectors(inputs, Path("<array>"), "the input", dim)
    else:
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if len(items) != 1:
            raise DataError("a model trained on feature vectors takes one features file")
        label_column = loaded.config.get("data", {}).get("label_column", "label")
        x = read_prediction_vectors(Path(items[0]), dim, label_column)
    return x, [str(i) for i in range(len(x))]


def _as_uint8(x: np.ndarray) -> np.ndarray:
    from semi.data.decode import as_images

    return as_images(np.asarray(x), Path("<array>"), "images")


# ------------------------------------------------------------------------------------------------- export


class ExportedClassifier(nn.Module):
    """uint8 images (N, H, W, C), or float vectors (N, D) of a features run -> class probabilities (N, K) of the
    evaluation head; preprocessing built in."""

    def __init__(self, loaded: LoadedModel):
        super().__init__()
        self.model = loaded.model
        self.balanced = loaded.head == "balanced"
        self.channels_last = loaded.channels_last
        mean, std = stat_tensors(loaded.mean, loaded.std, loaded.image_shape)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = normalize(to_model_layout(inputs), self.mean, self.std)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        return (out.logits_balanced if self.balanced else out.logits).softmax(1)


def export_model(loaded: LoadedModel, out: str | Path) -> str:
    """Write a file that predicts with torch alone: torch.export (a .pt2 archive; load with torch.export.load(path)
    .module()), or TorchScript (torch.jit.load) if torch.export cannot trace the model. Returns the format used.
    Class names and the input shape travel inside, as the extra file `semi.json`."""
    out = Path(out)
    wrapper = ExportedClassifier(loaded).to("cpu").eval()
    shape = list(loaded.image_shape)
    vectors = len(shape) == 1
    example = torch.zeros(2, *shape, dtype=torch.float32 if vectors else torch.uint8)
    meta = json.dumps({"class_names": loaded.class_names, "image_shape": shape, "head": loaded.head,
                       "input": "float32 (N, D)" if vectors else "uint8 (N, H, W, C)",
                       "output": "probabilities (N, K)"})
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(wrapper, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(out), extra_files={"semi.json": meta})
        return "torch.export"
    except Exception as exc:  # noqa: BLE001  (torch.export raises many kinds; TorchScript is the fallback)
        import warnings

        warnings.warn(f"torch.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                      "writing TorchScript instead (load with torch.jit.load)", stacklevel=2)
        scripted = torch.jit.trace(wrapper, example)
        torch.jit.save(scripted, str(out), _extra_files={"semi.json": meta})
        return "torchscript"
