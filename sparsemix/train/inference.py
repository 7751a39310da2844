"""Using a model: build it for a task, run it over a split (metrics and raw outputs), and the
public ``load_model`` / ``evaluate`` / ``predict`` that read a run folder and write nothing to it."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from .. import models
from ..data.tokenizer import DNATokenizer
from ..errors import RunError
from ..tasks import TaskData, build_task
from ..tasks.synthetic import SYNTHETIC_TASKS
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .data import Batch, collate, dataset_lengths, eval_batches
from .metrics import classification_metrics, regression_metrics
from .task_spec import task_alphabet, task_from_spec

SPLITS = ("train", "val", "test")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
CHECKPOINTS = ("best", "last")


class ReadOnlyConfig:
    """``cfg`` as a task sees it when a run is only read: every field, plus ``readonly = True``
    (a task then writes nothing into ``cfg.out``, so evaluate works on a read-only run)."""

    readonly = True

    def __init__(self, cfg: TrainConfig) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfg, name)


def build_model(cfg: TrainConfig, task: TaskData) -> nn.Module:
    """The model ``cfg.model`` sized for ``task`` (through the model registry); with
    ``cfg.rc_conjoin`` wrapped in :class:`~sparsemix.models.ReverseComplementConjoined`."""
    cfg = dataclasses.replace(cfg).resolve_task_defaults()  # "auto" options, without changing cfg
    model = models.build_model(
        cfg.model, num_classes=task.num_classes, max_len=task.max_len,
        vocab_size=task.vocab_size if task.input == "tokens" else None,
        input_dim=task.input_dim if task.input == "continuous" else None,
        variable_length=task.variable_length, channels=cfg.channels, num_layers=cfg.num_layers,
        hidden_channels=cfg.hidden_channels, pooling=cfg.pooling, dropout=cfg.dropout,
        positional=cfg.positional, protocol=cfg.protocol, backend=cfg.backend,
        weights_from=cfg.weights_from, num_heads=cfg.num_heads,
        cdil_layers=cfg.extra.get("cdil_layers"), **model_options(cfg, task))
    if cfg.rc_conjoin:
        model = models.ReverseComplementConjoined(
            model, complement_table(dna_tokenizer(task, cfg.task, "--rc-conjoin true")))
    return model


def dna_tokenizer(task: TaskData, name: str, option: str) -> DNATokenizer:
    """The tokenizer of a DNA task; ValueError naming ``option`` for any other task."""
    if task_alphabet(task) != "dna":
        raise ValueError(f"{option} applies to DNA tasks only (tokens of A, C, G, T, N); "
                         f"task {name!r} is not one")
    return DNATokenizer()


def complement_table(tokenizer: DNATokenizer) -> Tensor:
    """LongTensor [vocab]: token id -> its complement's id (specials and N map to themselves),
    read from the tokenizer's own reverse complement of every one-token sequence."""
    ids = torch.arange(tokenizer.vocab_size).unsqueeze(1)  # [V, 1]: V sequences of one token
    return tokenizer.reverse_complement(ids).squeeze(1)


def model_options(cfg: TrainConfig, task: "TaskData | None" = None) -> dict:
    """The options of the improved model (absent from version-1 configs: their model is the paper
    block, built exactly as before); ``--kmer`` needs ``task`` (a DNA task) for the ids of A, C,
    G, T."""
    if cfg.model == "cdil-cnn":
        return {}
    opts: dict = {"position_init": cfg.position_init}
    if cfg.model == "paramixer":
        opts.update(block=cfg.block, stem=cfg.stem, stem_kernel=cfg.stem_kernel, mixing=cfg.mixing,
                    weight_mlp=cfg.weight_mlp)
        if cfg.block == "encoder":
            opts.update(mix_init=cfg.mix_init, mix_gain=cfg.mix_gain, mix_mode=cfg.mix_mode,
                        wrap_gate=cfg.wrap_gate, score_scale=cfg.score_scale)
        elif cfg.mix_init == "paper":
            opts["init"] = "paper"
        if cfg.kmer:
            if task is None:
                raise ValueError(f"--kmer {cfg.kmer} needs the task (a DNA task)")
            tokenizer = dna_tokenizer(task, cfg.task, f"--kmer {cfg.kmer}")
            opts.update(kmer=cfg.kmer, kmer_base_ids=[tokenizer.base_ids[b] for b in "ACGT"])
    return opts


def forward(model: nn.Module, b: Batch) -> Tensor:
    """``model`` on a batch: ``model(x, batch)`` for concatenated variable-length input."""
    return model(b.x, b.batch) if b.batch is not None else model(b.x)


def loss_sum(out: Tensor, y: Tensor, kind: str) -> Tensor:
    """Summed (not averaged) loss, so ranks with different sample counts combine exactly."""
    if kind == "regression":
        return F.mse_loss(out.squeeze(-1), y.to(out.dtype), reduction="sum")
    return F.cross_entropy(out, y, reduction="sum")


@torch.no_grad()
def run_eval(model: nn.Module, ds: Dataset, task: TaskData, batch_size: int,
             device: torch.device) -> tuple[dict, dict]:
    """Metrics of ``model`` on ``ds`` and the raw outputs (in dataset order)."""
    model.eval()
    out, y, lengths = _outputs_in_order(model, ds, task, batch_size, device)
    if task.kind == "regression":
        preds = out.squeeze(-1)
        metrics = {"loss": float(F.mse_loss(preds.double(), y.double()))}
        metrics.update(regression_metrics(preds, y, task.meta.get("tolerance")))
        raw = {"preds": preds, "labels": y, "lengths": lengths}
    else:
        log_probs = out.double().log_softmax(-1)
        metrics = {"loss": float(F.nll_loss(log_probs, y))}
        metrics.update(classification_metrics(log_probs.exp(), y, task.class_names,
                                              scores=log_odds(out)))
        raw = {"probs": log_probs.exp().float(), "labels": y, "lengths": lengths}
    metrics["count"] = len(ds)
    return metrics, raw


def log_odds(logits: Tensor) -> Tensor:
    """[n, C] one-vs-rest log-odds ``log p_c - log(1 - p_c) = l_c - logsumexp_{j != c} l_j``, in
    float64. What ROC-AUC ranks: softmax (even float64 log-softmax) of a confident model
    saturates to ties, the log-odds never do."""
    logits = logits.double()
    eye = torch.eye(logits.size(1), dtype=torch.bool, device=logits.device)
    others = logits.unsqueeze(1).masked_fill(eye, float("-inf"))  # [n, C, C]: row c drops c
    if logits.size(1) == 1:
        return logits
    return logits - others.logsumexp(-1)


def _outputs_in_order(model: nn.Module, ds: Dataset, task: TaskData, batch_size: int,
                      device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Model outputs [n, C] and labels [n] in dataset order (batches are grouped by length)."""
    lengths = dataset_lengths(ds)
    outs, labels, order = [], [], []
    for idx in eval_batches(lengths, batch_size):
        b = collate(ds, idx, task.variable_length).to(device)
        outs.append(forward(model, b).float().cpu())
        labels.append(b.y.cpu())
        order.append(b.index)
    if not outs:
        raise ValueError("cannot evaluate an empty split")
    n = len(ds)
    perm = torch.empty(n, dtype=torch.long)
    perm[torch.cat(order)] = torch.arange(n)  # position of each dataset index in the batch order
    return torch.cat(outs)[perm], torch.cat(labels)[perm], lengths


def load_model(out: str, which: str = "best", device: "str | torch.device" = "cpu",
               data: bool = True) -> tuple[nn.Module, TrainConfig, TaskData]:
    """The trained model of run ``out`` (``which`` = ``"best"`` or ``"last"``), in eval mode,
    with its config and its task data (rebuilt from the config).

    ``data=False``: the model only (``sparsemix predict``): the task comes from the checkpoint's
    ``task_spec`` with empty splits, so nothing but the run folder is read (not the training
    FASTA files or genomes); a checkpoint without one (older runs) rebuilds the task as before."""
    _check_choice("which", which, CHECKPOINTS)
    folder = Path(out)
    cfg = TrainConfig.load(folder / "config.json")
    ckpt = load_checkpoint(folder / f"{which}.pt")
    diff = TrainConfig.from_dict(ckpt["config"], source=str(folder / f"{which}.pt")).differences(cfg)
    if diff:
        raise RunError(f"{folder}/{which}.pt was written by a different config ({'; '.join(diff)})")
    if not data and "task_spec" in ckpt:
        task = task_from_spec(ckpt["task_spec"], source=str(folder / f"{which}.pt"))
    else:  # the manifests of the folder loaded, wherever the run was made from
        task = build_task(cfg.task, ReadOnlyConfig(dataclasses.replace(cfg, out=str(folder))))
    model = build_model(cfg, task)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg, task


def evaluate(out: str, split: str = "test", which: str = "best",
             device: "str | torch.device" = "cpu", length: Optional[int] = None,
             test_size: Optional[int] = None) -> dict:
    """Metrics of run ``out``'s ``which`` model on ``split``.

    ``length`` (synthetic tasks): evaluate on a fresh ``split`` of sequences of that length
    instead (variable-length tasks: lengths up to it), drawn from the run's seed and written
    nowhere; ``test_size`` sequences when ``split`` is the test split (default: the run's). A
    model that cannot take that length is a ValueError naming ``--length`` and saying why
    (:func:`check_length_fits`). The result then holds ``"length"``."""
    metrics, _, cfg = _run_split(out, split, which, device, length=length, test_size=test_size)
    stated = {} if length is None else {"length": length}
    return {"out": str(out), "split": split, "which": which, "task": cfg.task, **stated, **metrics}


def predict(out: str, split: str = "test", which: str = "best",
            device: "str | torch.device" = "cpu") -> dict:
    """Outputs of run ``out``'s model on ``split`` in dataset order: ``probs`` [n, C]
    (classification) or ``preds`` [n] (regression), ``labels`` [n], ``lengths`` [n]."""
    _, raw, _ = _run_split(out, split, which, device)
    return raw


def _run_split(out: str, split: str, which: str, device: "str | torch.device",
               length: Optional[int] = None, test_size: Optional[int] = None
               ) -> tuple[dict, dict, TrainConfig]:
    _check_choice("split", split, SPLITS)
    device = eval_device(device)
    if length is None:
        if test_size is not None:
            raise ValueError("--test-size sizes the fresh test split of --length; give --length too")
        model, cfg, task = load_model(out, which, device)
    else:
        _check_int("--length", length, 2)
        if test_size is not None:
            _check_int("--test-size", test_size, 1)
            if split != "test":
                raise ValueError(f"--test-size sizes the test split; --split {split} keeps the "
                                 f"run's size")
        # the model only (its size from the checkpoint), then data of the new length
        model, cfg, task = load_model(out, which, device, data=False)
        check_length_fits(cfg, task, length)
        task = task_at_length(cfg, Path(out), length, split, test_size)
    metrics, raw = run_eval(model, getattr(task, split), task,
                            cfg.eval_batch_size or cfg.batch_size, device)
    return metrics, raw, cfg


def check_length_fits(cfg: TrainConfig, task: TaskData, length: int) -> None:
    """ValueError, one line naming ``--length``, when run ``cfg``'s model (sized for ``task``)
    cannot be evaluated on sequences of ``length``; else nothing.

    Longer than the model's ``max_len`` works only for a model with no part tied to it: not
    learned positions (one row per position up to ``max_len``), not Paramixer (its
    M = ceil(log2 max_len) factors reach at most ``max_len`` positions, and its layers refuse
    longer input), not the CDIL-CNN (as many layers, the same reach); the Transformer without
    positions can. ``pooling="flatten"`` needs exactly ``max_len``."""
    if cfg.task not in SYNTHETIC_TASKS:
        raise ValueError(f"--length applies to the synthetic tasks ({', '.join(SYNTHETIC_TASKS)}); "
                         f"task {cfg.task!r} reads its sequences from files")
    cfg = dataclasses.replace(cfg).resolve_task_defaults()  # "auto" positional, as trained
    max_len = task.max_len
    if cfg.pooling == "flatten" and length != max_len:
        raise ValueError(f"--length {length}: pooling 'flatten' has one head weight per position "
                         f"and takes exactly max_len = {max_len}")
    if length <= max_len:
        return
    why = None
    if cfg.positional:
        why = f"its learned positions (positional=true) have {max_len} rows"
    elif cfg.model == "paramixer":
        why = (f"Paramixer's number of factors is fixed by max_len and reaches at most {max_len} "
               f"positions; train a variable-length task with --extra max_len >= {length}")
    elif cfg.model == "cdil-cnn":
        why = f"the CDIL-CNN's number of layers is fixed by max_len and reaches {max_len} positions"
    if why is not None:
        raise ValueError(f"--length {length} is longer than the model's max_len {max_len}: {why}")


def task_at_length(cfg: TrainConfig, folder: Path, length: int, split: str,
                   test_size: Optional[int] = None) -> TaskData:
    """Run ``cfg``'s synthetic task rebuilt at ``length`` (variable-length tasks: lengths up to
    it), from the run's seed, writing nothing: ``split`` at the run's size (the test split:
    ``test_size`` if given), every other split one sequence (never used)."""
    sizes = {f"{name}_size": 1 for name in SPLITS}
    sizes[f"{split}_size"] = getattr(cfg, f"{split}_size")
    if split == "test" and test_size is not None:
        sizes["test_size"] = test_size
    rebuilt = dataclasses.replace(cfg, out=str(folder), length=length, **sizes)
    return build_task(cfg.task, ReadOnlyConfig(rebuilt))


def eval_device(device: "str | torch.device") -> torch.device:
    """``--device`` of evaluate/predict as a torch.device; ValueError naming it when unusable."""
    text = str(device)
    if not _DEVICE.fullmatch(text):
        raise ValueError(f"--device must be cpu or cuda[:i], got {text!r}")
    dev = torch.device(text)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: CUDA is not available on this machine (use --device cpu)")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


def _check_int(option: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{option} must be an integer >= {minimum}, got {value!r}")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"--{option} must be {', '.join(choices[:-1])} or {choices[-1]}; "
                         f"got {value!r}")
