"""Speed and memory of one Paramixer block and of one sparse factor, per backend, against dense attention.

Every cell (method, scenario, N) runs in a fresh subprocess (``speed_cells.py``): one warm-up step,
then the median of ``--steps`` fwd+bwd steps (fewer once they add up to ``--slow-step-s``),
and the peak extra memory of the process (VmHWM from /proc/self/status minus the RSS after imports).
A method stops growing N once a step exceeds ``--step-limit-s`` or ``--mem-limit-gb`` (or is predicted
to exceed twice that from its last two cells), and the whole run stops starting cells after
``--budget-min``. Writes speed.json, speed.md and speed.png into ``--out``.

    python benchmarks/speed.py --out benchmarks/results            # the full run (make bench)
    python benchmarks/speed.py --out /tmp/speed --quick            # a 2-minute smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
GB = 1e9


@dataclass
class Scenario:
    name: str
    level: str  # "block" or "factor"
    batch: int
    channels: int
    lengths: dict[str, list[int]]  # method -> N values
    steps: int | None = None  # overrides --steps
    note: str = ""
    first_step_only: bool = False  # time the first step (no warm-up) and never stop on time
    step_limit_s: float | None = None  # overrides --step-limit-s
    methods: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.methods = list(self.lengths)


def pow2(lo: int, hi: int) -> list[int]:
    return [1 << e for e in range(lo, hi + 1)]


def scenarios(args, has_sparse: bool, native_block: bool = False,
              has_native: bool = False) -> list[Scenario]:
    b, c, cap = args.batch, args.channels, args.max_log2
    q = args.quick
    lo = 8
    block = {
        "fused": pow2(lo, min(cap, 12 if q else 17)),
        # compiled kernels specialise on K (= M + 1 for CHORD), so each N pays a compile: even powers only
        "fused-compiled": pow2(lo + 2, min(cap, 11 if q else 16))[::2],
        "attention": pow2(lo, min(cap, 11 if q else 16)),
        "message": pow2(lo, min(cap, 10 if q else 15)),
        "official": pow2(lo, min(cap, 10 if q else 15)),
    }
    factor = {
        "fused": pow2(10, min(cap, 12 if q else 18)),
        "fused-compiled": pow2(10, min(cap, 12 if q else 18))[::4],
        "message": pow2(10, min(cap, 11 if q else 16)),
    }
    if native_block:  # the Paramixer block on the native backend, where the C++ op is built
        block["native"] = pow2(lo, min(cap, 12 if q else 17))
    if has_native:
        factor["native"] = pow2(10, min(cap, 12 if q else 18))
    if has_sparse:
        block["sparse"] = pow2(lo, min(cap, 10 if q else 15))
        factor["sparse"] = pow2(10, min(cap, 11 if q else 17))
    long_block = {"fused": pow2(10, min(cap, 12 if q else 18)),
                  "attention": pow2(10, min(cap, 11 if q else 17))}
    if native_block:
        long_block["native"] = pow2(10, min(cap, 12 if q else 18))
    out = [
        Scenario(f"block-B{b}-C{c}", "block", b, c, block,
                 note="one Paramixer block (value MLP + M factors, weight MLPs included) vs SDPA attention"),
        Scenario(f"factor-B{b}-C{c}", "factor", b, c, factor,
                 note="one sparse factor with given weights [B, N, K] (no MLP)"),
        Scenario("long-B1-C32", "block", 1, 32,
                 {"fused-ckpt": [1 << min(cap, 14 if q else 20)], "fused": [1 << min(cap, 14 if q else 20)]},
                 first_step_only=True, step_limit_s=600.0,
                 note="longest trainable N: the first fwd+bwd step of one block (no warm-up), memory "
                      "limit only (fused-ckpt: checkpoint_weights=True, weight MLPs recomputed in "
                      "backward)"),
        Scenario(f"block-B1-C{c}", "block", 1, c, long_block,
                 note="B = 1 scaling and long-N comparison with attention"),
    ]
    if b == 1:  # the main block scenario already is the B = 1 one
        out = [s for s in out if s.name != f"block-B1-C{c}" or s.lengths is block]
    return [s for s in out if any(s.lengths.values())]


def mem_available() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return float("inf")


def read_load() -> float:
    """1-minute load average from /proc/loadavg (os.getloadavg elsewhere)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return os.getloadavg()[0]


def child_cpu_s() -> float:
    """User + system CPU seconds of all finished child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_cell(cell: dict, timeout: float) -> dict:
    cpu0 = child_cpu_s()
    env = dict(os.environ, OMP_NUM_THREADS=str(cell["threads"]), MKL_NUM_THREADS=str(cell["threads"]),
               OMP_WAIT_POLICY=cell["omp_wait_policy"],
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / "speed_cells.py"), json.dumps(cell)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**cell, "ok": False, "error": f"cell timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    cell = {**cell, "cell_cpu_s": child_cpu_s() - cpu0}  # the whole child: imports, warm-up, steps
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        why = "killed (out of memory?)" if proc.returncode in (-9, 137) else " | ".join(tail)
        return {**cell, "ok": False, "error": f"exit {proc.returncode}: {why}"[:500], "cell_wall_s": wall}
    return {**json.loads(lines[-1]), "cell_wall_s": wall, "cell_cpu_s": cell["cell_cpu_s"]}


def predicted(prev: list[dict], key: str) -> float | None:
    """Next value of ``key`` at 2N from the last two cells' growth (at least x2)."""
    if not prev:
        return None
    growth = 2.0
    if len(prev) >= 2 and prev[-2][key] > 0:  # clamped: one contended cell must not stop a method
        growth = min(4.5, max(2.0, prev[-1][key] / prev[-2][key]))
    return prev[-1][key] * growth


def sweep(args, todo: list[Scenario]) -> list[dict]:
    deadline = time.time() + args.budget_min * 60
    results: list[dict] = []
    for sc in todo:
        done: dict[str, list[dict]] = {m: [] for m in sc.methods}
        stopped: dict[str, str] = {}
        for n in sorted({n for ns in sc.lengths.values() for n in ns}):
            for method in sc.methods:
                if n not in sc.lengths[method]:
                    continue
                cell = {"scenario": sc.name, "level": sc.level, "method": method, "batch": sc.batch,
                        "length": n, "channels": sc.channels, "protocol": args.protocol,
                        "threads": args.threads, "heads": args.heads, "omp_wait_policy": args.omp_wait_policy,
                        "steps": sc.steps or args.steps,
                        "step_limit_s": sc.step_limit_s or args.step_limit_s,
                        "slow_step_s": args.slow_step_s, "first_step_only": sc.first_step_only}
                reason = stopped.get(method)
                prev = done[method]
                limit_bytes = min(args.mem_limit_gb * GB, mem_available() - 1.5 * GB)
                if reason is None and time.time() > deadline:
                    reason = f"time budget of {args.budget_min} min spent"
                if reason is None and prev:
                    t_next, m_next = predicted(prev, "time_s"), predicted(prev, "peak_extra_bytes")
                    if t_next > 2 * cell["step_limit_s"]:
                        reason = f"predicted step {t_next:.0f} s > 2 x {cell['step_limit_s']:.0f} s"
                    elif m_next > limit_bytes:
                        reason = (f"predicted peak {m_next / GB:.1f} GB > limit {limit_bytes / GB:.1f} GB "
                                  f"(min of --mem-limit-gb and free memory on the shared machine)")
                if reason is not None:
                    results.append({**cell, "ok": False, "skipped": reason})
                    continue
                load = read_load()  # other processes on the machine distort every figure: say so
                cell["load_before"], cell["loaded"] = load, load > args.max_load
                if cell["loaded"] and args.strict_load:
                    results.append({**cell, "ok": False,
                                    "skipped": f"1-min load {load:.2f} > {args.max_load} (--strict-load)"})
                    continue
                timeout = max(300.0, 6 * cell["step_limit_s"])
                res = run_cell(cell, timeout)
                res["load_avg"] = os.getloadavg()[0]
                results.append(res)
                status = (f"{res['time_s']:.3f} s  {res['peak_extra_bytes'] / GB:.2f} GB" if res["ok"]
                          else res["error"])
                print(f"[{sc.name}] {method:>15} N={n:>8}: {status}", flush=True)
                if not res["ok"]:
                    stopped[method] = "an earlier N failed"
                    continue
                done[method].append(res)
                if res["time_s"] > cell["step_limit_s"]:
                    stopped[method] = f"a step at N={n} took {res['time_s']:.0f} s > {cell['step_limit_s']:.0f} s"
                elif res["peak_extra_bytes"] > args.mem_limit_gb * GB:
                    stopped[method] = f"N={n} used {res['peak_extra_bytes'] / GB:.1f} GB > limit"
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--protocol", choices=["chord", "cdil"], default="chord")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--heads", type=int, default=1,
                   help="attention heads: SDPA runs on [B, heads, N, C / heads]")
    p.add_argument("--max-load", type=float, default=0.5,
                   help="a cell starting above this 1-min load average is flagged \"loaded\"")
    p.add_argument("--strict-load", action="store_true",
                   help="refuse (skip) cells that would start above --max-load instead of flagging them")
    p.add_argument("--omp-wait-policy", choices=["passive", "active"], default="passive",
                   help="OpenMP threads sleep (passive) or spin (active) between ops; on a shared "
                        "machine spinning threads steal the cores their peers need (10x slowdowns)")
    p.add_argument("--step-limit-s", type=float, default=60.0)
    p.add_argument("--slow-step-s", type=float, default=20.0,
                   help="stop timing a cell once its timed steps add up to this (at least one step)")
    p.add_argument("--mem-limit-gb", type=float, default=20.0)
    p.add_argument("--budget-min", type=float, default=20.0)
    p.add_argument("--max-log2", type=int, default=20, help="largest N = 2^this for every method")
    p.add_argument("--only", nargs="*", help="run only the scenarios whose names start with these")
    p.add_argument("--note", default="2-core CPU container, contended (other engineers running jobs)")
    p.add_argument("--quick", action="store_true", help="small N only (smoke test, ~2 min)")
    p.add_argument("--append", action="store_true",
                   help="merge into an existing OUT/speed.json, replacing only the scenarios run now "
                        "(to finish scenarios that an earlier run's time budget skipped)")
    args = p.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    from sparsemix.kernels import HAS_TORCH_SPARSE
    import torch

    from sparsemix.kernels.native import HAS_NATIVE, NATIVE_ERROR

    todo = scenarios(args, HAS_TORCH_SPARSE, native_block=HAS_NATIVE, has_native=HAS_NATIVE)
    if args.only:
        todo = [s for s in todo if any(s.name.startswith(o) for o in args.only)]
    started = time.time()
    load_before = os.getloadavg()
    results = sweep(args, todo)
    meta = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
            "duration_min": (time.time() - started) / 60, "command": " ".join(["python"] + sys.argv),
            "args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
            "torch_sparse": HAS_TORCH_SPARSE, "native": HAS_NATIVE, "native_error": NATIVE_ERROR,
            "python": platform.python_version(),
            "cpu": _cpu_name(), "cpus": os.cpu_count(), "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(), "note": args.note,
            "scenarios": [{"name": s.name, "level": s.level, "batch": s.batch, "channels": s.channels,
                           "note": s.note, "first_step_only": s.first_step_only} for s in todo]}
    from speed_report import write_report

    args.out.mkdir(parents=True, exist_ok=True)
    run = {k: meta[k] for k in ("date_utc", "duration_min", "command", "load_avg_before", "load_avg_after")}
    run["scenarios"] = [s.name for s in todo]
    meta["runs"] = [run]
    previous = args.out / "speed.json"
    if args.append and previous.exists():
        old = json.loads(previous.read_text())
        names = {s.name for s in todo}
        results = [r for r in old["cells"] if r["scenario"] not in names] + results
        old_runs = old["meta"].get("runs") or [{k: old["meta"][k] for k in run if k in old["meta"]}]
        scen = {s["name"]: s for s in old["meta"]["scenarios"]}
        scen.update({s["name"]: s for s in meta["scenarios"]})
        meta = {**old["meta"], "runs": old_runs + [run], "scenarios": list(scen.values())}
    write_report(meta, results, args.out)
    print(f"wrote {args.out}/speed.json, speed.md, speed.png")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
