"""Keep freed memory in the process for the next training step.

glibc's malloc hands large freed blocks back to the operating system (it ``munmap``s blocks above a
threshold and trims the heap's free top), so a training loop that frees its activations at the end
of every step faults the same memory back in, zero-filled, at the next one. On the default Paramixer
step (N = 1024, B = 32, 1 thread, AMD EPYC) that was about 50,000 page faults and 0.2 s of system time
a step, out of about 1.1 s; with the settings below, none. The Transformer baseline's step faulted
nothing either way (docs/speed.md, "Training step").
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Optional

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's maximum for M_MMAP_THRESHOLD on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: The heap's free top is returned to the OS only beyond this.
TRIM_THRESHOLD = 1 << 30

_applied: Optional[bool] = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MiB (and the heap's free top up to 1 GiB)
    for reuse instead of returning them to the OS. Process-wide and not undone: ``sparsemix train``,
    the demos and the training benchmarks call it once at start, for every model alike. Returns
    whether it took effect: ``False`` off Linux / glibc (musl, macOS, Windows), where it does
    nothing."""
    global _applied
    if _applied is None:
        _applied = _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(_M_TRIM_THRESHOLD,
                                                                            TRIM_THRESHOLD)
    return _applied


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no libc by that name, or a libc without mallopt (musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(param, value) == 1
