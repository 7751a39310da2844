"""Variable-length forwards measure the batch vector once (one host sync), and the answer is never
reused for a modified or different batch vector."""
import pytest
import torch

from sparsemix import Paramixer, SequenceClassifier
from sparsemix.nn import sequences
from sparsemix.nn.sequences import lengths_and_key


def _batch(lengths):
    return torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))


def test_a_default_varlen_forward_measures_the_batch_once(monkeypatch):
    calls = []
    measure = sequences._measure
    monkeypatch.setattr(sequences, "_measure", lambda b: calls.append(1) or measure(b))
    torch.manual_seed(0)
    model = SequenceClassifier(6, 4, 8, 2, max_len=32, block="encoder", positional=True)
    batch = _batch([32, 5, 17])
    tokens = torch.randint(0, 6, (batch.numel(),))
    model(tokens, batch)
    assert len(calls) == 1  # embedding, positions, both layers' topologies and the pooling share it
    model(tokens, batch.clone())  # a new batch tensor is measured again
    assert len(calls) == 2


def test_a_modified_batch_is_measured_again_and_checked():
    batch = _batch([3, 2])
    first = lengths_and_key(batch)
    assert lengths_and_key(batch) is first
    batch[3:] = 0  # [0, 0, 0, 0, 0]: one sequence now
    assert lengths_and_key(batch)[1] == (5,)
    batch[0] = 1  # unsorted
    with pytest.raises(ValueError, match="sorted"):
        lengths_and_key(batch)


def test_inference_tensors_are_measured_every_time():
    with torch.inference_mode():
        batch = _batch([2, 4])
        assert lengths_and_key(batch)[1] == (2, 4)
        assert lengths_and_key(batch)[1] == (2, 4)


def test_random_lengths_every_step_equal_each_sequence_alone():
    """What a training loop with fresh lengths every step computes (the vectorised tables)."""
    torch.manual_seed(0)
    block = Paramixer(4, protocol="cdil", max_len=50, backend="fused").double()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        lengths = torch.randint(1, 51, (5,), generator=g).tolist()
        v = torch.randn(sum(lengths), 4, dtype=torch.float64)
        out = block(v, batch=_batch(lengths))
        start = 0
        for n in lengths:
            assert torch.allclose(out[start:start + n], block(v[start:start + n]), rtol=1e-12,
                                  atol=1e-13)
            start += n
