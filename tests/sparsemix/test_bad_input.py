"""Issue 21's bad inputs: each is one line naming the option, argument or file (the CLI exits 2)."""
import errno
import os

import pytest
import torch

import topologies
from sparsemix import Paramixer, ParamixerEncoderLayer, SparseFactorConv
from sparsemix.cli import _train_config, build_parser, main
from sparsemix.data.fasta import FastaError, load_fasta
from sparsemix.errors import RunError
from sparsemix.tasks import build_task
from sparsemix.tasks.dna import parse_fasta_args
from sparsemix.train import TrainConfig
from sparsemix.train import checkpoint


def _cli(capsys, argv) -> str:
    """Run the CLI, which must exit 2 with one line on stderr; returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def _usage(capsys, argv) -> str:
    """An argparse usage error: exit 2, one line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


@pytest.mark.parametrize("task, extra, needle", [
    ("adding-varlen", {"varlen_base": "x"}, "--extra varlen_base must be an integer >= 1, got 'x'"),
    ("adding-varlen", {"varlen_base": 0}, "--extra varlen_base must be an integer >= 1, got 0"),
    ("dna-species", {"min_length": "abc"}, "--extra min_length must be an integer >= 1"),
    ("dna-species", {"max_n_fraction": "x"}, "--extra max_n_fraction must be a number in [0.0, 1.0]"),
    ("dna-species", {"max_n_fraction": 2}, "--extra max_n_fraction must be a number in [0.0, 1.0]"),
    ("dna-species", {"species": "ecoli"}, "--extra species must be a list of strings"),
    ("fasta", {"split": "random"}, "--extra split must be one of auto, files, coordinate"),
    ("order", {"cdil_layers": 0}, "--extra cdil_layers must be an integer >= 1, got 0"),
    ("order", {"varlen_base": 4}, "--extra: unknown key(s) ['varlen_base'] for --task order"),
])
def test_extra_values_are_checked_by_name_and_type(task, extra, needle):
    with pytest.raises(ValueError) as err:
        TrainConfig(task=task, out="x", extra=extra).validate()
    assert str(err.value).startswith(needle), str(err.value)


def test_extra_through_the_cli(tmp_path, capsys):
    err = _cli(capsys, ["train", "--task", "adding-varlen", "--out", str(tmp_path / "r"),
                        "--extra", '{"varlen_base": "x"}'])
    assert "--extra varlen_base must be an integer >= 1, got 'x'" in err
    assert not (tmp_path / "r").exists()


def test_build_task_checks_extras_too():
    with pytest.raises(ValueError, match="--extra varlen_base"):
        build_task("adding-varlen", TrainConfig(task="adding-varlen", extra={"varlen_base": 1.5}))


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-1", str(2**32)])
def test_seed_out_of_range_names_the_option(tmp_path, capsys, seed):
    err = _cli(capsys, ["train", "--task", "order", "--out", str(tmp_path / "r"), "--seed", seed])
    assert "--seed must be an integer in [0, 4294967295]" in err


def test_seed_at_the_limit_is_accepted():
    TrainConfig(task="order", out="x", seed=2**32 - 1).validate()


def test_absurd_length_is_one_line(tmp_path, capsys):
    err = _cli(capsys, ["train", "--task", "adding", "--out", str(tmp_path / "r"),
                        "--length", str(2**40), "--train-size", "2", "--val-size", "2",
                        "--test-size", "2", "--quiet"])
    assert "out of memory" in err and "--length" in err


def test_plot_length_zero_names_the_option(tmp_path, capsys):
    err = _cli(capsys, ["plot", "--out", str(tmp_path), "--length", "0"])
    assert "--length must be an integer >= 1, got 0" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_bench_on_cuda_without_a_gpu(capsys):
    err = _cli(capsys, ["bench", "--device", "cuda", "--lengths", "16", "--steps", "1"])
    assert "--device cuda: no CUDA GPU is available here" in err


def test_bench_device_name_is_checked(capsys):
    assert "--device must be cpu or cuda" in _cli(capsys, ["bench", "--device", "tpu"])


@pytest.mark.parametrize("raised", [
    RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                 "file data/0: file write failed"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_full_disk_during_a_checkpoint(tmp_path, monkeypatch, raised):
    path = tmp_path / "last.pt"
    checkpoint.save_checkpoint({"model": {}, "optimizer": {}, "epoch": 1, "config": {}}, path)

    def full(*args, **kwargs):
        raise raised

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunError) as err:
        checkpoint.save_checkpoint({"model": {}, "optimizer": {}, "epoch": 2, "config": {}}, path)
    text = str(err.value)
    assert text.startswith("disk full while writing checkpoint") and "--resume continues" in text
    assert "\n" not in text
    assert checkpoint.load_checkpoint(path)["epoch"] == 1  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_other_checkpoint_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="something else"):
        checkpoint.save_checkpoint({}, tmp_path / "x.pt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_as_fasta_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "reads.fa"
    os.mkfifo(fifo)
    with pytest.raises(FastaError, match="not a regular file"):
        parse_fasta_args([f"a={fifo}", f"b={fifo}"])
    with pytest.raises(FastaError, match="not a regular file"):
        load_fasta(fifo)  # would block forever on open


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_as_fasta(tmp_path):
    with pytest.raises(FastaError, match="/dev/zero: not a regular file"):
        load_fasta("/dev/zero")


def test_missing_fasta_still_says_it_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_fasta_args([f"a={tmp_path / 'missing.fa'}"])


def test_cr_only_line_endings(tmp_path):
    path = tmp_path / "mac.fa"
    path.write_bytes(b">one\rACGT\rAC\r>two\rGGCC\r")
    records = load_fasta(path)
    assert [(r.name, r.sequence) for r in records] == [("one", b"ACGTAC"), ("two", b"GGCC")]
    mixed = tmp_path / "mixed.fa"
    mixed.write_bytes(b">one\r\nACGT\r\n>two\nGG\n")
    assert [r.sequence for r in load_fasta(mixed)] == [b"ACGT", b"GG"]


@pytest.mark.parametrize("dtype, needle", [
    (torch.int64, "v must be a floating-point tensor, got torch.int64"),
    (torch.float16, "v is torch.float16 but the layer's parameters are torch.float32"),
])
def test_wrong_dtype_into_a_block_names_the_argument(dtype, needle):
    block = Paramixer(8, max_len=16)
    with pytest.raises(ValueError, match=needle):
        block(torch.ones(16, 8).to(dtype))
    layer = ParamixerEncoderLayer(8, max_len=16)
    with pytest.raises(ValueError, match="h "):
        layer(torch.ones(16, 8).to(dtype))
    topo = topologies.chord(16)
    conv = SparseFactorConv(8, topo.num_slots)
    with pytest.raises(ValueError, match="x "):
        conv(torch.ones(16, 8), topo.edge_index(0), topo.slot(0), x=torch.ones(16, 8).to(dtype))


def test_mixed_dtypes_are_fine_under_autocast():
    block = Paramixer(8, max_len=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert block(torch.randn(16, 8).bfloat16()).shape == (16, 8)


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_len": True}, "max_len must be an integer >= 1, got True"),
    ({"num_factors": True}, "num_factors must be an integer >= 1, got True"),
])
def test_paramixer_refuses_booleans(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Paramixer(8, **kwargs)


def test_negative_factor_index_is_refused():
    with pytest.raises(IndexError, match="m=-1"):
        topologies.chord(16).edge_index(-1)


def test_argparse_never_shows_internal_type_names(capsys):
    err = _usage(capsys, ["train", "--lr", "fast"])
    assert "expected a number, got 'fast'" in err and "_positive_float" not in err
    assert "must be a number > 0" in _usage(capsys, ["train", "--lr", "0"])
    assert "must be a number >= 0" in _usage(capsys, ["train", "--dropout", "-0.1"])
    assert "_" not in _usage(capsys, ["train", "--seed", "x"]).split("--seed")[-1]


def test_lr_help_names_adamw(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "learning rate of --optimizer (AdamW by default)" in out
    assert "--quiet, --no-quiet" in out


def test_resume_can_undo_quiet(tmp_path):
    TrainConfig(task="order", out=str(tmp_path), quiet=True, deterministic=True).save(
        tmp_path / "config.json")
    args = vars(build_parser().parse_args(["train", "--out", str(tmp_path), "--resume",
                                           "--no-quiet", "--no-deterministic"]))
    args.pop("command")
    cfg = _train_config(args)
    assert cfg.quiet is False and cfg.deterministic is False
    args = vars(build_parser().parse_args(["train", "--out", str(tmp_path), "--resume"]))
    args.pop("command")
    assert _train_config(args).quiet is True  # inherited unless told otherwise
