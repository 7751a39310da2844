"""``sparsemix predict``: a tiny DNA run applied to new FASTA files, end to end.

The runs are trained once per module (task ``fasta`` on two generated files, a few seconds each);
every test then reads them. Predictions are held to ``sparsemix.train.predict`` on the run's own
test split (the same sequences written out as FASTA records).
"""
import csv
import io
import os
import random
import shutil
import stat

import pytest
import torch

from sparsemix.cli import main
from sparsemix.data.fasta import reverse_complement
from sparsemix.errors import RunError
from sparsemix.train import TrainConfig, load_model, predict, predict_fasta, train
from sparsemix.train.checkpoint import load_checkpoint, save_checkpoint
from sparsemix.train.prediction import window_spans
from sparsemix.train.task_spec import task_from_spec, task_spec

LENGTH = 64


def _write_genome(path, gc: float, seed: int, n: int = 6_000) -> str:
    rng = random.Random(seed)
    seq = "".join(rng.choice("GC") if rng.random() < gc else rng.choice("AT") for _ in range(n))
    path.write_text(">chr1 generated\n" + "\n".join(seq[i:i + 60] for i in range(0, n, 60)) + "\n")
    return str(path)


def _train(root, name: str, extra: dict, **options) -> str:
    data = root / "train-data"
    data.mkdir(exist_ok=True)
    a = _write_genome(data / "low.fa", 0.3, 1)
    b = _write_genome(data / "high.fa", 0.65, 2)
    out = root / name
    train(TrainConfig(task="fasta", out=str(out), fasta=[f"low={a}", f"high={b}"], length=LENGTH,
                      train_size=32, val_size=8, test_size=16, epochs=1, channels=8,
                      batch_size=16, quiet=True, reverse_complement=True,
                      extra={"gap": LENGTH, **extra}, **options))
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A variable-length run (fragments 32..64 bp) and a fixed-length one (64 bp)."""
    root = tmp_path_factory.mktemp("predict-runs")
    return {"varlen": _train(root, "varlen", {"min_length": 32}),
            "fixed": _train(root, "fixed", {})}


def _test_split_as_fasta(out: str, path) -> list[bytes]:
    """The run's test fragments (on their manifest strand) as FASTA records frag0, frag1, ..."""
    _, _, task = load_model(out)
    seqs = [task.test.sequence(i) for i in range(len(task.test))]
    path.write_text("".join(f">frag{i} test fragment\n{s.decode()}\n" for i, s in enumerate(seqs)))
    return seqs


def _read_tsv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def _bad(argv, capsys, needle):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("kind", ["varlen", "fixed"])
def test_predict_gives_the_labels_and_probabilities_of_evaluate(runs, kind, tmp_path, capsys):
    out = runs[kind]
    seqs = _test_split_as_fasta(out, tmp_path / "test.fa")
    table = tmp_path / "pred.tsv"
    assert main(["predict", "--out", out, "--fasta", str(tmp_path / "test.fa"),
                 "--output", str(table), "--batch-size", "5"]) == 0
    assert capsys.readouterr().err == ""  # no progress bar off a terminal
    text = table.read_text()
    assert text.splitlines()[0].split("\t") == ["record", "start", "end", "label", "p_low", "p_high"]
    rows = _read_tsv(text)
    assert [r["record"] for r in rows] == [f"frag{i}" for i in range(len(seqs))]
    assert [(int(r["start"]), int(r["end"])) for r in rows] == [(0, len(s)) for s in seqs]
    probs = torch.tensor([[float(r["p_low"]), float(r["p_high"])] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(rows), dtype=torch.float64),
                               atol=1e-6, rtol=0)
    ref = predict(out, split="test")["probs"].double()
    torch.testing.assert_close(probs, ref, atol=1e-5, rtol=0)
    classes = ["low", "high"]
    assert [r["label"] for r in rows] == [classes[i] for i in ref.argmax(1).tolist()]
    if kind == "varlen":
        assert len({len(s) for s in seqs}) > 1  # really several lengths in one batch


def test_windows_cover_each_record_and_equal_predicting_each_window_alone(runs, tmp_path):
    out = runs["varlen"]
    rng = random.Random(5)
    long = "".join(rng.choice("ACGT") for _ in range(150))
    short = "".join(rng.choice("ACGT") for _ in range(20))
    fa = tmp_path / "new.fa"
    fa.write_text(f">long x\n{long[:70]}\n{long[70:]}\n>short\n{short.lower()}\n")
    rows = predict_fasta(out, [fa], window=LENGTH, stride=40)
    spans = [(r["record"], r["start"], r["end"]) for r in rows]
    assert spans == [("long", 0, 64), ("long", 40, 104), ("long", 80, 144), ("long", 86, 150),
                     ("short", 0, 20)]
    alone = tmp_path / "alone.fa"
    records = {"long": long, "short": short.upper()}
    alone.write_text("".join(f">w{i}\n{records[r['record']][r['start']:r['end']]}\n"
                             for i, r in enumerate(rows)))
    singles = predict_fasta(out, [alone], batch_size=1)
    for r, s in zip(rows, singles):
        assert r["label"] == s["label"]
        assert abs(r["p_low"] - s["p_low"]) < 1e-5 and abs(r["p_high"] - s["p_high"]) < 1e-5
        assert abs(r["p_low"] + r["p_high"] - 1) < 1e-12


def test_window_spans():
    assert window_spans(10, 16, True) == [(0, 10)]
    assert window_spans(10, 4, True, window=4) == [(0, 4), (4, 8), (6, 10)]  # end-aligned last
    assert window_spans(12, 4, True, window=4) == [(0, 4), (4, 8), (8, 12)]
    assert window_spans(10, 4, True, window=4, stride=3) == [(0, 4), (3, 7), (6, 10)]
    assert window_spans(10, 4, True, window=4, stride=8) == [(0, 4), (6, 10)]
    assert window_spans(3, 4, True, window=4) == [(0, 3)]
    for length in range(1, 40):  # every base is in a window, every window is W long
        spans = window_spans(length, 8, False, window=8, stride=5) if length >= 8 else []
        assert all(e - s == 8 for s, e in spans)
        assert set().union(*(range(s, e) for s, e in spans)) == set(range(length)) or length < 8
    with pytest.raises(ValueError, match="use --window"):
        window_spans(20, 16, True)
    with pytest.raises(ValueError, match="--window 16"):
        window_spans(10, 16, False)
    with pytest.raises(ValueError, match="never pads"):
        window_spans(10, 16, False, window=16)


def test_a_read_only_run_without_its_training_data_predicts_from_another_folder(
        runs, tmp_path, monkeypatch, capsys):
    src = runs["fixed"]
    ref_fa = tmp_path / "ref.fa"
    _test_split_as_fasta(src, ref_fa)
    expected = predict_fasta(src, [ref_fa])
    copy = tmp_path / "copy" / "run"
    shutil.copytree(src, copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(ref_fa), elsewhere / "ref.fa")
    # the training FASTA files are gone: predict reads the run folder only
    hidden = tmp_path / "hidden"
    shutil.move(os.path.join(os.path.dirname(src), "train-data"), hidden)
    paths = [*copy.rglob("*"), copy]
    before = {p: p.stat().st_mtime_ns for p in paths}
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.chdir(elsewhere)
    try:
        code = main(["predict", "--out", os.path.relpath(copy), "--fasta", "ref.fa"])
        printed = capsys.readouterr()
        with pytest.raises(Exception):  # evaluate does need the training data
            load_model(str(copy))
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.move(str(hidden), os.path.join(os.path.dirname(src), "train-data"))
    assert code == 0, printed.err
    assert {p: p.stat().st_mtime_ns for p in paths} == before
    rows = _read_tsv(printed.out)
    assert [r["label"] for r in rows] == [r["label"] for r in expected]
    assert all(abs(float(r["p_low"]) - e["p_low"]) < 1e-7 for r, e in zip(rows, expected))


def test_a_checkpoint_from_before_task_spec_rebuilds_its_task(runs, tmp_path):
    src = runs["varlen"]
    fa = tmp_path / "t.fa"
    _test_split_as_fasta(src, fa)
    copy = tmp_path / "old"
    shutil.copytree(src, copy)
    ckpt = load_checkpoint(copy / "best.pt")
    spec = ckpt.pop("task_spec")
    save_checkpoint(ckpt, copy / "best.pt")
    new, old = predict_fasta(src, [fa]), predict_fasta(str(copy), [fa])
    assert [r["label"] for r in new] == [r["label"] for r in old]
    assert max(abs(a["p_low"] - b["p_low"]) for a, b in zip(new, old)) < 1e-6
    # the spec describes the task the model was built for, and reads back as it
    _, _, task = load_model(src)
    assert task_spec(task) == spec
    rebuilt = task_from_spec(spec)
    assert (rebuilt.max_len, rebuilt.variable_length, rebuilt.class_names) == (LENGTH, True,
                                                                              ["low", "high"])
    with pytest.raises(RunError, match="task_spec version"):
        task_from_spec({**spec, "version": 99})


def test_a_run_with_rc_conjoin_predicts_a_record_and_its_reverse_complement_alike(tmp_path):
    out = _train(tmp_path, "rc", {"min_length": 32}, rc_conjoin=True)
    rng = random.Random(3)
    seqs = [bytes(rng.choice(b"ACGTN") for _ in range(n)) for n in (50, 64, 33)]
    fa = tmp_path / "rc.fa"
    fa.write_text("".join(f">f{i}\n{s.decode()}\n>r{i}\n{reverse_complement(s).decode()}\n"
                          for i, s in enumerate(seqs)))
    rows = predict_fasta(out, [str(fa)], batch_size=4)
    assert [r["record"] for r in rows] == ["f0", "r0", "f1", "r1", "f2", "r2"]
    for fwd, rev in zip(rows[::2], rows[1::2]):
        assert fwd["label"] == rev["label"]
        assert abs(fwd["p_low"] - rev["p_low"]) < 1e-6


def _args(out, tmp_path, *more):
    return ["predict", "--out", out, "--fasta", str(tmp_path / "ok.fa"), *more]


def test_bad_input_is_one_line_naming_the_option_or_file(runs, tmp_path, capsys):
    (tmp_path / "ok.fa").write_text(">r\n" + "ACGT" * 16 + "\n")
    out = runs["varlen"]
    empty_dir = tmp_path / "not-a-run"
    empty_dir.mkdir()
    _bad(["predict", "--out", str(empty_dir), "--fasta", str(tmp_path / "ok.fa")], capsys,
         "config.json does not exist")
    (tmp_path / "empty.fa").write_text("")
    _bad(["predict", "--out", out, "--fasta", str(tmp_path / "empty.fa")], capsys,
         "empty.fa: the file is empty")
    (tmp_path / "nohdr.fa").write_text("ACGT\n")
    _bad(["predict", "--out", out, "--fasta", str(tmp_path / "nohdr.fa")], capsys, "nohdr.fa")
    (tmp_path / "bad.fa").write_text(">r\nACGX\n")
    _bad(["predict", "--out", out, "--fasta", str(tmp_path / "bad.fa")], capsys,
         "bad.fa, line 2, column 4")
    _bad(["predict", "--out", out, "--fasta", str(tmp_path / "missing.fa")], capsys,
         "--fasta")
    _bad(_args(out, tmp_path, "--window", str(LENGTH + 1)), capsys,
         f"--window {LENGTH + 1} is larger than the model's max_len {LENGTH}")
    _bad(_args(out, tmp_path, "--window", "8", "--stride", "0"), capsys, "--stride")
    _bad(_args(out, tmp_path, "--window", "-8"), capsys, "--window")
    _bad(_args(out, tmp_path, "--stride", "8"), capsys, "--stride needs --window")
    _bad(_args(out, tmp_path, "--which", "worst"), capsys, "--which")
    (tmp_path / "long.fa").write_text(">chr\n" + "ACGT" * 40 + "\n")
    _bad(["predict", "--out", out, "--fasta", str(tmp_path / "long.fa")], capsys,
         "use --window")
    _bad(_args(runs["fixed"], tmp_path, "--window", "32"), capsys, "use --window 64")
    (tmp_path / "short.fa").write_text(">r\nACGT\n")
    _bad(["predict", "--out", runs["fixed"], "--fasta", str(tmp_path / "short.fa")], capsys,
         "use --window 64")


def test_an_existing_output_is_refused_and_kept(runs, tmp_path, capsys):
    (tmp_path / "ok.fa").write_text(">r\n" + "ACGT" * 16 + "\n")
    table = tmp_path / "pred.tsv"
    table.write_text("precious\n")
    _bad(_args(runs["varlen"], tmp_path, "--output", str(table)), capsys, "--output")
    assert table.read_text() == "precious\n"
    # a bad FASTA after a good one: nothing written
    (tmp_path / "bad.fa").write_text(">r\nAC-GT\n")
    fresh = tmp_path / "new.tsv"
    _bad(["predict", "--out", runs["varlen"], "--fasta", str(tmp_path / "ok.fa"),
          str(tmp_path / "bad.fa"), "--output", str(fresh)], capsys, "bad.fa")
    assert not fresh.exists()
    assert main(_args(runs["varlen"], tmp_path, "--output", str(table), "--force")) == 0
    assert table.read_text().startswith("record\tstart\tend\tlabel\tp_low\tp_high\n")


def test_an_unreadable_fasta_is_one_line(runs, tmp_path, capsys, monkeypatch):
    fa = tmp_path / "locked.fa"
    fa.write_text(">r\nACGT\n")
    fa.chmod(0)
    if os.access(fa, os.R_OK):  # root reads any file: let it see the file as unreadable
        monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != str(fa))
    try:
        _bad(["predict", "--out", runs["varlen"], "--fasta", str(fa)], capsys,
             f"--fasta {fa}: permission denied")
    finally:
        fa.chmod(0o644)


def test_a_folder_given_as_fasta_is_one_line(runs, tmp_path, capsys):
    _bad(["predict", "--out", runs["varlen"], "--fasta", str(tmp_path)], capsys, "is a folder")


def test_help_lists_predict_and_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "predict" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for flag in ("--out", "--fasta", "--window", "--stride", "--output", "--force", "--which",
                 "--device", "--batch-size"):
        assert flag in text, flag


def test_a_run_that_does_not_classify_dna_is_refused(tmp_path, capsys):
    out = str(tmp_path / "order")
    assert main(["train", "--task", "order", "--out", out, "--epochs", "1", "--length", "8",
                 "--train-size", "16", "--val-size", "8", "--test-size", "8", "--batch-size",
                 "8", "--channels", "4", "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "ok.fa").write_text(">r\nACGTACGT\n")
    _bad(_args(out, tmp_path), capsys, "a run of task 'order', which does not classify DNA")
