"""A streaming FASTA reader that normalises DNA to the five letters ``A C G T N``.

Files may be plain text, gzip (``.gz``), xz (``.xz``/``.lzma``) or bzip2 (``.bz2``); the format
is detected from the file's first bytes, not its name. Records may span any number of wrapped
lines. Normalisation, applied line by line while streaming:

- letters are upper-cased (soft-masking must never reach a model: it differs between assemblies);
- ``U`` is read as ``T``;
- the IUPAC ambiguity codes ``R Y S W K M B D H V N`` become ``N``;
- lines may end in ``\\n``, ``\\r\\n`` or a lone ``\\r``; whitespace inside a sequence line
  (spaces, tabs) is ignored;
- anything else (digits, ``-``, ``*``, ``.``, other letters) is an error naming file, line
  and column.

Malformed files are errors too (:class:`FastaError`, a ``ValueError``): an empty file, a file with
no ``>`` record, sequence text before the first header, a header with no sequence after it.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Letters accepted in sequence lines (either case) and what they become.
IUPAC_TO_ACGTN: dict[str, str] = {
    "A": "A", "C": "C", "G": "G", "T": "T", "U": "T",
    **{code: "N" for code in "RYSWKMBDHVN"},
}

#: Bytes skipped inside sequence lines.
WHITESPACE = b" \t\r\n\v\f"
#: One 256-entry table does the case folding and the ambiguity mapping in C (bytes.translate).
NORMALISE = bytearray(range(256))
for _letter, _out in IUPAC_TO_ACGTN.items():
    NORMALISE[ord(_letter)] = ord(_out)
    NORMALISE[ord(_letter.lower())] = ord(_out)
NORMALISE = bytes(NORMALISE)
#: Deleting every accepted byte (``raw.translate(None, ACCEPTED)``) leaves the offending ones.
ACCEPTED = bytes(
    sorted({ord(c) for c in IUPAC_TO_ACGTN} | {ord(c.lower()) for c in IUPAC_TO_ACGTN})
) + WHITESPACE


class FastaError(ValueError):
    """A malformed FASTA file; the message names the file and, where it applies, the line."""


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record.

    Attributes:
        name: the header's first word (without ``>``), e.g. ``NC_008253.1``.
        description: the whole header line after ``>``.
        sequence: the normalised sequence, ASCII bytes over ``b"ACGTN"``.
        line: 1-based line number of the header in the file.
    """

    name: str
    description: str
    sequence: bytes
    line: int

    def __len__(self) -> int:
        return len(self.sequence)


def check_fasta_path(path: PathLike, what: str = "FASTA file") -> str:
    """``path`` as a string if it is a regular file (or a link to one); otherwise an error that
    says what it is: missing (FileNotFoundError), a directory, or not a regular file (a FIFO, a
    device such as ``/dev/zero``, a socket), which would block or never end (FastaError)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise FastaError(f"{path}: is a directory, expected a FASTA file")
    if not os.path.isfile(path):
        raise FastaError(f"{path}: not a regular file (a FIFO, device or socket), expected a "
                         f"FASTA file")
    return path


def open_maybe_compressed(path: PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing gzip, xz or bzip2 as its magic bytes say."""
    path = check_fasta_path(path)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00") or magic.startswith(b"\x5d\x00\x00"):
        return lzma.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _bad_character(path: str, lineno: int, raw: bytes) -> FastaError:
    bad = raw.translate(None, ACCEPTED)
    column = raw.index(bad[:1]) + 1
    char = bad[:1].decode("latin-1")
    return FastaError(
        f"{path}, line {lineno}, column {column}: {char!r} is not an IUPAC nucleotide letter "
        f"(accepted: ACGTU and the ambiguity codes RYSWKMBDHVN, either case)"
    )


def read_fasta(path: PathLike, min_length: int = 0) -> Iterator[FastaRecord]:
    """Yield the records of a FASTA file one at a time, normalised to ``A C G T N``.

    Only one record is held in memory at a time, so multi-gigabyte files stream.

    Args:
        path: a FASTA file, plain or gzip/xz/bzip2-compressed.
        min_length: skip records shorter than this many bases (e.g. ``1_000_000`` keeps bacterial
            chromosomes and drops plasmids). Skipped records are still validated.

    Raises:
        FastaError: empty file, no records, text before the first header, a header without
            sequence, or a character that is not an IUPAC nucleotide letter (file, line, column).
    """
    path_str = os.fspath(path)
    header: str | None = None
    header_line = 0
    chunks: list[bytes] = []
    seen_any_byte = False
    seen_record = False
    with open_maybe_compressed(path_str) as handle:
        # io.BufferedReader makes line iteration over gzip/lzma streams fast.
        stream = io.BufferedReader(handle, buffer_size=1 << 20) if not isinstance(
            handle, io.BufferedReader) else handle
        lineno = 0
        for lineno, raw in _numbered_lines(path_str, stream):
            seen_any_byte = True
            if raw.startswith(b">"):
                if header is not None:
                    record = _finish(path_str, header, header_line, chunks)
                    if len(record) >= min_length:
                        yield record
                header = raw[1:].decode("utf-8", errors="replace").strip()
                header_line = lineno
                chunks = []
                seen_record = True
                continue
            if raw.translate(None, ACCEPTED):
                raise _bad_character(path_str, lineno, raw)
            line = raw.translate(NORMALISE, WHITESPACE)
            if not line:
                continue  # blank lines are allowed anywhere
            if header is None:
                raise FastaError(
                    f"{path_str}, line {lineno}: sequence data before the first '>' header"
                )
            chunks.append(line)
    if not seen_any_byte:
        raise FastaError(f"{path_str}: the file is empty")
    if not seen_record:
        raise FastaError(f"{path_str}: no FASTA records (no line starts with '>')")
    record = _finish(path_str, header, header_line, chunks)  # type: ignore[arg-type]
    if len(record) >= min_length:
        yield record


def _numbered_lines(path: str, stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``enumerate(stream, 1)``, with a truncated or corrupt compressed stream (EOFError,
    LZMAError, zlib.error, BadGzipFile) reported as a FastaError naming the file."""
    try:
        yield from enumerate(_lines(stream), start=1)
    except (EOFError, lzma.LZMAError, zlib.error, OSError) as err:
        raise FastaError(f"{path}: truncated or corrupt compressed file "
                         f"({type(err).__name__}: {err})") from None


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of ``stream``, ended by ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files, which
    would otherwise read as one line: the whole file a record name)."""
    for raw in stream:
        body = raw.rstrip(b"\r\n")
        if b"\r" in body:
            yield from body.split(b"\r")
        else:
            yield raw


def _finish(path: str, header: str, line: int, chunks: list[bytes]) -> FastaRecord:
    sequence = b"".join(chunks)
    if not sequence:
        raise FastaError(f"{path}, line {line}: record {header!r} has no sequence")
    name = header.split()[0] if header.split() else ""
    return FastaRecord(name=name, description=header, sequence=sequence, line=line)


def load_fasta(path: PathLike, min_length: int = 0) -> list[FastaRecord]:
    """All records of ``path`` (see :func:`read_fasta`); an error if none is ``min_length`` long."""
    records = list(read_fasta(path, min_length=min_length))
    if not records:
        raise FastaError(f"{os.fspath(path)}: no record is at least {min_length} bases long")
    return records


def reverse_complement(sequence: bytes) -> bytes:
    """Reverse complement of a normalised ``ACGTN`` byte string (``N`` stays ``N``)."""
    return sequence.translate(_COMPLEMENT)[::-1]


_COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")
