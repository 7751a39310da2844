"""demos.dna_species (make demo) runs end to end on tiny stand-in genomes and writes its outputs."""
import json

import pytest

pytest.importorskip("matplotlib")

from demos import dna_species  # noqa: E402  (the demos package, from the repository root)
from tests.sparsemix.tasks.test_dna import fake_catalogue  # noqa: E402,F401  (fixture: 5 tiny species)


def test_demo_writes_its_tables_figures_and_the_trainers_throughput(fake_catalogue, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = dna_species.main(["--out", str(out), "--length", "512", "--min-length", "256",
                                "--train-size", "40", "--val-size", "10", "--test-size", "20",
                                "--epochs", "1", "--channels", "8", "--budget-s", "600"])
    for name in ("results.json", "results.md", "accuracy_vs_length.png", "confusion.png",
                 "confusion_kmer6.png", "fragment_weights.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text()) == summary
    assert set(summary["test_accuracy"]) == {"Paramixer", "Paramixer, mixing off", "6-mer LR",
                                             "4-mer LR", "GC LR"}
    # the ablation is the same run with identity factors: same data and options, mixing off
    mixed = json.loads((out / "train" / "config.json").read_text())
    unmixed = json.loads((out / "train-no-mixing" / "config.json").read_text())
    assert mixed["mixing"] is True and unmixed["mixing"] is False and mixed["stem"] == "conv"
    own = ("out", "mixing", "time_budget_s", "epochs")  # where and for how long, not what
    assert {k: v for k, v in mixed.items() if k not in own} == \
        {k: v for k, v in unmixed.items() if k not in own}
    assert unmixed["epochs"] == summary["model"]["epochs_done"]  # step-matched: as many epochs
    assert summary["ablation"]["steps"] == summary["model"]["steps"]
    trained = json.loads((out / "train" / "results.json").read_text())
    thr = summary["throughput"]
    assert thr["fragments"] == trained["throughput"]["samples"] == 40  # one epoch: every fragment once
    assert thr["bases"] == trained["throughput"]["tokens"]
    assert thr["steps"] == trained["steps"]
    assert summary["command"].startswith("python -m demos.dna_species --out ")
    assert "training throughput" in capsys.readouterr().out
