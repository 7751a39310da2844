"""Draw the CHORD and CDIL factor graphs: one factor on a circle, the unrolled log N-depth network and
how reachability fills up factor by factor. Writes PNGs and prints their paths.

    python -m demos.plot_topologies --out outputs/topologies --n 16 --large-n 256
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import topologies
from topologies import PROTOCOLS
from topologies.drawing import pyplot, draw_factor, draw_network, draw_reachability


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/topologies"), help="output folder")
    parser.add_argument("--n", type=int, default=16, help="small sequence length (every node labelled)")
    parser.add_argument("--large-n", type=int, default=256, help="larger sequence length")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--radius", type=int, default=4, help="CDIL radius r (K = 2r + 1)")
    parser.add_argument("--curve-n", type=int, default=1000,
                        help="length for the reach-vs-depth curves (1000: floor(log2 N) is not enough)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)
    for name in ("n", "large_n", "radius", "curve_n", "dpi"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def _save(fig, path: Path, dpi: int, written: list[Path], started: Optional[float] = None) -> None:
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    written.append(path)
    print(path if started is None else f"{path}  (drawn and saved in {time.perf_counter() - started:.2f} s)")


def reach_curves(n: int, radius: int, path: Path, dpi: int, written: list[Path]) -> None:
    """Fraction of the N x N support reached after m factors, CHORD vs CDIL, with ceil vs floor depth."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    depth = topologies.default_num_factors(n)  # ceil(log2 N)
    for name, style in (("chord", "-o"), ("cdil", "-s")):
        topo = topologies.get(name, n, radius=radius)
        steps = list(range(0, depth + 1))
        frac = [1 / n] + [float(topo.reachable_offsets(m).float().mean()) for m in steps[1:]]
        ax.plot(steps, [100 * f for f in frac], style, label=f"{name.upper()} (K={topo.num_slots})")
    floor = n.bit_length() - 1
    if floor < depth:
        missing = (~topologies.chord(n, num_factors=floor).reachable_offsets()).nonzero().flatten()
        ax.axvline(floor, color="0.5", ls="--", lw=0.8)
        ax.text(floor - 0.1, 50, f"floor(log2 N) = {floor}:\nCHORD misses {len(missing)} offsets\n"
                f"(e.g. {int(missing[0])})", ha="right", va="center", fontsize=8, color="0.3")
    ax.set_xlabel("factors applied m")
    ax.set_ylabel("% of (output, input) pairs connected")
    ax.set_title(f"N={n}: the support of (I+W^(m))...(I+W^(1)) fills up; complete at M=ceil(log2 N)={depth}",
                 fontsize=9)
    ax.set_ylim(0, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path, dpi, written)


def main(argv: Optional[Sequence[str]] = None) -> list[Path]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for n in dict.fromkeys((args.n, args.large_n)):  # unique, in order
        for name in args.protocols:
            topo = topologies.get(name, n, radius=args.radius)
            # CHORD: every factor has the same pattern; CDIL: the first and the last (most duplicates).
            factors = [0] if name == "chord" else sorted({0, topo.num_factors - 1})
            for m in factors:
                started = time.perf_counter()
                ax = draw_factor(topo, m)
                _save(ax.figure, args.out / f"{name}_n{n}_factor{m + 1}.png", args.dpi, written, started)
            started = time.perf_counter()
            ax = draw_network(topo, highlight=n // 2)  # mid-sequence: its cone opens both ways
            _save(ax.figure, args.out / f"{name}_n{n}_network.png", args.dpi, written, started)
            started = time.perf_counter()
            axes = draw_reachability(topo)
            _save(axes[0].figure, args.out / f"{name}_n{n}_reachability.png", args.dpi, written, started)
    reach_curves(args.curve_n, args.radius, args.out / f"reach_curve_n{args.curve_n}.png", args.dpi, written)
    return written


if __name__ == "__main__":
    main()
