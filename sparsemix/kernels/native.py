r"""Native (C++/OpenMP) fused slot mix: the custom op ``torch.ops.sparsemix.slot_mix``.

Same math as :func:`sparsemix.kernels.slot_mix.fused_slot_mix` (whose docstring derives it):

.. math::
    \mathrm{out}_{b,i} = \sum_k w_{b',i,k} V_{b, s(i,k)}, \qquad
    \frac{\partial L}{\partial V_{b,j}} = \sum_k w_{b', t(j,k), k}\, G_{b, t(j,k)}, \qquad
    \frac{\partial L}{\partial w_{b',i,k}} = \sum_{b \to b'} \langle G_{b,i}, V_{b,s(i,k)} \rangle

with ``b' = b`` (or 0 when ``w`` is shared by the batch) and ``t = inv``. The C++ source is
``sparsemix/csrc/slot_mix.cpp``, compiled into ``sparsemix._C`` by ``setup.py`` at install time.
The loops are compiled twice, for the baseline ISA and for AVX2 + FMA, and the CPU picks at run
time (:func:`native_isa`). Registered here: autograd (through the two gradient ops), fake kernels
(so ``torch.compile`` traces the op with ``fullgraph=True``), and dtype handling. When the library
is missing ``HAS_NATIVE`` is False, ``NATIVE_ERROR`` says why, and the rest of sparsemix works
without it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .slot_mix import mix_dtype

try:  # optional: a source checkout that was never built still imports (HAS_NATIVE False)
    from .. import _C  # noqa: F401  (loading the library registers torch.ops.sparsemix.*)
    HAS_NATIVE: bool = True
    NATIVE_ERROR: Optional[str] = None
except (ImportError, OSError) as error:  # OSError: built against another torch (undefined symbol)
    HAS_NATIVE = False
    NATIVE_ERROR = (f"sparsemix._C could not be loaded ({type(error).__name__}: {error}); build it "
                    f"with `pip install --no-build-isolation -e .` or `python setup.py build_ext --inplace`")

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def native_isa() -> Optional[str]:
    """Which build of the C++ loops runs here: ``"avx2+fma"`` (x86-64 CPUs with AVX2 and FMA) or
    ``"baseline"`` (any other CPU, or ``SPARSEMIX_NATIVE_ISA=baseline`` in the environment before the
    first call); ``None`` without the native op. Benchmarks record it beside their timings."""
    return str(torch.ops.sparsemix.native_isa()) if HAS_NATIVE else None


if HAS_NATIVE:
    @torch.library.register_fake("sparsemix::slot_mix")
    def _slot_mix_fake(v: Tensor, w: Tensor, src: Tensor, inv: Tensor,
                       residual: bool = False) -> Tensor:
        return v.new_empty(v.shape)  # the C++ op always returns a contiguous tensor

    @torch.library.register_fake("sparsemix::slot_mix_grad_v")
    def _grad_v_fake(grad: Tensor, w: Tensor, inv: Tensor, residual: bool = False) -> Tensor:
        return grad.new_empty(grad.shape)

    @torch.library.register_fake("sparsemix::slot_mix_grad_w")
    def _grad_w_fake(grad: Tensor, v: Tensor, src: Tensor, w_batch: int) -> Tensor:
        return v.new_empty(w_batch, v.size(1), src.size(1))

    def _setup_context(ctx, inputs, output) -> None:
        v, w, src, inv = inputs[:4]
        ctx.residual = inputs[4] if len(inputs) > 4 else False
        ctx.save_for_backward(v, w, src, inv)  # backward recomputes from v and w: nothing else kept

    def _backward(ctx, grad: Tensor):
        v, w, src, inv = ctx.saved_tensors
        grad_v = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_v = torch.ops.sparsemix.slot_mix_grad_v(grad, w, inv, ctx.residual)
        if ctx.needs_input_grad[1]:  # an empty batch has empty weights (the C++ op wants >= 1)
            grad_w = (torch.ops.sparsemix.slot_mix_grad_w(grad, v, src, w.size(0)) if w.size(0)
                      else torch.zeros_like(w))
        return grad_v, grad_w, None, None, None

    torch.library.register_autograd("sparsemix::slot_mix", _backward, setup_context=_setup_context)


def _check(v: Tensor, w: Tensor, src: Tensor, inv: Tensor) -> None:
    if v.dim() not in (2, 3):
        raise ValueError(f"v must be [N, C] or [B, N, C], got shape {list(v.shape)}")
    if w.dim() not in (2, 3):
        raise ValueError(f"w must be [N, K] or [B | 1, N, K], got shape {list(w.shape)}")
    n = v.size(-2)
    if src.dim() != 2 or src.size(0) != n:
        raise ValueError(f"src must be [N, K] with N = v.size(-2) = {n}, got {list(src.shape)}")
    if inv.shape != src.shape:
        raise ValueError(f"inv must have src's shape {list(src.shape)}, got {list(inv.shape)}")
    if src.dtype != torch.long or inv.dtype != torch.long:
        raise TypeError(f"src and inv must be torch.long, got {src.dtype} and {inv.dtype}")
    k = src.size(1)
    if w.shape[-2:] != (n, k):
        raise ValueError(f"w must end in [N, K] = [{n}, {k}], got {list(w.shape)}")
    if v.dim() == 3 and w.dim() == 3 and w.size(0) not in (1, v.size(0)):
        raise ValueError(f"w's batch must be 1 or v's batch {v.size(0)}, got {w.size(0)}")
    if v.dim() == 2 and w.dim() == 3 and w.size(0) != 1:
        raise ValueError(f"v is one sequence [N, C] but w has batch {w.size(0)}; pass v as [B, N, C]")
    devices = {t.device for t in (v, w, src, inv)}
    if len(devices) != 1:
        raise ValueError(f"v, w, src and inv must be on one device, got {v.device}, {w.device}, "
                         f"{src.device}, {inv.device}")
    if v.device.type != "cpu":
        raise ValueError(f"native slot_mix has a CPU kernel only, got tensors on {v.device}")
    for name, t in (("v", v), ("w", w)):
        if t.dtype not in DTYPES:
            raise TypeError(f"{name} must be one of {[str(d) for d in DTYPES]}, got {t.dtype}")


def native_slot_mix(v: Tensor, w: Tensor, src: Tensor, inv: Tensor, residual: bool = False) -> Tensor:
    r"""Apply one slot-structured sparse factor with the native kernel:
    ``out[..., i, :] = sum_k w[..., i, k] * v[..., src[i, k], :]`` (plus ``v[..., i, :]`` with
    ``residual=True``: the factor :math:`\mathbf{I} + \mathbf{W}` in one pass, forward and backward,
    without the separate addition and its [*, N, C] temporary).

    Deterministic (every output row is summed by one thread in a fixed order), never builds the
    [N*K, C] messages, and saves only ``v`` and ``w`` for backward.

    Args:
        v: values [N, C] or [B, N, C].
        w: weights [N, K] or [B | 1, N, K]; a 2-d or batch-1 ``w`` is shared by the batch.
        src: LongTensor [N, K], the source node of each (target, slot); each column a permutation.
        inv: LongTensor [N, K] with ``inv[src[i, k], k] == i``.
        residual: Add ``v`` to the output (and the upstream gradient to ``v``'s gradient) inside
            the kernel.

    ``v`` and ``w`` are cast to one dtype, the wider of the two (:func:`~sparsemix.kernels.mix_dtype`,
    every backend's rule, autocast or not); float32, float64, bfloat16 and float16 run natively,
    the half types accumulating in float32.

    Shapes:
        output like ``v`` ([N, C] or [B, N, C]), in the common dtype.
    """
    if not HAS_NATIVE:
        raise RuntimeError(f"native slot_mix is unavailable: {NATIVE_ERROR}")
    _check(v, w, src, inv)
    dtype = mix_dtype(v, w)
    v, w = v.to(dtype), w.to(dtype)
    v3 = v if v.dim() == 3 else v.unsqueeze(0)  # [N, C] -> [1, N, C]
    w3 = w if w.dim() == 3 else w.unsqueeze(0)  # [N, K] -> [1, N, K]: shared by the batch
    if w3.size(0) > v3.size(0):  # one sequence, per-batch weights: broadcast v (autograd sums back)
        v3 = v3.expand(w3.size(0), -1, -1)
    out = torch.ops.sparsemix.slot_mix(v3, w3, src, inv, residual)
    return out if v.dim() == 3 else out.squeeze(0)
