"""Backbones by name, each wrapped in the two-headed classifier (embedding, standard head g1, balanced head g2).

A backbone builder is registered under the name `model.name` takes in the config:

    @register_model("my_net")
    def _my_net(cfg: ModelConfig, in_channels: int) -> nn.Module: ...   # must set `.embed_dim`

(`in_channels` is the image channel count, or the vector dimension D for a model of feature vectors.)

and `build_model(cfg.model, num_classes, in_channels)` returns the wrapped DualHeadClassifier.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from semi.config import TIMM_PREFIX, ModelConfig
from semi.errors import SemiError
from semi.models.heads import DualHeadClassifier, ModelOutput
from semi.models.mlp import MLP
from semi.models.resnet import ResNet50
from semi.models.small_cnn import SmallCNN
from semi.models.wrn import WideResNet

BackboneBuilder = Callable[[ModelConfig, int], nn.Module]
"""(model config, input channels) -> backbone with an `embed_dim` attribute; the heads are added outside."""

_REGISTRY: dict[str, tuple[BackboneBuilder, bool]] = {}


def register_model(name: str, head_dropout: bool = False) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a backbone builder under `name`. `head_dropout`: apply cfg.dropout to the heads' input (for
    backbones that have no dropout of their own)."""

    def wrap(fn: BackboneBuilder) -> BackboneBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = (fn, head_dropout)
        return fn

    return wrap


def model_names() -> list[str]:
    return sorted(_REGISTRY)


@register_model("small_cnn", head_dropout=True)
def _small_cnn(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return SmallCNN(in_channels, cfg.width or 32)


@register_model("mlp")
def _mlp(cfg: ModelConfig, in_features: int) -> nn.Module:
    return MLP(in_features, cfg.width or 256, cfg.depth, cfg.dropout, cfg.norm)


@register_model("wrn28_2")
def _wrn28_2(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return WideResNet(in_channels, 28, 2, cfg.bn_momentum, cfg.dropout)


@register_model("wrn28_8")
def _wrn28_8(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return WideResNet(in_channels, 28, 8, cfg.bn_momentum, cfg.dropout)


@register_model("resnet50", head_dropout=True)
def _resnet50(cfg: ModelConfig, in_channels: int) -> nn.Module:
    # build_model is not told the image size; ImageNet-127 runs here at 32 or 64 px, so always the small stem.
    return ResNet50(in_channels, small_input=True)


def build_model(cfg_model: ModelConfig, num_classes: int, in_channels: int,
                extra_heads: int = 0, bn_branches: int = 0, rotation_head: bool = False) -> DualHeadClassifier:
    """The named backbone plus heads g1, g2 and `extra_heads` more (nn.Linear(embed_dim, num_classes) each,
    xavier-normal, zero bias). `extra_heads`: what the algorithm declares (`Algorithm.extra_heads`);
    `bn_branches`: BatchNorm branches before pooling (CPE's classwise BatchNorm; small_cnn, wrn28_*, mlp);
    `rotation_head`: a 4-way rotation classifier on the embedding (ReMixMatch), as `ModelOutput.rotation`."""
    if num_classes < 1 or in_channels < 1:
        raise SemiError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    if cfg_model.name.startswith(TIMM_PREFIX):
        from semi.models.timm_backbone import TimmBackbone

        backbone, head_dropout = TimmBackbone(cfg_model.name[len(TIMM_PREFIX):], in_channels, cfg_model.dropout), False
    elif cfg_model.name in _REGISTRY:
        builder, head_dropout = _REGISTRY[cfg_model.name]
        backbone = builder(cfg_model, in_channels)
    else:
        raise SemiError(f"unknown model {cfg_model.name!r}; available: {', '.join(model_names())}, timm:<name>")
    if bn_branches and not hasattr(backbone, "feature_map"):
        raise SemiError(f"model.name={cfg_model.name} has no map before its pooling for BatchNorm branches "
                        "(CPE's classwise BatchNorm): use small_cnn, wrn28_2, wrn28_8 or mlp")
    return DualHeadClassifier(backbone, backbone.embed_dim, num_classes,
                              head_dropout=cfg_model.dropout if head_dropout else 0.0, extra_heads=extra_heads,
                              bn_branches=bn_branches, rotation_head=rotation_head)


__all__ = ["build_model", "register_model", "model_names", "DualHeadClassifier", "ModelOutput"]
