"""dna-promoter on a tiny synthetic chromosome and GFF: labels, splits, gaps, strands, errors."""
import gzip
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from sparsemix.data.fasta import reverse_complement
from sparsemix.data.sampling import read_manifest
from sparsemix.tasks import build_task
from sparsemix.tasks import promoter

CHROM = 200_000
RECORD = "NC_fake.1"


def _gene_line(ftype, start, end, strand, attrs):
    """One GFF3 feature line; ``start``/``end`` 1-based inclusive."""
    return f"{RECORD}\tRefSeq\t{ftype}\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n"


def write_fixture(folder: Path, seed: int = 0):
    """A 200 kb soft-masked chromosome and a GFF: protein-coding genes every 3 kb in the first
    half of every 20 kb block (none in the second half, where negatives can sit), alternating
    strands, with exons/CDS that must not count, plus a lncRNA gene and an alternative mRNA start.

    Returns (fasta, gff, coding TSS, every transcript start), TSS 0-based, worked out here
    independently of the task's GFF reader.
    """
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGTacgt") for _ in range(CHROM))
    fasta = folder / "chr.fa"
    fasta.write_text(f">{RECORD} fake chromosome\n" +
                     "\n".join(seq[i:i + 80] for i in range(0, CHROM, 80)) + "\n")
    lines = ["##gff-version 3\n",
             f"{RECORD}\tRefSeq\tregion\t1\t{CHROM}\t.\t+\t.\tID=whole\n"]
    coding, every = [], []
    for n, pos in enumerate(p for p in range(1500, CHROM - 3000, 3000) if (p // 10_000) % 2 == 0):
        start, end = pos + 1, pos + 1200  # 1-based, 1200 bp gene
        strand = "+" if n % 2 == 0 else "-"
        tss = start - 1 if strand == "+" else end - 1
        coding.append(tss)
        every.append(tss)
        lines.append(_gene_line("gene", start, end, strand,
                                f"ID=gene-{n};gene_biotype=protein_coding"))
        lines.append(_gene_line("mRNA", start, end, strand, f"ID=rna-{n};Parent=gene-{n}"))
        lines.append(_gene_line("exon", start + 300, end, strand, f"Parent=rna-{n}"))
        lines.append(_gene_line("CDS", start + 400, end - 100, strand, f"Parent=rna-{n}"))
    # a lncRNA gene in the middle of a gene-free stretch: not a positive, but no negative near it
    lines.append(_gene_line("gene", 15_001, 15_500, "+", "ID=gene-lnc;gene_biotype=lncRNA"))
    every.append(15_000)
    # an alternative, internal mRNA start of gene 0 (on +): counts only against negatives
    lines.append(_gene_line("mRNA", 2_101, 2_700, "+", "ID=rna-alt;Parent=gene-0"))
    every.append(2_100)
    gff = folder / "chr.gff.gz"
    with gzip.open(gff, "wt") as handle:
        handle.writelines(lines)
    return fasta, gff, sorted(coding), sorted(set(every))


@pytest.fixture
def fake_chromosome(tmp_path, monkeypatch):
    fasta, gff, coding, every = write_fixture(tmp_path)
    monkeypatch.setattr(promoter, "genome_files", lambda: (fasta, gff))
    return SimpleNamespace(fasta=fasta, gff=gff, coding=coding, every=every)


def _cfg(**kw):
    base = dict(length=1024, train_size=20, val_size=4, test_size=8, seed=0,
                reverse_complement=False, extra={}, out=None)
    base.update(kw)
    return SimpleNamespace(**base)


def test_gff_reader_takes_protein_coding_gene_starts_strand_aware(fake_chromosome):
    table = promoter.read_gff_tss(fake_chromosome.gff)
    assert table.coding == {RECORD: fake_chromosome.coding}
    assert table.any == {RECORD: fake_chromosome.every}
    assert 15_000 not in table.coding[RECORD] and 2_100 not in table.coding[RECORD]
    # a '-' gene's TSS is its last base: gene 1 spans 4501..5700 (1-based) on '-'
    assert 5_699 in table.coding[RECORD] and 4_500 not in table.any[RECORD]


def test_labels_are_right_and_classes_balanced(fake_chromosome, tmp_path):
    td = build_task("dna-promoter", _cfg(out=str(tmp_path / "run")))
    assert td.class_names == ["no TSS", "TSS"] and td.num_classes == 2
    assert not td.variable_length and td.max_len == 1024
    store_seq = next(iter(td.train.store.values()))
    assert store_seq.isupper()  # soft-masking never reaches the model
    for split in ("train", "val", "test"):
        ds = getattr(td, split)
        labels = [f.label for f in ds.fragments]
        assert labels.count("TSS") == labels.count("no TSS") == len(ds) // 2
        for i, f in enumerate(ds.fragments):
            assert f.length == 1024
            centre = f.start + f.length // 2
            near = min(abs(t - centre) for t in fake_chromosome.coding)
            nearest_any = min(abs(t - centre) for t in fake_chromosome.every)
            if f.label == "TSS":
                assert near <= 100
            else:
                assert nearest_any > 1000
            assert ds.label(i) == (1 if f.label == "TSS" else 0)
            # the served bases are the reference's, reverse-complemented on '-'
            ref = store_seq[f.start:f.start + f.length]
            assert ds.sequence(i) == (reverse_complement(ref) if f.strand == "-" else ref)
    strands = [f.strand for s in ("train", "val", "test") for f in getattr(td, s).fragments]
    assert {"+", "-"} <= set(strands)  # random strand, not the gene's


def test_splits_are_disjoint_and_no_window_crosses_a_boundary_or_gap(fake_chromosome, tmp_path):
    length, gap = 1024, 2048
    td = build_task("dna-promoter", _cfg(length=length, extra={"gap": gap},
                                         out=str(tmp_path / "run")))
    c1, c2 = int(0.7 * CHROM), int(0.8 * CHROM)
    parts = {"train": (0, c1 - gap), "val": (c1, c2 - gap), "test": (c2, CHROM)}
    spans = {}
    for split, (lo, hi) in parts.items():
        frags = getattr(td, split).fragments
        assert all(lo <= f.start and f.start + f.length <= hi for f in frags), split
        spans[split] = (min(f.start for f in frags), max(f.start + f.length for f in frags))
    # between splits: at least the gap (so at least one window length)
    assert spans["val"][0] - spans["train"][1] >= gap
    assert spans["test"][0] - spans["val"][1] >= gap
    # manifests record exactly the windows served, and a TSS is used once per split
    for split in ("train", "val", "test"):
        frags = getattr(td, split).fragments
        assert read_manifest(tmp_path / "run" / "manifests" / f"{split}.tsv") == frags
        assert len({(f.start, f.strand) for f in frags}) == len(frags)


def test_seeded_deterministic_and_readonly_reads_the_manifests(fake_chromosome, tmp_path):
    out = tmp_path / "run"
    first = build_task("dna-promoter", _cfg(out=str(out)))
    again = build_task("dna-promoter", _cfg())
    assert again.train.fragments == first.train.fragments
    other = build_task("dna-promoter", _cfg(seed=1))
    assert other.train.fragments != first.train.fragments
    # a read-only build (evaluate/predict) serves the saved windows, whatever the seed says
    saved = build_task("dna-promoter", _cfg(out=str(out), seed=7, readonly=True))
    assert saved.test.fragments == first.test.fragments


@pytest.mark.parametrize("kw, match", [
    (dict(length=200), "--length must be more than 200"),
    (dict(length=2048, extra={"max_len": 1024}), "--length 2048 is longer than the model's"),
    (dict(length=30_000), "--length 30000 does not fit the val part"),
    (dict(extra={"gap": 512}), "extra gap must be at least --length"),
    (dict(test_size=400), "--test-size asks for 200 TSS windows"),
    (dict(val_size=1), "--val-size must be at least 2"),
    (dict(extra={"resample": "yes"}), "--extra resample must be true or false"),
    (dict(extra={"gap": -1}), "--extra gap must be an integer >= 0"),
])
def test_bad_options_are_refused_by_name(fake_chromosome, kw, match):
    with pytest.raises(ValueError, match=match):
        build_task("dna-promoter", _cfg(**kw))


def test_training_windows_are_drawn_afresh_every_epoch(fake_chromosome):
    td = build_task("dna-promoter", _cfg())
    epoch0 = list(td.train.fragments)
    td.train.set_epoch(1)
    epoch1 = list(td.train.fragments)
    assert epoch1 != epoch0 and len(epoch1) == len(epoch0)
    assert td.train.epoch_fragments(1) == epoch1  # seeded: the same draw again
    train_end = int(0.7 * CHROM) - 1024
    for f in epoch1:  # still labelled right, still inside the training part
        centre = f.start + f.length // 2
        assert f.start + f.length <= train_end
        if f.label == "TSS":
            assert min(abs(t - centre) for t in fake_chromosome.coding) <= 100
        else:
            assert min(abs(t - centre) for t in fake_chromosome.every) > 1000
    td.train.set_epoch(0)
    assert td.train.fragments == epoch0
    fixed = build_task("dna-promoter", _cfg(extra={"resample": False}))
    assert not hasattr(fixed.train, "set_epoch")
