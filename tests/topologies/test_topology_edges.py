"""Edge sets, their order, PyG direction and the dense factors they stand for."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import to_dense_adj

import topologies

from topology_spec import cdil_offsets, chord_offsets, dense, depth, edges

SIZES = [1, 2, 3, 5, 13, 16, 1000, 1024, 4097]
CASES = [("chord", {}), ("cdil", {"radius": 1}), ("cdil", {"radius": 4})]


def _spec_offsets(name: str, n: int, m: int, kw: dict) -> list[int]:
    return chord_offsets(n, m) if name == "chord" else cdil_offsets(n, m, kw["radius"])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,kw", CASES, ids=["chord", "cdil-r1", "cdil-r4"])
def test_edges_match_plain_loop(name: str, kw: dict, n: int) -> None:
    topo = topologies.get(name, n, **kw)
    assert topo.num_factors == depth(n)
    assert topo.num_slots == (depth(n) + 1 if name == "chord" else 2 * kw["radius"] + 1)
    for m in range(topo.num_factors):
        offsets = _spec_offsets(name, n, m, kw)
        assert topo.offsets[m].tolist() == offsets
        src, dst, slot = edges(n, offsets)
        edge_index = topo.edge_index(m)
        assert edge_index.dtype == torch.long and edge_index.shape == (2, n * topo.num_slots)
        assert edge_index[0].tolist() == src, "row 0 must be the source j = (i + o_k) mod N"
        assert edge_index[1].tolist() == dst, "row 1 must be the target i, target-major"
        assert topo.slot(m).tolist() == slot
        assert topo.source_index(m).reshape(-1).tolist() == src
        assert topo.shifts(m) == tuple(o % n for o in offsets)
        inverse = topo.inverse_index(m)  # target reading source j through slot k
        assert inverse.tolist() == [[(j - o) % n for o in offsets] for j in range(n)]


def _dense_cases():
    yield "chord", 16, 0, {}
    yield "cdil", 16, 2, {"radius": 4}  # d = 4: 4 distinct columns per row
    yield "cdil", 16, 3, {"radius": 4}  # d = 8: 2 distinct columns per row, 9 slots
    yield "cdil", 1, 0, {"radius": 4}  # every slot reads node 0
    yield "cdil", 2, 0, {"radius": 4}  # slots 0,2,4,6,8 -> i ; 1,3,5,7 -> 1-i
    yield "chord", 1, 0, {}
    yield "chord", 2, 0, {}
    yield "chord", 13, 3, {}
    yield "cdil", 13, 3, {"radius": 1}


@pytest.mark.parametrize("name,n,m,kw", list(_dense_cases()))
def test_dense_factor_sums_duplicates(name: str, n: int, m: int, kw: dict) -> None:
    topo = topologies.get(name, n, **kw)
    gen = torch.Generator().manual_seed(n * 31 + m)
    w = torch.randn(n, topo.num_slots, generator=gen, dtype=torch.float64)
    expected = torch.tensor(dense(n, _spec_offsets(name, n, m, kw), w.tolist()), dtype=torch.float64)

    # 1) Topology.dense
    torch.testing.assert_close(topo.dense(m, w), expected, rtol=0, atol=1e-12)

    # 2) from edge_index + slot alone: W[target, source] += w[target, slot]
    ei, slot = topo.edge_index(m), topo.slot(m)
    w_e = w[ei[1], slot]  # [E]
    built = torch.zeros(n, n, dtype=torch.float64).index_put_((ei[1], ei[0]), w_e, accumulate=True)
    torch.testing.assert_close(built, expected, rtol=0, atol=1e-12)

    # 3) PyG's dense adjacency is indexed [source, target] and sums duplicates: its transpose is W
    adj = to_dense_adj(ei, edge_attr=w_e, max_num_nodes=n)[0]
    torch.testing.assert_close(adj.T, expected, rtol=0, atol=1e-12)

    # 4) gather -> multiply -> scatter-add into the target (the message-passing semantics) is W @ v
    v = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    out = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, ei[1], w_e[:, None] * v[ei[0]])
    torch.testing.assert_close(out, expected @ v, rtol=1e-12, atol=1e-12)


def test_duplicates_are_kept_not_coalesced() -> None:
    topo = topologies.cdil(16)  # radius 4, last factor d = 8
    ei = topo.edge_index(3)
    assert ei.size(1) == 16 * 9
    assert torch.unique(ei, dim=1).size(1) == 32  # 2 distinct sources per target
    n1 = topologies.cdil(1).edge_index(0)
    assert n1.tolist() == [[0] * 9, [0] * 9]


def test_dense_rejects_wrong_weight_shape() -> None:
    with pytest.raises(ValueError, match="weights"):
        topologies.chord(8).dense(0, torch.zeros(8, 3))


def test_factor_index_out_of_range() -> None:
    topo = topologies.chord(8)
    with pytest.raises(IndexError, match="m=3"):
        topo.edge_index(3)
    # a negative index is refused (it used to mean the last factor, silently), naming m
    for view in (topo.edge_index, topo.source_index, topo.inverse_index, topo.shifts, topo.slot):
        with pytest.raises(IndexError, match=r"m=-1 out of range.*\[0, 2\]"):
            view(-1)
    with pytest.raises(ValueError, match="m=-1"):  # also a ValueError, for argument checks
        topo.dense(-1, torch.zeros(8, topo.num_slots))
    with pytest.raises(TypeError, match="factor m must be an int"):
        topo.edge_index(1.0)


def test_chord_factors_share_index_tensors() -> None:
    # every CHORD factor has the same pattern: one cached tensor, not M copies
    topo = topologies.chord(64)
    assert all(topo.edge_index(m) is topo.edge_index(0) for m in range(topo.num_factors))
    cd = topologies.cdil(64)
    assert cd.edge_index(0) is not cd.edge_index(1)
