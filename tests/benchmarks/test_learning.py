"""The learning benchmark end to end at a toy size: every model on both tasks, its files, and that
running the runs in parallel worker processes gives exactly the rows of one process."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import learning  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

_TOY = ["--lengths", "4", "--max-steps", "4", "--eval-every", "2", "--val-size", "8",
        "--batch-size", "4", "--budgets", "2", "4", "--warmup-steps", "1", "--no-progress"]
_DETERMINISTIC = ("task", "log2_length", "model", "steps", "stopped", "curve_errors", "parameters")


def _rows(out: Path) -> list[dict]:
    rows = json.loads((out / "learning.json").read_text())["rows"]
    for r in rows:
        r["curve_errors"] = [e for _, e, _ in r["curve"]]
    return [{k: r[k] for k in _DETERMINISTIC} for r in rows]


def test_every_model_and_task_runs_and_parallel_jobs_match_one_process(tmp_path):
    assert learning.main(_TOY + ["--out", str(tmp_path / "one"), "--jobs", "1",
                                 "--models", *learning.MODELS]) == 0
    one = _rows(tmp_path / "one")
    assert len(one) == len(learning.TASKS) * len(learning.MODELS)
    assert all(r["steps"] == 4 and len(r["curve_errors"]) == 3 for r in one)  # steps 0, 2, 4
    for name in ("learning.md", "learning-curves.png", "learning-steps.png"):
        assert (tmp_path / "one" / name).stat().st_size > 0
    assert "Adding: validation error % at step budgets" in (tmp_path / "one" / "learning.md").read_text()

    two = tmp_path / "two"
    assert learning.main(_TOY + ["--out", str(two), "--jobs", "2", "--tasks", "adding",
                                 "--models", "paramixer-encoder", "cdil-cnn"]) == 0
    assert _rows(two) == [r for r in one if r["task"] == "adding"
                          and r["model"] in ("paramixer-encoder", "cdil-cnn")]


def test_models_get_the_options_sparsemix_train_uses_for_the_task():
    from sparsemix.train import TrainConfig

    for task in learning.TASKS:
        cfg = TrainConfig(task=task).resolve_task_defaults()
        model = learning.build("paramixer-encoder", task, 16, 8, "mean")
        assert (model.embed.positions is not None) == cfg.positional
        for block in model.blocks:
            weight = block.mix_norm.weight.detach()
            assert torch.equal(weight, torch.full_like(weight, cfg.mix_gain))


def test_the_default_paramixer_is_sparsemix_trains_and_steps_hold_the_tokens_fixed():
    from sparsemix.train import TrainConfig

    for task in learning.TASKS:
        cfg = TrainConfig(task=task).resolve_task_defaults()
        model = learning.build("paramixer", task, 16, 8, "mean")
        got = {(b.mix_mode, b.score_scale, b.wrap_gate is not None) for b in model.blocks}
        assert got == {(cfg.mix_mode, cfg.score_scale, cfg.wrap_gate)}
        assert (model.embed.positions is not None) == cfg.positional
    # the tasks' defaults differ: Order takes its direction from the wrap gate
    assert {t: learning.build("paramixer", t, 16, 8, "mean").blocks[0].wrap_gate is not None
            for t in learning.TASKS} == {"order": True, "adding": False}
    args = learning.parse_args([])
    assert args.models == ["paramixer", "transformer"] and args.lengths == [9, 10, 11]
    assert [learning.batch_for(args, 2 ** k) for k in (7, 9, 10, 11)] == [32, 32, 16, 8]
    assert learning.batch_for(learning.parse_args(["--tokens", "0"]), 2 ** 11) == 32


def test_generalise_trains_short_and_tests_every_length(tmp_path):
    out = tmp_path / "gen"
    assert learning.main(["--generalise", "--train-max", "7", "--test-lengths", "7", "8",
                          "--max-steps", "2", "--batch-size", "4", "--test-size", "4",
                          "--warmup-steps", "1", "--jobs", "1", "--no-progress",
                          "--out", str(out)]) == 0
    rows = json.loads((out / "generalise.json").read_text())["rows"]
    assert {(r["task"], r["model"]) for r in rows} == {
        (t, m) for t in learning.TASKS for m in learning.GENERALISE}
    assert all(set(r["errors"]) == {"7", "8"} and r["train_max"] == 128 for r in rows)
    model = learning.build("paramixer-average", "order", 256, 8, "mean",
                           learning.GENERALISE["paramixer-average"]["order"])
    assert model.embed.positions is None and all(b.wrap_gate is not None for b in model.blocks)
    assert "| order | paramixer-average |" in (out / "generalise.md").read_text()
    assert (out / "generalise.png").stat().st_size > 0
    with pytest.raises(SystemExit):  # one fixed length only
        learning.parse_args(["--generalise", "--pooling", "flatten"])


def test_generalise_with_a_cls_vector(tmp_path):
    assert learning.main(["--generalise", "--pooling", "cls", "--train-max", "6", "--test-lengths", "7",
                          "--max-steps", "1", "--batch-size", "2", "--test-size", "2",
                          "--warmup-steps", "1", "--jobs", "1", "--no-progress", "--tasks", "order",
                          "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "generalise.json").read_text())["rows"]
    assert {r["pooling"] for r in rows} == {"cls"} and len(rows) == len(learning.GENERALISE)
    assert "cls pooling" in (tmp_path / "generalise.md").read_text()
