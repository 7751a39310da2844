"""``sparsemix`` command line: ``train``, ``evaluate``, ``predict``, ``bench`` and ``plot`` (also
``python -m sparsemix``).

Exit status: 0 on success, 2 on bad input (one line on stderr, nothing overwritten), 130 after
Ctrl-C (a resumable ``last.pt`` has been written first).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ._io import dumps_json
from .errors import RunError, one_line
from .tasks import TASKS, load_all
from .tools import add_bench_parser, add_plot_parser, bench_main, plot_main
from .train import TrainConfig, TrainingInterrupted, evaluate, train
from .train.config import CHOICES, MAX_SEED
from .train.recipe import TASK_DEFAULTABLE, WARMUP_DIVISOR, WARMUP_MAX_STEPS
from .train.prediction import add_predict_parser, predict_main

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and names ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _task_names() -> str:
    load_all()
    return ", ".join(sorted(TASKS)) or "(none registered)"


def _number(text: str) -> float:
    """A finite float; argparse reports anything else in words (never a function's name)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _at_least(minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum``, anything else refused in words."""
    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in some messages
    return parse


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _bool_or_auto(text: str) -> Optional[bool]:
    return None if text.lower() == "auto" else _bool(text)


def _float_or_auto(text: str) -> Optional[float]:
    return None if text.lower() == "auto" else _positive_float(text)


def _str_or_auto(text: str) -> Optional[str]:
    return None if text.lower() == "auto" else text


def _int_or_auto(text: str) -> Optional[int]:
    return None if text.lower() == "auto" else _at_least(1)(text)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg} at column {err.colno}): "
                                         f"{text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {text!r}")
    return value


def _optional_float(text: str) -> Optional[float]:
    return None if text.lower() in ("none", "off", "0") else _positive_float(text)


def _listed(help_text: str) -> str:
    """``help_text`` with ``{field}`` replaced by that option's vocabulary (:data:`CHOICES`)."""
    for name, choices in CHOICES.items():
        names = list(choices)
        words = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        help_text = help_text.replace("{" + name + "}", words)
    return help_text


# (flags, field, type, help). Defaults come from TrainConfig; argparse only records what was given.
_TRAIN_OPTIONS: list[tuple[Sequence[str], str, Any, str]] = [
    (["--task"], "task", str, "task to train on: {tasks}"),
    (["--out"], "out", str, "run folder (config.json, metrics.jsonl, last.pt, best.pt, results.json)"),
    (["--length"], "length", int, "sequence length N (fixed-length tasks) or maximum length "
                                  "(variable-length tasks); default: the task's own"),
    (["--epochs"], "epochs", int, "number of epochs (with --resume: train up to this many)"),
    (["--seed"], "seed", _integer, f"seed for data generation, initialisation, batch order and "
                                   f"dropout, 0 .. {MAX_SEED}"),
    (["--resume"], "resume", None, "continue the run in --out from last.pt (options not given are "
                                   "taken from its config.json; changing what the run learns is an "
                                   "error)"),
    (["--protocol"], "protocol", str, "Paramixer sparsity protocol: {protocol}"),
    (["--backend"], "backend", str, "Paramixer kernel: {backend} (auto: native if built, else "
                                    "fused)"),
    (["--device"], "device", str, "auto, cpu, cuda or cuda:i (under torchrun: cuda = cuda:LOCAL_RANK)"),
    (["--train-size"], "train_size", int, "training sequences (default: the task's own)"),
    (["--val-size"], "val_size", int, "validation sequences (model selection; default: the task's)"),
    (["--test-size"], "test_size", int, "test sequences (evaluated once at the end)"),
    (["--fasta"], "fasta", str, "LABEL=PATH FASTA files for --task fasta (repeatable)"),
    (["--batch-size"], "batch_size", int, "GLOBAL batch size, split across torchrun ranks"),
    (["--lr"], "lr", _positive_float, "learning rate of --optimizer (AdamW by default)"),
    (["--dropout"], "dropout", _non_negative_float, "dropout on the embedding and block outputs, "
                                                    "in [0, 1)"),
    (["--model"], "model", str, "{model} (transformer: dense SDPA baseline; cdil-cnn: baseline)"),
    (["--channels"], "channels", int, "model width C"),
    (["--num-layers"], "num_layers", int, "Paramixer blocks / Transformer layers (CDIL-CNN uses "
                                          "ceil(log2 N) blocks, its full receptive field)"),
    (["--hidden-channels"], "hidden_channels", int, "MLP width h (default: --channels)"),
    (["--pooling"], "pooling", str, "{pooling} (flatten: fixed length only; a "
                                    "position-specific head, can solve Adding without any mixing)"),
    (["--block"], "block", str, "paramixer model: {block}. encoder: pre-norm layers (LayerNorm "
                                "-> mixing -> residual, LayerNorm -> FFN -> residual; the improved "
                                "model); paper: the paper's block, exact (old runs load as this)"),
    (["--stem"], "stem", str, "{stem}: conv is a local convolution after the embedding (k-mer "
                              "features for DNA; never crosses a sequence boundary)"),
    (["--stem-kernel"], "stem_kernel", int, "taps of the conv stem"),
    (["--kmer"], "kmer", int, "DNA, paramixer: k-mer length (1..12; 0: off) of a k-mer embedding "
                              "added to each base's (the k-mer ending there) and mean-pooled into "
                              "the head, so the model contains the k-mer logistic regression"),
    (["--rc-conjoin"], "rc_conjoin", _bool, "DNA: true/false; evaluate on both strands (average "
                                            "the logits of a sequence and its reverse complement; "
                                            "training is unchanged)"),
    (["--mixing"], "mixing", _bool, "true/false; false replaces the factor products by the identity "
                                    "(ablation; --block encoder)"),
    (["--mix-init"], "mix_init", str, "factor init: {mix_init} (sum, encoder: factor m starts as "
                                      "I + shift by 2^m, so the product sums everything)"),
    (["--mix-mode"], "mix_mode", _str_or_auto, "the encoder's mixing: {mix_mode} or auto (sum: "
                                               "the product of factors applied to g(U), then a "
                                               "LayerNorm; average: a score-weighted average "
                                               "through positive factors, whose scale does not "
                                               "grow with N; auto: the task's, average for the "
                                               "adding and order tasks, else sum)"),
    (["--weight-mlp"], "weight_mlp", str, "how a Paramixer block computes its factors' values: "
                                          "{weight_mlp} (per-factor: the paper's M separate MLPs; "
                                          "shared: one hidden layer for all factors, C -> h -> M*K, "
                                          "fewer multiply-adds per token)"),
    (["--precision"], "precision", str, "the training forward's arithmetic: {precision} (bf16: "
                                        "autocast to bfloat16, parameters and optimizer in fp32; "
                                        "auto: bf16 where the CPU has bf16 units (AVX512-BF16, AMX) "
                                        "or the GPU supports it, else fp32; saved resolved)"),
    (["--wrap-gate"], "wrap_gate", _bool_or_auto, "true, false or auto: a learned gate, closed at "
                                                  "the start, on the factor edges that wrap around "
                                                  "a sequence's end (the product then starts as a "
                                                  "suffix sum: what comes after each element; "
                                                  "--block encoder; auto: on for tasks whose target "
                                                  "is an order, e.g. order)"),
    (["--score-scale"], "score_scale", _str_or_auto, "the scores of --mix-mode average: {score_scale} "
                                                     "or auto (log-length: times ln n of the "
                                                     "element's sequence, so a score gap D weighs "
                                                     "n^D and the share of the n - 2 unwanted "
                                                     "elements shrinks as n grows; auto: the "
                                                     "task's)"),
    (["--positional"], "positional", _bool_or_auto, "learned position embedding: true, false or "
                                                    "auto (default: off for tasks whose target "
                                                    "ignores positions, e.g. adding, and for the "
                                                    "encoder on order tasks, whose wrap gate gives "
                                                    "direction; else on)"),
    (["--mix-gain"], "mix_gain", _float_or_auto, "initial gain of the encoder's LayerNorm on the "
                                                 "mixing output, or auto (default: the task's, e.g. "
                                                 "0.1 for adding tasks, else "
                                                 f"{TASK_DEFAULTABLE['mix_gain']}: the mixing starts "
                                                 "small)"),
    (["--position-init"], "position_init", str, "initial positions: {position_init}"),
    (["--weights-from"], "weights_from", str, "what every block's factor MLPs read: "
                                              "{weights_from} (embedding: the paper; state: the "
                                              "block's input)"),
    (["--num-heads"], "num_heads", _int_or_auto, "attention heads (transformer) or score heads "
                                                 "(--mix-mode average), or auto (default: 1 "
                                                 "attention head, 4 score heads)"),
    (["--optimizer"], "optimizer", str, "{optimizer} (adam: the paper's)"),
    (["--weight-decay"], "weight_decay", _non_negative_float, "weight decay (AdamW: decoupled)"),
    (["--scheduler"], "scheduler", str, "learning-rate schedule per step: {scheduler} "
                                        "(warmup-cosine: linear warm-up, then cosine to 0)"),
    (["--warmup-steps"], "warmup_steps", int, f"warm-up steps of warmup-cosine (default: 1/"
                                              f"{WARMUP_DIVISOR} of the run, at most "
                                              f"{WARMUP_MAX_STEPS})"),
    (["--clip-grad"], "clip_grad", _optional_float, "gradient-norm clipping (0 or none: off)"),
    (["--deterministic"], "deterministic", argparse.BooleanOptionalAction,
     "forbid nondeterministic kernels (torch.use_deterministic_algorithms); --no-deterministic "
     "undoes a resumed run's"),
    (["--max-steps-per-epoch"], "max_steps_per_epoch", int, "cap on optimiser steps per epoch"),
    (["--time-budget-s"], "time_budget_s", _positive_float, "stop training after this many seconds "
                                                            "of training steps, then test the best model"),
    (["--eval-batch-size"], "eval_batch_size", int, "batch size for validation/test "
                                                    "(default: --batch-size)"),
    (["--reverse-complement"], "reverse_complement", None, "DNA tasks: reverse-complement augmentation"),
    (["--quiet"], "quiet", argparse.BooleanOptionalAction, "no progress bar or per-epoch lines "
                                                           "(bars only show on a terminal); "
                                                           "--no-quiet undoes a resumed run's"),
    (["--extra"], "extra", _json_object, "JSON object of task/model extras, e.g. '{\"varlen_base\": 64}'"),
]


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = _Parser(prog="sparsemix", description="Paramixer sparse-factor sequence mixing: train "
                     "and evaluate models. Every run lives in one folder (--out).")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,bench,plot}", parser_class=_Parser)
    sub.required = True

    tr = sub.add_parser("train", help="train a model (resumable; runs under torchrun as DDP)",
                        description="Train a model on a task; the model is chosen on the validation "
                        "split and the test split is evaluated once at the end. Ctrl-C saves a "
                        "resumable last.pt and exits with status 130.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tasks = None
    for flags, name, typ, help_text in _TRAIN_OPTIONS:
        if "{tasks}" in help_text:
            tasks = tasks or _task_names()
            help_text = help_text.replace("{tasks}", tasks)
        help_text = _listed(help_text)
        default = getattr(defaults, name)
        shown = f" (default: {default})" if default not in (None, "", [], {}) else ""
        kwargs: dict[str, Any] = dict(dest=name, default=argparse.SUPPRESS, help=help_text + shown)
        if typ is None:
            kwargs["action"] = "store_true"
        elif typ is argparse.BooleanOptionalAction:
            kwargs["action"] = typ
        elif name == "fasta":
            kwargs.update(nargs="+", action="extend", metavar="LABEL=PATH")
        else:
            kwargs["type"] = typ
        tr.add_argument(*flags, **kwargs)
    tr.formatter_class = argparse.HelpFormatter  # defaults are already in the texts

    ev = sub.add_parser("evaluate", help="evaluate a run's best (or last) model on a split",
                        description="Print the metrics of a trained run as JSON.")
    ev.add_argument("--out", required=True, help="run folder written by `sparsemix train`")
    ev.add_argument("--split", default="test", help="train, val or test (default: test)")
    ev.add_argument("--which", default="best", help="best or last checkpoint (default: best)")
    ev.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default: cpu)")
    ev.add_argument("--length", type=_at_least(2), default=None,
                    help="synthetic tasks: evaluate on a fresh split of this sequence length "
                         "(variable-length tasks: lengths up to it), drawn from the run's seed and "
                         "written nowhere; a model that cannot take it says why")
    ev.add_argument("--test-size", type=_at_least(1), default=None,
                    help="with --length: sequences in the fresh test split (default: the run's)")
    add_predict_parser(sub)
    add_bench_parser(sub)
    add_plot_parser(sub)
    return parser


def _train_config(given: dict[str, Any]) -> TrainConfig:
    if given.get("resume"):
        if "out" not in given:
            raise ValueError("--resume needs --out")
        saved = TrainConfig.load(Path(given["out"]) / "config.json")
        data = saved.to_dict()
        data.update(given)
        return TrainConfig.from_dict(data)
    missing = [f"--{k}" for k in ("task", "out") if k not in given]
    if missing:
        raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    try:
        return TrainConfig(**given)
    except TypeError as err:  # pragma: no cover - the parser only passes known fields
        raise RunError(str(err)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    try:
        if command == "train":
            results = train(_train_config(args))
            if os.environ.get("RANK", "0") == "0":  # under torchrun: one JSON line, from rank 0
                print(dumps_json({"out": args.get("out") or results.get("out"),
                                  "test": {k: v for k, v in results["test"].items()
                                           if k != "per_class"}}))
        elif command == "predict":
            return predict_main(argparse.Namespace(**args))
        elif command in ("bench", "plot"):
            return (bench_main if command == "bench" else plot_main)(argparse.Namespace(**args))
        else:  # evaluate
            print(dumps_json(evaluate(args["out"], args["split"], args["which"], args["device"],
                                      length=args["length"], test_size=args["test_size"]),
                             indent=2))
    except TrainingInterrupted as err:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops; one says so
            print(f"sparsemix {command}: {err}; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, RunError, OSError, EOFError) as err:
        print(f"sparsemix {command}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        print(f"sparsemix {command}: error: out of memory ({one_line(err)}); use a smaller "
              f"--length, --batch-size or --channels", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _out_of_memory(err: BaseException) -> bool:
    """An allocation that cannot succeed (e.g. ``--length 1099511627776``), as torch reports it."""
    text = str(err)
    return (isinstance(err, (MemoryError, torch.OutOfMemoryError))
            or "can't allocate memory" in text or "out of memory" in text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
