"""What every sequence model here shares: the input embedding, CLS insertion, pooling and checks.

Two layouts are supported throughout:

- fixed length: tokens [B, N] (or continuous inputs [B, N, F]) → features [B, N, C];
- variable length: tokens [T] (or [T, F]) with a sorted PyG-style ``batch`` vector [T] →
  features [T, C]; sequence b owns the contiguous rows where ``batch == b``.
"""
from __future__ import annotations

from typing import Optional

import math

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..nn import positions_in_sequence, sequence_lengths
from ..nn.sequences import lengths_and_key

POOLINGS = ("mean", "cls", "flatten")
POSITION_INITS = ("normal", "sinusoid")


def sinusoid_table(num_positions: int, channels: int) -> Tensor:
    """FloatTensor [num_positions, channels]: sin / cos of the position at geometric frequencies
    (channel pairs 2c, 2c + 1 at frequency 10000^(-2c / C)), as Vaswani et al."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # [P, 1]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, channels, 2, dtype=torch.float64)
                     / channels)  # [ceil(C / 2)]
    table = torch.zeros(num_positions, channels, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[:channels // 2])
    return table.float()


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


class InputEmbedding(nn.Module):
    r"""Token (``nn.Embedding``) or continuous (``nn.Linear``) input, plus optional learned positions
    and, for DNA tokens, an optional k-mer embedding (:class:`~sparsemix.nn.KmerEmbedding`, the
    k-mer ending at each base, added to the base's own embedding as DNABERT's k-mer tokens).

    Args:
        channels (int): Output channels :math:`C`.
        vocab_size (int, optional): Number of token ids (token input).
        input_dim (int, optional): Features per element (continuous input). Exactly one of
            ``vocab_size`` / ``input_dim`` is given.
        max_len (int, optional): Longest sequence; required with ``positional=True``.
        positional (bool): Add a learned position embedding ``nn.Embedding(max_len, C)``.
        position_init (str): Its initial values: ``"normal"`` (:math:`\mathcal{N}(0, 1)`, PyTorch's
            default) or ``"sinusoid"`` (the sin/cos table of Vaswani et al., still learned; gives the
            weight MLPs smooth, multi-scale positions to gate on). (default: ``"normal"``)
        kmer (KmerEmbedding, optional): Added to the token embedding (token input only); it sees
            the same ``batch``, so k-mers never cross a sequence boundary. (default: ``None``)

    Shapes:
        - **input:** [B, N] / [T] long, or [B, N, F] / [T, F] float (with ``batch``).
        - **output:** [B, N, C] / [T, C].
    """

    def __init__(self, channels: int, vocab_size: Optional[int] = None,
                 input_dim: Optional[int] = None, max_len: Optional[int] = None,
                 positional: bool = False, position_init: str = "normal",
                 kmer: Optional[nn.Module] = None) -> None:
        super().__init__()
        if position_init not in POSITION_INITS:
            raise ValueError(f"position_init must be one of {POSITION_INITS}, got {position_init!r}")
        if (vocab_size is None) == (input_dim is None):
            raise ValueError("give exactly one of vocab_size (token input) or input_dim "
                             f"(continuous input), got vocab_size={vocab_size}, input_dim={input_dim}")
        if positional and max_len is None:
            raise ValueError("positional=True needs max_len")
        if kmer is not None and vocab_size is None:
            raise ValueError("a k-mer embedding needs token input (vocab_size), not input_dim")
        self.vocab_size, self.input_dim, self.max_len = vocab_size, input_dim, max_len
        self.tokens = nn.Embedding(vocab_size, channels) if vocab_size is not None else None
        self.linear = nn.Linear(input_dim, channels) if input_dim is not None else None
        self.positions = nn.Embedding(max_len, channels) if positional else None
        self.kmer = kmer
        if self.positions is not None and position_init == "sinusoid":
            with torch.no_grad():
                self.positions.weight.copy_(sinusoid_table(max_len, channels))

    def forward(self, inputs: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        layout_dim = 1 if batch is not None else 2  # dims before the feature axis
        if self.tokens is not None:
            if inputs.dtype not in (torch.long, torch.int32, torch.int64):
                raise ValueError(f"token input must be integer ids, got dtype {inputs.dtype}")
            if inputs.dim() != layout_dim:
                raise ValueError(f"tokens must be {'[T] with batch' if batch is not None else '[B, N]'}"
                                 f", got shape {list(inputs.shape)}")
            if inputs.numel():
                low, high = torch.stack(torch.aminmax(inputs)).tolist()  # one host sync, not two
                if low < 0 or high >= self.vocab_size:
                    raise ValueError(f"token ids must be in [0, {self.vocab_size}), got range "
                                     f"[{low}, {high}]")
            h = self.tokens(inputs)
            if self.kmer is not None:
                h = h + self.kmer(inputs, batch)
        else:
            if inputs.dim() != layout_dim + 1 or inputs.size(-1) != self.input_dim:
                want = "[T, F]" if batch is not None else "[B, N, F]"
                raise ValueError(f"continuous input must be {want} with F = {self.input_dim}, "
                                 f"got shape {list(inputs.shape)}")
            h = self.linear(inputs.to(self.linear.weight.dtype))
        if self.positions is not None:
            if batch is None:
                n = inputs.size(1)
                if n > self.max_len:
                    raise ValueError(f"sequence length {n} exceeds max_len = {self.max_len}")
                h = h + self.positions.weight[:n]
            else:
                if batch.numel() != inputs.size(0):
                    raise ValueError(f"batch has {batch.numel()} entries but the input has "
                                     f"{inputs.size(0)} elements")
                pos, _ = positions_in_sequence(batch)
                # the lengths as ints, from the check positions_in_sequence made (no second sync)
                if max(lengths_and_key(batch)[1]) > self.max_len:
                    raise ValueError(f"a sequence is longer than max_len = {self.max_len}")
                h = h + self.positions(pos)
        return h


def embed_sequences(model: nn.Module, tokens: Tensor, batch: Optional[Tensor] = None,
                    stem: Optional[nn.Module] = None) -> tuple[Tensor, Optional[Tensor]]:
    """The shared start of every classifier's forward: check the flatten head's fixed length, embed
    ``tokens`` with ``model.embed``, apply ``stem(h, batch)`` (if given, to the real elements only)
    and prepend ``model.cls`` when it has one.

    Returns the embedding [B, N, C] or [T, C] and the (possibly CLS-extended) batch vector.
    """
    if model.pooling == "flatten":
        if batch is not None:
            raise ValueError("pooling='flatten' needs fixed-length [B, N] input, got a batch vector")
        if tokens.dim() < 2 or tokens.size(1) != model.max_len:
            raise ValueError(f"pooling='flatten' needs exactly N = max_len = {model.max_len} "
                             f"positions, got input shape {list(tokens.shape)}")
    h = model.embed(tokens, batch)  # [B, N, C] or [T, C]
    if stem is not None:
        h = stem(h, batch)
    if model.cls is not None:
        h, batch = prepend_cls(h, model.cls, batch)
    return h, batch


def prepend_cls(h: Tensor, cls: Tensor, batch: Optional[Tensor] = None
                ) -> tuple[Tensor, Optional[Tensor]]:
    """Insert the vector ``cls`` [C] before every sequence.

    Returns [B, N + 1, C] (fixed length) or ([T + B, C], new batch [T + B]) (variable length).
    """
    if batch is None:
        return torch.cat([cls.expand(h.size(0), 1, -1), h], dim=1), None
    lengths = sequence_lengths(batch)
    num_graphs = lengths.numel()
    # every element moves down by 1 + its sequence id; the CLS of sequence b lands at start_b + b
    new_pos = torch.arange(h.size(0), device=h.device) + batch + 1
    cls_pos = torch.cumsum(lengths, 0) - lengths + torch.arange(num_graphs, device=h.device)
    out = h.new_empty(h.size(0) + num_graphs, h.size(1))
    out[new_pos] = h
    out[cls_pos] = cls.to(h.dtype).expand(num_graphs, -1)
    new_batch = torch.repeat_interleave(torch.arange(num_graphs, device=h.device), lengths + 1)
    return out, new_batch


def pool(h: Tensor, pooling: str, batch: Optional[Tensor] = None,
         mask: Optional[Tensor] = None) -> Tensor:
    """Sequence features → one vector per sequence.

    ``"mean"``: average over real elements (``mask`` [B, N] True = real, or ``batch``);
    ``"cls"``: the first element (where :func:`prepend_cls` put the CLS vector);
    ``"flatten"``: [B, N·C] (fixed length only).
    """
    if pooling == "mean":
        if batch is not None:
            size = len(lengths_and_key(batch)[1]) if batch.numel() else 0  # no sync for a seen batch
            return scatter(h, batch, dim=0, dim_size=size, reduce="mean")
        if mask is not None:
            m = mask.to(h.dtype).unsqueeze(-1)  # [B, N, 1]
            return (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return h.mean(dim=1)
    if pooling == "cls":
        if batch is not None:
            lengths = sequence_lengths(batch)
            return h[torch.cumsum(lengths, 0) - lengths]
        return h[:, 0]
    if pooling == "flatten":
        if batch is not None or mask is not None:
            raise ValueError("pooling='flatten' needs fixed-length input (its head is "
                             "position-specific); use 'mean' or 'cls' for variable length")
        return h.flatten(1)  # [B, N, C] -> [B, N*C]
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
