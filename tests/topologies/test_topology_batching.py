"""Many sequences as one disjoint graph: offsets per sequence, nothing crosses sequences."""
from __future__ import annotations

import pytest
import torch

import topologies

LENGTHS = [5, 9, 16, 1, 3]


def _batched(name: str) -> tuple[list[topologies.Topology], topologies.BatchedTopology]:
    topos = [topologies.get(name, n, num_factors=4) for n in LENGTHS]
    return topos, topologies.batch(topos)


@pytest.mark.parametrize("name", ["chord", "cdil"])
def test_ptr_batch_and_per_sequence_offsets(name: str) -> None:
    topos, bt = _batched(name)
    assert bt.ptr.tolist() == [0, 5, 14, 30, 31, 34]
    assert bt.batch.tolist() == sum(([b] * n for b, n in enumerate(LENGTHS)), [])
    assert (bt.num_graphs, bt.num_nodes, bt.num_factors, bt.num_slots) == (5, 34, 4, topos[0].num_slots)
    for m in range(bt.num_factors):
        ei = bt.edge_index(m)
        assert ei.shape == (2, 34 * bt.num_slots)
        expected = torch.cat([t.edge_index(m) + start for t, start in zip(topos, bt.ptr[:-1].tolist())], 1)
        assert torch.equal(ei, expected)
        assert torch.equal(bt.batch[ei[0]], bt.batch[ei[1]]), "an edge crosses two sequences"
        assert torch.equal(bt.slot(m), torch.arange(34 * bt.num_slots) % bt.num_slots)


@pytest.mark.parametrize("name", ["chord", "cdil"])
def test_source_and_inverse_are_inverse_permutations(name: str) -> None:
    _, bt = _batched(name)
    nodes = torch.arange(bt.num_nodes)
    for m in range(bt.num_factors):
        src, inv = bt.source_index(m), bt.inverse_index(m)  # [T, K] each
        for k in range(bt.num_slots):
            assert torch.equal(src[inv[:, k], k], nodes)
            assert torch.equal(inv[src[:, k], k], nodes)
            assert torch.equal(bt.batch[src[:, k]], bt.batch)  # stays inside its own sequence
            for b, (lo, hi) in enumerate(zip(bt.ptr[:-1].tolist(), bt.ptr[1:].tolist())):
                assert sorted(src[lo:hi, k].tolist()) == list(range(lo, hi)), (b, k)


def test_batch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="topologies"):
        topologies.batch([])
    with pytest.raises(ValueError, match=r"topologies\[1\]"):
        topologies.batch([topologies.chord(8), topologies.chord(16)])  # M = 3 vs 4
    with pytest.raises(TypeError, match=r"topologies\[1\]"):
        topologies.batch([topologies.chord(8), "chord"])
