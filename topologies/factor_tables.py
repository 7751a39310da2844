"""The index tables of ONE factor, as the kernels read them: what a topology hands a layer."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class FactorTables:
    r"""One slot-structured factor on :math:`N` nodes with :math:`K` slots (edge :math:`e = iK + k`).

    Built by :meth:`topologies.Topology.tables` (with ``shifts``: every slot is a static roll),
    :meth:`topologies.BatchedTopology.tables`, or :meth:`from_edges` for an edge list already in
    the slot layout.

    Attributes:
        source (Tensor): LongTensor [N, K], the source node :math:`j` target :math:`i` reads
            through slot :math:`k`.
        inverse (Tensor): LongTensor [N, K], the target that reads source :math:`j` through slot
            :math:`k` (``inverse[source[i, k], k] == i``; each slot is a permutation).
        shifts (tuple of int, optional): the K offsets reduced mod N when the factor is circulant
            (one sequence), so kernels may use slices instead of gathers; else None.
        edge_index (Tensor): LongTensor [2, N*K] in PyG direction (row 0 source, row 1 target);
            derived from ``source`` on first use unless given.
        slot (Tensor): LongTensor [N*K], the slot of every edge (``e mod K``); likewise.
    """

    def __init__(self, source: Tensor, inverse: Tensor, shifts: Optional[tuple[int, ...]] = None,
                 edge_index: Optional[Tensor] = None, slot: Optional[Tensor] = None) -> None:
        if source.dim() != 2 or inverse.shape != source.shape:
            raise ValueError(f"source and inverse must be [N, K] of one shape, got "
                             f"{list(source.shape)} and {list(inverse.shape)}")
        if shifts is not None and len(shifts) != source.size(1):
            raise ValueError(f"shifts must hold K = {source.size(1)} offsets, got {len(shifts)}")
        self.source, self.inverse, self.shifts = source, inverse, shifts
        self._edge_index, self._slot = edge_index, slot

    def __repr__(self) -> str:
        return (f"FactorTables(num_nodes={self.num_nodes}, num_slots={self.num_slots}, "
                f"shifts={self.shifts})")

    @property
    def edge_index(self) -> Tensor:
        if self._edge_index is None:  # edge e = i*K + k reads source[i, k]
            n, k = self.source.shape
            targets = torch.arange(n, device=self.source.device).repeat_interleave(k)  # [N*K]
            self._edge_index = torch.stack([self.source.reshape(-1), targets])  # [2, N*K]
        return self._edge_index

    @property
    def slot(self) -> Tensor:
        if self._slot is None:  # arange(K) tiled N times == e mod K
            n, k = self.source.shape
            self._slot = torch.arange(k, device=self.source.device).repeat(n)
        return self._slot

    @property
    def num_nodes(self) -> int:
        return int(self.source.size(0))

    @property
    def num_slots(self) -> int:
        return int(self.source.size(1))

    @classmethod
    def from_edges(cls, edge_index: Tensor, slot: Tensor, num_nodes: int,
                   num_slots: int) -> "FactorTables":
        """The tables of an edge list in the slot layout (edge e = i*K + k, each slot a
        permutation of the nodes); a ValueError says what else is needed."""
        n, k = num_nodes, num_slots
        e = torch.arange(n * k, device=edge_index.device)
        if (edge_index.size(1) != n * k or not torch.equal(edge_index[1], e // k)
                or not torch.equal(slot, e % k)):
            raise ValueError(f"edge_index/slot must be in the slot layout (edge e = i*K + k, N*K = "
                             f"{n * k} edges) for a non-'message' backend; use topologies' "
                             f"tables(m), or backend='message' for an arbitrary edge set")
        src = edge_index[0].reshape(n, k)  # [N*K] -> [N, K]
        inv = torch.full_like(src, -1)
        inv.scatter_(0, src, (e // k).reshape(n, k))  # inv[src[i, k], k] = i
        if bool((inv < 0).any()):
            raise ValueError("every slot of edge_index must be a permutation of the nodes for a "
                             "non-'message' backend (each node read once per slot); use "
                             "backend='message'")
        return cls(src, inv, None, edge_index, slot)
