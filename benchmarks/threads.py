"""1 against 2 threads, and OpenMP's wait policy, for one training step and for single operations.

Every configuration (threads, ``OMP_WAIT_POLICY``) runs in fresh processes (the policy is read when
OpenMP loads, with torch): ``benchmarks/train_step.py`` for one training step of the default model (shared
weight MLP) at N = 1024, B = 32, and a loop of single operations of the model's sizes (a GEMM, a
GELU, a tiny add: the last is all parallel-region overhead). Wall and process CPU time, with
/proc/loadavg beside each figure (the machine may be shared). Writes threads.json and threads.md.

    python benchmarks/threads.py --out benchmarks/results/train_step/threads
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CONFIGS = ((1, None), (2, None), (2, "PASSIVE"), (2, "ACTIVE"))


def ops(threads: int) -> list[dict]:
    """Milliseconds per call (wall and CPU) of single operations at the default model's sizes."""
    torch.set_num_threads(threads)
    x, w, small = torch.randn(32768, 32), torch.randn(32, 32), torch.randn(4096)
    out = []
    for name, fn in (("x @ W, [32k, 32] x [32, 32]", lambda: x @ w),
                     ("GELU, [32k, 32]", lambda: torch.nn.functional.gelu(x)),
                     ("add, [4096] (a tiny region)", lambda: small + small)):
        fn()
        reps = 200
        t, c = time.perf_counter(), time.process_time()
        for _ in range(reps):
            fn()
        out.append({"op": name, "wall_ms": (time.perf_counter() - t) / reps * 1e3,
                    "cpu_ms": (time.process_time() - c) / reps * 1e3,
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3]})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--ops-only", type=int, default=None, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    if args.ops_only is not None:
        print(json.dumps(ops(args.ops_only)))
        return {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for threads, policy in CONFIGS:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        env["OMP_NUM_THREADS"] = str(threads)
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        tag = f"t{threads}-{policy or 'default'}"
        subprocess.run([sys.executable, str(HERE / "train_step.py"), "--out", str(out / tag),
                        "--lengths", "1024", "--models", "paramixer", "--modes", "fixed",
                        "--weight-mlp", "shared", "--threads", str(threads), "--steps",
                        str(args.steps), "--no-breakdown"], env=env, check=True,
                       capture_output=True)
        cell = json.loads((out / tag / "train_step.json").read_text())["cells"][0]
        single = json.loads(subprocess.run(
            [sys.executable, __file__, "--out", str(out), "--ops-only", str(threads)], env=env,
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        rows.append({"threads": threads, "omp_wait_policy": policy or "(unset)",
                     "step_s": cell["step_s"], "cpu_s": cell["cpu_s"],
                     "steps_s": cell["steps_s"], "tokens_per_s": cell["tokens_per_s"],
                     "loadavg": [cell["loadavg_before"], cell["loadavg_after"]], "ops": single})
        print(f"{tag}: step {cell['step_s']:.3f} s (CPU {cell['cpu_s']:.3f} s), load "
              f"{cell['loadavg_after']}", flush=True)
    result = {"command": "python benchmarks/threads.py " + " ".join(sys.argv[1:] if argv is None
                                                                    else argv), "rows": rows}
    (out / "threads.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# 1 against 2 threads, and OpenMP's wait policy", "", f"Command: `{result['command']}`",
             "", "One training step (default model, shared weight MLP, N = 1024, B = 32), median of "
             f"{args.steps}; wall and process CPU seconds (CPU counts every thread).", "",
             "| threads | OMP_WAIT_POLICY | step s | CPU s | slowest step s | load before / after |",
             "|---:|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['omp_wait_policy']} | {r['step_s']:.3f} | "
                     f"{r['cpu_s']:.3f} | {max(r['steps_s']):.3f} | {r['loadavg'][0][0]} / "
                     f"{r['loadavg'][1][0]} |")
    lines += ["", "Single operations, ms per call (wall / CPU):", "",
              "| threads | OMP_WAIT_POLICY | " + " | ".join(o["op"] for o in rows[0]["ops"]) + " |",
              "|---:|---|" + "---:|" * len(rows[0]["ops"])]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['omp_wait_policy']} | " + " | ".join(
            f"{o['wall_ms']:.3f} / {o['cpu_ms']:.3f}" for o in r["ops"]) + " |")
    (out / "threads.md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
