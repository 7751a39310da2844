"""--kmer and --rc-conjoin: validated, off by default, absent from old configs, wired to the model
for DNA tasks and refused (one line naming the option) for the others."""
import json
import random

import pytest

from sparsemix.cli import main
from sparsemix.models import ReverseComplementConjoined
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig, evaluate, load_model, train
from sparsemix.train.inference import build_model


def _fasta(path, gc, seed, n=6000):
    rng = random.Random(seed)
    seq = "".join(rng.choice("GC") if rng.random() < gc else rng.choice("AT") for _ in range(n))
    path.write_text(">r0\n" + seq + "\n")
    return str(path)


def _dna_cfg(tmp_path, **kw):
    files = [f"low={_fasta(tmp_path / 'a.fa', 0.3, 1)}", f"high={_fasta(tmp_path / 'b.fa', 0.7, 2)}"]
    base = dict(task="fasta", out=str(tmp_path / "run"), fasta=files, length=64, train_size=16,
                val_size=8, test_size=8, epochs=1, channels=8, num_layers=1, batch_size=8,
                quiet=True, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_off_by_default_and_old_configs_load():
    cfg = TrainConfig(task="order", out="x")
    assert cfg.kmer == 0 and cfg.rc_conjoin is False
    data = cfg.to_dict()
    for key in ("kmer", "rc_conjoin"):  # a config.json written before these options
        del data[key]
    loaded = TrainConfig.from_dict(data)
    assert loaded.kmer == 0 and loaded.rc_conjoin is False
    legacy = {k: v for k, v in data.items() if k not in ("config_version", "block", "mix_gain")}
    assert TrainConfig.from_dict(legacy).kmer == 0  # version 1 too


@pytest.mark.parametrize("field, value, message", [
    ("kmer", 13, "--kmer must be 0 (off) or a k-mer length in 1..12"),
    ("kmer", -1, "--kmer must be 0 (off) or a k-mer length in 1..12"),
    ("kmer", True, "--kmer must be 0 (off) or a k-mer length in 1..12"),
    ("rc_conjoin", "yes", "--rc-conjoin must be true or false"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(task="order", out="x", **{field: value}).validate()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_kmer_is_a_paramixer_option():
    with pytest.raises(ValueError, match="--kmer 4 is an option of --model paramixer"):
        TrainConfig(task="order", out="x", kmer=4, model="transformer").validate()


@pytest.mark.parametrize("option", [dict(kmer=3), dict(rc_conjoin=True)])
def test_non_dna_tasks_are_refused_naming_the_option(tmp_path, option):
    cfg = TrainConfig(task="order", out=str(tmp_path / "o"), length=16, train_size=8,
                      val_size=8, test_size=8, **option)
    with pytest.raises(ValueError, match="applies to DNA tasks only") as err:
        build_model(cfg, build_task("order", cfg))
    assert str(err.value).startswith("--kmer 3" if "kmer" in option else "--rc-conjoin")


def test_cli_refuses_kmer_on_a_non_dna_task_in_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["train", "--task", "order", "--out", str(out), "--length", "16",
                 "--train-size", "8", "--val-size", "8", "--test-size", "8", "--kmer", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--kmer 3 applies to DNA tasks only" in err
    assert not (out / "config.json").exists()


def test_dna_options_reach_the_model(tmp_path):
    cfg = _dna_cfg(tmp_path, kmer=5, rc_conjoin=True)
    model = build_model(cfg, build_task("fasta", cfg))
    assert isinstance(model, ReverseComplementConjoined)
    assert model.embed.kmer.k == 5 and model.embed.kmer.base_ids == (3, 4, 5, 6)
    assert model.complement.tolist() == [0, 1, 2, 6, 5, 4, 3, 7]
    for model_name in ("transformer", "cdil-cnn"):
        other = _dna_cfg(tmp_path, model=model_name, rc_conjoin=True)
        assert isinstance(build_model(other, build_task("fasta", other)),
                          ReverseComplementConjoined)


def test_a_run_with_both_trains_saves_and_loads(tmp_path):
    cfg = _dna_cfg(tmp_path, kmer=3, rc_conjoin=True)
    train(cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["kmer"] == 3 and saved["rc_conjoin"] is True
    model, loaded, _ = load_model(cfg.out)
    assert isinstance(model, ReverseComplementConjoined) and not model.training
    assert loaded.kmer == 3
    assert 0.0 <= evaluate(cfg.out)["accuracy"] <= 1.0
