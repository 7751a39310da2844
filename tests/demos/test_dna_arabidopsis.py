"""demos.dna_arabidopsis runs end to end on tiny stand-in chromosomes: a fixed number of steps, the
baselines on the windows the model trained on, a guard that says when it cut the run."""
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from demos import dna_arabidopsis  # noqa: E402  (the demos package, from the repository root)
from sparsemix.data import genomes  # noqa: E402
from sparsemix.tasks import dna  # noqa: E402
from tests.sparsemix.tasks.test_dna import _write_fasta  # noqa: E402


@pytest.fixture
def fake_plants(tmp_path, monkeypatch):
    """The two chromosomes' keys, species and labels over two tiny files of different GC."""
    fake, paths = {}, {}
    for i, (key, species) in enumerate((("athaliana-tair10-chr1", "A. thaliana"),
                                        ("alyrata-alyr1-chr1-2", "A. lyrata"))):
        paths[key] = Path(_write_fasta(tmp_path / f"{key}.fa", 0.35 + 0.1 * i, i,
                                       records=(40_000,)))
        fake[key] = genomes.Genome(key, species, "X", "ragout-examples", "unused", "X",
                                   min_record_length=1_000)
    monkeypatch.setattr(dna, "GENOMES", fake)
    monkeypatch.setattr(dna, "genome_path", lambda key: paths[key])


TINY = ["--length", "1024", "--baseline-lengths", "512", "--train-size", "16", "--val-size", "8",
        "--test-size", "8", "--batch-size", "4", "--channels", "8", "--kmer", "0"]


def test_demo_trains_the_steps_asked_and_fits_baselines_on_its_windows(fake_plants, tmp_path):
    out = tmp_path / "demo"
    summary = dna_arabidopsis.main(["--out", str(out), *TINY, "--steps", "8"])
    assert json.loads((out / "results.json").read_text()) == summary
    assert summary["model"]["steps"] == summary["model"]["steps_planned"] == 8
    assert summary["guard"]["cut"] == []
    config = json.loads((out / "train" / "config.json").read_text())
    assert (config["epochs"], config["max_steps_per_epoch"]) == (2, 4)  # 16 windows / 4 per step
    assert summary["training_windows"] == {"resampled_every_epoch": True, "per_epoch": 16,
                                           "epochs": 2}
    assert summary["baselines_fitted_on"]["1024"].startswith("32 training windows of 1024 bp")
    assert summary["baselines_fitted_on"]["512"].startswith("32 training windows of 512 bp")
    assert [r["window"] for r in summary["rows"]] == [512, 1024]


def test_a_cut_run_says_so(fake_plants, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = dna_arabidopsis.main(["--out", str(out), *TINY, "--steps", "8", "--guard-s", "1e-9"])
    assert summary["model"]["steps"] == 1
    assert summary["guard"]["cut"][0].startswith(
        "Paramixer: CUT BY THE WALL-CLOCK GUARD after 1 of 8 steps")
    assert "CUT BY THE WALL-CLOCK GUARD" in (out / "results.md").read_text()
    assert capsys.readouterr().out.count("CUT BY THE WALL-CLOCK GUARD after 1 of 8 steps") == 2
