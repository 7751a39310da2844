"""Fast kernels for slot-structured sparse factors.

- :func:`fused_slot_mix`: pure-PyTorch autograd function (CPU and CUDA) that never materialises the
  per-edge messages and saves only ``v`` and ``w`` for backward.
- :func:`sparse_slot_mix`: the same product through ``torch_sparse`` when it is installed.
"""
from .slot_mix import FusedSlotMix, fused_slot_mix
from .sparse_mix import HAS_TORCH_SPARSE, sparse_slot_mix

__all__ = ["FusedSlotMix", "fused_slot_mix", "sparse_slot_mix", "HAS_TORCH_SPARSE"]
