"""2 gloo ranks through the real trainer: a Ctrl-C mid-epoch, then --resume, logs exactly the
epoch metrics of the uninterrupted run (the partial sums are saved all-reduced, restored once)."""
from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sparsemix.tasks import register_task
from sparsemix.tasks.base import TASKS, TaskData
from sparsemix.tasks.synthetic import SequenceDataset, temporal_order
from sparsemix.train import TrainConfig, TrainingInterrupted, train
from sparsemix.train.checkpoint import load_checkpoint

WORLD = 2


class _CtrlCOnRank0(SequenceDataset):
    def __init__(self, x, y, at: int) -> None:
        super().__init__(x, y)
        self.reads, self.at = 0, at

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at and os.environ.get("RANK") == "0":
            os.kill(os.getpid(), signal.SIGINT)
        return super().__getitem__(i)


if "test-dist-ctrl-c" not in TASKS:
    @register_task("test-dist-ctrl-c")
    def _build(cfg) -> TaskData:
        split = lambda n, s: temporal_order(n, cfg.length, cfg.seed + s)  # noqa: E731
        return TaskData(train=_CtrlCOnRank0(*split(cfg.train_size, 0), at=cfg.extra.get("at", 0)),
                        val=SequenceDataset(*split(cfg.val_size, 1)),
                        test=SequenceDataset(*split(cfg.test_size, 2)),
                        kind="classification", num_classes=4, input="tokens",
                        max_len=cfg.length, vocab_size=6)


def _worker(rank: int, port: int, cfg: dict, expect_interrupt: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    try:
        train(TrainConfig(**cfg))
        assert not expect_interrupt, "the Ctrl-C did not stop the run"
    except TrainingInterrupted:
        assert expect_interrupt


def _spawn(cfg: dict, expect_interrupt: bool = False) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, cfg, expect_interrupt), nprocs=WORLD, join=True)


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]


# slow: ~50 s of 2-core CPU (three 2-process launches); it also stalled once inside the full suite
# under load (cause not found in time), so it stays out of the default run until that is understood.
@pytest.mark.slow
def test_mid_epoch_resume_under_two_ranks_logs_the_uninterrupted_metrics(tmp_path):
    base = dict(task="test-dist-ctrl-c", length=8, train_size=64, val_size=16, test_size=16,
                batch_size=16, channels=8, epochs=1, device="cpu", quiet=True)
    full = {**base, "out": str(tmp_path / "full")}
    cut = {**base, "out": str(tmp_path / "cut"), "extra": {"at": 20}}  # rank 0 reads 8 per step
    _spawn(full)
    _spawn(cut, expect_interrupt=True)
    ck = load_checkpoint(Path(cut["out"], "last.pt"))
    assert (ck["epoch"], ck["step_in_epoch"]) == (0, 3)
    assert ck["accum"]["count"] == 48  # 3 global steps of 16, both ranks' samples
    _spawn({**cut, "resume": True})
    a, b = _lines(full["out"]), _lines(cut["out"])
    assert len(a) == len(b) == 1
    assert b[0]["train_loss"] == a[0]["train_loss"]
    assert b[0]["train_accuracy"] == a[0]["train_accuracy"]
