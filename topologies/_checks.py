"""Argument validation shared by the protocol builders: errors name the argument and what is allowed."""
from __future__ import annotations

import numbers


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and the allowed range. Never clips."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def default_num_factors(num_nodes: int) -> int:
    """M = max(1, ceil(log2 N)): the smallest depth whose CHORD product reaches every node."""
    return max(1, (num_nodes - 1).bit_length())
