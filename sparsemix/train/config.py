"""The run configuration: one JSON-serialisable dataclass, saved as ``config.json`` in every run."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from topologies import PROTOCOLS

from .._io import atomic_write_text
from ..errors import RunError
from ..models import BLOCKS, MODELS, POOLINGS, POSITION_INITS, STEMS, WEIGHTS_FROM
from ..nn import BACKENDS, MIX_INITS, WEIGHT_MLPS, MIX_MODES, SCORE_SCALES
from ..nn.kmer_embedding import MAX_K as KMER_MAX_K
from ..tasks import TASK_OPTIONS, TASKS, Extra, TaskOptions, check_extras, load_all
from .recipe import (DEFAULTS, ENCODER_ONLY_OFF, LEGACY_DEFAULTS, LEGACY_MIX_GAIN, LEGACY_MIX_MODE,
                     LEGACY_PRECISION, LEGACY_WEIGHT_MLP, OPTIMIZERS, SCHEDULERS,
                     TASK_DEFAULTABLE)
from .precision import PRECISIONS

#: The config layout written by this version. Version 1 (no ``config_version`` key) predates the
#: encoder model; its missing fields load as :data:`~sparsemix.train.recipe.LEGACY_DEFAULTS`, i.e.
#: as the model it trained.
CONFIG_VERSION = 2

#: Every option vocabulary of a run: the option's field -> the names its owner accepts (imported
#: from the module that owns each; never restated). ``sparsemix train`` checks and lists these.
CHOICES: dict[str, Any] = {"protocol": PROTOCOLS, "backend": BACKENDS, "pooling": POOLINGS,
                           "model": MODELS, "block": BLOCKS, "stem": STEMS,
                           "position_init": POSITION_INITS, "mix_init": MIX_INITS, "mix_mode": MIX_MODES,
                           "score_scale": SCORE_SCALES,
                           "weights_from": WEIGHTS_FROM, "optimizer": OPTIMIZERS,
                           "scheduler": SCHEDULERS, "weight_mlp": WEIGHT_MLPS,
                           "precision": PRECISIONS}

#: The largest ``--seed``: numpy's generators take seeds below 2**32, and every run seeds numpy too.
MAX_SEED = 2**32 - 1

#: ``extra`` keys the models read, and what each takes (tasks declare theirs with
#: ``register_task(extras=...)``).
MODEL_EXTRA_TYPES: dict[str, Extra] = {"cdil_layers": Extra(int, 1)}
MODEL_EXTRAS = frozenset(MODEL_EXTRA_TYPES)
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")

# Fields that may differ when a run is resumed: where/how long/on what it runs, not what it learns.
RESUMABLE_FIELDS = frozenset({"out", "epochs", "resume", "device", "time_budget_s", "quiet",
                              "eval_batch_size", "backend", "deterministic"})


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``sparsemix train --help`` documents each field.

    The defaults come from :mod:`sparsemix.train.recipe` (``DEFAULTS``), the recipe
    ``benchmarks/learning.py`` selected (docs/learning.md).
    """

    config_version: int = CONFIG_VERSION
    task: str = ""
    out: str = ""
    length: Optional[int] = None
    epochs: int = DEFAULTS["epochs"]
    seed: int = DEFAULTS["seed"]
    protocol: str = DEFAULTS["protocol"]
    backend: str = DEFAULTS["backend"]
    device: str = DEFAULTS["device"]
    train_size: Optional[int] = None
    val_size: Optional[int] = None
    test_size: Optional[int] = None
    fasta: list[str] = field(default_factory=list)
    batch_size: int = DEFAULTS["batch_size"]
    lr: float = DEFAULTS["lr"]
    dropout: float = DEFAULTS["dropout"]
    channels: int = DEFAULTS["channels"]
    num_layers: int = DEFAULTS["num_layers"]
    hidden_channels: Optional[int] = None
    pooling: str = DEFAULTS["pooling"]
    model: str = DEFAULTS["model"]
    block: str = DEFAULTS["block"]
    stem: str = DEFAULTS["stem"]
    stem_kernel: int = DEFAULTS["stem_kernel"]
    kmer: int = DEFAULTS["kmer"]  # k-mer embedding + profile skip path (paramixer, DNA); 0: off
    rc_conjoin: bool = DEFAULTS["rc_conjoin"]  # eval: average the logits of both strands (DNA)
    mixing: bool = DEFAULTS["mixing"]
    mix_init: str = DEFAULTS["mix_init"]
    mix_mode: Optional[str] = None  # None ("auto"): the task's default (adding tasks: average)
    wrap_gate: Optional[bool] = None  # None ("auto"): the task's default, see TASK_DEFAULTABLE
    score_scale: Optional[str] = None  # None ("auto"): the task's default, see TASK_DEFAULTABLE
    weight_mlp: str = DEFAULTS["weight_mlp"]
    precision: str = DEFAULTS["precision"]  # "auto" is resolved (and saved) when a run starts
    mix_gain: Optional[float] = None  # None ("auto"): the task's default, see TASK_DEFAULTABLE
    positional: Optional[bool] = None  # None ("auto"): the task's default
    position_init: str = DEFAULTS["position_init"]
    weights_from: str = DEFAULTS["weights_from"]
    num_heads: Optional[int] = None  # None ("auto"): 4 score heads (encoder), 1 (transformer)
    optimizer: str = DEFAULTS["optimizer"]
    weight_decay: float = DEFAULTS["weight_decay"]
    scheduler: str = DEFAULTS["scheduler"]
    warmup_steps: Optional[int] = None
    clip_grad: Optional[float] = DEFAULTS["clip_grad"]
    deterministic: bool = False
    resume: bool = False
    max_steps_per_epoch: Optional[int] = None
    time_budget_s: Optional[float] = None
    eval_batch_size: Optional[int] = None
    reverse_complement: bool = False
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    # -- checks --------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the option for any value that cannot work. Returns self."""
        if not self.task:
            raise ValueError("--task is required")
        if not self.out:
            raise ValueError("--out is required")
        _int("--length", self.length, 2, optional=True)
        _int("--epochs", self.epochs, 1)
        _int("--seed", self.seed, 0, maximum=MAX_SEED)
        for name in ("train_size", "val_size", "test_size", "max_steps_per_epoch",
                     "eval_batch_size", "hidden_channels"):
            _int("--" + name.replace("_", "-"), getattr(self, name), 1, optional=True)
        _int("--batch-size", self.batch_size, 1)
        _int("--channels", self.channels, 1)
        _int("--num-layers", self.num_layers, 1)
        _int("--num-heads", self.num_heads, 1, optional=True)
        _int("--stem-kernel", self.stem_kernel, 1)
        if isinstance(self.kmer, bool) or not isinstance(self.kmer, int) or not (
                0 <= self.kmer <= KMER_MAX_K):
            raise ValueError(f"--kmer must be 0 (off) or a k-mer length in 1..{KMER_MAX_K}, "
                             f"got {self.kmer!r}")
        if self.kmer and self.model != "paramixer":
            raise ValueError(f"--kmer {self.kmer} is an option of --model paramixer")
        if not isinstance(self.rc_conjoin, bool):
            raise ValueError(f"--rc-conjoin must be true or false, got {self.rc_conjoin!r}")
        _int("--warmup-steps", self.warmup_steps, 0, optional=True)
        for name, choices in CHOICES.items():
            if name in TASK_DEFAULTABLE and getattr(self, name) is None:
                continue  # "auto"
            _choice("--" + name.replace("_", "-"), getattr(self, name), tuple(choices))
        if self.positional is not None and not isinstance(self.positional, bool):
            raise ValueError(f"--positional must be true, false or auto, got {self.positional!r}")
        if self.mix_gain is not None:
            _float("--mix-gain", self.mix_gain, 0.0, strict=True)
        if self.wrap_gate is not None and not isinstance(self.wrap_gate, bool):
            raise ValueError(f"--wrap-gate must be true, false or auto, got {self.wrap_gate!r}")
        if self.wrap_gate and (self.model != "paramixer" or self.block != "encoder"):
            raise ValueError("--wrap-gate true needs --model paramixer --block encoder")
        if self.score_scale not in (None, "none") and (self.model != "paramixer"
                                                       or self.block != "encoder"
                                                       or self.mix_mode == "sum"):
            raise ValueError(f"--score-scale {self.score_scale} needs --model paramixer --block "
                             "encoder and --mix-mode average (it scales the averaged mixing's scores)")
        if not isinstance(self.mixing, bool):
            raise ValueError(f"--mixing must be true or false, got {self.mixing!r}")
        if not self.mixing and (self.model != "paramixer" or self.block != "encoder"):
            raise ValueError("--mixing false (the ablation) needs --model paramixer --block encoder")
        if self.stem != "none" and self.model != "paramixer":
            raise ValueError(f"--stem {self.stem} is an option of --model paramixer")
        if self.config_version not in (1, CONFIG_VERSION):
            raise ValueError(f"config_version must be 1 or {CONFIG_VERSION}, got "
                             f"{self.config_version!r}")
        if not (isinstance(self.device, str) and _DEVICE.fullmatch(self.device)):
            raise ValueError(f"--device must be auto, cpu or cuda[:i], got {self.device!r}")
        _float("--lr", self.lr, 0.0, strict=True)
        _float("--weight-decay", self.weight_decay, 0.0)
        _float("--dropout", self.dropout, 0.0)
        if self.dropout >= 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.clip_grad is not None:
            _float("--clip-grad", self.clip_grad, 0.0)
        if self.time_budget_s is not None:
            _float("--time-budget-s", self.time_budget_s, 0.0, strict=True)
        if not isinstance(self.fasta, list) or not all(isinstance(f, str) for f in self.fasta):
            raise ValueError(f"--fasta must be a list of LABEL=PATH strings, got {self.fasta!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict, got {type(self.extra).__name__}")
        load_all()
        if self.task in TASKS:  # an unknown task is named by the trainer, with the known ones
            check_extras(self.task, self.extra, MODEL_EXTRA_TYPES)
        try:
            json.dumps(self.to_dict())
        except TypeError as err:
            raise ValueError(f"the config must be JSON-serialisable: {err}") from None
        return self

    def resolve_task_defaults(self) -> "TrainConfig":
        """Fill the options left at None ("auto", :data:`TASK_DEFAULTABLE`) from the task's
        ``model_defaults`` (Adding: no positions, a small mixing gain; docs/learning.md), else
        with the general defaults. Returns self."""
        load_all()
        recommended = TASK_OPTIONS.get(self.task, TaskOptions()).model_defaults
        encoder = self.model == "paramixer" and self.block == "encoder"
        gate_for_positions = recommended.get("wrap_gate", False)
        for name, general in TASK_DEFAULTABLE.items():
            if getattr(self, name) is None:
                value = recommended.get(name, general)
                if not encoder:
                    value = ENCODER_ONLY_OFF.get(name, value)
                    if name == "positional" and gate_for_positions:
                        value = general  # the task drops positions for the gate, which only the encoder has
                setattr(self, name, value)
        return self

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise RunError(f"{source} must hold a JSON object of config fields, "
                           f"got a {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunError(f"{source}: unknown config fields {unknown}")
        if "config_version" not in data:  # written before the encoder model existed
            data = {**LEGACY_DEFAULTS, **data}
        if "mix_gain" not in data:  # written before the option: its encoder layers started at 1
            data = {**data, "mix_gain": LEGACY_MIX_GAIN}
        if "mix_mode" not in data:  # written before the option: its encoder layers summed
            data = {**data, "mix_mode": LEGACY_MIX_MODE}
        if "wrap_gate" not in data:  # written before the option: no encoder layer had the gate
            data = {**data, "wrap_gate": False}
        if "score_scale" not in data:  # written before the option: scores were not scaled
            data = {**data, "score_scale": "none"}
        if "weight_mlp" not in data:  # written before the option: one MLP per factor
            data = {**data, "weight_mlp": LEGACY_WEIGHT_MLP}
        if "precision" not in data:  # written before the option: trained in fp32
            data = {**data, "precision": LEGACY_PRECISION}
        return cls(**data)

    def save(self, path: "str | Path") -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: "str | Path") -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise RunError(f"{path} does not exist: not a run folder (no config.json)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{path} is not valid JSON (line {err.lineno}): {err.msg}") from None
        return cls.from_dict(data, source=str(path))

    def identity(self) -> dict[str, Any]:
        """The fields that define what the run learns (all except :data:`RESUMABLE_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_FIELDS}

    def differences(self, other: "TrainConfig") -> list[str]:
        """``["field: A != B", ...]`` over :meth:`identity` fields."""
        a, b = self.identity(), other.identity()
        return [f"{k}: {a[k]!r} != {b.get(k)!r}" for k in a if a[k] != b.get(k)]


def _int(name: str, value: Any, minimum: int, optional: bool = False,
         maximum: Optional[int] = None) -> None:
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")


def _float(name: str, value: Any, minimum: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, "
                         f"got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices`` (an option's vocabulary, :data:`CHOICES`)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
