"""benchmarks/native_kernel.py: this checkout's op timed as the CPU picks it and forced to SSE2."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import native_kernel  # noqa: E402
from sparsemix.kernels import native  # noqa: E402


@pytest.mark.skipif(not native.HAS_NATIVE, reason="the native op is not built")
def test_both_builds_are_timed_at_both_shapes(tmp_path):
    native_kernel.main(["--out", str(tmp_path), "--reps", "1", "--rounds", "1"])
    saved = json.loads((tmp_path / "native_kernel.json").read_text())
    builds = saved["builds"]
    assert builds["this checkout, baseline ISA"]["isa"] == "baseline"
    assert builds["this checkout"]["isa"] in ("baseline", "avx2+fma")
    for run in builds.values():
        assert [row["shape"] for row in run["shapes"]] == [list(s) for s in native_kernel.SHAPES]
        assert all(row[k] > 0 for row in run["shapes"] for k in ("forward_ms", "grad_v_ms", "grad_w_ms"))
    assert "grad_w ms" in (tmp_path / "native_kernel.md").read_text()
