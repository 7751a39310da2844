import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sparsemix.cli import _TRAIN_OPTIONS, main
from sparsemix.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = ["--length", "8", "--train-size", "32", "--val-size", "16", "--test-size", "16",
        "--batch-size", "16", "--channels", "8", "--quiet"]
CONTRACT = ["--task", "--out", "--length", "--epochs", "--seed", "--resume", "--protocol",
            "--backend", "--device", "--train-size", "--val-size", "--test-size", "--fasta",
            "--batch-size", "--lr", "--dropout"]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in CONTRACT + [f for flags, *_ in _TRAIN_OPTIONS for f in flags]:
        assert flag in text, flag
    for flags, _, _, help_text in _TRAIN_OPTIONS:
        assert len(help_text) > 10, flags  # every option says what it does
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--split" in capsys.readouterr().out


def _assert_bad_input(tmp_path, capsys, argv, needle):
    """Exit status 2, one line on stderr naming the problem, nothing written. In argv, {d} is the run
    folder, {t} the test's tmp folder and {tn} its name."""
    out = tmp_path / "run"
    argv = [a.replace("{d}", str(out)).replace("{t}", str(tmp_path)).replace("{tn}", tmp_path.name)
            for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["train", "--task", "nope", "--out", "{d}"], "--task must be one of"),
    (["train", "--task", "adding", "--out", "{d}", "--length", "-3"], "--length"),
    (["train", "--task", "adding", "--out", "{d}", "--bogus"], "unrecognized arguments"),
    (["train", "--task", "adding", "--out", "{d}", "--pooling", "max"], "--pooling"),
    (["train", "--out", "{d}", "--resume"], "config.json does not exist"),
    (["evaluate", "--out", "{d}"], "config.json does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, needle):
    _assert_bad_input(tmp_path, capsys, argv, needle)


def test_train_evaluate_and_resume_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--task", "order", "--out", out, "--epochs", "1", *TINY]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert 0.0 <= printed["test"]["accuracy"] <= 1.0
    # --resume takes the saved config; only --epochs is new
    assert main(["train", "--out", out, "--resume", "--epochs", "2"]) == 0
    capsys.readouterr()
    assert load_checkpoint(os.path.join(out, "last.pt"))["epoch"] == 2
    assert main(["evaluate", "--out", out, "--split", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "val"
    assert main(["train", "--out", out, "--resume", "--channels", "4"]) == 2
    assert "different run" in capsys.readouterr().err


@pytest.mark.slow
def test_sigint_saves_a_resumable_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sparsemix", "train", "--task", "order", "--out", str(out),
           "--epochs", "1000", *TINY]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            log = out / "metrics.jsonl"
            if log.exists() and log.read_text().count("\n") >= 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    ck = load_checkpoint(out / "last.pt")
    assert ck["epoch"] >= 1 and ck["config"]["epochs"] == 1000
    done = ck["epoch"] + 1
    assert main(["train", "--out", str(out), "--resume", "--epochs", str(done)]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == done
    assert (out / "results.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["train", "--task", "order", "--out", "{d}", "--device", "cuda:abc"], "--device must be"),
    (["train", "--task", "order", "--out", "{d}", "--extra", "{bad"], "not valid JSON"),
    (["train", "--task", "order", "--out", "{d}", "--extra", "[1]"], "must be a JSON object"),
    (["train", "--task", "fasta", "--out", "{d}", "--fasta", "a=x.fa", "--extra",
      '{"min_lenght": 5}'], "unknown key(s) ['min_lenght']"),
    (["train", "--task", "order", "--out", "{d}", "--fasta", "a=x.fa"], "--fasta is for --task fasta"),
    (["train", "--task", "fasta", "--out", "{d}", "--fasta", "a={t}", "b={t}/../{tn}"],
     "is a folder, not a FASTA file"),
    (["evaluate", "--out", "{d}", "--device", "cuda:abc"], "--device must be"),
])
def test_more_bad_input_is_one_line_naming_the_option(tmp_path, capsys, argv, needle):
    _assert_bad_input(tmp_path, capsys, argv, needle)


def test_the_same_fasta_file_under_two_labels_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "fa").mkdir()
    (tmp_path / "fa" / "a.fa").write_text(">r\nACGT\n")
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--task", "fasta", "--out", str(tmp_path / "run"),
                 "--fasta", "x=fa/a.fa", "y=./fa/a.fa"])
    err = capsys.readouterr().err
    assert code == 2 and "the same file as 'x=" in err and "a.fa" in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_evaluate_on_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--task", "order", "--out", out, "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--out", out, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and err.count("\n") == 1


def test_plot_and_bench_output_paths_that_are_files_or_folders_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(["plot", "--out", str(a_file), "--protocols", "chord", "--length", "8"]) == 2
    err = capsys.readouterr().err
    assert str(a_file) in err and err.count("\n") == 1
    assert main(["bench", "--lengths", "16", "--steps", "1", "--backends", "message",
                 "--channels", "4", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(tmp_path) in err and "error" in err


def test_os_errors_and_fetch_errors_are_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    from sparsemix.data.fetch import FetchError
    from sparsemix.errors import RunError, one_line

    a_file = tmp_path / "file"
    a_file.write_text("x")
    # --out below a file: NotADirectoryError from mkdir, named
    code = main(["train", "--task", "order", "--out", str(a_file / "run"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(a_file / "run") in err, err
    assert one_line(PermissionError(13, "Permission denied", "runs/x/config.json")) == \
        "permission denied: runs/x/config.json"
    assert issubclass(FetchError, RunError)  # the CLI's one-line path
    # a FetchError raised while building a task reaches the user as one line, exit 2

    def fail(cfg):
        raise FetchError("checksum mismatch for pkg.deb: expected ab, got cd")

    monkeypatch.setitem(sys.modules["sparsemix.tasks.base"].TASKS, "order", fail)
    code = main(["train", "--task", "order", "--out", str(tmp_path / "r2"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err == ("sparsemix train: error: checksum mismatch for pkg.deb: "
                                 "expected ab, got cd\n")


def test_undefined_metrics_are_null_so_every_file_is_strict_json(tmp_path, capsys):
    def no_nan(text):
        raise AssertionError(f"bare {text} in JSON")

    out = tmp_path / "run"
    argv = ["train", "--task", "order", "--out", str(out), "--epochs", "1", *TINY]
    argv[argv.index("--val-size") + 1] = "1"  # one validation sample: ROC-AUC is undefined
    assert main(argv) == 0
    json.loads(capsys.readouterr().out, parse_constant=no_nan)
    results = json.loads((out / "results.json").read_text(), parse_constant=no_nan)
    assert results["val"]["roc_auc"] is None and "two classes" in results["val"]["roc_auc_note"]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        assert json.loads(line, parse_constant=no_nan)["val_roc_auc"] is None
