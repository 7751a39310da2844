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
import math
from dataclasses import dataclass, field
from types import MappingProxyType
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
TASK_MODULES = ("sparsemix.tasks.synthetic", "sparsemix.tasks.dna", "sparsemix.tasks.promoter")


def load_all() -> None:
    """Import (and so register) the built-in tasks."""
    for module in TASK_MODULES:
        importlib.import_module(module)


@dataclass(frozen=True)
class Extra:
    """One ``--extra`` key a task (or model) reads: the type of its value and the values allowed.

    ``type``: ``int``, ``float``, ``str`` or ``list`` (of strings), or None for any JSON value;
    ``minimum`` / ``maximum``: inclusive bounds of a number; ``choices``: the allowed strings.
    """

    type: Optional[type] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Optional[tuple] = None

    def check(self, key: str, value: Any) -> Any:
        """``value``, or a ValueError naming ``--extra`` ``key`` and what it takes."""
        want = self.describe()
        if self.type in (int, float):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (self.type is int and not isinstance(value, int)) or (
                    self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum) or not math.isfinite(value):
                raise ValueError(f"--extra {key} must be {want}, got {value!r}")
        elif self.type is str and (not isinstance(value, str) or
                                   (self.choices is not None and value not in self.choices)):
            raise ValueError(f"--extra {key} must be {want}, got {value!r}")
        elif self.type is list and (not isinstance(value, list) or
                                    not all(isinstance(v, str) for v in value)):
            raise ValueError(f"--extra {key} must be {want}, got {value!r}")
        return value

    def describe(self) -> str:
        if self.type is None:
            return "any JSON value"
        if self.type is list:
            return "a list of strings"
        if self.type is str:
            return "one of " + ", ".join(self.choices) if self.choices else "a string"
        what = "an integer" if self.type is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{what} in [{self.minimum}, {self.maximum}]"
        if self.minimum is not None:
            return f"{what} >= {self.minimum}"
        return what


@dataclass(frozen=True)
class TaskOptions:
    """What a task reads beyond the common options: its ``extra`` keys (None: any) and the
    :class:`Extra` each takes (``extra_types``), whether it takes ``--fasta`` files, and the model
    options it recommends (``model_defaults``, e.g. ``{"positional": False}``), which fill the run
    options left at ``auto``."""

    extras: Optional[frozenset] = None
    fasta: bool = False
    model_defaults: Mapping[str, Any] = field(default_factory=dict)
    extra_types: Mapping[str, Extra] = field(default_factory=dict)


TASK_OPTIONS: dict[str, TaskOptions] = {}


def register_task(name: str, extras: Optional[Iterable[str] | Mapping[str, Extra]] = None,
                  fasta: bool = False, model_defaults: Optional[Mapping[str, Any]] = None
                  ) -> Callable[[TaskBuilder], TaskBuilder]:
    """Decorator: make ``build`` available as ``sparsemix train --task NAME``.

    ``extras``: the ``extra`` keys the task reads (others are refused; None accepts any), as a
    mapping ``key -> Extra(type, minimum, maximum, choices)`` so that a wrong value is refused
    by name before the task runs (a plain list of keys accepts any value);
    ``fasta``: whether the task reads ``--fasta`` files (else giving them is an error);
    ``model_defaults``: the values of run options left at ``auto`` (None) for this task, chosen
    by ``benchmarks/learning.py`` (see ``TrainConfig.resolve_task_defaults``).
    """
    types = dict(extras) if isinstance(extras, Mapping) else {}

    def wrap(build: TaskBuilder) -> TaskBuilder:
        if name in TASKS:
            raise ValueError(f"task {name!r} is registered twice")
        TASKS[name] = build
        TASK_OPTIONS[name] = TaskOptions(None if extras is None else frozenset(extras), fasta,
                                         dict(model_defaults or {}), types)
        return build
    return wrap


def check_extras(task: str, extra: Mapping[str, Any],
                 model_extras: Mapping[str, Extra] = MappingProxyType({})) -> None:
    """Refuse, naming the key, an ``--extra`` key ``task`` does not read or a value of the wrong
    type or range (``model_extras``: the keys the models read, allowed for every task)."""
    options = TASK_OPTIONS.get(task, TaskOptions())
    types = {**options.extra_types, **model_extras}
    if options.extras is not None:
        unknown = sorted(set(extra) - options.extras - set(model_extras))
        if unknown:
            known = sorted(options.extras | set(model_extras))
            raise ValueError(f"--extra: unknown key(s) {unknown} for --task {task} "
                             f"(known: {', '.join(known)})")
    for key, value in extra.items():
        if key in types:
            types[key].check(key, value)


def build_task(name: str, cfg: Any) -> TaskData:
    """Build the task ``name``; an unknown name is a ValueError listing the known ones."""
    load_all()
    if name not in TASKS:
        raise ValueError(f"--task must be one of {sorted(TASKS)}, got {name!r}")
    check_extras(name, {k: v for k, v in (getattr(cfg, "extra", None) or {}).items()
                        if k in TASK_OPTIONS[name].extra_types})
    return TASKS[name](cfg)
