"""Why the paper's Paramixer barely learns: measurements at initialisation (docs/learning.md).

For the paper block (``init="stable"``, this project's default, and ``init="paper"``, PyTorch's
defaults as in the official code) and the encoder layer (``mix_init="sum"``), on Temporal Order
inputs at N = 2^7 ... 2^12 (C = 32, learned positions added to the embedding):

1. gradient norms at init reaching the factor weight MLPs (all M factors together, and the last
   factor alone) versus the value MLP g, for the cross-entropy of a random-label batch through the
   model's mean-pooled linear head;
2. the size of the mixing at init: the dense product A = prod_m (I + W^(m)) of one sequence
   (N <= 2^10): the diagonal, the off-diagonal mass per row sum_{j != i} |A_ij|, and the share of
   that mass at circular distance >= N/4 (long range);
3. the RMS of the mixing output relative to its input, at every N;
4. whether the weight MLPs see positions: the share of the variance of the factor values that is
   explained by position (the variance over positions of the per-position mean over random token
   draws, divided by the total variance).

Writes ``<out>/diagnose.json``, ``diagnose.md`` and ``diagnose.png``.

    python benchmarks/learning_diagnose.py           # about a minute on a 2-core CPU
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparsemix.models import SequenceClassifier  # noqa: E402
from sparsemix.nn import ParamixerEncoderLayer  # noqa: E402
from sparsemix.reference import mixing_matrix  # noqa: E402
from sparsemix.tasks.synthetic import temporal_order  # noqa: E402

VARIANTS = {  # name -> SequenceClassifier options
    "paper block, stable init": {"block": "paper", "init": "stable", "num_layers": 1},
    "paper block, paper (raw) init": {"block": "paper", "init": "paper", "num_layers": 1},
    "encoder, sum init": {"block": "encoder", "mix_init": "sum", "num_layers": 1,
                          "position_init": "sinusoid"},
}


def build(name: str, n: int, channels: int) -> SequenceClassifier:
    torch.manual_seed(0)
    return SequenceClassifier(6, 4, channels, max_len=n, positional=True, backend="fused",
                              **VARIANTS[name])


def mixer_and_inputs(model: SequenceClassifier, tokens: torch.Tensor):
    """The first mixing block, its value input v and its weight-MLP input x ([B, N, C] each)."""
    h = model.embed(tokens)
    layer = model.blocks[0]
    if isinstance(layer, ParamixerEncoderLayer):
        u = layer.norm1(h)
        return layer.mixer, u, u
    return layer, h, h


def grad_norms(model: SequenceClassifier, tokens: torch.Tensor, labels: torch.Tensor) -> dict:
    model.zero_grad()
    F.cross_entropy(model(tokens), labels).backward()
    mixer, _, _ = mixer_and_inputs(model, tokens[:1])

    def norm(params) -> float:
        return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))

    factors = [p for f in mixer.factors for p in f.parameters()]
    return {"factors": norm(factors), "last_factor": norm(mixer.factors[-1].parameters()),
            "first_factor": norm(mixer.factors[0].parameters()), "value": norm(mixer.value.parameters())}


@torch.no_grad()
def mixing_stats(model: SequenceClassifier, tokens: torch.Tensor) -> dict:
    mixer, v, x = mixer_and_inputs(model, tokens[:1])
    a = mixing_matrix(mixer.double(), v[0].double(), x[0].double())  # [N, N]
    mixer.float()
    n = a.size(0)
    diag = a.diagonal().abs().mean()
    off = a.abs().sum(1) - a.diagonal().abs()  # [N] off-diagonal mass per row
    i = torch.arange(n)
    dist = (i[None, :] - i[:, None]).remainder(n)
    dist = torch.minimum(dist, n - dist)  # circular distance
    far = (a.abs() * (dist >= n // 4)).sum(1)
    return {"diag_abs_mean": float(diag), "offdiag_mass_mean": float(off.mean()),
            "far_share": float(far.sum() / off.sum().clamp_min(1e-300)),
            "matrix": a.float()}


@torch.no_grad()
def rms_ratio(model: SequenceClassifier, tokens: torch.Tensor) -> float:
    mixer, v, x = mixer_and_inputs(model, tokens)
    out = mixer(v, x=x)
    return float(out.pow(2).mean().sqrt() / mixer.value(v).pow(2).mean().sqrt())


@torch.no_grad()
def position_share(model: SequenceClassifier, n: int, draws: int = 64) -> float:
    """Share of the factor values' variance explained by position (over random token draws)."""
    tokens = torch.randint(0, 6, (draws, n), generator=torch.Generator().manual_seed(1))
    mixer, _, x = mixer_and_inputs(model, tokens)
    w = torch.stack([f.compute_weights(x) for f in mixer.factors])  # [M, draws, N, K]
    per_pos = w.mean(1, keepdim=True)  # [M, 1, N, K]
    between = (per_pos - w.mean((1, 2), keepdim=True)).pow(2).mean()
    total = (w - w.mean((1, 2), keepdim=True)).pow(2).mean()
    return float(between / total)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[7, 8, 9, 10, 11, 12])
    p.add_argument("--dense-max", type=int, default=10, help="largest log2 N for the dense product")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, matrices = [], {}
    for k in args.lengths:
        n = 2 ** k
        tokens, labels = temporal_order(args.batch, n, seed=0)
        for name in VARIANTS:
            model = build(name, n, args.channels)
            row = {"variant": name, "log2_length": k, "length": n,
                   "grad": grad_norms(model, tokens, labels),
                   "rms_ratio": rms_ratio(model, tokens),
                   "position_share": position_share(model, n)}
            if k <= args.dense_max:
                stats = mixing_stats(model, tokens)
                if k == args.lengths[0]:
                    matrices[name] = stats["matrix"]
                row["mixing"] = {key: v for key, v in stats.items() if key != "matrix"}
            rows.append(row)
            print(name, n, json.dumps({key: v for key, v in row.items() if key != "variant"}),
                  flush=True)
    (out / "diagnose.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "diagnose.md").write_text(markdown(rows, args))
    plot(rows, matrices, args, out / "diagnose.png")
    print(f"wrote {out}/diagnose.json, diagnose.md, diagnose.png")
    return 0


def markdown(rows, args) -> str:
    lines = ["# Paramixer at initialisation (Temporal Order inputs, C = "
             f"{args.channels}, batch {args.batch})", "",
             "| variant | N | grad factor MLPs | grad last factor | grad value g | output RMS / g RMS "
             "| A diag | A off-diag mass / row | long-range share | position share of w |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mix = r.get("mixing")
        g = r["grad"]
        lines.append(
            f"| {r['variant']} | 2^{r['log2_length']} | {g['factors']:.2e} | {g['last_factor']:.2e} "
            f"| {g['value']:.2e} | {r['rms_ratio']:.3g} | "
            + (f"{mix['diag_abs_mean']:.3g} | {mix['offdiag_mass_mean']:.3g} | {mix['far_share']:.2f}"
               if mix else "– | – | –") + f" | {r['position_share']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(rows, matrices, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 + len(matrices), figsize=(4.2 * (3 + len(matrices)), 3.6))
    for name in VARIANTS:
        rs = [r for r in rows if r["variant"] == name]
        ks = [r["log2_length"] for r in rs]
        axes[0].plot(ks, [r["grad"]["factors"] for r in rs], marker="o", label=name)
        axes[1].plot(ks, [r["rms_ratio"] for r in rs], marker="o", label=name)
        dk = [r["log2_length"] for r in rs if "mixing" in r]
        axes[2].plot(dk, [r["mixing"]["offdiag_mass_mean"] for r in rs if "mixing" in r],
                     marker="o", label=name)
    for ax, title in zip(axes[:3], ["grad norm, factor MLPs (init)", "mixing output RMS / input RMS",
                                    "off-diagonal mass per row of A"]):
        ax.set_yscale("log")
        ax.set_xlabel("log2 N")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for ax, (name, a) in zip(axes[3:], matrices.items()):
        lim = float(a.abs().max())
        ax.imshow(a.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"A at N = 2^{args.lengths[0]}: {name}\n(max |A| = {lim:.3g})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
