"""Cheap baselines every DNA result must be read next to: GC content and k-mer logistic regression.

Both are plain torch (no scikit-learn): strand-symmetric features (counts on the fragment plus
its reverse complement, so the random strand of a fragment does not matter), standardised with
the training split's mean and std, then a multinomial logistic regression fitted full-batch with
L-BFGS. The L2 strength is picked on the validation split from a small grid. Seconds on 2 cores.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor

from .tokenizer import DNATokenizer

_BASE0 = DNATokenizer().base_ids["A"]  # ids A, C, G, T, N are consecutive from here


def _base_codes(tokens: Tensor) -> Tensor:
    """Token ids -> 0..3 for A, C, G, T and 4 for N (specials also become 4)."""
    codes = tokens.long() - _BASE0
    return torch.where((codes >= 0) & (codes < 4), codes, torch.full_like(codes, 4))


def kmer_counts(tokens: Tensor, k: int) -> Tensor:
    """Strand-symmetric k-mer counts of one fragment: FloatTensor [4**k] (a readable reference
    for :func:`kmer_features`).

    k-mers containing N are skipped; each k-mer's count includes its reverse complement's.
    """
    codes = _base_codes(tokens)
    out = torch.zeros(4 ** k)
    if codes.numel() < k:
        return out
    win = codes.unfold(0, k, 1)  # [n - k + 1, k]
    ok = (win < 4).all(dim=1)
    win = win[ok]
    powers = 4 ** torch.arange(k - 1, -1, -1)
    fwd = (win * powers).sum(dim=1)
    rev = ((3 - win).flip(dims=[1]) * powers).sum(dim=1)
    out += torch.bincount(fwd, minlength=4 ** k).float()
    out += torch.bincount(rev, minlength=4 ** k).float()
    return out


def kmer_features(items: Iterable[Tensor], k: int, chunk_tokens: int = 1 << 19) -> Tensor:
    """Strand-symmetric k-mer frequencies (counts / total) of many fragments: [n, 4**k].

    Vectorised over fragments: up to ``chunk_tokens`` bases at a time are concatenated, windows
    that cross a fragment boundary or hold an N are masked, and one ``bincount`` over
    ``fragment * 4**k + kmer`` fills that chunk's rows. ``items`` is read once, in order, so a
    lazy sequence keeps memory bounded for long windows.
    """
    rows: list[Tensor] = []
    chunk: list[Tensor] = []
    size = 0
    for tokens in items:
        chunk.append(tokens)
        size += tokens.numel()
        if size >= chunk_tokens:
            rows.append(_kmer_chunk(chunk, k))
            chunk, size = [], 0
    if chunk or not rows:
        rows.append(_kmer_chunk(chunk, k))
    return torch.cat(rows)


def _kmer_chunk(items: list[Tensor], k: int) -> Tensor:
    if not items:
        return torch.zeros(0, 4 ** k)
    lengths = torch.tensor([t.numel() for t in items])
    codes = _base_codes(torch.cat(items))
    owner = torch.repeat_interleave(torch.arange(len(items)), lengths)
    counts = torch.zeros(len(items) * 4 ** k)
    if codes.numel() >= k:
        win = codes.unfold(0, k, 1)  # [T - k + 1, k]
        ok = (win < 4).all(dim=1) & (owner[: len(win)] == owner[k - 1:])
        win, row = win[ok], owner[: len(ok)][ok] * 4 ** k
        powers = 4 ** torch.arange(k - 1, -1, -1)
        counts += torch.bincount(row + (win * powers).sum(1), minlength=counts.numel()).float()
        rev = ((3 - win).flip(dims=[1]) * powers).sum(1)
        counts += torch.bincount(row + rev, minlength=counts.numel()).float()
    counts = counts.view(len(items), 4 ** k)
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)


def gc_features(items: Iterable[Tensor]) -> Tensor:
    """GC fraction of the non-N bases of many fragments: [n, 1]."""
    rows = []
    for tokens in items:
        codes = _base_codes(tokens)
        acgt = (codes < 4).sum().clamp_min(1)
        gc = ((codes == 1) | (codes == 2)).sum()
        rows.append(gc.float() / acgt.float())
    return torch.stack(rows)[:, None]


@dataclass
class LogisticRegression:
    """A fitted multinomial logistic regression on standardised features."""

    weight: Tensor  # [F, C]
    bias: Tensor  # [C]
    mean: Tensor  # [F]
    std: Tensor  # [F]
    l2: float

    def logits(self, features: Tensor) -> Tensor:
        return ((features - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, features: Tensor) -> Tensor:
        return self.logits(features).argmax(dim=1)


def fit_logistic(
    features: Tensor, labels: Tensor, num_classes: int, l2: float = 1e-3, max_iter: int = 100,
    init: Optional[LogisticRegression] = None,
) -> LogisticRegression:
    """Full-batch L-BFGS on mean cross-entropy + ``l2/2 · ||W||²`` (the bias is not penalised).

    ``init`` warm-starts from an earlier fit on the same features (used along an L2 path).
    """
    features = features.float()
    mean = features.mean(dim=0)
    std = features.std(dim=0).clamp_min(1e-6) if len(features) > 1 else torch.ones_like(mean)
    z = (features - mean) / std
    weight = torch.zeros(z.shape[1], num_classes)
    bias = torch.zeros(num_classes)
    if init is not None:
        weight, bias = init.weight.clone(), init.bias.clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, labels)
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LogisticRegression(weight.detach(), bias.detach(), mean, std, l2)


def length_buckets(lengths: Sequence[int], edges: Sequence[int]) -> list[str]:
    """Name each length's bucket ``[edges[i], edges[i+1])``, e.g. ``"256-511"``."""
    names = []
    for n in lengths:
        for lo, hi in zip(edges[:-1], edges[1:]):
            if lo <= n < hi:
                names.append(f"{lo}-{hi - 1}")
                break
        else:
            raise ValueError(f"length {n} is outside the bucket edges {list(edges)}")
    return names


def power_of_two_edges(min_length: int, max_length: int) -> list[int]:
    """Bucket edges at powers of two from ``min_length``'s, closed by ``max_length + 1``.

    ``(256, 4096)`` gives ``[256, 512, 1024, 2048, 4097]``: the last bucket is ``2048-4096``.
    """
    edges = [2 ** math.floor(math.log2(min_length))]
    while edges[-1] * 2 < max_length:
        edges.append(edges[-1] * 2)
    return edges + [max_length + 1]


def accuracy_by_bucket(
    correct: Tensor, lengths: Sequence[int], edges: Sequence[int],
) -> dict[str, dict[str, float]]:
    """``{bucket: {"accuracy": a, "n": count}}`` plus ``"all"``."""
    names = length_buckets(lengths, edges)
    correct = correct.bool()
    out: dict[str, dict[str, float]] = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        key = f"{lo}-{hi - 1}"
        mask = torch.tensor([n == key for n in names], dtype=torch.bool)
        if mask.any():
            out[key] = {"accuracy": correct[mask].float().mean().item(), "n": int(mask.sum())}
    out["all"] = {"accuracy": correct.float().mean().item(), "n": len(names)}
    return out


def run_baselines(
    splits: dict[str, tuple[Sequence[Tensor], Tensor, list[int]]], num_classes: int,
    edges: Sequence[int], ks: Sequence[int] = (6,),
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    include_gc: bool = True, test_split: str = "test",
) -> dict[str, dict]:
    """Fit GC and k-mer baselines on ``train``, choose L2 on ``val``, report on ``test_split``.

    Args:
        splits: split -> (token tensors, labels LongTensor [n], lengths).
        edges: length-bucket edges for the per-bucket table.
    Returns:
        ``{name: {"l2": ..., "val_accuracy": ..., "buckets": {...}, "predictions": [...],
        "seconds": ...}}`` for ``"gc"`` and ``"kmer{k}"``.
    """
    threads = torch.get_num_threads()
    # These small matmuls gain nothing from threads, and on a shared machine extra threads
    # oversubscribe the cores and run 10x slower.
    torch.set_num_threads(1)
    try:
        return _run_baselines(splits, num_classes, edges, ks, l2_grid, include_gc, test_split)
    finally:
        torch.set_num_threads(threads)


def _run_baselines(
    splits: dict[str, tuple[Sequence[Tensor], Tensor, list[int]]], num_classes: int,
    edges: Sequence[int], ks: Sequence[int], l2_grid: Sequence[float], include_gc: bool,
    test_split: str,
) -> dict[str, dict]:
    results: dict[str, dict] = {}
    makers: list[tuple[str, Callable[[Sequence[Tensor]], Tensor]]] = []
    if include_gc:
        makers.append(("gc", gc_features))
    for k in ks:
        makers.append((f"kmer{k}", lambda items, k=k: kmer_features(items, k)))
    for name, make in makers:
        t0 = time.perf_counter()
        feats = {s: make(splits[s][0]) for s in ("train", "val", test_split)}
        best: Optional[tuple[float, LogisticRegression]] = None
        model: Optional[LogisticRegression] = None
        for l2 in sorted(l2_grid, reverse=True):  # strong to weak, each warm-started
            model = fit_logistic(feats["train"], splits["train"][1], num_classes, l2=l2,
                                 init=model)
            acc = (model.predict(feats["val"]) == splits["val"][1]).float().mean().item()
            if best is None or acc > best[0]:
                best = (acc, model)
        assert best is not None
        pred = best[1].predict(feats[test_split])
        correct = pred == splits[test_split][1]
        results[name] = {
            "l2": best[1].l2,
            "val_accuracy": best[0],
            "buckets": accuracy_by_bucket(correct, splits[test_split][2], edges),
            "predictions": pred.tolist(),
            "seconds": time.perf_counter() - t0,
        }
    return results
