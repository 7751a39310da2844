"""Fast kernels for slot-structured sparse factors (the layer picks one with ``backend=``).

- :func:`fused_slot_mix`: eager autograd function (CPU and CUDA) that never materialises the per-edge
  messages and saves only ``v`` and ``w`` for backward: readable, and the fallback of ``"auto"``.
- :func:`compiled_slot_mix`: the same op through ``torch.compile`` kernels (``backend="compiled"``).
- :func:`sparse_slot_mix`: the same product through ``torch_sparse`` when it is installed.
- ``native``: the C++ op (``native.native_slot_mix``; ``HAS_NATIVE`` says whether it is built here,
  ``NATIVE_ERROR`` why not).

Every backend returns :func:`mix_dtype` (the wider of the values' and the weights' dtypes).
"""
from . import native
from .native import HAS_NATIVE, NATIVE_ERROR
from .slot_mix import FusedSlotMix, compiled_slot_mix, fused_slot_mix, mix_dtype
from .sparse_mix import HAS_TORCH_SPARSE, sparse_slot_mix

__all__ = ["FusedSlotMix", "fused_slot_mix", "compiled_slot_mix", "sparse_slot_mix", "HAS_TORCH_SPARSE",
           "native", "HAS_NATIVE", "NATIVE_ERROR", "mix_dtype"]
