"""Fast kernels for slot-structured sparse factors (the layer picks one with ``backend=``).

- :func:`fused_slot_mix`: eager autograd function (CPU and CUDA) that never materialises the per-edge
  messages and saves only ``v`` and ``w`` for backward: readable, and the fallback of ``"auto"``.
- :func:`compiled_slot_mix`: the same op through ``torch.compile`` kernels (``backend="compiled"``).
- :func:`sparse_slot_mix`: the same product through ``torch_sparse`` when it is installed.
- ``native``: the C++ op (``native.HAS_NATIVE``, ``native.NATIVE_ERROR``, ``native.native_slot_mix``),
  or ``None`` where that module is not part of this checkout.
"""
from .slot_mix import IMPLS, FusedSlotMix, compiled_slot_mix, fused_slot_mix
from .sparse_mix import HAS_TORCH_SPARSE, sparse_slot_mix

try:  # the C++ op is written on another branch; until it is merged this checkout has no native.py
    from . import native
except ImportError:
    native = None

HAS_NATIVE: bool = bool(getattr(native, "HAS_NATIVE", False))
NATIVE_ERROR: str = (getattr(native, "NATIVE_ERROR", None) if native is not None
                     else "sparsemix/kernels/native.py is not in this checkout")

__all__ = ["FusedSlotMix", "fused_slot_mix", "compiled_slot_mix", "sparse_slot_mix", "HAS_TORCH_SPARSE",
           "IMPLS", "native", "HAS_NATIVE", "NATIVE_ERROR"]
