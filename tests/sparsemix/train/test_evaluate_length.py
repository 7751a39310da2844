"""``sparsemix evaluate --length``: a trained run tested on sequences of another length."""
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from sparsemix.cli import main
from sparsemix.train import TrainConfig, evaluate, train
from sparsemix.train.inference import check_length_fits

TINY = dict(train_size=16, val_size=8, test_size=8, batch_size=8, channels=8, epochs=1,
            max_steps_per_epoch=2, quiet=True, seed=1)


def _train(tmp_path, name, **kw) -> str:
    out = str(tmp_path / name)
    train(TrainConfig(out=out, **{**TINY, **kw}))
    return out


def _digest(folder: str) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """order-varlen trained on lengths <= 64, positions off, the model sized for 256."""
    return _train(tmp_path_factory.mktemp("ev"), "short", task="order-varlen", length=64,
                  positional=False, extra={"max_len": 256})


def test_evaluate_at_twice_the_length(short_run, capsys):
    before = _digest(short_run)
    res = evaluate(short_run, length=128, test_size=12)
    assert res["length"] == 128 and res["count"] == 12 and res["task"] == "order-varlen"
    assert 0.0 <= res["accuracy"] <= 1.0
    assert evaluate(short_run, length=128, test_size=12) == res  # seeded from the run: the same set
    assert "length" not in evaluate(short_run)  # without --length: the run's own test split
    assert main(["evaluate", "--out", short_run, "--length", "128", "--test-size", "12"]) == 0
    assert '"length": 128' in capsys.readouterr().out
    assert _digest(short_run) == before  # the run folder is only read


def test_paramixer_refuses_beyond_its_max_len(short_run, capsys):
    assert main(["evaluate", "--out", short_run, "--length", "512"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--length 512" in err and "max_len 256" in err
    assert "factors" in err


def test_learned_positions_refuse_a_longer_length(tmp_path, capsys):
    out = _train(tmp_path, "pos", task="order", length=16, positional=True)
    assert main(["evaluate", "--out", out, "--length", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--length 32" in err and "positional" in err
    assert evaluate(out, length=8)["length"] == 8  # shorter fits the position table


def test_transformer_without_positions_takes_any_length(tmp_path):
    out = _train(tmp_path, "tf", task="adding-varlen", length=64, model="transformer",
                 num_layers=1, positional=False)
    res = evaluate(out, length=128, test_size=8)
    assert res["length"] == 128 and res["count"] == 8 and res["loss"] >= 0


def test_flatten_pooling_takes_exactly_its_length(tmp_path, capsys):
    out = _train(tmp_path, "flat", task="adding", length=16, pooling="flatten")
    assert main(["evaluate", "--out", out, "--length", "24"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--length 24" in err and "flatten" in err


@pytest.mark.parametrize("value, words", [("0", "must be an integer >= 2, got '0'"),
                                          ("-4", "must be an integer >= 2, got '-4'"),
                                          ("1.5", "expected an integer, got '1.5'"),
                                          ("abc", "expected an integer, got 'abc'")])
def test_bad_length_values_are_refused_in_words(tmp_path, capsys, value, words):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--out", str(tmp_path / "none"), "--length", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--length" in err and words in err
    assert not (tmp_path / "none").exists()


def test_test_size_needs_length_and_the_test_split(short_run, capsys):
    assert main(["evaluate", "--out", short_run, "--test-size", "4"]) == 2
    assert "--test-size" in capsys.readouterr().err
    assert main(["evaluate", "--out", short_run, "--length", "128", "--split", "val",
                 "--test-size", "4"]) == 2
    assert "--test-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--out", short_run, "--test-size", "0"])
    assert "--test-size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--length must be an integer >= 2"):
        evaluate(short_run, length=True)


def test_what_each_model_can_take_beyond_max_len():
    task = SimpleNamespace(max_len=64)

    def check(length, **kw):
        check_length_fits(TrainConfig(**{"task": "order-varlen", "out": "unused", **kw}), task,
                          length)

    check(64, positional=True)  # up to max_len: every model
    check(1000, model="transformer", positional=False)
    for kw, words in [(dict(positional=True), "learned positions"),
                      # auto: the Transformer keeps positions on Order, the encoder drops them
                      (dict(task="order", model="transformer", positional=None),
                       "learned positions"),
                      (dict(task="order", positional=None), "Paramixer's number of factors"),
                      (dict(positional=False), "Paramixer's number of factors"),
                      (dict(model="cdil-cnn", positional=False), "CDIL-CNN's number of layers")]:
        with pytest.raises(ValueError, match=f"--length 65 is longer than .*{words}"):
            check(65, **kw)
    with pytest.raises(ValueError, match="--length applies to the synthetic tasks.*'fasta'"):
        check(32, task="fasta")
