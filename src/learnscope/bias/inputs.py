"""Input checks shared by the distances (:mod:`learnscope.bias.distances`, :mod:`learnscope.bias.sinkhorn`).

Label sets are ``(N, n)`` (one per row); target samples ``(m,)`` or ``(N, m)``; point clouds ``(N, n, D)``. Each
check returns the input as a finite floating tensor or raises a one-line :class:`~learnscope.errors.ShapeError` /
:class:`~learnscope.errors.NonFiniteError`.
"""

from __future__ import annotations

import torch

from learnscope.errors import ShapeError
from learnscope.validation import check_finite


def as_float_tensor(name: str, t: object) -> torch.Tensor:
    """``t`` as a floating tensor (integers cast to the default dtype); a :class:`ShapeError` if not numeric."""
    if not isinstance(t, torch.Tensor):
        try:
            t = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ShapeError(f"{name} must be a numeric tensor, got {type(t).__name__} ({err})") from None
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def check_labels(name: str, t: object) -> torch.Tensor:
    """A finite ``(N, n)`` floating tensor with N, n >= 1."""
    t = as_float_tensor(name, t)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ShapeError(
            f"{name} must have shape (N, n) with N, n >= 1 (one label set per row), got {tuple(t.shape)}"
        )
    return check_finite(name, t)


def check_samples(name: str, s: object, labels: torch.Tensor) -> torch.Tensor:
    """Samples ``(m,)`` or ``(N, m)`` for 1-D labels ``(N, n)``, returned as ``(N or 1, m)``."""
    s = as_float_tensor(name, s)
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] < 1:
        raise ShapeError(f"{name} must have shape (m,) or (N, m) with m >= 1, got {tuple(s.shape)}")
    if s.shape[0] not in (1, labels.shape[0]):
        raise ShapeError(
            f"{name} has {s.shape[0]} rows but the labels have N={labels.shape[0]}; "
            "pass (m,) to share one sample"
        )
    return check_finite(name, s).to(dtype=labels.dtype, device=labels.device)


def check_clouds(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (N, n) or (N, n, D); ``y`` (N, m) / (m,) for 1-D or (N, m, D) / (m, D): both as (N, ·, D)."""
    x = as_float_tensor("x", x)
    y = as_float_tensor("y", y)
    if x.ndim == 2:
        x = x[..., None]
        if y.ndim not in (1, 2):
            raise ShapeError(
                f"y must have shape (m,) or (N, m) for 1-D x of shape (N, n), got {tuple(y.shape)}"
            )
        y = y[..., None]
    elif x.ndim == 3:
        if y.ndim not in (2, 3):
            raise ShapeError(
                f"y must have shape (m, D) or (N, m, D) for x of shape (N, n, D), got {tuple(y.shape)}"
            )
    else:
        raise ShapeError(f"x must have shape (N, n) or (N, n, D), got {tuple(x.shape)}")
    if y.ndim == 2:
        y = y[None]
    if x.shape[0] < 1 or x.shape[1] < 1 or y.shape[1] < 1:
        raise ShapeError(f"x and y need N, n, m >= 1, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if y.shape[0] not in (1, x.shape[0]):
        raise ShapeError(
            f"y has batch size {y.shape[0]} but x has N={x.shape[0]}; pass one shared cloud instead"
        )
    if y.shape[2] != x.shape[2]:
        raise ShapeError(f"x and y must have the same point dimension D, got {x.shape[2]} and {y.shape[2]}")
    check_finite("x", x)
    check_finite("y", y)
    y = y.to(dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
    return x, y
