"""LocalConvStem: k-mer features that never cross a sequence boundary."""
import pytest
import torch

from sparsemix.nn import LocalConvStem, positions_in_sequence


@pytest.mark.parametrize("kernel_size", [1, 6, 7])
def test_a_sequence_alone_equals_it_in_a_batch(kernel_size):
    torch.manual_seed(0)
    stem = LocalConvStem(4, kernel_size).double()
    lengths = [3, 10, 1, 8]
    seqs = [torch.randn(n, 4, dtype=torch.double) for n in lengths]
    batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    together = stem(torch.cat(seqs), batch)
    for b, seq in enumerate(seqs):
        alone_fixed = stem(seq[None])[0]  # fixed-length path: zero padding at both ends
        alone_var = stem(seq, torch.zeros(len(seq), dtype=torch.long))
        torch.testing.assert_close(together[batch == b], alone_fixed, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(alone_var, alone_fixed, rtol=1e-12, atol=1e-12)


def test_never_reads_a_neighbour_and_has_the_stated_receptive_field():
    torch.manual_seed(1)
    stem = LocalConvStem(4, 7)
    x = torch.randn(20, 4)
    batch = torch.tensor([0] * 8 + [1] * 12)
    y = x.clone()
    y[7] += 10.0  # the last element of sequence 0
    with torch.no_grad():
        changed = (stem(x, batch) - stem(y, batch)).abs().sum(-1) > 0
    # 7 taps: offsets -3..+3 around the element; the edit at 7 reaches rows 4..7 of sequence 0 only
    assert changed.nonzero().flatten().tolist() == [4, 5, 6, 7]


def test_bad_channels():
    with pytest.raises(ValueError):
        LocalConvStem(0)


@pytest.mark.parametrize("kernel_size", [1, 4, 7])
def test_vectorised_varlen_taps_equal_the_per_offset_gathers(kernel_size):
    """The slice-and-mask taps equal the earlier form: one gather per tap, zero outside."""
    torch.manual_seed(0)
    stem = LocalConvStem(3, kernel_size).double()
    lengths = [1, 6, 2, 9]
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor(lengths))
    h = torch.randn(batch.numel(), 3, dtype=torch.float64)
    pos, n = positions_in_sequence(batch)
    start, n = torch.arange(batch.numel()) - pos, n[batch]
    cols = []
    for o in stem.offsets():
        inside = (pos + o >= 0) & (pos + o < n)
        cols.append(h[torch.where(inside, start + pos + o, start)] * inside.unsqueeze(-1).double())
    assert torch.equal(stem.taps(h, batch), torch.cat(cols, dim=-1))
