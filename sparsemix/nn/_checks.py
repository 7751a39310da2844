"""Input checks shared by the layers: every message names the argument and the shapes involved."""
from __future__ import annotations

import numbers

import torch
from torch import Tensor


def check_tensor(t: object, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__module__}.{type(t).__name__} "
                        f"(convert with torch.as_tensor)")


def check_channels(value: object, name: str, optional: bool = False) -> None:
    """A channel count must be a positive int (``None`` allowed when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_node_dim(v: Tensor, x: Tensor, v_name: str, x_name: str) -> None:
    """x must have the same leading shape [*, N] as v (no silent broadcasting)."""
    if x.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"{x_name} must have the same leading shape [*, N] as {v_name}: "
                         f"{v_name} is {list(v.shape)}, {x_name} is {list(x.shape)}")


def check_features(t: object, channels: int, name: str) -> None:
    check_tensor(t, name)
    if t.dim() < 2 or t.size(-1) != channels:
        raise ValueError(f"{name} must have shape [..., N, {channels}], got {list(t.shape)}")


def check_finite(t: Tensor, name: str) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or inf values (check_inputs=True)")


def check_dtype(t: Tensor, name: str, parameter: Tensor) -> None:
    """``t`` must be floating point and, outside autocast, of the parameters' dtype: torch's own
    error (``mat1 and mat2 must have the same dtype``) names neither the argument nor the fix."""
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype} "
                         f"(convert with {name}.to({parameter.dtype}))")
    if t.dtype != parameter.dtype and not torch.is_autocast_enabled(t.device.type):
        raise ValueError(f"{name} is {t.dtype} but the layer's parameters are {parameter.dtype}: "
                         f"convert with {name}.to({parameter.dtype}), the layer with "
                         f".to({t.dtype}), or run under torch.autocast")
