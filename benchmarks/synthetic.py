"""The paper's synthetic tasks: error % by sequence length for Paramixer and the dense Transformer.

Trains Paramixer (CHORD), Paramixer (CDIL) and a dense Transformer (SDPA attention over the
sequence axis) on the Adding problem and Temporal Order at N = 2^7 ... 2^13, every model with the
same data in the same order and the same number of optimiser steps (``--epochs`` over
``--train-size``; ``--budget-s`` caps a run's training time, and the table shows the steps each run
took), each run chosen on validation and tested once. Writes ``<out>/<name>.json``, ``.md`` and ``.png``.

Default pooling is ``mean``. With the paper's ``flatten`` head, Adding is solvable with no mixing
at all (a per-position nonlinearity and a position-specific linear head) and Temporal Order can read
positions from the head weights. Mean pooling removes the position-specific head. Both stay
solvable without mixing in principle even then (Adding: a per-position x·marker summed by the pool;
Order, with learned positions: f(X, p) = p, f(Y, p) = -p sums to the sign of p1 - p2), but only
diluted by 1/N; counting symbols alone cannot tell XY from YX. In practice the mixing is what makes
the models learn at these budgets (docs/learning.md: with the mixing off the encoder stays near
60 % error on Order and 83 % on Adding at N = 2^7).
``--pooling flatten`` reproduces the paper's head.

Examples::

    python benchmarks/synthetic.py                                   # default table, CPU
    python benchmarks/synthetic.py --lengths 7 8 9 --epochs 5 --budget-s 0 --threads 1  # reduced
    python benchmarks/synthetic.py --device cuda --lengths 7 8 9 10 11 12 13 14 15 \\
        --train-size 100000 --epochs 50 --budget-s 0                  # the paper's scale, GPU
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparsemix.train import TrainConfig, train  # noqa: E402
from topologies.drawing import pyplot  # noqa: E402

MODELS = {  # name -> TrainConfig overrides
    "paramixer-chord": {"model": "paramixer", "protocol": "chord"},
    "paramixer-cdil": {"model": "paramixer", "protocol": "cdil"},
    "transformer": {"model": "transformer"},
}
# The model and recipe these tables were made with (before `sparsemix train` defaulted to the encoder
# model and AdamW; docs/learning.md): the paper block, Adam, no weight decay, N(0, 1) positions.
PAPER_RECIPE = {"block": "paper", "optimizer": "adam", "weight_decay": 0.0, "warmup_steps": 0,
                "position_init": "normal"}
TASKS = ("adding", "order")
# Paper's Adding figure (method.md §10), error %, read to about ±0.05.
PAPER_ADDING = {7: (0.00, 0.00), 8: (0.00, 0.00), 9: (0.00, 0.00), 10: (0.06, 0.00),
                11: (84.9, 0.00), 12: (86.8, 0.00), 13: (86.8, 0.00), 14: (86.8, 0.00),
                15: (86.8, 0.00)}  # (Transformer, Paramixer)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[7, 8, 9, 10, 11, 12, 13],
                   help="log2 of the sequence lengths")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--pooling", default="mean", choices=["mean", "cls", "flatten"])
    p.add_argument("--train-size", type=int, default=4096)
    p.add_argument("--val-size", type=int, default=200)
    p.add_argument("--test-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=6,
                   help="epochs per run: every model sees the same samples in the same order")
    p.add_argument("--budget-s", type=float, default=45.0,
                   help="cap on the training time of one run in seconds (0: no cap); a capped "
                        "run shows fewer steps in the table")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2,
                   help="Adam learning rate (1e-2 learned much faster than 2e-3 for every model "
                        "in a 320-step check at N = 128)")
    p.add_argument("--scheduler", default="cosine", choices=["constant", "cosine"])
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=1, help="blocks (the paper: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (CPU); use 1 on a shared machine, where idle "
                        "OpenMP threads spin")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--name", default="synthetic", help="output file prefix")
    p.add_argument("--runs-dir", default=None,
                   help="where the per-run folders go (default: <out>/<name>-runs, deleted unless "
                        "--keep-runs)")
    p.add_argument("--keep-runs", action="store_true")
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite <name>.md and .png from an existing <name>.json "
                        "(e.g. after stopping a long run)")
    args = p.parse_args(argv)
    if any(k < 1 for k in args.lengths):
        p.error("--lengths are exponents >= 1")
    return args


def run_one(args, task: str, k: int, model: str, runs: Path) -> dict:
    out = runs / f"{task}-{2 ** k}-{model}"
    if out.exists():
        shutil.rmtree(out)
    cfg = TrainConfig(task=task, out=str(out), length=2 ** k, epochs=args.epochs, seed=args.seed,
                      device=args.device, train_size=args.train_size, val_size=args.val_size,
                      test_size=args.test_size, batch_size=args.batch_size, lr=args.lr,
                      scheduler=args.scheduler,
                      channels=args.channels, num_layers=args.num_layers, pooling=args.pooling,
                      time_budget_s=args.budget_s or None, quiet=True,
                      **{**PAPER_RECIPE, **MODELS[model]})
    t0 = time.perf_counter()
    res = train(cfg)
    test = res["test"]
    return {"task": task, "length": 2 ** k, "log2_length": k, "model": model,
            "error_pct": test["error_pct"], "accuracy": test["accuracy"],
            "mse": test.get("mse"), "roc_auc": test.get("roc_auc"),
            "val_error_pct": res["val"]["error_pct"], "epochs": res["epochs_done"],
            "steps": res["steps"], "train_time_s": res["train_time_s"],
            "wall_s": round(time.perf_counter() - t0, 1), "stopped": res["stopped"],
            "best_epoch": res["best_epoch"], "parameters": res["parameters"]}


def markdown(rows: list[dict], args, meta: dict) -> str:
    lines = [f"# Synthetic tasks: test error % by length ({args.pooling} pooling)", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Budget per run: {args.epochs} epochs"
             + (f", capped at {args.budget_s:g} s of training" if args.budget_s else "") + ", "
             f"{args.train_size} training / {args.val_size} validation / {args.test_size} test "
             f"sequences, batch {args.batch_size}, Adam lr {args.lr:g} ({args.scheduler}), "
             f"C = {args.channels}, "
             f"{args.num_layers} layer{'s' if args.num_layers != 1 else ''}; model chosen on "
             f"validation, tested once.  ",
             f"Total wall time: {meta['wall_s'] / 60:.1f} min.", ""]
    for task in args.tasks:
        title = ("Adding problem: error % (|ŷ − y| ≥ 0.04); paper figure values beside ours"
                 if task == "adding" else "Temporal Order: error % (100 − 4-class accuracy)")
        lines += [f"## {title}", ""]
        head = ["N"] + args.models + (["paper Transformer", "paper Paramixer"]
                                      if task == "adding" else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for k in args.lengths:
            cells = [f"2^{k}"]
            for model in args.models:
                r = next((r for r in rows if r["task"] == task and r["log2_length"] == k
                          and r["model"] == model), None)
                cells.append("–" if r is None else f"{r['error_pct']:.2f} ({r['steps']} st)")
            if task == "adding":
                paper = PAPER_ADDING.get(k)
                cells += [f"{paper[0]:.2f}", f"{paper[1]:.2f}"] if paper else ["–", "–"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["(n st) = optimiser steps taken. Paper values: method.md §10 "
              "(flatten head, 100k training sequences, 50 epochs; its Transformer baseline "
              "attended over the batch axis).", ""]
    return "\n".join(lines)


def plot(rows: list[dict], args, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(args.tasks), figsize=(5.5 * len(args.tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], args.tasks):
        for model in args.models:
            pts = sorted((r["log2_length"], r["error_pct"]) for r in rows
                         if r["task"] == task and r["model"] == model)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=model)
        if task == "adding":
            ks = [k for k in args.lengths if k in PAPER_ADDING]
            ax.plot(ks, [PAPER_ADDING[k][1] for k in ks], "k--", alpha=0.5,
                    label="paper Paramixer (flatten)")
        ax.set_xlabel("log2 N")
        ax.set_ylabel("test error %")
        ax.set_title(f"{task} ({args.pooling} pooling)")
        ax.set_ylim(-2, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs_dir) if args.runs_dir else out / f"{args.name}-runs"
    meta = {"command": "python benchmarks/synthetic.py " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"torch {torch.__version__}, device {args.device}",
            "args": vars(args)}
    if args.render_only:
        saved = json.loads((out / f"{args.name}.json").read_text())
        meta, rows = saved["meta"], saved["rows"]
        args = argparse.Namespace(**{**meta["args"], "render_only": True})
        (out / f"{args.name}.md").write_text(markdown(rows, args, meta))
        plot(rows, args, out / f"{args.name}.png")
        return 0
    rows: list[dict] = []
    t0 = time.perf_counter()
    for task in args.tasks:
        for k in args.lengths:
            for model in args.models:
                row = run_one(args, task, k, model, runs)
                rows.append(row)
                print(f"{task:7s} N=2^{k:<2d} {model:16s} error {row['error_pct']:6.2f} %  "
                      f"({row['epochs']} epochs, {row['steps']} steps, {row['wall_s']:.0f} s)",
                      flush=True)
                meta["wall_s"] = time.perf_counter() - t0
                (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                                  indent=2) + "\n")
    meta["wall_s"] = time.perf_counter() - t0
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(rows, args, meta))
    plot(rows, args, out / f"{args.name}.png")
    if not args.keep_runs and not args.runs_dir:
        shutil.rmtree(runs, ignore_errors=True)
    print(f"wrote {out / args.name}.json, .md, .png ({meta['wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
