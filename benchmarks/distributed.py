"""Training throughput: 1 process vs 2 DDP processes (torchrun, gloo) on the CPU.

Configurations, all with the same global batch and the same variable-length data
(``adding-varlen``, :class:`~sparsemix.train.samplers.BucketSampler`, Paramixer classifier):

- ``1 proc x 1 thread``  — the baseline;
- ``1 proc x 2 threads`` — the same cores used by intra-op threads instead;
- ``2 procs x 1 thread`` — ``torchrun --nproc_per_node=2``, DistributedDataParallel over gloo.

Each configuration runs as a fresh subprocess (torchrun for the DDP one), trains ``--warmup``
steps untimed, then times ``--steps`` optimiser steps; repeats are interleaved so that load from
other processes on the machine hits every configuration alike, and the median is reported.

    python benchmarks/distributed.py --out benchmarks/results

writes ``distributed.json`` and ``distributed.md`` there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = [  # (name, processes, threads per process)
    ("1 proc x 1 thread", 1, 1),
    ("1 proc x 2 threads", 1, 2),
    ("2 procs x 1 thread (DDP, gloo)", 2, 1),
]


def worker(args: argparse.Namespace) -> None:
    """One training run (a rank under torchrun, or a single process); rank 0 writes JSON."""
    import torch

    torch.set_num_threads(args.threads)
    from types import SimpleNamespace

    from sparsemix.models import SequenceClassifier
    from sparsemix.tasks import build_task
    from sparsemix.train import distributed as D
    from sparsemix.train import throughput
    from sparsemix.train.samplers import BucketSampler

    info = D.init_distributed("cpu", timeout_s=300.0)
    cfg = SimpleNamespace(length=args.length, train_size=args.train_size, val_size=1, test_size=1,
                          seed=0, fasta=None, extra={})
    data = build_task("adding-varlen", cfg)
    train = data.train
    lengths = [len(x) for x, _ in (train[i] for i in range(len(train)))]
    torch.manual_seed(0)
    model = SequenceClassifier(None, 1, args.channels, args.layers, max_len=data.max_len,
                               input_dim=data.input_dim, backend=args.backend)
    ddp = D.wrap_model(model, info)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sampler = BucketSampler(lengths, args.batch_size, info.world_size, info.rank, seed=0)

    def collate(items):
        xs, ys = zip(*items)
        sizes = torch.tensor([len(x) for x in xs])
        return torch.cat(xs), torch.repeat_interleave(torch.arange(len(xs)), sizes), torch.stack(ys)

    loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=collate)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    stream = batches()
    samples = tokens = 0
    t0 = cpu0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            D.barrier(info)
            t0, cpu0 = time.perf_counter(), time.process_time()
        x, batch, y = next(stream)
        count = D.global_batch_count(len(y), info)
        loss = D.scale_loss(((ddp(x, batch).squeeze(-1) - y) ** 2).sum(), count, info)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= args.warmup:
            samples += len(y)
            tokens += x.size(0)
    D.barrier(info)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # this process's CPU seconds (all its threads)
    totals = D.all_reduce_sum({"samples": samples, "tokens": tokens, "cpu_s": cpu}, info)
    if info.is_main:
        Path(args.result).write_text(json.dumps({
            "processes": info.world_size, "threads": args.threads, "seconds": elapsed,
            **throughput(totals["samples"], totals["tokens"], elapsed), "cpu_s": totals["cpu_s"],
            "samples_per_cpu_s": totals["samples"] / totals["cpu_s"],
            "backend": getattr(model.blocks[0], "active_backend", args.backend),
        }))
    D.cleanup(info)


def launch(procs: int, threads: int, args: argparse.Namespace) -> tuple[dict, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        worker_args = [
            str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
            "--result", str(result), "--length", str(args.length),
            "--train-size", str(args.train_size), "--batch-size", str(args.batch_size),
            "--channels", str(args.channels), "--layers", str(args.layers),
            "--warmup", str(args.warmup), "--steps", str(args.steps), "--backend", args.backend,
        ]
        if procs == 1:
            cmd = [sys.executable, *worker_args]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={procs}", *worker_args]
        # OMP_NUM_THREADS as torchrun would set it; the worker also calls set_num_threads.
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        for attempt in range(2):  # one retry: a rank lost on a shared machine must not hang us
            proc = subprocess.Popen(cmd, env=env, start_new_session=True)
            try:
                if proc.wait(timeout=args.run_timeout) == 0:
                    return json.loads(result.read_text()), cmd
                print(f"run failed with status {proc.returncode}: {shlex.join(cmd)}", flush=True)
            except subprocess.TimeoutExpired:
                print(f"run exceeded {args.run_timeout}s, killed: {shlex.join(cmd)}", flush=True)
                # SIGTERM lets torchrun stop its workers (they run in their own process groups)
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # the launcher we started, only
                    proc.wait()
        raise RuntimeError(f"benchmark run failed twice: {shlex.join(cmd)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--length", type=int, default=1024, help="max sequence length (adding-varlen)")
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=32, help="global batch")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backend", default="auto")
    p.add_argument("--run-timeout", type=float, default=600.0, help="seconds per run before a retry")
    # worker-only
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    runs: dict[str, list[dict]] = {name: [] for name, _, _ in CONFIGS}
    commands: dict[str, str] = {}
    for r in range(args.repeats):
        for name, procs, threads in CONFIGS:
            load_before = os.getloadavg()[0]
            res, cmd = launch(procs, threads, args)
            res["loadavg_1min_before"] = load_before
            runs[name].append(res)
            commands[name] = shlex.join(["OMP_NUM_THREADS=" + str(threads), *cmd])
            print(f"[{r + 1}/{args.repeats}] {name}: {res['samples_per_s']:.1f} samples/s", flush=True)

    base = statistics.median(x["samples_per_s"] for x in runs[CONFIGS[0][0]])
    rows = []
    for name, procs, threads in CONFIGS:
        sps = [x["samples_per_s"] for x in runs[name]]
        tps = [x["tokens_per_s"] for x in runs[name]]
        eff = [x["samples_per_cpu_s"] for x in runs[name]]
        rows.append({"config": name, "processes": procs, "threads_per_process": threads,
                     "samples_per_s_median": statistics.median(sps), "samples_per_s_runs": sps,
                     "tokens_per_s_median": statistics.median(tps),
                     "samples_per_cpu_s_median": statistics.median(eff),
                     "loadavg_1min_before_runs": [x["loadavg_1min_before"] for x in runs[name]],
                     "speedup_vs_1x1": statistics.median(sps) / base})
    meta = {
        "task": "adding-varlen", "max_len": args.length, "train_size": args.train_size,
        "global_batch": args.batch_size, "model": f"SequenceClassifier(C={args.channels}, "
        f"L={args.layers}, chord)", "paramixer_backend": runs[CONFIGS[0][0]][0]["backend"],
        "timed_steps": args.steps, "warmup_steps": args.warmup, "repeats": args.repeats,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "command": "python benchmarks/distributed.py " + shlex.join(sys.argv[1:]),
    }
    import torch

    meta["torch"] = torch.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distributed.json").write_text(json.dumps({"meta": meta, "rows": rows,
                                                           "commands": commands}, indent=2) + "\n")
    lines = [
        "| configuration | samples/s (median) | tokens/s | speed-up vs 1x1 | samples per CPU-s "
        "| runs (samples/s) | load avg before runs |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        runs_s = ", ".join(f"{v:.1f}" for v in row["samples_per_s_runs"])
        loads = ", ".join(f"{v:.1f}" for v in row["loadavg_1min_before_runs"])
        lines.append(f"| {row['config']} | {row['samples_per_s_median']:.1f} | "
                     f"{row['tokens_per_s_median']:.0f} | {row['speedup_vs_1x1']:.2f}x | "
                     f"{row['samples_per_cpu_s_median']:.1f} | {runs_s} | {loads} |")
    md = (f"Training throughput, {meta['model']}, adding-varlen (max length {args.length}), global "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, median of "
          f"{args.repeats} interleaved repeats; torch {meta['torch']}, {meta['cpu_count']} CPUs.\n\n"
          + "\n".join(lines) + f"\n\nCommand: `{meta['command']}`\n")
    (args.out / "distributed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
