"""topologies: who mixes with whom. CHORD and CDIL sparse factor graphs for Paramixer-style mixing.

Pure torch (plus networkx / matplotlib for views, imported lazily); never imports ``sparsemix``.
"""
from ._checks import default_num_factors
from .batching import BatchedTopology, batch
from .factor_tables import FactorTables
from .protocols import PROTOCOLS, cdil, chord, get
from .topology import Topology

__all__ = ["Topology", "BatchedTopology", "FactorTables", "chord", "cdil", "get", "batch", "PROTOCOLS", "default_num_factors"]
