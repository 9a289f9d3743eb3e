"""Where and how a process runs: the device, the seeds and determinism, mixed precision. Shared by training,
evaluation, prediction and the benchmarks."""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from semi.errors import SemiError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SemiError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return torch.device(name)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype. bf16 also runs on CPU (slow, but it exercises the mixed-precision path without a
    GPU); fp16 needs CUDA's gradient scaler, so on CPU it falls back to float32 with a warning."""
    if amp == "fp16" and device.type != "cuda":
        print("train.amp=fp16 needs CUDA: training in float32 on this device (train.amp=bf16 runs on CPU)",
              file=sys.stderr)
        return None
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        # kept in bf16 (the run means what was asked for), but said: emulated bf16 is slower than float32
        print("train.amp=bf16: this CPU has no native bf16 (AVX-512 BF16 or AMX), so bf16 runs emulated and slower "
              "than float32 (train.amp=none)", file=sys.stderr)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX tiles), as torch sees it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # That switch also fills every new tensor with NaN (a debugging aid that catches reads of uninitialised
        # memory; deterministic kernels do not need it): ~140 fills per step, 5-10% of a small model's step on CPU.
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
