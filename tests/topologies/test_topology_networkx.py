"""to_networkx keeps every edge, duplicates included, with slot / factor / weight attributes."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

import topologies

nx = pytest.importorskip("networkx")


def test_cdil_factor_with_duplicates_keeps_all_edges() -> None:
    topo = topologies.cdil(16)  # factor 3: d = 8, 9 slots onto 2 distinct sources per target
    w = torch.randn(16, 9, generator=torch.Generator().manual_seed(0))
    g = topo.to_networkx(3, weights=w)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == 16 and g.number_of_edges() == 144
    assert len(set(g.edges())) == 32
    pairs = Counter((j, i) for j, i in g.edges())
    assert pairs[(8, 0)] == 4 and pairs[(0, 0)] == 5  # +-8, +-24 -> 8; 0, +-16, +-32 -> self
    for j, i, data in g.edges(data=True):
        k = data["slot"]
        assert data["factor"] == 3
        assert j == (i + int(topo.offsets[3, k])) % 16  # the edge points source -> target
        assert data["weight"] == pytest.approx(float(w[i, k]))
    # the summed dense weight equals the graph's parallel edges added up
    dense = topo.dense(3, w)
    assert sum(d["weight"] for j, i, d in g.edges(data=True) if (j, i) == (8, 0)) == pytest.approx(
        float(dense[0, 8]))


def test_all_factors_and_weight_list() -> None:
    topo = topologies.chord(13)
    ws = [torch.full((13, topo.num_slots), float(m)) for m in range(topo.num_factors)]
    g = topo.to_networkx(weights=ws)
    assert g.number_of_edges() == topo.num_factors * 13 * topo.num_slots
    assert Counter(d["factor"] for *_, d in g.edges(data=True)) == {
        m: 13 * topo.num_slots for m in range(topo.num_factors)}
    assert all(d["weight"] == d["factor"] for *_, d in g.edges(data=True))
    assert "weight" not in next(iter(topo.to_networkx(0).edges(data=True)))[2]
    with pytest.raises(ValueError, match="weights"):
        topo.to_networkx(weights=ws[:2])
