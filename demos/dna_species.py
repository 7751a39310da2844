"""Species of origin of a bacterial DNA fragment, on real genomes from Debian packages.

Five species (E. coli, K. pneumoniae, V. cholerae, S. aureus, H. pylori), 3-5 strains each;
whole strains are held out for validation and test, so the model must recognise a species in a
strain it has never seen. Fragments are 256 bp to 4 kb (16 kb with ``--full``), drawn
log-uniformly, on a random strand. Paramixer (the encoder model with a local convolution stem,
which sees k-mer-like features) trains in variable-length mode (no padding: every fragment is
mixed by its own topology) and is reported per length bucket next to the same model with mixing
switched off (identity factors: what the long-range mixing adds) and GC-content and 4-/6-mer
logistic-regression baselines, all fitted in the same run on the same splits.

The model has a 6-mer token stem (``--kmer 6``, so it contains the 6-mer profile the baseline
uses), trains with reverse-complement augmentation and predicts with the average of both strands'
logits (``--rc-conjoin``). Training fragments are drawn afresh every epoch from the training
strains (validation and test fragments are fixed), and the baselines are fitted on exactly the
fragments the model's steps read, all epochs together.

Both models train a fixed number of optimiser steps (``--steps``), so the result does not depend
on the machine's speed or load. A wall-clock guard (``--guard-s``, per model, on the training
steps) only protects against a machine far slower than expected; a run it cuts is reported loudly
in the output, ``results.json`` and ``results.md``.

Steps: fetch the pinned packages into the cache (``apt-get download``; ~30 MB, once) -> split
strains and sample fragments (manifests) -> baselines on the planned training fragments -> train
Paramixer, then the mixing-off model, for the same steps -> test -> tables, figures, JSON and
Markdown in ``--out``.

    python -m demos.dna_species --out runs/demo-dna-species            # <= 10 min on 2 CPU cores
    python -m demos.dna_species --out runs/dna-species-full --full      # longer, up to 16 kb
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
from sparsemix.tools import fragment_weights, plot_fragment_weights
from sparsemix.train import TrainConfig, load_model, predict, train
from topologies import PROTOCOLS

from . import _report as report

# Default run: 500 steps (4 epochs of 125, each a fresh draw of 2,000 fragments) for each model,
# sized to finish within 10 minutes on an idle 2-core machine (~50,000 bases/s for Paramixer,
# fetching included); the guard cuts a model's training after 900 s of steps (about 4x that).
QUICK = dict(length=4096, min_length=256, train_size=2000, val_size=500, test_size=1000,
             steps=500, guard_s=900.0)
# --full: all lengths up to 16 kb, five times the data, 10 epochs of 625 steps, no guard.
FULL = dict(length=16384, min_length=256, train_size=10000, val_size=1000, test_size=2500,
            steps=6250, guard_s=None)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/dna-species", help="output folder (replaced if it holds an earlier run of this demo)")
    p.add_argument("--full", action="store_true", help="lengths up to 16 kb, 10k training fragments per epoch, 6,250 steps, no guard")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps of each model (default 500; 6250 with --full), in epochs of "
                        "train-size / batch-size steps, each epoch a fresh draw of the training fragments")
    p.add_argument("--guard-s", type=float, default=None,
                   help="wall-clock guard: stop a model's training after this many seconds of steps, and "
                        "say so loudly (default 900; 0: none, the default with --full)")
    p.add_argument("--length", type=int, default=None, help="longest fragment (default 4096; 16384 with --full)")
    p.add_argument("--min-length", type=int, default=None, help="shortest fragment (default 256)")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=None,
                   help="encoder layers (default: sparsemix train's default)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: sparsemix train's)")
    p.add_argument("--stem", default="conv", choices=STEMS,
                   help="local convolution over the embedded bases (default conv: k-mer-like features)")
    p.add_argument("--no-ablation", action="store_true",
                   help="skip the mixing-off model")
    p.add_argument("--protocol", default="chord", choices=tuple(PROTOCOLS))
    report.add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: on a shared 2-core machine a second thread made "
                        "each training step 3-20x slower; on an idle machine try 2)")
    return p.parse_args(argv)


def _settings(args: argparse.Namespace) -> dict:
    s = dict(FULL if args.full else QUICK)
    for key in ("length", "min_length", "train_size", "val_size", "test_size", "steps", "guard_s"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    s["guard_s"] = s["guard_s"] or None  # 0: no guard
    return s


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    s = _settings(args)
    out = Path(args.out)
    run = out / "train"
    out.mkdir(parents=True, exist_ok=True)
    report.clear_previous_run(run, "dna-species")

    report.clear_previous_run(out / "train-no-mixing", "dna-species")
    given = report.options_given(args, "num_layers", "lr")
    cfg = TrainConfig(
        task="dna-species", out=str(run), length=s["length"], seed=args.seed,
        protocol=args.protocol, device=args.device, train_size=s["train_size"],
        val_size=s["val_size"], test_size=s["test_size"], batch_size=args.batch_size,
        channels=args.channels, positional=False, pooling="mean", stem=args.stem,
        time_budget_s=s["guard_s"], extra={"min_length": s["min_length"]},
        **report.model_options(args), **given)

    # 1. data: fetch (first run only), split strains, sample, write manifests
    print(f"[1/5] genomes: cache {cache_dir()} (set SPARSEMIX_CACHE to move it)", flush=True)
    try:
        task = build_task(cfg.task, cfg)
    except FetchError as err:
        sys.exit(f"cannot fetch the genome packages:\n{err}")
    t_data = time.perf_counter() - t_start
    strains = {}
    for key, src in task.meta["sources"].items():
        strains.setdefault(src["split"], []).append(f"{src['species']} {src['strain']}")
    for split in ("train", "val", "test"):
        print(f"      {split:5s} {len(getattr(task, split)):5d} fragments from "
              f"{len(strains[split])} strains: {', '.join(strains[split])}")
    print(f"      lengths {task.meta['min_length']}-{task.meta['length']} bp log-uniform; "
          f"manifests in {run / 'manifests'} ({t_data:.0f} s)", flush=True)
    planned = report.plan_steps(cfg, len(task.train), s["steps"])
    # the ablation: the same model, data, seed and steps with identity factors (step-matched:
    # without the factors a step is several times cheaper, so equal time would compare training
    # lengths, not models)
    ablation = None if args.no_ablation else TrainConfig(
        **{**cfg.to_dict(), "out": str(out / "train-no-mixing"), "mixing": False})

    # 2. baselines fitted on the fragments the models' steps will read, all epochs together
    seen = report.trained_fragments(task, cfg)
    print(f"[2/5] baselines: GC content, 4-mer and 6-mer logistic regression, fitted on the "
          f"{len(seen)} training fragments the models' {planned} steps read ({cfg.epochs} "
          f"epoch(s){', each drawn afresh' if task.meta['resample'] else ''})", flush=True)
    t0 = time.perf_counter()
    base = report.baselines_for(task, ks=(4, 6), train=seen)
    for name, r in base.items():
        print(f"      {name:6s} test accuracy {r['buckets']['all']['accuracy']:.3f}")
    t_base = time.perf_counter() - t0

    # 3. train Paramixer, then the ablation, each for the same fixed number of steps
    what = (f"Paramixer ({cfg.channels} channels, {cfg.num_layers} {cfg.block} layer(s), "
            f"{cfg.protocol}, stem {cfg.stem}, k-mer {getattr(cfg, 'kmer', 0) or 'off'})")
    guard = f"; guard {cfg.time_budget_s:.0f} s of steps" if cfg.time_budget_s else ""
    print(f"[3/5] training {what}: {planned} steps ({cfg.epochs} epoch(s) of "
          f"{cfg.max_steps_per_epoch}){guard}", flush=True)
    t0 = time.perf_counter()
    results = train(cfg)
    notes = [n for n in [report.guard_note("Paramixer", results, planned)] if n]
    report.shout(notes)
    ablation_results = None
    if ablation is not None:
        print(f"      the same with mixing off, {planned} steps", flush=True)
        ablation_results = train(ablation)
        note = report.guard_note("Paramixer, mixing off", ablation_results, planned)
        if note:
            report.shout([note])
            notes.append(note)
    t_train = time.perf_counter() - t0

    # 4. test per length bucket, figures
    print("[4/5] testing and plotting", flush=True)
    edges = task.meta["bucket_edges"]
    pred = predict(str(run), "test")
    rows = {"Paramixer": report.model_buckets(pred, edges)}
    if ablation is not None:
        rows["Paramixer, mixing off"] = report.model_buckets(predict(ablation.out, "test"), edges)
    rows.update({"6-mer LR": base["kmer6"]["buckets"], "4-mer LR": base["kmer4"]["buckets"],
                 "GC LR": base["gc"]["buckets"]})
    buckets = [k for k in rows["Paramixer"] if k != "all"] + ["all"]
    table = report.markdown_table(rows, buckets)
    names = task.class_names
    labels = pred["labels"]
    cm = report.confusion(pred["probs"].argmax(1), labels, len(names))
    cm6 = report.confusion(torch.tensor(base["kmer6"]["predictions"]), labels, len(names))
    figs = {
        "accuracy_vs_length": report.plot_accuracy_vs_length(
            rows, out / "accuracy_vs_length.png",
            "Species of origin (5 classes), held-out strains", chance=1 / len(names)),
        "confusion": report.plot_confusion(cm, names, out / "confusion.png",
                                           "Paramixer, test (held-out strains)"),
        "confusion_kmer6": report.plot_confusion(cm6, names, out / "confusion_kmer6.png",
                                                 "6-mer LR, test (held-out strains)"),
    }
    model, _, mtask = load_model(str(run))
    shortest = min(range(len(mtask.test)), key=lambda i: mtask.test.fragments[i].length)
    frag = mtask.test.fragments[shortest]
    weights, matrix, _ = fragment_weights(model, mtask.test.tokens(shortest))
    strain = task.meta["sources"][frag.file]["strain"]
    figs["weights"] = plot_fragment_weights(
        weights, matrix, out / "fragment_weights.png",
        f"block 1 on a test fragment: {frag.label} {strain}, {frag.record}:{frag.start}+{frag.length} "
        f"({frag.strand}), N={frag.length}, M={len(weights)} factors")

    # 5. throughput, results
    thr = report.training_throughput(results)
    total = time.perf_counter() - t_start
    summary = {
        "task": "dna-species", "classes": names, "settings": s, "seed": args.seed,
        "threads": torch.get_num_threads(), "model": {
            "name": "paramixer", "channels": cfg.channels, "num_layers": cfg.num_layers,
            "block": cfg.block, "stem": cfg.stem, "lr": cfg.lr,
            "protocol": args.protocol, "parameters": results["parameters"],
            "kmer": getattr(cfg, "kmer", 0), "rc_conjoin": getattr(cfg, "rc_conjoin", False),
            "reverse_complement": cfg.reverse_complement,
            "steps_planned": planned, "steps": results["steps"],
            "epochs_done": results["epochs_done"], "best_epoch": results["best_epoch"],
            "stopped": results["stopped"]},
        "ablation": None if ablation_results is None else {
            "mixing": False, "steps_planned": planned, "steps": ablation_results["steps"],
            "epochs_done": ablation_results["epochs_done"], "stopped": ablation_results["stopped"],
            "throughput": report.training_throughput(ablation_results)},
        "guard": {"seconds_of_steps": cfg.time_budget_s, "cut": notes},
        "training_fragments": {"resampled_every_epoch": task.meta["resample"],
                               "per_epoch": len(task.train), "epochs": cfg.epochs,
                               "read_by_the_steps": len(seen)},
        "baselines_fitted_on": (f"the {len(seen)} training fragments the models' {planned} steps "
                                f"read, all {cfg.epochs} epoch(s) together"),
        "test_accuracy": {name: per["all"]["accuracy"] for name, per in rows.items()},
        "buckets": rows, "confusion": cm.tolist(), "confusion_kmer6": cm6.tolist(),
        "baseline_l2": {k: v["l2"] for k, v in base.items()},
        "throughput": thr, "seconds": {"data": t_data, "baselines": t_base, "train": t_train,
                                       "total": total},
        "sources": task.meta["sources"], "manifests": task.meta["manifests"],
        "figures": {k: str(v) for k, v in figs.items()},
        "command": " ".join(["python -m demos.dna_species", *(argv if argv is not None else sys.argv[1:])]),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = [f"# dna-species: species of origin, held-out strains\n",
          *[f"**{note}.**\n" for note in notes],
          f"`{summary['command']}` — {total:.0f} s total, {torch.get_num_threads()} torch threads, "
          f"Paramixer {results['parameters']:,} parameters, {results['steps']} of {planned} "
          f"steps ({results['epochs_done']} epoch(s), training fragments "
          f"{'drawn afresh every epoch' if task.meta['resample'] else 'fixed'}); baselines "
          f"fitted on {summary['baselines_fitted_on']}.\n",
          "Test accuracy by fragment length (bp):\n", table, "",
          f"Training throughput: {thr['fragments_per_s']:.1f} fragments/s, "
          f"{thr['bases_per_s']:,.0f} bases/s ({thr['fragments']} fragments, "
          f"{thr['bases']:,} bases in {thr['train_time_s']:.0f} s).\n"]
    (out / "results.md").write_text("\n".join(md) + "\n")

    print(table)
    print(f"[5/5] training throughput: {thr['fragments_per_s']:.1f} fragments/s, "
          f"{thr['bases_per_s']:,.0f} bases/s over {thr['steps']} steps")
    print(f"      wrote {out / 'results.json'}, {out / 'results.md'}, "
          f"{', '.join(p.name for p in figs.values())}; checkpoint {run / 'best.pt'}")
    print(f"      total {total:.0f} s (data {t_data:.0f}, baselines {t_base:.0f}, "
          f"training+test {t_train:.0f})")
    report.shout(notes)  # again at the end, where a reader looks
    return summary


if __name__ == "__main__":
    main()
