"""Turn the cells of ``speed.py`` into speed.json, speed.md (tables + targets) and speed.png (log-log)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Optional

GB = 1e9
MB = 1e6
STYLE = {"fused": ("tab:blue", "o-"), "fused-compiled": ("tab:cyan", "o--"), "fused-ckpt": ("tab:purple", "s-"),
         "sparse": ("tab:olive", "^-"), "message": ("tab:green", "v-"), "official": ("tab:red", "D-"),
         "attention": ("tab:orange", "x-"), "native": ("black", "*-")}


def _cells(results: list[dict], scenario: str, method: str) -> dict[int, dict]:
    return {r["length"]: r for r in results
            if r["scenario"] == scenario and r["method"] == method and r.get("ok")}


def _get(results, scenario, method, n) -> Optional[dict]:
    return _cells(results, scenario, method).get(n)


def _fmt_n(n: int) -> str:
    return f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)


def targets(meta: dict, results: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured figure; never adjusted to pass."""
    names = {s["name"]: s for s in meta["scenarios"]}
    block = next((s for s in names if s.startswith("block-B") and not s.startswith("block-B1-")), None)
    block1 = next((s for s in names if s.startswith("block-B1-")), None)
    factor = next((s for s in names if s.startswith("factor-")), None)
    rows = []

    def add(name, goal, value, ok):
        rows.append({"target": name, "goal": goal, "measured": value,
                     "met": None if ok is None else bool(ok)})

    n0 = 16384
    # the default backend (auto = native where the C++ op is built) first, then the other fast paths
    fast = ("native", "fused", "fused-compiled")
    for fused in fast:
        f = _get(results, block, fused, n0) if block else None
        if f is None:
            continue
        for other, goal, key, ratio in [("message", "<= 1/10 time", "time_s", 10),
                                        ("message", "<= 1/3 peak memory", "peak_extra_bytes", 3),
                                        ("official", "<= 1/10 time", "time_s", 10),
                                        ("attention", "<= 1/4 time", "time_s", 4)]:
            o = _get(results, block, other, n0) if block else None
            label = f"{block}, N=16384: {fused} vs {other}"
            if f and o:
                r = f[key] / o[key]
                add(label, goal, f"{r:.3f} ({f[key]:.3g} vs {o[key]:.3g}"
                    f"{' s' if key == 'time_s' else ' B'})", r <= 1 / ratio)
            else:
                add(label, goal, "not measured", None)
    for fused in ("native", "fused"):
        f = _get(results, block1, fused, 65536) if block1 else None
        a = _get(results, block1, "attention", 65536) if block1 else None
        label = f"{block1}, N=65536: {fused} vs attention"
        if f and a:
            r = f["time_s"] / a["time_s"]
            add(label, "<= 1/20 time", f"{r:.3f} ({f['time_s']:.3g} s vs {a['time_s']:.3g} s)", r <= 1 / 20)
        else:
            add(label, "<= 1/20 time", "not measured (attention skipped or over the limit)", None)
    # crossover: smallest measured N from which fused is faster than attention at every measured N
    if block:
        for fused in fast:
            f, a = _cells(results, block, fused), _cells(results, block, "attention")
            if not f:
                continue
            common = sorted(set(f) & set(a))
            cross = None
            for n in common:
                if all(f[m]["time_s"] < a[m]["time_s"] for m in common if m >= n):
                    cross = n
                    break
            first = common[0] if common else None
            value = ("not measured" if not common else "never (in the measured range)" if cross is None
                     else f"{cross}" + (" (fused already faster at the smallest N measured)"
                                         if cross == first else ""))
            add(f"{block}: crossover N where {fused} beats attention", "<= 2048", value,
                None if cross is None and not common else (cross is not None and cross <= 2048))
    # scaling
    for method in ("native", "fused") if block1 else ():
        f = _cells(results, block1, method)
        ratios = {n: f[2 * n]["time_s"] / f[n]["time_s"] for n in f if 2 * n in f and 4096 <= n < 1 << 18}
        if ratios:
            worst = max(ratios, key=ratios.get)
            value = ", ".join(f"{_fmt_n(n)}->{_fmt_n(2 * n)}: {r:.2f}" for n, r in sorted(ratios.items()))
            full = 4096 in ratios and (1 << 17) in ratios
            add(f"{block1}: {method} time(2N)/time(N), 2^12..2^18", "<= 2.3 each",
                value + ("" if full else " (range not fully measured)"), ratios[worst] <= 2.3 if full else None)
        else:
            add(f"{block1}: {method} time(2N)/time(N), 2^12..2^18", "<= 2.3 each", "not measured", None)
    # longest N
    long_ok = [r for r in results if r["scenario"] == "long-B1-C32" and r.get("ok")
               and r["peak_extra_bytes"] <= 20 * GB]
    if long_ok:
        best = max(long_ok, key=lambda r: r["length"])
        add("long-B1-C32: longest N trained fwd+bwd within 20 GB", ">= 2^20",
            f"{_fmt_n(best['length'])} ({best['method']}: first step {best['time_s']:.0f} s, "
            f"{best['peak_extra_bytes'] / GB:.1f} GB)",
            best["length"] >= 1 << 20)
    else:
        add("long-B1-C32: longest N trained fwd+bwd within 20 GB", ">= 2^20", "not measured", None)
    # bandwidth
    if factor:
        for fused in fast:
            f = _cells(results, factor, fused)
            if f:
                n = max(f)
                r = f[n]
                comp = r["bytes_compulsory"] / r["forward_s"]
                copy = r["bytes_copy"] / r["copy_s"]
                add(f"{factor}, N={_fmt_n(n)}: {fused} forward bandwidth vs copy", ">= 50%",
                    f"{comp / copy:.0%} compulsory ({comp / GB:.1f} vs {copy / GB:.1f} GB/s); "
                    f"{r['bytes_gathered'] / r['forward_s'] / GB:.1f} GB/s counting K reads of v",
                    comp / copy >= 0.5)
    return rows


def _names(scenarios: list) -> list[str]:
    return [s if isinstance(s, str) else s["name"] for s in scenarios]


def markdown(meta: dict, results: list[dict], rows: list[dict]) -> str:
    out = ["# Speed and memory: Paramixer block and one sparse factor", "",
           f"Measured on {meta['cpu']} ({meta['cpus']} CPUs), "
           f"{meta['args']['threads']} threads (OMP_WAIT_POLICY={meta['args']['omp_wait_policy']}), "
           f"torch {meta['torch']}, torch_sparse "
           f"{'installed' if meta['torch_sparse'] else 'not installed'}; **{meta['note']}**.", ""]
    for run in meta.get("runs") or [meta]:
        out += [f"- {run['date_utc']} UTC, {run['duration_min']:.1f} min, load average "
                f"{run['load_avg_before'][0]:.1f} before / {run['load_avg_after'][0]:.1f} after: "
                f"`{run['command']}`" + (f" (scenarios: {', '.join(_names(run['scenarios']))})"
                                         if "scenarios" in run else "")]
    out += ["",
           "Each cell is a fresh process: one warm-up step, then the median of the timed fwd+bwd steps "
           "(fewer once they add up to `--slow-step-s`); memory is the peak RSS growth of the "
           "process over its RSS after imports (VmHWM), so it includes inputs, activations and "
           "temporaries. `native` is the default (`backend='auto'` picks it wherever the C++ op is built), `fused` "
           "the eager chunked PyTorch kernel (its fallback), `fused-compiled` the "
           "`torch.compile` kernels (compile time excluded: it is in the warm-up step). `official` "
           "re-implements the official formulation (per-factor MLP values and spmm = gather, multiply, "
           "scatter-add). `native` is the C++/OpenMP op `torch.ops.sparsemix.slot_mix`. `attention` is "
           "`scaled_dot_product_attention` on [B, heads, N, C/heads] forced to the flash kernel "
           "(`sdpa_kernel([FLASH_ATTENTION])`, checked on its backward node; a cell fails rather "
           "than fall back to math), with its q/k/v projection at the same C.", "", "## Targets", "",
           "| target | goal | measured | met |", "|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        out.append(f"| {r['target']} | {r['goal']} | {r['measured']} | {met} |")
    for sc in meta["scenarios"]:
        cells = [r for r in results if r["scenario"] == sc["name"]]
        methods = list(dict.fromkeys(r["method"] for r in cells))
        lengths = sorted({r["length"] for r in cells})
        out += ["", f"## {sc['name']} ({sc['level']}, B={sc['batch']}, C={sc['channels']})", "",
                sc["note"] + ". Each entry: wall seconds per fwd+bwd step (median process CPU seconds of "
                "the same steps, both threads) / peak extra memory / wall time of the first step in the fresh "
                "process; † = the 1-min load average was above the limit when the cell started.", "",
                "| N | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for n in lengths:
            row = []
            for m in methods:
                r = next((c for c in cells if c["method"] == m and c["length"] == n), None)
                if r is None:
                    row.append("")
                elif r.get("ok"):
                    cpu = [c for c in r.get("cpu_times_s", []) if c is not None]
                    cpu_txt = f" (cpu {statistics.median(cpu):.3g})" if cpu else ""
                    loaded = "†" if r.get("loaded") else ""  # started above --max-load
                    row.append(f"{r['time_s']:.3g} s{cpu_txt} / {r['peak_extra_bytes'] / MB:,.0f} MB"
                               f" / first {r['warmup_s']:.3g} s{loaded}")
                elif "skipped" in r:
                    row.append("skip")
                else:
                    row.append("failed")
            out.append(f"| {n} | " + " | ".join(row) + " |")
        notes = sorted({f"{r['method']}: {r.get('skipped') or r.get('error')}" for r in cells
                        if not r.get("ok")})
        if notes:
            out += [""] + [f"- {n}" for n in notes]
        if sc["level"] == "factor":
            bw = [r for r in cells if r.get("ok") and "forward_s" in r]
            if bw:
                out += ["", "Forward-only bandwidth of the fused factor vs a plain copy of v in the same "
                        "process, both best of several runs (compulsory bytes = read v and w once, write out once; gathered bytes "
                        "count v read K times):", "",
                        "| method | N | forward | compulsory GB/s | gathered GB/s | copy GB/s |",
                        "|---|---|---|---|---|---|"]
                for r in sorted(bw, key=lambda r: (r["method"], r["length"])):
                    out.append(f"| {r['method']} | {r['length']} | {r['forward_s'] * 1e3:.2f} ms | "
                               f"{r['bytes_compulsory'] / r['forward_s'] / GB:.1f} | "
                               f"{r['bytes_gathered'] / r['forward_s'] / GB:.1f} | "
                               f"{r['bytes_copy'] / r['copy_s'] / GB:.1f} |")
    out += ["", "![time and memory vs N](speed.png)", ""]
    return "\n".join(out)


def plot(meta: dict, results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scs = meta["scenarios"]
    fig, axes = plt.subplots(len(scs), 2, figsize=(11, 3.6 * len(scs)), squeeze=False)
    for row, sc in zip(axes, scs):
        cells = [r for r in results if r["scenario"] == sc["name"] and r.get("ok")]
        for method in dict.fromkeys(r["method"] for r in cells):
            mine = sorted((r for r in cells if r["method"] == method), key=lambda r: r["length"])
            xs = [r["length"] for r in mine]
            color, fmt = STYLE.get(method, (None, "o-"))
            row[0].plot(xs, [r["time_s"] for r in mine], fmt, color=color, label=method, ms=4)
            row[1].plot(xs, [r["peak_extra_bytes"] / GB for r in mine], fmt, color=color, label=method,
                        ms=4)
        for ax, ylabel in zip(row, ["seconds per fwd+bwd step", "peak extra memory (GB)"]):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length N")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{sc['name']} ({sc['level']})", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        if row[0].get_legend_handles_labels()[0]:
            row[0].legend(fontsize=8)
    fig.suptitle(f"sparsemix speed, {meta['note']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(meta: dict, results: list[dict], out: Path) -> None:
    rows = targets(meta, results)
    (out / "speed.json").write_text(json.dumps({"meta": meta, "targets": rows, "cells": results},
                                               indent=1))
    (out / "speed.md").write_text(markdown(meta, results, rows))
    plot(meta, results, out / "speed.png")


if __name__ == "__main__":  # re-render from an existing speed.json
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    data = json.loads((folder / "speed.json").read_text())
    write_report(data["meta"], data["cells"], folder)
