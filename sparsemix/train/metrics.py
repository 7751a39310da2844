"""Evaluation metrics: accuracy, MSE, ROC-AUC (per class and macro) and training throughput.

A metric that is undefined for a split (ROC-AUC with one class) is ``None`` with a ``<name>_note``
saying why, so every result is valid JSON (no bare ``NaN``)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor


def roc_auc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive``.

    The Mann-Whitney statistic with tied scores counted 1/2 (average ranks). Returns NaN when one
    of the two classes is absent. Scores must be continuous (probabilities), never hard labels.
    """
    scores, positive = scores.double().flatten(), positive.bool().flatten()
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average ranks within runs of tied scores
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                  return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2  # mean of ranks start..end
    ranks[order] = avg[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def classification_metrics(probs: Tensor, labels: Tensor,
                           class_names: Optional[Sequence[str]] = None,
                           scores: Optional[Tensor] = None) -> dict:
    """Accuracy, one-vs-rest ROC-AUC per class and their macro mean, per-class accuracy (recall).

    Args:
        probs: [n, C] class probabilities. labels: [n] class ids.
        scores: [n, C] what ROC-AUC ranks (default ``probs``). Pass one-vs-rest log-odds
            (:func:`sparsemix.train.inference.log_odds`): the probabilities of a confident model
            saturate to ties at 0 and 1.
    """
    scores = probs if scores is None else scores
    num_classes = probs.size(1)
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    pred = probs.argmax(1)
    per_class, aucs = {}, []
    for c in range(num_classes):
        is_c = labels == c
        auc = roc_auc(scores[:, c], is_c)
        entry: dict = {"count": int(is_c.sum()),
                       "accuracy": float((pred[is_c] == c).double().mean()) if is_c.any() else None,
                       "roc_auc": None if math.isnan(auc) else auc}
        if not is_c.any():
            entry["accuracy_note"] = "undefined: no sample of this class in the split"
        if math.isnan(auc):
            entry["roc_auc_note"] = ("undefined: the split holds only this class" if is_c.all()
                                     else "undefined: no sample of this class in the split")
        else:
            aucs.append(auc)
        per_class[names[c]] = entry
    acc = float((pred == labels).double().mean()) if labels.numel() else math.nan
    # binary: the AUC of class 1 is the AUC; macro over two classes gives the same number
    out = {"accuracy": acc, "error_pct": 100.0 * (1.0 - acc),
           "roc_auc": sum(aucs) / len(aucs) if aucs else None, "per_class": per_class}
    if not aucs:  # JSON has no NaN: null and the reason
        out["roc_auc_note"] = "undefined: ROC-AUC needs samples of two classes in the split"
    return out


def regression_metrics(preds: Tensor, targets: Tensor, tolerance: Optional[float] = None) -> dict:
    """MSE, MAE and, with ``tolerance``, the accuracy ``|pred - target| < tolerance`` (error %)."""
    err = (preds.double() - targets.double())
    out = {"mse": float((err ** 2).mean()), "mae": float(err.abs().mean())}
    if tolerance is not None:
        acc = float((err.abs() < tolerance).double().mean())
        out.update(accuracy=acc, error_pct=100.0 * (1.0 - acc), tolerance=tolerance)
    return out


def throughput(samples: float, tokens: float, seconds: float) -> dict:
    """Sequences/s and tokens/s over ``seconds`` of training steps (the run's ``throughput``)."""
    seconds_ = max(seconds, 1e-9)
    return {"samples": samples, "tokens": tokens, "time_s": round(seconds, 6),
            "samples_per_s": samples / seconds_, "tokens_per_s": tokens / seconds_}


def primary_metric(kind: str) -> tuple[str, str]:
    """The validation metric that picks the best model, and ``"max"`` or ``"min"``."""
    return ("accuracy", "max") if kind == "classification" else ("mse", "min")


def is_better(value: Optional[float], best: Optional[float], mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best
