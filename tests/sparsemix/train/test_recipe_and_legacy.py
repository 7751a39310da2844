"""The improved recipe's options: validation errors, the schedule, and old runs loading as the
paper block."""
import dataclasses
import json

import pytest
import torch

from sparsemix.cli import main
from sparsemix.nn import Paramixer, ParamixerEncoderLayer
from sparsemix.train import TrainConfig, evaluate, load_model, train
from sparsemix.train.checkpoint import load_checkpoint
from sparsemix.train.config import LEGACY_DEFAULTS
from sparsemix.train.recipe import lr_factor


@pytest.mark.parametrize("field, value, message", [
    ("block", "fancy", "--block must be one of paper, encoder"),
    ("stem", "cnn", "--stem must be one of none, conv"),
    ("stem_kernel", 0, "--stem-kernel must be an integer >= 1"),
    ("optimizer", "sgd", "--optimizer must be one of adamw, adam"),
    ("scheduler", "linear", "--scheduler must be one of constant, cosine, warmup-cosine"),
    ("warmup_steps", -1, "--warmup-steps must be an integer >= 0"),
    ("position_init", "zeros", "--position-init must be one of normal, sinusoid"),
    ("mix_init", "ones", "--mix-init must be one of sum, stable, paper"),
    ("mixing", "no", "--mixing must be true or false"),
    ("positional", "yes", "--positional must be true, false or auto"),
    ("mix_gain", 0.0, "--mix-gain must be"),
])
def test_bad_options_are_named(field, value, message):
    cfg = TrainConfig(task="order", out="x", **{field: value})
    with pytest.raises(ValueError) as err:
        cfg.validate()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_option_combinations_are_checked():
    with pytest.raises(ValueError, match="--mixing false"):
        TrainConfig(task="order", out="x", mixing=False, block="paper").validate()
    with pytest.raises(ValueError, match="--mixing false"):
        TrainConfig(task="order", out="x", mixing=False, model="transformer").validate()
    with pytest.raises(ValueError, match="--stem conv is an option of --model paramixer"):
        TrainConfig(task="order", out="x", stem="conv", model="cdil-cnn").validate()


def test_cli_reports_a_bad_block_in_one_line(tmp_path, capsys):
    code = main(["train", "--task", "order", "--out", str(tmp_path / "r"), "--block", "x"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "--block must be one of" in err


def test_warmup_cosine_schedule():
    assert lr_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert lr_factor(9, 100, warmup=10) == pytest.approx(1.0)
    assert lr_factor(10, 100, warmup=10) == pytest.approx(1.0)
    assert lr_factor(55, 100, warmup=10) == pytest.approx(0.5)
    assert lr_factor(100, 100, warmup=10) == pytest.approx(0.0, abs=1e-12)
    # without warm-up it is the old cosine
    assert lr_factor(25, 100) == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()))


def _strip_new_fields(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in LEGACY_DEFAULTS}


def test_an_old_run_folder_loads_and_evaluates_as_the_paper_block(tmp_path):
    # A run written before the encoder existed: same fields minus the new ones. Make one by training
    # the paper block with the old recipe, then removing the new fields from every saved config.
    out = tmp_path / "old"
    cfg = TrainConfig(task="order", out=str(out), length=16, train_size=64, val_size=32,
                      test_size=32, batch_size=16, channels=8, epochs=1, quiet=True, lr=1e-3,
                      num_layers=1, weight_decay=0.0, scheduler="constant", **LEGACY_DEFAULTS)
    results = train(cfg)
    cfg_path = out / "config.json"
    cfg_path.write_text(json.dumps(_strip_new_fields(json.loads(cfg_path.read_text()))))
    for name in ("best.pt", "last.pt"):
        ck = load_checkpoint(out / name)
        ck["config"] = _strip_new_fields(ck["config"])
        torch.save(ck, out / name)
    loaded = TrainConfig.load(cfg_path)
    assert loaded.block == "paper" and loaded.config_version == 1 and loaded.optimizer == "adam"
    assert loaded.position_init == "normal" and loaded.stem == "none"
    model, _, _ = load_model(str(out))
    assert all(isinstance(b, Paramixer) for b in model.blocks) and model.block == "paper"
    assert evaluate(str(out), "test")["accuracy"] == results["test"]["accuracy"]
    # and it resumes from the command line as the same (paper-block) run
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert TrainConfig.load(cfg_path).block == "paper"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_new_configs_default_to_the_encoder(tmp_path):
    cfg = TrainConfig(task="order", out=str(tmp_path / "new"))
    assert cfg.block == "encoder" and cfg.config_version == 2
    data = cfg.to_dict()
    assert TrainConfig.from_dict(data).to_dict() == data  # a new config round-trips unchanged


def test_the_stem_and_ablation_options_reach_the_model(tmp_path):
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    cfg = TrainConfig(task="order", out=str(tmp_path / "s"), length=16, train_size=8, val_size=8,
                      test_size=8, stem="conv", stem_kernel=5, mixing=False)
    model = build_model(cfg, build_task("order", cfg))
    assert model.stem is not None and model.stem.kernel_size == 5
    assert all(isinstance(b, ParamixerEncoderLayer) and not b.mixing for b in model.blocks)


def _resolved(**kw) -> TrainConfig:
    return TrainConfig(**kw).resolve_task_defaults()


def test_auto_options_take_the_tasks_defaults_and_the_run_folder_records_them(tmp_path):
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    for task in ("adding", "adding-varlen"):  # a sum over a set: no positions, a small mixing gain
        cfg = _resolved(task=task)
        assert (cfg.positional, cfg.mix_gain) == (False, 0.1)
    # order: no positions for the encoder (its wrap gate gives direction); the Transformer keeps them
    assert (_resolved(task="order").positional, _resolved(task="order").mix_gain) == (False, 0.3)
    assert _resolved(task="order", model="transformer").positional is True
    assert _resolved(task="order", block="paper").positional is True
    given = _resolved(task="adding", positional=True, mix_gain=0.7)  # what is given stays
    assert (given.positional, given.mix_gain) == (True, 0.7)
    cfg = TrainConfig(task="adding", out=str(tmp_path / "a"), length=16, train_size=8, val_size=8,
                      test_size=8, epochs=1, quiet=True)
    model = build_model(cfg, build_task("adding", cfg))
    assert model.embed.positions is None and cfg.positional is None  # cfg itself is unchanged
    # the averaged mixing (the adding tasks' default) has no LayerNorm for the gain to set
    assert all(b.mix_mode == "average" and isinstance(b.mix_norm, torch.nn.Identity)
               for b in model.blocks)
    summed = build_model(dataclasses.replace(cfg, mix_mode="sum"), build_task("adding", cfg))
    assert all(torch.equal(b.mix_norm.weight.detach(), torch.full((32,), 0.1)) for b in summed.blocks)
    train(cfg)
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (saved["positional"], saved["mix_gain"]) == (False, 0.1)  # resolved, not "auto"
    # resumes both from the saved values and from "auto" again (the same identity once resolved)
    train(TrainConfig(**{**saved, "resume": True, "epochs": 2}))
    train(TrainConfig(**{**saved, "resume": True, "epochs": 3, "positional": None,
                         "mix_gain": None}))


def test_a_config_from_before_mix_gain_loads_with_the_gain_it_trained_with():
    data = TrainConfig(task="order", out="x").to_dict()
    del data["mix_gain"]
    assert TrainConfig.from_dict(data).mix_gain == 1.0


def test_cli_positional_auto_and_mix_gain_reach_the_model(tmp_path):
    from sparsemix.cli import build_parser
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    args = build_parser().parse_args(["train", "--task", "order", "--out", "x",
                                      "--positional", "auto", "--mix-gain", "0.5"])
    assert args.positional is None and args.mix_gain == 0.5
    cfg = TrainConfig(task="order", out=str(tmp_path / "g"), length=16, train_size=8, val_size=8,
                      test_size=8, mix_gain=0.5, mix_mode="sum")  # the gain of the summed mixing's norm
    model = build_model(cfg, build_task("order", cfg))
    assert all(torch.equal(b.mix_norm.weight.detach(), torch.full((32,), 0.5)) for b in model.blocks)


def test_a_config_from_before_mix_mode_loads_as_the_summed_mixing():
    data = TrainConfig(task="order", out="x", mix_mode="average").to_dict()
    del data["mix_mode"]
    assert TrainConfig.from_dict(data).mix_mode == "sum"


def test_cli_mix_mode_and_heads_reach_the_encoder_layers(tmp_path):
    from sparsemix.cli import build_parser
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    args = build_parser().parse_args(["train", "--task", "order", "--out", "x",
                                      "--mix-mode", "average", "--num-heads", "4"])
    assert (args.mix_mode, args.num_heads) == ("average", 4)
    cfg = TrainConfig(task="order", out=str(tmp_path / "m"), length=16, train_size=8, val_size=8,
                      test_size=8, mix_mode="average", num_heads=4)
    model = build_model(cfg, build_task("order", cfg))
    assert all((b.mix_mode, b.num_heads, b.score.out_features) == ("average", 4, 4)
               for b in model.blocks)
    with pytest.raises(ValueError, match="^--mix-mode must be one of sum, average"):
        TrainConfig(task="order", out="x", mix_mode="mean").validate()


def test_wrap_gate_option_reaches_the_layers_and_old_configs_load_without_it(tmp_path):
    from sparsemix.cli import build_parser
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    assert build_parser().parse_args(["train", "--task", "order", "--out", "x",
                                      "--wrap-gate", "true"]).wrap_gate is True
    cfg = TrainConfig(task="order", out=str(tmp_path / "w"), length=16, train_size=8, val_size=8,
                      test_size=8, wrap_gate=True)
    assert all(b.wrap_gate is not None for b in build_model(cfg, build_task("order", cfg)).blocks)
    data = cfg.to_dict()
    del data["wrap_gate"]
    assert TrainConfig.from_dict(data).wrap_gate is False
    with pytest.raises(ValueError, match="^--wrap-gate true needs --model paramixer --block encoder"):
        TrainConfig(task="order", out="x", wrap_gate=True, block="paper").validate()


def test_score_scale_option_reaches_the_layers_and_old_configs_load_without_it(tmp_path):
    from sparsemix.cli import build_parser
    from sparsemix.tasks import build_task
    from sparsemix.train.inference import build_model

    assert build_parser().parse_args(["train", "--task", "order", "--out", "x", "--score-scale",
                                      "log-length"]).score_scale == "log-length"
    cfg = TrainConfig(task="order", out=str(tmp_path / "s"), length=16, train_size=8, val_size=8,
                      test_size=8, mix_mode="average", score_scale="log-length")
    layers = build_model(cfg, build_task("order", cfg)).blocks
    assert [b.score_scale for b in layers] == ["log-length"] * len(layers)
    data = cfg.to_dict()
    del data["score_scale"]
    assert TrainConfig.from_dict(data).score_scale == "none"
    with pytest.raises(ValueError, match="^--score-scale log-length needs --model paramixer"):
        TrainConfig(task="order", out="x", mix_mode="sum", score_scale="log-length").validate()
    with pytest.raises(ValueError, match="^--score-scale must be one of none, log-length"):
        TrainConfig(task="order", out="x", mix_mode="average", score_scale="ln").validate()


def test_auto_mixing_options_per_task_and_model():
    """The adding tasks get the averaged mixing with 4 score heads; the Transformer keeps 1
    attention head and no encoder option, whatever the task recommends."""
    for task, model, block, want in [
            ("adding", "paramixer", "encoder", ("average", 4, False)),
            ("adding-varlen", "paramixer", "encoder", ("average", 4, False)),
            ("order", "paramixer", "encoder", ("average", 4, True)),
            ("adding", "transformer", "encoder", ("sum", 1, False)),
            ("order", "paramixer", "paper", ("sum", 1, False))]:
        cfg = TrainConfig(task=task, out="x", model=model, block=block).resolve_task_defaults()
        got = (cfg.validate().mix_mode, cfg.num_heads, cfg.wrap_gate)
        assert got == want, (task, model, block)
