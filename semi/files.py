"""Crash-safe files, torch-free (every layer may import it): write to a temporary file, flush and fsync, then
atomically rename over the target, so a process killed at any moment leaves the previous file or the new one."""

from __future__ import annotations

import os
from pathlib import Path

from semi.errors import SemiError


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or exc
        raise SemiError(f"could not write {path}: {reason} (the previous file, if any, is intact)") from exc


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
