"""A dense Transformer encoder baseline (pre-norm, ``scaled_dot_product_attention``)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from ._sequence_io import InputEmbedding, check_pooling, embed_sequences, pool


class EncoderLayer(nn.Module):
    r"""Pre-norm encoder layer: :math:`h \leftarrow h + \mathrm{MHA}(\mathrm{LN}(h))`,
    :math:`h \leftarrow h + \mathrm{FFN}(\mathrm{LN}(h))`. Attention runs over the sequence axis.

    Shapes:
        - **input:** h [B, N, C]; ``key_mask`` [B, N] bool, True = real element (padding is never
          attended to).
        - **output:** [B, N, C].
    """

    def __init__(self, channels: int, num_heads: int, ffn_channels: int, dropout: float) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels), nn.GELU(),
                                 nn.Linear(ffn_channels, channels))
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        b, n, c = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.num_heads, c // self.num_heads) \
            .permute(2, 0, 3, 1, 4)  # 3 x [B, H, N, C/H]: heads first, sequence axis second-last
        mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, N]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, c)))
        return h + self.drop(self.ffn(self.norm2(h)))


class TransformerClassifier(nn.Module):
    r"""Dense softmax-attention baseline with the same inputs and heads as
    :class:`~sparsemix.SequenceClassifier`.

    Variable-length input ([T] + ``batch``) is padded internally with a key padding mask, and mean
    pooling averages only real elements, so a sequence's output does not depend on its batch.

    Args:
        vocab_size, num_classes, channels, num_layers, max_len, pooling, input_dim, positional,
            dropout: as for :class:`~sparsemix.SequenceClassifier` (positions default on here:
            attention alone is permutation invariant).
        num_heads (int): Attention heads. (default: ``1``, as the paper's baselines)
        ffn_channels (int, optional): FFN width. (default: ``channels``)
        position_init (str): ``"normal"`` or ``"sinusoid"`` initial positions. (default: ``"normal"``)
    """

    def __init__(self, vocab_size: Optional[int], num_classes: int, channels: int, num_layers: int,
                 max_len: int, pooling: str = "mean", *, input_dim: Optional[int] = None,
                 num_heads: int = 1, ffn_channels: Optional[int] = None, dropout: float = 0.0,
                 positional: bool = True, position_init: str = "normal") -> None:
        super().__init__()
        self.pooling, self.max_len = check_pooling(pooling), max_len
        self.embed = InputEmbedding(channels, vocab_size=vocab_size, input_dim=input_dim,
                                    max_len=max_len, positional=positional,
                                    position_init=position_init)
        self.embed_dropout = nn.Dropout(dropout)
        self.cls = nn.Parameter(torch.randn(channels) * 0.02) if pooling == "cls" else None
        self.layers = nn.ModuleList(EncoderLayer(channels, num_heads, ffn_channels or channels,
                                                 dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(max_len * channels if pooling == "flatten" else channels, num_classes)

    def forward(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        h, batch = embed_sequences(self, tokens, batch)
        mask = None
        if batch is not None:
            h, mask = to_dense_batch(h, batch)  # [B, N_max, C], [B, N_max]
        h = self.embed_dropout(h)
        for layer in self.layers:
            h = layer(h, mask)
        return self.head(pool(self.norm(h), self.pooling, mask=mask))
