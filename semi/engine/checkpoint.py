"""Checkpoints, written crash-safe (`semi.files`: a killed process leaves the previous file or the new one).

Step checkpoints are `checkpoints/step-NNNNNNN.pt` (the last K kept) and `checkpoints/latest.pt` (a hard
link to the newest); `--resume auto` takes the newest one that loads, skipping corrupt ones with a warning.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from semi.errors import CheckpointError, SemiError
from semi.files import atomic_write_bytes, atomic_write_text, fsync_dir  # noqa: F401  (re-exported)

_STEP_FILE = re.compile(r"step-(\d+)\.pt$")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", trusted: bool = False) -> dict[str, Any]:
    """A checkpoint's state, read with `torch.load(weights_only=True)`: tensors and plain Python values only, so a
    file cannot run code when loaded (what `semi predict / eval / export` read). `trusted` (resuming one's own
    runs) also accepts checkpoints written by versions that stored other objects (numpy arrays), with a full
    unpickle; anything else that needs one is refused with a message saying so."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            if not trusted or not _needs_full_unpickle(exc):
                raise
            state = torch.load(path, map_location=map_location, weights_only=False)
    except pickle.UnpicklingError as exc:
        if _needs_full_unpickle(exc):
            raise CheckpointError(f"{path} holds more than tensors and plain values (a checkpoint of an older semi "
                                  "version, or not written by semi), so it is not loaded here: only "
                                  "torch.load(weights_only=True) is used outside resuming. Resume the run once "
                                  "(`semi train --resume PATH`) to rewrite its checkpoints, if you trust the file"
                                  ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or not a semi checkpoint ({exc})") from None
    except Exception as exc:  # noqa: BLE001  (any other failure means a corrupt or foreign file)
        raise CheckpointError(f"checkpoint {path} is corrupt or not a semi checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not a semi checkpoint (no step/model entries)")
    return state


def _needs_full_unpickle(exc: Exception) -> bool:
    """torch.load(weights_only=True) read a valid file that holds other objects (not a corrupt one)."""
    return "Unsupported global" in str(exc)


def step_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the step checkpoints in a folder, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.search(p.name))]
    return sorted(found, reverse=True)


class CheckpointManager:
    def __init__(self, run_dir: Path, keep: int):
        self.folder = Path(run_dir) / "checkpoints"
        self.keep = keep

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files left by a process killed mid-write (never a finished checkpoint)."""
        stale = [p for p in self.folder.glob(".*.tmp-*")] if self.folder.is_dir() else []
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def save(self, step: int, state: dict[str, Any]) -> Path:
        path = self.folder / f"step-{step:07d}.pt"
        save_checkpoint(path, state)
        latest = self.folder / "latest.pt"
        tmp = self.folder / f".latest.tmp-{os.getpid()}"
        try:
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:  # file systems without hard links: a second full write
                save_checkpoint(tmp, state)
            os.replace(tmp, latest)
            fsync_dir(self.folder)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise SemiError(f"could not update {latest} after writing {path}: {exc.strerror or exc} ({path} "
                            f"itself is complete)") from exc
        for _, old in step_checkpoints(self.folder)[self.keep:]:
            try:
                old.unlink(missing_ok=True)
            except OSError as exc:
                warnings.warn(f"could not remove the old checkpoint {old}: {exc}", stacklevel=2)
        return path

    def set_aside_newer_than(self, step: int) -> list[Path]:
        """Training that starts at `step` (an older checkpoint resumed, or a new run in a used directory) is a new
        line: step files after it belong to another. Renamed to `<name>.superseded` (kept), they can neither be
        taken by `--resume auto` nor make the pruning of the last K delete the new line's checkpoints."""
        later = [(path, "a later step of another run") for s, path in step_checkpoints(self.folder) if s > step]
        best = self.folder / "best.pt"
        if best.is_file():  # chosen by the other line's later validation scores?
            try:
                best_step = load_checkpoint(best, trusted=True)["step"]
            except CheckpointError:
                best_step = None
            if best_step is None or best_step > step:
                later.append((best, f"step {best_step}"))
        moved = []
        for path, why in later:
            aside = path.with_name(path.name + ".superseded")
            os.replace(path, aside)
            warnings.warn(f"training from step {step}: {path.name} ({why}) set aside as {aside.name}", stacklevel=2)
            moved.append(aside)
        return moved

    def save_best(self, state: dict[str, Any]) -> Path:
        path = self.folder / "best.pt"
        save_checkpoint(path, state)
        return path

    def newest_valid(self, set_aside: bool = True) -> tuple[Path, dict[str, Any]] | None:
        """The newest step checkpoint that loads. A corrupt one is skipped with a warning naming it and renamed to
        `<name>.corrupt` (kept for inspection): left in place it would count among the last K and make pruning
        delete good checkpoints. Only one process renames (`set_aside`: rank 0 under DDP), and only files it can
        read: an unreadable file (permissions) is skipped but left alone."""
        for _, path in step_checkpoints(self.folder):
            try:
                return path, load_checkpoint(path, trusted=True)
            except CheckpointError as exc:
                aside = path.with_name(path.name + ".corrupt")
                try:
                    if not (set_aside and os.access(path, os.R_OK)):
                        raise OSError
                    os.replace(path, aside)
                except OSError:
                    aside = path
                warnings.warn(f"skipping unreadable checkpoint {path} (now {aside.name}): {exc}", stacklevel=2)
        return None
