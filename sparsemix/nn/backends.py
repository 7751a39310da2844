"""The ways a :class:`~sparsemix.SparseFactorConv` can apply its factor, and how ``"auto"`` picks one.

``auto`` is resolved once, when a layer is built: the C++ op if it is built here, else the eager fused
kernel. An explicitly requested backend is never replaced by another: if it cannot run here, building
the layer fails with an error that says what to install or build.
"""
from __future__ import annotations

import logging

from .. import kernels

log = logging.getLogger(__name__)

BACKENDS = ("auto", "message", "fused", "compiled", "native", "sparse")

_logged_auto = False


def resolve_backend(backend: str) -> str:
    """The concrete backend for ``backend`` (one of :data:`BACKENDS`); raises if it is unavailable."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "sparse" and not kernels.HAS_TORCH_SPARSE:
        raise ImportError("backend='sparse' needs torch-sparse: pip install --no-build-isolation "
                          "torch-sparse (after torch-scatter), or pip install sparsemix[accel]")
    if backend == "native" and not kernels.HAS_NATIVE:
        raise RuntimeError(f"backend='native' needs the C++ op, which is not built here "
                           f"({kernels.NATIVE_ERROR}); build the sparsemix C++ extension (docs/speed.md) "
                           f"or pick backend='fused'")
    if backend != "auto":
        return backend
    choice = "native" if kernels.HAS_NATIVE else "fused"
    _log_auto_once(choice)
    return choice


def _log_auto_once(choice: str) -> None:
    global _logged_auto
    if not _logged_auto:  # once per process: every layer of a model resolves the same way
        why = "" if choice == "native" else f" (native op not built: {kernels.NATIVE_ERROR})"
        log.info("backend='auto' uses %r%s", choice, why)
        _logged_auto = True
