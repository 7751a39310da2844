r"""The paper's synthetic tasks (method.md §11): Adding, Temporal Order and variable-length Adding.

Every generator is exact and seeded: the same ``(n_seq, N, seed)`` always gives the same tensors.

- **Adding** — values :math:`x_t = 1 - 2U(0, 1) \in (-1, 1]`; two distinct positions drawn
  uniformly from ``range(N)`` carry marker 1; input ``(value, marker)`` [N, 2]; target
  :math:`y = 0.5 + (x_{p_1} + x_{p_2}) / 4`. A prediction is correct when :math:`|\hat y - y| < 0.04`.
- **Temporal Order** — symbols uniform over {a, b, c, d} = ids 0..3; two distinct sorted positions
  are overwritten with symbols drawn from {X = 4, Y = 5}; label XX → 0, XY → 1, YX → 2, YY → 3.
- **Variable-length Adding** (ChordMixer) — lengths ``int(base · LogNormal(0.5, 0.7))`` resampled
  until they fall in ``[min_len, max_len]``; otherwise as Adding.
- **Variable-length Temporal Order** — the same lengths; otherwise as Temporal Order (each
  sequence's label is read from its own two symbols, wherever it sits in a batch).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .base import Extra, TaskData, register_task
from .dna import check_fits_model

ADDING_TOLERANCE = 0.04
ORDER_CLASSES = ["XX", "XY", "YX", "YY"]

# Adding's target is a sum over a set: learned positions are only noise to unlearn (the paper's
# Adding models have none), and the encoder's mixing must carry the sum's magnitude, so it starts
# smaller than for Order (benchmarks/learning.py; docs/learning.md).
# The averaged mixing selects the two marked elements with a softmax-like weight whatever N; its
# scores times ln n make that selection sharpen as n grows, which is what carries a model trained
# short to long sequences (docs/learning.md, section 5).
ADDING_MODEL_DEFAULTS = {"positional": False, "mix_gain": 0.1, "mix_mode": "average",
                         "score_scale": "log-length"}

# Order's target is an order: the encoder gets its direction from the wrap gate (closed at the
# start, the product is a suffix average, "what comes after me") instead of learned positions,
# so nothing in the model is tied to N (the models without a gate keep their positions; see
# TrainConfig.resolve_task_defaults). Chosen by benchmarks/learning.py: at N = 2^10 the summed
# mixing stayed at chance where this reached 2.7 % (docs/learning.md, section 5).
ORDER_MODEL_DEFAULTS = {"positional": False, "mix_mode": "average", "wrap_gate": True,
                        "score_scale": "log-length"}

# Splits get independent streams derived from the run seed (so val/test never overlap train's draws).
_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_029}


def _check_positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _two_positions(n_seq: int, length: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two distinct sorted positions per sequence, uniform over pairs in ``range(length[b])``."""
    first = (torch.rand(n_seq, generator=g, dtype=torch.float64) * length).long()
    # second from the remaining length-1 positions: skip over `first`
    second = (torch.rand(n_seq, generator=g, dtype=torch.float64) * (length - 1)).long()
    second = second + (second >= first).long()
    return torch.minimum(first, second), torch.maximum(first, second)


def adding(n_seq: int, length: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The Adding problem.

    Returns:
        ``x`` FloatTensor [n_seq, length, 2] (value, marker) and ``y`` FloatTensor [n_seq].
    """
    _check_positive("n_seq", n_seq, 0)
    _check_positive("length", length, 2)
    g = torch.Generator().manual_seed(seed)
    values = 1.0 - 2.0 * torch.rand(n_seq, length, generator=g)
    p1, p2 = _two_positions(n_seq, torch.full((n_seq,), float(length), dtype=torch.float64), g)
    rows = torch.arange(n_seq)
    marker = torch.zeros(n_seq, length)
    marker[rows, p1] = 1.0
    marker[rows, p2] = 1.0
    y = 0.5 + (values[rows, p1] + values[rows, p2]) / 4.0
    return torch.stack([values, marker], dim=-1), y


def temporal_order(n_seq: int, length: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The Temporal Order problem.

    Returns:
        ``x`` LongTensor [n_seq, length] of ids in 0..5 and ``y`` LongTensor [n_seq] in 0..3.
    """
    _check_positive("n_seq", n_seq, 0)
    _check_positive("length", length, 2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (n_seq, length), generator=g)
    p1, p2 = _two_positions(n_seq, torch.full((n_seq,), float(length), dtype=torch.float64), g)
    v1 = torch.randint(0, 2, (n_seq,), generator=g)  # 0 = X, 1 = Y
    v2 = torch.randint(0, 2, (n_seq,), generator=g)
    rows = torch.arange(n_seq)
    x[rows, p1] = 4 + v1
    x[rows, p2] = 4 + v2
    return x, 2 * v1 + v2


def lognormal_lengths(n_seq: int, base: int, min_len: int, max_len: int,
                      g: torch.Generator) -> Tensor:
    """``int(base · LogNormal(0.5, 0.7))`` per sequence, resampled until in ``[min_len, max_len]``."""
    lengths = torch.empty(n_seq, dtype=torch.long)
    todo = torch.arange(n_seq)
    for _ in range(1000):
        if todo.numel() == 0:
            return lengths
        draw = (base * torch.exp(0.5 + 0.7 * torch.randn(todo.numel(), generator=g,
                                                          dtype=torch.float64))).long()
        ok = (draw >= min_len) & (draw <= max_len)
        lengths[todo[ok]] = draw[ok]
        todo = todo[~ok]
    raise ValueError(f"could not draw lengths in [{min_len}, {max_len}] around base {base}; "
                     f"widen the range")


def adding_varlen(n_seq: int, base: int, min_len: int, max_len: int,
                  seed: int = 0) -> tuple[list[Tensor], Tensor]:
    """Variable-length Adding: a list of FloatTensors [n_b, 2] and targets FloatTensor [n_seq]."""
    _check_positive("n_seq", n_seq, 0)
    _check_positive("min_len", min_len, 2)
    _check_positive("max_len", max_len, min_len)
    g = torch.Generator().manual_seed(seed)
    lengths = lognormal_lengths(n_seq, base, min_len, max_len, g)
    total = int(lengths.sum())
    values = 1.0 - 2.0 * torch.rand(total, generator=g)
    p1, p2 = _two_positions(n_seq, lengths.double(), g)
    start = torch.cumsum(lengths, 0) - lengths
    marker = torch.zeros(total)
    marker[start + p1] = 1.0
    marker[start + p2] = 1.0
    y = 0.5 + (values[start + p1] + values[start + p2]) / 4.0
    x = torch.stack([values, marker], dim=-1)
    return list(torch.split(x, lengths.tolist())), y


def temporal_order_varlen(n_seq: int, base: int, min_len: int, max_len: int,
                          seed: int = 0) -> tuple[list[Tensor], Tensor]:
    """Variable-length Temporal Order: a list of LongTensors [n_b] of ids in 0..5 and labels
    LongTensor [n_seq] in 0..3 (lengths as :func:`adding_varlen`, symbols as
    :func:`temporal_order`)."""
    _check_positive("n_seq", n_seq, 0)
    _check_positive("min_len", min_len, 2)
    _check_positive("max_len", max_len, min_len)
    g = torch.Generator().manual_seed(seed)
    lengths = lognormal_lengths(n_seq, base, min_len, max_len, g)
    x = torch.randint(0, 4, (int(lengths.sum()),), generator=g)  # [T]: all sequences, concatenated
    p1, p2 = _two_positions(n_seq, lengths.double(), g)
    v1 = torch.randint(0, 2, (n_seq,), generator=g)  # 0 = X, 1 = Y
    v2 = torch.randint(0, 2, (n_seq,), generator=g)
    start = torch.cumsum(lengths, 0) - lengths
    x[start + p1] = 4 + v1
    x[start + p2] = 4 + v2
    return list(torch.split(x, lengths.tolist())), 2 * v1 + v2


class SequenceDataset(Dataset):
    """In-memory ``(x, y)`` pairs; ``x`` is a stacked tensor [n, N, ...] or a list of tensors.

    ``lengths`` (LongTensor [n]) lets samplers bucket without touching the items.
    """

    def __init__(self, x: "Tensor | Sequence[Tensor]", y: Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        self.x, self.y = x, y
        self.lengths = torch.tensor([len(item) for item in x], dtype=torch.long) if len(x) else \
            torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]


def _sizes(cfg: Any, defaults: tuple[int, int, int]) -> tuple[int, int, int]:
    sizes = []
    for name, default in zip(("train_size", "val_size", "test_size"), defaults):
        value = getattr(cfg, name, None)
        sizes.append(default if value is None else _check_positive(f"--{name.replace('_', '-')}",
                                                                   value))
    return tuple(sizes)  # type: ignore[return-value]


def _length(cfg: Any, default: int) -> int:
    value = getattr(cfg, "length", None)
    return default if value is None else _check_positive("--length", value, 2)


def _seed(cfg: Any) -> int:
    return int(getattr(cfg, "seed", 0) or 0)


DEFAULT_SIZES = (10_000, 1_000, 1_000)


def _splits(cfg: Any, draw: Callable[[int, int], tuple[Any, Tensor]]) -> dict[str, SequenceDataset]:
    """Train, validation and test as independent draws: ``draw(size, seed)`` per split, the split's
    seed offset added to ``--seed``."""
    sizes = _sizes(cfg, DEFAULT_SIZES)
    return {name: SequenceDataset(*draw(size, _seed(cfg) + _SPLIT_OFFSET[name]))
            for name, size in zip(("train", "val", "test"), sizes)}


@register_task("adding", extras=(), model_defaults=ADDING_MODEL_DEFAULTS)
def build_adding(cfg: Any) -> TaskData:
    """Adding problem at fixed length ``--length`` (default 128); regression with MSE."""
    n = _length(cfg, 128)
    splits = _splits(cfg, lambda size, seed: adding(size, n, seed))
    return TaskData(**splits, kind="regression", num_classes=1, input="continuous", max_len=n,
                    input_dim=2, meta={"tolerance": ADDING_TOLERANCE, "name": "adding"})


@register_task("order", extras=(), model_defaults=ORDER_MODEL_DEFAULTS)
def build_order(cfg: Any) -> TaskData:
    """Temporal Order at fixed length ``--length`` (default 128); 4-class classification."""
    n = _length(cfg, 128)
    splits = _splits(cfg, lambda size, seed: temporal_order(size, n, seed))
    return TaskData(**splits, kind="classification", num_classes=4, input="tokens", max_len=n,
                    vocab_size=6, class_names=list(ORDER_CLASSES), meta={"name": "order"})


#: ``--extra`` of the variable-length tasks: the median-ish length of the LogNormal draw, and the
#: model's maximum length (default ``--length``; larger lets a run trained on short sequences be
#: evaluated on longer ones, ``sparsemix evaluate --length``, by models whose depth ``max_len`` sets).
VARLEN_EXTRAS = {"varlen_base": Extra(int, 1), "max_len": Extra(int, 2)}

#: The tasks that draw their data from ``--length`` alone, so a run of them can be evaluated at
#: another length (``sparsemix evaluate --length``).
SYNTHETIC_TASKS = ("adding", "order", "adding-varlen", "order-varlen")


def _varlen_options(cfg: Any) -> tuple[int, int, int, int]:
    """``(max_len, min_len, base, model_max_len)`` of a variable-length task: lengths in
    ``[min(32, max), max]`` with ``max = --length`` (default 1024) and ``base = max / 2^{3}``
    (≈ ChordMixer's base/max ratio of 1/32 ... 1/8, kept small enough that CPU runs finish)."""
    max_len = _length(cfg, 1024)
    extra = getattr(cfg, "extra", None) or {}
    base = VARLEN_EXTRAS["varlen_base"].check("varlen_base", extra.get("varlen_base",
                                                                       max(1, max_len // 8)))
    model_max_len = check_fits_model(max_len, extra, "sequences")
    return max_len, min(32, max_len), base, max_len if model_max_len is None else model_max_len


@register_task("adding-varlen", extras=VARLEN_EXTRAS, model_defaults=ADDING_MODEL_DEFAULTS)
def build_adding_varlen(cfg: Any) -> TaskData:
    """Variable-length Adding: ``--length`` is the maximum length (default 1024); lengths are
    ``int(base · LogNormal(0.5, 0.7))`` in ``[32, max]`` with ``base = max / 2^{3}``."""
    max_len, min_len, base, model_max_len = _varlen_options(cfg)
    splits = _splits(cfg, lambda size, seed: adding_varlen(size, base, min_len, max_len, seed))
    return TaskData(**splits, kind="regression", num_classes=1, input="continuous",
                    max_len=model_max_len, variable_length=True, input_dim=2,
                    meta={"tolerance": ADDING_TOLERANCE, "name": "adding-varlen", "base": base,
                          "min_len": min_len})


@register_task("order-varlen", extras=VARLEN_EXTRAS, model_defaults=ORDER_MODEL_DEFAULTS)
def build_order_varlen(cfg: Any) -> TaskData:
    """Variable-length Temporal Order: lengths as ``adding-varlen`` (``--length`` the maximum,
    default 1024), symbols and labels as ``order``; 4-class classification."""
    max_len, min_len, base, model_max_len = _varlen_options(cfg)
    splits = _splits(cfg, lambda size, seed: temporal_order_varlen(size, base, min_len, max_len,
                                                                   seed))
    return TaskData(**splits, kind="classification", num_classes=4, input="tokens",
                    max_len=model_max_len, variable_length=True, vocab_size=6,
                    class_names=list(ORDER_CLASSES),
                    meta={"name": "order-varlen", "base": base, "min_len": min_len})


__all__ = ["adding", "temporal_order", "adding_varlen", "temporal_order_varlen",
           "lognormal_lengths", "SequenceDataset", "ADDING_TOLERANCE", "ORDER_CLASSES",
           "SYNTHETIC_TASKS"]
