"""The native slot-mix ops alone: one call of the forward, grad_v and grad_w at the training step's
shape (B = 32, N = 1024, C = 36 = the averaged mixing's C + H, K = 11) and the one-block target's
(B = 4, N = 16384, C = 64, K = 15), 1 thread, best of ``--reps`` calls (inputs in cache: the
kernel's own speed, not the memory system's) in each of ``--rounds`` processes per build, the
builds alternating.

Each build runs in its own process: this checkout's loops as the CPU picks them (AVX2 + FMA where
available) and forced to the baseline ISA (``SPARSEMIX_NATIVE_ISA=baseline``); ``--baseline REV``
adds a revision's op in a ``git worktree`` (built there when its kernel source differs; e.g. the
single-loop kernel before 2026-12-07).

    python benchmarks/native_kernel.py --out benchmarks/results/native_kernel --baseline 8f7a0c1

Writes ``native_kernel.json`` and ``.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = ((32, 1024, 36, 11), (4, 16384, 64, 15))

CHILD = r"""
import json, time, torch
torch.set_num_threads(1)
import sparsemix.kernels.native as native
ops = torch.ops.sparsemix
isa = native.native_isa() if hasattr(native, "native_isa") else "single loop (SSE2)"
out = {"isa": isa, "shapes": []}
for b, n, c, k in SHAPES:
    offsets = torch.tensor([0] + [2 ** i for i in range(k - 1)])
    i = torch.arange(n)[:, None]
    src, inv = (i + offsets) % n, (i - offsets) % n
    g = torch.Generator().manual_seed(0)
    v, w, grad = (torch.randn(b, n, x, generator=g) for x in (c, k, c))
    calls = {"forward": lambda: ops.slot_mix(v, w, src, inv),
             "grad_v": lambda: ops.slot_mix_grad_v(grad, w, inv),
             "grad_w": lambda: ops.slot_mix_grad_w(grad, v, src, b)}
    row = {"shape": [b, n, c, k]}
    for name, fn in calls.items():
        fn()
        best = float("inf")
        for _ in range(REPS):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        row[name + "_ms"] = best * 1e3
    out["shapes"].append(row)
print("RESULT " + json.dumps(out))
"""


def _run(code_dir: Path, reps: int, isa: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_dir), "OMP_NUM_THREADS": "1"}
    env.pop("SPARSEMIX_NATIVE_ISA", None)
    if isa:
        env["SPARSEMIX_NATIVE_ISA"] = isa
    child = f"SHAPES = {SHAPES!r}\nREPS = {reps}\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", child], cwd=code_dir, env=env, capture_output=True,
                          text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"the kernel timing in {code_dir} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def _best(old: dict | None, new: dict) -> dict:
    """Per op and shape, the faster of two rounds."""
    if old is None:
        return new
    for a, b in zip(old["shapes"], new["shapes"]):
        for key in ("forward_ms", "grad_v_ms", "grad_w_ms"):
            a[key] = min(a[key], b[key])
    return old


def markdown(result: dict) -> str:
    lines = ["# The native slot-mix ops, one call each", "", f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; 1 thread, best of {result['reps']} calls in each of "
             f"{result['rounds']} processes per build (builds alternating), inputs in cache.", "",
             "| build | B, N, C, K | forward ms | grad_v ms | grad_w ms |", "|---|---|---:|---:|---:|"]
    for name, run in result["builds"].items():
        for row in run["shapes"]:
            lines.append(f"| {name} ({run['isa']}) | {', '.join(map(str, row['shape']))} | "
                         f"{row['forward_ms']:.2f} | {row['grad_v_ms']:.2f} | {row['grad_w_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for native_kernel.json / .md")
    p.add_argument("--baseline", default=None, help="also time this revision's op (in a worktree)")
    p.add_argument("--reps", type=int, default=40, help="calls per op (the best counts)")
    p.add_argument("--rounds", type=int, default=3, help="processes per build, alternating")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from dna_throughput import baseline_checkout  # noqa: E402
    from train_step import cpu_model  # noqa: E402

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        runs = {"this checkout": (REPO, None), "this checkout, baseline ISA": (REPO, "baseline")}
        if args.baseline:
            runs[args.baseline] = (stack.enter_context(
                baseline_checkout(args.baseline, Path(tmp) / "baseline")), None)
        builds: dict[str, dict] = {}
        for _ in range(args.rounds):  # builds alternate: a slow minute hits them all
            for name, (code_dir, isa) in runs.items():
                builds[name] = _best(builds.get(name), _run(code_dir, args.reps, isa))
    result = {"command": "python benchmarks/native_kernel.py " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "machine": f"{cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
              "reps": args.reps, "rounds": args.rounds, "builds": builds}
    (out / "native_kernel.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "native_kernel.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
