"""The weight MLPs of several factors evaluated together: one GEMM for all first layers, one batched
GEMM for all second layers (instead of 2M small GEMMs, each re-reading x)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .sparse_factor_conv import SparseFactorConv

# Rows per chunk: one chunk of the [rows, M*h] hidden activations holds about this many elements, so it
# stays in cache between the first GEMM, the GELU and the second GEMM (allocating and faulting in the
# full [R, M*h] hidden costs more than the GEMMs themselves; benchmarks/mlp_gemm.py).
CHUNK_ELEMENTS = 1 << 18


def stacked_weights(factors: Sequence[SparseFactorConv], x: Tensor) -> list[Tensor]:
    r"""The weights :math:`f_m(\mathbf{x})` of every factor, equal to
    ``[f.compute_weights(x) for f in factors]``.

    .. math::
        \mathbf{H} = \mathrm{GELU}(\mathbf{x} [\mathbf{A}_1; \dots; \mathbf{A}_M]^\top + \mathbf{a}),
        \qquad \mathbf{w}_m = \mathbf{H}_m \mathbf{B}_m^\top + \mathbf{b}_m,

    the first layers as one GEMM over the concatenated weights :math:`[M h, F]`, the second layers as
    one ``torch.baddbmm`` over :math:`[M, R, h] \times [M, h, K]` (:math:`R` rows of ``x``), chunked
    over rows so the hidden activations never exist in full: backward recomputes them per chunk
    (the saved state is ``x`` and the parameters). Under autocast, or with parameters and ``x`` of
    different dtypes, or under ``torch.compile``, the same two GEMMs run unchunked through ordinary
    autograd.

    Args:
        factors: :class:`SparseFactorConv` layers with equal ``in_channels``, ``hidden_channels`` and
            ``num_slots``.
        x: features [*, N, F].

    Shapes:
        - **input:** ``x`` :math:`(*, N, F)`.
        - **output:** a list of :math:`M` tensors :math:`(*, N, K)`, one per factor, in order.
    """
    if not factors:
        raise ValueError("factors must hold at least one SparseFactorConv")
    sizes = {(f.in_channels, f.hidden_channels, f.num_slots) for f in factors}
    if len(sizes) != 1:
        raise ValueError(f"factors must share (in_channels, hidden_channels, num_slots), got {sorted(sizes)}")
    layers = [f.weight_layers for f in factors]
    num, hidden_dim, slots = len(factors), factors[0].hidden_channels, factors[0].num_slots
    w1 = torch.cat([first.weight for first, _ in layers])  # M x [h, F] -> [M*h, F]
    b1 = torch.cat([first.bias for first, _ in layers])  # [M*h]
    w2 = torch.stack([last.weight for _, last in layers])  # M x [K, h] -> [M, K, h] (nn.Linear's layout)
    b2 = torch.stack([last.bias for _, last in layers])  # [M, K]
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.size(-1))  # [*, N, F] -> [R, F]
    # Autocast and mixed dtypes need autocast's casts; under torch.compile the compiler fuses the plain
    # form itself (and its tracer rejects the out= writes into chunk views).
    if (torch.is_autocast_enabled(x.device.type) or len({x.dtype, w1.dtype}) != 1
            or torch.compiler.is_compiling()):
        out = _unchunked(x2, w1, b1, w2.transpose(1, 2), b2.unsqueeze(1), num, hidden_dim)
    else:
        out = _StackedMLP.apply(x2, w1, b1, w2, b2)  # [M, R, K]
    return [o.reshape(*lead, slots) for o in out.unbind(0)]  # M x [R, K] -> M x [*, N, K]


def _unchunked(x2: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, num: int, hidden_dim: int
               ) -> Tensor:
    """``w2``: [M, h, K], ``b2``: [M, 1, K]."""
    hidden = F.gelu(F.linear(x2, w1, b1))  # [R, M*h], one GEMM
    hidden = hidden.reshape(-1, num, hidden_dim).transpose(0, 1)  # [R, M*h] -> [M, R, h]
    # Under autocast hidden may be bf16 while the parameters are fp32: multiply in hidden's dtype.
    return torch.baddbmm(b2.to(hidden.dtype), hidden, w2.to(hidden.dtype))  # [M, R, K], one batched GEMM


def _chunk_rows(rows: int, hidden_width: int) -> int:
    """Rows of one chunk: about CHUNK_ELEMENTS hidden activations, at most ``rows``."""
    return min(rows, max(1, CHUNK_ELEMENTS // hidden_width))


def _chunks(rows: int, hidden_width: int):
    step = max(1, _chunk_rows(rows, hidden_width))  # an empty batch has no chunks, but range needs step > 0
    return ((s, min(rows, s + step)) for s in range(0, rows, step))


class _StackedMLP(torch.autograd.Function):
    """out[m] = GELU(x W1^T + b1)[:, m*h:(m+1)*h] W2[m]^T + b2[m], row chunk by row chunk; saves only
    inputs. ``W2``: [M, K, h].

    Every product is arranged so the BLAS sees the hidden chunk's rows as the long, unit-stride side
    (the second layer computed transposed, [M, K, r], then copied into [M, r, K] while in cache; the
    hidden gradient written straight into its [r, M*h] buffer), and every intermediate lives in a
    buffer allocated once per call: on the natural [M, r, h] x [M, h, K] form the BLAS ran at a
    fifth of its speed (K ~ 11 columns, row stride M*h), and fresh chunk-sized allocations page-fault
    (benchmarks/mlp_gemm.py)."""

    @staticmethod
    def forward(ctx, x2: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        num, slots, hidden_dim = w2.shape
        rows = x2.size(0)
        out = x2.new_empty(num, rows, slots)
        step = _chunk_rows(rows, w1.size(0))
        buf = x2.new_empty(step, w1.size(0))  # hidden chunk [r, M*h], reused
        out_t = x2.new_empty(num, slots, step)  # the second layer's chunk, transposed [M, K, r]
        w1t, b2c = w1.t(), b2.unsqueeze(2)  # [F, M*h], [M, K, 1]
        for s, e in _chunks(rows, w1.size(0)):
            r = e - s
            h = buf[:r]
            torch.addmm(b1, x2[s:e], w1t, out=h)  # [r, M*h]
            torch.ops.aten.gelu_(h)
            h_t = h.view(r, num, hidden_dim).permute(1, 2, 0)  # [r, M*h] -> [M, h, r]
            torch.baddbmm(b2c, w2, h_t, out=out_t[:, :, :r])  # [M, K, h] x [M, h, r] -> [M, K, r]
            out[:, s:e].copy_(out_t[:, :, :r].transpose(1, 2))  # -> [M, r, K]
        ctx.save_for_backward(x2, w1, b1, w2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x2, w1, b1, w2 = ctx.saved_tensors
        num, slots, hidden_dim = w2.shape
        g = grad_out.contiguous()  # [M, R, K]
        gx = torch.empty_like(x2)
        gw1, gb1 = torch.zeros_like(w1), torch.zeros_like(b1)
        gw2 = torch.zeros_like(w2)  # [M, K, h]
        step = _chunk_rows(x2.size(0), w1.size(0))
        pre_buf, h_buf, gh_buf = (x2.new_empty(step, w1.size(0)) for _ in range(3))  # [r, M*h]
        for s, e in _chunks(x2.size(0), w1.size(0)):
            r = e - s
            pre, h, gh = pre_buf[:r], h_buf[:r], gh_buf[:r]
            torch.addmm(b1, x2[s:e], w1.t(), out=pre)  # [r, M*h], recomputed
            torch.ops.aten.gelu.out(pre, out=h)
            gc = g[:, s:e]  # [M, r, K]
            gw2.baddbmm_(gc.transpose(1, 2), h.view(r, num, hidden_dim).transpose(0, 1))  # [M,K,r]x[M,r,h]
            torch.bmm(gc, w2, out=gh.view(r, num, hidden_dim).transpose(0, 1))  # [M,r,K]x[M,K,h] into [r, M*h]
            torch.ops.aten.gelu_backward.grad_input(gh, pre, grad_input=gh)  # in place: d/d pre
            gw1.addmm_(gh.t(), x2[s:e])
            gb1.add_(gh.sum(0))
            torch.mm(gh, w1, out=gx[s:e])
        gb2 = g.sum(1)  # [M, K]
        return gx, gw1, gb1, gw2, gb2


def shared_weights(factors: Sequence[SparseFactorConv], x: Tensor) -> list[Tensor]:
    r"""The weights of factors that share one first layer (:class:`~sparsemix.Paramixer`'s
    ``weight_mlp="shared"``), equal to ``[f.compute_weights(x) for f in factors]``:

    .. math::
        \mathbf{H} = \mathrm{GELU}(\mathbf{x} \mathbf{A}^\top + \mathbf{a}), \qquad
        [\mathbf{w}_1, \dots, \mathbf{w}_M] = \mathbf{H} [\mathbf{B}_1; \dots; \mathbf{B}_M]^\top
        + [\mathbf{b}_1, \dots, \mathbf{b}_M],

    i.e. one MLP :math:`F \to h \to M K`: one GEMM and one batched GEMM whatever :math:`M` (against
    :func:`stacked_weights`' :math:`M h`-wide hidden layer), :math:`h F + h M K` multiply-adds per
    row instead of :math:`M h F + M h K`.

    Args:
        factors: :class:`SparseFactorConv` layers whose ``weight_layers[0]`` is one and the same
            ``nn.Linear`` (and equal ``hidden_channels`` and ``num_slots``).
        x: features [*, N, F].

    Shapes:
        - **input:** ``x`` :math:`(*, N, F)`.
        - **output:** a list of :math:`M` contiguous tensors :math:`(*, N, K)`, one per factor.
    """
    if not factors:
        raise ValueError("factors must hold at least one SparseFactorConv")
    first = factors[0].weight_layers[0]
    if any(f.weight_layers[0] is not first for f in factors):
        raise ValueError("shared_weights needs factors that share one first layer (shared_first)")
    slots = factors[0].num_slots
    w2 = torch.stack([f.weight_layers[1].weight for f in factors]).transpose(1, 2)  # [M, h, K]
    b2 = torch.stack([f.weight_layers[1].bias for f in factors]).unsqueeze(1)  # [M, 1, K]
    hidden = F.gelu(F.linear(x, first.weight, first.bias))  # [*, N, h], one GEMM
    lead = hidden.shape[:-1]
    hidden = hidden.reshape(-1, hidden.size(-1))  # [*, N, h] -> [R, h]
    # [R, h] x [M, h, K] -> [M, R, K]: every factor's values contiguous without a copy (one GEMM
    # to [R, M*K] then a transposing copy measured 1.5x slower, forward + backward)
    out = torch.matmul(hidden, w2.to(hidden.dtype)) + b2.to(hidden.dtype)
    return [o.reshape(*lead, slots) for o in out.unbind(0)]
