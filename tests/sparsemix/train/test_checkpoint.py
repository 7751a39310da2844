import os
import random

import pytest
import torch

from sparsemix.train import RunError, TrainConfig
from sparsemix.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_atomic_save_leaves_no_temporary_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}, "optimizer": {}, "epoch": 1, "config": {}}, path)
    assert os.listdir(tmp_path) == ["last.pt"]

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"model": Unpicklable()}, path)
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary left, old file intact
    assert load_checkpoint(path)["epoch"] == 1


def test_load_rejects_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = tmp_path / "c.pt"
    save_checkpoint({"model": {}, "optimizer": {}, "epoch": 0, "config": {}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="truncated"):
        load_checkpoint(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(RunError, match="missing"):
        load_checkpoint(path)


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), torch.rand(3))
    set_rng_state(state)
    b = (random.random(), torch.rand(3))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_config_validation_names_the_option():
    with pytest.raises(ValueError, match="--batch-size"):
        TrainConfig(task="order", out="x", batch_size=0).validate()
    with pytest.raises(ValueError, match="--pooling"):
        TrainConfig(task="order", out="x", pooling="max").validate()
    with pytest.raises(ValueError, match="--dropout"):
        TrainConfig(task="order", out="x", dropout=1.5).validate()
    with pytest.raises(RunError, match="unknown config fields"):
        TrainConfig.from_dict({"task": "order", "bogus": 1})
