"""Training sets drawn afresh every epoch: epoch 0 is the manifest, later epochs are new draws by
the same law from the training regions only, identical in every process."""
import math
import random
import subprocess
import sys

import pytest

from sparsemix.data import sampling
from sparsemix.data.dataset import FragmentDataset, ResampledFragmentDataset
from sparsemix.data.sampling import (SPLITS, generator_for, regions_by_coordinate,
                                     regions_by_file, sample_epoch, sample_split)
from sparsemix.train.data import start_epoch, trained_indices
from sparsemix.train.samplers import BucketSampler

LABELS = ["A", "B"]


def _store(seed=0, n=40_000, files=("a1", "a2", "a3", "b1", "b2", "b3")):
    rng = random.Random(seed)
    return {(f, f"{f}.chr"): "".join(rng.choice("ACGT") for _ in range(n)).encode() for f in files}


def _by_file(store):
    file_split = {f: SPLITS[int(f[1]) - 1] for f, _ in store}  # a1/b1 train, a2/b2 val, a3/b3 test
    return regions_by_file(store, file_split, {f: f[0].upper() for f, _ in store})


def _train_set(store, regions, per_class=200, lo=256, hi=4096, seed=0):
    manifest = sample_split("t", regions, store, {s: per_class for s in SPLITS}, LABELS, lo, hi,
                            seed=seed)
    ds = ResampledFragmentDataset(manifest["train"], store, LABELS, regions=regions["train"],
                                  task="t", seed=seed, per_class=per_class, min_length=lo,
                                  max_length=hi)
    return ds, manifest


def test_generator_keys_epoch_zero_as_before_and_later_epochs_afresh():
    # epoch 0 keeps the manifests' key (runs made before re-drawing reproduce); pinned as before
    assert generator_for("dna-species", "train", "E. coli", 0, epoch=0).random() == \
        0.8901656254199234
    draws = {generator_for("t", "train", "A", 0, epoch=e).random() for e in range(4)}
    assert len(draws) == 4
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
            generator_for("t", "train", "A", 0, epoch=bad)


def test_epoch_zero_is_the_manifest_and_later_epochs_redraw_by_the_same_law():
    store = _store()
    regions = _by_file(store)
    ds, manifest = _train_set(store, regions)
    assert ds.fragments == manifest["train"]
    # the law of epoch 0 is sample_epoch's: drawing epoch 0 again gives the manifest
    assert sample_epoch("t", "train", regions["train"], store, 200, LABELS, 256, 4096) == \
        manifest["train"]
    ds.set_epoch(1)
    one = list(ds.fragments)
    assert len(one) == len(manifest["train"]) and not set(one) & set(manifest["train"])
    assert [f.label for f in one] == [f.label for f in manifest["train"]]  # same class balance
    assert {f.file for f in one} == {"a1", "b1"}  # training strains only, never val / test
    for frags in (one, manifest["train"]):
        lengths = [f.length for f in frags]
        assert 256 <= min(lengths) and max(lengths) <= 4096
        mean_log = sum(math.log(n) for n in lengths) / len(lengths)
        assert abs(mean_log - (math.log(256) + math.log(4096)) / 2) < 0.15  # log-uniform
        assert 0.4 < sum(f.strand == "-" for f in frags) / len(frags) < 0.6
    assert ds.lengths == [f.length for f in one]
    x, y = ds[0]
    assert len(x) == one[0].length and int(y) == LABELS.index(one[0].label)
    ds.set_epoch(2)
    assert ds.fragments != one
    ds.set_epoch(1)
    assert ds.fragments == one  # an epoch is a function of its number, not of the order visited
    ds.set_epoch(0)
    assert ds.fragments == manifest["train"]


def test_coordinate_split_redraws_stay_inside_the_training_part():
    store = _store(files=("a1", "b1"), n=60_000)
    regions = regions_by_coordinate(store, {"a1": "A", "b1": "B"}, gap=1024)
    ds, _ = _train_set(store, regions, per_class=100, lo=1024, hi=1024)
    limit = int(0.8 * 60_000) - 1024  # the training part ends a gap before the 80 % cut
    for epoch in (1, 2, 3):
        ds.set_epoch(epoch)
        assert all(f.start + f.length <= limit for f in ds.fragments)
        assert {f.length for f in ds.fragments} == {1024}


def test_epochs_are_the_same_in_another_process():
    store = _store(files=("a1", "b1"), n=5_000)
    regions = regions_by_file(store, {"a1": "train", "b1": "train"}, {"a1": "A", "b1": "B"})
    ours = sample_epoch("t", "train", regions["train"], store, 20, LABELS, 256, 1024, epoch=3)
    # sampling.py alone (stdlib only), loaded from its file: no torch import in the child
    code = (
        "import importlib.util, random, sys\n"
        f"spec = importlib.util.spec_from_file_location('sampling', {sampling.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['sampling'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "regions_by_file, sample_epoch = mod.regions_by_file, mod.sample_epoch\n"
        "rng = random.Random(0)\n"
        "store = {(f, f + '.chr'): ''.join(rng.choice('ACGT') for _ in range(5000)).encode()\n"
        "         for f in ('a1', 'b1')}\n"
        "regions = regions_by_file(store, {'a1': 'train', 'b1': 'train'}, {'a1': 'A', 'b1': 'B'})\n"
        "frags = sample_epoch('t', 'train', regions['train'], store, 20, ['A', 'B'], 256, 1024,\n"
        "                     epoch=3)\n"
        "print(repr([(f.file, f.start, f.length, f.strand) for f in frags]))\n")
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == repr([(f.file, f.start, f.length, f.strand) for f in ours])


def test_start_epoch_feeds_the_new_lengths_to_the_sampler_and_ranks_agree():
    store = _store()
    regions = _by_file(store)
    ranks = [_train_set(store, regions, per_class=30)[0] for _ in range(2)]  # one per process
    samplers = [BucketSampler(ds.lengths, 8, num_replicas=2, rank=r, seed=0)
                for r, ds in enumerate(ranks)]
    steps = len(samplers[0])
    for epoch in (1, 2):
        for ds, sampler in zip(ranks, samplers):
            start_epoch(ds, sampler, epoch)
            assert sampler.lengths.tolist() == ds.lengths and len(sampler) == steps
        assert ranks[0].fragments == ranks[1].fragments
        shards = [list(s) for s in samplers]
        seen = sorted(i for shard in shards for batch in shard for i in batch)
        assert seen == list(range(len(ranks[0])))  # every fragment of the epoch exactly once
        for batch in samplers[0].global_batches():  # buckets sorted by this epoch's lengths
            lengths = [ranks[0].lengths[i] for i in batch]
            assert lengths == sorted(lengths)


def test_a_fixed_dataset_is_left_alone_by_start_epoch():
    store = _store()
    regions = _by_file(store)
    _, manifest = _train_set(store, regions, per_class=10)
    ds = FragmentDataset(manifest["train"], store, LABELS)
    sampler = BucketSampler(ds.lengths, 4)
    start_epoch(ds, sampler, 3)
    assert ds.fragments == manifest["train"] and sampler.epoch == 3
    with pytest.raises(ValueError, match="set_lengths needs 20 lengths"):
        sampler.set_lengths([300] * 19)


def test_trained_indices_are_what_the_trainer_reads(monkeypatch):
    from types import SimpleNamespace

    store = _store()
    regions = _by_file(store)
    ds, _ = _train_set(store, regions, per_class=20)
    task = SimpleNamespace(train=ds, variable_length=True)
    full = trained_indices(task, batch_size=8, seed=0, epochs=2)
    assert [sorted(e) for e in full] == [list(range(40))] * 2  # whole epochs: every fragment
    cut = trained_indices(task, batch_size=8, seed=0, epochs=2, steps_per_epoch=2)
    assert [len(e) for e in cut] == [16, 16] and ds.epoch == 0
    # the same indices as the batches the sampler gives after start_epoch, epoch by epoch
    sampler = BucketSampler(ds.lengths, 8, seed=0)
    for epoch, indices in enumerate(cut):
        start_epoch(ds, sampler, epoch)
        assert indices == [i for b in list(sampler)[:2] for i in b]
