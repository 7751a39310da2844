"""What every task hands the trainer: three datasets and a description of inputs and targets.

A task is a function ``build(cfg) -> TaskData`` registered under a name with :func:`register_task`.
``cfg`` is the trainer's run configuration (it has at least ``length``, ``train_size``, ``val_size``,
``test_size``, ``seed`` and ``fasta``; a task reads only what it needs). A task that writes
files into ``cfg.out`` (the DNA tasks' manifests) writes nothing when ``cfg.readonly`` is true
(``evaluate`` / ``predict`` / ``load_model``); then, and on ``cfg.resume``, it reads the saved
files instead of drawing anew.

Dataset items are ``(x, y)``:
- ``x``: LongTensor [n] of token ids (``input="tokens"``) or FloatTensor [n, input_dim]
  (``input="continuous"``). For ``variable_length`` tasks n differs between items; otherwise
  every item has n == ``max_len``.
- ``y``: a 0-dim LongTensor class id (``kind="classification"``) or a 0-dim FloatTensor
  (``kind="regression"``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, Optional

from torch.utils.data import Dataset


@dataclass
class TaskData:
    train: Dataset
    val: Dataset
    test: Dataset
    kind: Literal["classification", "regression"]
    num_classes: int  # 1 for regression
    input: Literal["tokens", "continuous"]
    max_len: int
    variable_length: bool = False
    vocab_size: Optional[int] = None  # tokens
    input_dim: Optional[int] = None  # continuous
    pad_id: Optional[int] = None  # a token id reserved for padding (baselines only; Paramixer never pads)
    class_names: Optional[list[str]] = None
    meta: dict[str, Any] = field(default_factory=dict)


TaskBuilder = Callable[[Any], TaskData]
TASKS: dict[str, TaskBuilder] = {}

# Modules that register tasks; imported on first use so `import sparsemix.tasks` stays light.
TASK_MODULES = ("sparsemix.tasks.synthetic", "sparsemix.tasks.dna")


def load_all() -> None:
    """Import (and so register) the built-in tasks."""
    for module in TASK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency, not a task module not written yet
                raise


@dataclass(frozen=True)
class TaskOptions:
    """What a task reads beyond the common options: its ``extra`` keys (None: any), whether it
    takes ``--fasta`` files, and the model options it recommends (``model_defaults``, e.g.
    ``{"positional": False}``), which fill the run options left at ``auto``."""

    extras: Optional[frozenset] = None
    fasta: bool = False
    model_defaults: Mapping[str, Any] = field(default_factory=dict)


TASK_OPTIONS: dict[str, TaskOptions] = {}


def register_task(name: str, extras: Optional[Iterable[str]] = None, fasta: bool = False,
                  model_defaults: Optional[Mapping[str, Any]] = None
                  ) -> Callable[[TaskBuilder], TaskBuilder]:
    """Decorator: make ``build`` available as ``sparsemix train --task NAME``.

    ``extras``: the ``extra`` keys the task reads (others are refused; None accepts any);
    ``fasta``: whether the task reads ``--fasta`` files (else giving them is an error);
    ``model_defaults``: the values of run options left at ``auto`` (None) for this task, chosen
    by ``benchmarks/learning.py`` (see ``TrainConfig.resolve_task_defaults``).
    """
    def wrap(build: TaskBuilder) -> TaskBuilder:
        if name in TASKS:
            raise ValueError(f"task {name!r} is registered twice")
        TASKS[name] = build
        TASK_OPTIONS[name] = TaskOptions(None if extras is None else frozenset(extras), fasta,
                                         dict(model_defaults or {}))
        return build
    return wrap


def build_task(name: str, cfg: Any) -> TaskData:
    """Build the task ``name``; an unknown name is a ValueError listing the known ones."""
    load_all()
    if name not in TASKS:
        raise ValueError(f"--task must be one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name](cfg)
