"""scikit-learn's 8x8 digits: the embedded default data set (ships with scikit-learn, no download).

1797 images, 10 classes. There is no official test split, so the last 50 images of each class (in data
order) are the balanced test set and the rest (about 130 per class) are the training pool. Images are scaled
from 0..16 to 0..255 and upsampled to 16x16 (bilinear) so that crops, rotations and Cutout have pixels to act on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semi.data.sources.base import ImageData, register_source

TEST_PER_CLASS = 50
SIZE = 16


@register_source("digits")
def load_digits(root: Path, cfg: object) -> ImageData:
    import torch  # here, not at the top: importing the sources must not load torch (fast config errors)
    import torch.nn.functional as F
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = bunch.target.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    for k in range(10):
        test[np.flatnonzero(labels == k)[-TEST_PER_CLASS:]] = True
    return ImageData(images[~test], labels[~test], images[test], labels[test],
                     class_names=[str(k) for k in range(10)])
