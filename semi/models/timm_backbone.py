"""Any timm model as a backbone (`model.name=timm:<name>`, the timm extra): built without its classifier
(num_classes=0, so it returns pooled features) and with the run's input channels. Weights are random unless
`model.pretrained` names a local weights file (nothing is downloaded)."""

from __future__ import annotations

from torch import Tensor, nn

from semi.extras import require


class TimmBackbone(nn.Module):
    def __init__(self, name: str, in_channels: int, drop_rate: float = 0.0):
        super().__init__()
        timm = require("timm", f"model.name=timm:{name}")
        try:
            self.net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels,
                                         drop_rate=drop_rate)
        except RuntimeError as exc:  # timm's "Unknown model"
            from semi.errors import SemiError

            raise SemiError(f"model.name=timm:{name}: {exc}") from None
        self.embed_dim = int(self.net.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
