"""Sequence lengths of a PyG-style ``batch`` vector, checked with one host sync."""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor

from ._checks import check_tensor


# The last batch vector measured: (weak reference to it, its version counter, the result). Every
# layer of a forward reads the same batch vector, so only the first call syncs with the host.
_LAST: Optional[tuple] = None


def lengths_and_key(batch: Tensor, num_nodes: Optional[int] = None) -> tuple[Tensor, tuple[int, ...]]:
    """``(lengths [B] on batch's device, lengths as a tuple of ints)``; validates ``batch``.

    Every check and the sizes come back to the host in ONE ``.tolist()`` (the only sync of the
    variable-length path; the tuple keys the cached index tables), and the answer is kept for the
    same, unmodified ``batch`` tensor: the embedding, the positions and every layer of a forward
    share that one sync.
    """
    global _LAST
    check_tensor(batch, "batch")
    if batch.dim() != 1 or (num_nodes is not None and batch.numel() != num_nodes):
        want = "" if num_nodes is None else f" with T = {num_nodes} (the nodes of v)"
        raise ValueError(f"batch must be a [T] vector{want}, got {list(batch.shape)}")
    if batch.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"batch must be an integer tensor, got {batch.dtype}")
    if batch.numel() == 0:
        raise ValueError("batch holds no nodes (T = 0)")
    version = _version(batch)
    last = _LAST
    if version is not None and last is not None and last[0]() is batch and last[1] == version:
        return last[2]
    result = _measure(batch)
    if version is not None:
        _LAST = (weakref.ref(batch), version, result)
    return result


def _version(batch: Tensor) -> Optional[int]:
    """The tensor's in-place modification counter, or None where it has none (inference mode)."""
    try:
        return batch._version
    except RuntimeError:  # inference tensors track no version: never reuse an answer for them
        return None


def _measure(batch: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    batch = batch.long()
    lengths = torch.bincount(batch.clamp(min=0))  # [B]
    flags = torch.stack([(batch[1:] < batch[:-1]).any(), batch[0] < 0]).long()  # [unsorted, negative]
    unsorted, negative, *sizes = torch.cat([flags, lengths]).tolist()  # the one host sync
    if unsorted or negative:
        raise ValueError("batch must be sorted and non-negative (PyG convention: the nodes of sequence b "
                         "are contiguous)")
    empty = [b for b, n in enumerate(sizes) if n == 0]
    if empty:
        raise ValueError(f"batch has sequences with no nodes: {empty[:5]}")
    return lengths, tuple(sizes)


def sequence_lengths(batch: Tensor, num_nodes: Optional[int] = None) -> Tensor:
    """LongTensor [B]: the length of every sequence of a sorted PyG ``batch`` vector [T].

    Raises a one-line ``ValueError`` / ``TypeError`` if ``batch`` is not a sorted, non-negative integer
    vector (of ``num_nodes`` entries when given) or if a sequence in ``0..B-1`` has no nodes.
    """
    return lengths_and_key(batch, num_nodes)[0]


def positions_in_sequence(batch: Tensor) -> tuple[Tensor, Tensor]:
    """Every element's position inside its own sequence [T], and every sequence's length [B], for a
    sorted PyG ``batch`` vector [T] (checked as :func:`sequence_lengths` checks it)."""
    lengths = sequence_lengths(batch)
    start = torch.cumsum(lengths, 0) - lengths  # [B] first row of each sequence
    return torch.arange(batch.numel(), device=batch.device) - start[batch], lengths
