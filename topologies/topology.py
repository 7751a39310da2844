"""The `Topology` of one sequence: which source node each target reads through each slot of each factor."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Union

import torch
from torch import Tensor

from .factor_tables import FactorTables

if TYPE_CHECKING:  # networkx is an optional extra, imported lazily
    import networkx as nx


class FactorIndexError(IndexError, ValueError):
    """A factor index ``m`` outside ``[0, M)``: an IndexError, and a ValueError for callers that
    check arguments (the drawing functions)."""


@dataclass(frozen=True, eq=False)
class Topology:
    r"""A slot-structured factor graph for sequences of length :math:`N`.

    Factor :math:`m` has :math:`K` slots; through slot :math:`k` target node :math:`i` reads source node
    :math:`(i + \mathrm{offsets}[m, k]) \bmod N`. As a matrix, factor :math:`m` with per-row weights
    :math:`w \in \mathbb{R}^{N \times K}` is

    .. math::
        W^{(m)}_{i,\,(i + o_{m,k}) \bmod N} \mathrel{+}= w_{i,k},

    duplicates summed. In PyG terms this is the edge :math:`j \to i` with :math:`j = (i + o_{m,k}) \bmod N`.

    Build with :func:`topologies.chord`, :func:`topologies.cdil` or :func:`topologies.get`.
    """

    name: str
    num_nodes: int
    offsets: Tensor  # [M, K] long, not yet reduced mod N
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---- sizes -----------------------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return int(self.offsets.size(0))

    @property
    def num_slots(self) -> int:
        return int(self.offsets.size(1))

    @property
    def device(self) -> torch.device:
        return self.offsets.device

    def __repr__(self) -> str:
        return (f"Topology({self.name}, num_nodes={self.num_nodes}, num_factors={self.num_factors}, "
                f"num_slots={self.num_slots})")

    def check_factor(self, m: int) -> int:
        """``m`` as a factor index in ``[0, M)``; negative indices are refused (``-1`` silently
        meaning the last factor hid off-by-one errors)."""
        if isinstance(m, bool) or not isinstance(m, numbers.Integral):
            raise TypeError(f"factor m must be an int, got {m!r}")
        if not 0 <= m < self.num_factors:
            raise FactorIndexError(f"factor m={m} out of range: a topology with {self.num_factors} "
                             f"factors has m in [0, {self.num_factors - 1}]")
        return int(m)

    def _cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # ---- index views -----------------------------------------------------------------------------
    def source_index(self, m: int) -> Tensor:
        """LongTensor [N, K]: the source node that target i reads through slot k of factor m."""
        m = self.check_factor(m)

        def build() -> Tensor:
            return _wrap_add(self.num_nodes, self.offsets[m], self.device)

        # keyed by the reduced shifts: factors with equal shifts (every CHORD factor) share one tensor
        return self._cached(("source", self.shifts(m)), build)

    def inverse_index(self, m: int) -> Tensor:
        """LongTensor [N, K]: the target that reads source j through slot k (each slot is a permutation)."""
        m = self.check_factor(m)

        def build() -> Tensor:
            return _wrap_add(self.num_nodes, -self.offsets[m], self.device)

        return self._cached(("inverse", self.shifts(m)), build)

    def shifts(self, m: int) -> tuple[int, ...]:
        """The K offsets of factor m reduced mod N, as Python ints (for roll/slice kernels)."""
        m = self.check_factor(m)
        return self._cached(("shifts", m),
                            lambda: tuple(int(o) % self.num_nodes for o in self.offsets[m].tolist()))

    def edge_index(self, m: int) -> Tensor:
        """LongTensor [2, N*K] in PyG direction: row 0 = source j, row 1 = target i; edge e = i*K + k."""
        m = self.check_factor(m)

        def build() -> Tensor:
            n, k = self.num_nodes, self.num_slots
            # written in place into one [2, N, K] buffer: no stack/reshape copies of N*K-sized tensors
            out = torch.empty(2, n, k, dtype=torch.long, device=self.device)
            _wrap_add(n, self.offsets[m], self.device, out=out[0])  # sources, target-major then slot
            out[1].copy_(torch.arange(n, device=self.device)[:, None].expand(n, k))  # targets
            return out.view(2, n * k)

        # shared by factors with equal shifts: CHORD builds (and stores) one edge set for all M factors
        return self._cached(("edge_index", self.shifts(m)), build)

    def slot(self, m: int) -> Tensor:
        """LongTensor [N*K]: the slot of every edge, ``e mod K``."""
        self.check_factor(m)
        # arange(K) tiled N times == e mod K, without an int64 % over N*K elements
        return self._cached(("slot",), lambda: torch.arange(
            self.num_slots, device=self.device).repeat(self.num_nodes))

    def tables(self, m: int) -> FactorTables:
        """Factor ``m``'s index tables (source, inverse, shifts, edge_index, slot), as a layer's
        :meth:`~sparsemix.nn.SparseFactorConv.apply_factor` reads them."""
        m = self.check_factor(m)
        return self._cached(("tables", m), lambda: FactorTables(
            self.source_index(m), self.inverse_index(m), self.shifts(m), self.edge_index(m),
            self.slot(m)))

    # ---- conversions -----------------------------------------------------------------------------
    def to(self, device: Union[str, torch.device]) -> "Topology":
        """The same topology with its index tensors on ``device`` (cached views are rebuilt lazily)."""
        device = torch.device(device)
        if device == self.device:
            return self
        return Topology(self.name, self.num_nodes, self.offsets.to(device))

    def reachable_offsets(self, num_factors: Optional[int] = None) -> Tensor:
        """Bool [N]: which relative offsets d have (i + d) mod N in the support of the product of the
        first ``num_factors`` factors (all by default), each with its residual (I + W).

        Every slot set here contains offset 0, so the support is the same with or without residuals.
        The factors are circulant, so one row determines the whole support.
        """
        count = self.num_factors if num_factors is None else num_factors
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= self.num_factors:
            raise ValueError(f"num_factors must be an int in [0, {self.num_factors}], got {num_factors!r}")
        reach = torch.zeros(self.num_nodes, dtype=torch.bool, device=self.device)
        reach[0] = True
        for m in range(count):
            new = reach.clone()  # the residual keeps what was reached
            for o in set(self.shifts(m)) - {0}:
                new |= torch.roll(reach, o)  # d reachable if d - o was (roll: no int64 % per call)
            reach = new
        return reach

    def reachability(self, num_factors: Optional[int] = None) -> Tensor:
        """Bool [N, N]: support of (I + W^(M))...(I + W^(1)); entry [i, j] says output i depends on input j."""
        reach = self.reachable_offsets(num_factors)
        nodes = torch.arange(self.num_nodes, device=self.device)
        return reach[(nodes[None, :] - nodes[:, None]) % self.num_nodes]  # [N, N], circulant

    def dense(self, m: int, weights: Tensor) -> Tensor:
        """Dense [*, N, N] factor from weights [*, N, K]: ``W[i, (i + o_k) mod N] += w[i, k]``
        (duplicates summed, as the definition says). Small N only; the ground truth of
        :mod:`sparsemix.reference`."""
        m = self.check_factor(m)
        n, k = self.num_nodes, self.num_slots
        if weights.shape[-2:] != (n, k):
            raise ValueError(f"weights must be [N, K] = [{n}, {k}] (with any leading dims), "
                             f"got {list(weights.shape)}")
        flat = weights.reshape(-1, n, k)  # [*, N, K] -> [P, N, K]
        out = weights.new_zeros(flat.size(0), n, n)
        rows = torch.arange(n, device=weights.device)[:, None].expand(n, k)  # target i of (i, k)
        cols = self.source_index(m).to(weights.device)  # source (i + o_k) mod N of (i, k)
        for p in range(flat.size(0)):  # accumulate=True sums duplicate (i, j) entries
            out[p].index_put_((rows, cols), flat[p], accumulate=True)
        return out.reshape(*weights.shape[:-2], n, n)

    def to_networkx(self, m: Optional[int] = None,
                    weights: Optional[Union[Tensor, Sequence[Tensor]]] = None) -> "nx.MultiDiGraph":
        """A ``networkx.MultiDiGraph`` with all N*K edges of factor ``m`` (or of every factor).

        Edges carry ``slot`` and ``factor`` attributes, and ``weight`` when ``weights`` is given:
        [N, K] for one factor, or a sequence / [M, N, K] tensor for all.
        """
        import networkx as nx

        factors = range(self.num_factors) if m is None else [self.check_factor(m)]
        if weights is not None:
            if m is not None:
                weights = [weights]
            if len(weights) != len(factors):
                raise ValueError(f"weights must hold one [N, K] tensor per factor ({len(factors)}), "
                                 f"got {len(weights)}")
        graph = nx.MultiDiGraph(protocol=self.name, num_factors=self.num_factors)
        graph.add_nodes_from(range(self.num_nodes))
        for pos, f in enumerate(factors):
            src, dst = self.edge_index(f).tolist()
            slots = self.slot(f).tolist()
            w = None if weights is None else weights[pos].detach().reshape(-1).tolist()
            for e, (j, i, k) in enumerate(zip(src, dst, slots)):
                attrs = {"slot": k, "factor": f}
                if w is not None:
                    attrs["weight"] = w[e]
                graph.add_edge(j, i, **attrs)
        return graph


def _wrap_add(num_nodes: int, offsets: Tensor, device: torch.device,
              out: Optional[Tensor] = None) -> Tensor:
    """[N, K] of (i + offsets[k]) mod N, written into ``out`` when given.

    The K offsets are reduced first, so every entry is below 2N and the N*K-sized wrap runs in place
    without temporaries: a bit mask when N is a power of two (about 6x faster than ``%`` on CPU),
    else an in-place remainder (faster than ``torch.where``, which allocates two N*K temporaries).
    """
    shift = (offsets % num_nodes).to(device)  # [K], each in [0, N)
    nodes = torch.arange(num_nodes, device=device)[:, None]  # [N, 1]
    index = torch.add(nodes, shift[None, :], out=out)  # [N, K], each in [0, 2N)
    if num_nodes & (num_nodes - 1) == 0:
        return index.bitwise_and_(num_nodes - 1)
    return index.remainder_(num_nodes)
