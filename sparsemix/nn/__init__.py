"""Learnable layers: the sparse factor and the Paramixer block."""
from .paramixer import Paramixer
from .sparse_factor_conv import SparseFactorConv

__all__ = ["SparseFactorConv", "Paramixer"]
