"""Drawings: every edge is one segment, signed colours are centred at 0, no edge vanishes, files get written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import topologies

pytest.importorskip("matplotlib")
from topologies.drawing import (MIN_ALPHA, draw_factor, draw_matrix, draw_network,  # noqa: E402
                                draw_reachability, edge_collection, pyplot, signed_norm)

from demos import plot_topologies  # noqa: E402  (the demos package, from the repository root)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    pyplot().close("all")


@pytest.mark.parametrize("topo,m", [(topologies.chord(16), 0), (topologies.cdil(16), 3),
                                    (topologies.cdil(1), 0), (topologies.chord(2), 0),
                                    (topologies.chord(300), 2)], ids=["chord16", "cdil16-d8", "n1", "n2", "n300"])
def test_factor_draws_every_edge_once(topo, m) -> None:
    ax = draw_factor(topo, m)
    lines = edge_collection(ax)
    n_edges = topo.num_nodes * topo.num_slots
    assert len(lines.get_segments()) == n_edges  # self-loops and duplicates included
    assert sorted(lines.edge_ids.tolist()) == list(range(n_edges))
    assert np.all(np.asarray(lines.get_linewidths()) > 0)
    # duplicates are drawn apart: no two segments of different edges coincide (N >= 2)
    if topo.num_nodes > 1:
        keys = {np.round(seg, 6).tobytes() for seg in lines.get_segments()}
        assert len(keys) == n_edges


def test_signed_colours_are_centred_and_nothing_vanishes() -> None:
    import matplotlib

    topo = topologies.chord(16)
    w = torch.rand(16, 5, generator=torch.Generator().manual_seed(0)) * 2  # in [0, 2)
    w[3, 2] = -5.0  # the most negative (and largest |w|) edge
    w[7, 1] = 0.0
    w[9, 4] = 5.0
    ax = draw_factor(topo, 0, weights=w, cmap="coolwarm")
    lines = edge_collection(ax)
    colors, widths = lines.get_colors(), np.asarray(lines.get_linewidths())
    where = {int(e): s for s, e in enumerate(lines.edge_ids)}
    cmap = matplotlib.colormaps["coolwarm"]
    neg, zero, pos = where[3 * 5 + 2], where[7 * 5 + 1], where[9 * 5 + 4]
    np.testing.assert_allclose(colors[neg, :3], cmap(0.0)[:3])  # -max|w| -> bottom of the map
    np.testing.assert_allclose(colors[zero, :3], cmap(0.5)[:3])  # 0 -> centre
    np.testing.assert_allclose(colors[pos, :3], cmap(1.0)[:3])
    assert colors[neg, 3] == pytest.approx(1.0) and widths[neg] > 0
    assert colors[zero, 3] == pytest.approx(MIN_ALPHA) and widths[zero] > 0  # weakest still drawn
    assert np.all(colors[:, 3] >= MIN_ALPHA)
    # the collection (and its colorbar) carry the same symmetric scale
    assert lines.norm.vmin == -lines.norm.vmax == -5.0
    assert lines.norm(0.0) == 0.5


def test_signed_norm() -> None:
    norm = signed_norm(torch.tensor([-2.0, 0.5, 1.0, 3.0]))
    assert (norm.vmin, norm.vmax) == (-3.0, 3.0) and norm(0.0) == 0.5 and norm(-2.0) > 0
    zero = signed_norm(np.zeros(3))
    assert (zero.vmin, zero.vmax) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        signed_norm(torch.tensor([1.0, float("nan")]))


def test_weights_shape_is_checked() -> None:
    topo = topologies.chord(16)
    draw_factor(topo, 0, weights=torch.randn(1, 16, 5))  # one example from a batch is fine
    with pytest.raises(ValueError, match=r"weights must be \[N, K\] = \[16, 5\]"):
        draw_factor(topo, 0, weights=torch.randn(2, 16, 5))
    with pytest.raises(ValueError, match="m=4"):
        draw_factor(topo, 4)


@pytest.mark.parametrize("wrap", [True, False])
def test_network_has_all_factor_edges(wrap: bool) -> None:
    topo = topologies.cdil(16, radius=1)
    ws = [torch.randn(16, 3) for _ in range(topo.num_factors)]
    ax = draw_network(topo, weights=ws, highlight=5, wrap=wrap)
    lines = edge_collection(ax)
    assert len(lines.get_segments()) == topo.num_factors * 16 * 3
    assert sorted(map(tuple, lines.edge_ids.tolist())) == [(m, e) for m in range(4) for e in range(48)]
    assert "reaches 16/16 outputs" in ax.get_title()
    with pytest.raises(ValueError, match="highlight"):
        draw_network(topo, highlight=16)
    with pytest.raises(ValueError, match="weights"):
        draw_network(topo, weights=ws[:2])
    with pytest.raises(ValueError, match="max_edges=100"):
        draw_network(topo, max_edges=100)  # 4 * 48 = 192 edges
    with pytest.raises(ValueError, match="max_edges"):
        draw_factor(topologies.chord(2 ** 16), 0)  # 1.1M edges: refused, not drawn for minutes


def test_reachability_panels_and_matrix(tmp_path: Path) -> None:
    topo = topologies.chord(13)
    axes = draw_reachability(topo)
    assert len(axes) == topo.num_factors
    assert [ax.get_title() for ax in axes][-1].endswith("(complete)")
    assert not axes[0].get_title().endswith("(complete)")
    with pytest.raises(ValueError, match="max_nodes"):
        draw_reachability(topologies.chord(5000))
    ax = draw_matrix(topo.dense(0, -torch.ones(13, topo.num_slots)), title="factor")
    image = ax.images[0]
    assert image.norm.vmin == -image.norm.vmax == -1.0
    path = tmp_path / "matrix.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000


def test_demo_writes_files(tmp_path: Path) -> None:
    written = plot_topologies.main(["--out", str(tmp_path), "--n", "8", "--large-n", "8", "--curve-n", "12",
                                    "--protocols", "cdil", "--dpi", "30"])
    assert sorted(p.name for p in written) == [
        "cdil_n8_factor1.png", "cdil_n8_factor3.png", "cdil_n8_network.png", "cdil_n8_reachability.png",
        "reach_curve_n12.png"]
    for p in written:
        assert p.parent == tmp_path and p.stat().st_size > 1000
