"""Every method the speed benchmark can time builds and takes a step at a tiny size (the benchmark
runs them in subprocesses, where a broken method only shows up as a failed cell in a long run)."""
import sys
from pathlib import Path

import pytest

from sparsemix import kernels

# the benchmark scripts import their siblings by plain name, as when run as `python benchmarks/X.py`
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import speed_cells  # noqa: E402

_SKIP = {"sparse": not kernels.HAS_TORCH_SPARSE, "native": not kernels.HAS_NATIVE}
_SLOW = pytest.mark.slow  # torch.compile's first compile takes seconds


def _methods(names):
    return [pytest.param(m, marks=_SLOW) if m == "fused-compiled" else m for m in names]


def _cell(level: str, method: str, n: int) -> dict:
    return {"level": level, "method": method, "batch": 2, "length": n, "channels": 8,
            "protocol": "chord", "threads": 1, "steps": 1, "step_limit_s": 60.0,
            "slow_step_s": 60.0, "heads": 1}


@pytest.mark.parametrize("method", _methods(speed_cells.BLOCK_METHODS))
def test_every_block_method_steps(method):
    if _SKIP.get(method):
        pytest.skip(f"{method} is not available here")
    cell = speed_cells.run_cell(_cell("block", method, 64))
    assert cell["ok"] and cell["time_s"] > 0 and len(cell["times_s"]) == 1
    if method in ("native", "fused", "fused-ckpt", "message", "sparse"):
        assert cell["active_backend"] == {"fused-ckpt": "fused"}.get(method, method)


@pytest.mark.parametrize("method", _methods(speed_cells.FACTOR_METHODS))
def test_every_factor_method_steps(method):
    if _SKIP.get(method):
        pytest.skip(f"{method} is not available here")
    cell = speed_cells.run_cell(_cell("factor", method, 64))
    assert cell["ok"] and cell["time_s"] > 0
