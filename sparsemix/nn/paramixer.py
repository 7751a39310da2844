"""The Paramixer block: a value MLP followed by M learned sparse factors with residuals."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

import topologies
from topologies import BatchedTopology, Topology

from ._checks import (check_channels, check_dtype, check_features, check_finite, check_node_dim,
                      check_tensor)
from .backends import BACKENDS
from .sequences import lengths_and_key
from .sparse_factor_conv import SparseFactorConv
from .stacked_weights import shared_weights, stacked_weights

_TOPOLOGY_CACHE_SIZE = 64  # distinct lengths kept (each holds its index tables on one device)
_BATCH_CACHE_SIZE = 16  # distinct tuples of lengths kept in variable-length mode

#: ``init=``: "stable" (bounded products at any depth) or "paper" (PyTorch's defaults, as officially).
PARAMIXER_INITS = ("stable", "paper")

#: ``weight_mlp=``: "per-factor" (the paper's M separate MLPs F -> h -> K) or "shared" (one hidden
#: layer for all factors of the block, F -> h -> M*K: two GEMMs whatever M).
WEIGHT_MLPS = ("per-factor", "shared")


class Paramixer(nn.Module):
    r"""One Paramixer mixing block (Yu et al., CVPR 2022) over CHORD or CDIL factor graphs.

    .. math::
        \mathbf{V}^{(0)} = g(\mathbf{V}_{\mathrm{in}}), \qquad
        \mathbf{V}^{(m)} = \mathbf{W}^{(m)} \mathbf{V}^{(m-1)} + \mathbf{V}^{(m-1)} \;(m = 1..M), \qquad
        \mathbf{V}_{\mathrm{out}} = \mathrm{dropout}(\mathbf{V}^{(M)}),

    i.e. :math:`\mathbf{V}_{\mathrm{out}} = (\mathbf{I} + \mathbf{W}^{(M)}) \cdots
    (\mathbf{I} + \mathbf{W}^{(1)})\, g(\mathbf{V}_{\mathrm{in}})`, where
    :math:`g = \mathrm{Linear}(C \to h) \to \mathrm{GELU} \to \mathrm{Linear}(h \to C)` and each sparse
    :math:`\mathbf{W}^{(m)}` is a :class:`SparseFactorConv` whose values an MLP computes from the block's
    features :math:`\mathbf{X}` (``x``, else the block input; never the running :math:`\mathbf{V}`).

    **Initialisation.** With PyTorch's default ``nn.Linear`` init (the official code) the factor values
    have a fixed scale, so the RMS of the output grows exponentially with :math:`M`. Here ``g`` is
    variance preserving (Kaiming-normal first layer, :math:`\mathcal{N}(0, 1/h)` second) and each
    factor's values start with standard deviation :math:`s = 1/\sqrt{KM}` for unit-RMS features, so each
    :math:`(\mathbf{I} + \mathbf{W})` multiplies the variance by about :math:`1 + Ks^2 = 1 + 1/M` and the
    whole product by at most :math:`e`: the output RMS stays within a small factor of the input's for
    any :math:`N` (tested from 16 to 65,536). ``init="paper"`` restores the official default.

    Args:
        channels (int): Channels :math:`C` of the values.
        protocol (str, optional): ``"chord"`` or ``"cdil"``. (default: ``"chord"``)
        max_len (int, optional): Longest sequence; sets :math:`M = \max(1, \lceil \log_2 \rceil)` when
            ``num_factors`` is not given, and longer inputs are rejected.
        num_factors (int, optional): :math:`M`. One of ``max_len`` / ``num_factors`` is required.
        hidden_channels (int, optional): Hidden width :math:`h` of ``g`` and of the weight MLPs.
            (default: ``channels``)
        dropout (float, optional): Dropout on the block output. (default: ``0.0``)
        backend (str, optional): How the factors are applied, passed to every
            :class:`SparseFactorConv`: ``"message"`` (PyG propagate: gather, multiply, scatter; the
            readable reference), ``"fused"`` (eager kernel that never materialises the per-edge
            messages), ``"compiled"`` (the same as ``torch.compile`` kernels), ``"native"`` (the C++ op),
            ``"sparse"`` (``torch_sparse``) or ``"auto"`` (native if built, else fused; resolved once at
            construction, recorded in :attr:`active_backend` and logged once). (default: ``"auto"``)
        x_channels (int, optional): Channels :math:`F` of ``x`` if it differs from :math:`C`.
        radius (int, optional): CDIL radius :math:`r` (:math:`K = 2r + 1`). (default: ``4``)
        init (str, optional): ``"stable"`` (default) or ``"paper"`` (PyTorch defaults, as officially).
        checkpoint_weights (bool, optional): Also recompute the weight MLPs' outputs in backward
            (:func:`~sparsemix.nn.stacked_weights` already recomputes their hidden activations, so
            this only saves the [*, N, K] weights; for very long sequences). (default: ``False``)
        check_inputs (bool, optional): Reject NaN / inf inputs with a clear error. (default: ``False``)
        weight_mlp (str, optional): How the factors' values are computed from :math:`\mathbf{X}`:
            ``"per-factor"`` (the paper: :math:`M` separate MLPs :math:`F \to h \to K`, evaluated
            together by :func:`~sparsemix.nn.stacked_weights`) or ``"shared"`` (one hidden layer for
            all factors, :math:`F \to h \to MK`: every factor keeps its own :math:`h \to K`
            head, all share the first layer; :math:`hF + hMK` multiply-adds per element instead of
            :math:`M(hF + hK)`; :func:`~sparsemix.nn.shared_weights`). The init is the same in both
            (each factor's head as above). (default: ``"per-factor"``)

    Shapes:
        - **input:** values :math:`(N, C)` or :math:`(B, N, C)` (one topology for all), or
          :math:`(T, C)` with a sorted ``batch`` vector :math:`(T,)` (each sequence its own topology of
          its own length and the same :math:`M`; nothing crosses sequences); optional features ``x``
          with the same leading shape and :math:`F` channels.
        - **output:** values with the input's shape; with ``return_weights=True`` also the list of
          :math:`M` weight tensors :math:`(*, N, K)` (or :math:`(T, K)`).
    """

    def __init__(self, channels: int, protocol: str = "chord", max_len: Optional[int] = None,
                 num_factors: Optional[int] = None, hidden_channels: Optional[int] = None,
                 dropout: float = 0.0, backend: str = "auto", x_channels: Optional[int] = None,
                 radius: int = 4, init: str = "stable", checkpoint_weights: bool = False,
                 check_inputs: bool = False, weight_mlp: str = "per-factor") -> None:
        super().__init__()
        check_channels(channels, "channels")
        check_channels(hidden_channels, "hidden_channels", optional=True)
        check_channels(x_channels, "x_channels", optional=True)
        if protocol not in topologies.PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(topologies.PROTOCOLS)}, got {protocol!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if init not in PARAMIXER_INITS:
            raise ValueError(f"init must be one of {PARAMIXER_INITS}, got {init!r}")
        if weight_mlp not in WEIGHT_MLPS:
            raise ValueError(f"weight_mlp must be one of {WEIGHT_MLPS}, got {weight_mlp!r}")
        if max_len is None and num_factors is None:
            raise ValueError("Paramixer needs max_len or num_factors (it owns one weight MLP per factor)")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                    or max_len < 1):
            raise ValueError(f"max_len must be an integer >= 1, got {max_len!r}")
        if num_factors is not None and (isinstance(num_factors, bool)
                                        or not isinstance(num_factors, int) or num_factors < 1):
            raise ValueError(f"num_factors must be an integer >= 1, got {num_factors!r}")
        self.channels = channels
        self.x_channels = x_channels or channels
        self.hidden_channels = hidden_channels or channels
        self.protocol = protocol
        self.max_len = max_len
        self.radius = radius
        self.init = init
        self.backend = backend
        self.checkpoint_weights = checkpoint_weights
        self.check_inputs = check_inputs
        self.weight_mlp = weight_mlp
        self.num_factors = num_factors or topologies.default_num_factors(max_len)
        self.num_slots = self._make_topology(1).num_slots

        h = self.hidden_channels
        self.value = nn.Sequential(nn.Linear(channels, h), nn.GELU(), nn.Linear(h, channels))
        scale = 1.0 / math.sqrt(self.num_slots * self.num_factors) if init == "stable" else None
        # "shared": one first layer object in every factor (parameters() and the optimiser see it once)
        first = nn.Linear(self.x_channels, h) if weight_mlp == "shared" else None
        self.factors = nn.ModuleList(
            SparseFactorConv(self.x_channels, self.num_slots, h, init_scale=scale, backend=backend,
                             shared_first=first)
            for _ in range(self.num_factors))
        self.active_backend = self.factors[0].active_backend  # resolved once, by the factors
        self.dropout = nn.Dropout(dropout)
        self._topologies: OrderedDict = OrderedDict()
        self._batched: OrderedDict = OrderedDict()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        first, _, last = self.value
        first.reset_parameters()
        last.reset_parameters()
        if self.init == "stable":
            nn.init.kaiming_normal_(first.weight, nonlinearity="relu")
            nn.init.zeros_(first.bias)
            nn.init.normal_(last.weight, std=1.0 / math.sqrt(self.hidden_channels))
            nn.init.zeros_(last.bias)
        for factor in self.factors:
            factor.reset_parameters()

    @torch.no_grad()
    def init_factor_values(self, bias: Tensor, noise_std: float) -> None:
        r"""Start factor :math:`m`'s values at ``bias[m]`` plus noise: every factor's last layer
        :math:`h \to K` gets bias ``bias[m]`` and weights :math:`\mathcal{N}(0, \sigma^2 / h)`
        (values of std about :math:`\sigma` = ``noise_std`` for unit-RMS hidden activations), for
        either ``weight_mlp``; the factors' first layers are left as they are. ``bias``: [M, K]."""
        if tuple(bias.shape) != (self.num_factors, self.num_slots):
            raise ValueError(f"bias must be [M, K] = [{self.num_factors}, {self.num_slots}], "
                             f"got {list(bias.shape)}")
        for m, factor in enumerate(self.factors):
            last = factor.weight_layers[1]
            nn.init.normal_(last.weight, std=noise_std / math.sqrt(last.in_features))
            last.bias.copy_(bias[m])

    # ---- topologies --------------------------------------------------------------------------------
    def _make_topology(self, num_nodes: int) -> Topology:
        return topologies.get(self.protocol, num_nodes, num_factors=self.num_factors, radius=self.radius)

    def topology_for(self, num_nodes: int, device: Union[str, torch.device, None] = None) -> Topology:
        """The topology for sequences of length ``num_nodes`` (same M for every length), on ``device``."""
        if self.max_len is not None and num_nodes > self.max_len:
            raise ValueError(f"sequence length N = {num_nodes} exceeds max_len = {self.max_len}")
        device = torch.device(device) if device is not None else torch.device("cpu")
        return _lru(self._topologies, (num_nodes, device), _TOPOLOGY_CACHE_SIZE,
                    lambda: self._make_topology(num_nodes).to(device))

    def batched_topology_for(self, lengths: tuple[int, ...],
                             device: Union[str, torch.device, None] = None) -> BatchedTopology:
        """The concatenated topology of sequences of these lengths, built on ``device`` once per distinct
        tuple of lengths (a small LRU), so its index tables are never rebuilt in forward."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        # per-sequence topologies on the CPU hold no tables; batch() builds the tables for all
        # sequences at once (vectorised) on first use, on ``device``
        return _lru(self._batched, (tuple(lengths), device), _BATCH_CACHE_SIZE,
                    lambda: topologies.batch([self.topology_for(n) for n in lengths]).to(device))

    # ---- forward -----------------------------------------------------------------------------------
    def forward(self, v: Tensor, x: Optional[Tensor] = None, batch: Optional[Tensor] = None,
                return_weights: bool = False, weight_gates: Optional[list[Tensor]] = None
                ) -> Union[Tensor, tuple[Tensor, list[Tensor]]]:
        """``weight_gates`` (optional): M tensors broadcastable to the weights [*, N, K] (or [T, K])
        that multiply them before use (e.g. :class:`~sparsemix.nn.ParamixerEncoderLayer`'s wrap
        gate); ``None`` is the block exactly as documented above."""
        check_features(v, self.channels, "v")
        x = v if x is None else x
        check_features(x, self.x_channels, "x")
        check_node_dim(v, x, "v", "x")
        weight = self.value[0].weight
        check_dtype(v, "v", weight)
        check_dtype(x, "x", weight)
        if self.check_inputs:
            check_finite(v, "v")
            check_finite(x, "x")
        topo = self.topology_of(v, batch)
        weights = self.factor_weights(x, weight_gates)
        out = self.dropout(self.mix(self.value(v), weights, topo))
        return (out, weights) if return_weights else out

    def topology_of(self, v: Tensor, batch: Optional[Tensor] = None) -> Union[Topology, BatchedTopology]:
        """The factor graphs of ``v``'s sequences: one topology for [N, C] / [B, N, C], the
        concatenated per-sequence topologies for [T, C] with ``batch`` (cached, never rebuilt)."""
        if batch is None:
            if v.dim() not in (2, 3):
                raise ValueError(f"v must be [N, C] or [B, N, C] (or [T, C] with batch), got {list(v.shape)}")
            return self.topology_for(v.size(-2), v.device)
        check_tensor(batch, "batch")
        if v.dim() != 2:
            raise ValueError(f"with a batch vector, v must be [T, C], got {list(v.shape)}")
        _, lengths = lengths_and_key(batch, v.size(0))  # the one host sync of this path
        return self.batched_topology_for(lengths, v.device)

    def factor_weights(self, x: Tensor, weight_gates: Optional[list[Tensor]] = None) -> list[Tensor]:
        """The M factors' values ``[f_m(x)]`` (each [*, N, K]), times ``weight_gates`` if given."""
        compute = shared_weights if self.weight_mlp == "shared" else stacked_weights
        if self.checkpoint_weights and torch.is_grad_enabled():  # recompute the MLPs in backward
            weights = checkpoint(compute, self.factors, x, use_reentrant=False)
        else:
            weights = compute(self.factors, x)
        if weight_gates is not None:
            if len(weight_gates) != self.num_factors:
                raise ValueError(f"weight_gates needs {self.num_factors} tensors, got {len(weight_gates)}")
            weights = [w * g for w, g in zip(weights, weight_gates)]
        return weights

    def mix(self, V: Tensor, weights: list[Tensor], topo: Union[Topology, BatchedTopology]) -> Tensor:
        r""":math:`(\mathbf{I} + \mathbf{W}^{(M)}) \cdots (\mathbf{I} + \mathbf{W}^{(1)}) \mathbf{V}` for any
        number of channels (the factors' values do not depend on them)."""
        for m, (factor, w) in enumerate(zip(self.factors, weights)):
            V = factor.apply_factor(V, w, topo.tables(m), residual=True)  # V + W^(m) V
        return V

    def extra_repr(self) -> str:
        return (f"{self.channels}, protocol={self.protocol!r}, num_factors={self.num_factors}, "
                f"num_slots={self.num_slots}, hidden_channels={self.hidden_channels}, "
                f"max_len={self.max_len}, weight_mlp={self.weight_mlp!r}, backend={self.backend!r} (active: {self.active_backend!r})")


def _lru(cache: OrderedDict, key, size: int, build):
    """``cache[key]``, built by ``build()`` on a miss; keeps the ``size`` most recently used entries."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = build()
        if len(cache) > size:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value
