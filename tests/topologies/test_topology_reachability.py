"""Every output depends on every input after the default M factors, and only then (floor is too shallow)."""
from __future__ import annotations

import pytest
import torch

import topologies

from topology_spec import cdil_offsets, chord_offsets, depth


@pytest.mark.parametrize("name", ["chord", "cdil"])
def test_complete_for_every_length_up_to_2048(name: str) -> None:
    incomplete = [n for n in range(1, 2049) if not bool(topologies.get(name, n).reachable_offsets().all())]
    assert incomplete == []


def _brute_force(n: int, offsets_per_factor: list[list[int]]) -> torch.Tensor:
    """Support of (I + W^(c)) ... (I + W^(1)) from dense boolean matrices built by plain loops."""
    support = torch.eye(n, dtype=torch.bool)
    for offsets in offsets_per_factor:
        step = torch.eye(n, dtype=torch.bool)
        for i in range(n):
            for o in offsets:
                step[i, (i + o) % n] = True
        support = (step.long() @ support.long()) > 0
    return support


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 12, 13, 16, 17, 24, 33])
@pytest.mark.parametrize("name", ["chord", "cdil-r1", "cdil-r4"])
def test_reachability_equals_dense_boolean_product(name: str, n: int) -> None:
    radius = {"cdil-r1": 1, "cdil-r4": 4}.get(name)
    topo = topologies.chord(n) if radius is None else topologies.cdil(n, radius=radius)
    spec = [chord_offsets(n, m) if radius is None else cdil_offsets(n, m, radius) for m in range(depth(n))]
    for count in range(1, topo.num_factors + 1):
        expected = _brute_force(n, spec[:count])
        assert torch.equal(topo.reachability(num_factors=count), expected), count
        assert torch.equal(topo.reachable_offsets(count), expected[0])  # circulant: row 0 decides
    assert bool(topo.reachability().all())


def test_reachability_grows_before_complete() -> None:
    # not vacuous: the support really is partial before the last factor
    topo = topologies.chord(1024)
    counts = [int(topo.reachable_offsets(c).sum()) for c in range(1, 11)]
    assert counts == sorted(counts) and counts[0] == 11 and counts[-1] == 1024 and counts[-2] < 1024


def test_floor_log2_is_not_enough_for_1000() -> None:
    shallow = topologies.chord(1000, num_factors=9)  # floor(log2 1000) = 9
    deep = topologies.chord(1000)  # ceil = 10
    assert deep.num_factors == 10
    reach = shallow.reachable_offsets()
    assert not bool(reach[767])  # 767 = 2*256 + 255 needs 10 hops of powers of two below 512
    assert not bool(shallow.reachability()[0, 767])  # output 0 never sees input 767
    assert bool(deep.reachable_offsets().all())
    # the same hole, found by a plain breadth-first search over hops {1, 2, 4, ..., 256}
    frontier, seen = {0}, {0}
    for _ in range(9):
        frontier = {(d + h) % 1000 for d in frontier for h in [0] + [2 ** k for k in range(9)]}
        seen |= frontier
    assert torch.equal(reach, torch.tensor([d in seen for d in range(1000)]))


@pytest.mark.parametrize("n", [2, 4, 8, 16, 64, 256])
def test_power_of_two_product_is_all_ones(n: int) -> None:
    """For N = 2^M: prod_k (I + P^(2^k)) == J exactly (each offset has one binary representation)."""
    topo = topologies.chord(n)
    eye = torch.eye(n, dtype=torch.float64)
    product = eye
    for k in range(topo.num_factors):
        select = torch.zeros(n, topo.num_slots, dtype=torch.float64)
        select[:, k + 1] = 1.0  # slot k+1 has offset 2^k: this factor is the shift P^(2^k)
        shift = topo.dense(k, select)
        assert torch.equal(shift, torch.roll(eye, shifts=2 ** k, dims=1))
        product = (eye + shift) @ product
    assert torch.equal(product, torch.ones(n, n, dtype=torch.float64))
