"""Crash-safe file writes: a reader sees the old file or the new one, never a half-written one.

Every write goes through a temporary file in the same folder (flush, fsync, ``os.replace``, fsync
the folder). This module imports nothing of the project.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch


def fsync_dir(path: "str | Path") -> None:
    """Make a rename inside ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: "str | Path", write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(f)`` on a temporary binary file, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: "str | Path", data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: "str | Path", text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def finite_json(data: Any) -> Any:
    """``data`` with every NaN / infinity replaced by ``None`` (JSON has no NaN); in a dict the
    key ``K`` also gets ``K_note`` saying what the value was, unless a note is already there."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key] = finite_json(value)
            if isinstance(value, float) and not math.isfinite(value):
                out.setdefault(f"{key}_note", f"undefined ({value})")
        return out
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def dumps_json(data: Any, indent: "int | None" = None) -> str:
    """Strict JSON text of ``data`` (non-finite numbers become null, see :func:`finite_json`)."""
    return json.dumps(finite_json(data), indent=indent, allow_nan=False)


def atomic_write_json(path: "str | Path", data: Any) -> None:
    """Indented strict JSON (see :func:`dumps_json`), written atomically."""
    atomic_write_text(path, dumps_json(data, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: "str | Path") -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def append_line(path: "str | Path", line: str) -> None:
    """Append ``line`` and a newline, fsynced (a crash leaves at most a half-written last line)."""
    with open(path, "a") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
