"""Global-batch samplers: coverage, determinism, equal step counts, 1-vs-P equivalence, balance."""
from __future__ import annotations

import itertools
import random

import pytest

from sparsemix.train.samplers import BucketSampler, DistributedBatchSampler, padded_tokens

# (num_samples, global batch, replicas, seed): divisible, ragged tails of every size, tails
# shorter than the number of ranks (merged), one batch only, batch == replicas.
CASES = [
    (100, 10, 1, 0), (100, 10, 2, 1), (101, 10, 2, 2), (103, 10, 4, 3), (97, 8, 3, 4),
    (50, 16, 4, 5), (7, 16, 3, 6), (33, 4, 4, 7), (1000, 32, 8, 8), (5, 5, 5, 9), (41, 10, 3, 10),
]


def _lengths(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 300) for _ in range(n)]


def _make(kind: str, n: int, batch: int, replicas: int, rank: int, seed: int, **kw):
    if kind == "bucket":
        return BucketSampler(_lengths(n, 1234 + n), batch, replicas, rank, seed=seed,
                             bucket_size_multiplier=3, **kw)
    return DistributedBatchSampler(n, batch, replicas, rank, seed=seed, **kw)


def _epoch(kind, n, batch, replicas, seed, epoch, **kw) -> list[list[list[int]]]:
    """per_rank[r][s] = rank r's batch at step s."""
    per_rank = []
    for r in range(replicas):
        s = _make(kind, n, batch, replicas, r, seed, **kw)
        s.set_epoch(epoch)
        per_rank.append(list(s))
        assert len(per_rank[-1]) == len(s)
    return per_rank


@pytest.mark.parametrize("kind", ["bucket", "plain"])
@pytest.mark.parametrize("n,batch,replicas,seed", CASES)
def test_every_index_once_equal_steps_nonempty(kind, n, batch, replicas, seed):
    for epoch in (0, 3):
        per_rank = _epoch(kind, n, batch, replicas, seed, epoch)
        steps = {len(b) for b in per_rank}
        assert len(steps) == 1, f"ranks disagree on the number of steps: {steps}"
        seen = [i for batches in per_rank for b in batches for i in b]
        assert sorted(seen) == list(range(n))  # exactly once, nothing padded or replicated
        assert all(len(b) >= 1 for batches in per_rank for b in batches)
        # global batches are batch_size except the last (merged tail < replicas makes it larger)
        sizes = sorted(sum(len(per_rank[r][s]) for r in range(replicas)) for s in range(steps.pop()))
        assert sum(sizes) == n
        assert all(size == batch for size in sizes[1:-1]) or len(sizes) <= 2
        assert sizes[-1] < batch + replicas


@pytest.mark.parametrize("kind", ["bucket", "plain"])
@pytest.mark.parametrize("n,batch,replicas,seed", CASES)
def test_ranks_concatenate_to_single_process_batches(kind, n, batch, replicas, seed):
    """Rank slices of step s, in rank order, are the single-process batch of step s."""
    single = _epoch(kind, n, batch, 1, seed, 2, min_batch_size=replicas)[0]
    per_rank = _epoch(kind, n, batch, replicas, seed, 2)
    assert [list(itertools.chain(*step)) for step in zip(*per_rank)] == single
    if n % batch == 0 or n % batch >= replicas:  # no merged tail: the default 1-process run agrees
        assert _epoch(kind, n, batch, 1, seed, 2)[0] == single


@pytest.mark.parametrize("kind", ["bucket", "plain"])
def test_deterministic_for_seed_and_epoch(kind):
    a = _epoch(kind, 500, 16, 4, 7, 1)
    assert a == _epoch(kind, 500, 16, 4, 7, 1)
    assert a != _epoch(kind, 500, 16, 4, 8, 1)  # another seed
    assert a != _epoch(kind, 500, 16, 4, 7, 2)  # another epoch


def test_no_shuffle_is_identity_order():
    per_rank = _epoch("plain", 10, 4, 2, 0, 0, shuffle=False)
    assert per_rank == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]


def test_drop_last_drops_only_the_short_tail():
    per_rank = _epoch("bucket", 103, 10, 2, 0, 0, drop_last=True)
    seen = [i for batches in per_rank for b in batches for i in b]
    assert len(seen) == 100 and len(set(seen)) == 100
    assert all(len(a) + len(b) == 10 for a, b in zip(*per_rank))


def test_bucketing_groups_similar_lengths_and_balances_tokens():
    lengths = _lengths(4000, 0)
    bucketed = BucketSampler(lengths, 32, seed=0)
    plain = DistributedBatchSampler(len(lengths), 32, seed=0)
    useful = sum(lengths)
    # padding waste with buckets is a small fraction of that of random batches
    waste_bucket = padded_tokens(list(bucketed), lengths) - useful
    waste_plain = padded_tokens(list(plain), lengths) - useful
    assert waste_bucket < 0.1 * waste_plain
    # per-rank token shares of a global batch are within one sequence of each other
    s = BucketSampler(lengths, 32, num_replicas=4, seed=0)
    for batch in s.global_batches():
        tokens = [sum(lengths[i] for i in part) for part in s.split(batch)]
        assert max(tokens) - min(tokens) <= 2 * max(lengths[i] for i in batch)
        assert max(tokens) <= 1.15 * sum(tokens) / 4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=1, num_replicas=2, rank=0), "batch_size"),
        (dict(batch_size=4, num_replicas=2, rank=2), "rank"),
        (dict(batch_size=4, num_replicas=0, rank=0), "num_replicas"),
        (dict(batch_size=4, num_replicas=2, rank=0, min_batch_size=1), "min_batch_size"),
        (dict(batch_size=4, num_replicas=2, rank=0, bucket_size_multiplier=0), "bucket_size_multiplier"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BucketSampler([3] * 10, **kwargs)


def test_bad_lengths_and_tiny_datasets_are_rejected():
    with pytest.raises(ValueError, match=r"lengths\[2\]"):
        BucketSampler([3, 4, 0, 5], 2)
    with pytest.raises(ValueError, match="fewer than num_replicas"):
        BucketSampler([3], 2, num_replicas=2)
    with pytest.raises(ValueError, match="drop_last"):
        DistributedBatchSampler(3, 4, drop_last=True)


def test_short_tail_merges_into_the_batch_of_closest_lengths():
    # (no shuffle, buckets of one batch) 4 short samples, then 4 long ones, then one short one
    # left over: with 2 ranks it must join the short batch (not the long one before it), which
    # stays sorted by length.
    lengths = [5, 6, 7, 8, 100, 101, 102, 103, 4]
    per_rank = _epoch_of(BucketSampler, lengths, batch_size=4, replicas=2, shuffle=False,
                         bucket_size_multiplier=1)
    steps = [a + b for a, b in zip(*per_rank)]
    assert sorted(map(sorted, steps)) == [[0, 1, 2, 3, 8], [4, 5, 6, 7]]
    merged = next(s for s in steps if len(s) == 5)
    assert [lengths[i] for i in merged] == sorted(lengths[i] for i in merged)


def _epoch_of(cls, lengths, batch_size, replicas, **kw):
    return [list(cls(lengths, batch_size, replicas, r, **kw)) for r in range(replicas)]
