"""The optimisation recipe of a run: optimizer and learning-rate schedule from its TrainConfig."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over all parameters at ``cfg.lr``: "adamw" (decoupled ``cfg.weight_decay``)
    or "adam" (the paper's; ``cfg.weight_decay`` as L2)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    """``cfg.warmup_steps``, else 10 % of the run, at most 100 steps."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return min(100, total_steps // 10)


def lr_factor(step: int, total_steps: int, warmup: int = 0, decay: bool = True) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up from
    1/warmup to 1 over ``warmup`` steps, then (``decay``) a cosine from 1 to 0 at ``total_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    if not decay:
        return 1.0
    span = max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """``cfg.scheduler``: "constant"; "cosine" decay to 0 over ``total_steps`` optimiser steps; or
    "warmup-cosine" (:func:`warmup_steps` of linear warm-up, then the cosine)."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps))
    if cfg.scheduler == "warmup-cosine":
        warmup = warmup_steps(cfg, total_steps)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
