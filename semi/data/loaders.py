"""Batches as a pure function of (seed, rank, step): exact resume and distinct per-rank streams for free.

`StepBatches[t]` is the whole training batch of step t: B labeled images (weak view) and mu*B unlabeled
images with one weak and two strong views, as uint8 tensors (normalised on the device by the trainer); for feature
data, float vectors and their views (`semi.data.vector_views`). The
sampling is epoch-based without replacement: global position p = (t * world + rank) * B in an endless sequence
of seeded permutations, so every image is seen once per pass and any step can be rebuilt from scratch. The
augmentation of step t draws from a generator seeded from (seed, rank, t), so the stream does not depend on the
number of data loader workers or on where a run was resumed.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from semi.config import DataConfig
from semi.data.augment import Augmenter
from semi.data.layout import to_model_layout
from semi.data.prepare import PreparedData
from semi.data.vector_views import VectorViews
from semi.seeds import mix_seed

_LABELED, _UNLABELED, _AUGMENT = 1, 2, 3


class EpochSampler:
    """Positions in an endless sequence of seeded permutations of n items (caches the current one)."""

    def __init__(self, n: int, seed: int, stream: int):
        self.n, self.seed, self.stream = n, seed, stream
        self._cache: tuple[int, Tensor] | None = None

    def permutation(self, epoch: int) -> Tensor:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.stream, epoch))
            self._cache = (epoch, torch.randperm(self.n, generator=g))
        return self._cache[1]

    def take(self, start: int, count: int) -> Tensor:
        out, pos = [], start
        while count > 0:
            epoch, offset = divmod(pos, self.n)
            chunk = self.permutation(epoch)[offset:offset + count]
            out.append(chunk)
            pos += len(chunk)
            count -= len(chunk)
        return torch.cat(out)


NO_FLIP_SOURCES = frozenset({"digits", "mnist", "svhn"})
"""Sources whose classes are not mirror-symmetric: no horizontal flip unless data.hflip says so."""


def augmenter_for(data_cfg: DataConfig, data: PreparedData | None = None) -> Augmenter | VectorViews:
    """The weak/strong views of a run: for images FixMatch's (flips by source unless set, Cutout size); for
    feature vectors (`data` given and holding vectors) noise and SCARF corruption drawn from the training rows, or
    the file's offline views."""
    if data is not None and data.is_vector:
        rows = np.union1d(data.split.labeled, data.split.unlabeled)
        return VectorViews(torch.from_numpy(data.images[rows]), torch.tensor(data.std), data_cfg.feature_noise,
                           data_cfg.feature_corruption)
    hflip = data_cfg.hflip if data_cfg.hflip is not None else data_cfg.name not in NO_FLIP_SOURCES
    return Augmenter(hflip=hflip, cutout_frac=data_cfg.cutout)


class StepBatches(Dataset):
    def __init__(self, data: PreparedData, batch_size: int, mu: int, seed: int, total_steps: int,
                 use_unlabeled: bool = True, true_labels: bool = False, rank: int = 0, world_size: int = 1,
                 augmenter: Augmenter | VectorViews | None = None, augment: bool = True):
        # what the views are made from: N, C, H, W uint8 images, N, D vectors, or N, K, D offline vector views
        stored = data.views if data.views is not None else data.images
        self.images = to_model_layout(torch.from_numpy(stored)).contiguous()
        labels = torch.from_numpy(data.labels)
        split = data.split
        labeled = torch.from_numpy(data.labeled_indices(true_labels))  # oracle: the pool's known labels too
        self.labeled_idx, self.labels = labeled, labels
        self.unlabeled_idx = torch.from_numpy(split.unlabeled)
        is_labeled = torch.zeros(len(labels), dtype=torch.bool)
        is_labeled[torch.from_numpy(split.labeled)] = True
        self.is_labeled = is_labeled
        self.batch_size, self.mu, self.seed, self.total_steps = batch_size, mu, seed, total_steps
        self.use_unlabeled = use_unlabeled
        self.rank, self.world_size = rank, world_size
        self.augmenter = augmenter or Augmenter()
        self.augment = augment
        """False: batches carry the raw images and the step's augmentation seed (`raw_batch`); the trainer augments
        them on its device with `augment_batch`, drawing exactly what this loader would have drawn."""
        self.labeled_sampler = EpochSampler(len(self.labeled_idx), seed, _LABELED)
        self.unlabeled_sampler = EpochSampler(len(self.unlabeled_idx), seed, _UNLABELED)

    def __len__(self) -> int:
        return self.total_steps

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        seed = mix_seed(self.seed, _AUGMENT, self.rank, step)
        b = self.batch_size
        pos = (step * self.world_size + self.rank) * b
        idx_l = self.labeled_idx[self.labeled_sampler.take(pos, b)]
        batch = {"x_l": self.images[idx_l], "y_l": self.labels[idx_l], "augment_seed": torch.tensor(seed)}
        if self.use_unlabeled:
            n = self.mu * b
            pos_u = self.unlabeled_sampler.take((step * self.world_size + self.rank) * n, n)  # rows of the pool
            idx_u = self.unlabeled_idx[pos_u]
            batch.update(u_raw=self.images[idx_u], u_y=self.labels[idx_u], u_is_labeled=self.is_labeled[idx_u],
                         u_idx=idx_u, u_pos=pos_u)
        return augment_batch(batch, self.augmenter) if self.augment else batch


def augment_batch(batch: dict[str, Tensor], augmenter: Augmenter | VectorViews) -> dict[str, Tensor]:
    """A raw batch (`x_l` and `u_raw` un-augmented, on any device, and the step's `augment_seed`) -> the step's
    views: `x_l` weak, `u_w`, `u_s1`, `u_s2` from `u_raw`. The draws come from a CPU generator seeded by the step
    (the augmentation ops move their parameters to the images' device), so the views are the same on any device."""
    out = dict(batch)
    gen = torch.Generator().manual_seed(int(out.pop("augment_seed")))
    out["x_l"] = augmenter.weak(out["x_l"], gen)
    if "u_raw" in out:
        out["u_w"], out["u_s1"], out["u_s2"] = augmenter.views(out.pop("u_raw"), gen)
    return out


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers augment whole batches; one thread each avoids oversubscription
    # Ctrl-C (and a signal to the process group) must not kill the workers while the main process saves a
    # checkpoint and exits cleanly: it ends them itself. Their own process group keeps group-wide signals away;
    # a signal sent to a worker's own pid (DataLoader's terminate() included) still works.
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(batches: StepBatches, start_step: int, num_workers: int, prefetch: int, pin_memory: bool):
    """Iterate steps start_step .. total-1. Workers prefetch whole batches; results do not depend on their count.
    One pass covers the whole run, so the workers live as long as training (persistent in effect)."""
    if num_workers == 0:
        return (batches[t] for t in range(start_step, len(batches)))
    return iter(DataLoader(batches, batch_size=None, sampler=range(start_step, len(batches)),
                           num_workers=num_workers, prefetch_factor=prefetch, pin_memory=pin_memory,
                           worker_init_fn=_worker_init, persistent_workers=False,
                           # its own generator: the workers' base seed must not draw from the global RNG, which
                           # a resumed run restores before this call and a fresh run does not
                           generator=torch.Generator(),
                           multiprocessing_context="fork" if torch.multiprocessing.get_start_method(True) in (
                               None, "fork") else None))
