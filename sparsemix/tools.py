"""``sparsemix bench`` and ``sparsemix plot``: quick looks from the command line, and the drawing of a
trained model's factor weights on one sequence (``fragment_weights``, also used by the DNA demo).

The full, subprocess-isolated speed and memory benchmark is ``benchmarks/speed.py`` (``make bench``);
``bench`` here is the in-process version for a first impression on your own machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

import topologies
from topologies.drawing import draw_factor, draw_network, draw_reachability, pyplot

from .nn import BACKENDS, Paramixer
from .reference import mixing_matrix
from .train import load_model


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="time fwd+bwd of one Paramixer block per backend (in-process)",
                       description="Median wall time of forward+backward of one Paramixer block for "
                       "each backend and length, plus dense SDPA attention for scale. For isolated "
                       "timings with peak memory use benchmarks/speed.py (make bench).")
    p.add_argument("--protocol", default="chord", choices=list(topologies.PROTOCOLS))
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384],
                   help="sequence lengths N (default: 1024 4096 16384)")
    p.add_argument("--batch", type=int, default=1, help="batch size B (default: 1)")
    p.add_argument("--channels", type=int, default=64, help="channels C = hidden h (default: 64)")
    p.add_argument("--backends", nargs="+", default=["fused", "message", "attention"],
                   choices=[b for b in BACKENDS if b != "auto"] + ["attention"],
                   help="what to time (default: fused message attention)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (default: 3)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")


def add_plot_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="draw factor graphs (and a trained run's learned weights)",
                       description="Write PNGs of CHORD/CDIL factor graphs: one factor on a circle, "
                       "the unrolled log N-depth network and the reachability fill-up. With --run, "
                       "also the learned factor weights and the effective mixing matrix of the run's "
                       "first block on one test sequence.")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--protocols", nargs="+", default=list(topologies.PROTOCOLS),
                   choices=list(topologies.PROTOCOLS))
    p.add_argument("--length", type=int, default=16, help="sequence length N to draw (default: 16)")
    p.add_argument("--run", help="a run folder written by `sparsemix train` (token tasks)")


def _time_step(module: torch.nn.Module, v: torch.Tensor, steps: int) -> float:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        module(v).square().mean().backward()
        if v.is_cuda:
            torch.cuda.synchronize()

    step()  # warm-up: topologies, allocator, kernels
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Attention(torch.nn.Module):
    """Single-head dense softmax attention with its q/k/v projection (the dense anchor)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(channels, 3 * channels)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        q, k, val = self.qkv(v).chunk(3, dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, val)


def bench_main(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.batch < 1 or args.channels < 1 or min(args.lengths) < 1:
        raise ValueError("--steps, --batch, --channels and --lengths must be >= 1")
    device = _device(args.device)
    rows = []
    print(f"| N | {' | '.join(args.backends)} |  (seconds per fwd+bwd, B={args.batch}, "
          f"C={args.channels}, {args.protocol}, {device}, {torch.get_num_threads()} threads)")
    print("|---" * (len(args.backends) + 1) + "|")
    for n in args.lengths:
        row: dict[str, Any] = {"N": n}
        for backend in args.backends:
            torch.manual_seed(0)
            if backend == "attention":
                module = _Attention(args.channels)
            else:
                module = _make_block(args, n, backend)
            v = torch.randn(args.batch, n, args.channels, device=device)
            row[backend] = _time_step(module.to(device), v, args.steps)
        rows.append(row)
        print(f"| {n} | " + " | ".join(f"{row[b]:.4f}" for b in args.backends) + " |", flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    return 0


def _device(name: str) -> torch.device:
    """``--device`` as a torch device that exists here, else a ValueError naming the option."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device must be cpu or cuda[:i], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here (torch "
                         f"{torch.__version__}, torch.cuda.is_available() is False); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda[:i], got {name!r}")
    return device


def _make_block(args: argparse.Namespace, n: int, backend: str) -> torch.nn.Module:
    return Paramixer(args.channels, protocol=args.protocol, max_len=n, backend=backend)


def plot_main(args: argparse.Namespace) -> int:
    if args.length < 1:
        raise ValueError(f"--length must be an integer >= 1, got {args.length}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    written = []
    for protocol in args.protocols:
        topo = topologies.get(protocol, args.length)
        for name, draw in (("factor", lambda: draw_factor(topo, topo.num_factors - 1)),
                           ("network", lambda: draw_network(topo)),
                           ("reachability", lambda: draw_reachability(topo))):
            result = draw()
            axes = result[0] if isinstance(result, (list, tuple)) else result  # one Axes or a grid
            figure = getattr(axes, "figure", axes)
            path = out / f"{protocol}_{name}_N{args.length}.png"
            figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
    if args.run:
        written.append(_plot_run(args.run, out))
    for path in written:
        print(path)
    return 0


@torch.no_grad()
def fragment_weights(model: torch.nn.Module, tokens: Tensor) -> tuple[list[Tensor], Tensor, Any]:
    """The first Paramixer block's M factor weights [N, K] and its effective mixing matrix [N, N]
    on one fragment (eval mode). Paper block: its weight MLPs read the embedding, as in training;
    encoder model (``block="encoder"``): the first layer's mixing, whose MLPs read the layer's
    normalised input (after the stem, if any)."""
    model.eval()
    h = model.embed(tokens[None])[0]  # [N, C]
    if getattr(model, "stem", None) is not None:
        h = model.stem(h[None])[0]
    block = model.blocks[0]
    # the first block's own forward returns the weights it used (an encoder layer: gated, its
    # MLPs reading its normalised input; the paper block: its MLPs reading the embedding)
    if hasattr(block, "mixer"):  # a ParamixerEncoderLayer: the mixing sits inside it
        _, weights = block(h, return_weights=True)
        block = block.mixer
    else:
        _, weights = block(h, x=h, return_weights=True)
    return weights, mixing_matrix(block, h, weights=weights), block.topology_for(h.size(0))


def plot_fragment_weights(weights: Sequence[Tensor], matrix: Tensor, path: Path,
                          title: str) -> Path:
    """Left: each factor's learned weights [K slots x N positions] (signed colours, one scale);
    right: the block's effective mixing matrix on the same fragment."""
    plt = pyplot()
    from matplotlib.colors import TwoSlopeNorm  # optional dependency (the viz extra)

    m = len(weights)
    wmax = max(float(w.abs().max()) for w in weights) or 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-wmax, vmax=wmax)
    fig = plt.figure(figsize=(12, 0.45 * m * 1.3 + 2))
    grid = fig.add_gridspec(m, 2, width_ratios=[1.6, 1], wspace=0.25, hspace=0.15)
    for i, w in enumerate(weights):
        ax = fig.add_subplot(grid[i, 0])
        im = ax.imshow(w.T.numpy(), aspect="auto", cmap="RdBu_r", norm=norm,
                       interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(f"W{i + 1}", rotation=0, labelpad=14, fontsize=7, va="center")
        if i < m - 1:
            ax.set_xticks([])
        else:
            ax.set_xlabel("position i (rows: slots k)")
    fig.colorbar(im, ax=fig.axes, location="bottom", fraction=0.03, pad=0.07, aspect=50,
                 label="factor weight")
    ax = fig.add_subplot(grid[:, 1])
    mmax = float(matrix.abs().max()) or 1.0
    im2 = ax.imshow(matrix.numpy(), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -mmax, mmax),
                    interpolation="nearest")
    ax.set_title("effective mixing matrix (I+W_M)...(I+W_1)", fontsize=9)
    ax.set_xlabel("source j")
    ax.set_ylabel("target i")
    fig.colorbar(im2, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_run(run: str, out: Path) -> Path:
    model, cfg, task = load_model(run)
    if task.input != "tokens" or not hasattr(model, "blocks"):
        raise ValueError(f"--run {run}: learned weights can be drawn for Paramixer token models only")
    tokens, _ = task.test[0]
    weights, matrix, _ = fragment_weights(model, tokens)
    return plot_fragment_weights(weights, matrix, out / "run_weights.png",
                                 f"{cfg.task}: learned factor weights and mixing matrix (first block)")
