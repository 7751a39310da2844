"""A k-mer token embedding: every base also sees the overlapping k-mer that ends at it."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_channels
from .sequences import positions_in_sequence

MAX_K = 12
#: Default table cap: the prime 2^16 + 1, so every k <= 8 (4^8 = 2^16 k-mers) gets an exact table.
DEFAULT_BUCKETS = 65537


class KmerEmbedding(nn.Module):
    r"""Embeds, for every base, the overlapping k-mer that ends at it (DNABERT-style k-mer tokens,
    but one per base, so the sequence keeps its length):

    .. math::
        \mathrm{id}_i = \sum_{j=0}^{k-1} c(t_{i-j})\, 4^{j}, \qquad
        \mathbf{e}_i = \mathbf{E}\big[\,r(\mathrm{id}_i)\,\big],

    where :math:`c` maps the token ids of A, C, G, T to 0, 1, 2, 3 (so :math:`\mathrm{id}_i` is the
    base-4 number of :math:`t_{i-k+1} \ldots t_i`, first base most significant, as
    :func:`sparsemix.data.baselines.kmer_counts` numbers k-mers), and the table row is
    :math:`r(\mathrm{id}) = \mathrm{id}` while :math:`4^k \le` ``num_buckets`` (an exact table; with
    the default 65,537 that is every :math:`k \le 8`), else
    :math:`r(\mathrm{id}) = \mathrm{id} \bmod` ``num_buckets`` (a hashed table:
    k-mers that share a residue share a row; a prime modulus spreads the base-4 digits over all
    rows). An element with no complete k-mer (the first
    :math:`k - 1` of its sequence, or a window holding a token that is not A, C, G or T: N,
    specials) reads one extra row that is fixed at zero (``padding_idx``), i.e. adds nothing.

    In variable-length mode (``[T]`` tokens with a sorted ``batch``), windows never reach across a
    sequence boundary: the ids of a sequence are those it gets alone, in any batch. Ids are
    built with :math:`k` shifted gathers (no per-sequence loop).

    Args:
        channels (int): Output width :math:`C`.
        k (int): k-mer length, 1 .. 12.
        base_ids (sequence of int): The token ids of A, C, G and T (in this order).
        num_buckets (int, optional): Table cap: exact table of :math:`4^k` rows when
            :math:`4^k \le` ``num_buckets``, else ``num_buckets`` hashed rows.
            (default: ``65537``, a prime)
        init_std (float, optional): Standard deviation of the initial table rows.
            (default: ``0.01``: small, because :meth:`profile` scales the rows by the number of
            rows; see there)

    Shapes:
        - **input:** tokens :math:`(B, N)`, or :math:`(T,)` with a sorted ``batch`` vector
          :math:`(T,)`.
        - **output:** :math:`(B, N, C)` or :math:`(T, C)`.
    """

    def __init__(self, channels: int, k: int, base_ids: Sequence[int],
                 num_buckets: int = DEFAULT_BUCKETS, init_std: float = 0.01) -> None:
        super().__init__()
        check_channels(channels, "channels")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        ids = list(base_ids)
        if (len(ids) != 4 or len(set(ids)) != 4
                or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids)):
            raise ValueError("base_ids must be 4 distinct token ids >= 0 (A, C, G, T), "
                             f"got {base_ids!r}")
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 2:
            raise ValueError(f"num_buckets must be an integer >= 2, got {num_buckets!r}")
        if not (isinstance(init_std, (int, float)) and not isinstance(init_std, bool)
                and 0 <= init_std < float("inf")):
            raise ValueError(f"init_std must be a finite number >= 0, got {init_std!r}")
        self.channels, self.k, self.num_buckets = channels, k, num_buckets
        self.init_std = float(init_std)
        self.base_ids = tuple(ids)
        self.hashed = 4 ** k > num_buckets
        self.null_row = num_buckets if self.hashed else 4 ** k  # the last row: no complete k-mer
        self.table = nn.Embedding(self.null_row + 1, channels, padding_idx=self.null_row)
        code = torch.full((max(ids) + 1,), 4, dtype=torch.long)  # token id -> 0..3, 4 = not ACGT
        code[torch.tensor(ids)] = torch.arange(4)
        self.register_buffer("code", code, persistent=False)  # derived from base_ids, not learned
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.table.weight, std=self.init_std)
        with torch.no_grad():
            self.table.weight[self.null_row].zero_()  # no complete k-mer: adds nothing

    def kmer_ids(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        """The k-mer number :math:`\\mathrm{id}_i \\in [0, 4^k)` ending at every element, ``-1``
        where there is no complete ACGT k-mer. LongTensor of the shape of ``tokens``."""
        if tokens.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        if batch is None and tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, N] (or [T] with batch), got {list(tokens.shape)}")
        if batch is not None and (tokens.dim() != 1 or batch.numel() != tokens.numel()):
            raise ValueError(f"tokens must be [T] with a batch vector of T entries, got tokens "
                             f"{list(tokens.shape)} and batch {list(batch.shape)}")
        tokens = tokens.long()
        known = (tokens >= 0) & (tokens < self.code.numel())
        codes = torch.where(known, self.code[tokens.clamp(0, self.code.numel() - 1)], 4)
        if batch is not None:
            pos, _ = positions_in_sequence(batch)  # [T] position inside its own sequence
            rows = torch.arange(tokens.numel(), device=tokens.device)
        ids = torch.zeros_like(codes)
        bad = torch.zeros_like(codes, dtype=torch.bool)
        for j in range(self.k):  # the base j places before i is digit j (4^j)
            if batch is None:
                # shift right by j within each row; the j positions before the start read "not ACGT"
                prev = F.pad(codes, (j, 0), value=4)[..., :codes.size(-1)]
            else:
                # the row j places before, unless that lies in the previous sequence
                prev = torch.where(pos >= j, codes[(rows - j).clamp_min(0)], 4)
            ids = ids + prev * 4 ** j
            bad = bad | (prev == 4)
        return ids.masked_fill(bad, -1)

    def rows(self, ids: Tensor) -> Tensor:
        """Table rows of k-mer numbers (``-1`` -> the zero row; hashed above the cap)."""
        rows = ids.remainder(self.num_buckets) if self.hashed else ids
        return torch.where(ids < 0, self.null_row, rows)

    def forward(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        return self.table(self.rows(self.kmer_ids(tokens, batch)))

    def profile(self, tokens: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        r"""The sequence's k-mer profile through the table, centred and scaled:

        .. math::
            \mathbf{p} = R \Big( \sum_u g_u \mathbf{E}_u - \bar{\mathbf{E}} \Big),
            \qquad g_u = \frac{\#\{i : \mathrm{id}_i = u\}}{\max(1, n_c)},

        where :math:`n_c` counts the sequence's complete k-mers (so :math:`g` are the k-mer
        frequencies a k-mer baseline uses), :math:`\bar{\mathbf{E}}` is the mean of the
        :math:`R` real rows (the null row excluded) and :math:`R` their number (:math:`4^k`, or
        ``num_buckets`` hashed). Linear in :math:`g`: a linear head on it is any linear model on
        k-mer frequencies of rank :math:`\le C` (the constant :math:`-R\bar{\mathbf{E}}` goes
        into the head's bias). The centring and the factor :math:`R` (frequencies relative to
        uniform) are what let a few hundred AdamW steps learn that model: one step moves a logit
        by O(lr), not O(lr / R) (measured by ``benchmarks/kmer_skip_scaling.py``).

        Shapes: tokens :math:`(B, N)` -> :math:`(B, C)`; :math:`(T,)` with ``batch`` ->
        :math:`(\text{num sequences}, C)`.
        """
        ids = self.kmer_ids(tokens, batch)
        complete = (ids >= 0).to(self.table.weight.dtype)  # [B, N] or [T]
        rows = self.table(self.rows(ids))  # the null row is zero
        if batch is None:
            total = rows.sum(dim=-2)  # [B, C]
            count = complete.sum(dim=-1, keepdim=True)  # [B, 1]
        else:
            size = int(batch.max()) + 1 if batch.numel() else 0
            total = rows.new_zeros(size, rows.size(-1)).index_add_(0, batch, rows)
            count = complete.new_zeros(size).index_add_(0, batch, complete).unsqueeze(-1)
        real = self.table.weight[:self.null_row]  # [R, C]: every row but the null row
        return self.null_row * (total / count.clamp_min(1.0) - real.mean(dim=0))

    def extra_repr(self) -> str:
        kind = f"hashed into {self.num_buckets}" if self.hashed else "exact"
        return f"{self.channels}, k={self.k}, rows={self.null_row + 1} ({kind})"
