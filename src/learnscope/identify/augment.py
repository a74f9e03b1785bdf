"""View augmentations for the self-supervised contrastive objective (SimCLR-style pairs of views).

A *view* of an input is a random integer shift of its content with zero padding (the "pad and random crop" of
small-image SimCLR / CIFAR training: padding by ``s`` and cropping the original size at a random offset is the
same map) followed by additive Gaussian noise:

.. math::

    v(x)[i, j] = x[i - d_y, j - d_x] \\cdot 1[0 \\le i - d_y < H,\\ 0 \\le j - d_x < W] + \\sigma \\varepsilon_{ij},
    \\qquad d_y, d_x \\sim U\\{-s, …, s\\},\\ \\varepsilon_{ij} \\sim N(0, 1),

(1-D signals: one offset ``d``). The inputs of :func:`learnscope.datasets.load_task` are standardised per pixel
(mnist1d: globally), so the zero fill is the training mean and ``σ`` is in units of the pixel standard deviation.

:func:`two_views` returns both views of every input of a minibatch in the row layout that
:func:`learnscope.identify.objectives.nt_xent_loss` reads: rows ``[0, k)`` are the first views of inputs
``0 … k−1``, rows ``[k, 2k)`` their second views, so row ``i`` and row ``i + k`` are a positive pair.

Randomness: an explicit ``torch.Generator``, or a list of G generators that split the ensemble axis into G equal
blocks (the convention of :func:`learnscope.learners.base.generator_blocks`); with one generator per member, a
member's views do not depend on which other members share the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners.base import GeneratorLike, generator_blocks
from learnscope.validation import check_scalar

__all__ = ["VIEWS", "ViewSpec", "shift", "two_views", "view_spec"]


@dataclass(frozen=True)
class ViewSpec:
    """How views of one kind of input are drawn.

    layout : the spatial shape the content is shifted in: ``(H, W)`` images or ``(L,)`` 1-D signals. An input
        whose trailing shape is the layout, ``(C, *layout)`` or flat (``prod(layout)`` or ``C·prod(layout)``
        values) is reshaped to it and back.
    max_shift : ``s``, the largest offset in pixels (samples) along every spatial axis.
    noise_std : ``σ`` of the additive Gaussian noise (in units of the standardised input).
    """

    layout: tuple[int, ...]
    max_shift: int
    noise_std: float

    def __post_init__(self) -> None:
        if not isinstance(self.layout, tuple) or len(self.layout) not in (1, 2):
            raise ConfigError(f"layout must be (H, W) or (L,), got {self.layout!r}")
        for i, n in enumerate(self.layout):
            check_scalar(f"layout[{i}]", n, int, low=1)
        check_scalar("max_shift", self.max_shift, int, low=0)
        check_scalar("noise_std", self.noise_std, float, low=0.0)


#: Default views per task (the tasks of :data:`learnscope.datasets.TASKS` with a spatial layout): one pixel of the
#: 8×8 digits (12 % of the width), two of MNIST's 28×28 (7 %, as the 4/32 of CIFAR crops), three samples of
#: mnist1d's 40 (mnist1d's own generator already shifts its templates), and noise σ = 0.1 of the pixel std.
VIEWS: dict[str, ViewSpec] = {
    "digits": ViewSpec((8, 8), 1, 0.1),
    "mnist5k": ViewSpec((28, 28), 2, 0.1),
    "mnist1d": ViewSpec((40,), 3, 0.1),
}


def view_spec(kind: str | ViewSpec, *, max_shift: int | None = None, noise_std: float | None = None) -> ViewSpec:
    """The :class:`ViewSpec` of a task name in :data:`VIEWS` (or a ViewSpec), with optional overrides."""
    if isinstance(kind, ViewSpec):
        spec = kind
    elif isinstance(kind, str) and kind in VIEWS:
        spec = VIEWS[kind]
    else:
        raise UnknownNameError("view kind", str(kind), VIEWS)
    return ViewSpec(spec.layout, spec.max_shift if max_shift is None else max_shift,
                    spec.noise_std if noise_std is None else noise_std)


def _split_shape(trailing: tuple[int, ...], layout: tuple[int, ...]) -> tuple[int, ...] | None:
    """``(C, *layout)`` for an input whose per-example shape is ``trailing``, or None if it does not fit."""
    size = math.prod(layout)
    n = math.prod(trailing)
    if n % size:
        return None
    if trailing[-len(layout):] == layout or len(trailing) == 1:
        return (n // size, *layout)
    return None


def shift(x: Tensor, offsets: Tensor) -> Tensor:
    """Shift the content of every example by integer offsets, filling with zeros.

    x : ``(M, C, *layout)`` with layout ``(H, W)`` or ``(L,)``. offsets : integer ``(M, len(layout))`` —
    ``(d_y, d_x)`` or ``(d,)``; positive moves the content down / right (to larger indices).
    Returns ``(M, C, *layout)`` with ``out[m, c, i, j] = x[m, c, i − d_y, j − d_x]`` (0 outside the input).
    """
    if x.ndim not in (3, 4) or offsets.shape != (x.shape[0], x.ndim - 2) or offsets.dtype.is_floating_point:
        raise ShapeError(f"shift needs x (M, C, *layout) and integer offsets (M, {x.ndim - 2}), got "
                         f"{tuple(x.shape)} and {tuple(offsets.shape)} {offsets.dtype}")
    M, nd = x.shape[0], x.ndim - 2
    s = int(offsets.abs().max()) if offsets.numel() else 0
    padded = torch.nn.functional.pad(x, (s, s) * nd)
    m = torch.arange(M, device=x.device)
    # index into the padded input: out[i] = x[i − d] = padded[i − d + s]
    idx = [torch.arange(n, device=x.device)[None, :] - offsets[:, a:a + 1] + s for a, n in enumerate(x.shape[2:])]
    if nd == 1:
        return padded.transpose(1, 2)[m[:, None], idx[0]].transpose(1, 2)
    # (M, H, W, C) gather, then channels back in front
    return padded.permute(0, 2, 3, 1)[m[:, None, None], idx[0][:, :, None], idx[1][:, None, :]].permute(0, 3, 1, 2)


def two_views(x: Tensor, generator: GeneratorLike, kind: str | ViewSpec, *, max_shift: int | None = None,
              noise_std: float | None = None) -> Tensor:
    """Two independent random views of every input, stacked as positive pairs ``(i, i + k)``.

    x : ``(E, k, *in_shape)`` — E ensemble members, k inputs each; ``in_shape`` is the layout of ``kind``
        (``(H, W)`` / ``(L,)``), with a channel axis in front, or flat.
    generator : a ``torch.Generator`` or a list of G generators (E divisible by G; generator g draws members
        ``[g·E/G, (g+1)·E/G)``). Each block draws its offsets ``(E/G, 2k, n_axes)`` (``torch.randint``) and then its
        noise ``(E/G, 2k, *in_shape)`` (``torch.randn``).
    kind : a task name of :data:`VIEWS` or a :class:`ViewSpec`; ``max_shift`` / ``noise_std`` override it.

    Returns ``(E, 2k, *in_shape)`` in ``x``'s dtype: rows ``[0, k)`` the first views, ``[k, 2k)`` the second.
    """
    spec = view_spec(kind, max_shift=max_shift, noise_std=noise_std)
    if not isinstance(x, Tensor) or x.ndim < 3 or not x.dtype.is_floating_point:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"x must be a float tensor (E, k, *in_shape), got {got}")
    E, k, trailing = x.shape[0], x.shape[1], tuple(x.shape[2:])
    inner = _split_shape(trailing, spec.layout)
    if inner is None:
        raise ShapeError(f"inputs of shape {trailing} do not fit the layout {spec.layout} of these views; pass "
                         f"(…, {', '.join(map(str, spec.layout))}) or flat inputs of {math.prod(spec.layout)} values")
    nd = len(spec.layout)
    pair = torch.cat([x, x], dim=1).reshape(E * 2 * k, *inner)
    offsets, noise = [], []
    for g, size in generator_blocks(generator, E):
        offsets.append(torch.randint(-spec.max_shift, spec.max_shift + 1, (size, 2 * k, nd), generator=g,
                                     device=g.device))
        noise.append(torch.randn((size, 2 * k, *trailing), generator=g, dtype=x.dtype, device=g.device))
    off = torch.cat(offsets).reshape(E * 2 * k, nd).to(x.device)
    out = shift(pair, off).reshape(E, 2 * k, *trailing)
    return out + spec.noise_std * torch.cat(noise).to(x.device)

