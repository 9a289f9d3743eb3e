"""Pretrained weights into a backbone (`model.pretrained=PATH`): from a `semi` checkpoint or a plain state dict.

The file is read with `torch.load(weights_only=True)` (tensors and plain types only). What is taken from it:
- a `semi` checkpoint: its EMA model's `backbone.*` tensors (the heads are never loaded: the class count may
  differ, and a fresh head is what fine-tuning expects);
- a dict holding `state_dict` or `model`: that dict; otherwise the file's dict itself.
Keys may carry a `module.` (DDP) or `backbone.` prefix; a backbone that wraps another model (timm's, the
torchvision ResNet-50) also takes that model's own state dict. Every tensor of the backbone must be found with its
shape; keys the backbone lacks (a torchvision `fc.*`, a timm classifier) are ignored and counted.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from semi.errors import SemiError

PREFIXES = ("module.", "backbone.", "_orig_mod.")


def _tensors(state: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict) and isinstance(state.get("ema"), dict) and "config" in state:  # a semi checkpoint
        module = state["ema"].get("module", {})
        return {k[len("backbone."):]: v for k, v in module.items() if k.startswith("backbone.")}
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise SemiError(f"model.pretrained: {path} holds no state dict of tensors")
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            while key.startswith(PREFIXES):
                key = key[next(len(p) for p in PREFIXES if key.startswith(p)):]
            out[key] = value
    return out


def load_pretrained(backbone: nn.Module, path: str | Path) -> tuple[int, int]:
    """Copy the file's tensors into `backbone`; returns (tensors loaded, tensors of the file ignored)."""
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (not a torch file, pickled code, truncated)
        raise SemiError(f"model.pretrained: cannot read {path} as tensors only: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    found = _tensors(state, path)
    # a wrapped net (timm models, the torchvision ResNet-50) also takes the inner model's own state dict
    targets = [backbone] + [m for m in (getattr(backbone, "net", None),) if isinstance(m, nn.Module)]
    target = next((m for m in targets if all(k in found for k in m.state_dict())), backbone)
    own = target.state_dict()
    missing = [k for k in own if k not in found]
    if missing:
        raise SemiError(f"model.pretrained: {path} lacks {len(missing)} of the backbone's {len(own)} tensors "
                        f"(first: {', '.join(missing[:4])}); is it a checkpoint of this model.name?")
    wrong = [f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if found[k].shape != v.shape]
    if wrong:
        raise SemiError(f"model.pretrained: {path} has tensors of other shapes than the backbone (file vs model): "
                        f"{'; '.join(wrong[:3])}")
    target.load_state_dict({k: found[k] for k in own})
    return len(own), len(found) - len(own)
