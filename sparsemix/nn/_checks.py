"""Input checks shared by the layers: every message names the argument and the shapes involved."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def check_node_dim(v: Tensor, x: Tensor, v_name: str, x_name: str) -> None:
    """x must have the same leading shape [*, N] as v (no silent broadcasting)."""
    if x.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"{x_name} must have the same leading shape [*, N] as {v_name}: "
                         f"{v_name} is {list(v.shape)}, {x_name} is {list(x.shape)}")


def check_features(t: Tensor, channels: int, name: str) -> None:
    if t.dim() < 2 or t.size(-1) != channels:
        raise ValueError(f"{name} must have shape [..., N, {channels}], got {list(t.shape)}")


def check_finite(t: Tensor, name: str) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or inf values (check_inputs=True)")


def sequence_sizes(batch: Tensor, num_nodes: int, batch_size: Optional[int] = None) -> Tensor:
    """Sizes of the sequences of a sorted PyG ``batch`` vector [T]; raises if unsorted or mismatched."""
    if batch.dim() != 1 or batch.numel() != num_nodes:
        raise ValueError(f"batch must be a [T] vector with T = {num_nodes} (the nodes of v), "
                         f"got {list(batch.shape)}")
    if batch.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"batch must be an integer tensor, got {batch.dtype}")
    if num_nodes == 0:
        raise ValueError("v holds no nodes (T = 0)")
    if bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) < 0:
        raise ValueError("batch must be sorted and non-negative (PyG convention: nodes of sequence b "
                         "are contiguous)")
    sizes = torch.bincount(batch, minlength=batch_size or 0)
    if bool((sizes == 0).any()):
        empty = torch.nonzero(sizes == 0).flatten().tolist()
        raise ValueError(f"batch has sequences with no nodes: {empty[:5]}")
    return sizes
