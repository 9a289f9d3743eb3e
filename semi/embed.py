"""`semi embed`: turn images or text into a features file with an encoder whose weights are on disk.

Encoders (`--encoder`), none of which downloads anything:
- `semi:CHECKPOINT`: a `semi train` checkpoint's EMA backbone, its inputs prepared as its run's evaluation does;
- `torchvision:<name>` with `--weights FILE` (a state dict saved from `torchvision.models.<name>()`): its
  classifier (`fc`, `classifier` or `heads`) replaced by the identity, so the pooled features come out; images are
  resized to `--image-size` (default 224) and standardised with ImageNet's statistics;
- `timm:<name>` with `--weights FILE`: a timm model without its classifier (the timm extra), prepared the same way;
- `sentence-transformers:<DIR>`: a sentence-transformers model saved in a local directory (the text extra).

Inputs: an image folder in the image_folder source's layouts (`train/<class>/`, `test/<class>/`, or `<class>/`
with the last 20% of each class held out), written as `x`, `y`, `x_test`, `y_test`, `class_names`; or a text
file, one example a line, either `label<TAB>text` (written as `x`, `y` with string labels) or plain text (written
as `x` alone, for `semi predict`). The output is an `.npz` that `data.name=features` reads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from semi.errors import DataError, SemiError
from semi.extras import require
from semi.files import atomic_write_bytes

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLASSIFIER_NAMES = ("fc", "classifier", "heads", "head")
ENCODER_KINDS = ("semi", "torchvision", "timm", "sentence-transformers")


def split_encoder(spec: str) -> tuple[str, str]:
    kind, sep, name = spec.partition(":")
    if not sep or kind not in ENCODER_KINDS or not name:
        raise SemiError(f"--encoder {spec!r}: expected one of {', '.join(k + ':...' for k in ENCODER_KINDS)}")
    return kind, name


# ------------------------------------------------------------------------------------------------- inputs


def read_text(path: Path) -> tuple[list[str], list[str] | None]:
    """Lines of a text file: (texts, labels) for `label<TAB>text` lines, (texts, None) for plain lines."""
    try:
        lines = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as UTF-8 text: {exc}") from None
    if not lines:
        raise DataError(f"{path} holds no text (one example a line)")
    tabbed = ["\t" in line for line in lines]
    if all(tabbed):
        labels, texts = zip(*(line.split("\t", 1) for line in lines))
        return list(texts), [lab.strip() for lab in labels]
    if any(tabbed):
        first = tabbed.index(False) if tabbed[0] else tabbed.index(True)
        raise DataError(f"{path}: line {first + 1} differs from line 1: either every line is label<TAB>text, or none")
    return lines, None


def read_image_folder(path: Path) -> dict[str, Any]:
    """Files, labels and class names of an image folder (the image_folder source's layouts)."""
    from semi.data.sources.user import list_image_folder

    train, test, names = list_image_folder(path)
    return {"train": train, "test": test, "class_names": names}


# ------------------------------------------------------------------------------------------------- encoders


def _image_encoder(kind: str, name: str, weights: Path | None):
    import torch
    from torch import nn

    if weights is None:
        raise SemiError(f"--encoder {kind}:{name} needs --weights FILE (a state dict on disk; nothing is downloaded)")
    if kind == "torchvision":
        models = require("torchvision.models", f"--encoder torchvision:{name}")
        if not hasattr(models, name):
            raise SemiError(f"--encoder torchvision:{name}: torchvision.models has no {name!r}")
        net = getattr(models, name)(weights=None)
    else:
        timm = require("timm", f"--encoder timm:{name}")
        net = timm.create_model(name, pretrained=False)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except Exception as exc:  # noqa: BLE001  (a missing file, pickled code, keys of another model)
        raise SemiError(f"--weights {weights}: not the weights of {kind}:{name}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    if kind == "timm":
        net.reset_classifier(0)
    else:
        for attr in CLASSIFIER_NAMES:
            if isinstance(getattr(net, attr, None), nn.Module):
                setattr(net, attr, nn.Identity())
                break
    return net.eval()


def _embed_images(net: Any, files: list[Path], size: int, batch_size: int) -> np.ndarray:
    import torch

    from semi.data.sources.user import load_images

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            x = torch.from_numpy(load_images(files[i:i + batch_size], size)).permute(0, 3, 1, 2).float() / 255
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)  # greyscale into an RGB encoder
            out.append(net((x - mean) / std).flatten(1).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _embed_with_checkpoint(checkpoint: str, files: list[Path], batch_size: int) -> np.ndarray:
    from semi.inference import load_model, read_images, run_model

    loaded = load_model(checkpoint, "cpu")
    if len(loaded.image_shape) != 3:
        raise SemiError(f"--encoder semi:{checkpoint}: that run trained on feature vectors, not images")
    images = read_images(files, loaded.image_shape, loaded.source)  # type: ignore[arg-type]
    return run_model(loaded, images, batch_size)[1]


def _embed_text(model_dir: str, texts: list[str], batch_size: int) -> np.ndarray:
    st = require("sentence_transformers", "--encoder sentence-transformers:DIR")
    if not Path(model_dir).is_dir():
        raise SemiError(f"--encoder sentence-transformers:{model_dir}: not a directory (a model saved with "
                        "SentenceTransformer.save)")
    model = st.SentenceTransformer(model_dir, device="cpu")
    return np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True), dtype=np.float32)


# ------------------------------------------------------------------------------------------------- the command


def embed(inputs: str | Path, encoder: str, out: str | Path, weights: str | Path | None = None,
          image_size: int = 224, batch_size: int = 64) -> dict[str, tuple[int, ...]]:
    """Write the features file; returns the shape of each array written."""
    kind, name = split_encoder(encoder)
    inputs, out = Path(inputs), Path(out)
    if not inputs.exists():
        raise DataError(f"{inputs} does not exist")
    weights_path = Path(weights).expanduser() if weights is not None else None
    if weights_path is not None and not weights_path.is_file():
        raise SemiError(f"--weights {weights_path} is not a file")
    arrays: dict[str, np.ndarray] = {}
    if kind == "sentence-transformers":
        if inputs.is_dir():
            raise DataError(f"{inputs}: a text encoder takes a text file, one example a line")
        texts, labels = read_text(inputs)
        arrays["x"] = _embed_text(name, texts, batch_size)
        if labels is not None:
            arrays["y"] = np.array(labels)
    else:
        if not inputs.is_dir():
            raise DataError(f"{inputs}: an image encoder takes a folder of class folders of images")
        found = read_image_folder(inputs)
        if kind == "semi":
            def run(files: list[Path]) -> np.ndarray:
                return _embed_with_checkpoint(name, files, batch_size)
        else:
            net = _image_encoder(kind, name, weights_path)

            def run(files: list[Path]) -> np.ndarray:
                return _embed_images(net, files, image_size, batch_size)
        for part, key in (("train", ""), ("test", "_test")):
            pairs = found[part]
            arrays["x" + key] = run([f for f, _ in pairs])
            arrays["y" + key] = np.array([label for _, label in pairs], dtype=np.int64)
        arrays["class_names"] = np.array(found["class_names"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return {k: tuple(v.shape) for k, v in arrays.items()}
