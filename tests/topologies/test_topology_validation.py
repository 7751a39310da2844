"""Bad sizes and names fail loudly, naming the argument; nothing is clipped."""
from __future__ import annotations

import pytest
import torch

import topologies


@pytest.mark.parametrize("build", [topologies.chord, topologies.cdil])
@pytest.mark.parametrize("bad,error", [(0, ValueError), (-3, ValueError), (1.5, TypeError), ("3", TypeError),
                                       (True, TypeError), (None, TypeError)])
def test_num_nodes(build, bad, error) -> None:
    with pytest.raises(error, match="num_nodes"):
        build(bad)


@pytest.mark.parametrize("build", [topologies.chord, topologies.cdil])
@pytest.mark.parametrize("bad,error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("2", TypeError),
                                       (False, TypeError)])
def test_num_factors(build, bad, error) -> None:
    with pytest.raises(error, match="num_factors"):
        build(16, num_factors=bad)


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("4", TypeError),
                                       (True, TypeError)])
def test_radius(bad, error) -> None:
    with pytest.raises(error, match="radius"):
        topologies.cdil(16, radius=bad)


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="protocol.*'butterfly'"):
        topologies.get("butterfly", 16)



def test_get_takes_radius_for_every_protocol() -> None:
    """Callers pass radius without special-casing CDIL; CHORD validates it and has no use for it."""
    assert torch.equal(topologies.get("chord", 16, radius=2).offsets, topologies.chord(16).offsets)
    assert topologies.get("cdil", 16, radius=2).num_slots == 5
    with pytest.raises(ValueError, match="radius"):
        topologies.get("chord", 16, radius=0)
    with pytest.raises(TypeError, match="radius"):
        topologies.cdil(16, radius=2.5)


@pytest.mark.parametrize("n,m", [(1, 1), (2, 1), (3, 2), (16, 4), (17, 5), (1024, 10), (1025, 11)])
def test_default_num_factors_is_ceil_log2(n, m) -> None:
    assert topologies.default_num_factors(n) == m
    assert topologies.chord(n).num_factors == m


def test_explicit_sizes_are_kept() -> None:
    topo = topologies.cdil(16, num_factors=6, radius=2)  # deeper than default: allowed, not clipped
    assert (topo.num_factors, topo.num_slots) == (6, 5)
    assert topo.offsets[5].tolist() == [0, 32, 64, -32, -64]


@pytest.mark.parametrize("bad", [-1, 5, 1.0, True])
def test_reachability_depth(bad) -> None:
    with pytest.raises(ValueError, match="num_factors"):
        topologies.chord(16).reachable_offsets(bad)  # M = 4: 0..4 allowed
    identity = topologies.chord(16).reachable_offsets(0)  # zero factors: only offset 0
    assert bool(identity[0]) and int(identity.sum()) == 1
