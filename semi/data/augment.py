"""Batched FixMatch augmentation on uint8 image tensors (N, C, H, W), C = 1 or 3.

Why batched: per-image PIL pipelines dominate a CPU training step at 32x32, so every op here works on a whole
batch with per-image parameters (the RandAugment loop runs over op types, never over images). Why a generator:
all randomness is drawn on the CPU from the `torch.Generator` passed in and then moved to the images' device,
so a step's augmentation is identical on CPU and CUDA and independent of the global RNG state.

The ops follow FixMatch's PIL implementation (RandAugmentMC with `fixmatch_augment_pool`) pixel for pixel where
that is cheap: point ops are exact 256-entry look-up tables, blends truncate like `Image.blend`, the smoothing
filter rounds like PIL's 3x3 filter, and geometric ops sample like PIL's nearest affine transform (output pixel
centre mapped to the input, floored). Deliberate differences are listed in `Augmenter`'s docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

OPS: tuple[str, ...] = ("autocontrast", "brightness", "color", "contrast", "equalize", "identity", "posterize",
                        "rotate", "sharpness", "shear_x", "shear_y", "solarize", "translate_x", "translate_y")
GEOMETRIC: frozenset[str] = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y"})
PARAMETER_MAX = 10  # FixMatch's magnitude scale: v in [1, PARAMETER_MAX)
AFFINE_FILL = 128  # grey for pixels mapped from outside the image (fillcolor=(128, 128, 128))
CUTOUT_FILL = 127  # FixMatch's CutoutAbs colour


# ---------------------------------------------------------------------------------------------- helpers


def _check(x: Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, C, H, W) with C in (1, 3), got {x.dtype} {tuple(x.shape)}")


def _to(t: Tensor, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """A parameter drawn on the CPU, on the images' device. To CUDA it goes through pinned memory with a
    non-blocking copy: a copy from pageable memory may wait for the stream, i.e. for the previous step's work,
    which would stall augmenting on the GPU (`data.augment_on=device`). On the CPU only the dtype changes."""
    if dtype is not None:
        t = t.to(dtype)
    if torch.device(device).type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def _per_image(p: Tensor | float | int, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A per-image parameter as an (n,) tensor on the images' device (scalars broadcast)."""
    p = torch.as_tensor(p, dtype=dtype)
    return _to(p.expand(n), device) if p.dim() == 0 else _to(p, device, dtype)


def _gather_pixels(x: Tensor, rows: Tensor, cols: Tensor, valid: Tensor | None = None, fill: int = 0) -> Tensor:
    """out[n, c, i, j] = x[n, c, rows[n, i, j], cols[n, i, j]], or `fill` where not valid; one gather per batch."""
    n, c, h, w = x.shape
    if valid is not None:
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    ho, wo = rows.shape[1:]
    index = (rows * w + cols).reshape(n, 1, ho * wo).expand(n, c, ho * wo)
    out = x.reshape(n, c, h * w).gather(2, index).reshape(n, c, ho, wo)
    if valid is not None:
        out = out.masked_fill(~valid[:, None], fill)
    return out


def _apply_lut(x: Tensor, lut: Tensor) -> Tensor:
    """Per image and channel 256-entry look-up table (N, C, 256) or (N, 1, 256): how PIL applies point ops."""
    n, c, h, w = x.shape
    lut = lut.expand(n, c, 256)
    return lut.gather(2, x.reshape(n, c, h * w).long()).reshape(n, c, h, w)


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL's Image.blend(degenerate, x, factor) for 0 <= factor <= 1: float32 interpolation, truncated."""
    f = _to(factor, x.device, torch.float32).view(-1, 1, 1, 1)
    d = degenerate.float()
    return (d + f * (x.float() - d)).clamp_(0, 255).to(torch.uint8)


def _gray(x: Tensor) -> Tensor:
    """PIL's convert("L") (ITU-R 601-2 luma in 16-bit fixed point, rounded), as int32 (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x.to(torch.int32)
    r, g, b = x.to(torch.int32).unbind(1)
    return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16)[:, None]


# ---------------------------------------------------------------------------------------------- weak


def _reflect(i: Tensor, n: int) -> Tensor:
    """Indices into a length-n axis under reflect padding (edge not repeated), for |overhang| < n."""
    i = i.abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def flip_crop(x: Tensor, flip: Tensor, dy: Tensor, dx: Tensor, pad: int) -> Tensor:
    """Horizontal flip where `flip`, then crop H x W at offset (dy, dx) of the `pad`-reflect-padded image.

    Done as a single gather with per-image index grids, so no padded copy and no loop over images.
    """
    _check(x)
    n, _, h, w = x.shape
    dev = x.device
    rows = _reflect(_to(dy, dev).long()[:, None] - pad + torch.arange(h, device=dev), h)  # (N, H)
    cols = _reflect(_to(dx, dev).long()[:, None] - pad + torch.arange(w, device=dev), w)  # (N, W)
    cols = torch.where(_to(flip, dev).bool()[:, None], w - 1 - cols, cols)  # padding a flipped image = flipped index
    return _gather_pixels(x, rows[:, :, None].expand(n, h, w), cols[:, None, :].expand(n, h, w))


def weak(x: Tensor, gen: torch.Generator, hflip: bool = True) -> Tensor:
    """FixMatch's weak view: flip with p=0.5 (if `hflip`), then a random crop after round(0.125 * H) reflect
    padding. The flip draw is made either way, so switching flips off changes nothing else in the stream."""
    _check(x)
    n, _, h, _ = x.shape
    pad = round(0.125 * h)
    flip = (torch.rand(n, generator=gen) < 0.5) & hflip
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    return flip_crop(x, flip, dy, dx, pad)


# ---------------------------------------------------------------------------------------------- point ops


def autocontrast(x: Tensor) -> Tensor:
    """PIL.ImageOps.autocontrast per image and channel: stretch [min, max] to [0, 255] (float64 like Python)."""
    _check(x)
    flat = x.flatten(2)
    lo, hi = flat.amin(2).double()[..., None], flat.amax(2).double()[..., None]  # (N, C, 1)
    scale = 255.0 / (hi - lo).clamp_min(1)
    ramp = torch.arange(256, device=x.device, dtype=torch.float64)
    lut = (ramp * scale + (-lo * scale)).clamp_(0, 255).floor_()
    lut = torch.where(hi > lo, lut, ramp).to(torch.uint8)
    return _apply_lut(x, lut)


def equalize(x: Tensor) -> Tensor:
    """PIL.ImageOps.equalize per image and channel; histograms of all images in one scatter_add."""
    _check(x)
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    last = hist.gather(1, flat.amax(1, keepdim=True))  # count of the highest present value
    step = (h * w - last) // 255  # Pillow >= 9: (sum of counts but the last) // 255
    cum = hist.cumsum(1) - hist  # exclusive cumulative counts
    lut = (step // 2 + cum) // step.clamp_min(1)
    ramp = torch.arange(256, device=x.device).expand(n * c, 256)
    lut = torch.where(step > 0, lut.clamp_(0, 255), ramp).to(torch.uint8)
    return _apply_lut(x, lut.view(n, c, 256))


def posterize(x: Tensor, bits: Tensor | int) -> Tensor:
    """Keep the top `bits` bits of every value (per image), as PIL.ImageOps.posterize."""
    _check(x)
    b = _per_image(bits, x.shape[0], x.device, torch.int32)
    mask = (255 - ((1 << (8 - b)) - 1)).to(torch.uint8).view(-1, 1, 1, 1)
    return x & mask


def solarize(x: Tensor, threshold: Tensor | int) -> Tensor:
    """Invert values >= threshold (per image; 256 means no change), as PIL.ImageOps.solarize."""
    _check(x)
    t = _per_image(threshold, x.shape[0], x.device, torch.int16).view(-1, 1, 1, 1)
    return torch.where(x.to(torch.int16) >= t, 255 - x, x)


# ---------------------------------------------------------------------------------------------- blends


def brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    """PIL ImageEnhance.Brightness: blend with black."""
    _check(x)
    f = _per_image(factor, x.shape[0], x.device, torch.float32)
    return _blend(torch.zeros_like(x), x, f)


def color(x: Tensor, factor: Tensor | float) -> Tensor:
    """PIL ImageEnhance.Color: blend with the grayscale image (identity for C = 1)."""
    _check(x)
    if x.shape[1] == 1:
        return x.clone()
    f = _per_image(factor, x.shape[0], x.device, torch.float32)
    return _blend(_gray(x).expand_as(x), x, f)


def contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """PIL ImageEnhance.Contrast: blend with a constant image of the rounded mean grayscale value."""
    _check(x)
    n, _, h, w = x.shape
    f = _per_image(factor, n, x.device, torch.float32)
    total = _gray(x).flatten(1).sum(1, dtype=torch.int64)
    mean = (2 * total + h * w) // (2 * h * w)  # int(mean + 0.5), exactly
    return _blend(mean.view(n, 1, 1, 1).expand_as(x), x, f)


def smooth(x: Tensor) -> Tensor:
    """PIL's ImageFilter.SMOOTH ([[1,1,1],[1,5,1],[1,1,1]] / 13, rounded); border pixels are left unchanged."""
    _check(x)
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        return x.clone()
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=x.device) / 13.0
    inner = F.conv2d(x.float(), kernel.expand(c, 1, 3, 3), groups=c)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = (inner + 0.5).clamp_(0, 255).to(torch.uint8)
    return out


def sharpness(x: Tensor, factor: Tensor | float) -> Tensor:
    """PIL ImageEnhance.Sharpness: blend with the smoothed image (factor < 1 blurs)."""
    _check(x)
    f = _per_image(factor, x.shape[0], x.device, torch.float32)
    return _blend(smooth(x), x, f)


# ---------------------------------------------------------------------------------------------- geometry


def affine(x: Tensor, matrix: Tensor, fill: int = AFFINE_FILL) -> Tensor:
    """PIL's Image.transform(AFFINE, NEAREST) with per-image (N, 2, 3) matrices mapping output to input.

    For output pixel (i, j) the input position is matrix @ (j + 0.5, i + 0.5, 1), floored; outside -> `fill`.
    Equivalent to affine_grid + grid_sample(nearest) but with PIL's floor instead of round-half-even, and it
    gathers uint8 directly instead of a float round trip.
    """
    _check(x)
    n, _, h, w = x.shape
    m = _to(matrix, x.device, torch.float64)
    ys = torch.arange(h, device=x.device, dtype=torch.float64).view(1, h, 1) + 0.5
    xs = torch.arange(w, device=x.device, dtype=torch.float64).view(1, 1, w) + 0.5
    u = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None]
    v = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]
    cols, rows = u.floor().long(), v.floor().long()
    valid = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    return _gather_pixels(x, rows, cols, valid, fill)


def rotate_matrix(degrees: Tensor, h: int, w: int) -> Tensor:
    """Matrices of PIL's img.rotate(degrees) (counter-clockwise about the centre, no expansion)."""
    a = -torch.deg2rad(degrees.double())
    cos, sin = a.cos(), a.sin()
    cx, cy = w / 2.0, h / 2.0
    row0 = torch.stack([cos, sin, cx - cos * cx - sin * cy], 1)
    row1 = torch.stack([-sin, cos, cy + sin * cx - cos * cy], 1)
    return torch.stack([row0, row1], 1)


def shear_matrix(shear: Tensor, axis: int) -> Tensor:
    """PIL's (1, s, 0, 0, 1, 0) for axis 1 (ShearX) or (1, 0, 0, s, 1, 0) for axis 0 (ShearY), about the origin."""
    m = torch.eye(2, 3, dtype=torch.float64).repeat(len(shear), 1, 1)
    m[:, 1 - axis, axis] = shear.double()
    return m


def translate_matrix(pixels: Tensor, axis: int) -> Tensor:
    """PIL's (1, 0, t, 0, 1, 0) for axis 1 (TranslateX) or (1, 0, 0, 0, 1, t) for axis 0 (TranslateY)."""
    m = torch.eye(2, 3, dtype=torch.float64).repeat(len(pixels), 1, 1)
    m[:, 1 - axis, 2] = pixels.double()
    return m


def _batch(p: Tensor | float, x: Tensor) -> Tensor:
    return torch.as_tensor(p, dtype=torch.float64).cpu().expand(x.shape[0])


def rotate(x: Tensor, degrees: Tensor | float, fill: int = AFFINE_FILL) -> Tensor:
    """Rotate each image counter-clockwise by its angle in degrees about the image centre."""
    return affine(x, rotate_matrix(_batch(degrees, x), x.shape[2], x.shape[3]), fill)


def shear_x(x: Tensor, shear: Tensor | float, fill: int = AFFINE_FILL) -> Tensor:
    """Horizontal shear: input x = output x + shear * output y (PIL ShearX)."""
    return affine(x, shear_matrix(_batch(shear, x), 1), fill)


def shear_y(x: Tensor, shear: Tensor | float, fill: int = AFFINE_FILL) -> Tensor:
    """Vertical shear: input y = output y + shear * output x (PIL ShearY)."""
    return affine(x, shear_matrix(_batch(shear, x), 0), fill)


def translate_x(x: Tensor, pixels: Tensor | float, fill: int = AFFINE_FILL) -> Tensor:
    """Shift content left by `pixels` (PIL TranslateX: input x = output x + pixels)."""
    return affine(x, translate_matrix(_batch(pixels, x), 1), fill)


def translate_y(x: Tensor, pixels: Tensor | float, fill: int = AFFINE_FILL) -> Tensor:
    """Shift content up by `pixels` (PIL TranslateY: input y = output y + pixels)."""
    return affine(x, translate_matrix(_batch(pixels, x), 0), fill)


# ---------------------------------------------------------------------------------------------- cutout


def cutout(x: Tensor, cy: Tensor, cx: Tensor, size: int, fill: int = CUTOUT_FILL) -> Tensor:
    """Fill a size x size square at centres (cy, cx) (top-left = centre - size // 2), clipped at the borders."""
    _check(x)
    n, _, h, w = x.shape
    y0 = _to(cy, x.device).long().view(n, 1, 1) - size // 2
    x0 = _to(cx, x.device).long().view(n, 1, 1) - size // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
    return x.masked_fill(inside[:, None], fill)


def random_cutout(x: Tensor, gen: torch.Generator, frac: float = 0.5) -> Tensor:
    """Cutout of side round(frac * H) at a uniformly random integer centre (FixMatch: 16 px on 32 x 32)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=gen)
    cx = torch.randint(0, w, (n,), generator=gen)
    return cutout(x, cy, cx, round(frac * h))


# ---------------------------------------------------------------------------------------------- RandAugmentMC


def _float_parameter(v: Tensor, max_v: float) -> Tensor:
    return v.double() * max_v / PARAMETER_MAX


def _int_parameter(v: Tensor, max_v: int) -> Tensor:
    return (v.long() * max_v) // PARAMETER_MAX


def op_parameter(name: str, v: Tensor, sign: Tensor, h: int, w: int) -> Tensor:
    """FixMatch's magnitude mapping: integer magnitudes v in [1, 10) and signs (+-1) -> each op's parameter (CPU)."""
    v, sign = v.cpu(), sign.cpu().double()
    if name in ("brightness", "color", "contrast", "sharpness"):
        return _float_parameter(v, 0.9) + 0.05
    if name == "posterize":
        return _int_parameter(v, 4) + 4
    if name == "solarize":
        return 256 - _int_parameter(v, 256)
    if name == "rotate":
        return _int_parameter(v, 30).double() * sign
    if name in ("shear_x", "shear_y"):
        return _float_parameter(v, 0.3) * sign
    if name in ("translate_x", "translate_y"):
        return (_float_parameter(v, 0.3) * sign * (w if name == "translate_x" else h)).trunc()  # int(v * size)
    return torch.zeros(len(v), dtype=torch.float64)  # parameter-free ops


def op_matrix(name: str, param: Tensor, h: int, w: int) -> Tensor:
    """Affine matrices of a geometric op for per-image parameters from `op_parameter`."""
    if name == "rotate":
        return rotate_matrix(param, h, w)
    if name in ("shear_x", "shear_y"):
        return shear_matrix(param, 1 if name == "shear_x" else 0)
    if name in ("translate_x", "translate_y"):
        return translate_matrix(param, 1 if name == "translate_x" else 0)
    raise ValueError(f"not a geometric op: {name}")


_POINT = {"autocontrast": lambda x, p: autocontrast(x), "equalize": lambda x, p: equalize(x),
          "identity": lambda x, p: x, "brightness": brightness, "color": color, "contrast": contrast,
          "sharpness": sharpness, "posterize": posterize, "solarize": solarize}


def apply_op(x: Tensor, name: str, v: Tensor, sign: Tensor | None = None) -> Tensor:
    """Apply one op of the pool to every image with FixMatch magnitudes v (per image) and signs (default +1)."""
    _check(x)
    n, _, h, w = x.shape
    v = torch.as_tensor(v).cpu().expand(n)
    sign = torch.ones(n) if sign is None else torch.as_tensor(sign).cpu().expand(n)
    param = op_parameter(name, v, sign, h, w)
    if name in GEOMETRIC:
        return affine(x, op_matrix(name, param, h, w))
    return _POINT[name](x, param)


def rand_augment_mc(x: Tensor, gen: torch.Generator, n_ops: int = 2, m: int = PARAMETER_MAX) -> Tensor:
    """FixMatch's RandAugmentMC without its Cutout: n_ops ops per image drawn uniformly from the pool, each
    applied with p=0.5 at magnitude v ~ U{1, ..., m-1}. Ops run in slot order; within a slot, images are grouped
    by op type (all geometric ops share one affine gather), so the Python loop is over op types only."""
    _check(x)
    n, c, h, w = x.shape
    ops = torch.randint(0, len(OPS), (n, n_ops), generator=gen)
    mags = torch.randint(1, m, (n, n_ops), generator=gen)
    apply = torch.rand(n, n_ops, generator=gen) < 0.5
    signs = torch.where(torch.rand(n, n_ops, generator=gen) < 0.5, -1.0, 1.0)
    out = x.clone()
    geometric = torch.tensor([name in GEOMETRIC for name in OPS])
    for slot in range(n_ops):
        op, v, sign, on = ops[:, slot], mags[:, slot], signs[:, slot], apply[:, slot]
        # All geometric ops of this slot in one gather with per-image matrices.
        sel = (on & geometric[op]).nonzero().squeeze(1)
        if len(sel):
            mats = torch.empty(len(sel), 2, 3, dtype=torch.float64)
            for k, name in enumerate(OPS):
                if name in GEOMETRIC:
                    mine = op[sel] == k
                    if mine.any():
                        param = op_parameter(name, v[sel][mine], sign[sel][mine], h, w)
                        mats[mine] = op_matrix(name, param, h, w)
            idx = _to(sel, x.device)
            out[idx] = affine(out[idx], mats)
        for k, name in enumerate(OPS):
            if name in GEOMETRIC or name == "identity" or (name == "color" and c == 1):
                continue
            sel = (on & (op == k)).nonzero().squeeze(1)
            if len(sel):
                idx = _to(sel, x.device)
                out[idx] = _POINT[name](out[idx], op_parameter(name, v[sel], sign[sel], h, w))
    return out


def strong(x: Tensor, gen: torch.Generator, hflip: bool = True, cutout_frac: float = 0.5) -> Tensor:
    """FixMatch's strong view: weak, RandAugmentMC(n=2, m=10), then a grey Cutout of `cutout_frac` of the image
    side (FixMatch: half). The Cutout draws are made even at 0, so the stream stays the same."""
    return random_cutout(rand_augment_mc(weak(x, gen, hflip), gen), gen, cutout_frac)


# ---------------------------------------------------------------------------------------------- normalisation


def to_float(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """uint8 NCHW -> float32, per-channel standardised ((x / 255 - mean) / std); done late, on the model's device."""
    c = x.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
    return (x.float().div_(255.0) - mean_t) / std_t


class Augmenter:
    """FixMatch views of uint8 batches, reproducible under a CPU `torch.Generator`.

    Deviations from FixMatch's PIL pipeline (kekmodel/FixMatch-pytorch RandAugmentMC):
    - rotate/shear/translate fill with grey 128 (the PIL code there uses the default black);
    - Cutout is exactly round(0.5 * H) square (PIL's inclusive rectangle paints 17 x 17 on 32 x 32), centred at an
      integer position and clipped symmetrically at the borders (PIL shifts it in at the left/top edge);
    - random signs are drawn for every op (unused by unsigned ops), and all draws are made per batch up front.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 hflip: bool = True, cutout_frac: float = 0.5):
        self.mean = tuple(mean) if mean is not None else (0.0,)
        self.std = tuple(std) if std is not None else (1.0,)
        self.hflip, self.cutout_frac = hflip, cutout_frac

    def weak(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return weak(x, gen, self.hflip)

    def strong(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return strong(x, gen, self.hflip, self.cutout_frac)

    def views(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """One weak and two independent strong views of the same images (drawn in that order)."""
        return self.weak(x, gen), self.strong(x, gen), self.strong(x, gen)

    def normalize(self, x: Tensor) -> Tensor:
        return to_float(x, self.mean, self.std)
