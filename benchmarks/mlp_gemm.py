"""How close the stacked weight MLPs of a Paramixer block come to this machine's sgemm peak.

Measures, in one run and with the same thread count:

1. the sgemm peak: a large square fp32 ``torch.mm`` (GFLOP/s = 2 n^3 / time);
2. :func:`sparsemix.nn.stacked_weights` for M factors on x [B, N, C] (one GEMM for every first layer,
   GELU, one ``torch.baddbmm`` for every second layer, chunked over rows), the same unchunked (side by
   side), and its two GEMMs alone (unchunked);
3. the floor of the block: the time its GEMM FLOPs would take at the measured peak.

Times are the minimum over repeats (the CPU may be shared); CPU time is reported beside wall time,
and the load average before and after.

    python benchmarks/mlp_gemm.py --out benchmarks/results

writes ``mlp_gemm.json`` and ``mlp_gemm.md`` there and prints the JSON and a Markdown line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import topologies  # noqa: E402
from sparsemix.nn import SparseFactorConv, stacked_weights  # noqa: E402
from sparsemix.nn.stacked_weights import _unchunked  # noqa: E402  (the same GEMMs, not chunked)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--peak-size", type=int, default=2048, help="n of the n x n sgemm")
    parser.add_argument("--length", type=int, default=16384, help="N")
    parser.add_argument("--factors", type=int, default=14, help="M")
    parser.add_argument("--channels", type=int, default=64, help="C = F = h")
    parser.add_argument("--batch", type=int, default=4, help="B")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in ("threads", "peak_size", "length", "factors", "channels", "batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def best_time(fn, repeats: int) -> tuple[float, float]:
    """(min wall seconds, CPU seconds of that same repeat) over ``repeats`` calls after one warm-up."""
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = min(best, (wall, cpu))
    return best


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()

    n = args.peak_size
    a, b = torch.randn(n, n), torch.randn(n, n)
    peak_wall, peak_cpu = best_time(lambda: torch.mm(a, b), args.repeats)
    peak = 2 * n ** 3 / peak_wall / 1e9

    c, m = args.channels, args.factors
    k = topologies.chord(2 ** m).num_slots  # CHORD at depth M: K = M + 1
    factors = [SparseFactorConv(c, k, hidden_channels=c) for _ in range(m)]
    x = torch.randn(args.batch, args.length, c)
    rows = args.batch * args.length
    flops_first = 2 * rows * c * (m * c)  # [R, C] x [C, M*h]
    flops_second = 2 * rows * c * k * m  # M x ([R, h] x [h, K])
    flops = flops_first + flops_second

    with torch.no_grad():
        block_wall, block_cpu = best_time(lambda: stacked_weights(factors, x), args.repeats)
        w1 = torch.cat([f.weight_layers[0].weight for f in factors])
        b1 = torch.cat([f.weight_layers[0].bias for f in factors])
        w2s = torch.stack([f.weight_layers[1].weight for f in factors]).transpose(1, 2)
        b2s = torch.stack([f.weight_layers[1].bias for f in factors]).unsqueeze(1)
        x2 = x.reshape(rows, c)
        plain_wall, plain_cpu = best_time(lambda: _unchunked(x2, w1, b1, w2s, b2s, m, c), args.repeats)
        first_wall, _ = best_time(lambda: F.linear(x, w1, b1), args.repeats)
        hidden = torch.randn(m, rows, c)
        w2 = torch.randn(m, c, k)
        b2 = torch.randn(m, 1, k)
        second_wall, _ = best_time(lambda: torch.baddbmm(b2, hidden, w2), args.repeats)
    # Training: forward + backward (x and every parameter), chunked (backward recomputes the hidden
    # activations) vs the plain form (autograd saves them).
    xg = x.clone().requires_grad_()
    params = [xg] + [p for f in factors for p in f.parameters()]

    def train_chunked():
        outs = stacked_weights(factors, xg)
        torch.autograd.grad(outs, params, [torch.ones_like(o) for o in outs])

    def train_plain():
        w1p = torch.cat([f.weight_layers[0].weight for f in factors])
        b1p = torch.cat([f.weight_layers[0].bias for f in factors])
        w2p = torch.stack([f.weight_layers[1].weight for f in factors]).transpose(1, 2)
        b2p = torch.stack([f.weight_layers[1].bias for f in factors]).unsqueeze(1)
        out = _unchunked(xg.reshape(rows, c), w1p, b1p, w2p, b2p, m, c)
        torch.autograd.grad(out, params, torch.ones_like(out))

    train_wall, train_cpu = best_time(train_chunked, args.repeats)
    train_plain_wall, train_plain_cpu = best_time(train_plain, args.repeats)

    result = {
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU, no GPU",
        "torch": torch.__version__, "threads": args.threads,
        "load_avg_before": [round(l, 2) for l in load_before],
        "load_avg_after": [round(l, 2) for l in os.getloadavg()],
        "sgemm": {"n": n, "wall_s": peak_wall, "cpu_s": peak_cpu, "gflops": peak},
        "shape": {"B": args.batch, "N": args.length, "M": m, "C": c, "h": c, "K": k},
        "stacked_weights": {"wall_s": block_wall, "cpu_s": block_cpu, "gflop": flops / 1e9,
                            "gflops": flops / block_wall / 1e9,
                            "fraction_of_peak": flops / block_wall / 1e9 / peak},
        "stacked_weights_unchunked": {"wall_s": plain_wall, "cpu_s": plain_cpu,
                                      "gflops": flops / plain_wall / 1e9,
                                      "fraction_of_peak": flops / plain_wall / 1e9 / peak},
        "train_step_chunked": {"wall_s": train_wall, "cpu_s": train_cpu},
        "train_step_unchunked": {"wall_s": train_plain_wall, "cpu_s": train_plain_cpu},
        "first_layer_gemm": {"wall_s": first_wall, "gflops": flops_first / first_wall / 1e9,
                             "fraction_of_peak": flops_first / first_wall / 1e9 / peak},
        "second_layer_baddbmm": {"wall_s": second_wall, "gflops": flops_second / second_wall / 1e9,
                                 "fraction_of_peak": flops_second / second_wall / 1e9 / peak},
        "floor_s": flops / (peak * 1e9),
        "command": "python benchmarks/mlp_gemm.py " + " ".join(sys.argv[1:]),
    }
    s = result["stacked_weights"]
    line = (f"| stacked weight MLPs, B={args.batch} N={args.length} M={m} C=h={c} K={k} | "
            f"{s['gflops']:.1f} GFLOP/s = {100 * s['fraction_of_peak']:.0f}% of sgemm peak "
            f"{peak:.1f} GFLOP/s ({args.threads} threads) | wall {block_wall * 1e3:.0f} ms, "
            f"CPU {block_cpu * 1e3:.0f} ms, floor {result['floor_s'] * 1e3:.0f} ms | "
            f"unchunked: {plain_wall * 1e3:.0f} ms = "
            f"{100 * result['stacked_weights_unchunked']['fraction_of_peak']:.0f}%; alone, unchunked: first GEMM "
            f"{100 * result['first_layer_gemm']['fraction_of_peak']:.0f}%, "
            f"baddbmm {100 * result['second_layer_baddbmm']['fraction_of_peak']:.0f}% | "
            f"load avg {load_before[0]:.2f} |\n"
            f"| same, forward + backward | | wall {train_wall * 1e3:.0f} ms, CPU {train_cpu * 1e3:.0f} ms | "
            f"unchunked: wall {train_plain_wall * 1e3:.0f} ms, CPU {train_plain_cpu * 1e3:.0f} ms | "
            f"load avg {load_before[0]:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mlp_gemm.json").write_text(json.dumps(result, indent=2) + "\n")
    header = ("| case | throughput | time | side by side | load |\n|---|---|---|---|---|\n")
    (args.out / "mlp_gemm.md").write_text(
        f"Measured by `{result['command']}` on {result['machine']} (torch {torch.__version__}).\n\n"
        + header + line + "\n")
    print(json.dumps(result, indent=2))
    print(line)


if __name__ == "__main__":
    main()
