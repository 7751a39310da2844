"""One full training step of ``sparsemix train``'s default model against the Transformer baseline.

A step is what the trainer's ``_train_step`` does: collate the batch from dataset items, forward,
summed loss / batch, backward, gradient clipping, AdamW. The models are built the way ``sparsemix
train`` builds them (``TrainConfig`` defaults -> the task -> ``sparsemix.train.inference.build_model``,
i.e. the model registry) for Temporal Order tokens. Every cell takes about ``--tokens`` tokens a step:
fixed length (B = tokens / N sequences of N) and variable length (every step a fresh set of lengths
drawn uniformly in [N/2, N] until the tokens are reached, so a cache keyed by the lengths cannot hit).
Each cell: ``--warmup`` steps, then the median of ``--steps`` steps, wall time and process CPU time,
with /proc/loadavg read before and after (the machine may be shared: the figures say so). The models
of one (N, mode) take their steps in turns (step i of each, then step i + 1), so the ratios between
them are measured over the same minutes.

For the Paramixer cells a breakdown in process CPU seconds (steadier than wall time on a shared
machine): the step's own phases (data building, forward, backward, clipping + optimizer) timed
inside the step, and the forward + backward split into components, each timed in isolation on the
same shapes (embedding / stem / positions; the weight MLPs; the index
tables; the mixing = value MLP g + factor products; norms + FFN; pooling + head + loss); what the
isolated components do not account for is reported as "Python overhead / rest".

    python benchmarks/train_step.py --out benchmarks/results/train_step          # the full run
    python benchmarks/train_step.py --out /tmp/train_step --quick                # a 1-minute smoke run

Writes train_step.json, train_step.md and train_step.png (the breakdown) into ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from torch_geometric.nn import global_mean_pool
from sparsemix.kernels.native import native_isa
from sparsemix.tasks import build_task
from sparsemix.tasks.synthetic import temporal_order
from sparsemix.train import keep_freed_memory
from sparsemix.train.config import TrainConfig
from sparsemix.train.data import collate
from sparsemix.train.inference import build_model, forward, loss_sum
from sparsemix.train.recipe import build_optimizer

DEFAULT_LENGTHS = (1024, 4096, 16384)
COMPONENTS = ("data building", "embedding / stem / positions", "index tables", "weight MLPs",
              "mixing (g + factors)", "norms + FFN", "pool + head + loss", "clip + optimizer",
              "Python overhead / rest")


# ---- machine ---------------------------------------------------------------------------------------
def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:  # not Linux
        return []


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine(threads: int) -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_isa": native_isa(),
            "python": platform.python_version(), "loadavg_start": loadavg()}


# ---- data and models -------------------------------------------------------------------------------
def step_batches(n: int, tokens: int, varlen: bool, count: int, seed: int = 0) -> list[list]:
    """``count`` steps' dataset items [(x, y), ...]: B = tokens / N rows of length N, or (varlen) fresh
    lengths uniform in [N/2, N] until ``tokens`` are reached, different at every step."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(count):
        if varlen:
            lengths = []
            while sum(lengths) < tokens:
                lengths.append(int(torch.randint(max(2, n // 2), n + 1, (1,), generator=g)))
        else:
            lengths = [n] * max(1, tokens // n)
        x, y = temporal_order(len(lengths), n, seed=seed * 1000 + s)
        out.append([(x[i, :m].clone(), y[i]) for i, m in enumerate(lengths)])
    return out


def build(model_name: str, n: int, options: dict) -> tuple[nn.Module, torch.optim.Optimizer, TrainConfig]:
    """The model and optimizer ``sparsemix train --task order --length N --model NAME`` builds."""
    cfg = TrainConfig(task="order", out="unused", length=n, model=model_name, train_size=1,
                      val_size=1, test_size=1, **options)
    cfg.validate()
    cfg.resolve_task_defaults()
    task = build_task("order", cfg)
    model = build_model(cfg, task)
    return model, build_optimizer(model, cfg), cfg


def train_step(model: nn.Module, opt: torch.optim.Optimizer, items: list, varlen: bool,
               clip: Optional[float], timer: Optional[dict] = None,
               autocast: Optional[torch.dtype] = None) -> None:
    """The trainer's step (``sparsemix.train.loop._train_step``), phases timed into ``timer`` (process
    CPU seconds: on a shared machine waiting for a core does not count)."""
    clock = time.process_time
    t0 = clock()
    b = collate(items, range(len(items)), varlen)
    t1 = clock()
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        out = forward(model, b)
    loss = loss_sum(out.float(), b.y, "classification")
    t2 = clock()
    (loss / len(b)).backward()
    t3 = clock()
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    t4 = clock()
    if timer is not None:
        for key, dt in (("data", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2),
                        ("optimizer", t4 - t3)):
            timer.setdefault(key, []).append(dt)


def sdpa_kernel(model: nn.Module, items: list, varlen: bool) -> str:
    """Which scaled_dot_product_attention kernel ran (from the profiler's op names)."""
    b = collate(items[:1], [0], varlen)
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        forward(model, b)
    names = {e.key for e in prof.key_averages()}
    for needle, label in (("flash_attention", "flash"), ("efficient_attention", "efficient"),
                          ("cudnn_attention", "cudnn"), ("attention_math", "math")):
        hits = sorted(n for n in names if needle in n)
        if hits:
            return f"{label} ({hits[0]})"
    return "unknown"


def time_cells(variants_: list[tuple[str, dict]], n: int, tokens: int, varlen: bool, args) -> list[dict]:
    """Every variant at one (N, mode), their steps interleaved: step i of every model runs before step
    i + 1 of any, so a slow minute of this shared host slows all models alike and the ratios stay
    comparable (run one after another, one model's median moved 30 % between runs of the same code)."""
    cells = []
    for model_name, options in variants_:
        torch.manual_seed(0)
        model, opt, cfg = build(model_name, n, options)
        model.train()
        precision = options.get("precision")
        cells.append({"model_name": model_name, "options": options, "model": model, "opt": opt,
                      "cfg": cfg, "autocast": torch.bfloat16 if precision == "bf16" else None,
                      "walls": [], "cpus": [], "phases": {}, "toks": []})
    batches = step_batches(n, tokens, varlen, args.warmup + args.steps, seed=1 + varlen)
    load_before = loadavg()
    for i, items in enumerate(batches):
        for c in cells:
            timed = i >= args.warmup
            w0, c0 = time.perf_counter(), time.process_time()
            train_step(c["model"], c["opt"], items, varlen, c["cfg"].clip_grad,
                       c["phases"] if timed else None, c["autocast"])
            w1, c1 = time.perf_counter(), time.process_time()
            if timed:
                c["walls"].append(w1 - w0)
                c["cpus"].append(c1 - c0)
                c["toks"].append(sum(len(x) for x, _ in items))
    load_after = loadavg()
    out = []
    for c in cells:
        wall, cpu, tok = (statistics.median(c[k]) for k in ("walls", "cpus", "toks"))
        model = c["model"]
        cell = {"model": c["model_name"], "options": c["options"], "length": n,
                "mode": "varlen" if varlen else "fixed",
                "sequences": statistics.median(len(b) for b in batches[args.warmup:]),
                "tokens_per_step": tok, "step_s": wall, "cpu_s": cpu, "steps_s": c["walls"],
                "cpu_steps_s": c["cpus"], "tokens_per_s": tok / wall, "loadavg_before": load_before,
                "loadavg_after": load_after,
                "phases_s": {k: statistics.median(v) for k, v in c["phases"].items()},
                "parameters": sum(p.numel() for p in model.parameters())}
        if c["model_name"] == "transformer":
            cell["sdpa_kernel"] = sdpa_kernel(model, batches[0], varlen)
        elif args.breakdown:
            cell["breakdown_s"] = breakdown(model, c["opt"], batches[-1], varlen, c["cfg"].clip_grad,
                                            cell, args)
        out.append(cell)
    return out


# ---- breakdown -------------------------------------------------------------------------------------
def _fwd_bwd(fn: Callable[[], Any], reps: int) -> float:
    """Median CPU seconds of ``fn()`` (forward) plus the backward of its outputs with random grads."""
    times = []
    for r in range(reps + 1):  # the first is a warm-up
        t0 = time.process_time()
        out = fn()
        outs = [o for o in (out if isinstance(out, (list, tuple)) else [out])
                if torch.is_tensor(o) and o.requires_grad]
        if outs:
            torch.autograd.backward(outs, [torch.randn_like(o) for o in outs])
        if r:
            times.append(time.process_time() - t0)
    return statistics.median(times)


def breakdown(model: nn.Module, opt, items: list, varlen: bool, clip, cell: dict, args) -> dict:
    """CPU seconds per component of one step (fwd + bwd each, timed alone on the step's shapes)."""
    reps = args.breakdown_reps
    b = collate(items, range(len(items)), varlen)
    out: dict[str, float] = {}
    batch = b.batch  # the default pooling is mean: no CLS rows

    def embed():
        h = model.embed(b.x, batch)
        return h if model.stem is None else model.stem(h, batch)
    out["embedding / stem / positions"] = _fwd_bwd(embed, reps)
    with torch.no_grad():
        h = embed()
    # fresh sets of lengths (never seen by the model): what the index tables cost a step
    fresh = [collate(it, range(len(it)), varlen)
             for it in step_batches(cell["length"], int(cell["tokens_per_step"]), varlen, reps, seed=99)]
    parts = {"index tables": 0.0, "weight MLPs": 0.0, "mixing (g + factors)": 0.0, "norms + FFN": 0.0}
    for layer in model.blocks:
        mixer = layer.mixer if hasattr(layer, "mixer") else layer
        hr = h.detach().requires_grad_()
        with torch.no_grad():
            u = layer.norm1(hr) if hasattr(layer, "norm1") else hr
        ur = u.detach().requires_grad_()
        t0 = time.process_time()
        for f in fresh:
            fb = f.batch
            mixer.topology_of(u if fb is None else u.new_empty(fb.numel(), u.size(-1)), fb)
        parts["index tables"] += (time.process_time() - t0) / reps
        weight_mlps = _fwd_bwd(lambda: mixer.factor_weights(ur), reps)
        parts["weight MLPs"] += weight_mlps
        if getattr(layer, "mix_mode", "sum") == "average":
            # softplus, gates, scores and the pass over C + H channels run inside _average with the
            # weight MLPs: time it whole and take the weight MLPs' share out
            def mixing(x):
                return layer._average(x, batch)[0]
            inside = weight_mlps
        else:
            topo = mixer.topology_of(u, batch)
            with torch.no_grad():
                weights = mixer.factor_weights(u)

            def mixing(x):
                return mixer.mix(mixer.value(x), weights, topo)
            inside = 0.0
        parts["mixing (g + factors)"] += _fwd_bwd(lambda: mixing(ur), reps) - inside
        if hasattr(layer, "ffn"):
            with torch.no_grad():
                mixed = mixing(u)

            def mix_norm_ffn():
                x = hr + layer.mix_norm(mixed)
                return x + layer.ffn(layer.norm2(x))
            parts["norms + FFN"] += _fwd_bwd(lambda: layer.norm1(hr), reps) + _fwd_bwd(mix_norm_ffn, reps)
        with torch.no_grad():
            h = layer(h, batch=batch)
    out.update(parts)
    hr = h.detach().requires_grad_()

    def head_loss():
        z = model.norm(hr) if model.norm is not None else hr
        pooled = z.mean(1) if batch is None else global_mean_pool(z, batch)
        return loss_sum(model.head(pooled), b.y, "classification") / len(b)
    out["pool + head + loss"] = _fwd_bwd(head_loss, reps)
    phases = cell["phases_s"]
    out["data building"] = phases["data"]
    out["clip + optimizer"] = phases["optimizer"]
    model.zero_grad(set_to_none=True)
    accounted = sum(v for k, v in out.items() if k not in ("data building", "clip + optimizer"))
    out["Python overhead / rest"] = phases["forward"] + phases["backward"] - accounted
    return {k: out[k] for k in COMPONENTS}


# ---- report ----------------------------------------------------------------------------------------
def variant_name(cell: dict) -> str:
    if cell["model"] != "paramixer":
        return cell["model"]
    extras = [f"{k}={v}" for k, v in cell["options"].items()]
    return "paramixer" + (f" ({', '.join(extras)})" if extras else "")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# One training step: the default model against the Transformer", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} thread(s), torch {m['torch']} "
             f"(CPU capability {m['cpu_capability']}, native kernel {m.get('native_isa')}, freed "
             f"memory kept for the next step: {m.get('keep_freed_memory', False)}); load "
             f"average at the start {m['loadavg_start']}. The machine is shared: every row gives the "
             "1-minute load average before and after its (N, mode).", "",
             f"~{result['tokens']} tokens a step; median of {result['steps']} steps after "
             f"{result['warmup']} warm-up step(s); forward, backward, clip, AdamW and the batch's "
             "collation, as `sparsemix train` runs them. The models of one N and mode take their "
             "steps in turns, so their ratios come from the same minutes.", "",
             "tokens/CPU-s divides by the process's CPU time instead of wall time: on a loaded "
             "machine it is the steadier figure (a process that waits for a core loses wall time, "
             "not CPU time). Ratios are Paramixer / Transformer at the same N and mode.", "",
             "| model | N | mode | seqs | tokens/step | step s | CPU s | tokens/s | tokens/CPU-s "
             "| vs Transformer (wall / CPU) | load before / after | note |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    base = {(c["length"], c["mode"]): c for c in result["cells"] if c["model"] == "transformer"}
    for c in result["cells"]:
        t = base.get((c["length"], c["mode"]))
        per_cpu = c["tokens_per_step"] / max(c["cpu_s"], 1e-9)
        ratio_s = ""
        if t is not None and c["model"] != "transformer":
            ratio_s = (f"{c['tokens_per_s'] / t['tokens_per_s']:.2f} / "
                       f"{per_cpu / (t['tokens_per_step'] / max(t['cpu_s'], 1e-9)):.2f}")
        lb, la = c["loadavg_before"], c["loadavg_after"]
        lines.append(f"| {variant_name(c)} | {c['length']} | {c['mode']} | {c['sequences']:.0f} | "
                     f"{c['tokens_per_step']:.0f} | {c['step_s']:.3f} | {c['cpu_s']:.3f} | "
                     f"{c['tokens_per_s'] / 1e3:.1f}k | {per_cpu / 1e3:.1f}k | {ratio_s} | "
                     f"{lb[0] if lb else '?'} / {la[0] if la else '?'} | {c.get('sdpa_kernel', '')} |")
    cells = [c for c in result["cells"] if "breakdown_s" in c]
    if cells:
        lines += ["", "## Where a Paramixer step goes (CPU seconds and % of the step's CPU time; fwd + "
                  "bwd per component, each timed alone on the step's shapes; the rest is what they "
                  "do not account for)", "",
                  "| component | " + " | ".join(f"{variant_name(c)} N={c['length']} {c['mode']}"
                                                for c in cells) + " |",
                  "|---|" + "---:|" * len(cells)]
        for comp in COMPONENTS:
            lines.append(f"| {comp} | " + " | ".join(
                f"{c['breakdown_s'][comp]:.3f} ({100 * c['breakdown_s'][comp] / c['cpu_s']:.0f} %)"
                for c in cells) + " |")
        lines.append("| step (CPU s, measured) | " + " | ".join(f"{c['cpu_s']:.3f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    from topologies.drawing import pyplot  # optional: matplotlib

    plt = pyplot()
    cells = [c for c in result["cells"] if "breakdown_s" in c]
    if not cells:
        return
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(cells) + 2))
    labels = [f"{variant_name(c)}\nN={c['length']} {c['mode']}" for c in cells]
    left = [0.0] * len(cells)
    colors = plt.get_cmap("tab10")
    for k, comp in enumerate(COMPONENTS):
        widths = [max(0.0, 1e3 * c["breakdown_s"][comp] / c["tokens_per_step"] * 1e3) for c in cells]
        ax.barh(labels, widths, left=left, color=colors(k), label=comp)
        left = [a + w for a, w in zip(left, widths)]
    ax.set_xlabel("CPU ms per 1000 tokens (one training step, fwd + bwd + optimizer)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    m = result["machine"]
    ax.set_title(f"Paramixer training step by component; {m['cpu']}, {m['threads']} thread(s)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- main ------------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for train_step.json / .md / .png")
    p.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)),
                   help="comma-separated sequence lengths N")
    p.add_argument("--tokens", type=int, default=32768, help="tokens a step (B = tokens / N)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per cell (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--models", default="paramixer,transformer", help="paramixer and/or transformer")
    p.add_argument("--modes", default="fixed,varlen", help="fixed and/or varlen")
    p.add_argument("--weight-mlp", default="", help="comma-separated Paramixer --weight-mlp "
                   "variants to time (default: the TrainConfig default only)")
    p.add_argument("--precision", default="", help="comma-separated --precision variants (fp32, bf16)")
    p.add_argument("--mix-mode", default="", help="comma-separated Paramixer mixings to time: "
                   "average (Order's default) and/or sum (Order's previous default: the summed "
                   "mixing with learned positions, no wrap gate, unscaled scores; what the DNA tasks "
                   "use)")
    p.add_argument("--malloc-default", dest="keep_freed_memory", action="store_false",
                   help="leave glibc's malloc as it is (by default the benchmark keeps freed memory "
                        "for the next step, as `sparsemix train` does: "
                        "sparsemix.train.keep_freed_memory)")
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                   help="skip the per-component breakdown of the Paramixer cells")
    p.add_argument("--breakdown-reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke run (N = 1024, 8k tokens)")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.tokens, args.steps = "1024", 8192, 2
    try:
        args.lengths = [int(v) for v in args.lengths.split(",") if v]
    except ValueError:
        p.error(f"--lengths must be comma-separated integers, got {args.lengths!r}")
    if not args.lengths or min(args.lengths) < 4:
        p.error("--lengths must hold integers >= 4")
    for name in ("tokens", "steps", "threads", "breakdown_reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    args.models = [m for m in args.models.split(",") if m]
    args.modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in args.models if m not in ("paramixer", "transformer")]
    if bad or not args.models:
        p.error(f"--models must name paramixer and/or transformer, got {args.models}")
    if not args.modes or any(m not in ("fixed", "varlen") for m in args.modes):
        p.error(f"--modes must name fixed and/or varlen, got {args.modes}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for opt, name in (("--weight-mlp", "weight_mlp"), ("--precision", "precision")):
        values = [v for v in getattr(args, name).split(",") if v]
        if values and name not in fields:
            p.error(f"{opt}: this version of sparsemix has no such TrainConfig option")
        setattr(args, name, values)
    args.mix_mode = [v for v in args.mix_mode.split(",") if v]
    bad = [v for v in args.mix_mode if v not in MIXINGS]
    if bad:
        p.error(f"--mix-mode must name {' and/or '.join(MIXINGS)}, got {bad}")
    return args


# --mix-mode: the options each mixing is built with (the rest are the task's defaults)
MIXINGS = {"average": {"mix_mode": "average"},
           "sum": {"mix_mode": "sum", "positional": True, "wrap_gate": False, "score_scale": "none"}}


def variants(args) -> list[tuple[str, dict]]:
    out = []
    for model in args.models:
        if model == "transformer":
            out.append((model, {}))
            continue
        for mixing in args.mix_mode or [None]:
            for wm in args.weight_mlp or [None]:
                for prec in args.precision or [None]:
                    opts = {k: v for k, v in (("weight_mlp", wm), ("precision", prec)) if v is not None}
                    out.append((model, {**MIXINGS.get(mixing, {}), **opts}))
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory() if args.keep_freed_memory else False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/train_step.py " + " ".join(sys.argv[1:] if argv is None
                                                                       else argv),
              "machine": {**machine(args.threads), "keep_freed_memory": kept},
              "tokens": args.tokens, "steps": args.steps,
              "warmup": args.warmup, "cells": []}
    for n in args.lengths:
        for mode in args.modes:
            for cell in time_cells(variants(args), n, args.tokens, mode == "varlen", args):
                result["cells"].append(cell)
                print(f"{variant_name(cell):40s} N={n:6d} {mode:6s} {cell['tokens_per_s'] / 1e3:8.1f}k "
                      f"tokens/s  step {cell['step_s']:.3f} s  load {cell['loadavg_after']}",
                      flush=True)
    result["machine"]["loadavg_end"] = loadavg()
    (out / "train_step.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "train_step.md").write_text(markdown(result))
    plot(result, out / "train_step.png")
    return result


if __name__ == "__main__":
    main()
