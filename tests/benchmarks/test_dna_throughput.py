"""benchmarks/dna_throughput.py without the genomes: its argument checks and its report."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import dna_throughput  # noqa: E402


@pytest.mark.parametrize("argv, name", [(["--steps", "0"], "--steps"), (["--repeats", "0"], "--repeats"),
                                        (["--min-length", "9000"], "--min-length")])
def test_bad_options_are_refused_by_name(argv, name, capsys):
    with pytest.raises(SystemExit):
        dna_throughput.parse_args(["--out", "x", *argv])
    assert name in capsys.readouterr().err


def test_report_gives_each_run_and_the_ratio_of_medians():
    meta = {"command": "c", "machine": "m", "load_start": [1], "load_end": [1], "min_length": 256,
            "length": 4096, "batch_size": 16, "steps": 60, "threads": 1}
    codes = {"baseline": {"revision": "a", "runs": [{"bases_per_s": 1000.0, "load_avg_1m": 1.0}],
                          "bases_per_s": 1000.0, "cpu_s": 20.0},
             "current": {"revision": "b", "runs": [{"bases_per_s": 2500.0, "load_avg_1m": 1.5}],
                         "bases_per_s": 2500.0, "cpu_s": 8.0}}
    md = dna_throughput.markdown({"meta": meta, "codes": codes,
                                  "speedup": {"bases_per_s": 2.5, "cpu": 2.5}})
    assert "| baseline | a | 1 | 1,000 | 20.0 | 1,000 (1.0) |" in md
    assert "**2.50x** bases/s" in md
