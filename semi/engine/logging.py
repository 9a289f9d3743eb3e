"""Where a run's numbers go: a JSON-lines metrics log, TensorBoard scalars, and the console."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from semi.files import atomic_write_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(data: Any) -> str:
    """JSON with NaN/inf written as null (strict JSON readers reject NaN)."""
    return json.dumps(_jsonable(data), indent=2)


def _line_step(line: str) -> float:
    """The step of a metrics.jsonl line; a torn last line (a kill mid-write) counts as after every step."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


class MetricsLogger:
    """Appends one JSON object per line to metrics.jsonl and mirrors scalars to TensorBoard (rank 0 only)."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            except ImportError:
                from semi.extras import install_hint

                print(f"tensorboard is not installed: TensorBoard logging is off ({install_hint('tensorboard')}, or "
                      "set train.tensorboard=false)", file=sys.stderr)

    def drop_after(self, step: int) -> None:
        """Keep only the lines up to `step`: a resumed run logs the steps after its checkpoint again."""
        if not self.enabled or not self.path.is_file():
            return
        text = self.path.read_text()
        # a kept last line written without its newline gets one, so the next record starts on a line of its own
        kept = "".join(line if line.endswith("\n") else line + "\n"
                       for line in text.splitlines(keepends=True) if _line_step(line) <= step)
        if kept != text:
            atomic_write_text(self.path, kept)

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_jsonable({"kind": kind, "step": step, **values})) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def git_commit() -> str | None:
    """The commit of the semi source tree, with '-dirty' when it has uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what `platform` knows, possibly "")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment() -> dict[str, Any]:
    import semi

    try:
        import torchvision
    except ImportError:  # an optional extra (images)
        torchvision = None

    return {
        "semi": semi.__version__, "torch": torch.__version__,
        "torchvision": torchvision.__version__ if torchvision is not None else None,
        "python": sys.version.split()[0], "git_commit": git_commit(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu": cpu_model(), "cpu_threads": torch.get_num_threads(), "hostname": os.uname().nodename,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
