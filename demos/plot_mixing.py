"""Look inside a Paramixer block: its learned factor weights on the CHORD / CDIL graphs and the dense
mixing matrix (I + W^(M)) ... (I + W^(1)) they multiply out to.

A block (8 channels) is trained for a few Adam steps so its weights are not just the initialisation.
The toy task isolates the mixing: the value MLP g is frozen and the target is
``y_i = g(v)_i + g(v)_{(i + s) mod N}`` with ``s = N // 4`` (``--shift``), so the perfect mixing matrix
is exactly ``I + P^s`` (P the cyclic shift) and the learned one can be compared with it entry by entry.
Only the M factor MLPs learn. Writes PNGs and prints their paths.

    python -m demos.plot_mixing --out outputs/mixing --sizes 16 64 --steps 100
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

import sparsemix
from sparsemix.reference import mixing_matrix
from topologies import PROTOCOLS
from topologies.drawing import draw_factor, draw_matrix, draw_network, pyplot, signed_norm


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/mixing"), help="output folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64], help="sequence lengths N")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="Adam steps on the shift task (0: init only)")
    parser.add_argument("--shift", type=int, default=None, help="distance s of the copy task (default N // 4)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)
    for name in ("channels", "batch_size", "dpi"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    for n in args.sizes:
        if n < 2:
            parser.error(f"--sizes must all be >= 2, got {n}")
    if args.shift is not None and args.shift < 1:
        parser.error(f"--shift must be >= 1, got {args.shift}")
    return args


def target_matrix(n: int, s: int) -> Tensor:
    """I + P^s: row i has ones at columns i and (i + s) mod N."""
    eye = torch.eye(n)
    return eye + torch.roll(eye, s, dims=1)


def train_copy(block: sparsemix.Paramixer, n: int, s: int, args: argparse.Namespace,
               gen: torch.Generator) -> list[float]:
    """Fit the factor MLPs so that ``block(v) ~ (I + P^s) g(v)`` with g frozen; returns the losses."""
    block.value.requires_grad_(False)  # g is the teacher's too: only the mixing has to be learned
    opt = torch.optim.Adam(block.factors.parameters(), lr=args.lr)
    mix = target_matrix(n, s)
    losses = []
    for _ in range(args.steps):
        v = torch.randn(args.batch_size, n, args.channels, generator=gen)
        with torch.no_grad():
            target = mix @ block.value(v)  # [B, N, C]
        loss = torch.nn.functional.mse_loss(block(v), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _save(fig, path: Path, dpi: int, written: list[Path]) -> None:
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    written.append(path)
    print(path)


def plot_factor_weights(block, weights: list[Tensor], title: str, path: Path, dpi: int,
                        written: list[Path]) -> None:
    """All M factors on circles, one shared symmetric colour scale."""
    plt = pyplot()
    topo = block.topology_for(weights[0].size(0))
    mm = len(weights)
    cols = min(mm, 3 if mm > 4 else mm)
    rows = math.ceil(mm / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 1.2, 3.7 * rows + 0.6), layout="constrained",
                             squeeze=False)
    norm = signed_norm(torch.cat([w.reshape(-1) for w in weights]))
    for m, ax in enumerate(axes.flat):
        if m >= mm:
            ax.set_visible(False)
            continue
        draw_factor(topo, m, weights=weights[m], ax=ax, norm=norm, colorbar=False,
                    labels=topo.num_nodes <= 16,
                    title=f"W{m + 1}: offsets {[o for o in topo.offsets[m].tolist()]}")
        ax.title.set_fontsize(8)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap="coolwarm"), ax=list(axes.flat), shrink=0.6,
                 label="learned weight w[i, k] (one scale, centred at 0)")
    fig.suptitle(title, fontsize=10)
    _save(fig, path, dpi, written)


def run_one(protocol: str, n: int, args: argparse.Namespace, written: list[Path]) -> None:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    block = sparsemix.Paramixer(args.channels, protocol=protocol, max_len=n)
    probe = torch.randn(n, args.channels, generator=gen)  # one example to look at
    with torch.no_grad():
        before = mixing_matrix(block, probe)
    s = args.shift if args.shift is not None else max(1, n // 4)
    losses = train_copy(block, n, s, args, gen)
    block.eval()
    with torch.no_grad():
        _, weights = block(probe, return_weights=True)  # M x [N, K]
        after = mixing_matrix(block, probe)
    name = f"{protocol}_n{n}"
    target = target_matrix(n, s)
    error = float((after - target).abs().max())
    trained = (f"after {args.steps} Adam steps on y = (I + P^{s}) g(v) (MSE {losses[0]:.2f} -> {losses[-1]:.3f})"
               if losses else "at initialisation")
    label = f"{protocol.upper()} N={n}, M={block.num_factors}, K={block.num_slots}"

    plot_factor_weights(block, weights, f"{label}: learned factor weights for one input, {trained}",
                        args.out / f"{name}_factor_weights.png", args.dpi, written)

    ax = draw_network(block.topology_for(n), weights=weights, highlight=0 if n <= 32 else None)
    ax.set_title(f"{label}: weights on the unrolled network" + (", paths from input 0 on top" if n <= 32 else "")
                 + f"\n{trained}", fontsize=9)
    _save(ax.figure, args.out / f"{name}_network_weights.png", args.dpi, written)

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 4.4), layout="constrained")
    draw_matrix(before, ax=axes[0], title="mixing matrix at initialisation", label="value")
    draw_matrix(after, ax=axes[1], title=f"after {args.steps} steps: max |error| {error:.3f}", label="value")
    draw_matrix(target, ax=axes[2], title=f"target I + P^{s}: output i = input i + input i+{s}",
                label="value")
    fig.suptitle(f"{label}: effective (I + W^(M)) ... (I + W^(1)) for one input; "
                 f"output = matrix @ g(v)", fontsize=10)
    _save(fig, args.out / f"{name}_mixing.png", args.dpi, written)
    print(f"  {label}: MSE {losses[0] if losses else float('nan'):.3f} -> "
          f"{losses[-1] if losses else float('nan'):.3f}, max |mixing - target| = {error:.3f}")


def main(argv: Optional[Sequence[str]] = None) -> list[Path]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for n in args.sizes:
        for protocol in args.protocols:
            run_one(protocol, n, args, written)
    return written


if __name__ == "__main__":
    main()
