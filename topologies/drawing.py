"""Pictures of factor graphs: one factor on a circle, the unrolled log N-depth network, reachability and
matrix heatmaps.

matplotlib is imported lazily inside the functions (it is an optional extra, like networkx for
:meth:`Topology.to_networkx`). Edges are drawn with one :class:`~matplotlib.collections.LineCollection`
per picture, never with arrow patches, so tens of thousands of edges draw in well under a second.

Signed weights use a diverging colormap centred at 0 and scaled by ``max |w|`` (a symmetric
:class:`~matplotlib.colors.Normalize`), and every edge keeps a nonzero line width and alpha, so the most
negative edge never vanishes (unlike a min-max normalisation).

Reaching the edges of a drawing::

    ax = draw_factor(chord(16), m=0)
    lines = edge_collection(ax)          # the LineCollection, one segment per edge
    len(lines.get_segments())            # == N * K, self-loops included (drawn as small loops)
    lines.edge_ids                       # edge id e = i*K + k of every segment, in drawing order

Example:
    >>> from topologies import cdil
    >>> from topologies.drawing import draw_factor
    >>> ax = draw_factor(cdil(16, radius=1), m=3)
    >>> ax.figure.savefig("factor.png")  # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .topology import Topology

if TYPE_CHECKING:  # matplotlib is an optional extra, imported lazily
    from matplotlib.axes import Axes
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

__all__ = ["draw_factor", "draw_network", "draw_reachability", "draw_matrix", "edge_collection",
           "signed_norm", "pyplot"]

EDGE_GID = "topology-edges"  # gid of the LineCollection holding one segment per edge
MIN_ALPHA = 0.35  # no edge may vanish: the weakest edge keeps this alpha ...
MIN_WIDTH = 0.5  # ... and this line width (points)
MAX_EDGES = 250_000  # default refusal threshold: a picture with more edges is a grey blur (and slow)
_ArrayLike = Union[Tensor, np.ndarray]


# ---- helpers --------------------------------------------------------------------------------------
def pyplot():
    """pyplot, on the non-interactive Agg backend when no display exists and nothing was chosen yet."""
    import matplotlib

    if ("matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND")
            and not os.environ.get("DISPLAY") and sys.platform.startswith("linux")):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numpy(name: str, value: _ArrayLike) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def _factor_weights(topo: Topology, name: str, weights: _ArrayLike) -> np.ndarray:
    """weights [N, K] (leading size-1 dims allowed, e.g. [1, N, K] from a batch of one) as float64."""
    w = _numpy(name, weights)
    while w.ndim > 2 and w.shape[0] == 1:
        w = w[0]
    if w.shape != (topo.num_nodes, topo.num_slots):
        raise ValueError(f"{name} must be [N, K] = [{topo.num_nodes}, {topo.num_slots}] (one example; "
                         f"select it from a batch first), got {list(_numpy(name, weights).shape)}")
    return w


def signed_norm(values: _ArrayLike) -> "Normalize":
    """A :class:`~matplotlib.colors.Normalize` symmetric around 0: ``[-max|v|, +max|v|]`` (1 if all zero)."""
    from matplotlib.colors import Normalize

    v = _numpy("values", values)
    bound = float(np.abs(v).max()) if v.size else 0.0
    if not math.isfinite(bound):
        raise ValueError("values must be finite to be drawn, got inf or nan")
    bound = bound if bound > 0 else 1.0
    return Normalize(vmin=-bound, vmax=bound)


def _style_by_weight(w: np.ndarray, norm: "Normalize", cmap: Any, max_width: float):
    """Colours (alpha folded in), widths and a drawing order (weak first, strong on top) for weights."""
    import matplotlib

    cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    strength = np.abs(w) / norm.vmax  # in [0, 1]
    colors = cmap(norm(w))
    colors[:, 3] = MIN_ALPHA + (1.0 - MIN_ALPHA) * strength
    widths = MIN_WIDTH + (max_width - MIN_WIDTH) * strength
    order = np.argsort(strength, kind="stable")
    return colors, widths, order


def _edges(lines: "LineCollection", edge_ids: np.ndarray) -> "LineCollection":
    lines.set_gid(EDGE_GID)
    lines.edge_ids = edge_ids  # segment s draws edge edge_ids[s]
    return lines


def edge_collection(ax: "Axes") -> "LineCollection":
    """The LineCollection of a drawing made by this module (one segment per edge, see module docstring)."""
    found = [c for c in ax.collections if c.get_gid() == EDGE_GID]
    if len(found) != 1:
        raise ValueError(f"ax holds {len(found)} edge collections; pass an Axes drawn by topologies.drawing")
    return found[0]


def _new_axes(ax: Optional["Axes"], figsize: tuple[float, float]) -> "Axes":
    if ax is not None:
        return ax
    _, ax = pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def _circle_positions(n: int) -> np.ndarray:
    """[N, 2]: node 0 at the top, then clockwise like a clock face."""
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _duplicate_rank(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """[E]: how many earlier edges join the same (source, target) pair (0 for the first of each)."""
    key = src.astype(np.int64) * n + dst
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])  # first of each group
    group_start = starts[np.searchsorted(starts, np.arange(len(key)), side="right") - 1]
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - group_start
    return rank


def _factor_segments(topo: Topology, m: int, points: int = 24) -> np.ndarray:
    """[N*K, points, 2] polylines in edge order e = i*K + k.

    A chord j -> i is a quadratic Bezier curve bent to one side (the side flips with the direction, so
    j -> i and i -> j stay apart); duplicate edges (CDIL slots landing on the same source) bend by
    +b, -b, +2b, -2b, ... so each stays visible. A self-loop (offset 0 mod N) is a small circle just
    outside its node, one ring per duplicate, growing outwards.
    """
    n, k = topo.num_nodes, topo.num_slots
    pos = _circle_positions(n)
    src, dst = topo.edge_index(m).cpu().numpy()  # [E] each
    rank = _duplicate_rank(src, dst, n)
    bend = 0.12 * (1 + rank // 2) * np.where(rank % 2 == 0, 1.0, -1.0)  # [E]
    p0, p2 = pos[src], pos[dst]  # [E, 2]: from the source j to the target i
    along = p2 - p0
    normal = np.stack([-along[:, 1], along[:, 0]], axis=1)  # [E, 2], |normal| = |chord|
    p1 = (p0 + p2) / 2 + bend[:, None] * normal
    t = np.linspace(0.0, 1.0, points)[None, :, None]  # [1, T, 1]
    curves = (1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * p1[:, None] + t ** 2 * p2[:, None]

    loops = src == dst
    if loops.any():
        radius = min(0.07, 1.0 / max(n, 1)) * (1 + 0.3 * rank[loops])[:, None]  # [L, 1]
        centre = pos[dst[loops]] * (1 + radius)  # [L, 2], outside the ring
        theta = np.linspace(0, 2 * np.pi, points)[None, :]  # [1, T]
        ring = np.stack([np.cos(theta), np.sin(theta)], axis=-1)  # [1, T, 2]
        curves[loops] = centre[:, None] + ring * radius[:, :, None]
    return curves


def _slot_label(topo: Topology, m: int, slot: int) -> str:
    o = int(topo.offsets[m, slot])
    reduced = o % topo.num_nodes
    text = f"slot {slot}: i reads i{o:+d}" if o else f"slot {slot}: i reads i (self)"
    if o and reduced == 0:
        return text + " = i (self)"
    if o and reduced != o:
        return text + f" = i+{reduced}"
    return text


def _check_factor(topo: Topology, m: int) -> int:
    if not isinstance(topo, Topology):
        raise TypeError(f"topo must be a topologies.Topology, got {type(topo).__name__}")
    return topo.check_factor(m)


def _check_edge_count(count: int, max_edges: int, what: str) -> None:
    if count > max_edges:
        raise ValueError(f"{what} would draw {count:,} edges, more than max_edges={max_edges:,}; "
                         f"use a smaller num_nodes or pass a larger max_edges")


def _offset_text(topo: Topology, m: int) -> str:
    return "[" + ", ".join(f"{o:+d}" if o else "0" for o in topo.offsets[m].tolist()) + "]"


# ---- one factor on a circle -----------------------------------------------------------------------
def draw_factor(topo: Topology, m: int = 0, weights: Optional[_ArrayLike] = None,
                ax: Optional["Axes"] = None, *, cmap: Any = "coolwarm", norm: Optional["Normalize"] = None,
                labels: Optional[bool] = None, max_width: float = 2.5, colorbar: bool = True,
                title: Optional[str] = None, max_edges: int = MAX_EDGES) -> "Axes":
    r"""Draw factor ``m`` of ``topo`` with its nodes on a circle (node 0 at the top, clockwise).

    All :math:`N \cdot K` edges are drawn, one LineCollection segment each (duplicates included, self-loops
    as small loops outside their node). Without ``weights`` edges are coloured by slot, with a legend of
    the offsets; with ``weights`` [N, K] (row i = target, column k = slot, exactly what
    ``SparseFactorConv(..., return_weights=True)`` returns) they are coloured by a diverging map centred
    at 0 and scaled by ``max |w|``, with width and alpha growing with ``|w|`` from a nonzero minimum.

    Args:
        topo: the topology.
        m: factor index (0-based, negative counts from the end).
        weights: optional [N, K] weights of this factor (leading size-1 dims are dropped).
        ax: Axes to draw into; a new figure when None.
        cmap: diverging colormap for weights.
        norm: colour normalisation; default :func:`signed_norm` of ``weights`` (pass one to share a scale).
        labels: write node numbers; default when N <= 32.
        max_width: line width of the strongest edge (points).
        colorbar: add a colorbar when weights are given.
        title: Axes title; a description of the factor by default.
        max_edges: refuse to draw more than this many edges (raise, naming the limit).

    Returns:
        The Axes. :func:`edge_collection` returns its LineCollection.
    """
    m = _check_factor(topo, m)
    n, k = topo.num_nodes, topo.num_slots
    _check_edge_count(n * k, max_edges, "draw_factor")
    from matplotlib.collections import LineCollection

    ax = _new_axes(ax, (8.8, 6.0) if weights is None else (7.4, 6.0))
    segments = _factor_segments(topo, m)  # [E, T, 2]
    edge_ids = np.arange(n * k)
    if weights is None:
        import matplotlib

        palette = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
        slot = edge_ids % k
        colors = palette(slot % palette.N)
        colors[:, 3] = 0.8 if n * k <= 2000 else 0.35
        widths = np.full(n * k, 1.2 if n <= 64 else 0.5)
        order = edge_ids
    else:
        w = _factor_weights(topo, "weights", weights).reshape(-1)  # [E] in edge order
        norm = signed_norm(w) if norm is None else norm
        colors, widths, order = _style_by_weight(w, norm, cmap, max_width)
    lines = LineCollection(segments[order], colors=colors[order], linewidths=widths[order],
                           capstyle="round", zorder=1)
    if weights is not None:  # colours are explicit; the scale rides along for colorbars and tests
        lines.set_cmap(cmap)
        lines.set_norm(norm)
    ax.add_collection(_edges(lines, edge_ids[order]))

    pos = _circle_positions(n)
    show_labels = n <= 32 if labels is None else labels
    size = 260 if show_labels else max(1.0, 1500.0 / n)
    ax.scatter(pos[:, 0], pos[:, 1], s=size, c="white" if n <= 64 else "black",
               edgecolors="black", linewidths=0.8 if n <= 64 else 0.0, zorder=3)
    if show_labels:
        for i, (x, y) in enumerate(pos):
            ax.text(x, y, str(i), ha="center", va="center", fontsize=8, zorder=4)

    if weights is None:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=palette(s % palette.N), lw=2, label=_slot_label(topo, m, s))
                   for s in range(k)]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                  frameon=False, title="edge colour = slot (mod N)", title_fontsize=9)
    elif colorbar:
        from matplotlib.cm import ScalarMappable

        ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.75,
                           label="weight w[i, k] (0 = centre)")

    loops = int((topo.edge_index(m)[0] == topo.edge_index(m)[1]).sum())
    if title is None:
        title = (f"{topo.name.upper()} N={n}: factor {m + 1} of {topo.num_factors}\n"
                 f"offsets {_offset_text(topo, m)}, {n * k} edges ({loops} self-loops)")
    ax.set_title(title, fontsize=10)
    pad = 1.25
    ax.set_xlim(-pad, pad)
    ax.set_ylim(-pad, pad)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax


# ---- the unrolled network ---------------------------------------------------------------------------
def _reached_from(topo: Topology, source: int) -> list[np.ndarray]:
    """Bool [N] per layer 0..M: which nodes depend on input ``source`` after m factors (with residuals)."""
    reach = np.zeros(topo.num_nodes, dtype=bool)
    reach[source] = True
    layers = [reach]
    for m in range(topo.num_factors):
        src, dst = topo.edge_index(m).cpu().numpy()
        reach = reach.copy()
        reach[dst[layers[-1][src]]] = True
        layers.append(reach)
    return layers


def _layer_segments(src: np.ndarray, dst: np.ndarray, m: int, n: int, wrap: bool) -> np.ndarray:
    """[E, 5, 2] polylines from (m, row src) to (m + 1, row dst), y = N - 1 - row (row 0 on top).

    With ``wrap`` an edge whose circular distance is shorter across the row 0 / row N-1 seam is cut into
    two pieces, exit at the border, a NaN (a gap), re-entry at the opposite border: still ONE segment per
    edge, so ``edge_collection`` counts stay exact.
    """
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    virtual = dst.copy()  # the target row on the short way round, possibly outside [0, N)
    if wrap:
        virtual[dst - src > n / 2] -= n  # shorter going up through row 0
        virtual[src - dst > n / 2] += n  # shorter going down through row N-1
    border = np.where(virtual < 0, -0.5, n - 0.5)  # row where a wrapped edge leaves
    wrapped = virtual != dst
    frac = np.where(wrapped, (border - src) / np.where(wrapped, virtual - src, 1.0), 0.5)  # [E]
    x_cut = m + frac
    rows = np.stack([src, np.where(wrapped, border, (src + dst) / 2),
                     np.where(wrapped, np.nan, (src + dst) / 2),
                     np.where(wrapped, n - 1 - border, (src + dst) / 2), dst], 1)  # [E, 5]
    xs = np.stack([np.full_like(src, m), x_cut, x_cut, x_cut, np.full_like(src, m + 1)], 1)
    return np.stack([xs, n - 1 - rows], -1)


def draw_network(topo: Topology, weights: Optional[Union[Sequence[_ArrayLike], _ArrayLike]] = None,
                 ax: Optional["Axes"] = None, *, highlight: Optional[int] = None, cmap: Any = "coolwarm",
                 labels: Optional[bool] = None, wrap: bool = True, max_width: float = 2.0,
                 colorbar: bool = True, title: Optional[str] = None, max_edges: int = MAX_EDGES) -> "Axes":
    r"""Draw all M factors as the unrolled log N-depth network: M + 1 columns of N nodes.

    Column m holds the sequence after m factors (column 0 = input); factor m's N·K edges run from source j
    in column m to target i in column m + 1 (row 0 at the top). The residual ``+ V`` is the offset-0 slot's
    support, already drawn. ``highlight=j`` colours every edge on a path from input j and marks the nodes it
    has reached, so one sees its influence widen to every output by the last column.

    Args:
        topo: the topology.
        weights: optional M weight tensors [N, K] (a list, or [M, N, K]); one colour scale for all factors.
        ax: Axes to draw into; a new figure when None.
        highlight: an input node whose paths are emphasised (others drawn faint grey).
        cmap: diverging colormap for weights.
        labels: write row numbers; default when N <= 32.
        wrap: draw each edge the short way around the cycle: an edge whose wrap-around distance is
            shorter leaves through the top (bottom) edge and re-enters at the bottom (top), as on a
            cylinder cut open, so offsets +-d look local instead of spanning the whole height.
        max_width: width of the strongest edge (points).
        colorbar: add a colorbar when weights are given.
        title: Axes title.
        max_edges: refuse to draw more than this many edges in all (raise, naming the limit).

    Returns:
        The Axes; :func:`edge_collection` holds M·N·K segments, ``edge_ids`` is [M·N·K, 2] of (m, e).
    """
    if not isinstance(topo, Topology):
        raise TypeError(f"topo must be a topologies.Topology, got {type(topo).__name__}")
    n, k, mm = topo.num_nodes, topo.num_slots, topo.num_factors
    _check_edge_count(mm * n * k, max_edges, "draw_network")
    if highlight is not None and (isinstance(highlight, bool) or not isinstance(highlight, int)
                                  or not 0 <= highlight < n):
        raise ValueError(f"highlight must be an input node in [0, {n}), got {highlight!r}")
    if weights is not None and len(weights) != mm:
        raise ValueError(f"weights must hold one [N, K] tensor per factor ({mm}), got {len(weights)}")
    from matplotlib.collections import LineCollection

    ax = _new_axes(ax, (1.3 * mm + 2.5, max(4.0, min(12.0, 0.32 * n + 1.5))))
    y = (n - 1 - np.arange(n)).astype(float)  # row 0 at the top
    segs, ids = [], []
    for m in range(mm):
        src, dst = topo.edge_index(m).cpu().numpy()
        segs.append(_layer_segments(src, dst, m, n, wrap))  # [E, 5, 2]
        ids.append(np.stack([np.full(n * k, m), np.arange(n * k)], 1))
    segments, edge_ids = np.concatenate(segs), np.concatenate(ids)  # [M*E, 5, 2], [M*E, 2]

    norm = None
    if weights is not None:
        w = np.concatenate([_factor_weights(topo, f"weights[{m}]", weights[m]).reshape(-1)
                            for m in range(mm)])
        norm = signed_norm(w)
        colors, widths, order = _style_by_weight(w, norm, cmap, max_width)
    else:
        colors = np.tile(np.array([[0.25, 0.25, 0.45, 0.6 if n <= 64 else 0.25]]), (len(segments), 1))
        widths = np.full(len(segments), 0.9 if n <= 64 else 0.3)
        order = np.arange(len(segments))
    if highlight is not None:
        reached = _reached_from(topo, highlight)
        on_path = np.concatenate([reached[m][topo.edge_index(m)[0].cpu().numpy()] for m in range(mm)])
        if weights is None:
            colors[on_path] = (0.85, 0.2, 0.1, 0.9 if n <= 64 else 0.35)
            widths[on_path] = 1.3 if n <= 64 else 0.5
        colors[~on_path] = (0.6, 0.6, 0.6, 0.15 if n <= 64 else 0.05)
        widths[~on_path] = MIN_WIDTH if n <= 64 else 0.2
        order = np.concatenate([order[~on_path[order]], order[on_path[order]]])  # paths on top
    lines = LineCollection(segments[order], colors=colors[order], linewidths=widths[order], zorder=1)
    if norm is not None:
        lines.set_cmap(cmap)
        lines.set_norm(norm)
    ax.add_collection(_edges(lines, edge_ids[order]))

    if wrap:  # the seam of the cylinder: wrapped edges leave on one side, come back on the other
        for border in (-0.5, n - 0.5):
            ax.axhline(border, color="0.6", lw=0.6, ls=(0, (4, 4)), zorder=0)
    show_labels = n <= 32 if labels is None else labels
    size = 60 if n <= 32 else max(1.0, 600.0 / n)
    for m in range(mm + 1):
        face = "white"
        if highlight is not None:
            face = np.where(reached[m], "#d9331a", "white")
        ax.scatter(np.full(n, m), y, s=size, c=face, edgecolors="black", linewidths=0.5, zorder=3)
    if show_labels:
        for i in range(n):
            ax.text(-0.15, y[i], str(i), ha="right", va="center", fontsize=7)
    ax.set_xticks(range(mm + 1), ["input"] + [f"after W{m + 1}" for m in range(mm)], fontsize=8)
    ax.set_yticks([])
    ax.tick_params(axis="x", length=0)
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlim(-0.5, mm + 0.3)
    ax.set_ylim(-0.6, n - 0.4)
    if weights is not None and colorbar:
        from matplotlib.cm import ScalarMappable

        ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.75,
                           label="weight (one scale for all factors)")
    if title is None:
        title = f"{topo.name.upper()} N={n}: {mm} factors unrolled ({mm} x {n * k} edges)"
        if highlight is not None:
            title += f"\npaths from input {highlight}: reaches {int(reached[-1].sum())}/{n} outputs"
        if wrap:
            title += "\n(drawn on a cylinder: edges crossing the dashed seam wrap around mod N)"
    ax.set_title(title, fontsize=10)
    return ax


# ---- heatmaps ---------------------------------------------------------------------------------------
def draw_reachability(topo: Topology, factors: Optional[Sequence[int]] = None,
                      axes: Optional[Sequence["Axes"]] = None,
                      *, max_nodes: int = 4096, title: Optional[str] = None) -> list["Axes"]:
    """Heatmaps of ``topo.reachability(num_factors=m)`` for m in ``factors`` (default 1..M).

    Entry [i, j] is filled when output i depends on input j after the first m factors (with residuals),
    so the panels show the support fill up and become complete (all N² entries) at m = M.

    Args:
        topo: the topology.
        factors: how many factors each panel applies (each in 1..M); default ``range(1, M + 1)``.
        axes: one Axes per panel; a new figure (one row) when None.
        max_nodes: refuse N above this (an N x N image per panel).
        title: figure title (suptitle) when the figure is created here.

    Returns:
        The list of Axes.
    """
    if not isinstance(topo, Topology):
        raise TypeError(f"topo must be a topologies.Topology, got {type(topo).__name__}")
    n = topo.num_nodes
    if n > max_nodes:
        raise ValueError(f"draw_reachability draws N x N images; num_nodes={n} exceeds max_nodes={max_nodes}")
    factors = list(range(1, topo.num_factors + 1)) if factors is None else list(factors)
    for c in factors:
        if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= topo.num_factors:
            raise ValueError(f"factors must hold ints in [1, {topo.num_factors}], got {c!r}")
    if axes is None:
        cols = min(len(factors), 4)
        rows = -(-len(factors) // cols)
        fig, grid = pyplot().subplots(rows, cols, figsize=(2.5 * cols + 0.4, 2.7 * rows + 0.4),
                                      layout="constrained", squeeze=False)
        for ax in grid.flat[len(factors):]:
            ax.set_visible(False)
        axes = list(grid.flat[:len(factors)])
        fig.suptitle(title or f"{topo.name.upper()} N={n}: which inputs j reach output i after m factors",
                     fontsize=10)
    elif len(axes) != len(factors):
        raise ValueError(f"axes must hold one Axes per panel ({len(factors)}), got {len(axes)}")
    for ax, c in zip(axes, factors):
        reach = topo.reachability(num_factors=c).cpu().numpy()
        filled = reach.mean()
        ax.imshow(reach, cmap="Blues", vmin=0, vmax=1.25,
                  interpolation="nearest" if n <= 128 else "antialiased")
        text = "100% (complete)" if reach.all() else f"{min(99.9, 100 * filled):.1f}%"  # never round up
        ax.set_title(f"m = {c}: {text}", fontsize=9, color="#08306b" if reach.all() else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("input j", fontsize=7)
        ax.set_ylabel("output i", fontsize=7)
    return axes


def draw_matrix(matrix: _ArrayLike, ax: Optional["Axes"] = None, *, cmap: Any = "RdBu_r",
                norm: Optional["Normalize"] = None, colorbar: bool = True, title: Optional[str] = None,
                label: str = "value") -> "Axes":
    """Heatmap of a dense [N, N] matrix (a factor, a product of factors, a mixing matrix).

    Colours are diverging and centred at 0 (:func:`signed_norm`, symmetric ``±max|x|``) unless ``norm`` is
    given, so white means exactly zero: the sparsity pattern and the signs are both visible.

    Args:
        matrix: [N, N] (or [R, C]) tensor or array.
        ax: Axes to draw into; a new figure when None.
        cmap: diverging colormap.
        norm: colour normalisation; default symmetric around 0.
        colorbar: add a colorbar.
        title: Axes title.
        label: colorbar label.

    Returns:
        The Axes.
    """
    a = _numpy("matrix", matrix)
    if a.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {list(a.shape)}")
    norm = signed_norm(a) if norm is None else norm
    ax = _new_axes(ax, (5.0, 4.3))
    image = ax.imshow(a, cmap=cmap, norm=norm, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    ax.set_xlabel("input j")
    ax.set_ylabel("output i")
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax
