"""One benchmark cell (one method, one size) in a fresh process: builds the inputs, times fwd+bwd
steps and reads the process's peak memory. Called by ``benchmarks/speed.py``; prints one JSON line."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

BLOCK_METHODS = ("message", "official", "sparse", "fused", "fused-compiled", "fused-ckpt", "native",
                 "attention")
FACTOR_METHODS = ("message", "sparse", "fused", "fused-compiled", "native")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _block_step(cell: dict) -> tuple[Callable[[], None], dict]:
    import torch
    from torch import nn
    import torch.nn.functional as F

    b, n, c, method = cell["batch"], cell["length"], cell["channels"], cell["method"]
    info: dict = {}
    if method == "attention":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        heads = cell.get("heads", 1)
        if c % heads:
            raise ValueError(f"--heads {heads} must divide the channels {c}")
        qkv = nn.Linear(c, 3 * c)

        def forward(v):
            q, k, val = (t.unflatten(-1, (heads, c // heads)).transpose(1, 2)  # [B, N, C] -> [B, H, N, C/H]
                         for t in qkv(v).chunk(3, dim=-1))
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if flash cannot run: no silent math
                out = F.scaled_dot_product_attention(q, k, val)
            kernel = out.grad_fn.name() if out.grad_fn is not None else "no grad_fn"
            if "Flash" not in kernel:
                raise RuntimeError(f"SDPA did not run the flash kernel (grad_fn {kernel})")
            info["sdpa_kernel"] = "flash"
            info["sdpa_grad_fn"] = kernel  # the proof: flash's own backward node
            return out.transpose(1, 2).flatten(-2)  # [B, H, N, C/H] -> [B, N, C]

        info["heads"] = heads
        params = list(qkv.parameters())
    elif method == "official":
        from speed_official import OfficialParamixerBlock
        from sparsemix.kernels import HAS_TORCH_SPARSE

        block = OfficialParamixerBlock(c, n, c, cell["protocol"], use_torch_sparse=HAS_TORCH_SPARSE)
        info["spmm"] = block.spmm_name
        forward, params = block, list(block.parameters())
    else:
        import sparsemix

        # fused-compiled is the "compiled" backend; fused-ckpt is fused with the weight MLPs recomputed
        backend = {"fused-compiled": "compiled", "fused-ckpt": "fused"}.get(method, method)
        block = sparsemix.Paramixer(channels=c, protocol=cell["protocol"], max_len=n,
                                    hidden_channels=c, backend=backend,
                                    checkpoint_weights=method == "fused-ckpt")
        info["active_backend"] = block.active_backend
        forward, params = block, list(block.parameters())
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(b, n, c, generator=gen).requires_grad_()
    grad = torch.randn(b, n, c, generator=gen)

    def step():
        for p in params:
            p.grad = None
        v.grad = None
        forward(v).backward(grad)

    return step, info


def _factor_step(cell: dict) -> tuple[Callable[[], None], dict]:
    import torch
    import topologies
    from sparsemix import kernels

    b, n, c, method = cell["batch"], cell["length"], cell["channels"], cell["method"]
    topo = topologies.get(cell["protocol"], n)
    m = topo.num_factors - 1  # the widest CDIL dilation; CHORD factors all look alike
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(b, n, c, generator=gen).requires_grad_()
    w = torch.randn(b, n, topo.num_slots, generator=gen).requires_grad_()
    grad = torch.randn(b, n, c, generator=gen)
    info = {"num_slots": topo.num_slots}
    if method == "message":
        from sparsemix import SparseFactorConv

        conv = SparseFactorConv(c, topo.num_slots)
        edge_index, slot = topo.edge_index(m), topo.slot(m)
        apply = lambda: conv.mix(v, edge_index, slot, w)  # noqa: E731
    elif method == "sparse":
        src = topo.source_index(m)
        apply = lambda: kernels.sparse_slot_mix(v, w, src)  # noqa: E731
    elif method == "native":
        from sparsemix.kernels.native import native_slot_mix

        src, inv = topo.source_index(m), topo.inverse_index(m)
        apply = lambda: native_slot_mix(v, w, src, inv)  # noqa: E731
    else:
        src, inv, shifts = topo.source_index(m), topo.inverse_index(m), topo.shifts(m)
        if method == "fused-compiled":
            apply = lambda: kernels.compiled_slot_mix(v, w, src, inv)  # noqa: E731
        else:
            apply = lambda: kernels.fused_slot_mix(v, w, src, inv, shifts)  # noqa: E731

    def step():
        v.grad = w.grad = None
        apply().backward(grad)

    if method.startswith("fused") or method == "native":
        # Bandwidth: forward alone vs a plain copy of v, measured in this process, both as the best of
        # several runs (the usual bandwidth convention; it filters out time lost to other processes).
        out = torch.empty_like(v)
        with torch.no_grad():
            info["forward_s"] = _best_time(apply, 2 * cell["steps"])
            info["copy_s"] = _best_time(lambda: out.copy_(v), 6 * cell["steps"])
        esize = v.element_size()
        info["bytes_compulsory"] = (2 * v.numel() + w.numel()) * esize  # read v, w once; write out
        info["bytes_gathered"] = ((topo.num_slots + 1) * v.numel() + w.numel()) * esize  # v read K x
        info["bytes_copy"] = 2 * v.numel() * esize
    return step, info


def _best_time(fn: Callable[[], object], steps: int) -> float:
    fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_cell(cell: dict) -> dict:
    import torch

    torch.set_num_threads(cell["threads"])
    torch.manual_seed(0)
    import sparsemix  # noqa: F401  (imports counted in the baseline)
    from sparsemix.train import keep_freed_memory

    # every method alike, as `sparsemix train` runs: freed blocks are reused by the next step instead
    # of being faulted in again (blocks above 32 MiB still are)
    kept = keep_freed_memory()

    base_kib = _status_kib("VmRSS")
    reset = _reset_peak()
    if not reset:
        base_kib = _status_kib("VmHWM")  # the peak so far, after imports only
    build = _block_step if cell["level"] == "block" else _factor_step
    step, info = build(cell)
    c0, t0 = time.process_time(), time.perf_counter()
    step()  # warm-up (and the one-off compile of the compiled kernels)
    warmup = time.perf_counter() - t0
    times, cpu_times = [], []
    if cell.get("first_step_only"):  # very long N: the first step is the measurement
        times, cpu_times = [warmup], [time.process_time() - c0]
    over = (warmup > cell["step_limit_s"] and not cell["method"].endswith("compiled")) or bool(times)
    if over and not times:
        times, cpu_times = [warmup], [None]  # one step over the limit is the measurement
    while len(times) < cell["steps"] and not over:
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        if sum(times) > cell["slow_step_s"]:  # slow cells: fewer timed steps
            break
    peak_kib = _status_kib("VmHWM")
    return {**cell, **info, "ok": True, "keep_freed_memory": kept, "warmup_s": warmup, "times_s": times,
            "time_s": statistics.median(times), "cpu_times_s": cpu_times,
            "peak_extra_bytes": (peak_kib - base_kib) * 1024, "hwm_reset": reset}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(json.dumps(run_cell(json.loads(sys.argv[1]))), flush=True)
