"""The run folder: what a fresh run and a resume accept, and every file the trainer writes there.

A run lives in one folder::

    config.json     the TrainConfig (written once; a resume must match it)
    metrics.jsonl   one JSON object per epoch (train and validation metrics)
    last.pt         the latest state (model, optimizer, scheduler, RNG, epoch/step, config)
    best.pt         the state with the best validation metric (never chosen on test)
    results.json    test metrics of best.pt, evaluated once at the end

Only the main rank writes. Every file but ``metrics.jsonl`` is replaced atomically.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .._io import append_line, atomic_write_json, atomic_write_text
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

    def _check_resume(self, cfg: TrainConfig) -> dict:
        saved = TrainConfig.load(self.config)
        diff = saved.differences(cfg)
        if diff:
            raise RunError(f"--resume: {self.config} is a different run ({'; '.join(diff)})")
        ckpt = load_checkpoint(self.last)
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

    def start_resumed(self, cfg: TrainConfig, epochs_done: int) -> None:
        self._truncate_metrics(epochs_done)
        if TrainConfig.load(self.config).to_dict() != cfg.to_dict():
            cfg.save(self.config)  # e.g. more --epochs: record what the run now is

    def _truncate_metrics(self, epochs_done: int) -> None:
        """Drop log lines from epochs after the checkpoint (a crash between log and save)."""
        if not self.metrics.exists():
            return
        keep = [line for line in self.metrics.read_text().splitlines()
                if line.strip() and json.loads(line).get("epoch", 0) <= epochs_done]
        atomic_write_text(self.metrics, "".join(line + "\n" for line in keep))

    def save_epoch(self, state: dict[str, Any], record: dict, improved: bool) -> None:
        if improved:
            save_checkpoint(state, self.best)
        save_checkpoint(state, self.last)
        append_line(self.metrics, json.dumps(record))

    def save_last(self, state: dict[str, Any]) -> None:
        save_checkpoint(state, self.last)

    def save_results(self, results: dict) -> None:
        atomic_write_json(self.results, results)
