r"""Native (C++/OpenMP) fused slot mix: the op ``torch.ops.sparsemix.slot_mix``.

Same math as :func:`sparsemix.kernels.slot_mix.fused_slot_mix` (read its docstring):

.. math::
    \mathrm{out}_{b,i} = \sum_k w_{b',i,k} V_{b, s(i,k)}, \qquad
    \partial V_{b,j} = \sum_k w_{b', t(j,k), k} G_{b, t(j,k)}, \qquad
    \partial w_{b,i,k} = \langle G_{b,i}, V_{b,s(i,k)} \rangle

with ``b' = b`` (or 0 when ``w`` is shared by the batch) and ``t = inv``. The extension
``sparsemix._C`` is compiled by ``setup.py`` at install time; when it is missing, ``HAS_NATIVE``
is False and ``NATIVE_ERROR`` says why, and everything else in sparsemix still works.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

HAS_NATIVE: bool = False
NATIVE_ERROR: Optional[str] = "sparsemix._C is not built yet (native kernel not implemented)"


def native_slot_mix(v: Tensor, w: Tensor, src: Tensor, inv: Tensor) -> Tensor:
    r"""``out[..., i, :] = sum_k w[..., i, k] * v[..., src[i, k], :]`` with the native kernel.

    Args:
        v: values [N, C] or [B, N, C].
        w: weights [N, K] or [B | 1, N, K] (batch 1 or 2-d: shared by the batch).
        src: LongTensor [N, K], each column a permutation of the nodes.
        inv: LongTensor [N, K] with ``inv[src[i, k], k] == i``.

    Shapes:
        output like ``v``.
    """
    if not HAS_NATIVE:
        raise RuntimeError(f"native slot_mix is unavailable: {NATIVE_ERROR}")
    raise NotImplementedError
