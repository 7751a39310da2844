"""Training throughput of the DNA demo's model (``make demo``: species of origin, variable-length
256 bp - 4 kb fragments, no padding, conv stem, 6-mer token stem, reverse-complement augmentation,
1 thread), this checkout against an earlier revision, side by side.

Each measurement is one ``sparsemix.train.train`` call in a fresh process, exactly as
``demos/dna_species.py`` configures it (the same task, fragments, seed and steps), timed by the
trainer itself (training bases per second of its optimiser steps; evaluation excluded) and by the
process's CPU time. With ``--baseline REV`` the same run is made from a ``git worktree`` of REV
(its compiled kernel copied from this checkout when ``sparsemix/csrc`` is unchanged, else built
in the worktree), alternating baseline and current ``--repeats`` times, so both see the same
machine load; the ratio of the medians is the result.

    python benchmarks/dna_throughput.py --baseline db1fd23 --out benchmarks/results/dna_throughput

Writes ``dna_throughput.json`` and ``.md`` to ``--out``. Needs the species genome packages in the
cache (``make demo`` fetches them; ~30 MB).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]

# The child: train the demo's model for --steps steps and print the trainer's throughput and the
# process's CPU time of the training call, as one JSON line. Uses only API that both revisions have.
CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads({threads})
from sparsemix.train import TrainConfig, train

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

cfg = TrainConfig(task="dna-species", out={out!r}, length={length}, seed=0, device="cpu",
                  train_size={train_size}, val_size=16, test_size=16, batch_size={batch_size},
                  channels=32, positional=False, pooling="mean", stem="conv",
                  extra={{"min_length": {min_length}}}, kmer=6, rc_conjoin=True,
                  reverse_complement=True, epochs=1)
c0 = cpu()
results = train(cfg)
tp = results["throughput"]
print("RESULT " + json.dumps({{"bases_per_s": tp["tokens_per_s"], "samples_per_s": tp["samples_per_s"],
                              "cpu_s": cpu() - c0}}))
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for dna_throughput.json / .md")
    p.add_argument("--baseline", default=None,
                   help="git revision to compare against (default: none, this checkout only)")
    p.add_argument("--steps", type=int, default=60, help="optimiser steps a run (default: 60)")
    p.add_argument("--batch-size", type=int, default=16, help="fragments a step (default: 16, the demo's)")
    p.add_argument("--length", type=int, default=4096, help="longest fragment (default: 4096)")
    p.add_argument("--min-length", type=int, default=256, help="shortest fragment (default: 256)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each revision (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, the demo's)")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 2 <= args.min_length <= args.length:
        p.error("--min-length must be in [2, --length]")
    return args


def _git(*cmd: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *cmd], check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def baseline_checkout(rev: str, where: Path) -> Iterator[Path]:
    """A ``git worktree`` of ``rev`` at ``where`` with its own compiled kernel (this checkout's
    library when ``sparsemix/csrc`` and ``setup.py`` are unchanged since ``rev``, else built there,
    about 30 s), removed again on exit, also when the build fails. Also used by native_kernel.py."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True)
    try:
        if _git("diff", "--name-only", rev, "HEAD", "--", "sparsemix/csrc", "setup.py"):
            print(f"building {rev}'s native kernel in {where} ...", file=sys.stderr, flush=True)
            built = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=where,
                                   capture_output=True, text=True)
            if built.returncode:
                raise SystemExit(f"--baseline {rev}: its native kernel did not build:\n"
                                 f"{built.stderr[-2000:]}")
        else:
            for lib in (REPO / "sparsemix").glob("_C*.so"):
                shutil.copy2(lib, where / "sparsemix" / lib.name)
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                       capture_output=True)


def _run(code_dir: Path, args, tmp: Path) -> dict:
    out = tempfile.mkdtemp(dir=tmp)
    child = CHILD.format(threads=args.threads, out=out, length=args.length,
                         train_size=args.steps * args.batch_size, batch_size=args.batch_size,
                         min_length=args.min_length)
    env = {**os.environ, "PYTHONPATH": str(code_dir), "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run([sys.executable, "-c", child], cwd=code_dir, env=env,
                          capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"the training run in {code_dir} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):]) | {"load_avg_1m": round(os.getloadavg()[0], 2)}


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = ["# DNA demo training throughput", "", f"Command: `{m['command']}`  ",
             f"Machine: {m['machine']}; load average at the start {m['load_start']}, at the end "
             f"{m['load_end']}.  ",
             f"Model and data as `make demo` (dna-species, {m['min_length']}-{m['length']} bp "
             f"fragments, variable length, batch {m['batch_size']}, conv + 6-mer stems, RC "
             f"augmentation), {m['steps']} steps a run, {m['threads']} thread(s); the trainer's "
             "bases/s over its optimiser steps, and the training call's process CPU time.", "",
             "| code | revision | runs | bases/s (median) | CPU s (median) | each run: bases/s (load) |",
             "|---|---|---:|---:|---:|---|"]
    for name, row in result["codes"].items():
        runs = ", ".join(f"{r['bases_per_s']:,.0f} ({r['load_avg_1m']})" for r in row["runs"])
        lines.append(f"| {name} | {row['revision']} | {len(row['runs'])} | "
                     f"{row['bases_per_s']:,.0f} | {row['cpu_s']:.1f} | {runs} |")
    if "speedup" in result:
        s = result["speedup"]
        lines += ["", f"Current / baseline: **{s['bases_per_s']:.2f}x** bases/s (wall), "
                      f"{s['cpu']:.2f}x by CPU time."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from train_step import cpu_model  # noqa: E402

    meta = {"command": "python benchmarks/dna_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_start": [round(v, 2) for v in os.getloadavg()], **{k: v for k, v in vars(args).items()
                                                                   if k != "out"}}
    codes = {"current": (REPO, _git("rev-parse", "--short", "HEAD"))}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        if args.baseline:
            rev = _git("rev-parse", "--short", args.baseline)
            codes = {"baseline": (stack.enter_context(baseline_checkout(rev, tmp / "baseline")), rev),
                     **codes}
        runs: dict[str, list] = {name: [] for name in codes}
        for i in range(args.repeats):
            for name, (code_dir, _) in codes.items():  # alternate: the same load for both
                r = _run(code_dir, args, tmp)
                runs[name].append(r)
                print(f"run {i + 1}/{args.repeats} {name:8s} {r['bases_per_s']:9,.0f} bases/s "
                      f"{r['cpu_s']:6.1f} s CPU  load {r['load_avg_1m']}", flush=True)
    result = {"meta": {**meta, "load_end": [round(v, 2) for v in os.getloadavg()]}, "codes": {
        name: {"revision": rev, "runs": runs[name],
               "bases_per_s": statistics.median(r["bases_per_s"] for r in runs[name]),
               "cpu_s": statistics.median(r["cpu_s"] for r in runs[name])}
        for name, (_, rev) in codes.items()}}
    if args.baseline:
        base, cur = result["codes"]["baseline"], result["codes"]["current"]
        result["speedup"] = {"bases_per_s": cur["bases_per_s"] / base["bases_per_s"],
                             "cpu": base["cpu_s"] / cur["cpu_s"]}
    (out / "dna_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "dna_throughput.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
