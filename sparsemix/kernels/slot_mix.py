r"""Fused slot mixing: one sparse factor applied without materialising per-edge messages.

A slot-structured factor with weights :math:`w \in \mathbb{R}^{N \times K}` and source table
:math:`s \in \{0..N-1\}^{N \times K}` maps :math:`V \in \mathbb{R}^{N \times C}` to

.. math::
    \mathrm{out}_{i} = \sum_{k=1}^{K} w_{i,k} \, V_{s(i,k)}.

Every column of :math:`s` is a permutation of the nodes (``inv`` is its inverse), so

.. math::
    \frac{\partial L}{\partial V_j} = \sum_k w_{t(j,k),k}\, G_{t(j,k)}, \qquad
    \frac{\partial L}{\partial w_{i,k}} = \langle G_i, V_{s(i,k)} \rangle,
    \qquad t(j,k) = \mathrm{inv}[j,k],

i.e. forward and both gradients are gathers: deterministic, no atomics. Rows are processed in
chunks so every temporary is O(chunk * C), and backward recomputes from the saved ``v`` and ``w``.
When the sources are cyclic shifts known as Python ints, ``s(i,k) = (i + o_k) mod N``, each slot is
one or two contiguous slices and no index tensor is read at all.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import compiled_mix


# Rows per chunk are chosen so one chunk of a [..., rows, C] tensor holds about this many elements:
# small enough to stay in a core's L2 cache (the output chunk is updated K times), large enough that
# Python overhead per op stays negligible.
CHUNK_ELEMENTS = 1 << 17


def _rows_per_chunk(num_nodes: int, row_elements: int) -> int:
    return max(1, min(num_nodes, CHUNK_ELEMENTS // max(1, row_elements)))


def _shift_pieces(start: int, stop: int, shift: int, n: int) -> Iterator[tuple[int, int, int]]:
    """Split target rows [start, stop) into (dst_start, dst_stop, src_start) runs with
    src = (dst + shift) mod n contiguous within each run (at most two runs)."""
    first = start + shift
    if first >= n:
        first -= n
    if first + (stop - start) <= n:
        yield start, stop, first
    else:
        split = start + (n - first)
        yield start, split, first
        yield split, stop, 0


def _check(v: Tensor, w: Tensor, src: Tensor, inv: Optional[Tensor],
           shifts: Optional[Sequence[int]]) -> None:
    if v.dim() < 2:
        raise ValueError(f"v must be [..., N, C], got shape {list(v.shape)}")
    n = v.size(-2)
    if w.dim() < 2:
        raise ValueError(f"w must be [..., N, K], got shape {list(w.shape)}")
    if src.dim() != 2 or src.size(0) != n:
        raise ValueError(f"src must be [N, K] with N = v.size(-2) = {n}, got {list(src.shape)}")
    k = src.size(1)
    if w.shape[-2:] != (n, k):
        raise ValueError(f"w must end in [N, K] = [{n}, {k}], got {list(w.shape)}")
    if w.dim() > 2 and w.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"w's leading dims {list(w.shape[:-2])} must equal v's {list(v.shape[:-2])} "
                         f"(or w must be [N, K], shared by the batch)")
    if inv is not None and inv.shape != src.shape:
        raise ValueError(f"inv must have src's shape {list(src.shape)}, got {list(inv.shape)}")
    if src.dtype != torch.long or (inv is not None and inv.dtype != torch.long):
        raise TypeError(f"src and inv must be torch.long, got {src.dtype}"
                        f"{'' if inv is None else ' and ' + str(inv.dtype)}")
    if w.dtype != v.dtype:
        raise TypeError(f"v and w must share a dtype, got {v.dtype} and {w.dtype}")
    if w.device != v.device or src.device != v.device or (inv is not None and inv.device != v.device):
        raise ValueError("v, w, src and inv must be on the same device, got "
                         f"{v.device}, {w.device}, {src.device}, {None if inv is None else inv.device}")
    if shifts is not None:
        if len(shifts) != k:
            raise ValueError(f"shifts must hold K = {k} ints, got {len(shifts)}")
        if not all(isinstance(o, int) and 0 <= o < max(n, 1) for o in shifts):
            raise ValueError(f"shifts must be ints in [0, N = {n}), got {tuple(shifts)}")


def _mix_rows(out: Tensor, w: Tensor, x: Tensor, index: Optional[Tensor],
              shifts: Optional[Sequence[int]], weights_at_source: bool) -> None:
    r"""``out[..., i, :] = sum_k w[..., r, k] * x[..., j, :]`` with ``j = index[i, k]`` (or
    ``(i + shifts[k]) mod N``) and ``r = j`` if ``weights_at_source`` else ``r = i``.

    ``out`` may be uninitialised: the first slot of each chunk writes, the others accumulate.
    ``w`` is [..., K, N] (slot-major, so each slot's weights are contiguous) or [K, N] when shared.
    """
    n = x.size(-2)
    num_slots = w.size(-2)
    rows = _rows_per_chunk(n, x[..., 0, :].numel())
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        for k in range(num_slots):
            if shifts is not None:
                pieces = list(_shift_pieces(start, stop, shifts[k], n))
                if k == 0 and len(pieces) > 1:
                    out[..., start:stop, :].zero_()
                for a, b, s in pieces:
                    wr = (s, s + b - a) if weights_at_source else (a, b)
                    wk, xk = w[..., k, wr[0]:wr[1], None], x[..., s:s + b - a, :]
                    if k == 0 and len(pieces) == 1:
                        _write_product(out[..., a:b, :], wk, xk)
                    else:
                        out[..., a:b, :].addcmul_(wk, xk)
            else:
                j = index[start:stop, k]
                wk = w[..., k, :].index_select(-1, j) if weights_at_source else w[..., k, start:stop]
                if k == 0:
                    _write_product(out[..., start:stop, :], wk[..., None], x.index_select(-2, j))
                else:
                    out[..., start:stop, :].addcmul_(wk[..., None], x.index_select(-2, j))


def _write_product(dst: Tensor, a: Tensor, b: Tensor) -> None:
    """``dst[...] = a * b`` without a temporary in eager mode; plain assignment under torch.compile,
    whose tracer does not accept ``out=`` into non-contiguous views."""
    if torch.compiler.is_compiling():
        dst.copy_(a * b)
    else:
        torch.mul(a, b, out=dst)


def _slot_dots(v: Tensor, g: Tensor, src: Optional[Tensor], shifts: Optional[Sequence[int]],
               shared: bool) -> Tensor:
    r"""``gw[..., i, k] = <g[..., i, :], v[..., src(i, k), :]>``, summed over the batch if ``shared``."""
    n = v.size(-2)
    num_slots = len(shifts) if shifts is not None else src.size(1)
    gw = v.new_empty(*v.shape[:-2], num_slots, n)  # slot-major, transposed at the end
    rows = _rows_per_chunk(n, v[..., 0, :].numel())
    prod = v.new_empty(*v.shape[:-2], rows, v.size(-1))  # one reused chunk-sized temporary
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        for k in range(num_slots):
            if shifts is not None:
                pieces = [(a, b, v[..., s:s + b - a, :])
                          for a, b, s in _shift_pieces(start, stop, shifts[k], n)]
            else:
                pieces = [(start, stop, v.index_select(-2, src[start:stop, k]))]
            for a, b, vs in pieces:
                if torch.compiler.is_compiling():  # dynamo rejects out= into non-contiguous views
                    gw[..., k, a:b] = (g[..., a:b, :] * vs).sum(-1)
                    continue
                p = prod[..., :b - a, :]
                torch.mul(g[..., a:b, :], vs, out=p)
                torch.sum(p, -1, out=gw[..., k, a:b])
    if shared and gw.dim() > 2:
        gw = gw.sum(tuple(range(gw.dim() - 2)))
    return gw.transpose(-1, -2)


def _canonical(v: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """v [..., N, C] -> [B, N, C]; w [..., N, K] -> [B, N, K] (or [1, N, K] when shared)."""
    v3 = v.reshape(-1, *v.shape[-2:]).contiguous()
    w3 = w.reshape(-1 if w.dim() > 2 else 1, *w.shape[-2:]).contiguous()
    return v3, w3


class FusedSlotMix(torch.autograd.Function):
    """Autograd wrapper of the fused slot mix; saves only ``v`` and ``w`` (and the index tables)."""

    @staticmethod
    def forward(ctx, v: Tensor, w: Tensor, src: Tensor, inv: Tensor,
                shifts: Optional[tuple[int, ...]], impl: str) -> Tensor:
        ctx.save_for_backward(v, w, src, inv)
        ctx.shifts = shifts
        ctx.impl = impl
        if impl == "compiled":
            v3, w3 = _canonical(v, w)
            return compiled_mix.call("mix", v3, w3, src).reshape(v.shape)
        out = torch.empty_like(v, memory_format=torch.contiguous_format)
        _mix_rows(out, w.transpose(-1, -2).contiguous(), v.contiguous(), src, shifts,
                  weights_at_source=False)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        v, w, src, inv = ctx.saved_tensors
        if ctx.impl == "compiled":
            return _compiled_backward(ctx, v, w, src, inv, grad_out)
        shifts = ctx.shifts
        g = grad_out.contiguous()
        grad_v = grad_w = None
        if ctx.needs_input_grad[0]:
            n = v.size(-2)
            inv_shifts = None if shifts is None else tuple((n - o) % n for o in shifts)
            grad_v = torch.empty_like(g)
            _mix_rows(grad_v, w.transpose(-1, -2).contiguous(), g, inv, inv_shifts,
                      weights_at_source=True)
            if grad_v.shape != v.shape:  # v was broadcast
                grad_v = grad_v.sum_to_size(v.shape)
        if ctx.needs_input_grad[1]:
            grad_w = _slot_dots(v.contiguous(), g, src, shifts, shared=w.dim() == 2)
        return grad_v, grad_w, None, None, None, None


def _compiled_backward(ctx, v: Tensor, w: Tensor, src: Tensor, inv: Tensor, grad_out: Tensor):
    v3, w3 = _canonical(v, w)
    g3 = grad_out.reshape(v3.shape).contiguous()
    grad_v = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_v = compiled_mix.call("mix_t", g3, w3, inv).reshape(v.shape)
    if ctx.needs_input_grad[1]:
        grad_w = compiled_mix.call("dots", v3, g3, src)  # [B, N, K]
        grad_w = grad_w.sum(0) if w.dim() == 2 else grad_w.reshape(w.shape)
    return grad_v, grad_w, None, None, None, None


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def mix_dtype(v: Tensor, w: Tensor) -> torch.dtype:
    """The dtype of a slot mix of ``v`` and ``w``, for every backend: the wider of the two.

    Under autocast the weight MLP may return bf16 while v is fp32 (or the reverse): the result takes
    the wider dtype, as a matmul of mixed inputs would after promotion (docs/design.md), never the
    autocast dtype. How a kernel accumulates is its own affair (half precision: in fp32).
    """
    return torch.promote_types(v.dtype, w.dtype)


def _common_dtype(v: Tensor, w: Tensor) -> tuple[Tensor, Tensor, torch.dtype]:
    """``(v, w, result dtype)`` in the dtype the eager kernel computes in: :func:`mix_dtype`,
    half-precision accumulated in fp32 (like a GEMM's fp32 accumulator) and the result cast back,
    so K slot products never round K times."""
    dtype = mix_dtype(v, w)
    compute = torch.float32 if dtype in _LOW_PRECISION else dtype
    return v.to(compute), w.to(compute), dtype


def fused_slot_mix(v: Tensor, w: Tensor, src: Tensor, inv: Tensor,
                   shifts: Optional[Sequence[int]] = None) -> Tensor:
    r"""Apply one slot-structured sparse factor: ``out[..., i, :] = sum_k w[..., i, k] * v[..., src[i, k], :]``.

    The eager implementation (chunked PyTorch ops): the readable fast path and the fallback of
    ``backend="auto"``. Never builds the [N*K, C] messages; backward recomputes from ``v`` and ``w``.

    Args:
        v: values [..., N, C] (any leading batch dims, or none).
        w: weights [..., N, K] with the same leading dims as ``v``, or [N, K] shared by the batch.
        src: LongTensor [N, K], the source node of each (target, slot); each column a permutation.
        inv: LongTensor [N, K] with ``inv[src[i, k], k] == i``.
        shifts: optional K Python ints with ``src[i, k] == (i + shifts[k]) % N`` and
            ``0 <= shifts[k] < N``; lets the eager path use slices instead of index tensors.

    Shapes:
        output [..., N, C], like ``v`` (dtype: the wider of ``v`` and ``w``; half precision is
        accumulated in fp32).
    """
    v, w, dtype = _common_dtype(v, w)
    _check(v, w, src, inv, shifts)
    return FusedSlotMix.apply(v, w, src, inv, None if shifts is None else tuple(shifts), "eager").to(dtype)


def compiled_slot_mix(v: Tensor, w: Tensor, src: Tensor, inv: Tensor) -> Tensor:
    r""":func:`fused_slot_mix` through ``torch.compile`` kernels (one fused pass over the K slots;
    several times faster on CPU after a one-off compile per slot count K). Same arguments and result.

    Raises:
        RuntimeError: if ``torch.compile`` cannot build the kernels here (no C++ compiler / Triton).
    """
    v, w, dtype = _common_dtype(v, w)
    _check(v, w, src, inv, None)
    return FusedSlotMix.apply(v, w, src, inv, None, "compiled").to(dtype)
