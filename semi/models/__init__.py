"""Backbones by name, each wrapped in the two-headed classifier (embedding, standard head, balanced head)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from semi.config import ModelConfig
from semi.errors import SemiError
from semi.models.heads import DualHeadClassifier, ModelOutput
from semi.models.resnet import ResNet50
from semi.models.small_cnn import SmallCNN
from semi.models.wrn import WideResNet

_BACKBONES: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "small_cnn": lambda cfg, c: SmallCNN(c, cfg.width, cfg.dropout),
    "wrn28_2": lambda cfg, c: WideResNet(c, 28, 2, cfg.bn_momentum, cfg.dropout),
    "wrn28_8": lambda cfg, c: WideResNet(c, 28, 8, cfg.bn_momentum, cfg.dropout),
    "resnet50": lambda cfg, c: ResNet50(c),
}


def model_names() -> list[str]:
    return sorted(_BACKBONES)


def build_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> DualHeadClassifier:
    if cfg.name not in _BACKBONES:
        raise SemiError(f"unknown model {cfg.name!r}; available: {', '.join(model_names())}")
    backbone = _BACKBONES[cfg.name](cfg, in_channels)
    model = DualHeadClassifier(backbone, backbone.embed_dim, num_classes)
    for head in (model.head, model.head_balanced):
        nn.init.xavier_normal_(head.weight)
        nn.init.zeros_(head.bias)
    return model


__all__ = ["build_model", "model_names", "DualHeadClassifier", "ModelOutput"]
