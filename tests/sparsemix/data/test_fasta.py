import bz2
import gzip
import lzma
import random

import pytest

from sparsemix.data.fasta import FastaError, load_fasta, read_fasta, reverse_complement


def _wrap(seq: str, width: int) -> str:
    return "\n".join(seq[i:i + width] for i in range(0, len(seq), width))


def _random_dna(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


@pytest.mark.parametrize("opener,suffix", [
    (open, ".fa"), (gzip.open, ".fa.gz"), (lzma.open, ".fa.xz"), (bz2.open, ".fa.bz2"),
])
def test_reads_many_wrapped_records_in_every_compression(tmp_path, opener, suffix):
    seqs = {f"rec{i}": _random_dna(137 + 50 * i, seed=i) for i in range(4)}
    text = "".join(f">{name} some description\n{_wrap(s, 60 - 7 * i)}\n"
                   for i, (name, s) in enumerate(seqs.items()))
    path = tmp_path / f"x{suffix}"
    with opener(path, "wt") as handle:
        handle.write(text)
    records = list(read_fasta(path))
    assert [r.name for r in records] == list(seqs)
    assert [r.sequence.decode() for r in records] == list(seqs.values())
    assert records[0].description == "rec0 some description"
    assert records[1].line == 1 + 1 + len(_wrap(seqs["rec0"], 60).splitlines())


def test_normalises_case_iupac_u_and_whitespace(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\r\nacgtRYSWKMBDHVNn\r\nu U a c\r\n\n>b\nGG\n")
    a, b = read_fasta(path)
    assert a.sequence == b"ACGT" + b"N" * 12 + b"TTAC"
    assert b.sequence == b"GG"


def test_streams_one_record_at_a_time(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">a\nAC\n>b\nGT\n>c\nZZ\n")
    it = read_fasta(path)
    assert next(it).sequence == b"AC"  # a bad later record does not stop earlier ones
    assert next(it).sequence == b"GT"
    with pytest.raises(FastaError, match="line 6"):
        next(it)


def test_min_length_drops_short_records(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">chrom\n" + "A" * 100 + "\n>plasmid\nACGT\n")
    assert [r.name for r in read_fasta(path, min_length=50)] == ["chrom"]
    with pytest.raises(FastaError, match="no record is at least 500"):
        load_fasta(path, min_length=500)


@pytest.mark.parametrize("content,message", [
    (b"", r"x\.fa: the file is empty"),
    (b"\n\n", r"no FASTA records"),
    (b"ACGT\n>a\nAC\n", r"x\.fa, line 1: sequence data before the first '>' header"),
    (b">a\n>b\nACGT\n", r"x\.fa, line 1: record 'a' has no sequence"),
    (b">a\nACGT\n>b\n", r"x\.fa, line 3: record 'b' has no sequence"),
    (b">a\nACGT\nAC-GT\n", r"x\.fa, line 3, column 3: '-' is not an IUPAC nucleotide letter"),
    (b">a\nAC1\n", r"line 2, column 3: '1' is not an IUPAC"),
    (b">a\nACGTX\n", r"line 2, column 5: 'X'"),
])
def test_bad_input_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(FastaError, match=message):
        list(read_fasta(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        list(read_fasta(tmp_path / "nope.fa"))


def test_reverse_complement():
    assert reverse_complement(b"AACGTN") == b"NACGTT"
    seq = _random_dna(200, seed=3).encode()
    assert reverse_complement(reverse_complement(seq)) == seq


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".xz", lzma.compress),
                                              (".bz2", bz2.compress)])
def test_a_truncated_compressed_file_is_a_fasta_error_naming_it(tmp_path, suffix, compress):
    data = compress((">r\n" + "ACGT" * 5000 + "\n").encode())
    path = tmp_path / f"cut.fa{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FastaError, match=f"{path}: truncated or corrupt compressed file"):
        load_fasta(path)


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(FastaError, match="is a directory"):
        load_fasta(tmp_path)
