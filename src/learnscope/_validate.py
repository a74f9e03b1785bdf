"""Boundary checks shared by every public function that takes arrays."""

from __future__ import annotations

import torch

from learnscope.errors import NonFiniteError, ShapeError


def check_finite(name: str, t: torch.Tensor) -> torch.Tensor:
    """Raise :class:`NonFiniteError` if ``t`` has a NaN or inf entry; return ``t`` unchanged."""
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(f"{name} contains {bad} NaN/inf value(s); clean the input before calling")
    return t


def check_ndim(name: str, t: torch.Tensor, ndim: int, layout: str) -> torch.Tensor:
    """Raise :class:`ShapeError` unless ``t.ndim == ndim``; ``layout`` names the axes, e.g. ``"(B, n, d)"``."""
    if t.ndim != ndim:
        raise ShapeError(f"{name} must have shape {layout}, got {tuple(t.shape)}")
    return t
