"""Batched augmentation: reproducibility, shapes, and each op against PIL or a slow per-image reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from semi.data import augment as A


def _images(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random images plus a few awkward ones (low contrast, two-valued, constant, skewed histogram)."""
    x = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    if n >= 5:
        x[1] = x[1] // 4 + 60
        x[2] = (x[2] > 128).to(torch.uint8) * 200 + 10
        x[3] = 7
        x[4].view(-1)[: x[4].numel() // 3] = 10
        x[4].view(-1)[x[4].numel() // 3:] = 200
    return x


def _to_pil(x: torch.Tensor) -> list[Image.Image]:
    arr = x.permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


def _from_pil(images: list[Image.Image], c: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(im).copy()).reshape(im.size[1], im.size[0], c).permute(2, 0, 1)
                        for im in images])


def _fill(c: int) -> int | tuple[int, ...]:
    return (128,) * c if c == 3 else 128


# ---------------------------------------------------------------------------------------------- API-level


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("size", [16, 28, 32, 64])
def test_shapes_dtypes(c, size):
    x = _images(6, c, size)
    aug = A.Augmenter()
    gen = torch.Generator().manual_seed(0)
    views = (aug.weak(x, gen), aug.strong(x, gen), *aug.views(x, gen))
    for v in views:
        assert v.shape == x.shape and v.dtype == torch.uint8 and v.device == x.device


def test_same_seed_same_output_different_seed_different():
    x = _images(16, 3, 32)
    aug = A.Augmenter()
    a = aug.views(x, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # global RNG state must not matter
    b = aug.views(x, torch.Generator().manual_seed(5))
    c = aug.views(x, torch.Generator().manual_seed(6))
    for u, v, w in zip(a, b, c):
        assert torch.equal(u, v)
        assert not torch.equal(u, w)
    assert not torch.equal(a[1], a[2])  # the two strong views are independent


def test_does_not_modify_input():
    x = _images(8, 3, 32)
    before = x.clone()
    A.Augmenter().views(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, before)


def test_normalize():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    aug = A.Augmenter(mean=(0.5, 0.5, 0.2), std=(0.5, 0.25, 0.1))
    out = aug.normalize(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-1.0, 2.0, 0.0]), atol=1e-6)
    assert torch.allclose(A.Augmenter().normalize(x), x.float() / 255)
    assert torch.allclose(A.to_float(x[:, :1], (0.5,), (0.5,)), torch.full((2, 1, 2, 2), -1.0))


# ---------------------------------------------------------------------------------------------- weak


def _is_flip_crop(img: np.ndarray, out: np.ndarray, pad: int) -> bool:
    """Slow reference: is `out` some crop of the reflect-padded, possibly flipped `img` (C, H, W)?"""
    h, w = img.shape[1:]
    for src in (img, img[:, :, ::-1]):
        padded = np.pad(src, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.array_equal(padded[:, dy:dy + h, dx:dx + w], out):
                    return True
    return False


@pytest.mark.parametrize("c,size", [(3, 32), (1, 28), (1, 16)])
def test_weak_is_a_crop_of_the_padded_flipped_image(c, size):
    x = _images(8, c, size, seed=1)
    out = A.weak(x, torch.Generator().manual_seed(2))
    pad = round(0.125 * size)
    for img, o in zip(x.numpy(), out.numpy()):
        assert _is_flip_crop(img, o, pad)


def test_flip_crop_exact_offsets():
    x = _images(4, 3, 32)
    pad = 4
    n = len(x)
    centre = torch.full((n,), pad)
    assert torch.equal(A.flip_crop(x, torch.zeros(n, dtype=torch.bool), centre, centre, pad), x)
    assert torch.equal(A.flip_crop(x, torch.ones(n, dtype=torch.bool), centre, centre, pad), x.flip(3))
    flip = torch.tensor([True, False, True, False])
    dy, dx = torch.tensor([0, 8, 3, 5]), torch.tensor([8, 0, 1, 4])
    out = A.flip_crop(x, flip, dy, dx, pad)
    for i in range(n):
        src = x[i].numpy()[:, :, ::-1] if flip[i] else x[i].numpy()
        ref = np.pad(src, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")[:, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        assert np.array_equal(out[i].numpy(), ref)


def test_weak_uses_all_offsets_and_flips():
    x = torch.arange(16 * 16).remainder(251).to(torch.uint8).view(1, 1, 16, 16).expand(400, 1, 16, 16)
    out = A.weak(x.contiguous(), torch.Generator().manual_seed(0))
    assert len({o.numpy().tobytes() for o in out}) > 40  # 2 flips x 5 x 5 offsets, most should appear


# ---------------------------------------------------------------------------------------------- cutout


def test_cutout_fully_inside_is_exact_square():
    x = torch.randint(0, 100, (3, 3, 32, 32), dtype=torch.uint8)
    cy, cx = torch.tensor([16, 8, 24]), torch.tensor([16, 10, 20])
    out = A.cutout(x, cy, cx, 16)
    for i in range(3):
        mask = (out[i] == 127).all(0)
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert len(rows) == 16 and len(cols) == 16 and mask.sum() == 256
        assert rows[0] == cy[i] - 8 and cols[0] == cx[i] - 8
        assert torch.equal(out[i][:, ~mask], x[i][:, ~mask])


def test_cutout_clipped_at_border():
    x = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    out = A.cutout(x, torch.tensor([2]), torch.tensor([31]), 16)
    assert (out == 127).sum() == (2 + 8) * (32 - (31 - 8))  # rows 0..9, columns 23..31


@pytest.mark.parametrize("size", [16, 28, 32])
def test_random_cutout_side(size):
    x = torch.zeros(200, 1, size, size, dtype=torch.uint8)
    out = A.random_cutout(x, torch.Generator().manual_seed(0))
    counts = (out == 127).flatten(1).sum(1)
    side = round(0.5 * size)
    assert counts.max() == side * side and counts.min() > 0


# ---------------------------------------------------------------------------------------------- point ops


def test_solarize_and_posterize_exact():
    x = torch.arange(256, dtype=torch.int64).to(torch.uint8).view(1, 1, 16, 16).repeat(4, 3, 1, 1)
    thresholds = torch.tensor([256, 128, 1, 0])
    out = A.solarize(x, thresholds)
    for i, t in enumerate(thresholds.tolist()):
        ref = torch.where(x[i].int() >= t, 255 - x[i].int(), x[i].int())
        assert torch.equal(out[i].int(), ref)
    bits = torch.tensor([8, 7, 4, 1])
    out = A.posterize(x, bits)
    for i, b in enumerate(bits.tolist()):
        assert torch.equal(out[i].int(), x[i].int() // 2 ** (8 - b) * 2 ** (8 - b))


@pytest.mark.parametrize("c", [1, 3])
def test_equalize_and_autocontrast_match_pil(c):
    x = _images(8, c, 32)
    ims = _to_pil(x)
    assert torch.equal(A.equalize(x), _from_pil([ImageOps.equalize(i) for i in ims], c))
    assert torch.equal(A.autocontrast(x), _from_pil([ImageOps.autocontrast(i) for i in ims], c))


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("name,enhancer", [("brightness", ImageEnhance.Brightness), ("color", ImageEnhance.Color),
                                           ("contrast", ImageEnhance.Contrast),
                                           ("sharpness", ImageEnhance.Sharpness)])
def test_blends_match_pil(c, name, enhancer):
    x = _images(8, c, 32)
    factors = torch.linspace(0.05, 0.95, len(x), dtype=torch.float64)
    out = getattr(A, name)(x, factors)
    ref = _from_pil([enhancer(im).enhance(float(f)) for im, f in zip(_to_pil(x), factors)], c)
    assert (out.int() - ref.int()).abs().max() <= 1


def test_color_is_identity_for_grayscale():
    x = _images(5, 1, 16)
    assert torch.equal(A.color(x, 0.1), x)


# ---------------------------------------------------------------------------------------------- geometry


def test_zero_geometry_is_identity():
    x = _images(6, 3, 32)
    assert torch.equal(A.rotate(x, 0.0), x)
    assert torch.equal(A.shear_x(x, 0.0), x)
    assert torch.equal(A.translate_y(x, 0.0), x)


def test_translate_exact():
    x = _images(2, 1, 16)
    out = A.translate_x(x, torch.tensor([3.0, -2.0]))
    assert torch.equal(out[0, :, :, :13], x[0, :, :, 3:]) and (out[0, :, :, 13:] == 128).all()
    assert torch.equal(out[1, :, :, 2:], x[1, :, :, :14]) and (out[1, :, :, :2] == 128).all()


@pytest.mark.parametrize("c", [1, 3])
def test_geometry_matches_pil(c):
    x = _images(6, c, 32)
    ims = _to_pil(x)
    fill = _fill(c)
    cases = [
        (A.rotate(x, 17.0), [im.rotate(17, fillcolor=fill) for im in ims]),
        (A.rotate(x, -27.0), [im.rotate(-27, fillcolor=fill) for im in ims]),
        (A.shear_x(x, 0.27), [im.transform(im.size, Image.AFFINE, (1, 0.27, 0, 0, 1, 0), fillcolor=fill)
                              for im in ims]),
        (A.shear_y(x, -0.21), [im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.21, 1, 0), fillcolor=fill)
                               for im in ims]),
        (A.translate_x(x, -7.0), [im.transform(im.size, Image.AFFINE, (1, 0, -7, 0, 1, 0), fillcolor=fill)
                                  for im in ims]),
    ]
    for out, ref in cases:
        mismatch = (out != _from_pil(ref, c)).float().mean()
        assert mismatch <= 0.01  # only exact rounding ties may differ


def test_op_parameters_follow_fixmatch():
    v = torch.arange(1, 10)
    plus = torch.ones(9)
    assert A.op_parameter("posterize", v, plus, 32, 32).tolist() == [int(i * 4 / 10) + 4 for i in range(1, 10)]
    assert A.op_parameter("solarize", v, plus, 32, 32).tolist() == [256 - int(i * 256 / 10) for i in range(1, 10)]
    assert A.op_parameter("rotate", v, -plus, 32, 32).tolist() == [-int(i * 30 / 10) for i in range(1, 10)]
    assert A.op_parameter("translate_x", v, -plus, 32, 32).tolist() == [int(-(i * 0.3 / 10) * 32) for i in range(1, 10)]
    assert torch.allclose(A.op_parameter("contrast", v, plus, 32, 32), v.double() * 0.9 / 10 + 0.05)
    assert torch.allclose(A.op_parameter("shear_y", v, -plus, 32, 32), -v.double() * 0.03)


# ---------------------------------------------------------------------------------------------- RandAugmentMC


@pytest.mark.parametrize("c", [1, 3])
def test_rand_augment_matches_per_image_reference(c):
    """Grouping images by op type must equal applying each image's two ops one image at a time."""
    n = 64
    x = _images(n, c, 32, seed=3)
    out = A.rand_augment_mc(x, torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)  # replay the draws in the documented order
    ops = torch.randint(0, len(A.OPS), (n, 2), generator=gen)
    mags = torch.randint(1, 10, (n, 2), generator=gen)
    apply = torch.rand(n, 2, generator=gen) < 0.5
    signs = torch.where(torch.rand(n, 2, generator=gen) < 0.5, -1.0, 1.0)
    for i in range(n):
        img = x[i:i + 1]
        for s in range(2):
            if apply[i, s]:
                img = A.apply_op(img, A.OPS[int(ops[i, s])], mags[i, s:s + 1], signs[i, s:s + 1])
        assert torch.equal(out[i:i + 1], img), (i, ops[i], apply[i])


def test_strong_changes_images():
    x = _images(32, 3, 32)
    out = A.strong(x, torch.Generator().manual_seed(0))
    assert ((out == 127).all(1).flatten(1).sum(1) > 0).all()  # every image has a cutout
    assert (out != x).flatten(1).any(1).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = _images(32, 3, 32)
    cpu = A.Augmenter().views(x, torch.Generator().manual_seed(4))
    gpu = A.Augmenter().views(x.cuda(), torch.Generator().manual_seed(4))
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda" and torch.equal(a, b.cpu())


def test_loader_workers_leave_the_global_rng_alone(tiny_config):
    """Starting the workers must not draw from the global RNG: a resumed run restores that RNG before starting
    them and a fresh run does not, so a draw would make the two runs differ from then on."""
    from semi.data.loaders import StepBatches, make_loader
    from semi.data.prepare import prepare_data

    cfg = tiny_config()
    batches = StepBatches(prepare_data(cfg), 8, 1, 0, 4)
    before = torch.get_rng_state()
    loader = make_loader(batches, 0, num_workers=1, prefetch=2, pin_memory=False)
    next(loader)
    assert torch.equal(torch.get_rng_state(), before)
    del loader


def test_flips_off_by_source_and_cutout_size():
    """Digits, MNIST and SVHN are not flipped (a mirrored digit is another glyph); with flips off the weak view is
    the same crop of the unflipped image, drawn from the same stream; Cutout's side follows data.cutout."""
    from semi.config import DataConfig
    from semi.data.loaders import augmenter_for

    assert not augmenter_for(DataConfig(name="mnist")).hflip and not augmenter_for(DataConfig(name="svhn")).hflip
    assert augmenter_for(DataConfig(name="cifar10")).hflip and augmenter_for(DataConfig(name="mnist", hflip=True)).hflip
    x = torch.arange(2 * 8 * 8, dtype=torch.uint8).reshape(2, 1, 8, 8)
    flips = torch.tensor([True, True])
    on = A.weak(x, torch.Generator().manual_seed(3))
    off = A.weak(x, torch.Generator().manual_seed(3), hflip=False)
    g = torch.Generator().manual_seed(3)
    drawn = torch.rand(2, generator=g) < 0.5
    dy, dx = torch.randint(0, 3, (2,), generator=g), torch.randint(0, 3, (2,), generator=g)
    assert torch.equal(off, A.flip_crop(x, ~flips, dy, dx, 1))
    assert torch.equal(on, A.flip_crop(x, drawn, dy, dx, 1)) and drawn.any()
    blank = torch.full((64, 1, 28, 28), 255, dtype=torch.uint8)
    for frac, side in ((0.5, 14), (0.25, 7), (0.0, 0)):
        out = A.random_cutout(blank, torch.Generator().manual_seed(0), frac)
        painted = (out == A.CUTOUT_FILL).flatten(1).sum(1)
        assert painted.max().item() == side * side  # at least one square falls wholly inside at this seed


def test_device_augmentation_draws_what_the_loader_draws(tiny_config):
    """data.augment_on=device: raw batches augmented later (on the training device; here the CPU) give the loader's
    views bit for bit, because the draws come from the step's CPU generator either way."""
    from semi.data.loaders import StepBatches, augment_batch
    from semi.data.prepare import prepare_data

    data = prepare_data(tiny_config())
    loader_views = StepBatches(data, 8, 2, 3, 6)
    raw = StepBatches(data, 8, 2, 3, 6, augment=False)
    for step in (0, 5):
        r = raw[step]
        assert "u_w" not in r and r["u_raw"].dtype == torch.uint8
        got, want = augment_batch(r, raw.augmenter), loader_views[step]
        assert set(got) == set(want)
        for key in want:
            assert torch.equal(got[key], want[key]), key


def test_a_run_augmented_on_the_device_equals_one_augmented_in_the_loader(tiny_config, tmp_path):
    from semi.engine.trainer import Trainer

    runs = [Trainer(tiny_config(**{"algorithm.name": "fixmatch", "data.augment_on": where,
                                   "train.out_dir": str(tmp_path / where)})) for where in ("loader", "device")]
    for run in runs:
        run.fit()
    assert runs[0].history == runs[1].history
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b)


def test_feature_vectors_are_augmented_in_the_loader_only():
    from semi.config import Config, validate

    cfg = Config()
    cfg.data.name, cfg.data.augment_on = "features", "device"
    assert any("data.augment_on=device" in m for m in validate(cfg))
