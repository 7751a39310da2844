import json

import pytest

from sparsemix.cli import main


def test_bench_prints_a_row_per_length_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--lengths", "16", "64", "--channels", "8", "--steps", "1",
                 "--backends", "fused", "message", "--json", str(path)]) == 0
    table = capsys.readouterr().out
    assert "| 16 |" in table and "| 64 |" in table
    rows = json.loads(path.read_text())["rows"]
    assert [r["N"] for r in rows] == [16, 64]
    assert all(r["fused"] > 0 and r["message"] > 0 for r in rows)


def test_bench_rejects_bad_sizes(capsys):
    assert main(["bench", "--lengths", "0"]) == 2
    assert "--lengths must be >= 1" in capsys.readouterr().err


def test_plot_writes_three_pictures_per_protocol(tmp_path):
    assert main(["plot", "--out", str(tmp_path), "--length", "8"]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(f"{p}_{k}_N8.png" for p in ("chord", "cdil")
                           for k in ("factor", "network", "reachability"))


def test_unknown_backend_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--backends", "dense"])
    assert exit_info.value.code == 2
