"""The vectorised tables of a BatchedTopology (every sequence with the same offsets) equal the
per-sequence tables concatenated (the path kept for topologies whose offsets differ)."""
from __future__ import annotations

import pytest
import torch

import topologies
from topologies import BatchedTopology, Topology


def _both(name: str, lengths: list[int], m: int = 5) -> tuple[BatchedTopology, BatchedTopology]:
    fast = topologies.batch([topologies.get(name, n, num_factors=m, radius=2) for n in lengths])
    assert fast.offsets is not None  # CHORD / CDIL offsets do not depend on the length
    slow = BatchedTopology(fast.topologies, fast.ptr, None)  # the per-sequence concatenation
    return fast, slow


@pytest.mark.parametrize("name", ["chord", "cdil"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_tables_equal_the_per_sequence_concatenation(name, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 40, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist()
    fast, slow = _both(name, lengths)
    for m in range(fast.num_factors):
        assert torch.equal(fast.source_index(m), slow.source_index(m))
        assert torch.equal(fast.inverse_index(m), slow.inverse_index(m))
        assert torch.equal(fast.edge_index(m), slow.edge_index(m))
        assert torch.equal(fast.slot(m), slow.slot(m))
        ft, st = fast.tables(m), slow.tables(m)
        assert torch.equal(ft.source, st.source) and torch.equal(ft.inverse, st.inverse)
        assert ft.shifts is None  # the batch is not circulant


def test_chord_factors_share_one_table_and_bad_factor_is_refused():
    fast, _ = _both("chord", [7, 3, 16])
    assert fast.source_index(0) is fast.source_index(4)  # every CHORD factor has the same row
    assert fast.tables(1) is fast.tables(3)
    cdil, _ = _both("cdil", [7, 3, 16])
    assert not torch.equal(cdil.source_index(0), cdil.source_index(1))
    with pytest.raises(IndexError):
        fast.source_index(5)


def test_different_offsets_keep_the_concatenation():
    a = topologies.chord(8, num_factors=2)  # rows [0, 1, 2]
    b = Topology("custom", 5, torch.tensor([[0, 2, 1], [0, 3, 1]]))
    bt = topologies.batch([a, b])
    assert bt.offsets is None
    assert torch.equal(bt.source_index(1), torch.cat([a.source_index(1), b.source_index(1) + 8]))


def test_to_keeps_the_shared_offsets():
    fast, _ = _both("cdil", [4, 9])
    moved = fast.to("cpu")
    assert moved is fast and fast.offsets is not None
