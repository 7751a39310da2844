"""``--precision``: the dtype the training step's forward computes in, and what ``auto`` picks."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ContextManager, Optional

import torch

#: ``--precision``: "fp32"; "bf16" (``torch.autocast`` to bfloat16 around the training forward;
#: parameters, optimizer state and the loss stay fp32); "auto" (bf16 where the device has bf16
#: arithmetic units, else fp32).
PRECISIONS = ("auto", "fp32", "bf16")

# CPU flags of bf16 arithmetic (AVX512-BF16, AMX-BF16): without them bf16 is emulated and slower.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: Optional[str] = None) -> bool:
    """Whether this CPU has bf16 units: torch's own capability (``AMX`` / ``AVX512_BF16``) or the
    ``avx512_bf16`` / ``amx_bf16`` flags of /proc/cpuinfo (``cpuinfo``: its text, for tests)."""
    if cpuinfo is None:
        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
        if "AMX" in capability or "BF16" in capability:
            return True
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: trust torch's capability alone
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return any(f in flags for f in _BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``precision`` itself, or for ``"auto"`` bf16 on a CUDA device that
    supports it or a CPU with bf16 units, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context the training forward runs in: autocast to bf16 for ``"bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
