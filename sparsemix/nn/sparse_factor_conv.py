"""One learned sparse factor of a Paramixer block, as a PyG ``MessagePassing`` layer."""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from topologies import FactorTables

from .. import kernels
from ._checks import check_channels, check_dtype, check_features, check_node_dim, check_tensor
from .backends import resolve_backend

try:  # optional accelerator, as in PyG
    from torch_sparse import SparseTensor
except ImportError:  # pragma: no cover - exercised where torch_sparse is missing
    SparseTensor = None


class SparseFactorConv(MessagePassing):
    r"""One sparse factor :math:`W` whose nonzero entries an MLP computes from the receiving nodes.

    .. math::
        \mathbf{W}_{i,j} = \sum_{k \,:\, j = \mathrm{src}(i, k)} f(\mathbf{x}_i)_k,
        \qquad \mathbf{V}' = \mathbf{W} \mathbf{V},

    or node-wise, summing over the incoming edges :math:`e = (j \to i)` with slot :math:`k_e`,

    .. math::
        \mathbf{v}'_i = \sum_{e = (j \to i)} f(\mathbf{x}_i)_{k_e} \, \mathbf{v}_j,

    where :math:`f = \mathrm{Linear}(F \to h) \to \mathrm{GELU} \to \mathrm{Linear}(h \to K)` reads the
    *receiving* node's features :math:`\mathbf{x}_i` (Paramixer, Yu et al., CVPR 2022). Duplicate edges
    (same :math:`j`, different slots) are summed, never coalesced.

    Args:
        in_channels (int): Channels :math:`F` of the features ``x`` the weight MLP reads.
        num_slots (int): Slots :math:`K` per target node (outputs of the MLP).
        hidden_channels (int, optional): Hidden width :math:`h` of the MLP (default: ``in_channels``).
        init_scale (float, optional): Standard deviation of the weights :math:`f(\mathbf{x})_k` at
            initialisation for unit-RMS inputs. ``None`` keeps PyTorch's default ``nn.Linear`` init, as
            in the official code (unstable for deep products; see :class:`~sparsemix.Paramixer`).
            (default: ``None``)
        shared_first (nn.Linear, optional): A first layer :math:`F \to h` shared with other factors
            (:class:`~sparsemix.Paramixer`'s ``weight_mlp="shared"``: one hidden layer for all
            factors of a block, each factor its own :math:`h \to K` head). ``None``: this factor's own.
            (default: ``None``)
        backend (str, optional): How the factor is applied (:meth:`apply_factor`): ``"message"`` (PyG
            ``propagate``: gather, multiply, scatter; the readable reference), ``"fused"`` (eager kernel that
            never materialises the per-edge messages), ``"compiled"`` (the same through ``torch.compile``),
            ``"native"`` (the C++ op, CPU), ``"sparse"`` (``torch_sparse``) or ``"auto"`` (native if
            built, else fused; resolved once here and recorded in :attr:`active_backend`; the CPU-only
            native op hands tensors on other devices to fused). An explicitly
            requested backend that cannot run raises instead of falling back. The default is the PyG path
            because a lone layer may get any edge set; :class:`~sparsemix.Paramixer` defaults to
            ``"auto"``. (default: ``"message"``)
        **kwargs (optional): Additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          values :math:`(*, N, C)`, edge indices :math:`(2, E)` (row 0 = source :math:`j`,
          row 1 = target :math:`i`), slots :math:`(E,)` in :math:`\{0..K-1\}`, features
          :math:`(*, N, F)` (default: the values; requires :math:`C = F`). One edge set is shared by
          all leading batch dimensions :math:`*` (a static graph). A ``torch_sparse.SparseTensor``
          ``adj_t`` whose values are the slots may replace ``edge_index`` and ``slot``. Backends other
          than ``"message"`` need the slot layout of :class:`topologies.Topology` (edge
          :math:`e = iK + k`); :meth:`apply_factor` takes a factor's
          :class:`topologies.FactorTables` directly.
        - **output:** values :math:`(*, N, C)`; with ``return_weights=True`` also the weights
          :math:`(*, N, K)` that were used (row :math:`i`, slot :math:`k`).
    """

    def __init__(self, in_channels: int, num_slots: int, hidden_channels: Optional[int] = None,
                 init_scale: Optional[float] = None, backend: str = "message",
                 shared_first: Optional[nn.Linear] = None, **kwargs) -> None:
        check_channels(in_channels, "in_channels")
        check_channels(num_slots, "num_slots")
        check_channels(hidden_channels, "hidden_channels", optional=True)
        kwargs.setdefault("aggr", "sum")
        kwargs.setdefault("node_dim", -2)
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.num_slots = num_slots
        self.hidden_channels = hidden_channels or in_channels
        self.init_scale = init_scale
        self.backend = backend
        self.active_backend = resolve_backend(backend)
        if shared_first is not None and (not isinstance(shared_first, nn.Linear) or (
                shared_first.in_features, shared_first.out_features) != (in_channels, self.hidden_channels)):
            raise ValueError(f"shared_first must be an nn.Linear({in_channels}, {self.hidden_channels}), "
                             f"got {shared_first!r}")
        self.mlp = nn.Sequential(
            shared_first if shared_first is not None else nn.Linear(in_channels, self.hidden_channels),
            nn.GELU(),
            nn.Linear(self.hidden_channels, num_slots),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        first, _, last = self.mlp
        first.reset_parameters()
        last.reset_parameters()
        if self.init_scale is not None:
            # Variance-preserving first layer (GELU ~ ReLU gain), then a last layer whose outputs have
            # std ~ init_scale: the product of many (I + W) factors stays bounded (Paramixer docstring).
            nn.init.kaiming_normal_(first.weight, nonlinearity="relu")
            nn.init.zeros_(first.bias)
            nn.init.normal_(last.weight, std=self.init_scale / math.sqrt(self.hidden_channels))
            nn.init.zeros_(last.bias)

    @property
    def weight_layers(self) -> tuple[nn.Linear, nn.Linear]:
        """The two ``nn.Linear`` layers of the weight MLP ``f`` (GELU between them), for callers that
        evaluate many factors at once (:func:`sparsemix.nn.stacked_weights`)."""
        return self.mlp[0], self.mlp[2]

    def compute_weights(self, x: Tensor) -> Tensor:
        """The factor's nonzero values: ``f(x)`` of shape [*, N, K]."""
        return self.mlp(x)

    def forward(self, v: Tensor, edge_index: Union[Tensor, "SparseTensor"], slot: Optional[Tensor] = None,
                x: Optional[Tensor] = None, return_weights: bool = False
                ) -> Union[Tensor, tuple[Tensor, Tensor]]:
        check_tensor(v, "v")
        edge_index, slot = self._edges(edge_index, slot)
        x = v if x is None else x
        check_features(x, self.in_channels, "x")
        check_node_dim(v, x, "v", "x")
        check_dtype(x, "x", self.mlp[0].weight)
        if not v.is_floating_point():
            raise ValueError(f"v must be a floating-point tensor, got {v.dtype}")
        weights = self.compute_weights(x)
        if self.active_backend == "message":
            out = self.mix(v, edge_index, slot, weights)
        else:
            out = self.apply_factor(v, weights, FactorTables.from_edges(edge_index, slot, v.size(-2),
                                                                        self.num_slots))
        return (out, weights) if return_weights else out

    def apply_factor(self, v: Tensor, weights: Tensor, tables: FactorTables,
                     residual: bool = False) -> Tensor:
        r"""Apply one factor, given as its index ``tables`` (:class:`topologies.FactorTables`, from
        ``topology.tables(m)`` of a :class:`topologies.Topology` or
        :class:`topologies.BatchedTopology`), with the weights [*, N, K] to ``v`` [*, N, C], through
        :attr:`active_backend`: the only place that dispatches. Used by
        :class:`~sparsemix.Paramixer` for every factor. ``residual=True`` returns
        :math:`(\mathbf{I} + \mathbf{W})\mathbf{v}` (one pass in the native kernel)."""
        backend = self.active_backend
        if backend == "native" and (v.device.type == "cpu" or self.backend == "native"):
            # (an explicit "native" on CUDA gets the op's own error; "auto" there takes the fused path)
            return _native_mix(v, weights, tables.source, tables.inverse, residual)
        if backend == "message":
            out = self.mix(v, tables.edge_index, tables.slot, weights)
        elif backend == "sparse":
            out = kernels.sparse_slot_mix(v, weights, tables.source)
        elif backend == "compiled":
            out = kernels.compiled_slot_mix(v, weights, tables.source, tables.inverse)
        else:  # fused, and native's fallback off the CPU; shifts: slices, no gathers
            out = kernels.fused_slot_mix(v, weights, tables.source, tables.inverse, tables.shifts)
        return v + out if residual else out

    def mix(self, v: Tensor, edge_index: Tensor, slot: Tensor, weights: Tensor) -> Tensor:
        """Apply the factor with given weights [*, N, K]: gather -> multiply -> scatter (PyG propagate)."""
        num_nodes = v.size(-2)
        # Per-edge weight w[i_e, k_e]: index the flattened [*, N*K] weights with i_e * K + k_e.
        flat = weights.flatten(-2)  # [*, N, K] -> [*, N*K]
        edge_weight = flat.index_select(-1, edge_index[1] * self.num_slots + slot)  # [*, E]
        return self.propagate(edge_index, v=v, edge_weight=edge_weight, size=(num_nodes, num_nodes))

    def message(self, v_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * v_j  # [*, E, 1] * [*, E, C]

    def _edges(self, edge_index, slot: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        if SparseTensor is not None and isinstance(edge_index, SparseTensor):
            if slot is not None:
                raise ValueError("slot must be None when edge_index is a SparseTensor adj_t: the slots are "
                                 "its values")
            row, col, value = edge_index.coo()  # adj_t: row = target i, col = source j
            if value is None:
                raise ValueError("the SparseTensor adj_t must hold the slot of every edge as its value")
            return torch.stack([col, row]), value.long()
        if not torch.is_tensor(edge_index) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must be a [2, E] LongTensor, got "
                             f"{getattr(edge_index, 'shape', type(edge_index).__name__)}")
        if slot is None or slot.dim() != 1 or slot.numel() != edge_index.size(1):
            raise ValueError(f"slot must be a [E] LongTensor with E = {edge_index.size(1)} (edge_index), got "
                             f"{None if slot is None else list(slot.shape)}")
        return edge_index.as_subclass(Tensor), slot

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, num_slots={self.num_slots}, "
                f"hidden_channels={self.hidden_channels}, backend={self.active_backend!r})")


def _native_mix(v: Tensor, w: Tensor, src: Tensor, inv: Tensor, residual: bool) -> Tensor:
    """The C++ op takes v [B, N, C] (or [N, C]) and w [B or 1, N, K]; map any leading dims onto that
    (the op casts both to their wider dtype, as every backend does)."""
    n, c, k = v.size(-2), v.size(-1), w.size(-1)
    v3 = v.reshape(-1, n, c)  # [*, N, C] -> [B, N, C]
    w3 = w.reshape(-1 if w.dim() > 2 else 1, n, k)  # [*, N, K] -> [B or 1, N, K]
    return kernels.native.native_slot_mix(v3, w3, src, inv, residual).reshape(v.shape)
