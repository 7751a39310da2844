r"""Batch samplers whose batches are *global*: each step's batch is split across ranks.

Both samplers yield, on rank ``r`` of ``P``, the ``r``-th contiguous slice of step ``s``'s global
batch. Concatenating the slices of all ranks in rank order gives exactly the global batch that one
process (``num_replicas=1``) gets at step ``s``; with the loss rule of
:mod:`sparsemix.train.distributed` this makes P processes take the same optimiser steps as one.

- :class:`DistributedBatchSampler` — fixed-length data: a seeded permutation cut into global
  batches of ``batch_size``; each global batch is split into P near-equal counts.
- :class:`BucketSampler` — variable-length data: the permutation is cut into *buckets* of
  ``batch_size * bucket_size_multiplier`` indices, each bucket is sorted by length and cut into
  global batches (so a batch holds similar lengths, which keeps the per-rank work even), the
  order of the global batches is shuffled, and each global batch is split across ranks into
  contiguous parts with near-equal token counts.

Guarantees (every epoch, every rank):

- every index appears exactly once across all ranks and steps (nothing padded or replicated),
  unless ``drop_last=True``, which drops the final short global batch;
- ``len(sampler)`` (the number of steps) is the same on every rank, and every rank gets at least
  one index per step. For that, a final short global batch with fewer than ``min_batch_size``
  samples (default: ``num_replicas``) is merged into another global batch (the one before it;
  for buckets, the one of the closest mean length), which then holds more than ``batch_size``
  samples. A single process reproduces a P-rank run
  step for step by passing ``min_batch_size=P``; with the default the two coincide whenever
  ``len(data) % batch_size`` is 0 or at least P;
- batches depend only on ``(seed, epoch)`` and the constructor arguments, not on the rank
  (call :meth:`set_epoch` before each epoch, as with :class:`torch.utils.data.DistributedSampler`).
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch.utils.data import Sampler


class DistributedBatchSampler(Sampler[list[int]]):
    r"""Global batches of a seeded permutation, each split contiguously across ranks.

    Use as ``DataLoader(dataset, batch_sampler=sampler)``.

    Args:
        num_samples: size of the dataset.
        batch_size: the *global* batch size (summed over ranks).
        num_replicas: number of ranks P.
        rank: this process's rank in ``[0, P)``.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        shuffle: permute the samples (and, for buckets, the batch order) every epoch.
        drop_last: drop the final global batch when it is short.
        min_batch_size: a final short global batch with fewer samples than this is merged into the
            one before it (default ``num_replicas``, so every rank gets at least one sample).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        min_batch_size: Optional[int] = None,
    ) -> None:
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if batch_size < num_replicas:
            raise ValueError(
                f"batch_size (the global batch) must be >= num_replicas={num_replicas} so that "
                f"every rank gets a sample, got {batch_size}"
            )
        if min_batch_size is None:
            min_batch_size = num_replicas
        if not num_replicas <= min_batch_size <= batch_size:
            raise ValueError(
                f"min_batch_size must be in [num_replicas={num_replicas}, batch_size={batch_size}], "
                f"got {min_batch_size}"
            )
        if num_samples < num_replicas:
            raise ValueError(
                f"the dataset has {num_samples} samples, fewer than num_replicas={num_replicas}"
            )
        if drop_last and num_samples < batch_size:
            raise ValueError(
                f"drop_last=True with {num_samples} samples < batch_size={batch_size} gives no batch"
            )
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.min_batch_size = int(min_batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of epoch ``epoch`` (call before iterating, on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        if rest == 0 or self.drop_last:
            return full
        if rest < self.min_batch_size and full > 0:
            return full  # merged into a full batch
        return full + 1

    # -- building blocks, overridden by BucketSampler ------------------------------------------

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + self.epoch)

    def _permutation(self, g: torch.Generator) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.num_samples, generator=g)
        return torch.arange(self.num_samples)

    def _cut(self, order: list[int]) -> list[list[int]]:
        """Cut ``order`` into global batches, handling the final short batch."""
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if batches and len(batches[-1]) < self.batch_size:
            if self.drop_last:
                batches.pop()
            elif len(batches[-1]) < self.min_batch_size and len(batches) > 1:
                tail = batches.pop()
                i = self._merge_partner(batches, tail)
                batches[i] = batches[i] + tail
        return batches

    def _merge_partner(self, batches: list[list[int]], tail: list[int]) -> int:
        """Which global batch absorbs a too-short final batch: the one before it."""
        return len(batches) - 1

    def global_batches(self) -> list[list[int]]:
        """All global batches of the current epoch, in step order (identical on every rank)."""
        return self._cut(self._permutation(self._generator()).tolist())

    def split(self, batch: list[int]) -> list[list[int]]:
        """Split one global batch into ``num_replicas`` contiguous, non-empty parts."""
        bounds = [round(r * len(batch) / self.num_replicas) for r in range(self.num_replicas + 1)]
        return [batch[bounds[r]:bounds[r + 1]] for r in range(self.num_replicas)]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield self.split(batch)[self.rank]


class BucketSampler(DistributedBatchSampler):
    r"""Length-bucketing global batches for variable-length data, split across ranks by tokens.

    Each epoch: a seeded permutation is cut into buckets of
    ``batch_size * bucket_size_multiplier`` indices; each bucket is sorted by length (ties keep
    their random order) and cut into global batches of ``batch_size``; the batch order is shuffled;
    each global batch is split into ``num_replicas`` contiguous, non-empty parts whose token counts
    are as equal as a contiguous split allows (each rank's share of the work).

    Args:
        lengths: length of every sample (tokens), e.g. ``[len(x) for x, _ in dataset]``.
        batch_size: the *global* batch size (summed over ranks).
        num_replicas, rank, seed, shuffle, drop_last, min_batch_size: as in
            :class:`DistributedBatchSampler`.
        bucket_size_multiplier: bucket size in global batches; larger gives batches of more
            similar lengths and less randomness in which samples share a batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        bucket_size_multiplier: int = 50,
        min_batch_size: Optional[int] = None,
    ) -> None:
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        if lengths_t.dim() != 1:
            raise ValueError(f"lengths must be a flat sequence of ints, got shape {tuple(lengths_t.shape)}")
        if lengths_t.numel() and int(lengths_t.min()) < 1:
            bad = int(torch.nonzero(lengths_t < 1)[0])
            raise ValueError(f"lengths must be >= 1, got lengths[{bad}] = {int(lengths_t[bad])}")
        if bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be >= 1, got {bucket_size_multiplier}")
        super().__init__(
            lengths_t.numel(), batch_size, num_replicas, rank, seed, shuffle, drop_last, min_batch_size
        )
        self.lengths = lengths_t
        self.bucket_size_multiplier = int(bucket_size_multiplier)

    def set_lengths(self, lengths: Sequence[int]) -> None:
        """New lengths for the same number of samples (a training set re-drawn for an epoch,
        :class:`~sparsemix.data.dataset.ResampledFragmentDataset`); call before :meth:`set_epoch`
        on every rank. The number of steps (``len(self)``) does not change."""
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        if lengths_t.shape != self.lengths.shape:
            raise ValueError(f"set_lengths needs {self.num_samples} lengths (the sampler's number "
                             f"of samples), got shape {tuple(lengths_t.shape)}")
        if lengths_t.numel() and int(lengths_t.min()) < 1:
            bad = int(torch.nonzero(lengths_t < 1)[0])
            raise ValueError(f"lengths must be >= 1, got lengths[{bad}] = {int(lengths_t[bad])}")
        self.lengths = lengths_t

    def global_batches(self) -> list[list[int]]:
        g = self._generator()
        perm = self._permutation(g)
        bucket = self.batch_size * self.bucket_size_multiplier
        order: list[int] = []
        for start in range(0, self.num_samples, bucket):
            chunk = perm[start:start + bucket]
            # stable: equal lengths keep their (random) permutation order
            chunk = chunk[torch.sort(self.lengths[chunk], stable=True).indices]
            order.extend(chunk.tolist())
        # Buckets are multiples of batch_size, so only the very last global batch can be short.
        batches = self._cut(order)
        # a merged batch is re-sorted so that the contiguous rank split stays length-ordered
        batches = [b if len(b) <= self.batch_size else self._by_length(b) for b in batches]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return batches

    def _by_length(self, batch: list[int]) -> list[int]:
        idx = torch.as_tensor(batch, dtype=torch.long)
        return idx[torch.sort(self.lengths[idx], stable=True).indices].tolist()

    def _merge_partner(self, batches: list[list[int]], tail: list[int]) -> int:
        """The global batch whose mean length is closest to the short final batch's (first on ties)."""
        target = float(self.lengths[tail].double().mean())
        gaps = [abs(float(self.lengths[b].double().mean()) - target) for b in batches]
        return gaps.index(min(gaps))

    def split(self, batch: list[int]) -> list[list[int]]:
        """Contiguous split into ``num_replicas`` non-empty parts with near-equal token counts."""
        p, n = self.num_replicas, len(batch)
        if p == 1:
            return [batch]
        cum = torch.cumsum(self.lengths[batch], 0).tolist()  # cum[i] = tokens in batch[:i+1]
        total = cum[-1]
        cuts = [0]
        for r in range(1, p):
            # part r starts at index c; keep >= 1 sample for this and every later part
            lo, hi = cuts[-1] + 1, n - (p - r)
            target = r * total / p
            c = min(range(lo, hi + 1), key=lambda c: (abs(cum[c - 1] - target), c))
            cuts.append(c)
        cuts.append(n)
        return [batch[cuts[r]:cuts[r + 1]] for r in range(p)]


def padded_tokens(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> int:
    """Tokens a padded layout of ``batches`` would hold (sum of batch max length × batch size).

    A diagnostic for how well a sampler groups similar lengths; Paramixer itself never pads.
    """
    lengths = list(lengths)
    return sum(max(lengths[i] for i in b) * len(b) for b in batches if len(b))


__all__ = ["DistributedBatchSampler", "BucketSampler", "padded_tokens"]
