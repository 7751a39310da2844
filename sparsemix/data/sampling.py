"""Split genomes before sampling, then draw fragments with a seeded generator and write manifests.

The recipe (never split by random window, which leaks near-duplicates between splits):

1. **Split first.** Either whole strains (files) go to train / val / test (:func:`regions_by_file`),
   or, for one genome per class, each record is cut by coordinate, 0-80 % / 80-90 % / 90-100 %,
   with a gap of at least the longest fragment before each boundary (:func:`regions_by_coordinate`).
2. **Sample.** :func:`sample_fragments` draws each fragment's length (log-uniform between
   ``min_length`` and ``max_length``, or fixed), its region (weighted by how many starts fit),
   its start (uniform) and its strand (p = 0.5), all from ``random.Random`` seeded with
   ``zlib.crc32("task/split/class/seed")`` -- stable across processes, platforms and Python
   versions, unlike ``hash()``. Fragments with more than ``max_n_fraction`` N are redrawn.
3. **Write the manifest** (:func:`write_manifest`): one TSV row per fragment with
   ``file record start length strand label``; the dataset is fully determined by it.
4. **Re-draw the training set every epoch** (:func:`sample_epoch`; DNA tasks by default): epoch
   ``e > 0`` draws the same number of fragments per class by the same law from the same training
   regions with the generator of ``"task/train/class/seed/epoch{e}"``; epoch 0 is the manifest.
   Validation and test sets stay the manifests.
"""
from __future__ import annotations

import math
import os
import random
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ("file", "record", "start", "length", "strand", "label")

#: (file, record name) -> normalised sequence bytes over ACGTN
SequenceStore = Mapping[tuple[str, str], bytes]


@dataclass(frozen=True)
class Region:
    """A half-open interval ``[start, end)`` of one record from which whole fragments are drawn."""

    file: str
    record: str
    start: int
    end: int
    label: str

    @property
    def span(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Fragment:
    """One sampled fragment: bases ``[start, start + length)`` of a record, read on ``strand``.

    ``strand == "-"`` means the reverse complement of that interval.
    """

    file: str
    record: str
    start: int
    length: int
    strand: Literal["+", "-"]
    label: str


def generator_for(task: str, split: str, label: str, seed: int = 0, epoch: int = 0
                  ) -> random.Random:
    """The seeded generator for one (task, split, class[, epoch]): ``crc32`` of their names, never
    hash().

    Epoch 0 is the generator that draws the manifests (its key has no epoch, so manifests written
    before training sets were re-drawn every epoch are reproduced exactly); epoch ``e > 0`` appends
    ``/epoch{e}``: a fresh, independent draw of a training set (:func:`sample_epoch`).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    key = f"{task}/{split}/{label}/{seed}" + (f"/epoch{epoch}" if epoch else "")
    return random.Random(zlib.crc32(key.encode()))


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------

def regions_by_file(
    store: SequenceStore, file_split: Mapping[str, str], file_label: Mapping[str, str],
) -> dict[str, list[Region]]:
    """Whole files (strains) to splits: every record of a file lands in that file's split.

    Args:
        store: the loaded sequences.
        file_split: file -> ``"train"`` | ``"val"`` | ``"test"``.
        file_label: file -> class label.
    Returns:
        split -> regions (whole records).
    """
    out: dict[str, list[Region]] = {s: [] for s in SPLITS}
    for (file, record), seq in store.items():
        split = file_split[file]
        if split not in out:
            raise ValueError(f"split for {file!r} must be one of {SPLITS}, got {split!r}")
        out[split].append(Region(file, record, 0, len(seq), file_label[file]))
    return out


def regions_by_coordinate(
    store: SequenceStore, file_label: Mapping[str, str], gap: int,
    bounds: tuple[float, float] = (0.8, 0.9),
) -> dict[str, list[Region]]:
    """Cut every record by coordinate: ``[0, b1·L - gap)`` train, ``[b1·L, b2·L - gap)`` val,
    ``[b2·L, L)`` test, so no fragment up to ``gap`` long can straddle two splits.

    Args:
        gap: bases left out before each boundary; use at least the longest fragment.
        bounds: the two cut points as fractions of each record's length.
    """
    b1, b2 = bounds
    if not 0 < b1 < b2 < 1:
        raise ValueError(f"bounds must satisfy 0 < b1 < b2 < 1, got {bounds}")
    out: dict[str, list[Region]] = {s: [] for s in SPLITS}
    for (file, record), seq in store.items():
        n = len(seq)
        c1, c2 = int(b1 * n), int(b2 * n)
        label = file_label[file]
        for split, lo, hi in (("train", 0, c1 - gap), ("val", c1, c2 - gap), ("test", c2, n)):
            if hi > lo:
                out[split].append(Region(file, record, lo, hi, label))
    return out


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

def _draw_length(rng: random.Random, min_length: int, max_length: int) -> int:
    if min_length == max_length:
        return min_length
    log_lo, log_hi = math.log(min_length), math.log(max_length + 1)
    return min(max_length, int(math.exp(log_lo + rng.random() * (log_hi - log_lo))))


def sample_fragments(
    regions: Sequence[Region], store: SequenceStore, n: int, min_length: int, max_length: int,
    rng: random.Random, max_n_fraction: float = 0.01, max_tries_per_fragment: int = 200,
) -> list[Fragment]:
    """Draw ``n`` fragments from ``regions`` (all of one class and split).

    Length is log-uniform on ``[min_length, max_length]`` (fixed when equal); the region is chosen
    with probability proportional to its number of valid starts; the start is uniform; the strand
    is ``-`` with probability 0.5. Fragments whose share of ``N`` exceeds ``max_n_fraction`` are
    redrawn. Only ``rng.random()`` is used, so results do not depend on ``random``'s helpers.

    Raises:
        ValueError: no region can hold a fragment of ``min_length``, or too many draws were N-rich.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n and not any(r.span >= min_length for r in regions):
        where = sorted({f"{r.file}:{r.record}" for r in regions}) or ["(no regions)"]
        raise ValueError(
            f"no region is at least {min_length} bases long in {where[:5]}; "
            "use shorter fragments or more sequence"
        )
    out: list[Fragment] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries_per_fragment * max(n, 1):
            raise ValueError(
                f"gave up after {tries - 1} draws: most fragments have more than "
                f"{max_n_fraction:.1%} N (or are longer than the regions) in "
                f"{sorted({r.file for r in regions})}"
            )
        length = _draw_length(rng, min_length, max_length)
        starts = [max(0, r.span - length + 1) for r in regions]
        total = sum(starts)
        u_region, u_start, u_strand = rng.random(), rng.random(), rng.random()
        if total == 0:
            continue  # this length fits nowhere; draw another
        pick = int(u_region * total)
        for region, count in zip(regions, starts):
            if pick < count:
                break
            pick -= count
        start = region.start + min(count - 1, int(u_start * count))
        seq = store[(region.file, region.record)][start:start + length]
        if seq.count(b"N") > max_n_fraction * length:
            continue
        strand = "-" if u_strand < 0.5 else "+"
        out.append(Fragment(region.file, region.record, start, length, strand, region.label))
    return out


def sample_epoch(
    task: str, split: str, regions: Sequence[Region], store: SequenceStore, per_class: int,
    labels: Sequence[str], min_length: int, max_length: int, seed: int = 0, epoch: int = 0,
    max_n_fraction: float = 0.01,
) -> list[Fragment]:
    """One split's fragments, ``per_class`` of each label in ``labels`` order, each class drawn
    by its own :func:`generator_for` ``(task, split, label, seed, epoch)``.

    Epoch 0 is the split's manifest (:func:`sample_split`); a training set re-drawn for epoch
    ``e > 0`` is the same law (lengths, regions, strands, class balance) with fresh draws.
    """
    frags: list[Fragment] = []
    for label in labels:
        mine = [r for r in regions if r.label == label]
        if not mine and per_class:
            raise ValueError(f"class {label!r} has no sequence in the {split} split (too few "
                             "files or records too short for this split and gap)")
        frags += sample_fragments(
            mine, store, per_class, min_length, max_length,
            generator_for(task, split, label, seed, epoch), max_n_fraction=max_n_fraction)
    return frags


def sample_split(
    task: str, regions: dict[str, list[Region]], store: SequenceStore,
    sizes: Mapping[str, int], labels: Sequence[str], min_length: int, max_length: int,
    seed: int = 0, max_n_fraction: float = 0.01,
) -> dict[str, list[Fragment]]:
    """Sample every split, ``sizes[split]`` fragments per class, each (split, class) with its own
    generator (:func:`generator_for`), so changing one split's size never changes another's."""
    return {split: sample_epoch(task, split, regions[split], store, sizes[split], labels,
                                min_length, max_length, seed=seed,
                                max_n_fraction=max_n_fraction)
            for split in SPLITS}


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------

def write_manifest(
    path: os.PathLike | str, fragments: Iterable[Fragment], comment: str = "",
) -> Path:
    """Write fragments as TSV (``file record start length strand label``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for line in comment.splitlines():
                handle.write(f"# {line}\n")
            handle.write("\t".join(MANIFEST_COLUMNS) + "\n")
            for f in fragments:
                row = (f.file, f.record, str(f.start), str(f.length), f.strand, f.label)
                handle.write("\t".join(row) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def manifest_comments(path: os.PathLike | str) -> list[str]:
    """The ``# `` comment lines at the top of a manifest, without the ``# `` (the header ends them)."""
    out: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            out.append(line[1:].strip())
    return out


def read_manifest(path: os.PathLike | str) -> list[Fragment]:
    """Read a manifest written by :func:`write_manifest` (errors name the file and line)."""
    path = Path(path)
    out: list[Fragment] = []
    header_seen = False
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            if not header_seen:
                if tuple(cols) != MANIFEST_COLUMNS:
                    raise ValueError(f"{path}, line {lineno}: expected header "
                                     f"{' '.join(MANIFEST_COLUMNS)}, got {cols}")
                header_seen = True
                continue
            if len(cols) != len(MANIFEST_COLUMNS) or cols[4] not in ("+", "-"):
                raise ValueError(f"{path}, line {lineno}: malformed row {cols}")
            try:
                out.append(Fragment(cols[0], cols[1], int(cols[2]), int(cols[3]), cols[4], cols[5]))
            except ValueError as err:
                raise ValueError(f"{path}, line {lineno}: {err}") from err
    if not header_seen:
        raise ValueError(f"{path}: not a manifest (no header line)")
    return out

