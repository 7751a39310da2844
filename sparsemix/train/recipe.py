"""The optimisation recipe of a run: optimizer and learning-rate schedule from its TrainConfig."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over all parameters at ``cfg.lr`` with ``cfg.weight_decay`` (the paper's optimizer)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """``cfg.scheduler``: "constant", or "cosine" decay to 0 over ``total_steps`` optimiser steps."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(1, total_steps))))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
