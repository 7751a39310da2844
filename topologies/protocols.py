"""CHORD and CDIL: the two slot offset tables of Paramixer (docs/method.md), cached per (protocol, N, M)."""
from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Callable, Optional

import torch

from ._checks import check_int, default_num_factors
from .topology import Topology


def chord(num_nodes: int, num_factors: Optional[int] = None) -> Topology:
    """CHORD: every factor has the offsets [0, 1, 2, 4, ..., 2^(M-1)] (K = M + 1), forward links with wrap.

    Example:
        >>> chord(16).offsets[0].tolist()
        [0, 1, 2, 4, 8]
    """
    n = check_int("num_nodes", num_nodes, 1)
    m = default_num_factors(n) if num_factors is None else check_int("num_factors", num_factors, 1)
    return _chord(n, m)


@lru_cache(maxsize=256)
def _chord(num_nodes: int, num_factors: int) -> Topology:
    powers = torch.pow(2, torch.arange(num_factors, dtype=torch.long))
    row = torch.cat([torch.zeros(1, dtype=torch.long), powers])  # [K = M + 1]
    return Topology("chord", num_nodes, row.expand(num_factors, -1).contiguous())


def cdil(num_nodes: int, num_factors: Optional[int] = None, radius: int = 4) -> Topology:
    """CDIL: factor m (0-based) has dilation d = 2^m and offsets [0, d, ..., r*d, -d, ..., -r*d] (K = 2r + 1).

    Example:
        >>> cdil(16, radius=1).offsets.tolist()
        [[0, 1, -1], [0, 2, -2], [0, 4, -4], [0, 8, -8]]
    """
    n = check_int("num_nodes", num_nodes, 1)
    m = default_num_factors(n) if num_factors is None else check_int("num_factors", num_factors, 1)
    r = check_int("radius", radius, 1)
    return _cdil(n, m, r)


@lru_cache(maxsize=256)
def _cdil(num_nodes: int, num_factors: int, radius: int) -> Topology:
    dilation = torch.pow(2, torch.arange(num_factors, dtype=torch.long))[:, None]  # [M, 1]
    steps = torch.arange(1, radius + 1, dtype=torch.long)[None, :]  # [1, r]
    zero = torch.zeros(num_factors, 1, dtype=torch.long)
    offsets = torch.cat([zero, dilation * steps, -dilation * steps], dim=1)  # [M, 2r + 1]
    return Topology("cdil", num_nodes, offsets)


PROTOCOLS: dict[str, Callable[..., Topology]] = {"chord": chord, "cdil": cdil}


def get(name: str, num_nodes: int, num_factors: Optional[int] = None, radius: int = 4) -> Topology:
    """Build a topology by protocol name: the builder registered in ``PROTOCOLS``.

    ``radius`` is accepted for every protocol so callers never special-case CDIL: it is always
    validated (an integer >= 1) and passed to the builders that take one (CHORD has no radius).
    """
    build = PROTOCOLS.get(name) if isinstance(name, str) else None
    if build is None:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r}")
    check_int("radius", radius, 1)
    if "radius" in inspect.signature(build).parameters:
        return build(num_nodes, num_factors, radius=radius)
    return build(num_nodes, num_factors)
