import pytest
import torch

from sparsemix.tasks import build_task
from sparsemix.tasks.synthetic import (ADDING_TOLERANCE, adding, adding_varlen, lognormal_lengths,
                                       temporal_order)
from sparsemix.train import TrainConfig


def test_adding_is_exact_and_seeded():
    x, y = adding(200, 37, seed=3)
    assert x.shape == (200, 37, 2) and y.shape == (200,)
    values, marker = x[..., 0], x[..., 1]
    assert bool(((values > -1) & (values <= 1)).all())
    assert torch.equal(marker.sum(1), torch.full((200,), 2.0))  # two distinct marked positions
    assert set(marker.unique().tolist()) == {0.0, 1.0}
    expected = 0.5 + (values * marker).sum(1) / 4
    torch.testing.assert_close(y, expected)
    x2, y2 = adding(200, 37, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(adding(200, 37, seed=4)[0], x)


def test_adding_positions_cover_the_whole_sequence():
    x, _ = adding(4000, 8, seed=0)
    counts = x[..., 1].sum(0)  # every position is marked about 4000 * 2 / 8 = 1000 times
    assert bool((counts > 850).all()) and bool((counts < 1150).all())


def test_temporal_order_labels_follow_the_two_symbols():
    x, y = temporal_order(300, 50, seed=1)
    assert x.shape == (300, 50) and x.dtype == torch.long
    assert int(x.max()) <= 5 and int(x.min()) >= 0
    for row, label in zip(x, y):
        special = row[row >= 4]
        assert special.numel() == 2
        assert int(label) == 2 * int(special[0] - 4) + int(special[1] - 4)
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_varlen_lengths_lognormal_within_range():
    g = torch.Generator().manual_seed(0)
    lengths = lognormal_lengths(5000, 100, 32, 1000, g)
    assert int(lengths.min()) >= 32 and int(lengths.max()) <= 1000
    # median of base * LogNormal(0.5, 0.7) is base * e^0.5 (truncation moves it a little)
    assert 140 < float(lengths.float().median()) < 190
    xs, y = adding_varlen(50, 40, 32, 300, seed=2)
    assert len(xs) == 50 and len({len(x) for x in xs}) > 5
    for x, target in zip(xs, y):
        assert x[:, 1].sum() == 2
        assert torch.isclose(target, 0.5 + (x[:, 0] * x[:, 1]).sum() / 4)


def test_registered_tasks_read_the_config():
    cfg = TrainConfig(task="order", out="unused", length=24, train_size=10, val_size=5, test_size=6)
    task = build_task("order", cfg)
    assert (len(task.train), len(task.val), len(task.test)) == (10, 5, 6)
    assert task.max_len == 24 and task.vocab_size == 6 and task.num_classes == 4
    assert not torch.equal(task.train[0][0], task.val[0][0])  # splits are different draws
    var = build_task("adding-varlen", TrainConfig(task="adding-varlen", out="u", length=64,
                                                  train_size=20, val_size=5, test_size=5))
    assert var.variable_length and int(var.train.lengths.max()) <= 64
    add = build_task("adding", TrainConfig(task="adding", out="u", length=16, train_size=3,
                                           val_size=3, test_size=3))
    assert add.kind == "regression" and add.meta["tolerance"] == ADDING_TOLERANCE


@pytest.mark.parametrize("bad", [-5, 0, 1])
def test_bad_length_is_named(bad):
    with pytest.raises(ValueError, match="length"):
        adding(3, bad)
    with pytest.raises(ValueError, match="--length"):
        build_task("adding", TrainConfig(task="adding", out="u", length=bad))
