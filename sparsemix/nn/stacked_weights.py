"""The weight MLPs of several factors evaluated together: one GEMM for all first layers, one batched
GEMM for all second layers (instead of 2M small GEMMs, each re-reading x)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .sparse_factor_conv import SparseFactorConv


def stacked_weights(factors: Sequence[SparseFactorConv], x: Tensor) -> list[Tensor]:
    r"""The weights :math:`f_m(\mathbf{x})` of every factor, equal to
    ``[f.compute_weights(x) for f in factors]``.

    .. math::
        \mathbf{H} = \mathrm{GELU}(\mathbf{x} [\mathbf{A}_1; \dots; \mathbf{A}_M]^\top + \mathbf{a}),
        \qquad \mathbf{w}_m = \mathbf{H}_m \mathbf{B}_m^\top + \mathbf{b}_m,

    the first layers as one GEMM over the concatenated weights :math:`[M h, F]`, the second layers as
    one ``torch.baddbmm`` over :math:`[M, R, h] \times [M, h, K]` (:math:`R` rows of ``x``).

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
    hidden = F.gelu(F.linear(x, w1, b1))  # [*, N, M*h], one GEMM
    lead = hidden.shape[:-1]
    hidden = hidden.reshape(-1, num, hidden_dim).transpose(0, 1)  # [*, N, M*h] -> [M, R, h]
    w2 = torch.stack([last.weight for _, last in layers]).transpose(1, 2)  # [M, K, h] -> [M, h, K]
    b2 = torch.stack([last.bias for _, last in layers]).unsqueeze(1)  # [M, 1, K]
    # Under autocast hidden may be bf16 while the parameters are fp32: multiply in hidden's dtype.
    out = torch.baddbmm(b2.to(hidden.dtype), hidden, w2.to(hidden.dtype))  # [M, R, K], one batched GEMM
    return [o.reshape(*lead, slots) for o in out.unbind(0)]  # M x [R, K] -> M x [*, N, K]
