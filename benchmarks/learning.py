"""Learning speed on the synthetic tasks: how many optimiser steps (and CPU seconds) each model needs.

By default trains ``sparsemix train``'s default Paramixer (``paramixer``: the task's own mixing,
averaged on Adding, summed on Order) and the dense Transformer on Temporal Order and Adding at
N = 2^9 ... 2^11; ``--models`` adds the paper's block (``paramixer-paper``), the encoder with a
fixed mixing (``paramixer-encoder``: summed, ``paramixer-average``: averaged) and CDIL-CNN. Every
model sees the same training batches in the same order (batch ``s`` is generated from seed
``seed + s``, fresh data every step) and is evaluated every ``--eval-every`` steps on the same fixed
validation set. A run stops when it is solved (validation accuracy >= 99 % on Order, error <= 1 %
on Adding, i.e. 99 % of predictions within 0.04) or when its step budget (or an optional CPU-time
cap) is spent.

Reports, per task and N: steps and CPU seconds to solve, and the validation error at fixed step
budgets. Writes ``<out>/learning.json``, ``learning.md``, ``learning-curves.png`` (error vs steps,
one panel per N) and ``learning-steps.png`` (steps to solve vs N). The machine's load average and
the process's CPU time are recorded beside the wall time. ``--generalise`` instead trains on
variable-length batches no longer than 2^9 and tests at 2^9, 2^12 and 2^14
(``generalise.json``, ``.md``, ``.png``).

Every model: width C = 32, mean pooling (``--pooling cls`` for a CLS vector, ``flatten`` for the
paper's head), AdamW with a linear warm-up and cosine decay to 0 over the step budget, gradient
clipping 1.0, about ``--tokens`` tokens a step (batch min(32, 16384 / N)); the task's options from
``sparsemix train`` (learned positions on Order, none on Adding). Runs go two at a time, one
process and one thread each (``--jobs 2``); steps and errors do not depend on the machine's load,
and a CPU-time cap (``--budget-s``) counts each run's own process.

Examples::

    python benchmarks/learning.py                      # the default run (about 90 min on 2 cores)
    python benchmarks/learning.py --quick              # a few minutes: N = 2^7, 2^8, short budgets
    python benchmarks/learning.py --generalise         # trained short (<= 2^9), tested long
    python benchmarks/learning.py --device cuda --lengths 9 10 11 12 13 --max-steps 3000
    python benchmarks/learning.py --render-only        # redraw .md/.png from learning.json
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparsemix.models import build_model  # noqa: E402
from sparsemix.tasks.synthetic import (ADDING_TOLERANCE, adding, adding_varlen,  # noqa: E402
                                       temporal_order, temporal_order_varlen)
from sparsemix.train.config import TASK_DEFAULTABLE, TrainConfig  # noqa: E402
from sparsemix.train.recipe import lr_factor  # noqa: E402

TASKS = ("order", "adding")
# name -> (registry model, options). Widths are shared: channels come from --channels.
MODELS: dict[str, tuple[str, dict]] = {
    # ``sparsemix train``'s default model for the task: mix_mode, num_heads, wrap_gate, positions,
    # score scale and the mixing gain come from the task (the averaged mixing with ln n scores on
    # both; Order without positions, its direction from the wrap gate)
    "paramixer": ("paramixer", {"block": "encoder", "num_layers": 2, "position_init": "sinusoid",
                                "mix_init": "sum"}),
    "paramixer-paper": ("paramixer", {"block": "paper", "num_layers": 1}),
    "paramixer-encoder": ("paramixer", {"block": "encoder", "num_layers": 2, "mix_mode": "sum",
                                        "position_init": "sinusoid", "mix_init": "sum"}),
    "paramixer-average": ("paramixer", {"block": "encoder", "num_layers": 2, "mix_mode": "average",
                                        "num_heads": 4, "position_init": "sinusoid",
                                        "mix_init": "sum"}),
    "transformer": ("transformer", {"num_layers": 2, "num_heads": 1, "position_init": "sinusoid"}),
    "cdil-cnn": ("cdil-cnn", {"positional": False}),  # convolutions see relative order themselves
}
# name -> task -> options on top of MODELS' and the task's: the averaged mixing gets its direction
# on Order from the wrap gate (section 5 of docs/learning.md).
TASK_MODEL_OPTIONS: dict[str, dict[str, dict]] = {
    "paramixer-average": {"order": {"wrap_gate": True}},
}


def task_options(task: str, model: str = "paramixer", block: str = "encoder") -> dict:
    """The model options ``sparsemix train`` uses for ``task`` when left at auto (learned positions
    for Order; none for Adding, a sum over a set, as in the paper's Adding setup, and a smaller
    initial mixing gain and the averaged mixing): given to every model, under its own options in
    :data:`MODELS`."""
    cfg = TrainConfig(task=task, model=model, block=block).resolve_task_defaults()  # the one place
    return {name: getattr(cfg, name) for name in TASK_DEFAULTABLE}


#: Trained short, tested long (``--generalise``): the models and the options on top of
#: :data:`MODELS`' for each task. Nothing in these models is tied to N but the number of factors,
#: which the test length sets: the Paramixer reads no positions (Order gets its direction from the
#: wrap gate, closed at the start: the product is then a suffix sum, "what comes after me") and
#: scales its scores by ln n (a score gap D then weighs n^D, so the share of the n unwanted
#: elements shrinks as n grows); the Transformer needs positions for Order (learned,
#: sinusoid-initialised up to the longest test).
GENERALISE: dict[str, dict[str, dict]] = {
    "paramixer-average": {"order": {"positional": False, "wrap_gate": True,
                                    "score_scale": "log-length"},
                          "adding": {"positional": False, "score_scale": "log-length"}},
    "transformer": {"order": {"positional": True}, "adding": {"positional": False}},
}

SOLVED_ERROR_PCT = 1.0  # Order: accuracy >= 99 %; Adding: <= 1 % of |y_hat - y| >= 0.04
CHANCE_PCT = {"order": 75.0, "adding": None}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[9, 10, 11],
                   help="log2 of the sequence lengths (default: 9 10 11)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--models", nargs="+", default=["paramixer", "transformer"], choices=list(MODELS),
                   help="default: paramixer (sparsemix train's default model for the task) and "
                        "transformer")
    p.add_argument("--pooling", default="mean", choices=["mean", "cls", "flatten"],
                   help="mean (default), cls (a learned vector prepended to every sequence; its "
                        "output is pooled) or flatten (fixed length only: the paper's head)")
    p.add_argument("--max-steps", type=int, default=1200,
                   help="step budget per run; the cosine schedule decays over it (default: 1200)")
    p.add_argument("--budget-s", type=float, default=0.0,
                   help="cap per run on the process's CPU time (not wall time: robust to a "
                        "loaded machine) at N = 2^7 in seconds, growing by sqrt(2) per doubling "
                        "of N (2^12: 5.7x); evaluation counts; 0 = no cap, the step budget alone "
                        "(default: 0)")
    p.add_argument("--eval-every", type=int, default=50, help="steps between evaluations (default: 50)")
    p.add_argument("--val-size", type=int, default=256, help="fixed validation set (default: 256)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="sequences a step at most (default: 32); see --tokens")
    p.add_argument("--tokens", type=int, default=2 ** 14,
                   help="tokens a step: batch = min(--batch-size, tokens / N), so a step costs about "
                        "the same at every N (default: 16384: batch 32 at 2^9, 16 at 2^10, 8 at "
                        "2^11); 0 = --batch-size at every N")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate (default: 3e-3)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--budgets", type=int, nargs="+", default=[300, 600, 1200],
                   help="step budgets at which the error is tabulated (default: 300 600 1200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads; 1 (default) wastes least on a shared machine "
                        "and makes the CPU-time caps comparable; 0 = torch's default")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs at a time, one process each; the caps are on each run's own CPU "
                        "time, so the results do not depend on it (default: 2, or 1 on 1 core)")
    p.add_argument("--generalise", action="store_true",
                   help="instead of the step-budget runs: train on variable-length batches of "
                        "length <= 2^--train-max only and test at --test-lengths (fixed length)")
    p.add_argument("--train-max", type=int, default=9,
                   help="--generalise: log2 of the longest training sequence (default: 9)")
    p.add_argument("--test-lengths", type=int, nargs="+", default=[9, 12, 14],
                   help="--generalise: log2 of the test lengths (default: 9 12 14)")
    p.add_argument("--test-size", type=int, default=64,
                   help="--generalise: test sequences per length (default: 64)")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: N = 2^7, 2^8, at most 150 steps, CPU cap 10 s at 2^7")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning"))
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite the .md and .png files from an existing learning.json")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.max_steps, args.budget_s = [7, 8], 150, 10.0
        args.budgets, args.eval_every = [50, 100, 150], 25
    if args.generalise:
        # its Paramixer is the averaged encoder with the options of GENERALISE
        models = ["paramixer-average" if m == "paramixer" else m for m in args.models]
        args.models = [m for m in dict.fromkeys(models) if m in GENERALISE] or list(GENERALISE)
        args.lengths = [args.train_max]
    if any(k < 2 for k in args.lengths + args.test_lengths + [args.train_max]):
        p.error("--lengths are exponents >= 2")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    if args.generalise and args.pooling == "flatten":
        p.error("--pooling flatten needs one fixed length; --generalise trains on variable lengths")
    return args


def varlen_batch(task: str, size: int, max_len: int, seed: int):
    """A training batch of ``sparsemix train --task {task}-varlen --length max_len``'s lengths
    (LogNormal around max_len / 8, in [32, max_len]): concatenated inputs, batch vector, targets."""
    gen = temporal_order_varlen if task == "order" else adding_varlen
    seqs, y = gen(size, max(1, max_len // 8), min(32, max_len), max_len, seed=seed)
    lengths = torch.tensor([len(q) for q in seqs])
    return torch.cat(seqs), torch.repeat_interleave(torch.arange(size), lengths), y


def run_generalise(args, task: str, name: str) -> dict:
    """Train ``name`` on variable-length batches no longer than 2^train_max for ``max_steps``
    steps (no early stop: every model the same steps), then test at each of ``test_lengths``."""
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    longest, train_max = 2 ** max(args.test_lengths), 2 ** args.train_max
    model = build(name, task, longest, args.channels, args.pooling, GENERALISE[name][task]).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, args.max_steps, min(args.warmup_steps, args.max_steps // 2)))
    t0, c0 = time.perf_counter(), cpu_s()
    for step in range(args.max_steps):
        x, batch, y = varlen_batch(task, args.batch_size, train_max, seed=args.seed + step)
        loss = loss_fn(task, model(x.to(dev), batch.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    train_s, train_cpu_s = time.perf_counter() - t0, cpu_s() - c0
    errors = {}
    for k in args.test_lengths:
        x, y = make_data(task)(args.test_size, 2 ** k, seed=args.seed + 10_000_019)
        errors[str(k)] = error_pct(task, model, x.to(dev), y.to(dev), max(1, 2 ** 13 // 2 ** k))
    return {"kind": "generalise", "task": task, "model": name, "steps": args.max_steps,
            "train_max": train_max, "errors": errors, "options": GENERALISE[name][task],
            "pooling": args.pooling,
            "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu_s, 1),
            "wall_s": round(time.perf_counter() - t0, 1), "load_avg_1m": round(os.getloadavg()[0], 2),
            "parameters": sum(p.numel() for p in model.parameters())}


def batch_for(args, n: int) -> int:
    """Sequences a step at length ``n``: ``--tokens`` / n, at most ``--batch-size``."""
    return max(1, min(args.batch_size, args.tokens // n)) if args.tokens else args.batch_size


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":  # kernels run asynchronously: time them, not their launches
        torch.cuda.synchronize(dev)


def run_budget_s(args, k: int) -> float:
    return args.budget_s * 2 ** ((k - 7) / 2) if args.budget_s else math.inf


def make_data(task: str) -> Callable[[int, int, int], tuple[torch.Tensor, torch.Tensor]]:
    return temporal_order if task == "order" else adding


def build(name: str, task: str, n: int, channels: int, pooling: str,
          extra: dict | None = None) -> torch.nn.Module:
    model, opts = MODELS[name]
    opts = {**opts, **TASK_MODEL_OPTIONS.get(name, {}).get(task, {}), **(extra or {})}
    io = ({"vocab_size": 6, "num_classes": 4} if task == "order"
          else {"input_dim": 2, "num_classes": 1})
    auto = task_options(task, model, opts.get("block", "encoder"))
    return build_model(model, max_len=n, channels=channels, pooling=pooling,
                       **{"num_layers": 1, **auto, **opts}, **io)


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "order":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.squeeze(-1), y)


@torch.no_grad()
def error_pct(task: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              batch_size: int) -> float:
    model.eval()
    outs = [model(x[i:i + batch_size]) for i in range(0, x.size(0), batch_size)]
    out = torch.cat(outs)
    model.train()
    if task == "order":
        wrong = out.argmax(-1) != y
    else:
        wrong = (out.squeeze(-1) - y).abs() >= ADDING_TOLERANCE
    return 100.0 * wrong.float().mean().item()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(args, task: str, k: int, name: str) -> dict:
    n = 2 ** k
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build(name, task, n, args.channels, args.pooling).to(dev)
    gen = make_data(task)
    xv, yv = gen(args.val_size, n, seed=args.seed + 10_000_019)  # fixed, disjoint from training
    xv, yv = xv.to(dev), yv.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, args.max_steps, min(args.warmup_steps, args.max_steps // 2)))
    cap, batch = run_budget_s(args, k), batch_for(args, n)
    curve = [(0, error_pct(task, model, xv, yv, batch), 0.0)]  # (step, error %, seconds)
    t0, c0, train_s = time.perf_counter(), cpu_s(), 0.0
    solved_step = solved_s = solved_cpu_s = None
    step, stopped = 0, "steps"
    while step < args.max_steps:
        x, y = gen(batch, n, seed=args.seed + step)  # the same batches for every model
        ts = time.perf_counter()
        loss = loss_fn(task, model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        _sync(dev)
        train_s += time.perf_counter() - ts
        step += 1
        if not math.isfinite(loss.item()):
            stopped = "non-finite loss"
            break
        over_cap = cpu_s() - c0 > cap  # checked every step; the run ends with an evaluation
        if step % args.eval_every == 0 or step == args.max_steps or over_cap:
            err = error_pct(task, model, xv, yv, batch)
            curve.append((step, err, round(time.perf_counter() - t0, 2)))
            if err <= SOLVED_ERROR_PCT:
                solved_step, solved_s, stopped = step, round(time.perf_counter() - t0, 1), "solved"
                solved_cpu_s = round(cpu_s() - c0, 1)
                break
            if over_cap:
                stopped = "cpu cap"
                break
    if stopped == "cpu cap":
        print(f"WARNING: {task} N=2^{k} {name} stopped on its CPU-time cap ({cap:.0f} s) at step "
              f"{step} of {args.max_steps}", file=sys.stderr, flush=True)
    return {"task": task, "length": n, "log2_length": k, "model": name, "steps": step,
            "batch_size": batch, "solved_step": solved_step, "solved_s": solved_s,
            "solved_cpu_s": solved_cpu_s, "stopped": stopped,
            "cap_cpu_s": round(cap, 1), "final_error_pct": curve[-1][1], "best_error_pct": min(e for _, e, _ in curve),
            "curve": curve, "wall_s": round(time.perf_counter() - t0, 1),
            "train_s": round(train_s, 1), "cpu_s": round(cpu_s() - c0, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "parameters": sum(p.numel() for p in model.parameters())}


def error_at(row: dict, budget: int) -> str:
    """Validation error at the last evaluation at or before ``budget`` steps ("solved" carries)."""
    if row["solved_step"] is not None and row["solved_step"] <= budget:
        return f"**{row['curve'][-1][1]:.1f}**"
    pts = [(s, e) for s, e, _ in row["curve"] if s <= budget]
    if row["steps"] < budget:
        return f"({pts[-1][1]:.1f} @{pts[-1][0]})"  # stopped earlier (time cap)
    return f"{pts[-1][1]:.1f}"


def markdown(rows: list[dict], args, meta: dict) -> str:
    lines = ["# Learning speed on the synthetic tasks", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Load average (1, 5, 15 min) at start {meta['load_start']}, at end "
             f"{meta.get('load_end', '–')}; wall {meta.get('wall_s', 0) / 60:.1f} min, CPU "
             f"{meta.get('cpu_s', 0) / 60:.1f} min (CPU/wall = {meta.get('cpu_s', 0) / max(1e-9, meta.get('wall_s', 1)):.2f}).  ",
             f"Per run: at most {args.max_steps} steps of "
             + (f"min({args.batch_size}, {getattr(args, 'tokens', 0)} / N) sequences"
                if getattr(args, "tokens", 0) else f"batch {args.batch_size}")
             + " (fresh data, "
             f"the same batches for every model), AdamW lr {args.lr:g} (warm-up "
             f"{args.warmup_steps}, cosine to 0 at {args.max_steps}), wd {args.weight_decay:g}, "
             f"clip 1.0, C = {args.channels}, {args.pooling} pooling; validation on "
             f"{args.val_size} fixed sequences every {args.eval_every} steps; CPU-time cap "
             + (f"{args.budget_s:g} s at N = 2^7, x sqrt(2) per doubling (evaluation included), "
                f"{args.threads} torch thread(s)." if args.budget_s else "none.") + "  ",
             f"Solved = validation error <= {SOLVED_ERROR_PCT:g} % (Order: accuracy >= 99 %; "
             f"Adding: 99 % of predictions within {ADDING_TOLERANCE}).", ""]
    for task in args.tasks:
        title = "Temporal Order" if task == "order" else "Adding"
        lines += [f"## {title}: steps (CPU seconds) to solve", "",
                  "| N | " + " | ".join(args.models) + " |", "|---" * (len(args.models) + 1) + "|"]
        for k in args.lengths:
            cells = [f"2^{k}"]
            for m in args.models:
                r = _find(rows, task, k, m)
                if r is None:
                    cells.append("–")
                elif r["solved_step"] is not None:
                    cells.append(f"{r['solved_step']} ({_solve_s(r):.0f} s)")
                else:
                    cells.append(f"not in {r['steps']} ({r['cpu_s']:.0f} s; {r['stopped']}), "
                                 f"best {r['best_error_pct']:.1f} %")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"## {title}: validation error % at step budgets", "",
                  "| N | budget | " + " | ".join(args.models) + " |",
                  "|---|---" + "|---" * len(args.models) + "|"]
        for k in args.lengths:
            for b in args.budgets:
                cells = [f"2^{k}", str(b)]
                for m in args.models:
                    r = _find(rows, task, k, m)
                    cells.append("–" if r is None else error_at(r, b))
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["**bold** = solved by that budget (the run stopped there); (e @s) = the run stopped "
              "earlier at step s on its CPU-time cap, e is its last error.", ""]
    return "\n".join(lines)


def _solve_s(row: dict) -> float:
    """CPU seconds to solve (rows written before they were recorded: wall seconds)."""
    return row["solved_cpu_s"] if row.get("solved_cpu_s") is not None else row["solved_s"]


def _find(rows, task, k, model):
    return next((r for r in rows if r["task"] == task and r["log2_length"] == k
                 and r["model"] == model), None)


def plot(rows: list[dict], args, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(MODELS, ["tab:blue", "tab:gray", "tab:cyan", "tab:purple", "tab:orange",
                              "tab:green"]))
    fig, axes = plt.subplots(len(args.tasks), len(args.lengths), squeeze=False,
                             figsize=(3.2 * len(args.lengths), 2.8 * len(args.tasks)))
    for i, task in enumerate(args.tasks):
        for j, k in enumerate(args.lengths):
            ax = axes[i][j]
            for m in args.models:
                r = _find(rows, task, k, m)
                if r:
                    s, e, _ = zip(*r["curve"])
                    ax.plot(s, e, color=colors[m], label=m, lw=1.5)
            ax.axhline(SOLVED_ERROR_PCT, color="k", ls=":", lw=0.8)
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_ylim(0, 100)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{task}, N = 2^{k}", fontsize=9)
            ax.set_xlabel("steps", fontsize=8)
            if j == 0:
                ax.set_ylabel("val error %", fontsize=8)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
        fig.subplots_adjust(bottom=0.15)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out / "learning-curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(args.tasks), squeeze=False, figsize=(5 * len(args.tasks), 3.6))
    for ax, task in zip(axes[0], args.tasks):
        for m in args.models:
            pts = [(r["log2_length"], r["solved_step"]) for k in args.lengths
                   if (r := _find(rows, task, k, m)) and r["solved_step"] is not None]
            miss = [(r["log2_length"], r["steps"]) for k in args.lengths
                    if (r := _find(rows, task, k, m)) and r["solved_step"] is None]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colors[m], label=m)
            if miss:
                ax.scatter(*zip(*miss), marker="x", color=colors[m],
                           label=None if pts else f"{m} (not solved)")
        _finish(ax, task, "log2 N", "steps to solve (x: not solved, steps run)", legend_size=7)
    _save(fig, out / "learning-steps.png")


def _finish(ax, title: str, xlabel: str, ylabel: str, legend_size: int) -> None:
    """Log y axis, labels, grid, and a legend if anything was drawn."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def generalise_markdown(rows: list[dict], args, meta: dict) -> str:
    tests = [f"2^{k}" for k in args.test_lengths]
    lines = ["# Trained short, tested long", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Load average (1, 5, 15 min) at start {meta['load_start']}, at end "
             f"{meta.get('load_end', '–')}; wall {meta.get('wall_s', 0) / 60:.1f} min.  ",
             f"Every model: {args.max_steps} steps of batch {args.batch_size} on variable-length "
             f"batches (no padding for the Paramixer) of lengths <= 2^{args.train_max} (LogNormal "
             f"around 2^{args.train_max}/8, as `sparsemix train --task order-varlen`), the same "
             f"batches for every model, AdamW lr {args.lr:g} (warm-up {args.warmup_steps}, cosine "
             f"to 0), C = {args.channels}, {args.pooling} pooling; then test error % on {args.test_size} "
             f"fixed-length sequences at each N (solved: <= {SOLVED_ERROR_PCT:g} %).", "",
             "| task | model | options | " + " | ".join(f"N = {t}" for t in tests)
             + " | train (CPU s) |", "|---" * (len(tests) + 4) + "|"]
    for r in rows:
        cells = [f"**{e:.1f}**" if e <= SOLVED_ERROR_PCT else f"{e:.1f}"
                 for e in (r["errors"][str(k)] for k in args.test_lengths)]
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        lines.append(f"| {r['task']} | {r['model']} | {opts} | " + " | ".join(cells)
                     + f" | {r['train_s']:.0f} ({r['train_cpu_s']:.0f}) |")
    return "\n".join(lines + ["", "**bold**: solved at that length."]) + "\n"


def generalise_plot(rows: list[dict], args, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.tasks), squeeze=False, figsize=(4.5 * len(args.tasks), 3.4))
    for ax, task in zip(axes[0], args.tasks):
        for r in (r for r in rows if r["task"] == task):
            ax.plot(args.test_lengths, [max(r["errors"][str(k)], 0.05) for k in args.test_lengths],
                    marker="o", label=r["model"])
        ax.axhline(SOLVED_ERROR_PCT, color="k", ls=":", lw=0.8)
        ax.axvline(args.train_max, color="gray", ls="--", lw=0.8)
        _finish(ax, task, "log2 N (test); dashed: longest training length", "test error %",
                legend_size=8)
    _save(fig, out / "generalise.png")


def write(rows, args, meta, out: Path) -> None:
    if getattr(args, "generalise", False):
        (out / "generalise.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        (out / "generalise.md").write_text(generalise_markdown(rows, args, meta))
        generalise_plot(rows, args, out)
        return
    (out / "learning.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / "learning.md").write_text(markdown(rows, args, meta))
    plot(rows, args, out)


def _set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (e.g. when called twice in one process)
        pass


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes that have exited
    return r.ru_utime + r.ru_stime


def _summary(row: dict) -> str:
    if row.get("kind") == "generalise":
        errors = ", ".join(f"2^{k}: {e:.1f} %" for k, e in row["errors"].items())
        return (f"{row['task']:6s} {row['model']:18s} trained <= {row['train_max']}, test error "
                f"{errors}  [{row['wall_s']} s wall, load {row['load_avg_1m']}]")
    return (f"{row['task']:6s} N=2^{row['log2_length']:<2d} {row['model']:18s} "
            + (f"solved at step {row['solved_step']} ({row['solved_s']} s)" if row["solved_step"]
               else f"not solved: {row['steps']} steps, error {row['final_error_pct']:.1f} %")
            + f"  [{row['wall_s']} s wall, {row['cpu_s']} s CPU, load {row['load_avg_1m']}]")


def _run_planned(args, item) -> dict:
    task, k, name = item
    return run_generalise(args, task, name) if args.generalise else run_one(args, task, k, name)


@contextlib.contextmanager
def _runner(args):
    """``submit(items, ids)`` yielding ``(id, row)`` as runs finish: in this process for
    ``--jobs 1``, else in a pool of ``--jobs`` worker processes (one run per process, so each
    run's CPU-time cap counts its own process)."""
    if args.jobs == 1:
        yield lambda items, ids: ((i, _run_planned(args, item)) for i, item in zip(ids, items))
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx, max_tasks_per_child=1,
                                                initializer=_set_threads,
                                                initargs=(args.threads,)) as pool:
        def submit(items, ids):
            futures = {pool.submit(_run_planned, args, item): i for i, item in zip(ids, items)}
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        yield submit


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        saved = json.loads((out / ("generalise.json" if args.generalise else "learning.json"))
                           .read_text())
        meta, rows = saved["meta"], saved["rows"]
        args = argparse.Namespace(**{**meta["args"], "render_only": True})
        write(rows, args, meta, out)
        return 0
    _set_threads(args.threads)
    meta = {"command": "python benchmarks/learning.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
                       f"thread(s) per run, {args.jobs} run(s) at a time, torch "
                       f"{torch.__version__}, device {args.device}",
            "load_start": [round(v, 2) for v in os.getloadavg()], "args": vars(args)}
    from tqdm.auto import tqdm

    # Longest runs first, so parallel jobs finish together; results are kept in table order.
    plan = [(task, k, name) for task in args.tasks for k in args.lengths for name in args.models]
    order = sorted(range(len(plan)), key=lambda i: -plan[i][1])
    bar = None if args.no_progress else tqdm(total=len(plan), unit="run", dynamic_ncols=True)
    done: dict[int, dict] = {}
    t0, c0 = time.perf_counter(), cpu_s()
    with _runner(args) as submit:
        for i, row in submit([plan[i] for i in order], order):
            done[i] = row
            msg = _summary(row)
            if bar is not None:
                bar.update(1)
                bar.write(msg)
            else:
                print(msg, flush=True)
            meta.update(wall_s=round(time.perf_counter() - t0, 1),
                        cpu_s=round(cpu_s() - c0 + _children_cpu_s(), 1),
                        load_end=[round(v, 2) for v in os.getloadavg()])
            write([done[j] for j in sorted(done)], args, meta, out)
    if bar is not None:
        bar.close()
    files = ("generalise.json, generalise.md, generalise.png" if args.generalise else
             "learning.json, learning.md, learning-curves.png, learning-steps.png")
    print(f"wrote {out}/{{{files}}} ({meta['wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
