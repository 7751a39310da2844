"""KmerEmbedding: ids equal the slow reference, never cross a sequence boundary, handle N."""
import pytest
import torch

from sparsemix import reference
from sparsemix.nn import KmerEmbedding

BASES = (3, 4, 5, 6)  # DNATokenizer's A, C, G, T
N_ID, CLS_ID = 7, 1


def random_tokens(gen, n, n_fraction=0.1):
    tokens = torch.tensor(BASES)[torch.randint(0, 4, (n,), generator=gen)]
    tokens[torch.rand(n, generator=gen) < n_fraction] = N_ID
    return tokens


@pytest.mark.parametrize("k", [1, 2, 3, 6, 9])
def test_ids_equal_the_reference_fixed_and_varlen(k):
    gen = torch.Generator().manual_seed(k)
    layer = KmerEmbedding(4, k, BASES)
    lengths = [1, k - 1 if k > 1 else 2, k, 17, 40]
    seqs = [random_tokens(gen, n) for n in lengths]
    want = [reference.kmer_ids(s.tolist(), k, BASES) for s in seqs]
    assert any(i >= 0 for w in want for i in w) and any(i == -1 for w in want for i in w)
    # variable length: all sequences in one batch
    batch = torch.repeat_interleave(torch.arange(len(seqs)), torch.tensor(lengths))
    got = layer.kmer_ids(torch.cat(seqs), batch)
    assert got.tolist() == [i for w in want for i in w]
    # fixed length: every sequence of one length, in a [B, N] batch
    fixed = torch.stack([random_tokens(gen, 23) for _ in range(4)])
    assert layer.kmer_ids(fixed).tolist() == [reference.kmer_ids(r, k, BASES)
                                               for r in fixed.tolist()]


def test_kmers_never_cross_a_boundary_and_a_batch_changes_nothing():
    gen = torch.Generator().manual_seed(0)
    layer = KmerEmbedding(8, 4, BASES)
    seqs = [random_tokens(gen, n, n_fraction=0.0) for n in (9, 3, 12)]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([9, 3, 12]))
    ids = layer.kmer_ids(torch.cat(seqs), batch)
    out = layer(torch.cat(seqs), batch)
    start = 0
    for s in seqs:
        n = s.numel()
        alone = layer.kmer_ids(s.unsqueeze(0))[0]  # fixed length, B = 1
        assert torch.equal(ids[start:start + n], alone)
        assert torch.equal(out[start:start + n], layer(s.unsqueeze(0))[0])
        assert (ids[start:start + min(3, n)] == -1).all()  # the first k - 1 of EVERY sequence
        start += n
    # the 3-base sequence (no complete 4-mer) reads only the zero row
    assert torch.count_nonzero(out[9:12]) == 0


def test_n_and_specials_have_no_kmer_and_read_the_zero_row():
    layer = KmerEmbedding(5, 2, BASES)
    tokens = torch.tensor([[3, 4, N_ID, 5, 6, CLS_ID, 3, 3]])
    assert layer.kmer_ids(tokens).tolist() == [[-1, 1, -1, -1, 11, -1, -1, 0]]
    out = layer(tokens)
    assert torch.count_nonzero(out[0, [0, 2, 3, 5, 6]]) == 0
    assert torch.equal(out[0, 1], layer.table.weight[1])
    # ids beyond the base LUT (a bigger vocabulary) are "not ACGT" too
    assert layer.kmer_ids(torch.tensor([[3, 40, 4]])).tolist() == [[-1, -1, -1]]


def test_exact_table_up_to_k8_hashed_above():
    assert not KmerEmbedding(2, 8, BASES).hashed
    assert KmerEmbedding(2, 8, BASES).table.num_embeddings == 4 ** 8 + 1
    big = KmerEmbedding(2, 12, BASES)
    assert big.hashed and big.table.num_embeddings == 65537 + 1
    ids = torch.tensor([-1, 0, 65537, 4 ** 12 - 1])
    assert big.rows(ids).tolist() == [65537, 0, 0, (4 ** 12 - 1) % 65537]
    small = KmerEmbedding(2, 3, BASES, num_buckets=7)  # 64 k-mers into 7 rows
    assert small.hashed and small.rows(torch.tensor([63, -1])).tolist() == [63 % 7, 7]


def test_gradients_skip_the_zero_row_and_repr():
    layer = KmerEmbedding(3, 2, BASES)
    layer(torch.tensor([[3, 4, 5]])).sum().backward()
    assert torch.count_nonzero(layer.table.weight.grad[layer.null_row]) == 0
    assert "k=2" in repr(layer) and "exact" in repr(layer)
    layer.reset_parameters()
    assert torch.count_nonzero(layer.table.weight[layer.null_row]) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k must be"), (dict(k=13), "k must be"),
    (dict(base_ids=(3, 4, 5)), "base_ids"), (dict(base_ids=(3, 3, 5, 6)), "base_ids"),
    (dict(num_buckets=1), "num_buckets"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KmerEmbedding(**{"channels": 4, "k": 3, "base_ids": BASES, **kwargs})


def test_bad_inputs():
    layer = KmerEmbedding(4, 3, BASES)
    with pytest.raises(ValueError, match="integer ids"):
        layer(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        layer(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        layer(torch.zeros(5, dtype=torch.long), torch.zeros(4, dtype=torch.long))
