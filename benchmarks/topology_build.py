"""Index construction time: ``edge_index(m)`` for every factor of CHORD and CDIL at N = 2^20.

Each repeat builds a fresh :class:`~topologies.Topology` (no cached views), times ``edge_index(m)`` for
all M factors and ``slot``, then drops it; the median and the minimum over repeats are reported
(the CPU may be shared, so the minimum is the better estimate of the cost itself).

    python benchmarks/topology_build.py --out benchmarks/results

writes ``topology_build.json`` and ``topology_build.md`` there.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

import topologies  # noqa: E402
from topologies import Topology  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output folder")
    parser.add_argument("--log2-n", type=int, default=20, help="N = 2**LOG2_N")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--radius", type=int, default=4, help="CDIL radius (K = 2r + 1)")
    args = parser.parse_args()
    if not 1 <= args.log2_n <= 26:
        parser.error(f"--log2-n must be in [1, 26], got {args.log2_n}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def time_build(template: Topology) -> dict:
    topo = Topology(template.name, template.num_nodes, template.offsets.clone())  # nothing cached
    start = time.perf_counter()
    tensors = [topo.edge_index(m) for m in range(topo.num_factors)]
    edge_s = time.perf_counter() - start
    start = time.perf_counter()
    topo.slot(0)
    slot_s = time.perf_counter() - start
    distinct = {t.data_ptr(): t.numel() * t.element_size() for t in tensors}
    return {"edge_index_s": edge_s, "slot_s": slot_s, "distinct_edge_tensors": len(distinct),
            "edge_index_mib": sum(distinct.values()) / 2 ** 20}


def main() -> None:
    args = parse_args()
    n = 2 ** args.log2_n
    rows = []
    for name in ("chord", "cdil"):
        template = topologies.get(name, n, radius=args.radius)
        runs = []
        for _ in range(args.repeats):
            runs.append(time_build(template))
            gc.collect()
        times = [r["edge_index_s"] for r in runs]
        rows.append({
            "protocol": name, "num_nodes": n, "num_factors": template.num_factors,
            "num_slots": template.num_slots, "edges_per_factor": n * template.num_slots,
            "edge_index_all_factors_s_median": statistics.median(times),
            "edge_index_all_factors_s_min": min(times),
            "edge_index_all_factors_s_runs": times,
            "slot_s_median": statistics.median(r["slot_s"] for r in runs),
            "distinct_edge_tensors": runs[0]["distinct_edge_tensors"],
            "edge_index_mib": runs[0]["edge_index_mib"],
        })
        print(f"{name}: N={n} M={template.num_factors} K={template.num_slots}: edge_index for all factors "
              f"median {statistics.median(times):.3f} s, min {min(times):.3f} s "
              f"({runs[0]['distinct_edge_tensors']} distinct tensors, {runs[0]['edge_index_mib']:.0f} MiB)")

    meta = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "command": "python benchmarks/topology_build.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "topology_build.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"Index construction, N = 2^{args.log2_n}: `edge_index(m)` for all M factors of a fresh topology "
        f"({args.repeats} repeats; torch {meta['torch']}, {meta['cpu_count']} CPUs, "
        f"load average after {meta['loadavg_after'][0]:.1f}).",
        "",
        "| protocol | M | K | edges / factor | all factors, median (s) | min (s) | distinct tensors | MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['protocol'].upper()} | {r['num_factors']} | {r['num_slots']} | "
                     f"{r['edges_per_factor']:,} | {r['edge_index_all_factors_s_median']:.3f} | "
                     f"{r['edge_index_all_factors_s_min']:.3f} | {r['distinct_edge_tensors']} | "
                     f"{r['edge_index_mib']:.0f} |")
    lines += ["", f"Command: `{meta['command']}`", ""]
    (args.out / "topology_build.md").write_text("\n".join(lines))
    print(args.out / "topology_build.json")
    print(args.out / "topology_build.md")


if __name__ == "__main__":
    main()
