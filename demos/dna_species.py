"""Species of origin of a bacterial DNA fragment, on real genomes from Debian packages.

Five species (E. coli, K. pneumoniae, V. cholerae, S. aureus, H. pylori), 3-5 strains each;
whole strains are held out for validation and test, so the model must recognise a species in a
strain it has never seen. Fragments are 256 bp to 4 kb (16 kb with ``--full``), drawn
log-uniformly, on a random strand. Paramixer (the encoder model with a local convolution stem,
which sees k-mer-like features) trains in variable-length mode (no padding: every fragment is
mixed by its own topology) and is reported per length bucket next to the same model with mixing
switched off (identity factors: what the long-range mixing adds) and GC-content and 4-/6-mer
logistic-regression baselines, all fitted in the same run on the same splits.

Steps: fetch the pinned packages into the cache (``apt-get download``; ~30 MB, once) -> split
strains and sample fragments (manifests) -> baselines -> train Paramixer (5 epochs, capped by the
time budget), then the mixing-off model for at least as many steps -> test -> tables, figures,
JSON and Markdown in ``--out``.

    python -m demos.dna_species --out runs/demo-dna-species            # <= 10 min on 2 CPU cores
    python -m demos.dna_species --out runs/dna-species-full --full      # longer, up to 16 kb
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from sparsemix.data.fetch import FetchError, cache_dir
from sparsemix.tasks import build_task
from sparsemix.tools import fragment_weights, plot_fragment_weights
from sparsemix.train import TrainConfig, load_model, predict, train

from . import _report as report

# Default run: sized to finish within 10 minutes on 2 CPU cores, fetching included.
QUICK = dict(length=4096, min_length=256, train_size=2000, val_size=500, test_size=1000,
             epochs=5, budget_s=600.0, reserve_s=100.0)
# --full: all lengths up to 16 kb, five times the data, no time budget.
FULL = dict(length=16384, min_length=256, train_size=10000, val_size=1000, test_size=2500,
            epochs=10, budget_s=None, reserve_s=0.0)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/dna-species", help="output folder (replaced if it holds an earlier run of this demo)")
    p.add_argument("--full", action="store_true", help="lengths up to 16 kb, 10k training fragments, 10 epochs, no time budget")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock budget of the whole demo in seconds (default 600; none with --full); "
                        "training gets what is left after data and baselines, minus a reserve for testing")
    p.add_argument("--epochs", type=int, default=None)
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
    p.add_argument("--stem", default="conv", choices=("conv", "none"),
                   help="local convolution over the embedded bases (default conv: k-mer-like features)")
    p.add_argument("--no-ablation", action="store_true",
                   help="skip the mixing-off model (then the whole training budget goes to Paramixer)")
    p.add_argument("--protocol", default="chord", choices=("chord", "cdil"))
    p.add_argument("--reverse-complement", action="store_true", help="reverse-complement augmentation in training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1: on a shared 2-core machine a second thread made "
                        "each training step 3-20x slower; on an idle machine try 2)")
    return p.parse_args(argv)


def _settings(args: argparse.Namespace) -> dict:
    s = dict(FULL if args.full else QUICK)
    for key in ("length", "min_length", "train_size", "val_size", "test_size", "epochs"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.budget_s is not None:
        s["budget_s"] = args.budget_s
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
        task="dna-species", out=str(run), length=s["length"], epochs=s["epochs"], seed=args.seed,
        protocol=args.protocol, device=args.device, train_size=s["train_size"],
        val_size=s["val_size"], test_size=s["test_size"], batch_size=args.batch_size,
        channels=args.channels, positional=False, pooling="mean", stem=args.stem,
        reverse_complement=args.reverse_complement, extra={"min_length": s["min_length"]}, **given)
    # the ablation: the same model, data, seed and steps budget with identity factors
    ablation = None if args.no_ablation else TrainConfig(
        **{**cfg.to_dict(), "out": str(out / "train-no-mixing"), "mixing": False})

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

    # 2. baselines on exactly these splits
    print("[2/5] baselines: GC content, 4-mer and 6-mer logistic regression", flush=True)
    t0 = time.perf_counter()
    base = report.baselines_for(task, ks=(4, 6))
    for name, r in base.items():
        print(f"      {name:6s} test accuracy {r['buckets']['all']['accuracy']:.3f}")
    t_base = time.perf_counter() - t0

    # 3. train Paramixer, capped by the budget, then the ablation for as many steps (a step-matched
    #    ablation: without the factors a step is several times cheaper, so equal time would compare
    #    training lengths, not models)
    what = (f"Paramixer ({cfg.channels} channels, {cfg.num_layers} {cfg.block} layer(s), "
            f"{cfg.protocol}, stem {cfg.stem})")
    share = 0.8 if ablation is not None else 1.0  # the ablation's epochs take a fraction of the time
    if s["budget_s"] is not None:
        left = s["budget_s"] - (time.perf_counter() - t_start) - s["reserve_s"]
        cfg.time_budget_s = max(30.0, share * left)
        print(f"[3/5] training {what} for {cfg.epochs} epochs within {cfg.time_budget_s:.0f} s",
              flush=True)
    else:
        print(f"[3/5] training {what} for {cfg.epochs} epochs", flush=True)
    t0 = time.perf_counter()
    results = train(cfg)
    ablation_results = None
    if ablation is not None:
        # at least Paramixer's steps: a budget-cut last epoch counts whole, so the ablation is
        # never the one with less training
        steps_per_epoch = math.ceil(len(task.train) / cfg.batch_size)
        ablation.epochs = max(1, math.ceil(results["steps"] / steps_per_epoch))
        print(f"      the same with mixing off, {ablation.epochs} epoch(s)", flush=True)
        ablation_results = train(ablation)
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
            "steps": results["steps"], "epochs_done": results["epochs_done"],
            "best_epoch": results["best_epoch"], "stopped": results["stopped"]},
        "ablation": None if ablation_results is None else {
            "mixing": False, "steps": ablation_results["steps"],
            "epochs_done": ablation_results["epochs_done"], "stopped": ablation_results["stopped"],
            "throughput": report.training_throughput(ablation_results)},
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
          f"`{summary['command']}` — {total:.0f} s total, {torch.get_num_threads()} torch threads, "
          f"Paramixer {results['parameters']:,} parameters, {results['epochs_done']} epoch(s)"
          f"{' (stopped by the time budget)' if results['stopped'] else ''}.\n",
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
    return summary


if __name__ == "__main__":
    main()
