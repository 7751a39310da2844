"""CDIL-CNN baseline (Cheng et al., 2022): a stack of circular dilated convolutions."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

import topologies

from ..nn import positions_in_sequence
from ._sequence_io import InputEmbedding, check_pooling, embed_sequences, pool


def circular_taps(h: Tensor, dilation: int, kernel_size: int,
                  batch: Optional[Tensor] = None) -> Tensor:
    """Stack the ``kernel_size`` circularly shifted copies a dilated kernel reads.

    Tap j reads position ``(i + (j - kernel_size // 2) · dilation) mod n`` of the element's own
    sequence (length n), so variable-length sequences wrap within themselves and never see padding
    or a neighbour.

    Shapes: h [B, N, C] → [B, N, k·C]; or [T, C] with ``batch`` → [T, k·C].
    """
    half = kernel_size // 2
    offsets = [(j - half) * dilation for j in range(kernel_size)]
    if batch is None:
        return torch.cat([torch.roll(h, -o, dims=1) for o in offsets], dim=-1)
    pos, lengths = positions_in_sequence(batch)
    n = lengths[batch]  # [T] each element's sequence length
    start = torch.arange(batch.numel(), device=h.device) - pos  # [T] its sequence's first row
    return torch.cat([h[start + torch.remainder(pos + o, n)] for o in offsets], dim=-1)


class CDILBlock(nn.Module):
    r"""Two circular dilated convolutions (weight norm, ReLU, dropout) with a residual:
    :math:`h \leftarrow \mathrm{ReLU}(h + \mathrm{conv}_2(\mathrm{conv}_1(h)))`."""

    def __init__(self, channels: int, dilation: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.dilation, self.kernel_size = dilation, kernel_size
        self.conv1 = weight_norm(nn.Linear(kernel_size * channels, channels))
        self.conv2 = weight_norm(nn.Linear(kernel_size * channels, channels))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        y = self.drop(F.relu(self.conv1(circular_taps(h, self.dilation, self.kernel_size, batch))))
        y = self.drop(F.relu(self.conv2(circular_taps(y, self.dilation, self.kernel_size, batch))))
        return F.relu(h + y)


class CDILClassifier(nn.Module):
    r"""CDIL-CNN baseline: embedding → blocks with dilations :math:`1, 2, 4, \dots` → pooling → head.

    Works natively on variable-length [T] + ``batch`` input: every convolution wraps inside each
    sequence (no padding, so padding cannot change results).

    Args:
        vocab_size, num_classes, channels, max_len, pooling, input_dim, positional, dropout: as for
            :class:`~sparsemix.SequenceClassifier`.
        num_layers (int, optional): Number of blocks; block l has dilation :math:`2^l`.
            (default: :math:`\lceil \log_2 \text{max\_len} \rceil`, the full receptive field)
        kernel_size (int): Odd kernel size. (default: ``3``)
    """

    def __init__(self, vocab_size: Optional[int], num_classes: int, channels: int,
                 num_layers: Optional[int], max_len: int, pooling: str = "mean", *,
                 input_dim: Optional[int] = None, kernel_size: int = 3, dropout: float = 0.0,
                 positional: bool = False) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.pooling, self.max_len = check_pooling(pooling), max_len
        num_layers = num_layers or topologies.default_num_factors(max_len)  # ceil(log2 N), >= 1
        self.embed = InputEmbedding(channels, vocab_size=vocab_size, input_dim=input_dim,
                                    max_len=max_len, positional=positional)
        self.embed_dropout = nn.Dropout(dropout)
        self.cls = nn.Parameter(torch.randn(channels) * 0.02) if pooling == "cls" else None
        self.blocks = nn.ModuleList(CDILBlock(channels, 2 ** l, kernel_size, dropout)
                                    for l in range(num_layers))
        self.head = nn.Linear(max_len * channels if pooling == "flatten" else channels, num_classes)

    def forward(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        h, batch = embed_sequences(self, tokens, batch)
        h = self.embed_dropout(h)
        for block in self.blocks:
            h = block(h, batch)
        return self.head(pool(h, self.pooling, batch))
