"""benchmarks/train_step.py runs end to end at tiny sizes and writes what it promises."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import threads  # noqa: E402
import train_step  # noqa: E402


def test_tiny_run_writes_json_markdown_and_breakdown(tmp_path):
    result = train_step.main(["--out", str(tmp_path), "--lengths", "32", "--tokens", "128",
                              "--steps", "1", "--warmup", "1", "--breakdown-reps", "1",
                              "--weight-mlp", "per-factor,shared"])
    cells = result["cells"]
    assert {(c["model"], c["options"].get("weight_mlp"), c["mode"]) for c in cells} == {
        (m, w, mode) for m, w in (("paramixer", "per-factor"), ("paramixer", "shared"),
                                  ("transformer", None)) for mode in ("fixed", "varlen")}
    for c in cells:
        assert c["step_s"] > 0 and c["tokens_per_s"] > 0 and c["cpu_s"] >= 0
        assert c["tokens_per_step"] >= 128
    varlen = [c for c in cells if c["mode"] == "varlen"]
    assert all(c["sequences"] > 128 // 32 for c in varlen)  # lengths in [N/2, N]: more sequences
    for c in cells:
        if c["model"] == "paramixer":
            assert set(c["breakdown_s"]) == set(train_step.COMPONENTS)
        else:
            assert c["sdpa_kernel"]
    saved = json.loads((tmp_path / "train_step.json").read_text())
    assert saved["machine"]["threads"] == 1 and saved["machine"]["loadavg_start"] is not None
    md = (tmp_path / "train_step.md").read_text()
    assert "| transformer | 32 | fixed |" in md and "weight MLPs" in md
    assert "| paramixer (weight_mlp=shared) | 32 | varlen |" in md
    assert (tmp_path / "train_step.png").stat().st_size > 0


def test_varlen_batches_draw_fresh_lengths_in_range():
    steps = train_step.step_batches(64, 1000, True, 3)
    lengths = [[len(x) for x, _ in items] for items in steps]
    assert all(32 <= n <= 64 for ls in lengths for n in ls)
    assert all(sum(ls) >= 1000 for ls in lengths)
    assert lengths[0] != lengths[1]  # a cache keyed by the lengths cannot hit


def test_mix_mode_times_both_mixings_with_their_options(tmp_path):
    result = train_step.main(["--out", str(tmp_path), "--lengths", "32", "--tokens", "64",
                              "--steps", "1", "--warmup", "0", "--modes", "fixed",
                              "--models", "paramixer", "--mix-mode", "sum,average", "--no-breakdown"])
    assert [c["options"] for c in result["cells"]] == [train_step.MIXINGS["sum"],
                                                       train_step.MIXINGS["average"]]
    assert all(c["tokens_per_s"] > 0 for c in result["cells"])
    assert "| paramixer (mix_mode=average) | 32 | fixed |" in (tmp_path / "train_step.md").read_text()


@pytest.mark.parametrize("argv, words", [(["--lengths", "abc"], "--lengths"),
                                         (["--mix-mode", "mean"], "--mix-mode must name")])
def test_bad_option_exits_2(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as err:
        train_step.main(["--out", str(tmp_path), *argv])
    assert err.value.code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "train_step.json").exists()


def test_threads_benchmark_times_single_operations():
    rows = threads.ops(1)
    assert [r["op"].split(",")[0] for r in rows] == ["x @ W", "GELU", "add"]
    assert all(r["wall_ms"] > 0 and r["cpu_ms"] >= 0 for r in rows)
