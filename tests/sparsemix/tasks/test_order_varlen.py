"""order-varlen: variable-length Temporal Order (lengths as adding-varlen, labels as order)."""
import pytest
import torch

from sparsemix.tasks import TASK_OPTIONS, build_task, check_extras
from sparsemix.tasks.synthetic import ORDER_CLASSES, temporal_order_varlen
from sparsemix.train import TrainConfig
from sparsemix.train.data import collate


def _label(x: torch.Tensor) -> int:
    """The Temporal Order law read from one sequence: its two symbols X = 4 / Y = 5, in order."""
    special = x[x >= 4]
    assert special.numel() == 2
    return 2 * int(special[0] - 4) + int(special[1] - 4)


def _cfg(**kw):
    base = dict(task="order-varlen", out="unused", length=96, train_size=40, val_size=10,
                test_size=12, seed=3)
    return TrainConfig(**{**base, **kw})


def test_shapes_labels_and_lengths_in_range():
    xs, y = temporal_order_varlen(300, 40, 32, 200, seed=1)
    assert len(xs) == 300 and y.shape == (300,) and y.dtype == torch.long
    lengths = torch.tensor([len(x) for x in xs])
    assert int(lengths.min()) >= 32 and int(lengths.max()) <= 200
    assert len(set(lengths.tolist())) > 20  # really variable
    for x, label in zip(xs, y):
        assert x.dim() == 1 and x.dtype == torch.long
        assert int(x.min()) >= 0 and int(x.max()) <= 5
        assert _label(x) == int(label)
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_deterministic_by_seed():
    xs, y = temporal_order_varlen(50, 40, 32, 200, seed=7)
    xs2, y2 = temporal_order_varlen(50, 40, 32, 200, seed=7)
    assert torch.equal(y, y2) and all(torch.equal(a, b) for a, b in zip(xs, xs2))
    xs3, _ = temporal_order_varlen(50, 40, 32, 200, seed=8)
    assert [len(x) for x in xs3] != [len(x) for x in xs]


def test_registered_task_reads_the_config():
    task = build_task("order-varlen", _cfg())
    assert task.variable_length and task.kind == "classification" and task.num_classes == 4
    assert task.input == "tokens" and task.vocab_size == 6 and task.class_names == ORDER_CLASSES
    assert task.max_len == 96 and (len(task.train), len(task.val), len(task.test)) == (40, 10, 12)
    for split in (task.train, task.val, task.test):
        assert int(split.lengths.min()) >= 32 and int(split.lengths.max()) <= 96
    assert not torch.equal(task.train[0][0], task.val[0][0])  # independent draws per split
    again = build_task("order-varlen", _cfg())
    assert all(torch.equal(a, b) for a, b in zip(task.test.x, again.test.x))
    other = build_task("order-varlen", _cfg(seed=4))
    assert task.test.lengths.tolist() != other.test.lengths.tolist()
    # the same model defaults as order (none: learned positions on, the general mixing gain)
    assert TASK_OPTIONS["order-varlen"].model_defaults == TASK_OPTIONS["order"].model_defaults


def test_a_sequence_label_does_not_depend_on_its_batch():
    """Concatenated without padding, every segment of a batch carries its own label."""
    task = build_task("order-varlen", _cfg())
    for idx in ([0, 1, 2, 3, 4], [4, 2, 0], [7, 9, 11, 1]):
        b = collate(task.train, torch.tensor(idx), True)
        assert b.batch is not None and b.x.dim() == 1
        segments = torch.split(b.x, torch.bincount(b.batch).tolist())
        for seg, label, i in zip(segments, b.y, b.index.tolist()):
            assert torch.equal(seg, task.train[i][0])
            assert _label(seg) == int(label) == int(task.train[i][1])


def test_extra_keys_are_typed_and_max_len_sizes_the_model():
    task = build_task("order-varlen", _cfg(length=64, extra={"max_len": 256, "varlen_base": 40}))
    assert task.max_len == 256 and int(task.train.lengths.max()) <= 64
    assert task.meta["base"] == 40
    with pytest.raises(ValueError, match="--extra varlen_base must be an integer >= 1"):
        build_task("order-varlen", _cfg(extra={"varlen_base": 0}))
    with pytest.raises(ValueError, match="--extra max_len must be an integer >= 2"):
        build_task("order-varlen", _cfg(extra={"max_len": "big"}))
    with pytest.raises(ValueError, match="--length 96 is longer than the model's max_len 64"):
        build_task("order-varlen", _cfg(extra={"max_len": 64}))
    with pytest.raises(ValueError, match="unknown key"):  # what the trainer checks first
        check_extras("order-varlen", {"min_length": 8})
    with pytest.raises(ValueError, match="--length"):
        build_task("order-varlen", _cfg(length=1))
