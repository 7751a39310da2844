r"""torch.distributed plumbing for ``sparsemix train`` (DistributedDataParallel, gloo / nccl).

The same command runs on one process or under ``torchrun``::

    sparsemix train --task adding-varlen --out runs/a                        # 1 process
    torchrun --nproc_per_node=2 -m sparsemix train --task adding-varlen --out runs/a

:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and joins the process group with ``gloo`` on CPU and ``nccl`` on
CUDA; without that environment (or with ``WORLD_SIZE=1``) it returns single-process info and
every helper here is a no-op, so the trainer has one code path.

Gradient averaging rule
-----------------------
``--batch-size`` is the *global* batch; a sampler from :mod:`sparsemix.train.samplers` splits
each step's global batch across ranks, and with variable-length data the ranks get different
numbers of samples. Each rank therefore uses::

    loss_r = (sum of per-sample losses on rank r) * world_size / G,
    G      = global_batch_count(local_count, info)    # samples in the global step, all ranks

DDP averages gradients over ranks, so the applied gradient is
``(1/P) Σ_r ∇loss_r = ∇ (Σ_r Σ_{i on r} ℓ_i) / G`` — exactly the gradient of the mean loss
over the global batch, for any split (see :func:`scale_loss`). Samples, not tokens, are the unit:
each sequence carries one label, so a long sequence should not count more than a short one. A
per-token objective (e.g. language modelling) uses the same rule with token counts in place of
sample counts (pass the local token count to :func:`global_batch_count`).

Metrics: sum loss × count, correct predictions and counts on each rank, then
:func:`all_reduce_sum` before dividing, so the logged value is the exact global mean (the
samplers never pad or replicate samples). Only the main rank (``info.is_main``) writes files.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run.

    ``backend`` is ``"gloo"`` / ``"nccl"`` when a process group is active, else ``None``.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool
    backend: Optional[str]

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def _resolve_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)  # raises a clear RuntimeError for nonsense strings
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r} requested but CUDA is not available")
        if dev.index is None:
            # one GPU per process on this node, picked by torchrun's LOCAL_RANK
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are "
                    f"visible; use --nproc_per_node <= the number of GPUs"
                )
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return dev


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the torchrun process group if launched by torchrun, else describe a single process.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` (this process's GPU is
            ``cuda:LOCAL_RANK``) or ``"cuda:i"``.
        timeout_s: collective timeout.

    Backend: ``nccl`` for CUDA devices, ``gloo`` for CPU. A process group that already exists
    (e.g. created by the caller) is reused as is.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        dev = _resolve_device(device, local_rank)
        return DistInfo(rank, world, local_rank, dev, rank == 0, dist.get_backend())

    world = _env_int("WORLD_SIZE") if "WORLD_SIZE" in os.environ else 1
    if world <= 1:
        local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
        return DistInfo(0, 1, local_rank, _resolve_device(device, local_rank), True, None)

    missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with torchrun "
            f"(torchrun --nproc_per_node=P -m sparsemix train ...)"
        )
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    dev = _resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        kwargs["device_id"] = dev  # binds the communicator to this GPU, avoids a guess by NCCL
    dist.init_process_group(
        backend, init_method="env://", rank=rank, world_size=world,
        timeout=timedelta(seconds=timeout_s), **kwargs,
    )
    return DistInfo(rank, world, local_rank, dev, rank == 0, backend)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process)."""
    if info.backend is not None and dist.is_initialized():
        # A gloo worker frees its last work (whose tensors may need the GIL) just after the work
        # completes; the group's destructor joins the workers while holding the GIL. Sleeping hands
        # the GIL over so they finish first (without it a rank could hang at exit).
        time.sleep(0.1)
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for a single process)."""
    if info.backend is None:
        return
    if info.backend == "nccl":
        dist.barrier(device_ids=[info.device.index])
    else:
        dist.barrier()


def wrap_model(model: nn.Module, info: DistInfo, **ddp_kwargs: Any) -> nn.Module:
    """Wrap ``model`` (already on ``info.device``) in DDP when ``world_size > 1``, else return it.

    DDP broadcasts rank 0's parameters at construction, so all ranks start equal whatever
    their seed. ``ddp_kwargs`` go to :class:`~torch.nn.parallel.DistributedDataParallel`.
    """
    if info.backend is None:
        return model
    if info.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [info.device.index])
        ddp_kwargs.setdefault("output_device", info.device.index)
    return DistributedDataParallel(model, **ddp_kwargs)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (and/or ``torch.compile``); use it for ``state_dict``."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def all_reduce_sum(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Sum each value over ranks (every rank must pass the same keys). Float64 on the wire."""
    keys = sorted(values)
    if info.backend is None:
        return {k: float(values[k]) for k in keys}
    # The key set must agree, else values would be summed under the wrong names.
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, keys)
    if any(g != keys for g in gathered):
        raise ValueError(f"all_reduce_sum: ranks passed different keys: {gathered}")
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def all_reduce_mean(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of each value over ranks (an unweighted mean: prefer sums and counts for metrics)."""
    return {k: v / info.world_size for k, v in all_reduce_sum(values, info).items()}


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects; no-op for a single process)."""
    if info.backend is None:
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=info.device if info.backend == "nccl" else None)
    return box[0]


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (e.g. per-rank predictions for an exact AUC)."""
    if info.backend is None:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def global_batch_count(local_count: int, info: DistInfo) -> int:
    """Samples (or tokens) in this step summed over all ranks: the ``G`` of the loss rule."""
    if info.backend is None:
        return int(local_count)
    t = torch.tensor([int(local_count)], dtype=torch.long, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def scale_loss(loss_sum: torch.Tensor, global_count: int, info: DistInfo) -> torch.Tensor:
    """``loss_sum * world_size / global_count``: the per-rank loss whose DDP-averaged gradient is
    the gradient of the global-batch mean loss (see the module docstring)."""
    if global_count < 1:
        raise ValueError(f"global_count must be >= 1, got {global_count}")
    return loss_sum * (info.world_size / global_count)


__all__ = [
    "DistInfo", "init_distributed", "cleanup", "barrier", "wrap_model", "unwrap_model",
    "all_reduce_sum", "all_reduce_mean", "broadcast_object", "all_gather_object",
    "global_batch_count", "scale_loss",
]
