"""The model registry: every model a run can name, built from plain keyword options.

``train`` (and the benchmarks) build models only through :func:`build_model`, so adding a model is one
entry here, never an ``if``/``elif`` kept in sync elsewhere.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from torch import nn

from .cdil_cnn import CDILClassifier
from .sequence_classifier import SequenceClassifier
from .transformer import TransformerClassifier


# Options of the Paramixer model that the baselines do not have.
_PARAMIXER_ONLY = ("protocol", "backend", "weights_from", "block", "stem", "stem_kernel", "mixing",
                   "mix_init", "mix_gain", "mix_mode", "wrap_gate", "score_scale", "kmer",
                   "kmer_base_ids")


def _drop(kw: dict, names) -> dict:
    return {k: v for k, v in kw.items() if k not in names}


def _paramixer(vocab_size, num_classes, max_len, *, channels, num_layers, hidden_channels=None,
               num_heads=1, cdil_layers=None, **kw) -> nn.Module:
    return SequenceClassifier(vocab_size, num_classes, channels, num_layers, max_len=max_len,
                              hidden_channels=hidden_channels, num_heads=num_heads, **kw)


def _transformer(vocab_size, num_classes, max_len, *, channels, num_layers, hidden_channels=None,
                 num_heads=1, cdil_layers=None, **kw) -> nn.Module:
    return TransformerClassifier(vocab_size, num_classes, channels, num_layers, max_len=max_len,
                                 num_heads=num_heads, ffn_channels=hidden_channels,
                                 **_drop(kw, _PARAMIXER_ONLY))


def _cdil_cnn(vocab_size, num_classes, max_len, *, channels, num_layers=None, hidden_channels=None,
              num_heads=None, cdil_layers=None, position_init=None, **kw) -> nn.Module:
    return CDILClassifier(vocab_size, num_classes, channels, cdil_layers, max_len=max_len,
                          **_drop(kw, _PARAMIXER_ONLY))


# name -> builder(vocab_size, num_classes, max_len, **options); options a builder does not use are
# named in its signature and dropped, so one option set (a TrainConfig's) serves every model.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "paramixer": _paramixer,
    "transformer": _transformer,
    "cdil-cnn": _cdil_cnn,
}


def build_model(name: str, *, num_classes: int, max_len: int, vocab_size: Optional[int] = None,
                input_dim: Optional[int] = None, variable_length: bool = False,
                **options: Any) -> nn.Module:
    """The model ``name`` (one of :data:`MODELS`) for token input (``vocab_size``) or continuous input
    (``input_dim``), ``num_classes`` outputs and sequences of at most ``max_len`` elements."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    if options.get("pooling") == "flatten" and variable_length:
        raise ValueError("pooling 'flatten' needs fixed-length input; this task is variable-length")
    return MODELS[name](vocab_size, num_classes, max_len, input_dim=input_dim, **options)
