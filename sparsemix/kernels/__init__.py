"""Fast kernels for slot-structured sparse factors.

- :func:`fused_slot_mix`: autograd function (CPU and CUDA) that never materialises the per-edge
  messages and saves only ``v`` and ``w`` for backward; ``impl="eager"`` (chunked PyTorch ops) or
  ``impl="compiled"`` (``torch.compile`` kernels; pick the process default with :func:`set_fused_impl`).
- :func:`sparse_slot_mix`: the same product through ``torch_sparse`` when it is installed.
"""
from .slot_mix import (IMPLS, FusedSlotMix, fused_impl, fused_slot_mix, get_fused_impl,
                       set_fused_impl)
from .sparse_mix import HAS_TORCH_SPARSE, sparse_slot_mix

__all__ = ["FusedSlotMix", "fused_slot_mix", "sparse_slot_mix", "HAS_TORCH_SPARSE", "IMPLS",
           "set_fused_impl", "get_fused_impl", "fused_impl"]
