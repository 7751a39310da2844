"""Checkpoint files (written atomically) and the random-number-generator state they carry."""
from __future__ import annotations

import errno
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_torch_save
from ..errors import RunError, one_line

#: Keys every sparsemix checkpoint holds.
CHECKPOINT_KEYS = frozenset({"model", "optimizer", "epoch", "config"})


def save_checkpoint(state: dict[str, Any], path: "str | Path") -> None:
    """``torch.save`` ``state`` to ``path`` atomically (the old file or the new one, never half).

    A full disk is a :class:`RunError` that says so (torch reports it as ``RuntimeError: [enforce
    fail at inline_container.cc] ... file write failed``): the previous checkpoint is intact.
    """
    try:
        atomic_torch_save(state, Path(path))
    except (OSError, RuntimeError) as err:
        if not _disk_full(err):
            raise
        raise RunError(f"disk full while writing checkpoint {path} ({one_line(err)}); nothing was "
                       f"lost: the previous checkpoint is intact, so free some space and --resume "
                       f"continues from it") from None


def _disk_full(err: BaseException) -> bool:
    """An out-of-space error as the OS (ENOSPC, EDQUOT) or torch's zip writer reports it."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(err)
    return "No space left" in text or "file write failed" in text


def load_checkpoint(path: "str | Path") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only).

    Raises :class:`RunError` for a missing, truncated or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, unpickling errors, ...
        reason = str(err).splitlines()[0] if str(err) else ""
        raise RunError(f"checkpoint {path} is unreadable (truncated or corrupt): "
                       f"{type(err).__name__}: {reason}") from None
    missing = CHECKPOINT_KEYS - set(state if isinstance(state, dict) else ())
    if missing:
        raise RunError(f"checkpoint {path} is not a sparsemix checkpoint (missing {sorted(missing)})")
    return state


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop may touch (python, numpy, torch CPU and CUDA)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "numpy": (name, torch.from_numpy(keys.astype("int64")), pos,
                                       has_gauss, cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
