"""demos.dna_species (make demo) runs end to end on tiny stand-in genomes and writes its outputs."""
import json

import pytest

pytest.importorskip("matplotlib")

from demos import dna_species  # noqa: E402  (the demos package, from the repository root)
from tests.sparsemix.tasks.test_dna import fake_catalogue  # noqa: E402,F401  (fixture: 5 tiny species)

TINY = ["--length", "512", "--min-length", "256", "--train-size", "40", "--val-size", "10",
        "--test-size", "20", "--channels", "8"]


def test_demo_writes_its_tables_figures_and_the_trainers_throughput(fake_catalogue, tmp_path, capsys):
    out = tmp_path / "demo"
    # 40 fragments in batches of 8: 5 steps an epoch; 9 steps = 2 epochs of 5 (10 planned)
    summary = dna_species.main(["--out", str(out), *TINY, "--batch-size", "8", "--steps", "9",
                                "--kmer", "0"])
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
    own = ("out", "mixing")  # where, not what or for how long: the same steps, guard and data
    assert {k: v for k, v in mixed.items() if k not in own} == \
        {k: v for k, v in unmixed.items() if k not in own}
    assert (mixed["epochs"], mixed["max_steps_per_epoch"]) == (2, 5)
    assert summary["model"]["steps"] == summary["ablation"]["steps"] == 10
    assert summary["model"]["steps_planned"] == 10 and summary["guard"]["cut"] == []
    assert mixed["time_budget_s"] == 900.0 and mixed["reverse_complement"] is True
    assert mixed["rc_conjoin"] is True and mixed["kmer"] == 0  # the test turns the stem off
    trained = json.loads((out / "train" / "results.json").read_text())
    thr = summary["throughput"]
    assert thr["fragments"] == trained["throughput"]["samples"] == 2 * 40  # 2 whole epochs
    assert thr["bases"] == trained["throughput"]["tokens"]
    assert thr["steps"] == trained["steps"]
    # training fragments drawn afresh every epoch; the baselines fitted on all of them
    assert summary["training_fragments"] == {"resampled_every_epoch": True, "per_epoch": 40,
                                             "epochs": 2, "read_by_the_steps": 80}
    assert summary["baselines_fitted_on"].startswith("the 80 training fragments")
    assert summary["command"].startswith("python -m demos.dna_species --out ")
    assert "training throughput" in capsys.readouterr().out


def test_a_run_cut_by_the_guard_says_so_loudly(fake_catalogue, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = dna_species.main(["--out", str(out), *TINY, "--steps", "4", "--guard-s", "1e-9",
                                "--no-ablation", "--kmer", "0"])
    cut = "Paramixer: CUT BY THE WALL-CLOCK GUARD after 1 of 4 steps"
    assert summary["guard"]["cut"] == [cut + "; its result depends on this machine's speed and load"]
    assert summary["model"]["steps"] == 1 and summary["model"]["stopped"] == "time_budget"
    assert cut in (out / "results.md").read_text()
    assert capsys.readouterr().out.count(cut) == 2  # when it happens, and again at the end
