r"""Slot mixing through ``torch_sparse`` (the operator family the official Paramixer code used).

The factor is a CSR matrix with exactly K entries per row (row i, columns ``src[i, :]``), so it is
already sorted: ``rowptr = [0, K, 2K, ...]``. ``torch_sparse.matmul`` runs its own sparse-dense
product and backward; a per-example weight tensor becomes one sparse matrix per example.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .slot_mix import mix_dtype

try:  # an optional accelerator, like in PyG
    import torch_sparse  # noqa: F401
    from torch_sparse import SparseTensor
    HAS_TORCH_SPARSE = True
except ImportError:  # pragma: no cover - depends on the environment
    SparseTensor = None
    HAS_TORCH_SPARSE = False

_MISSING = ("backend 'sparse' needs the optional package torch-sparse "
            "(pip install --no-build-isolation torch-sparse, or `pip install sparsemix[accel]`)")


def _csr(w: Tensor, src: Tensor) -> "SparseTensor":
    n, k = src.shape  # [N, K] -> CSR with K entries per row
    rowptr = torch.arange(0, n * k + 1, k, device=src.device)
    return SparseTensor(rowptr=rowptr, col=src.reshape(-1), value=w.reshape(-1),
                        sparse_sizes=(n, n), is_sorted=True, trust_data=True)


def sparse_slot_mix(v: Tensor, w: Tensor, src: Tensor) -> Tensor:
    r"""``out[..., i, :] = sum_k w[..., i, k] * v[..., src[i, k], :]`` through ``torch_sparse.matmul``.

    Args:
        v: values [..., N, C].
        w: weights [..., N, K] (same leading dims as ``v``) or [N, K] shared by the batch.
        src: LongTensor [N, K] of source nodes.

    Raises:
        ImportError: if torch-sparse is not installed.
    """
    if not HAS_TORCH_SPARSE:
        raise ImportError(_MISSING)
    if v.dim() < 2 or src.dim() != 2 or w.shape[-2:] != src.shape or src.size(0) != v.size(-2):
        raise ValueError(f"expected v [..., N, C], w [..., N, K], src [N, K] with matching N and K; got "
                         f"v {list(v.shape)}, w {list(w.shape)}, src {list(src.shape)}")
    dtype = mix_dtype(v, w)  # autocast: the weight MLP may be bf16 while v is fp32
    v, w = v.to(dtype), w.to(dtype)
    if w.dim() == 2:  # one matrix for the whole batch: torch_sparse broadcasts over leading dims
        return torch_sparse.matmul(_csr(w, src), v)
    if w.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"w's leading dims {list(w.shape[:-2])} must equal v's {list(v.shape[:-2])}")
    lead = v.shape[:-2]
    if v.numel() == 0 or w.numel() == 0:  # B = 0 (or C = 0): nothing to multiply; keep v, w in the graph
        return v.new_zeros(v.shape) + 0 * (v.sum() + w.sum())
    v_flat = v.reshape(-1, *v.shape[-2:])  # [B, N, C]
    w_flat = w.reshape(-1, *w.shape[-2:])  # [B, N, K]
    outs = [torch_sparse.matmul(_csr(w_flat[b], src), v_flat[b]) for b in range(v_flat.size(0))]
    return torch.stack(outs).reshape(*lead, *v.shape[-2:])


__all__ = ["HAS_TORCH_SPARSE", "sparse_slot_mix"]
