"""Paramixer sequence classifier: embedding (→ stem) → L Paramixer blocks or encoder layers → pooling
→ linear head."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from ..nn import KmerEmbedding, LocalConvStem, Paramixer, ParamixerEncoderLayer
from ._sequence_io import InputEmbedding, check_pooling, embed_sequences, pool

WEIGHTS_FROM = ("embedding", "state")
BLOCKS = ("paper", "encoder")
STEMS = ("none", "conv")


class SequenceClassifier(nn.Module):
    r"""The Paramixer model of the paper (Yu et al., CVPR 2022, Fig. 2) for classification/regression.

    .. math::
        \mathbf{E} = \mathrm{Embed}(\text{tokens}) \;(+\, \mathbf{P}), \quad
        \mathbf{X} = \mathrm{drop}(\mathbf{E}), \quad \mathbf{V}_0 = \mathrm{drop}(\mathbf{E}), \quad
        \mathbf{V}_l = \mathrm{Paramixer}_l(\mathbf{V}_{l-1};\, \mathbf{X}), \quad
        \hat{\mathbf{y}} = \mathrm{Linear}(\mathrm{pool}(\mathbf{V}_L)),

    with two independent dropout masks on the embedding (as the official code). Every block's factor
    MLPs read :math:`\mathbf{X}` (``weights_from="embedding"``, the paper) or the block's own input
    :math:`\mathbf{V}_{l-1}` (``weights_from="state"``). This is ``block="paper"``, kept exact.

    ``block="encoder"`` (the improved model) stacks :class:`~sparsemix.nn.ParamixerEncoderLayer`
    instead: :math:`\mathbf{H}_0 = \mathrm{drop}(\mathbf{E})`, :math:`\mathbf{H}_l =
    \mathrm{EncoderLayer}_l(\mathbf{H}_{l-1})` (pre-norm mixing and FFN, each with a residual; the
    factor MLPs read the layer's normalised input, which carries the positions), then a final
    LayerNorm before the pooling; ``weights_from`` does not apply.

    The defaults build the paper's model (``block="paper"``, ``position_init="normal"``), so that
    ``SequenceClassifier(...)`` without options is the published architecture; ``sparsemix train``
    uses the recipe in :mod:`sparsemix.train.recipe` (the encoder model, sinusoid positions),
    which this module cannot import (models sit below ``train`` in the import order).

    ``kmer=k`` (DNA tokens) adds a :class:`~sparsemix.nn.KmerEmbedding` :math:`\mathbf{K}` (the
    k-mer ending at each base) to :math:`\mathbf{E}`, and the sequence's k-mer profile through the
    same table (:meth:`~sparsemix.nn.KmerEmbedding.profile`, centred and scaled by the number of
    rows :math:`R`) to the pooled features, a linear skip path past every layer and the final
    LayerNorm:

    .. math::
        \hat{\mathbf{y}} = \mathrm{Linear}\Big(\mathrm{pool}(\ldots) + R \big(
        \mathbf{E}_k^\top \mathbf{g} - \bar{\mathbf{E}}_k\big)\Big), \qquad
        g_u = \frac{\#\{i : \text{k-mer } u \text{ ends at } i\}}{\max(1, n_c)},

    with :math:`n_c` the sequence's complete ACGT k-mers: the frequencies
    :mod:`sparsemix.data.baselines` counts. So the model contains every linear model on k-mer
    frequencies (weights of rank :math:`\le C`, e.g. any :math:`\le C` classes), exactly: zero
    the rest (e.g. the final LayerNorm's affine) and set the head and the table. The baselines
    count both strands (forward + reverse complement): with ``rc_conjoin`` (the train layer's
    :class:`~sparsemix.models.ReverseComplementConjoined`, which averages the logits of both
    strands) the model's skip path is a linear model on exactly those strand-symmetric
    frequencies, so it contains the fitted k-mer logistic regression (:math:`k \le 8`, the exact
    table) for every length.

    Args:
        vocab_size (int, optional): Token vocabulary (token input); ``None`` with ``input_dim``.
        num_classes (int): Outputs of the head (1 for regression).
        channels (int): Width :math:`C`.
        num_layers (int): Number of Paramixer blocks :math:`L`.
        protocol (str): ``"chord"`` or ``"cdil"``. (default: ``"chord"``)
        max_len (int): Longest sequence (sets :math:`M = \lceil \log_2 \rceil` and the position table).
        pooling (str): ``"mean"`` over elements, ``"cls"`` (a learned vector prepended to every
            sequence, read back after the blocks) or ``"flatten"`` (fixed length only: a
            position-specific head over all :math:`N \cdot C` features, as in the paper).
        input_dim (int, optional): Features per element for continuous input (e.g. 2 for Adding).
        hidden_channels (int, optional): MLP width :math:`h` in the blocks. (default: ``channels``)
        dropout (float): Dropout on the embedding and on each block's output. (default: ``0.0``)
        positional (bool): Learned position embedding (the paper's APC). (default: ``False``)
        weights_from (str): ``"embedding"`` or ``"state"`` (see above). (default: ``"embedding"``)
        backend (str): Paramixer backend. (default: ``"auto"``)
        block (str): ``"paper"`` (the paper's block, exact) or ``"encoder"`` (pre-norm encoder layers
            with an FFN; see above). (default: ``"paper"``; ``sparsemix train`` defaults to encoder)
        stem (str): ``"none"`` or ``"conv"``: a :class:`~sparsemix.nn.LocalConvStem` after the
            embedding (local k-mer features; never crosses a sequence boundary). (default: ``"none"``)
        stem_kernel (int): Taps of the conv stem. (default: ``7``)
        mixing (bool): ``False`` replaces every factor product by the identity (an ablation: the
            model then sees only per-element and stem features). (default: ``True``)
        ffn_channels (int, optional): FFN width of the encoder layers. (default: ``2 * channels``)
        position_init (str): ``"normal"`` or ``"sinusoid"`` initial positions (see
            :class:`~sparsemix.models._sequence_io.InputEmbedding`). (default: ``"normal"``)
        mix_init (str): Factor init of the encoder layers, ``"sum"``, ``"stable"`` or ``"paper"``
            (see :class:`~sparsemix.nn.ParamixerEncoderLayer`). (default: ``"sum"``)
        mix_gain (float): Initial gain of the encoder layers' LayerNorm on the mixing output.
            (default: ``0.3``)
        mix_mode (str): The encoder layers' mixing, ``"sum"`` or ``"average"`` (see
            :class:`~sparsemix.nn.ParamixerEncoderLayer`). (default: ``"sum"``)
        num_heads (int): Score heads of ``mix_mode="average"``. (default: ``1``)
        wrap_gate (bool): The encoder layers' gate on the edges that wrap around a sequence's end.
            (default: ``False``)
        score_scale (str): ``"none"`` or ``"log-length"``, the encoder layers' scores in
            ``mix_mode="average"``. (default: ``"none"``)
        kmer (int): k-mer length of the k-mer embedding and profile path (see above), 1..12, or
            ``0`` for none. Needs token input, ``kmer_base_ids`` and pooling ``"mean"`` or
            ``"cls"``. (default: ``0``)
        kmer_base_ids (sequence of int, optional): Token ids of A, C, G, T (for DNATokenizer:
            3, 4, 5, 6; passed in by the trainer, models do not import the data layer).
        **block_kwargs: Passed on to every :class:`~sparsemix.Paramixer` (``num_factors``, ``radius``,
            ``init``, ``checkpoint_weights``, ...).

    Shapes:
        - **input:** tokens [B, N] (fixed length) or [T] with a sorted ``batch`` [T] (variable length,
          no padding); continuous inputs [B, N, F] or [T, F].
        - **output:** [B, num_classes].
    """

    def __init__(self, vocab_size: Optional[int], num_classes: int, channels: int, num_layers: int,
                 protocol: str = "chord", max_len: Optional[int] = None, pooling: str = "mean", *,
                 input_dim: Optional[int] = None, hidden_channels: Optional[int] = None,
                 dropout: float = 0.0, positional: bool = False, weights_from: str = "embedding",
                 backend: str = "auto", block: str = "paper", stem: str = "none",
                 stem_kernel: int = 7, mixing: bool = True, ffn_channels: Optional[int] = None,
                 position_init: str = "normal", mix_init: str = "sum", mix_gain: float = 0.3,
                 mix_mode: str = "sum", num_heads: int = 1, wrap_gate: bool = False,
                 score_scale: str = "none", kmer: int = 0, kmer_base_ids: Optional[Sequence[int]] = None,
                 **block_kwargs: Any) -> None:
        super().__init__()
        check_pooling(pooling)
        if weights_from not in WEIGHTS_FROM:
            raise ValueError(f"weights_from must be one of {WEIGHTS_FROM}, got {weights_from!r}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if max_len is None:
            raise ValueError("SequenceClassifier needs max_len (the longest sequence)")
        for name, value, low in (("num_classes", num_classes, 1), ("channels", channels, 1),
                                 ("num_layers", num_layers, 1), ("max_len", max_len, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_classes, self.channels, self.max_len = num_classes, channels, max_len
        self.pooling, self.weights_from = pooling, weights_from
        self.block, self.stem_type, self.mixing = block, stem, mixing
        self.embed = InputEmbedding(channels, vocab_size=vocab_size, input_dim=input_dim,
                                    max_len=max_len, positional=positional,
                                    position_init=position_init,
                                    kmer=_kmer_embedding(channels, kmer, kmer_base_ids,
                                                         vocab_size, pooling))
        self.embed_dropout = nn.Dropout(dropout)
        self.stem = LocalConvStem(channels, stem_kernel) if stem == "conv" else None
        self.cls = nn.Parameter(torch.randn(channels) * 0.02) if pooling == "cls" else None
        mixed_len = max_len + 1 if pooling == "cls" else max_len
        if block == "paper":
            if not mixing:
                raise ValueError("mixing=False is an ablation of block='encoder'")
            if wrap_gate or mix_mode != "sum" or score_scale != "none":
                raise ValueError("wrap_gate, mix_mode and score_scale are options of block='encoder'")
            self.blocks = nn.ModuleList(
                Paramixer(channels, protocol=protocol, max_len=mixed_len,
                          hidden_channels=hidden_channels, dropout=dropout, backend=backend,
                          **block_kwargs)
                for _ in range(num_layers))
            self.norm = None
        else:
            self.blocks = nn.ModuleList(
                ParamixerEncoderLayer(channels, max_len=mixed_len, protocol=protocol,
                                      hidden_channels=hidden_channels, ffn_channels=ffn_channels,
                                      dropout=dropout, mixing=mixing, mix_init=mix_init,
                                      mix_gain=mix_gain, mix_mode=mix_mode,
                                      num_heads=num_heads, wrap_gate=wrap_gate,
                                      score_scale=score_scale, backend=backend,
                                      **block_kwargs)
                for _ in range(num_layers))
            self.norm = nn.LayerNorm(channels)
        head_in = max_len * channels if pooling == "flatten" else channels
        self.head = nn.Linear(head_in, num_classes)

    def forward(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        h, mixed_batch = embed_sequences(self, tokens, batch, stem=self.stem)
        if self.block == "encoder":
            h = self.embed_dropout(h)
            for layer in self.blocks:
                h = layer(h, batch=mixed_batch)
            pooled = pool(self.norm(h), self.pooling, mixed_batch)
        else:
            x = self.embed_dropout(h)
            v = self.embed_dropout(h)  # an independent mask, as the paper's dropout1
            for block in self.blocks:
                v = block(v, x=x if self.weights_from == "embedding" else None, batch=mixed_batch)
            pooled = pool(v, self.pooling, mixed_batch)
        if self.embed.kmer is not None:
            # the linear k-mer skip path (the sequence's own tokens, never the CLS), no norm
            pooled = pooled + self.embed.kmer.profile(tokens, batch)
        return self.head(pooled)


def _kmer_embedding(channels: int, k: int, base_ids: Optional[Sequence[int]],
                    vocab_size: Optional[int], pooling: str) -> Optional[KmerEmbedding]:
    """The k-mer embedding of ``kmer=k`` (None for 0), after checking it can apply."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"kmer must be 0 (off) or a k-mer length in 1..12, got {k!r}")
    if k == 0:
        return None
    if vocab_size is None:
        raise ValueError("kmer needs token input (DNA), not continuous input")
    if base_ids is None:
        raise ValueError("kmer needs kmer_base_ids, the token ids of A, C, G and T")
    if pooling == "flatten":
        raise ValueError("kmer needs pooling 'mean' or 'cls' (its skip path is a mean)")
    if max(base_ids) >= vocab_size:
        raise ValueError(f"kmer_base_ids {list(base_ids)} must be token ids < vocab_size "
                         f"{vocab_size}")
    return KmerEmbedding(channels, k, base_ids)
