import math
import random
import zlib

import pytest

from sparsemix.data.sampling import (Fragment, Region, generator_for, read_manifest,
                                     regions_by_coordinate, regions_by_file, sample_fragments,
                                     sample_split, write_manifest)


def _store(seed=0, n=50_000, files=("a1", "a2", "b1")):
    rng = random.Random(seed)
    return {(f, f"{f}.chr"): "".join(rng.choice("ACGT") for _ in range(n)).encode() for f in files}


def test_generator_is_crc32_seeded_and_stable_across_processes():
    # A pinned value: str hash() is salted per process, so a hash()-seeded generator could not
    # reproduce it from one run to the next.
    assert generator_for("dna-species", "train", "E. coli", 0).random() == 0.8901656254199234
    expected = random.Random(zlib.crc32(b"dna-species/train/E. coli/0")).random()
    assert generator_for("dna-species", "train", "E. coli", 0).random() == expected
    assert generator_for("t", "train", "a").random() != generator_for("t", "val", "a").random()
    seeds = [generator_for("t", "train", "a", s).random() for s in (0, 1)]
    assert seeds[0] != seeds[1]


def test_lengths_are_log_uniform_within_bounds_and_strands_balanced():
    store = _store(files=("a1",))
    regions = [Region("a1", "a1.chr", 0, 50_000, "A")]
    frags = sample_fragments(regions, store, 2000, 256, 4096, random.Random(0))
    lengths = [f.length for f in frags]
    assert min(lengths) >= 256 and max(lengths) <= 4096
    # log-uniform: the median sits near the geometric mean (1024), each octave gets ~1/4
    assert 850 < sorted(lengths)[1000] < 1250
    for lo in (256, 512, 1024, 2048):
        share = sum(lo <= n < 2 * lo for n in lengths) / len(lengths)
        assert 0.2 < share < 0.3
    assert 0.45 < sum(f.strand == "-" for f in frags) / len(frags) < 0.55
    assert all(0 <= f.start and f.start + f.length <= 50_000 for f in frags)


def test_fixed_length_and_determinism():
    store = _store(files=("a1",))
    regions = [Region("a1", "a1.chr", 100, 20_000, "A")]
    one = sample_fragments(regions, store, 50, 1000, 1000, generator_for("t", "train", "A"))
    two = sample_fragments(regions, store, 50, 1000, 1000, generator_for("t", "train", "A"))
    assert one == two and {f.length for f in one} == {1000}
    assert all(100 <= f.start and f.start + 1000 <= 20_000 for f in one)


def test_n_rich_fragments_are_redrawn():
    seq = b"N" * 10_000 + b"ACGT" * 2_500
    store = {("f", "r"): seq}
    frags = sample_fragments([Region("f", "r", 0, len(seq), "A")], store, 100, 500, 500,
                             random.Random(1), max_n_fraction=0.01)
    assert all(seq[f.start:f.start + f.length].count(b"N") <= 5 for f in frags)
    with pytest.raises(ValueError, match="more than 1.0% N"):
        sample_fragments([Region("f", "r", 0, 10_000, "A")], store, 5, 500, 500,
                         random.Random(1), max_tries_per_fragment=20)


def test_region_too_short_is_an_error():
    store = {("f", "r"): b"A" * 100}
    with pytest.raises(ValueError, match="no region is at least 256 bases long in \\['f:r'\\]"):
        sample_fragments([Region("f", "r", 0, 100, "A")], store, 3, 256, 512, random.Random(0))


def test_strain_split_keeps_whole_files_apart():
    store = _store()
    regions = regions_by_file(store, {"a1": "train", "a2": "test", "b1": "val"},
                              {"a1": "A", "a2": "A", "b1": "B"})
    assert [r.file for r in regions["train"]] == ["a1"]
    assert [r.file for r in regions["test"]] == ["a2"]
    assert [r.file for r in regions["val"]] == ["b1"]


def test_coordinate_split_has_gaps_no_fragment_can_cross():
    store = _store(files=("a1",), n=100_000)
    regions = regions_by_coordinate(store, {"a1": "A"}, gap=4096)
    (tr,), (va,), (te,) = regions["train"], regions["val"], regions["test"]
    assert (tr.start, tr.end) == (0, 80_000 - 4096)
    assert (va.start, va.end) == (80_000, 90_000 - 4096)
    assert (te.start, te.end) == (90_000, 100_000)
    frags = sample_split("t", regions, store, {"train": 200, "val": 50, "test": 50}, ["A"],
                         256, 4096)
    spans = {s: [(f.start, f.start + f.length) for f in fs] for s, fs in frags.items()}
    assert max(e for _, e in spans["train"]) <= 80_000 - 4096
    assert all(80_000 <= s and e <= 90_000 - 4096 for s, e in spans["val"])
    assert min(s for s, _ in spans["test"]) >= 90_000


def test_changing_one_split_size_leaves_the_others_alone():
    store = _store()
    regions = regions_by_file(store, {"a1": "train", "a2": "val", "b1": "test"},
                              {"a1": "A", "a2": "A", "b1": "A"})
    small = sample_split("t", regions, store, {"train": 10, "val": 5, "test": 5}, ["A"], 256, 1024)
    big = sample_split("t", regions, store, {"train": 40, "val": 5, "test": 5}, ["A"], 256, 1024)
    assert small["val"] == big["val"] and small["test"] == big["test"]
    assert big["train"][:10] == small["train"]


def test_manifest_round_trip_and_errors(tmp_path):
    frags = [Fragment("ecoli-536", "NC_008253.1", 10, 300, "+", "E. coli"),
             Fragment("/data/my file.fa", "r 2", 0, 256, "-", "B")]
    path = write_manifest(tmp_path / "m" / "train.tsv", frags, comment="two lines\nof comment")
    text = path.read_text().splitlines()
    assert text[:3] == ["# two lines", "# of comment", "file\trecord\tstart\tlength\tstrand\tlabel"]
    assert read_manifest(path) == frags
    assert [p.name for p in path.parent.iterdir()] == ["train.tsv"]  # no temp file left
    bad = tmp_path / "bad.tsv"
    bad.write_text("file\trecord\tstart\tlength\tstrand\tlabel\nf\tr\tx\t5\t+\tA\n")
    with pytest.raises(ValueError, match="bad.tsv, line 2"):
        read_manifest(bad)
    bad.write_text("f\tr\t1\t5\t+\tA\n")
    with pytest.raises(ValueError, match="bad.tsv, line 1: expected header"):
        read_manifest(bad)


def test_class_missing_from_a_split_is_named():
    store = _store()
    regions = regions_by_file(store, {"a1": "train", "a2": "val", "b1": "train"},
                              {"a1": "A", "a2": "A", "b1": "B"})
    with pytest.raises(ValueError, match="class 'B' has no sequence in the val split"):
        sample_split("t", regions, store, {"train": 2, "val": 2, "test": 0}, ["A", "B"], 256, 512)


def test_log_uniform_mean_of_log_length():
    store = _store(files=("a1",))
    frags = sample_fragments([Region("a1", "a1.chr", 0, 50_000, "A")], store, 3000, 256, 16384,
                             random.Random(5))
    mean_log = sum(math.log(f.length) for f in frags) / len(frags)
    assert abs(mean_log - (math.log(256) + math.log(16384)) / 2) < 0.1
