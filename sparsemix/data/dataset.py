"""A map-style dataset of DNA fragments defined by a manifest over loaded sequences."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .fasta import reverse_complement
from .sampling import Fragment, SequenceStore
from .tokenizer import DNATokenizer


class FragmentDataset(Dataset):
    """Items ``(x, y)``: ``x`` LongTensor [length] of tokens (see :class:`DNATokenizer`),
    ``y`` the 0-dim LongTensor class id of the fragment's label.

    Args:
        fragments: what to serve, usually read from or written to a manifest.
        store: ``(file, record) -> sequence bytes`` holding every fragment's record.
        class_names: labels in class-id order.
        reverse_complement: augmentation. When True, each time an item is read it is replaced by
            its reverse complement with probability 0.5, drawn from ``torch``'s global generator
            (so it follows ``torch.manual_seed`` and the trainer's seeding). Use it on the training
            split only; the manifest's own strand is applied first in every case.
        tokenizer: defaults to :class:`DNATokenizer`.
    """

    def __init__(
        self, fragments: Sequence[Fragment], store: SequenceStore, class_names: Sequence[str],
        reverse_complement: bool = False, tokenizer: Optional[DNATokenizer] = None,
    ) -> None:
        self.fragments = list(fragments)
        self.store = store
        self.class_names = list(class_names)
        self.class_index = {name: i for i, name in enumerate(self.class_names)}
        self.reverse_complement = reverse_complement
        self.tokenizer = tokenizer or DNATokenizer()
        for i, f in enumerate(self.fragments):
            if f.label not in self.class_index:
                raise ValueError(f"fragment {i} has label {f.label!r}, not in {self.class_names}")
            if (f.file, f.record) not in store:
                raise KeyError(f"fragment {i}: record {f.record!r} of {f.file!r} is not loaded")
            if f.start < 0 or f.start + f.length > len(store[(f.file, f.record)]):
                raise ValueError(f"fragment {i} ({f}) runs past the end of its record")

    def __len__(self) -> int:
        return len(self.fragments)

    def sequence(self, i: int) -> bytes:
        """The fragment's bases as ``ACGTN`` bytes, on the manifest's strand (no augmentation)."""
        f = self.fragments[i]
        seq = self.store[(f.file, f.record)][f.start:f.start + f.length]
        return reverse_complement(seq) if f.strand == "-" else seq

    def tokens(self, i: int) -> Tensor:
        """Token ids of fragment ``i`` without augmentation (for baselines and plots)."""
        return self.tokenizer.encode_normalised(self.sequence(i))

    def label(self, i: int) -> int:
        return self.class_index[self.fragments[i].label]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.tokens(i)
        if self.reverse_complement and bool(torch.rand(()) < 0.5):
            x = self.tokenizer.reverse_complement(x)
        return x, torch.tensor(self.label(i))

    @property
    def lengths(self) -> list[int]:
        return [f.length for f in self.fragments]
