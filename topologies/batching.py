"""Many sequences of different lengths as one disjoint graph, like PyG's ``Batch``: no padding anywhere."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .factor_tables import FactorTables
from .topology import Topology


@dataclass(frozen=True, eq=False)
class BatchedTopology:
    """Per-sequence topologies of equal depth M and slot count K, concatenated with node offsets.

    Node ``t`` of the batch belongs to sequence ``batch[t]``; sequence b owns nodes ``ptr[b]:ptr[b+1]``.
    Each slot of each factor stays a permutation of every sequence's own nodes, so no edge crosses two
    sequences.

    When every sequence has the same offset table (``offsets`` [M, K], which :func:`batch` finds:
    CHORD and CDIL offsets do not depend on the length), the tables are built for all sequences at once: node ``t`` at
    position ``p`` of a sequence of length ``n`` starting at ``s`` reads ``s + (p + o) mod n``,
    vectorised over the batch (no loop over sequences), and factors with equal offset rows (every
    CHORD factor) share one table.
    """

    topologies: tuple[Topology, ...]
    ptr: Tensor  # [B + 1] long
    offsets: Optional[Tensor] = None  # [M, K] long on the CPU, shared by every sequence (or None)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return int(self.ptr[-1])

    @property
    def num_graphs(self) -> int:
        return len(self.topologies)

    @property
    def num_factors(self) -> int:
        return self.topologies[0].num_factors

    @property
    def num_slots(self) -> int:
        return self.topologies[0].num_slots

    @property
    def device(self) -> torch.device:
        return self.ptr.device

    @property
    def batch(self) -> Tensor:
        """LongTensor [T]: the sequence of each node."""
        if "batch" not in self._cache:
            sizes = self.ptr[1:] - self.ptr[:-1]
            self._cache["batch"] = torch.repeat_interleave(
                torch.arange(self.num_graphs, device=self.device), sizes)
        return self._cache["batch"]

    def __repr__(self) -> str:
        return (f"BatchedTopology(num_graphs={self.num_graphs}, num_nodes={self.num_nodes}, "
                f"num_factors={self.num_factors}, num_slots={self.num_slots})")

    def _row(self, m: int) -> tuple[int, ...]:
        """Factor ``m``'s offsets as a key (rows shared by several factors share their tables)."""
        self.topologies[0].check_factor(m)
        rows = self._cache.get("rows")
        if rows is None:
            rows = self._cache["rows"] = [tuple(r) for r in self.offsets.tolist()]  # CPU tensor
        return rows[m]

    def _wrapped(self, m: int, sign: int) -> Tensor:
        """LongTensor [T, K]: ``s + (p + sign * o_k) mod n`` for every node (start s, position p, its
        sequence's length n), for factor ``m``'s offsets ``o``."""
        row = self._row(m)
        key = ("source" if sign > 0 else "inverse", row)
        if key not in self._cache:
            if "nodes" not in self._cache:
                batch = self.batch
                start = self.ptr[:-1][batch]  # [T] first node of each node's sequence
                pos = torch.arange(self.num_nodes, device=self.device) - start  # [T]
                size = (self.ptr[1:] - self.ptr[:-1])[batch]  # [T]
                self._cache["nodes"] = (start[:, None], pos[:, None], size[:, None])
            start, pos, size = self._cache["nodes"]
            shift = torch.tensor(row, dtype=torch.long, device=self.device) * sign  # [K]
            out = torch.add(pos, shift[None, :])  # [T, K]
            self._cache[key] = out.remainder_(size).add_(start)
        return self._cache[key]

    def _concat(self, key: tuple, per_topology) -> Tensor:
        if key not in self._cache:
            parts = [per_topology(t).to(self.device) + int(start)
                     for t, start in zip(self.topologies, self.ptr[:-1].tolist())]
            self._cache[key] = torch.cat(parts, dim=-2 if key[0] != "edge_index" else -1)
        return self._cache[key]

    def source_index(self, m: int) -> Tensor:
        """LongTensor [T, K] of global source nodes (see :meth:`Topology.source_index`)."""
        if self.offsets is not None:
            return self._wrapped(m, 1)
        return self._concat(("source", m), lambda t: t.source_index(m))

    def inverse_index(self, m: int) -> Tensor:
        """LongTensor [T, K] of global targets reading each source through each slot."""
        if self.offsets is not None:
            return self._wrapped(m, -1)
        return self._concat(("inverse", m), lambda t: t.inverse_index(m))

    def edge_index(self, m: int) -> Tensor:
        """LongTensor [2, T*K], sequences in order, each shifted by its first node."""
        if self.offsets is not None:
            return self.tables(m).edge_index
        return self._concat(("edge_index", m), lambda t: t.edge_index(m))

    def slot(self, m: int) -> Tensor:
        """LongTensor [T*K], ``e mod K`` (slots are never shifted)."""
        key = ("slot",)
        if key not in self._cache:
            self._cache[key] = torch.arange(self.num_nodes * self.num_slots,
                                            device=self.device) % self.num_slots
        return self._cache[key]

    def tables(self, m: int) -> FactorTables:
        """Factor ``m``'s concatenated index tables (no ``shifts``: the factor is not circulant);
        ``edge_index`` is built only when a backend reads it."""
        key = ("tables", m if self.offsets is None else self._row(m))
        if key not in self._cache:
            self._cache[key] = FactorTables(self.source_index(m), self.inverse_index(m))
        return self._cache[key]

    def to(self, device: Union[str, torch.device]) -> "BatchedTopology":
        device = torch.device(device)
        if device == self.device:
            return self
        return BatchedTopology(tuple(t.to(device) for t in self.topologies), self.ptr.to(device),
                               self.offsets)


def batch(topologies: Sequence[Topology]) -> BatchedTopology:
    """Concatenate per-sequence topologies (same M and K) into one :class:`BatchedTopology`."""
    topologies = tuple(topologies)
    if not topologies:
        raise ValueError("topologies must hold at least one Topology, got an empty sequence")
    first = topologies[0]
    for pos, t in enumerate(topologies):
        if not isinstance(t, Topology):
            raise TypeError(f"topologies[{pos}] must be a Topology, got {type(t).__name__}")
        if (t.num_factors, t.num_slots) != (first.num_factors, first.num_slots):
            raise ValueError(
                f"topologies[{pos}] has (num_factors, num_slots) = ({t.num_factors}, {t.num_slots}), "
                f"but topologies[0] has ({first.num_factors}, {first.num_slots}); all must match")
    sizes = torch.tensor([t.num_nodes for t in topologies], dtype=torch.long)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)]).to(first.device)
    offsets = first.offsets.cpu()
    shared = all(t.offsets is first.offsets or torch.equal(t.offsets.cpu(), offsets) for t in topologies)
    return BatchedTopology(topologies, ptr, offsets if shared else None)

