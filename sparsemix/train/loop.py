"""The training loop: seeded, resumable to the bit on CPU, interruptible, DDP-ready.

Read top to bottom: :func:`train` checks the options and joins the process group; :func:`_setup`
builds the task, model, optimiser and sampler (and restores a checkpoint); :func:`_run_epochs`
runs :func:`_train_epoch` (one :func:`_train_step` per batch) and :func:`_end_epoch` (validation,
checkpoint, log line); :func:`_test_best` evaluates ``best.pt`` on the test split once.
"""
from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import RunError
from ..tasks import TASK_OPTIONS, TASKS, TaskData, TaskOptions, build_task, load_all
from .checkpoint import load_checkpoint, rng_state, set_rng_state
from .config import MODEL_EXTRAS, TrainConfig
from .data import collate, dataset_lengths, start_epoch, train_sampler
from .distributed import (DistInfo, all_reduce_sum, barrier, broadcast_object, cleanup,
                          global_batch_count, init_distributed, scale_loss, unwrap_model,
                          wrap_model)
from .inference import build_model, forward, loss_sum, run_eval
from .interrupt import StopFlag, TrainingInterrupted
from .metrics import is_better, primary_metric, throughput
from .allocator import keep_freed_memory
from .precision import autocast, resolve_precision
from .recipe import build_optimizer, build_scheduler
from .run_folder import RunFolder
from .seeding import seed_everything
from .task_spec import task_spec


def _zero_sums() -> dict[str, float]:
    return {"loss_sum": 0.0, "count": 0.0, "correct": 0.0}


@dataclass
class _Run:
    """Everything one training invocation works with."""

    cfg: TrainConfig
    info: DistInfo
    folder: RunFolder
    task: TaskData
    model: nn.Module  # the bare model (checkpoints, evaluation)
    ddp: nn.Module  # the model the steps run (DDP-wrapped under torchrun)
    opt: torch.optim.Optimizer
    sched: Any
    sampler: Any
    steps_per_epoch: int
    metric: str
    mode: str
    # persisted in every checkpoint; "accum" holds the GLOBAL (all-rank) sums of a partial epoch
    state: dict = field(default_factory=lambda: {
        "epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "best_epoch": None,
        "train_time_s": 0.0, "accum": _zero_sums(), "history": []})
    # this rank's sums since the last checkpoint, and this invocation's throughput (not persisted)
    local: dict = field(default_factory=_zero_sums)
    session: dict = field(default_factory=lambda: {"samples": 0.0, "tokens": 0.0, "time_s": 0.0})
    stopped: Optional[str] = None

    @property
    def eval_batch_size(self) -> int:
        return self.cfg.eval_batch_size or self.cfg.batch_size

    def log(self, msg: str) -> None:
        if self.info.is_main and not self.cfg.quiet:
            print(msg, file=sys.stderr, flush=True)


def train(cfg: TrainConfig) -> dict:
    """Run (or, with ``cfg.resume``, continue) the run in ``cfg.out``; return the test results.

    Raises:
        ValueError: an invalid option (named). RunError: a run-folder or checkpoint problem.
        TrainingInterrupted: after Ctrl-C, once ``last.pt`` holds a resumable state.
    """
    cfg.validate()
    _check_task_options(cfg)
    keep_freed_memory()  # every step reuses the last one's memory instead of faulting it in again
    cfg.resolve_task_defaults()  # saved resolved: the run folder says what it built
    cfg.fasta = [_resolved(entry) for entry in cfg.fasta]  # stored absolute: evaluate from anywhere
    info = init_distributed(cfg.device)
    cfg.precision = resolve_precision(cfg.precision, info.device)  # saved resolved, as above
    folder = RunFolder(cfg.out)
    try:
        _lock(folder, info)
        ckpt = folder.prepare(cfg)
        barrier(info)  # every rank checked the folder before rank 0 writes into it
        return _train_and_test(cfg, info, folder, ckpt)
    finally:
        if info.is_main:
            folder.release()
        # The DDP model (and its reducer, which holds the process group) is gone by now: had it
        # outlived destroy_process_group, the group's destructor would join gloo's worker threads
        # while holding the GIL that a worker may need, and hang the rank at exit.
        gc.collect()
        cleanup(info)


def _train_and_test(cfg: TrainConfig, info: DistInfo, folder: RunFolder,
                    ckpt: Optional[dict]) -> dict:
    """Everything that holds the (DDP) model, in a frame of its own that ends before cleanup."""
    run = _setup(cfg, info, folder, ckpt)
    with StopFlag() as stop:
        _run_epochs(run, stop)
    return _test_best(run)


def _check_task_options(cfg: TrainConfig) -> None:
    """The task exists, reads the ``--extra`` keys given, and takes ``--fasta`` if given."""
    load_all()
    if cfg.task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(sorted(TASKS))}; got {cfg.task!r}")
    options = TASK_OPTIONS.get(cfg.task, TaskOptions())
    if options.extras is not None:
        unknown = sorted(set(cfg.extra) - options.extras - MODEL_EXTRAS)
        if unknown:
            known = sorted(options.extras | MODEL_EXTRAS)
            raise ValueError(f"--extra: unknown key(s) {unknown} for --task {cfg.task} "
                             f"(known: {', '.join(known)})")
    if cfg.fasta and not options.fasta:
        raise ValueError(f"--fasta is for --task fasta; --task {cfg.task} does not read FASTA files")


def _resolved(entry: str) -> str:
    """``LABEL=PATH`` with PATH absolute (symlinks resolved); other entries unchanged (the task
    reports what is wrong with them)."""
    label, sep, path = entry.partition("=")
    if not sep or not path.strip() or not os.path.exists(path.strip()):
        return entry
    return f"{label.strip()}={os.path.realpath(path.strip())}"


def _lock(folder: RunFolder, info: DistInfo) -> None:
    """The main rank takes the folder's lock; every rank raises the same refusal."""
    error = None
    if info.is_main:
        try:
            folder.acquire()
        except RunError as err:
            error = str(err)
    error = broadcast_object(error, info)
    if error is not None:
        raise RunError(error)


def _setup(cfg: TrainConfig, info: DistInfo, folder: RunFolder, ckpt: Optional[dict]) -> _Run:
    seed_everything(cfg.seed, cfg.deterministic)
    task = build_task(cfg.task, cfg)
    model = build_model(cfg, task).to(info.device)
    opt = build_optimizer(model, cfg)
    sampler = train_sampler(task, cfg.batch_size, cfg.seed, info, dataset_lengths(task.train))
    steps_per_epoch = min(len(sampler), cfg.max_steps_per_epoch or len(sampler))
    sched = build_scheduler(opt, cfg, steps_per_epoch * cfg.epochs)
    metric, mode = primary_metric(task.kind)
    run = _Run(cfg, info, folder, task, model, model, opt, sched, sampler, steps_per_epoch,
               metric, mode)
    if ckpt is not None:
        _restore(run, ckpt)
    elif info.is_main:
        folder.start_fresh(cfg)
    barrier(info)
    run.ddp = wrap_model(model, info)
    n_params = sum(p.numel() for p in model.parameters())
    run.log(f"{cfg.model} on {cfg.task}: {n_params:,} parameters, {len(task.train)} train samples, "
            f"{steps_per_epoch} steps/epoch, device {info.device}, world size {info.world_size}")
    return run


def _restore(run: _Run, ckpt: dict) -> None:
    run.model.load_state_dict(ckpt["model"])
    run.opt.load_state_dict(ckpt["optimizer"])
    run.sched.load_state_dict(ckpt["scheduler"])
    for key in run.state:
        run.state[key] = ckpt.get(key, run.state[key])  # "history": absent in older runs
    set_rng_state(ckpt["rng"])
    if run.info.is_main:
        note = run.folder.start_resumed(run.cfg, ckpt)
        if note:
            run.log(note)
    run.log(f"resuming {run.folder.path} at epoch {run.state['epoch']} "
            f"step {run.state['step_in_epoch']}")


def _checkpoint(run: _Run) -> dict:
    """The resumable state; call on every rank (it all-reduces the partial-epoch sums)."""
    sums = all_reduce_sum(run.local, run.info)
    accum = {k: run.state["accum"][k] + sums[k] for k in sums}
    return {"model": unwrap_model(run.ddp).state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "rng": rng_state(), "config": run.cfg.to_dict(),
            "metric": run.metric, "mode": run.mode, **run.state, "accum": accum,
            "task_spec": task_spec(run.task)}  # what predict needs without the task's data


def _run_epochs(run: _Run, stop: StopFlag) -> None:
    while run.state["epoch"] < run.cfg.epochs and run.stopped is None:
        epoch = run.state["epoch"]
        _train_epoch(run, stop)
        _end_epoch(run, epoch)
        if stop.set:  # a Ctrl-C during validation: last.pt was just written
            raise TrainingInterrupted(str(run.folder.last))


def _train_epoch(run: _Run, stop: StopFlag) -> None:
    state = run.state
    # a training set re-drawn every epoch draws this epoch's fragments (every rank, resume too)
    start_epoch(run.task.train, run.sampler, state["epoch"])
    steps = list(run.sampler)[:run.steps_per_epoch]
    show_bar = run.info.is_main and not run.cfg.quiet and sys.stderr.isatty()
    bar = tqdm(total=run.steps_per_epoch, initial=state["step_in_epoch"], leave=False,
               desc=f"epoch {state['epoch'] + 1}/{run.cfg.epochs}", dynamic_ncols=True,
               disable=not show_bar)
    run.ddp.train()
    try:
        for i in range(state["step_in_epoch"], run.steps_per_epoch):
            _train_step(run, steps[i])
            bar.update(1)
            # every rank must agree on stopping, else a collective would hang
            flags = all_reduce_sum({"stop": float(stop.set), "budget": float(_over_budget(run))},
                                   run.info)
            if flags["stop"]:
                _save_interrupted(run)
            if flags["budget"]:
                run.stopped = "time_budget"
                return
    finally:
        bar.close()


def _over_budget(run: _Run) -> bool:
    budget = run.cfg.time_budget_s
    return budget is not None and run.state["train_time_s"] >= budget


def _train_step(run: _Run, indices: list[int]) -> None:
    t0 = time.perf_counter()
    b = collate(run.task.train, indices, run.task.variable_length).to(run.info.device)
    run.opt.zero_grad(set_to_none=True)
    with autocast(run.cfg.precision, run.info.device):  # --precision bf16: the forward only
        out = forward(run.ddp, b)
    loss = loss_sum(out.float(), b.y, run.task.kind)
    g = global_batch_count(len(b), run.info)
    scale_loss(loss, g, run.info).backward()
    if run.cfg.clip_grad:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip_grad)
    run.opt.step()
    run.sched.step()
    _count(run, out.detach(), b.y, float(loss.detach()), len(b))
    step_s = time.perf_counter() - t0
    run.state["step_in_epoch"] += 1
    run.state["global_step"] += 1
    run.state["train_time_s"] += step_s
    run.session["samples"] += g
    run.session["tokens"] += float(b.lengths.sum())  # this rank's; summed over ranks at the end
    run.session["time_s"] += step_s


def _count(run: _Run, out: torch.Tensor, y: torch.Tensor, loss: float, n: int) -> None:
    """Add one batch to this rank's loss/accuracy sums."""
    local = run.local
    local["loss_sum"] += loss
    local["count"] += n
    if run.task.kind == "classification":
        local["correct"] += float((out.argmax(-1) == y).sum())
    elif "tolerance" in run.task.meta:
        local["correct"] += float(((out.squeeze(-1) - y).abs() < run.task.meta["tolerance"]).sum())


def _save_interrupted(run: _Run) -> None:
    ck = _checkpoint(run)
    if run.info.is_main:
        run.folder.save_last(ck)
    barrier(run.info)
    raise TrainingInterrupted(str(run.folder.last))


def _end_epoch(run: _Run, epoch: int) -> None:
    """Validate, update best, write last.pt (best.pt) and the metrics line."""
    state = run.state
    partial = state["step_in_epoch"] < run.steps_per_epoch  # stopped by the time budget
    sums = {k: state["accum"][k] + v for k, v in all_reduce_sum(run.local, run.info).items()}
    run.local = _zero_sums()
    # a partial epoch keeps its global sums in last.pt for the resume to continue them
    state["accum"] = sums if partial else _zero_sums()
    if not partial:
        state["epoch"] += 1
        state["step_in_epoch"] = 0
    record = _train_record(run, epoch, partial, sums)
    val, _ = run_eval(run.model, run.task.val, run.task, run.eval_batch_size, run.info.device)
    record.update({f"val_{k}": v for k, v in val.items() if k != "per_class"})
    improved = is_better(val[run.metric], state["best"], run.mode)
    if improved:
        state["best"], state["best_epoch"] = val[run.metric], record["epoch"]
    record["best"] = improved
    state["history"].append(record)
    ck = _checkpoint(run)
    if run.info.is_main:
        run.folder.save_epoch(ck, record, improved)
    barrier(run.info)
    run.log(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4g}  val_{run.metric} "
            f"{val[run.metric]:.4g}{'  (best)' if improved else ''}")


def _train_record(run: _Run, epoch: int, partial: bool, sums: dict) -> dict:
    count = max(sums["count"], 1)
    record = {"epoch": epoch + 1, "partial": partial, "step": run.state["global_step"],
              "lr": run.opt.param_groups[0]["lr"], "train_loss": sums["loss_sum"] / count,
              "train_time_s": round(run.state["train_time_s"], 3)}
    if run.task.kind == "classification" or "tolerance" in run.task.meta:
        record["train_accuracy"] = sums["correct"] / count
    return record


def _test_best(run: _Run) -> dict:
    """Test once, with the model chosen on validation; write results.json."""
    best = load_checkpoint(run.folder.best)
    run.model.load_state_dict(best["model"])
    args = (run.task, run.eval_batch_size, run.info.device)
    test, _ = run_eval(run.model, run.task.test, *args)
    val, _ = run_eval(run.model, run.task.val, *args)
    tokens = all_reduce_sum({"tokens": run.session["tokens"]}, run.info)["tokens"]
    cfg, state = run.cfg, run.state
    results = {"task": cfg.task, "model": cfg.model, "protocol": cfg.protocol,
               "pooling": cfg.pooling, "length": run.task.max_len,
               "best_epoch": best["best_epoch"], "selected_on": f"val_{run.metric}",
               "epochs_done": state["epoch"], "steps": state["global_step"],
               "train_time_s": round(state["train_time_s"], 3), "stopped": run.stopped,
               "parameters": sum(p.numel() for p in run.model.parameters()),
               "throughput": throughput(run.session["samples"], tokens, run.session["time_s"]),
               "val": val, "test": test}
    if run.info.is_main:
        run.folder.save_results(results)
    run.log(f"test {run.metric}: {test[run.metric]:.4g} (best epoch {best['best_epoch']})")
    tp = results["throughput"]
    run.log(f"training throughput: {tp['samples_per_s']:.1f} sequences/s, {tp['tokens_per_s']:.0f} "
            f"tokens/s ({tp['samples']:.0f} sequences in {tp['time_s']:.1f} s this session)")
    return results
