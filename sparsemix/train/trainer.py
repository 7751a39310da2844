"""The training loop: seeded, resumable to the bit on CPU, interruptible, DDP-ready.

A run lives in one folder::

    config.json     the TrainConfig (written once; a resume must match it)
    metrics.jsonl   one JSON object per epoch (train and validation metrics)
    last.pt         the latest state (model, optimizer, scheduler, RNG, epoch/step, config)
    best.pt         the state with the best validation metric (never chosen on test)
    results.json    test metrics of best.pt, evaluated once at the end
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import models
from ..tasks import TASKS, TaskData, build_task, load_all
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RunError, TrainConfig
from .data import Batch, collate, dataset_lengths, eval_batches, train_sampler
from .distributed import (DistInfo, all_reduce_sum, barrier, cleanup, global_batch_count,
                          init_distributed, scale_loss, unwrap_model, wrap_model)
from .metrics import classification_metrics, is_better, primary_metric, regression_metrics
from .recipe import build_optimizer, build_scheduler


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGINT once a resumable ``last.pt`` has been written."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(f"interrupted; resumable checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy (if present) and torch; ``deterministic`` also forbids nondeterministic
    kernels (an op without a deterministic implementation then raises instead of varying)."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def build_model(cfg: TrainConfig, task: TaskData) -> nn.Module:
    """The model ``cfg.model`` sized for ``task`` (through the model registry)."""
    return models.build_model(
        cfg.model, num_classes=task.num_classes, max_len=task.max_len,
        vocab_size=task.vocab_size if task.input == "tokens" else None,
        input_dim=task.input_dim if task.input == "continuous" else None,
        variable_length=task.variable_length, channels=cfg.channels, num_layers=cfg.num_layers,
        hidden_channels=cfg.hidden_channels, pooling=cfg.pooling, dropout=cfg.dropout,
        positional=cfg.positional, protocol=cfg.protocol, backend=cfg.backend,
        weights_from=cfg.weights_from, num_heads=cfg.num_heads,
        cdil_layers=cfg.extra.get("cdil_layers"))


def _forward(model: nn.Module, b: Batch) -> Tensor:
    return model(b.x, b.batch) if b.batch is not None else model(b.x)


def _loss_sum(out: Tensor, y: Tensor, kind: str) -> Tensor:
    if kind == "regression":
        return F.mse_loss(out.squeeze(-1), y.to(out.dtype), reduction="sum")
    return F.cross_entropy(out, y, reduction="sum")


@torch.no_grad()
def run_eval(model: nn.Module, ds, task: TaskData, batch_size: int,
             device: torch.device) -> tuple[dict, dict]:
    """Metrics of ``model`` on ``ds`` and the raw outputs (in dataset order)."""
    model.eval()
    lengths = dataset_lengths(ds)
    n = len(ds)
    outs: list[Tensor] = []
    labels: list[Tensor] = []
    order: list[Tensor] = []
    for idx in eval_batches(lengths, batch_size):
        b = collate(ds, idx, task.variable_length).to(device)
        outs.append(_forward(model, b).float().cpu())
        labels.append(b.y.cpu())
        order.append(b.index)
    if not outs:
        raise ValueError("cannot evaluate an empty split")
    perm = torch.empty(n, dtype=torch.long)
    perm[torch.cat(order)] = torch.arange(n)
    out, y = torch.cat(outs)[perm], torch.cat(labels)[perm]
    if task.kind == "regression":
        preds = out.squeeze(-1)
        metrics = {"loss": float(F.mse_loss(preds.double(), y.double()))}
        metrics.update(regression_metrics(preds, y, task.meta.get("tolerance")))
        raw = {"preds": preds, "labels": y, "lengths": lengths}
    else:
        probs = out.double().softmax(-1).float()
        metrics = {"loss": float(F.cross_entropy(out.double(), y))}
        metrics.update(classification_metrics(probs, y, task.class_names))
        raw = {"probs": probs, "labels": y, "lengths": lengths}
    metrics["count"] = n
    return metrics, raw


def _device(cfg: TrainConfig, info: Optional[DistInfo] = None) -> torch.device:
    if info is not None:
        return info.device
    dev = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device
    return torch.device("cpu" if dev == "auto" else dev)


class _SigintFlag:
    """First Ctrl-C sets a flag (the loop saves and stops); a second one interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._old = None

    def __enter__(self) -> "_SigintFlag":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.set = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True,
                disable=not enabled)


def _log(msg: str, cfg: TrainConfig, info: DistInfo) -> None:
    if info.is_main and not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# run folder
# ---------------------------------------------------------------------------------------------
def _prepare_run(cfg: TrainConfig) -> Optional[dict]:
    """Check the folder before anything is written; return the checkpoint to resume from."""
    out = Path(cfg.out)
    if cfg.resume:
        saved = TrainConfig.load(out / "config.json")
        diff = saved.differences(cfg)
        if diff:
            raise RunError(f"--resume: {out}/config.json is a different run ({'; '.join(diff)})")
        ckpt = load_checkpoint(out / "last.pt")
        ckpt_cfg = TrainConfig.from_dict(ckpt["config"], source=str(out / "last.pt"))
        diff = ckpt_cfg.differences(saved)
        if diff:
            raise RunError(f"{out}/last.pt was written by a different config ({'; '.join(diff)})")
        return ckpt
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder")
    taken = [name for name in ("config.json", "last.pt", "best.pt", "results.json")
             if (out / name).exists()]
    if taken:
        raise RunError(f"--out {out} already holds a run ({', '.join(taken)}); pass --resume to "
                       f"continue it or choose another folder")
    return None


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """On resume, drop log lines from epochs after the checkpoint (a crash between log and save)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", 0) <= epochs_done]
    path.write_text("".join(line + "\n" for line in keep))


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    """Run (or, with ``cfg.resume``, continue) the run in ``cfg.out``; return the test results.

    Raises:
        ValueError: an invalid option (named). RunError: a run-folder or checkpoint problem.
        TrainingInterrupted: after Ctrl-C, once ``last.pt`` holds a resumable state.
    """
    cfg.validate()
    load_all()
    if cfg.task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(sorted(TASKS))}; got {cfg.task!r}")
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, info)
    finally:
        cleanup(info)


def _train(cfg: TrainConfig, info: DistInfo) -> dict:
    out = Path(cfg.out)
    ckpt = _prepare_run(cfg)
    barrier(info)  # every rank checked the folder before rank 0 writes into it
    seed_everything(cfg.seed, cfg.deterministic)
    task = build_task(cfg.task, cfg)
    device = info.device
    model = build_model(cfg, task).to(device)
    opt = build_optimizer(model, cfg)
    lengths = dataset_lengths(task.train)
    sampler = train_sampler(task, cfg.batch_size, cfg.seed, info, lengths)
    steps_per_epoch = len(sampler)
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    sched = build_scheduler(opt, cfg, steps_per_epoch * cfg.epochs)
    metric_name, mode = primary_metric(task.kind)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "best_epoch": None,
             "train_time_s": 0.0, "accum": {"loss_sum": 0.0, "count": 0.0, "correct": 0.0}}
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        for k in state:
            state[k] = ckpt[k]
        set_rng_state(ckpt["rng"])
        _log(f"resuming {out} at epoch {state['epoch']} step {state['step_in_epoch']}", cfg, info)
    elif info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        (out / "metrics.jsonl").write_text("")
    if info.is_main and ckpt is not None:
        _truncate_metrics(out / "metrics.jsonl", state["epoch"])
        saved = TrainConfig.load(out / "config.json")
        if saved.to_dict() != cfg.to_dict():  # e.g. more --epochs: record what the run now is
            cfg.save(out / "config.json")
    barrier(info)

    ddp = wrap_model(model, info)
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    show_bar = info.is_main and not cfg.quiet and sys.stderr.isatty()
    n_params = sum(p.numel() for p in model.parameters())
    _log(f"{cfg.model} on {cfg.task}: {n_params:,} parameters, {len(task.train)} train samples, "
         f"{steps_per_epoch} steps/epoch, device {device}, world size {info.world_size}", cfg, info)

    def checkpoint_state() -> dict:
        return {"model": unwrap_model(ddp).state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": rng_state(), "config": cfg.to_dict(),
                "metric": metric_name, "mode": mode, **state}

    stopped = None
    # throughput of this invocation (not persisted: a resumed run reports its own session)
    session = {"samples": 0.0, "tokens": 0.0, "time_s": 0.0}
    with _SigintFlag() as sigint:
        while state["epoch"] < cfg.epochs and stopped is None:
            epoch = state["epoch"]
            sampler.set_epoch(epoch)
            steps = list(sampler)[:steps_per_epoch]
            bar = _progress(steps_per_epoch, state["step_in_epoch"], f"epoch {epoch + 1}/{cfg.epochs}",
                            show_bar)
            ddp.train()
            for i in range(state["step_in_epoch"], steps_per_epoch):
                t0 = time.perf_counter()
                b = collate(task.train, steps[i], task.variable_length).to(device)
                opt.zero_grad(set_to_none=True)
                out_ = _forward(ddp, b)
                loss_sum = _loss_sum(out_, b.y, task.kind)
                g = global_batch_count(len(b), info)
                scale_loss(loss_sum, g, info).backward()
                if cfg.clip_grad:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                opt.step()
                sched.step()
                acc = state["accum"]
                acc["loss_sum"] += float(loss_sum.detach())
                acc["count"] += len(b)
                if task.kind == "classification":
                    acc["correct"] += float((out_.detach().argmax(-1) == b.y).sum())
                elif "tolerance" in task.meta:
                    acc["correct"] += float(((out_.detach().squeeze(-1) - b.y).abs()
                                             < task.meta["tolerance"]).sum())
                state["step_in_epoch"] = i + 1
                state["global_step"] += 1
                step_s = time.perf_counter() - t0
                state["train_time_s"] += step_s
                session["samples"] += g
                session["tokens"] += float(b.lengths.sum())  # this rank's; summed over ranks below
                session["time_s"] += step_s
                bar.update(1)
                bar.set_postfix(loss=f"{acc['loss_sum'] / max(acc['count'], 1):.4g}", refresh=False)
                # every rank must agree on stopping, else a collective would hang
                flags = all_reduce_sum({"sigint": float(sigint.set), "budget": float(
                    cfg.time_budget_s is not None and state["train_time_s"] >= cfg.time_budget_s)},
                    info)
                if flags["sigint"]:
                    bar.close()
                    if info.is_main:
                        save_checkpoint(checkpoint_state(), out / "last.pt")
                    barrier(info)
                    raise TrainingInterrupted(str(out / "last.pt"))
                if flags["budget"]:
                    stopped = "time_budget"
                    break
            bar.close()
            partial = state["step_in_epoch"] < steps_per_epoch  # stopped by the time budget
            if not partial:
                state["epoch"] += 1
                state["step_in_epoch"] = 0
            tr = all_reduce_sum(state["accum"], info)
            record = {"epoch": epoch + 1, "partial": partial, "step": state["global_step"],
                      "lr": opt.param_groups[0]["lr"],
                      "train_loss": tr["loss_sum"] / max(tr["count"], 1),
                      "train_time_s": round(state["train_time_s"], 3)}
            if task.kind == "classification" or "tolerance" in task.meta:
                record["train_accuracy"] = tr["correct"] / max(tr["count"], 1)
            if not partial:  # a partial epoch keeps its sums in last.pt for a resume
                state["accum"] = {"loss_sum": 0.0, "count": 0.0, "correct": 0.0}
            val, _ = run_eval(model, task.val, task, eval_bs, device)
            record.update({f"val_{k}": v for k, v in val.items() if k != "per_class"})
            improved = is_better(val[metric_name], state["best"], mode)
            if improved:
                state["best"], state["best_epoch"] = val[metric_name], record["epoch"]
            record["best"] = improved
            if info.is_main:
                ck = checkpoint_state()
                if improved:
                    save_checkpoint(ck, out / "best.pt")
                save_checkpoint(ck, out / "last.pt")
                _append_jsonl(out / "metrics.jsonl", record)
            barrier(info)
            _log(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4g}  val_{metric_name} "
                 f"{val[metric_name]:.4g}{'  (best)' if improved else ''}", cfg, info)
            if sigint.set:
                raise TrainingInterrupted(str(out / "last.pt"))

    # test once, with the model chosen on validation
    best = load_checkpoint(out / "best.pt")
    model.load_state_dict(best["model"])
    test, _ = run_eval(model, task.test, task, eval_bs, device)
    val, _ = run_eval(model, task.val, task, eval_bs, device)
    results = {"task": cfg.task, "model": cfg.model, "protocol": cfg.protocol,
               "pooling": cfg.pooling, "length": task.max_len, "best_epoch": best["best_epoch"],
               "selected_on": f"val_{metric_name}", "epochs_done": state["epoch"],
               "steps": state["global_step"], "train_time_s": round(state["train_time_s"], 3),
               "stopped": stopped, "parameters": n_params,
               "throughput": _throughput(session, info), "val": val, "test": test}
    if info.is_main:
        from .checkpoint import atomic_write_text

        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    _log(f"test {metric_name}: {test[metric_name]:.4g} (best epoch {best['best_epoch']})", cfg, info)
    tp = results["throughput"]
    _log(f"training throughput: {tp['samples_per_s']:.1f} sequences/s, {tp['tokens_per_s']:.0f} "
         f"tokens/s ({tp['samples']:.0f} sequences in {tp['time_s']:.1f} s this session)", cfg, info)
    return results


def _throughput(session: dict, info) -> dict:
    """Sequences/s and tokens/s of this session's training steps (tokens summed over ranks)."""
    tokens = all_reduce_sum({"tokens": session["tokens"]}, info)["tokens"]
    seconds = max(session["time_s"], 1e-9)
    return {"samples": session["samples"], "tokens": tokens, "time_s": round(session["time_s"], 6),
            "samples_per_s": session["samples"] / seconds, "tokens_per_s": tokens / seconds}


def load_model(out: str, which: str = "best", device: "str | torch.device" = "cpu"
               ) -> tuple[nn.Module, TrainConfig, TaskData]:
    """The trained model of run ``out`` (``which`` = ``"best"`` or ``"last"``), in eval mode,
    with its config and its task data (rebuilt from the config)."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    folder = Path(out)
    cfg = TrainConfig.load(folder / "config.json")
    ckpt = load_checkpoint(folder / f"{which}.pt")
    diff = TrainConfig.from_dict(ckpt["config"], source=str(folder / f"{which}.pt")).differences(cfg)
    if diff:
        raise RunError(f"{folder}/{which}.pt was written by a different config ({'; '.join(diff)})")
    task = build_task(cfg.task, cfg)
    model = build_model(cfg, task)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg, task


def _split(task: TaskData, split: str):
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split must be train, val or test; got {split!r}")
    return getattr(task, split)


def evaluate(out: str, split: str = "test", which: str = "best",
             device: "str | torch.device" = "cpu") -> dict:
    """Metrics of run ``out``'s ``which`` model on ``split``."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split must be train, val or test; got {split!r}")
    model, cfg, task = load_model(out, which, device)
    metrics, _ = run_eval(model, _split(task, split), task, cfg.eval_batch_size or cfg.batch_size,
                          torch.device(device))
    return {"out": str(out), "split": split, "which": which, "task": cfg.task, **metrics}


def predict(out: str, split: str = "test", which: str = "best",
            device: "str | torch.device" = "cpu") -> dict:
    """Outputs of run ``out``'s model on ``split`` in dataset order: ``probs`` [n, C]
    (classification) or ``preds`` [n] (regression), ``labels`` [n], ``lengths`` [n]."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split must be train, val or test; got {split!r}")
    model, cfg, task = load_model(out, which, device)
    _, raw = run_eval(model, _split(task, split), task, cfg.eval_batch_size or cfg.batch_size,
                      torch.device(device))
    return raw
