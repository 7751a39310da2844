"""The fused slot mix as ``torch.compile`` kernels: one pass that reads the K sources of every row
and writes the output once (inductor: vectorised C++ on CPU, Triton on CUDA).

The eager path in :mod:`.slot_mix` updates the output K times; fusing the K gathers into one loop
is several times faster on CPU. Shapes are canonical ([B, N, C] values, [B or 1, N, K] weights) and
dynamic, so one compiled kernel serves every N, B and C; the slot count K is unrolled and therefore
specialised (one compile per K, cached on disk by inductor across processes).
"""
from __future__ import annotations

import threading
from typing import Callable

import torch
from torch import Tensor

# Distinct K values (CHORD: K = M + 1 differs per length class) and dtypes each add one graph.
_RECOMPILE_LIMIT = 64
_lock = threading.Lock()
_compiled: dict[str, Callable] = {}


def mix_gather(v: Tensor, w: Tensor, src: Tensor) -> Tensor:
    """out[b, i] = sum_k w[b, i, k] * v[b, src[i, k]]; v [B, N, C], w [B or 1, N, K], src [N, K]."""
    out = w[:, :, 0, None] * v[:, src[:, 0], :]
    for k in range(1, src.shape[1]):
        out = out + w[:, :, k, None] * v[:, src[:, k], :]
    return out


def mix_gather_at_source(g: Tensor, w: Tensor, inv: Tensor) -> Tensor:
    """grad_v[b, j] = sum_k w[b, inv[j, k], k] * g[b, inv[j, k]] (the transpose of :func:`mix_gather`)."""
    out = w[:, inv[:, 0], 0, None] * g[:, inv[:, 0], :]
    for k in range(1, inv.shape[1]):
        out = out + w[:, inv[:, k], k, None] * g[:, inv[:, k], :]
    return out


def slot_dots(v: Tensor, g: Tensor, src: Tensor) -> Tensor:
    """grad_w[b, i, k] = <g[b, i], v[b, src[i, k]]>; [B, N, K]."""
    return (g[:, :, None, :] * v[:, src, :]).sum(-1)


def get(name: str) -> Callable:
    """The compiled version of one of the kernels above (compiled lazily, once per process)."""
    with _lock:
        if name not in _compiled:
            config = torch._dynamo.config
            for attr in ("recompile_limit", "cache_size_limit"):  # renamed across torch versions
                if getattr(config, attr, _RECOMPILE_LIMIT) < _RECOMPILE_LIMIT:
                    setattr(config, attr, _RECOMPILE_LIMIT)
            fn = {"mix": mix_gather, "mix_t": mix_gather_at_source, "dots": slot_dots}[name]
            _compiled[name] = torch.compile(fn, dynamic=True, fullgraph=True)
        return _compiled[name]


def call(name: str, *args: Tensor) -> Tensor:
    try:
        return get(name)(*args)
    except Exception as err:  # no silent fallback: the user asked for the compiled kernels
        raise RuntimeError(
            f"backend='compiled' (compiled_slot_mix) failed to compile or run its {name!r} kernel on "
            f"{args[0].device} ({type(err).__name__}: {err}). torch.compile needs a working C++ "
            "compiler on CPU or Triton on CUDA; use backend='fused' (eager) instead.") from err
