"""demos.dna_promoter runs end to end on a tiny synthetic chromosome + GFF and writes its outputs."""
import json

import pytest

pytest.importorskip("matplotlib")

from demos import dna_promoter  # noqa: E402  (the demos package, from the repository root)
from tests.sparsemix.tasks.test_promoter import fake_chromosome  # noqa: E402,F401  (fixture)


def test_demo_writes_auroc_per_length_for_every_model(fake_chromosome, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = dna_promoter.main(["--out", str(out), "--lengths", "256", "512", "--steps", "3",
                                 "--train-size", "8", "--val-size", "6", "--test-size", "8",
                                 "--batch-size", "4", "--channels", "8", "--num-layers", "1"])
    for name in ("results.json", "results.md", "auroc_vs_length.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text()) == summary
    aucs = summary["test_roc_auc"]
    assert set(aucs) == set(dna_promoter.MODELS)
    for name, per in aucs.items():
        assert set(per) == {"256", "512"} and all(0.0 <= v <= 1.0 for v in per.values()), name
    for n in ("256", "512"):
        models = summary["per_length"][n]["models"]
        # the ablation takes exactly Paramixer's steps, on the same data, mixing off
        assert models["Paramixer"]["steps"] == models["Paramixer, mixing off"]["steps"] == \
            summary["per_length"][n]["steps_planned"] == 4  # 3 asked, in 2 epochs of 2
        mixed = json.loads((out / f"L{n}" / "train" / "config.json").read_text())
        unmixed = json.loads((out / f"L{n}" / "train-no-mixing" / "config.json").read_text())
        assert mixed["mixing"] is True and unmixed["mixing"] is False
        assert mixed["length"] == int(n) and mixed["positional"] is True  # learned positions
        assert {k: v for k, v in mixed.items() if k not in ("out", "mixing")} == \
            {k: v for k, v in unmixed.items() if k not in ("out", "mixing")}
        assert (out / f"L{n}" / "train" / "manifests" / "test.tsv").exists()
    assert summary["guard"]["cut"] == []
    assert "| Paramixer |" in (out / "results.md").read_text()
    # a second run into the same folder replaces the first
    dna_promoter.main(["--out", str(out), "--lengths", "256", "--steps", "1", "--train-size", "4",
                       "--val-size", "4", "--test-size", "4", "--batch-size", "4",
                       "--channels", "8", "--num-layers", "1", "--no-ablation"])
    assert "6-mer LR" in capsys.readouterr().out


def test_bad_length_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exc:
        dna_promoter.main(["--lengths", "128"])
    assert exc.value.code == 2 and "--lengths" in capsys.readouterr().err
