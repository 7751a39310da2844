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


def start_epoch(ds: Dataset, sampler: DistributedBatchSampler, epoch: int) -> None:
    """Prepare epoch ``epoch`` on this rank: a training set that is re-drawn every epoch
    (``ds.set_epoch``, e.g. :class:`~sparsemix.data.dataset.ResampledFragmentDataset`) draws its
    fragments, a length-bucketing sampler reads their lengths, and the sampler selects the epoch's
    order. Every rank calls it with the same ``epoch`` and, the draws being seeded by names and
    numbers only, gets the same fragments; a resumed run gets those of an uninterrupted one."""
    set_epoch = getattr(ds, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
        if isinstance(sampler, BucketSampler):
            sampler.set_lengths(dataset_lengths(ds).tolist())
    sampler.set_epoch(epoch)


def trained_indices(task: TaskData, batch_size: int, seed: int, epochs: int,
                    steps_per_epoch: Optional[int] = None) -> list[list[int]]:
    """For each epoch, the training-set indices the trainer's steps read (all ranks together),
    for a run of ``epochs`` epochs of at most ``steps_per_epoch`` steps (``batch_size`` global,
    ``seed``): what ``sparsemix train`` will have seen, e.g. to fit a baseline on the same
    fragments. Leaves ``task.train`` at epoch 0 (call ``task.train.set_epoch(e)`` to read epoch
    ``e``'s fragments at these indices)."""
    one = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), is_main=True,
                   backend=None)
    sampler = train_sampler(task, batch_size, seed, one, dataset_lengths(task.train))
    steps = min(len(sampler), steps_per_epoch or len(sampler))
    out = []
    try:
        for epoch in range(epochs):
            start_epoch(task.train, sampler, epoch)
            out.append([i for batch in sampler.global_batches()[:steps] for i in batch])
    finally:
        start_epoch(task.train, sampler, 0)
    return out


def eval_batches(lengths: Tensor, batch_size: int) -> list[list[int]]:
    """Every index once, in batches of similar length (sorted), for evaluation."""
    order = torch.argsort(lengths, stable=True).tolist()
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
