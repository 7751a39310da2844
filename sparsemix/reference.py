"""Dense, slow, obviously correct versions of every layer: the ground truth the tests compare against.

Everything here builds the N x N factor matrices explicitly, so it is for small N, tests and plots.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from topologies import Topology


def dense_factor(topology: Topology, m: int, weights: Tensor) -> Tensor:
    """W^(m) as dense [*, N, N] from weights [*, N, K]: ``W[i, (i + o_k) mod N] += w[i, k]``
    (:meth:`topologies.Topology.dense`, which the topology tests hold to a plain-Python edge
    specification)."""
    return topology.dense(m, weights)


def factor(topology: Topology, m: int, weights: Tensor, v: Tensor) -> Tensor:
    """One factor applied densely: W^(m) v for v [*, N, C] and weights [*, N, K]."""
    return dense_factor(topology, m, weights) @ v


def factor_weights(block, x: Tensor) -> list[Tensor]:
    """The M weight tensors [*, N, K] of a Paramixer ``block`` for features x, one MLP at a time."""
    return [f.mlp(x) for f in block.factors]


def mixing_matrix(block, v: Tensor, x: Optional[Tensor] = None,
                  weights: Optional[Sequence[Tensor]] = None) -> Tensor:
    """The effective dense [N, N] matrix (I + W^(M)) ... (I + W^(1)) of a block for ONE example.

    ``v`` is [N, C] (only its length matters unless ``x`` is None, when it is also the MLP input).
    The block output is ``dropout(mixing_matrix(block, v, x) @ block.value(v))``. ``weights``: the
    M factor weights [N, K] to use (e.g. the gated ones a layer returned) instead of the block's
    MLPs on ``x``.
    """
    if v.dim() != 2:
        raise ValueError(f"mixing_matrix takes one example v [N, C], got {list(v.shape)}")
    x = v if x is None else x
    topo = block.topology_for(v.size(0), v.device)
    eye = torch.eye(v.size(0), dtype=v.dtype, device=v.device)
    product = eye
    for m, w in enumerate(factor_weights(block, x) if weights is None else weights):
        product = (eye + dense_factor(topo, m, w)) @ product
    return product


def block_forward(block, v: Tensor, x: Optional[Tensor] = None, batch: Optional[Tensor] = None) -> Tensor:
    """A Paramixer block computed densely (dropout ignored: use eval mode to compare)."""
    x = v if x is None else x
    if batch is not None:
        outs = [block_forward(block, v[batch == b], x[batch == b]) for b in torch.unique(batch).tolist()]
        return torch.cat(outs)
    if v.dim() == 3:
        return torch.stack([block_forward(block, vb, xb) for vb, xb in zip(v, x)])
    return mixing_matrix(block, v, x) @ block.value(v)


def kmer_ids(tokens: list[int], k: int, base_ids: "list[int] | tuple[int, ...]") -> list[int]:
    """The number of the k-mer ending at every base of ONE sequence (A, C, G, T = the digits
    0..3 of ``base_ids``, first base most significant), or -1 where the k bases up to it are not
    all A/C/G/T or the sequence has not yet reached k bases: what ``KmerEmbedding.kmer_ids`` does
    fast."""
    digit = {token: d for d, token in enumerate(base_ids)}
    out = []
    for i in range(len(tokens)):
        window = tokens[i - k + 1:i + 1] if i >= k - 1 else None
        if window is None or any(t not in digit for t in window):
            out.append(-1)
            continue
        number = 0
        for t in window:
            number = 4 * number + digit[t]
        out.append(number)
    return out


def encoder_average(layer, u: Tensor) -> Tensor:
    """``ParamixerEncoderLayer(mix_mode="average")``'s mixing for ONE normalised input u [N, C],
    densely: A = prod (I + softplus(W) * gate), then per head h
    ``(A (e_h * g_h(u))) / (A e_h)`` with ``e_h = exp(score_h(u))`` (times ln N with
    ``score_scale="log-length"``; no shift, no floor)."""
    mixer = layer.mixer
    gates = layer.gates(u)
    weights = [torch.nn.functional.softplus(f.mlp(u)) for f in mixer.factors]
    if gates is not None:
        weights = [w * g for w, g in zip(weights, gates)]
    A = mixing_matrix(mixer, u, weights=weights)  # [N, N]
    s = layer.score(u)  # [N, H]
    if layer.score_scale == "log-length":
        s = s * torch.log(torch.tensor(float(max(2, u.size(0))), dtype=u.dtype))
    e = torch.exp(s)
    heads = [(A @ (e[:, h, None] * g)) / (A @ e[:, h, None])
             for h, g in enumerate(mixer.value(u).chunk(layer.num_heads, dim=-1))]
    return torch.cat(heads, dim=-1)
