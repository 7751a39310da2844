"""demos/plot_mixing.py runs end to end at a tiny size and writes its pictures."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from demos import plot_mixing  # noqa: E402  (the demos package, from the repository root)


def test_plot_mixing_writes_pngs(tmp_path: Path, capsys) -> None:
    written = plot_mixing.main(["--out", str(tmp_path), "--sizes", "8", "--steps", "3", "--batch-size", "4",
                                "--protocols", "cdil", "--dpi", "30"])
    expected = {f"cdil_n8_{kind}.png" for kind in ("factor_weights", "network_weights", "mixing")}
    assert {p.name for p in written} == expected
    for p in written:
        assert p.parent == tmp_path and p.stat().st_size > 1000
    assert "max |mixing - target|" in capsys.readouterr().out
