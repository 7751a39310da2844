"""Helpers shared by the DNA demos (not part of the library): a fixed number of training steps and
the wall-clock guard's loud report, baselines fitted on the fragments the model trained on,
per-length tables, accuracy-vs-length and confusion-matrix figures, the trainer's throughput in
fragments and bases, and replacing an earlier run of a demo. Matplotlib is imported lazily."""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from sparsemix.data.baselines import accuracy_by_bucket, run_baselines
from sparsemix.data.dataset import FragmentDataset
from sparsemix.data.sampling import Fragment
from sparsemix.tasks.base import TaskData
from sparsemix.train import TrainConfig
from sparsemix.train.data import trained_indices
from topologies.drawing import pyplot


def options_given(args: Any, *names: str) -> dict[str, Any]:
    """The named options the command line set (not None); the others keep ``TrainConfig``'s
    defaults, so a demo trains ``sparsemix train``'s recipe unless told otherwise."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The DNA model options the demos share: k-mer token stem, reverse complement."""
    p.add_argument("--kmer", type=int, default=6,
                   help="k-mer token stem: the id of the k-mer ending at each base, embedded and added "
                        "(plus its linear skip path), so the model contains the k-mer profile (default 6; "
                        "0: off)")
    p.add_argument("--rc-conjoin", action=argparse.BooleanOptionalAction, default=True,
                   help="predict with the average of the logits of a sequence and of its reverse "
                        "complement (default on)")
    p.add_argument("--reverse-complement", action=argparse.BooleanOptionalAction, default=True,
                   help="reverse-complement augmentation in training (default on, to match the "
                        "conjoined prediction)")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """``TrainConfig`` fields from :func:`add_model_options`' options."""
    return {"reverse_complement": args.reverse_complement, "kmer": args.kmer,
            "rc_conjoin": args.rc_conjoin}


def plan_steps(cfg: TrainConfig, num_train: int, steps: int) -> int:
    """Set ``cfg.epochs`` and ``cfg.max_steps_per_epoch`` so that the run takes ``steps``
    optimiser steps (whole epochs of ``num_train // batch_size`` steps while they fit, each epoch
    a fresh draw of the training set); returns the steps planned (``steps``, or up to
    ``epochs - 1`` more when ``steps`` does not split evenly into the epochs)."""
    if steps < 1:
        raise SystemExit(f"--steps must be at least 1, got {steps}")
    full = max(1, num_train // cfg.batch_size)  # never more than the trainer's steps per epoch
    cfg.epochs = math.ceil(steps / full)
    cfg.max_steps_per_epoch = math.ceil(steps / cfg.epochs)
    return cfg.epochs * cfg.max_steps_per_epoch


def guard_note(name: str, results: dict, planned: int) -> Optional[str]:
    """The loud line for a run the wall-clock guard cut (None when it ran every planned step)."""
    if results.get("stopped") != "time_budget":
        return None
    return (f"{name}: CUT BY THE WALL-CLOCK GUARD after {results['steps']} of {planned} steps; "
            "its result depends on this machine's speed and load")


def shout(notes: Sequence[str]) -> None:
    """Print guard notes so that nobody misses them."""
    for note in notes:
        bar = "!" * min(100, len(note) + 8)
        print(f"{bar}\n!!! {note} !!!\n{bar}", flush=True)


def trained_fragments(task: TaskData, cfg: TrainConfig) -> list[Fragment]:
    """The training fragments a run of ``cfg`` (its epochs, steps per epoch, batch and seed) reads
    on ``task``, all epochs together: each epoch's draw of a re-drawn training set
    (``ResampledFragmentDataset``), the manifest every epoch otherwise. A fragment read in two
    epochs (a fixed training set) is listed twice, as the model saw it twice."""
    ds = task.train
    per_epoch = trained_indices(task, cfg.batch_size, cfg.seed, cfg.epochs,
                                cfg.max_steps_per_epoch)
    out: list[Fragment] = []
    for epoch, indices in enumerate(per_epoch):
        frags = ds.epoch_fragments(epoch) if hasattr(ds, "epoch_fragments") else ds.fragments
        out += [frags[i] for i in indices]
    return out


class LazyTokens(Sequence[Tensor]):
    """A dataset's fragments as token tensors, tokenised on access (bounded memory for 64 kb)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Tensor:  # type: ignore[override]
        if not 0 <= i < len(self.dataset):
            raise IndexError(i)
        return self.dataset.tokens(i)


def split_arrays(task: TaskData) -> dict[str, tuple[Sequence[Tensor], Tensor, list[int]]]:
    """``split -> (tokens, labels, lengths)`` without augmentation, in dataset order."""
    out = {}
    for split in ("train", "val", "test"):
        ds = getattr(task, split)
        out[split] = (LazyTokens(ds), torch.tensor([ds.label(i) for i in range(len(ds))]),
                      list(ds.lengths))
    return out


def baselines_for(task: TaskData, ks: Sequence[int] = (4, 6),
                  train: Optional[Sequence[Fragment]] = None) -> dict[str, dict]:
    """GC and k-mer logistic regression fitted on ``train`` (e.g. :func:`trained_fragments`: the
    fragments the model trained on; default the task's train split as served now), L2 chosen on
    the validation split, tested on the test split."""
    arrays = split_arrays(task)
    if train is not None:
        ds = FragmentDataset(train, task.train.store, task.class_names)
        arrays["train"] = (LazyTokens(ds), torch.tensor([ds.label(i) for i in range(len(ds))]),
                           list(ds.lengths))
    return run_baselines(arrays, task.num_classes, task.meta["bucket_edges"], ks=ks)


def model_buckets(pred: dict, edges: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per-length-bucket accuracy of ``sparsemix.train.predict`` output."""
    correct = pred["probs"].argmax(dim=1) == pred["labels"]
    return accuracy_by_bucket(correct, [int(n) for n in pred["lengths"]], edges)


def confusion(pred_labels: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """[C, C] counts, rows = true class, columns = predicted class."""
    return torch.bincount(labels * num_classes + pred_labels,
                          minlength=num_classes ** 2).view(num_classes, num_classes)


def markdown_table(rows: dict[str, dict[str, dict[str, float]]], buckets: Sequence[str]) -> str:
    """``rows[name][bucket]["accuracy"]`` as a Markdown table, one column per bucket."""
    head = "| model | " + " | ".join(f"{b} bp" if b != "all" else "all" for b in buckets) + " |"
    sep = "|---|" + "---:|" * len(buckets)
    lines = [head, sep]
    for name, per in rows.items():
        cells = [f"{per[b]['accuracy']:.3f}" if b in per else "–" for b in buckets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = next(iter(rows.values()))
    lines.append("| *fragments* | " + " | ".join(str(counts[b]["n"]) if b in counts else "–"
                                                 for b in buckets) + " |")
    return "\n".join(lines)


def plot_lines(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path, *,
               xlabel: str, ylabel: str, title: str, chance: Optional[float] = None,
               xticks: Optional[Sequence[int]] = None, legend: str = "lower right") -> Path:
    """One line per model (``{name: (xs, ys)}``) against a log2 x axis, with an optional chance
    line; the figure the DNA demos draw of a score against length."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    if xticks is not None:
        ax.set_xticks(list(xticks), [f"{n:,}" for n in xticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy_vs_length(rows: dict[str, dict[str, dict[str, float]]], path: Path,
                            title: str, chance: Optional[float] = None) -> Path:
    """One line per model: accuracy per length bucket, x at each bucket's geometric centre."""
    series = {}
    for name, per in rows.items():
        keys = [k for k in per if k != "all"]
        series[name] = ([math.sqrt(int(k.split("-")[0]) * int(k.split("-")[1])) for k in keys],
                        [per[k]["accuracy"] for k in keys])
    return plot_lines(series, path, xlabel="fragment length (bp, bucket centre)",
                      ylabel="test accuracy", title=title, chance=chance)


def plot_confusion(counts: Tensor, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts written in the cells."""
    plt = pyplot()
    rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    c = len(class_names)
    fig, ax = plt.subplots(figsize=(1.1 * c + 2.2, 1.0 * c + 1.6))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(c), class_names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(c), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def training_throughput(results: dict) -> dict:
    """The trainer's throughput (``results["throughput"]``, see ``sparsemix.train.throughput``) in
    the demos' words: fragments and bases per second over the training steps of the run."""
    tp = results["throughput"]
    return {"steps": results["steps"], "fragments": int(tp["samples"]), "bases": int(tp["tokens"]),
            "train_time_s": results["train_time_s"], "fragments_per_s": tp["samples_per_s"],
            "bases_per_s": tp["tokens_per_s"]}


def clear_previous_run(run: Path, task: str) -> None:
    """The trainer refuses a folder holding a run; replace only an earlier run of this demo's task."""
    config = run / "config.json"
    if not config.exists():
        return
    if json.loads(config.read_text()).get("task") != task:
        sys.exit(f"{run} holds a run of another task; choose another --out")
    shutil.rmtree(run)
