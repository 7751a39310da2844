"""Batches for the trainer: fixed length [B, N], variable length concatenated [T] + ``batch``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..tasks import TaskData
from .distributed import DistInfo
from .samplers import BucketSampler, DistributedBatchSampler


@dataclass
class Batch:
    """One step's samples on this rank.

    ``x``: [B, N] / [B, N, F] (fixed length) or [T] / [T, F] concatenated with ``batch`` [T]
    (variable length; no padding: the baselines pad internally with a mask). ``y``: [B].
    ``lengths``: [B]. ``index``: [B] dataset indices.
    """

    x: Tensor
    y: Tensor
    lengths: Tensor
    index: Tensor
    batch: Optional[Tensor] = None

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.x), move(self.y), self.lengths, self.index, move(self.batch))

    def __len__(self) -> int:
        return self.y.numel()


def dataset_lengths(ds: Dataset) -> Tensor:
    """Length of every item: ``ds.lengths`` when the dataset has it, else by reading every item."""
    lengths = getattr(ds, "lengths", None)
    if lengths is not None:
        return torch.as_tensor(lengths, dtype=torch.long)
    return torch.tensor([len(ds[i][0]) for i in range(len(ds))], dtype=torch.long)


def collate(ds: Dataset, indices: Sequence[int], variable_length: bool) -> Batch:
    items = [ds[i] for i in indices]
    xs = [torch.as_tensor(x) for x, _ in items]
    y = torch.stack([torch.as_tensor(t) for _, t in items]) if items else torch.zeros(0)
    lengths = torch.tensor([x.size(0) for x in xs], dtype=torch.long)
    index = torch.as_tensor(list(indices), dtype=torch.long)
    if not variable_length:
        return Batch(torch.stack(xs), y, lengths, index)
    batch = torch.repeat_interleave(torch.arange(len(xs)), lengths)
    return Batch(torch.cat(xs), y, lengths, index, batch)


def train_sampler(task: TaskData, batch_size: int, seed: int, info: DistInfo,
                  lengths: Tensor) -> DistributedBatchSampler:
    """Global batches split across ranks (one process = the same steps as P processes)."""
    if task.variable_length:
        return BucketSampler(lengths.tolist(), batch_size, info.world_size, info.rank, seed=seed)
    return DistributedBatchSampler(len(task.train), batch_size, info.world_size, info.rank,
                                   seed=seed)


def eval_batches(lengths: Tensor, batch_size: int) -> list[list[int]]:
    """Every index once, in batches of similar length (sorted), for evaluation."""
    order = torch.argsort(lengths, stable=True).tolist()
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
