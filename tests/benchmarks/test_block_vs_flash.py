"""benchmarks/block_vs_flash.py: both methods' cells run and give the ratio of their medians."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import block_vs_flash  # noqa: E402


def test_small_run_writes_the_ratio_of_the_medians(tmp_path):
    result = block_vs_flash.main(["--out", str(tmp_path), "--batch", "1", "--length", "64",
                                  "--channels", "8", "--threads", "1", "--steps", "1", "--repeats", "1"])
    saved = json.loads((tmp_path / "block_vs_flash.json").read_text())
    native, attention = saved["methods"]["native"], saved["methods"]["attention"]
    assert len(native["cells"]) == len(attention["cells"]) == 1
    assert attention["kernel"].startswith("flash")  # the 4-d SDPA input picks the flash kernel
    assert saved["ratio"] == native["time_s"] / attention["time_s"] == result["ratio"]
    assert "native / attention" in (tmp_path / "block_vs_flash.md").read_text()
