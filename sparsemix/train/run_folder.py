"""The run folder: what a fresh run and a resume accept, and every file the trainer writes there.

A run lives in one folder::

    config.json     the TrainConfig (written once; a resume must match it)
    metrics.jsonl   one JSON object per epoch (train and validation metrics)
    last.pt         the latest state (model, optimizer, scheduler, RNG, epoch/step, config)
    best.pt         the state with the best validation metric (never chosen on test)
    results.json    test metrics of best.pt, evaluated once at the end
    lock            pid and host of the process training in the folder (while it runs)

Only the main rank writes. Every file but ``metrics.jsonl`` is replaced atomically, and every
checkpoint carries the metrics history, so on resume ``metrics.jsonl`` is rewritten to match
``last.pt`` whatever order a crash hit the two in (a half-written last line included).

A folder whose run crashed before its first checkpoint (``config.json`` but no ``last.pt`` or
``best.pt``) is accepted by ``--resume``, which starts that run again from epoch 0.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Optional

from .._io import append_line, atomic_write_json, atomic_write_text, dumps_json
from ..errors import RunError
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig

RUN_FILES = ("config.json", "last.pt", "best.pt", "results.json")


class RunFolder:
    """Paths and writes of one run folder (``cfg.out``)."""

    def __init__(self, out: "str | Path") -> None:
        self.path = Path(out)
        self.config = self.path / "config.json"
        self.metrics = self.path / "metrics.jsonl"
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.results = self.path / "results.json"
        self.lock = self.path / "lock"
        self._locked = False
        self._created = False

    # -- the exclusive lock (main rank) --------------------------------------------------------
    def acquire(self) -> None:
        """Take the folder's lock, or raise RunError naming the live process that holds it.

        A lock left by a dead process on this host is stale and taken over.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} exists and is not a folder")
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None or (holder.get("host") == me["host"]
                                      and not _alive(holder.get("pid"))):
                    self.lock.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise RunError(f"--out {self.path} is in use by pid {holder.get('pid')} on "
                               f"{holder.get('host')} (lock file {self.lock}); wait for it to "
                               f"finish, or delete the lock file if that process is gone") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._locked = True
            return
        raise RunError(f"--out {self.path}: could not take the lock file {self.lock}")

    def _holder(self) -> Optional[dict]:
        try:
            data = json.loads(self.lock.read_text())
        except (OSError, ValueError):
            return None  # empty or half-written: its writer died before finishing
        return data if isinstance(data, dict) else None

    def release(self) -> None:
        if self._locked and (self._holder() or {}).get("pid") == os.getpid():
            self.lock.unlink(missing_ok=True)
            if self._created and not any(self.path.iterdir()):
                self.path.rmdir()  # a refused fresh run leaves no empty folder behind
        self._locked = False

    # -- checks (every rank, before anything is written) ---------------------------------------
    def prepare(self, cfg: TrainConfig) -> Optional[dict]:
        """Check the folder for ``cfg``; return the checkpoint to resume from (None: fresh)."""
        return self._check_resume(cfg) if cfg.resume else self._check_fresh()

    def _check_fresh(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} exists and is not a folder")
        taken = [name for name in RUN_FILES if (self.path / name).exists()]
        if taken:
            raise RunError(f"--out {self.path} already holds a run ({', '.join(taken)}); pass "
                           f"--resume to continue it or choose another folder")
        return None

    def _check_resume(self, cfg: TrainConfig) -> Optional[dict]:
        saved = TrainConfig.load(self.config).resolve_task_defaults()  # as cfg is by now
        diff = saved.differences(cfg)
        if diff:
            raise RunError(f"--resume: {self.config} is a different run ({'; '.join(diff)})")
        if not self.last.exists() and not self.best.exists():
            return None  # crashed before its first checkpoint: start it again
        ckpt = load_checkpoint(self.last)
        if self.best.exists():
            load_checkpoint(self.best)  # a corrupt best.pt fails now, not after an epoch
        if cfg.epochs < ckpt["epoch"]:
            raise RunError(f"--resume: --epochs {cfg.epochs} is fewer than the {ckpt['epoch']} "
                           f"epochs {self.path} has done; pass --epochs {ckpt['epoch']} or more")
        ckpt_cfg = TrainConfig.from_dict(ckpt["config"], source=str(self.last))
        diff = ckpt_cfg.differences(saved)
        if diff:
            raise RunError(f"{self.last} was written by a different config ({'; '.join(diff)})")
        return ckpt

    # -- writes (main rank only) ---------------------------------------------------------------
    def start_fresh(self, cfg: TrainConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        cfg.save(self.config)
        self.metrics.write_text("")

    def start_resumed(self, cfg: TrainConfig, ckpt: dict) -> Optional[str]:
        """Make metrics.jsonl (and best.pt) match last.pt; return a note when they had to change."""
        history = ckpt.get("history")
        note = None if history is None else self._reconcile_metrics(history)  # None: older run
        self._reconcile_best(ckpt)
        if TrainConfig.load(self.config).to_dict() != cfg.to_dict():
            cfg.save(self.config)  # e.g. more --epochs: record what the run now is
        return note

    def _reconcile_metrics(self, history: list[dict]) -> Optional[str]:
        text = "".join(dumps_json(record) + "\n" for record in history)
        old = self.metrics.read_text() if self.metrics.exists() else ""
        if old == text:
            return None
        atomic_write_text(self.metrics, text)
        return (f"repaired {self.metrics}: {len(old.splitlines())} lines -> {len(history)} "
                f"(the epochs in last.pt)")

    def _reconcile_best(self, ckpt: dict) -> None:
        """A crash between writing last.pt and best.pt at an improving epoch: last.pt is that best."""
        history = ckpt.get("history") or [{}]
        if not (history[-1].get("best") and ckpt["step_in_epoch"] == 0
                and history[-1].get("epoch") == ckpt["best_epoch"]):
            return
        if not self.best.exists() or load_checkpoint(self.best)["best_epoch"] != ckpt["best_epoch"]:
            save_checkpoint(ckpt, self.best)

    def save_epoch(self, state: dict[str, Any], record: dict, improved: bool) -> None:
        """last.pt first (it holds ``record`` in its history), then best.pt, then the log line."""
        save_checkpoint(state, self.last)
        if improved:
            save_checkpoint(state, self.best)
        append_line(self.metrics, dumps_json(record))

    def save_last(self, state: dict[str, Any]) -> None:
        save_checkpoint(state, self.last)

    def save_results(self, results: dict) -> None:
        atomic_write_json(self.results, results)


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` exists on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
