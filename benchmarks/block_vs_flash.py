"""One Paramixer block against flash attention at the speed target's size (B = 4, N = 16384,
C = 64, fwd + bwd), the two alternating so both see the same minutes of a shared machine.

Each measurement is one ``speed_cells.py`` cell in a fresh process (one warm-up step, then the
median of ``--steps`` steps; wall and CPU seconds, peak extra memory), exactly the cells
``make bench`` runs; ``--repeats`` rounds of native then attention. The result is the ratio of the
medians over all rounds.

    python benchmarks/block_vs_flash.py --out benchmarks/results/block_vs_flash

Writes ``block_vs_flash.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import _cpu_name, read_load, run_cell  # noqa: E402

METHODS = ("native", "attention")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for block_vs_flash.json / .md")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=16384)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per cell (median)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of native then attention")
    p.add_argument("--timeout-s", type=float, default=600.0, help="limit per cell")
    return p.parse_args(argv)


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = ["# One Paramixer block against flash attention", "", f"Command: `{m['command']}`  ",
             f"Machine: {m['machine']}; B = {m['batch']}, N = {m['length']}, C = {m['channels']}, "
             f"{m['threads']} threads, fwd + bwd, median of {m['steps']} steps a cell after a "
             "warm-up, cells alternating; freed memory kept for the next step in every cell.", "",
             "| method | kernel | step s (median of cells) | CPU s | peak extra MB | each cell: s (load) |",
             "|---|---|---:|---:|---:|---|"]
    for name, row in result["methods"].items():
        cells = ", ".join(f"{c['time_s']:.2f} ({c['load_before']})" for c in row["cells"])
        lines.append(f"| {name} | {row['kernel']} | {row['time_s']:.3f} | {row['cpu_s']:.2f} | "
                     f"{row['peak_mb']:.0f} | {cells} |")
    lines += ["", f"native / attention: **{result['ratio']:.3f}** (1/{1 / result['ratio']:.1f}) by "
                  f"wall time, {result['cpu_ratio']:.3f} by CPU time."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells: dict[str, list[dict]] = {m: [] for m in METHODS}
    for r in range(args.repeats):
        for method in METHODS:
            cell = {"scenario": "block-B4", "level": "block", "method": method, "batch": args.batch,
                    "length": args.length, "channels": args.channels, "protocol": "chord",
                    "threads": args.threads, "heads": 1, "omp_wait_policy": "passive",
                    "steps": args.steps, "step_limit_s": args.timeout_s, "slow_step_s": args.timeout_s,
                    "first_step_only": False}
            load = read_load()
            done = run_cell(cell, args.timeout_s)
            if not done.get("ok"):
                raise SystemExit(f"{method} cell failed: {done.get('error')}")
            done["load_before"] = load
            cells[method].append(done)
            print(f"round {r + 1}/{args.repeats} {method:9s} {done['time_s']:.3f} s  load {load}",
                  flush=True)
    methods = {}
    for method, runs in cells.items():
        methods[method] = {
            "kernel": runs[0].get("kernel") or runs[0].get("sdpa_kernel") or "sparsemix native op",
            "time_s": statistics.median(c["time_s"] for c in runs),
            "cpu_s": statistics.median(statistics.median(c["cpu_times_s"]) for c in runs),
            "peak_mb": statistics.median(c["peak_extra_bytes"] for c in runs) / 2 ** 20,
            "cells": [{k: c[k] for k in ("time_s", "times_s", "cpu_times_s", "peak_extra_bytes",
                                         "load_before")} for c in runs]}
    result = {"meta": {"command": "python benchmarks/block_vs_flash.py " + " ".join(
                           sys.argv[1:] if argv is None else argv),
                       "machine": f"{_cpu_name()}, {os.cpu_count()} cores, Python "
                                  f"{platform.python_version()}",
                       **{k: v for k, v in vars(args).items() if k != "out"}},
              "methods": methods,
              "ratio": methods["native"]["time_s"] / methods["attention"]["time_s"],
              "cpu_ratio": methods["native"]["cpu_s"] / methods["attention"]["cpu_s"]}
    (out / "block_vs_flash.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "block_vs_flash.md").write_text(markdown(result))
    print(f"native / attention: {result['ratio']:.3f} (wall), {result['cpu_ratio']:.3f} (CPU)")
    return result


if __name__ == "__main__":
    main()
