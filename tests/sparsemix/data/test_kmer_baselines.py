import random

import pytest
import torch

from sparsemix.data.baselines import (accuracy_by_bucket, gc_features, kmer_counts,
                                      kmer_features, length_buckets, power_of_two_edges,
                                      run_baselines)
from sparsemix.data.tokenizer import DNATokenizer

TOK = DNATokenizer()


def _seq(n, gc, rng):
    return "".join(rng.choice("GC") if rng.random() < gc else rng.choice("AT") for _ in range(n))


def test_kmer_counts_by_hand_and_strand_symmetric():
    counts = kmer_counts(TOK.encode("AACNA"), 2)  # AA, AC (CN, NA skipped) + RCs TT, GT
    index = {"AA": 0, "AC": 1, "GT": 11, "TT": 15}
    assert counts.sum().item() == 4
    assert all(counts[i].item() == 1 for i in index.values())
    x = TOK.encode("ACGGTTACAGATTTACNGGA")
    assert torch.equal(kmer_counts(x, 3), kmer_counts(TOK.reverse_complement(x), 3))


def test_vectorised_features_equal_the_reference():
    rng = random.Random(0)
    items = [TOK.encode(_seq(n, 0.5, rng) + "N" + _seq(7, 0.5, rng)) for n in (3, 10, 57, 200)]
    items.append(TOK.encode("AC"))  # shorter than k: all zeros
    feats = kmer_features(items, 4)
    for row, x in zip(feats, items):
        ref = kmer_counts(x, 4)
        assert torch.allclose(row, ref / ref.sum().clamp_min(1))
    assert torch.equal(kmer_features(iter(items), 4, chunk_tokens=50), feats)  # chunked, lazy


def test_gc_feature():
    gc = gc_features([TOK.encode("GGCCNA"), TOK.encode("ATAT")]).squeeze(1)
    assert torch.allclose(gc, torch.tensor([0.8, 0.0]))


def test_buckets():
    assert power_of_two_edges(256, 4096) == [256, 512, 1024, 2048, 4097]
    assert power_of_two_edges(300, 1000) == [256, 512, 1001]
    assert length_buckets([256, 511, 4096], [256, 512, 4097]) == ["256-511", "256-511", "512-4096"]
    with pytest.raises(ValueError, match="outside the bucket edges"):
        length_buckets([100], [256, 512])
    acc = accuracy_by_bucket(torch.tensor([1, 0, 1]), [300, 400, 600], [256, 512, 1024])
    assert acc["256-511"] == {"accuracy": 0.5, "n": 2} and acc["all"]["n"] == 3


def test_baselines_learn_gc_and_kmer_signal():
    rng = random.Random(1)

    def split(n):
        xs, ys, ls = [], [], []
        for i in range(n):
            y = i % 2
            length = rng.choice([256, 700])
            # class 1 is GC-rich; GC alone should separate the classes well
            xs.append(TOK.encode(_seq(length, 0.35 if y == 0 else 0.6, rng)))
            ys.append(y)
            ls.append(length)
        return xs, torch.tensor(ys), ls

    splits = {"train": split(80), "val": split(40), "test": split(40)}
    res = run_baselines(splits, 2, [256, 512, 1024], ks=(2,), l2_grid=(1e-2, 1e-1))
    assert set(res) == {"gc", "kmer2"}
    assert res["gc"]["buckets"]["all"]["accuracy"] > 0.9
    assert res["kmer2"]["buckets"]["all"]["accuracy"] > 0.85
    assert len(res["gc"]["predictions"]) == 40 and res["gc"]["l2"] in (1e-2, 1e-1)
    assert torch.get_num_threads() >= 1
