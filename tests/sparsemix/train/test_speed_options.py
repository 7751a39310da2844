"""The training-speed options: --weight-mlp (how a block computes its factors' values) and
--precision (the training forward's arithmetic), through TrainConfig, the CLI, the model builder,
the loop and old run folders."""
import json

import pytest
import torch

from sparsemix.cli import build_parser, main
from sparsemix.tasks import build_task
from sparsemix.train import TrainConfig
from sparsemix.train import precision
from sparsemix.train.inference import build_model


def _small(tmp_path, **kw):
    return TrainConfig(task="order", out=str(tmp_path / "run"), length=16, train_size=8, val_size=8,
                       test_size=8, **kw)


def test_weight_mlp_default_is_per_factor_and_shared_reaches_every_block(tmp_path):
    assert TrainConfig(task="order", out="x").weight_mlp == "per-factor"
    args = build_parser().parse_args(["train", "--task", "order", "--out", "x",
                                      "--weight-mlp", "shared"])
    assert args.weight_mlp == "shared"
    for weight_mlp in ("per-factor", "shared"):
        cfg = _small(tmp_path, weight_mlp=weight_mlp)
        model = build_model(cfg, build_task("order", cfg))
        mixers = [layer.mixer for layer in model.blocks]
        assert all(m.weight_mlp == weight_mlp for m in mixers)
        firsts = {id(f.weight_layers[0]) for f in mixers[0].factors}
        assert len(firsts) == (1 if weight_mlp == "shared" else mixers[0].num_factors)
    paper = _small(tmp_path, block="paper", weight_mlp="shared")
    assert all(b.weight_mlp == "shared" for b in build_model(paper, build_task("order", paper)).blocks)


def test_a_config_from_before_weight_mlp_loads_as_per_factor():
    data = TrainConfig(task="order", out="x", weight_mlp="shared").to_dict()
    del data["weight_mlp"]
    assert TrainConfig.from_dict(data).weight_mlp == "per-factor"
    legacy = {"task": "order", "out": "x"}  # version 1: no config_version, no weight_mlp
    assert TrainConfig.from_dict(legacy).weight_mlp == "per-factor"


def test_bad_weight_mlp_is_one_line_naming_the_option(tmp_path, capsys):
    with pytest.raises(ValueError, match="^--weight-mlp must be one of per-factor, shared; got 'x'"):
        TrainConfig(task="order", out="x", weight_mlp="x").validate()
    out = tmp_path / "bad"
    assert main(["train", "--task", "order", "--out", str(out), "--weight-mlp", "low-rank"]) == 2
    assert "--weight-mlp" in capsys.readouterr().err
    assert not out.exists()


def test_shared_weight_mlp_trains_and_records_the_option(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--task", "order", "--out", str(out), "--length", "16", "--train-size", "32",
               "--val-size", "8", "--test-size", "8", "--epochs", "1", "--batch-size", "16",
               "--weight-mlp", "shared", "--quiet"])
    assert rc == 0
    assert json.loads((out / "config.json").read_text())["weight_mlp"] == "shared"
    state = torch.load(out / "last.pt", weights_only=False)["model"]
    cfg = TrainConfig.load(out / "config.json")
    model = build_model(cfg, build_task("order", cfg))
    model.load_state_dict(state)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"


def test_cpu_bf16_units_are_read_from_the_flags():
    assert not precision.cpu_has_bf16(AVX2_ONLY)
    assert precision.cpu_has_bf16(WITH_BF16)


def test_auto_precision_is_fp32_without_bf16_units(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert precision.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="^--precision must be one of auto, fp32, bf16"):
        precision.resolve_precision("fp16", torch.device("cpu"))


def test_a_config_from_before_precision_loads_as_fp32():
    data = TrainConfig(task="order", out="x", precision="bf16").to_dict()
    del data["precision"]
    assert TrainConfig.from_dict(data).precision == "fp32"
    assert TrainConfig(task="order", out="x").precision == "auto"


def _train(out, *extra):
    return main(["train", "--task", "order", "--out", str(out), "--length", "32", "--train-size",
                 "64", "--val-size", "16", "--test-size", "16", "--epochs", "1", "--batch-size", "16",
                 "--seed", "3", "--quiet", *extra])


def test_bf16_trains_with_a_finite_loss_close_to_fp32(tmp_path, monkeypatch):
    assert _train(tmp_path / "fp32", "--precision", "fp32") == 0
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # auto -> bf16, as on such a CPU
    assert _train(tmp_path / "bf16", "--precision", "auto") == 0
    saved = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert saved["precision"] == "bf16"  # recorded resolved
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["precision"] == "fp32"
    losses = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0])["train_loss"]
              for run in ("fp32", "bf16")]
    assert all(torch.isfinite(torch.tensor(v)) for v in losses)
    assert abs(losses[0] - losses[1]) < 0.05 * losses[0], losses
    state = torch.load(tmp_path / "bf16" / "last.pt", weights_only=False)["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_bad_precision_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["train", "--task", "order", "--out", str(out), "--precision", "fp16"]) == 2
    assert "--precision" in capsys.readouterr().err
    assert not out.exists()
