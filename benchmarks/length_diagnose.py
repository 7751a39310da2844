"""Why the encoder's summed mixing stops learning Adding at N >= 2^9 (docs/learning.md, section 5).

Three measurements, for the encoder with the summed mixing (``mix_mode="sum"``, the default before
this diagnosis), the encoder with the normalised mixing (``mix_mode="average"``) and the dense
Transformer, every model as ``sparsemix train`` builds it for the Adding task (C = 32, 2 layers,
no positions):

1. **Signal share at initialisation**, N = 2^6 ... 2^12: the spread of the model's prediction when
   only the two *marked* values of a sequence are redrawn, against its spread when only the N - 2
   *unmarked* values are redrawn (standard deviations over redraws, averaged over sequences). The
   target depends only on the marked values; a ratio far below 1 means the gradient that would teach
   the model to pick them out is buried under what the other N - 2 elements contribute.
2. **Gradient reaching the factor MLPs while training**: Adding at N = 2^9, the benchmark's loop
   (AdamW 3e-3, warm-up, batch 32), the gradient norm of the second layer's factor MLPs at every
   step of the first ``--steps`` steps.
3. **Thread sensitivity**: ``sparsemix train --task adding --length 64 --train-size 512 --epochs 2
   --batch-size 32 --seed 5`` (32 steps) with 1 and with 2 threads; the largest difference between
   the two final models' parameters (the issue's measurement of how well conditioned training is).

Writes ``<out>/length_diagnose.json`` and ``length_diagnose.md`` (and ``length_diagnose.png``).

    python benchmarks/length_diagnose.py            # about 5 minutes on a 2-core CPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparsemix.models import build_model  # noqa: E402
from sparsemix.tasks.synthetic import adding  # noqa: E402
from sparsemix.train.recipe import lr_factor  # noqa: E402

# name -> (registry model, options on top of the Adding task's): the models compared.
MODELS = {
    "encoder, summed mixing": ("paramixer", {"block": "encoder", "mix_mode": "sum", "mix_gain": 0.1}),
    "encoder, averaged mixing": ("paramixer", {"block": "encoder", "mix_mode": "average",
                                               "num_heads": 4}),
    "transformer": ("transformer", {"num_heads": 1}),
}


def build(name: str, n: int, seed: int = 0) -> torch.nn.Module:
    model, opts = MODELS[name]
    torch.manual_seed(seed)
    return build_model(model, num_classes=1, max_len=n, input_dim=2, channels=32, num_layers=2,
                       positional=False, pooling="mean", position_init="sinusoid", **opts)


@torch.no_grad()
def signal_share(name: str, n: int, sequences: int = 8, redraws: int = 8) -> dict:
    """Prediction spread when redrawing the marked values only, and the unmarked values only."""
    model = build(name, n).eval()
    x, _ = adding(sequences, n, seed=1)
    marked = x[..., 1] > 0  # [S, N]
    g = torch.Generator().manual_seed(2)
    spreads = {}
    for which, mask in (("marked", marked), ("unmarked", ~marked)):
        preds = []
        for _ in range(redraws):
            xr = x.clone()
            fresh = 1.0 - 2.0 * torch.rand(x.shape[:2], generator=g)
            xr[..., 0] = torch.where(mask, fresh, x[..., 0])
            preds.append(model(xr).squeeze(-1))
        spreads[which] = float(torch.stack(preds).std(0).mean())
    return {"model": name, "length": n, **spreads,
            "ratio": spreads["marked"] / max(spreads["unmarked"], 1e-30)}


def factor_grad_norms(name: str, n: int, steps: int, lr: float = 3e-3) -> list[float]:
    """The second layer's factor-MLP gradient norm at each of the first ``steps`` training steps."""
    model = build(name, n).train()
    mixer = model.blocks[-1].mixer
    params = [p for f in mixer.factors for p in f.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, 600, 50))
    norms = []
    for step in range(steps):
        x, y = adding(32, n, seed=step)
        loss = F.mse_loss(model(x).squeeze(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(float(torch.cat([p.grad.flatten() for p in params]).norm()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return norms


def thread_sensitivity(mix_mode: str) -> dict:
    """Largest parameter difference between the 1- and 2-thread runs of the issue's command."""
    states = {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            out = Path(tmp) / f"t{threads}"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            subprocess.run([sys.executable, "-m", "sparsemix", "train", "--task", "adding",
                            "--length", "64", "--train-size", "512", "--epochs", "2",
                            "--batch-size", "32", "--seed", "5", "--mix-mode", mix_mode,
                            "--out", str(out), "--quiet"], check=True, env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
            states[threads] = ckpt["model"]
    diffs = {k: float((states[1][k].float() - states[2][k].float()).abs().max())
             for k in states[1] if states[1][k].is_floating_point()}
    worst = max(diffs, key=diffs.get)
    return {"mix_mode": mix_mode, "max_abs_diff": diffs[worst], "parameter": worst}


def markdown(res: dict) -> str:
    lines = ["# Adding at length: what the summed mixing loses", "",
             f"Command: `{res['command']}`  ", f"Machine: {res['machine']}; load at start "
             f"{res['load_start']}; {res['wall_s']:.0f} s.", "",
             "## 1. Signal share at initialisation", "",
             "Prediction spread (std over 8 redraws, mean over 8 sequences) when only the 2 marked "
             "values are redrawn, divided by the spread when only the N - 2 unmarked values are.", "",
             "| N | " + " | ".join(MODELS) + " |", "|---" * (len(MODELS) + 1) + "|"]
    for n in sorted({r["length"] for r in res["signal"]}):
        cells = [f"{r['ratio']:.3g}" for m in MODELS for r in res["signal"]
                 if r["model"] == m and r["length"] == n]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", f"## 2. Gradient norm of the second layer's factor MLPs, Adding N = {res['grad_length']}",
              "", "| step | " + " | ".join(res["grads"]) + " |", "|---" * (len(res["grads"]) + 1) + "|"]
    steps = len(next(iter(res["grads"].values())))
    for s in sorted({0, 1, 2, 5, 10, 20, steps // 2, steps - 1}):
        lines.append(f"| {s} | " + " | ".join(f"{v[s]:.2e}" for v in res["grads"].values()) + " |")
    lines += ["", "## 3. One thread against two (`sparsemix train --task adding --length 64 "
              "--train-size 512 --epochs 2 --batch-size 32 --seed 5`)", "",
              "| mixing | largest parameter difference | in |", "|---|---|---|"]
    for r in res["threads"]:
        lines.append(f"| {r['mix_mode']} | {r['max_abs_diff']:.2e} | `{r['parameter']}` |")
    return "\n".join(lines) + "\n"


def plot(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for m in MODELS:
        rows = [r for r in res["signal"] if r["model"] == m]
        a.plot([r["length"] for r in rows], [r["ratio"] for r in rows], marker="o", label=m)
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("N")
    a.set_ylabel("marked / unmarked prediction spread")
    a.set_title("signal share at init (Adding)")
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    for m, v in res["grads"].items():
        b.plot(v, label=m)
    b.set_yscale("log")
    b.set_xlabel("step")
    b.set_ylabel("grad norm, layer-2 factor MLPs")
    b.set_title(f"training, Adding N = {res['grad_length']}")
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "length_diagnose.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=list(range(6, 13)),
                   help="log2 N of the signal-share measurement (default: 6 .. 12)")
    p.add_argument("--grad-length", type=int, default=9, help="log2 N of measurement 2 (default: 9)")
    p.add_argument("--steps", type=int, default=60, help="training steps of measurement 2 (default: 60)")
    p.add_argument("--skip-threads", action="store_true", help="skip measurement 3")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"command": "python benchmarks/length_diagnose.py " + " ".join(sys.argv[1:]),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                      f"torch {torch.__version__}",
           "load_start": os.getloadavg(), "grad_length": 2 ** args.grad_length}
    res["signal"] = [signal_share(m, 2 ** k) for k in args.lengths for m in MODELS]
    res["grads"] = {m: factor_grad_norms(m, 2 ** args.grad_length, args.steps)
                    for m in MODELS if m != "transformer"}
    res["threads"] = [] if args.skip_threads else [thread_sensitivity(m) for m in ("sum", "average")]
    res["wall_s"] = time.perf_counter() - t0
    (out / "length_diagnose.json").write_text(json.dumps(res, indent=1))
    (out / "length_diagnose.md").write_text(markdown(res))
    plot(res, out)
    print(markdown(res))


if __name__ == "__main__":
    main()
