"""An independent, plain-Python restatement of the CHORD / CDIL definitions (docs/design.md, docs/method.md),
written without the package's code, that the tests compare the vectorised builders against."""
from __future__ import annotations

import math


def depth(n: int) -> int:
    """M = max(1, ceil(log2 N))."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def chord_offsets(n: int, m: int) -> list[int]:
    """Factor m of CHORD: [0, 1, 2, 4, ..., 2^(M-1)] for every m."""
    return [0] + [2 ** k for k in range(depth(n))]


def cdil_offsets(n: int, m: int, radius: int) -> list[int]:
    """Factor m (0-based) of CDIL: d = 2^m, [0, d, 2d, ..., r*d, -d, ..., -r*d]."""
    d = 2 ** m
    return [0] + [s * d for s in range(1, radius + 1)] + [-s * d for s in range(1, radius + 1)]


def edges(n: int, offsets: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(sources, targets, slots) in the fixed order e = i*K + k: target i reads (i + o_k) mod N."""
    src, dst, slot = [], [], []
    for i in range(n):
        for k, o in enumerate(offsets):
            src.append((i + o) % n)
            dst.append(i)
            slot.append(k)
    return src, dst, slot


def dense(n: int, offsets: list[int], weights: list[list[float]]) -> list[list[float]]:
    """W[i][(i + o_k) mod N] += w[i][k], duplicates summed."""
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for k, o in enumerate(offsets):
            out[i][(i + o) % n] += weights[i][k]
    return out
