"""Reporting helpers shared by the DNA demos: baselines on a task's splits, per-length tables,
accuracy-vs-length and confusion-matrix figures, a model's factor weights on one fragment, and
training throughput. Matplotlib is imported lazily (the ``viz`` extra)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from ..tasks.base import TaskData
from .baselines import accuracy_by_bucket, run_baselines


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


def baselines_for(task: TaskData, ks: Sequence[int] = (4, 6)) -> dict[str, dict]:
    """GC and k-mer logistic regression fitted on the task's train split, tested on its test."""
    return run_baselines(split_arrays(task), task.num_classes, task.meta["bucket_edges"], ks=ks)


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_length(rows: dict[str, dict[str, dict[str, float]]], path: Path,
                            title: str, chance: Optional[float] = None) -> Path:
    """One line per model: accuracy per length bucket, x at each bucket's geometric centre."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, per in rows.items():
        keys = [k for k in per if k != "all"]
        xs = [math.sqrt(int(k.split("-")[0]) * int(k.split("-")[1])) for k in keys]
        ax.plot(xs, [per[k]["accuracy"] for k in keys], marker="o", label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("fragment length (bp, bucket centre)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion(counts: Tensor, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts written in the cells."""
    plt = _pyplot()
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


@torch.no_grad()
def fragment_weights(model: torch.nn.Module, tokens: Tensor) -> tuple[list[Tensor], Tensor, Any]:
    """The first Paramixer block's M factor weights [N, K] and its effective mixing matrix [N, N]
    on one fragment (eval mode). Paper block: its weight MLPs read the embedding, as in training;
    encoder model (``block="encoder"``): the first layer's mixing, whose MLPs read the layer's
    normalised input (after the stem, if any)."""
    from ..reference import mixing_matrix

    model.eval()
    h = model.embed(tokens[None])[0]  # [N, C]
    if getattr(model, "stem", None) is not None:
        h = model.stem(h[None])[0]
    block = model.blocks[0]
    if hasattr(block, "mixer"):  # a ParamixerEncoderLayer: the mixing sits inside it
        h = block.norm1(h)
        gates = block.gates(h)
        block = block.mixer
        _, weights = block(h, x=h, return_weights=True, weight_gates=gates)
        if gates is not None:  # the returned weights are already gated
            return weights, _gated_mixing_matrix(block, weights, h), block.topology_for(h.size(0))
        return weights, mixing_matrix(block, h, h), block.topology_for(h.size(0))
    # the first block's input and its weight-MLP input are both the embedding (eval: no dropout)
    _, weights = block(h, x=h, return_weights=True)
    return weights, mixing_matrix(block, h, h), block.topology_for(h.size(0))


def _gated_mixing_matrix(block, weights: Sequence[Tensor], h: Tensor) -> Tensor:
    """The dense product (I + W^(M)) ... (I + W^(1)) for given per-factor weights [N, K]."""
    from ..reference import dense_factor

    topo = block.topology_for(h.size(0), h.device)
    eye = torch.eye(h.size(0), dtype=h.dtype, device=h.device)
    product = eye
    for m, w in enumerate(weights):
        product = (eye + dense_factor(topo, m, w)) @ product
    return product


def plot_fragment_weights(weights: Sequence[Tensor], matrix: Tensor, path: Path,
                          title: str) -> Path:
    """Left: each factor's learned weights [K slots x N positions] (signed colours, one scale);
    right: the block's effective mixing matrix on the same fragment."""
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    m = len(weights)
    wmax = max(float(w.abs().max()) for w in weights) or 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-wmax, vmax=wmax)
    fig = plt.figure(figsize=(12, 0.45 * m * 1.3 + 2))
    grid = fig.add_gridspec(m, 2, width_ratios=[1.6, 1], wspace=0.25, hspace=0.15)
    for i, w in enumerate(weights):
        ax = fig.add_subplot(grid[i, 0])
        im = ax.imshow(w.T.numpy(), aspect="auto", cmap="RdBu_r", norm=norm,
                       interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(f"W{i + 1}", rotation=0, labelpad=14, fontsize=7, va="center")
        if i < m - 1:
            ax.set_xticks([])
        else:
            ax.set_xlabel("position i (rows: slots k)")
    fig.colorbar(im, ax=fig.axes, location="bottom", fraction=0.03, pad=0.07, aspect=50,
                 label="factor weight")
    ax = fig.add_subplot(grid[:, 1])
    mmax = float(matrix.abs().max()) or 1.0
    im2 = ax.imshow(matrix.numpy(), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -mmax, mmax),
                    interpolation="nearest")
    ax.set_title("effective mixing matrix (I+W_M)...(I+W_1)", fontsize=9)
    ax.set_xlabel("source j")
    ax.set_ylabel("target i")
    fig.colorbar(im2, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def training_throughput(task: TaskData, cfg: Any, steps: int, train_time_s: float) -> dict:
    """Fragments/s and bases/s over the training steps actually taken, by replaying the trainer's
    seeded batch sampler for ``steps`` steps (exact: the sampler is deterministic per epoch)."""
    from ..train.data import dataset_lengths, train_sampler
    from ..train.distributed import DistInfo

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"),
                    is_main=True, backend=None)
    lengths = dataset_lengths(task.train)
    sampler = train_sampler(task, cfg.batch_size, cfg.seed, info, lengths)
    per_epoch = len(sampler)
    if cfg.max_steps_per_epoch is not None:
        per_epoch = min(per_epoch, cfg.max_steps_per_epoch)
    fragments = bases = 0
    epoch, left = 0, steps
    while left > 0:
        sampler.set_epoch(epoch)
        for batch in list(sampler)[:min(per_epoch, left)]:
            fragments += len(batch)
            bases += int(lengths[list(batch)].sum())
        left -= per_epoch
        epoch += 1
    t = max(train_time_s, 1e-9)
    return {"steps": steps, "fragments": fragments, "bases": bases, "train_time_s": train_time_s,
            "fragments_per_s": fragments / t, "bases_per_s": bases / t}
