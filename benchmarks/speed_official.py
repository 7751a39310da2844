"""The official Paramixer formulation, re-implemented from reference/method.md §3 and §5 for speed
comparisons (not copied from the official code, which has no licence).

Per factor: an MLP turns the block input into values [B, N, K]; they are flattened to [B, N*K] and
applied with ``spmm(index, value, N, N, V)`` where ``index`` [2, N*K] lists (row i, column src(i, k))
row-major: gather the V rows at the columns, multiply by the values, scatter-add into the rows. That
is ``torch_sparse.spmm`` when torch-sparse is installed, else the same three steps in plain torch.
Every factor keeps its [B, N*K, C] messages for backward, which is what the fused kernel avoids.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

import topologies

try:
    from torch_sparse import spmm as _torch_sparse_spmm
except ImportError:
    _torch_sparse_spmm = None


def plain_spmm(index: Tensor, value: Tensor, m: int, n: int, matrix: Tensor) -> Tensor:
    """Gather -> multiply -> scatter-add, as ``torch_sparse.spmm`` does, with torch ops only."""
    if matrix.size(-2) != n:
        raise ValueError(f"matrix must have n = {n} rows, got {matrix.size(-2)}")
    row, col = index
    messages = matrix.index_select(-2, col) * value.unsqueeze(-1)  # [B, E, C]
    out = matrix.new_zeros(*matrix.shape[:-2], m, matrix.size(-1))
    return out.index_add_(-2, row, messages)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class OfficialParamixerBlock(nn.Module):
    """V = g(v); for m = 1..M: V = spmm(index_m, f_m(v), N, N, V) + V (fixed length N, PyTorch init)."""

    def __init__(self, channels: int, max_len: int, hidden_channels: int, protocol: str = "chord",
                 use_torch_sparse: bool = True) -> None:
        super().__init__()
        topo = topologies.get(protocol, max_len)
        self.num_nodes = max_len
        self.num_slots = topo.num_slots
        self.value = _mlp(channels, hidden_channels, channels)
        self.factors = nn.ModuleList(_mlp(channels, hidden_channels, topo.num_slots)
                                     for _ in range(topo.num_factors))
        if use_torch_sparse and _torch_sparse_spmm is None:
            raise ImportError("use_torch_sparse=True needs torch-sparse (pip install torch-sparse)")
        self.spmm = _torch_sparse_spmm if use_torch_sparse else plain_spmm
        self.spmm_name = "torch_sparse.spmm" if use_torch_sparse else "plain torch gather/index_add"
        for m in range(topo.num_factors):
            src, dst = topo.edge_index(m)  # PyG direction: row 0 = column (source), row 1 = row
            self.register_buffer(f"index_{m}", torch.stack([dst, src]), persistent=False)

    def forward(self, v: Tensor) -> Tensor:
        n = self.num_nodes
        V = self.value(v)
        for m, mlp in enumerate(self.factors):
            value = mlp(v).flatten(-2)  # [B, N, K] -> [B, N*K], row-major like the index
            V = self.spmm(getattr(self, f"index_{m}"), value, n, n, V) + V
        return V

