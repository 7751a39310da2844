"""Nucleotide tokenizer: one token per base over ``A C G T N`` plus the specials models need.

Vocabulary (fixed, so checkpoints stay readable across versions)::

    0 [PAD]   reserved for padded baselines; Paramixer's variable-length mode never pads
    1 [CLS]   optional summary token for ``pooling="cls"`` (prepend with ``add_cls=True``)
    2 [MASK]  reserved for masked-language-model pre-training
    3 A   4 C   5 G   6 T   7 N

Sequences are normalised first (upper-case, IUPAC ambiguity codes -> N, U -> T), so soft-masking
never reaches the model.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from .fasta import ACCEPTED, NORMALISE, WHITESPACE, FastaError

SPECIALS = ("[PAD]", "[CLS]", "[MASK]")
BASES = ("A", "C", "G", "T", "N")


class DNATokenizer:
    """Maps DNA text to LongTensor token ids and back; also reverse-complements token tensors.

    Example:
        >>> tok = DNATokenizer()
        >>> tok.encode("acgtn").tolist()
        [3, 4, 5, 6, 7]
        >>> tok.decode(tok.reverse_complement(tok.encode("AACG")))
        'CGTT'
    """

    pad_id = 0
    cls_id = 1
    mask_id = 2
    vocab = SPECIALS + BASES

    def __init__(self) -> None:
        self.base_ids = {b: len(SPECIALS) + i for i, b in enumerate(BASES)}
        table = bytearray(256)  # unmapped bytes become 0, but input is validated before lookup
        for base, idx in self.base_ids.items():
            table[ord(base)] = idx
        self._to_ids = bytes(table)
        # complement as an id -> id lookup; specials map to themselves
        comp = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
        lut = torch.arange(len(self.vocab))
        for base, other in comp.items():
            lut[self.base_ids[base]] = self.base_ids[other]
        self._complement = lut

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, sequence: Union[str, bytes], add_cls: bool = False) -> Tensor:
        """Tokenise DNA text. Returns LongTensor [n] (or [n + 1] with a leading ``[CLS]``).

        Raises:
            FastaError: a character that is not an IUPAC nucleotide letter (with its position).
        """
        raw = sequence.encode("ascii", errors="replace") if isinstance(sequence, str) else sequence
        if raw.translate(None, ACCEPTED):
            bad = raw.translate(None, ACCEPTED)[:1]
            raise FastaError(
                f"position {raw.index(bad) + 1}: {bad.decode('latin-1')!r} is not an IUPAC "
                "nucleotide letter"
            )
        clean = raw.translate(NORMALISE, WHITESPACE)
        return self.encode_normalised(clean, add_cls=add_cls)

    def encode_normalised(self, sequence: bytes, add_cls: bool = False) -> Tensor:
        """Fast path for bytes already over ``ACGTN`` (as :func:`read_fasta` yields them)."""
        ids = torch.frombuffer(bytearray(sequence.translate(self._to_ids)), dtype=torch.uint8)
        ids = ids.long()
        if add_cls:
            ids = torch.cat([ids.new_tensor([self.cls_id]), ids])
        return ids

    def decode(self, ids: Tensor) -> str:
        """Token ids back to text; specials are written as their bracketed names."""
        return "".join(self.vocab[i] for i in ids.tolist())

    def reverse_complement(self, ids: Tensor) -> Tensor:
        """Reverse complement of a token tensor [..., n] along its last dimension.

        A leading ``[CLS]`` is kept in front (only base tokens are reversed).
        """
        comp = self._complement.to(ids.device)[ids]
        if ids.numel() and bool((ids[..., :1] == self.cls_id).all()):
            return torch.cat([comp[..., :1], comp[..., 1:].flip(-1)], dim=-1)
        return comp.flip(-1)
