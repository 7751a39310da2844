"""Which parts of the encoder model make it learn: one change at a time (Temporal Order or Adding).

Runs variants of the improved Paramixer model (``block="encoder"``, with the task's default
options as in ``learning.py``), each with one part switched back (no mixing LayerNorm, the paper
block's factor init, N(0, 1) positions, positions on for Adding, another initial mixing gain,
mixing off, ...), plus
the paper block and the Transformer, through the same loop as ``benchmarks/learning.py`` (same data,
same recipe, same validation set), for several seeds, with a fixed step budget and no time cap.
Writes ``<out>/ablation.json`` and ``ablation.md``.

    python benchmarks/learning_ablation.py                 # N = 2^7, 400 steps, seeds 0 1 (~10 min)
    python benchmarks/learning_ablation.py --task adding --variants "encoder (default)" \
        "positions on" "mix gain 0.3" "mix gain 1" "mixing off" --out benchmarks/results/learning/ablation-adding
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import learning  # noqa: E402

ENCODER = learning.MODELS["paramixer-encoder"][1]
VARIANTS: dict[str, tuple[str, dict]] = {
    "encoder (default)": ("paramixer", dict(ENCODER)),
    "no LN_mix": ("paramixer", {**ENCODER, "mix_norm": False}),
    "stable factor init": ("paramixer", {**ENCODER, "mix_init": "stable"}),
    "N(0,1) positions": ("paramixer", {**ENCODER, "position_init": "normal"}),
    "mixing off": ("paramixer", {**ENCODER, "mixing": False}),
    "wrap gate": ("paramixer", {**ENCODER, "wrap_gate": True}),
    "1 layer": ("paramixer", {**ENCODER, "num_layers": 1}),
    "mix gain 0.1": ("paramixer", {**ENCODER, "mix_gain": 0.1}),
    "mix gain 0.3": ("paramixer", {**ENCODER, "mix_gain": 0.3}),
    "mix gain 1": ("paramixer", {**ENCODER, "mix_gain": 1.0}),
    "positions on": ("paramixer", {**ENCODER, "positional": True}),
    "paper block": learning.MODELS["paramixer-paper"],
    "transformer": learning.MODELS["transformer"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[7], help="log2 N (default: 7)")
    p.add_argument("--task", default="order", choices=learning.TASKS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default=str(learning.REPO / "benchmarks" / "results" / "learning"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    learning.MODELS.update(VARIANTS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_args = learning.parse_args(["--max-steps", str(args.steps), "--budget-s", "0",
                                    "--lr", str(args.lr)])
    rows, t0 = [], time.perf_counter()
    for k in args.lengths:
        for name in args.variants:
            for seed in args.seeds:
                run_args.seed = seed
                r = learning.run_one(run_args, args.task, k, name)
                r["seed"] = seed
                rows.append(r)
                print(f"N=2^{k} {name:20s} seed {seed}: "
                      + (f"solved at {r['solved_step']}" if r["solved_step"] else
                         f"{r['final_error_pct']:.1f} % after {r['steps']}"), flush=True)
                (out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    title = "Temporal Order" if args.task == "order" else "Adding"
    lines = [f"# Encoder ablation: {title}, {args.steps} steps, lr {args.lr:g}, seeds "
             f"{args.seeds} ({(time.perf_counter() - t0) / 60:.1f} min)", "",
             "Command: `python benchmarks/learning_ablation.py " + shlex.join(argv or sys.argv[1:]) + "`",
             "", "| N | variant | steps to solve (per seed) | error % at the end (per seed) | median end error % |",
             "|---|---|---|---|---|"]
    for k in args.lengths:
        for name in args.variants:
            rs = [r for r in rows if r["log2_length"] == k and r["model"] == name]
            solved = ", ".join(str(r["solved_step"] or "–") for r in rs)
            errs = [r["final_error_pct"] for r in rs]
            lines.append(f"| 2^{k} | {name} | {solved} | {', '.join(f'{e:.1f}' for e in errs)} "
                         f"| {statistics.median(errs):.1f} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/ablation.json, ablation.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
