"""The recipe of a run, in one place: every default of :class:`~sparsemix.train.TrainConfig`, the
options a task may fill (``auto``), the values old run folders load with, and the optimiser and
learning-rate schedule built from a config.

Everything that needs a default reads it from here: ``TrainConfig``'s fields, ``sparsemix train
--help`` (through ``TrainConfig``), :meth:`TrainConfig.resolve_task_defaults` and
:meth:`TrainConfig.from_dict` (old runs). The defaults are the recipe ``benchmarks/learning.py``
selected (docs/learning.md): the encoder model (2 pre-norm Paramixer encoder layers, sum-initialised
factors, sinusoid-initialised learned positions) trained with AdamW, a linear warm-up and cosine
decay.

The library's model constructors (:class:`sparsemix.models.SequenceClassifier`) keep the paper's
model as their default and do not read this module: the models package sits below ``train`` in the
import order, and a constructor called without options builds the published model.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

if TYPE_CHECKING:  # config imports this module for its defaults; annotations only
    from .config import TrainConfig

#: ``--optimizer`` and ``--scheduler``: the names :func:`build_optimizer` and
#: :func:`build_scheduler` understand.
OPTIMIZERS = ("adamw", "adam")
SCHEDULERS = ("constant", "cosine", "warmup-cosine")

#: The default of every :class:`TrainConfig` option that has one (the others: required, or None).
DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "epochs": 10, "seed": 0, "protocol": "chord", "backend": "auto", "device": "auto",
    "batch_size": 32, "lr": 3e-3, "dropout": 0.0, "channels": 32, "num_layers": 2,
    "pooling": "mean", "model": "paramixer", "block": "encoder", "stem": "none", "stem_kernel": 7,
    "mixing": True, "mix_init": "sum", "position_init": "sinusoid", "weights_from": "embedding",
    "optimizer": "adamw", "weight_decay": 0.01, "scheduler": "warmup-cosine",
    "clip_grad": 1.0, "kmer": 0, "rc_conjoin": False, "weight_mlp": "per-factor",
    "precision": "auto",
})

#: Options that may be left at None ("auto"): the task's ``model_defaults`` fill them, else these.
#: ``mix_mode`` and ``num_heads`` (the encoder's score heads; used by mix_mode "average") are here
#: because the learning benchmark chose the averaged mixing for the Adding tasks only
#: (docs/learning.md, section 5); every other task keeps the summed mixing its results were
#: measured with.
TASK_DEFAULTABLE: Mapping[str, Any] = MappingProxyType({
    "positional": True, "mix_gain": 0.3, "wrap_gate": False, "mix_mode": "sum", "num_heads": 4,
    "score_scale": "none"})

#: Task-defaultable options of the Paramixer encoder: "auto" resolves them to these for every other
#: model, whatever the task recommends (the Transformer's attention heads: 1).
ENCODER_ONLY_OFF: Mapping[str, Any] = MappingProxyType({"wrap_gate": False, "mix_mode": "sum",
                                                       "num_heads": 1, "score_scale": "none"})

#: Config version 1 (no ``config_version`` key) predates the encoder model: its missing fields load
#: as these, i.e. as the model and recipe it trained.
LEGACY_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "config_version": 1, "block": "paper", "stem": "none", "stem_kernel": 7, "mixing": True,
    "position_init": "normal", "mix_init": "stable", "optimizer": "adam", "warmup_steps": 0})

#: A config written before ``--mix-gain`` existed: its encoder layers started at gain 1.
LEGACY_MIX_GAIN = 1.0

#: A config written before ``--mix-mode`` existed: its encoder layers summed.
LEGACY_MIX_MODE = "sum"

#: A config written before ``--weight-mlp`` existed: every factor had its own MLP (the paper's).
LEGACY_WEIGHT_MLP = "per-factor"

#: A config written before ``--precision`` existed: it trained in fp32.
LEGACY_PRECISION = "fp32"

#: ``warmup-cosine`` without ``--warmup-steps``: 1/WARMUP_DIVISOR of the run, at most WARMUP_MAX_STEPS.
WARMUP_DIVISOR, WARMUP_MAX_STEPS = 10, 100


def build_optimizer(model: nn.Module, cfg: "TrainConfig") -> torch.optim.Optimizer:
    """``cfg.optimizer`` over all parameters at ``cfg.lr``: "adamw" (decoupled ``cfg.weight_decay``)
    or "adam" (the paper's; ``cfg.weight_decay`` as L2)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def warmup_steps(cfg: "TrainConfig", total_steps: int) -> int:
    """``cfg.warmup_steps``, else 10 % of the run, at most 100 steps."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return min(WARMUP_MAX_STEPS, total_steps // WARMUP_DIVISOR)


def lr_factor(step: int, total_steps: int, warmup: int = 0, decay: bool = True) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up from
    1/warmup to 1 over ``warmup`` steps, then (``decay``) a cosine from 1 to 0 at ``total_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    if not decay:
        return 1.0
    span = max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


def build_scheduler(opt: torch.optim.Optimizer, cfg: "TrainConfig",
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """``cfg.scheduler``: "constant"; "cosine" decay to 0 over ``total_steps`` optimiser steps; or
    "warmup-cosine" (:func:`warmup_steps` of linear warm-up, then the cosine)."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps))
    if cfg.scheduler == "warmup-cosine":
        warmup = warmup_steps(cfg, total_steps)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
