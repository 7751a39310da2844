"""Map-style datasets of DNA fragments over loaded sequences: a fixed list (a manifest), and a
training set drawn afresh every epoch from its split's regions."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .fasta import reverse_complement
from .sampling import Fragment, Region, SequenceStore, sample_epoch
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


class ResampledFragmentDataset(FragmentDataset):
    """A training set drawn afresh every epoch: the genome is the data, not one list of fragments.

    Epoch 0 serves ``fragments`` (the training manifest, so a run made before re-drawing existed
    reproduces); :meth:`set_epoch` with ``e > 0`` replaces them with
    :func:`~sparsemix.data.sampling.sample_epoch` of ``(task, "train", class, seed, epoch=e)``:
    ``per_class`` fragments of each class from the same ``regions``, by the same law. Each draw
    depends only on those names and numbers (``crc32``-seeded ``random.Random``), so every rank
    of a DDP run, and a run resumed at epoch ``e``, get the same fragments without communicating.
    The number of items never changes; lengths do (a sampler reads :attr:`lengths` again).

    Args:
        fragments: epoch 0's fragments (the manifest).
        store, class_names, reverse_complement, tokenizer: as :class:`FragmentDataset`.
        regions: the training split's regions, all classes (never validation or test regions).
        task, seed: name the generators (:func:`~sparsemix.data.sampling.generator_for`).
        per_class: fragments of each class per epoch.
        min_length, max_length, max_n_fraction: the sampling law of
            :func:`~sparsemix.data.sampling.sample_fragments`.
        split: the split the generators are named after (``"train"``).
    """

    def __init__(
        self, fragments: Sequence[Fragment], store: SequenceStore, class_names: Sequence[str], *,
        regions: Sequence[Region], task: str, seed: int, per_class: int, min_length: int,
        max_length: int, max_n_fraction: float = 0.01, split: str = "train",
        reverse_complement: bool = False, tokenizer: Optional[DNATokenizer] = None,
    ) -> None:
        super().__init__(fragments, store, class_names, reverse_complement=reverse_complement,
                         tokenizer=tokenizer)
        if len(self.fragments) != per_class * len(self.class_names):
            raise ValueError(f"epoch 0 has {len(self.fragments)} fragments, expected per_class "
                             f"{per_class} x {len(self.class_names)} classes")
        self.regions = list(regions)
        self.task, self.split, self.seed = task, split, int(seed)
        self.per_class, self.min_length, self.max_length = per_class, min_length, max_length
        self.max_n_fraction = max_n_fraction
        self.epoch = 0
        self._epoch0 = list(self.fragments)

    def epoch_fragments(self, epoch: int) -> list[Fragment]:
        """The fragments of epoch ``epoch`` (drawn, not served: :meth:`set_epoch` serves them)."""
        if epoch == 0:
            return list(self._epoch0)
        return sample_epoch(self.task, self.split, self.regions, self.store, self.per_class,
                            self.class_names, self.min_length, self.max_length, seed=self.seed,
                            epoch=epoch, max_n_fraction=self.max_n_fraction)

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s fragments (call on every rank before the epoch's batches)."""
        if epoch != self.epoch:
            self.fragments = self.epoch_fragments(epoch)
            self.epoch = epoch

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} fragments, epoch {self.epoch}, "
                f"task={self.task!r}, seed={self.seed})")
