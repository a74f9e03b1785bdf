"""A small KNet-like convolutional network (identify-spec §7.2 tier 2): k conv + 2 dense weight layers.

``conv1 → ReLU → max-pool → … → conv<k> → ReLU → max-pool → flatten → fc<k+1> → ReLU → fc<k+2>``; stride-1
convolutions with zero "same" padding (odd kernels), pool 2×2 (1×2 on height-1 inputs). The default (k = 2,
4 layers) groups conv1 early, conv2 middle, fc3 and fc4 deep — as KNet's conv1 / conv2 / conv3+fc4 in
identify-spec §3.3; k = 3 (5 layers) groups conv1 early, conv2 middle, conv3, fc4 and fc5 deep — as knetc4's
conv1 / conv2 / conv3+conv4+fc5.

An ensemble of E members is evaluated with grouped convolutions: ``(E, N, C, H, W)`` is laid out as
``(N, E·C, H, W)`` and the E weight tensors are stacked into ``(E·c_out, c_in, kh, kw)`` with ``groups=E``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from learnscope.circuits.base import Circuit, LayerInfo, group_layers
from learnscope.circuits.mlp import dense_adjoint, dense_affine, dense_linear, dense_weight_grad
from learnscope.errors import ConfigError
from learnscope.validation import check_positive_int


def to_grouped(x: Tensor) -> Tensor:
    """``(E, N, C, H, W)`` → ``(N, E·C, H, W)`` (a view when ``x`` came from :func:`from_grouped`)."""
    E, N, C = x.shape[:3]
    return x.transpose(0, 1).reshape(N, E * C, *x.shape[3:])


def from_grouped(y: Tensor, E: int) -> Tensor:
    """``(N, E·C, H, W)`` → ``(E, N, C, H, W)`` (a view)."""
    return y.view(y.shape[0], E, -1, *y.shape[2:]).transpose(0, 1)


def _stack(W: Tensor) -> Tensor:
    """``(E, c_out, c_in, kh, kw)`` → ``(E·c_out, c_in, kh, kw)``."""
    return W.reshape(W.shape[0] * W.shape[1], *W.shape[2:])


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConfigError(f"{name} must be an int or a pair (kh, kw), got {v!r}")
        return check_positive_int(name, v[0]), check_positive_int(name, v[1])
    k = check_positive_int(name, v)
    return k, k


class ConvNet(Circuit):
    """KNet-like CNN of k conv + 2 dense weight layers for small images (8×8 digits, 28×28 MNIST) and 1-D signals.

    Parameters
    ----------
    in_shape : ``(C, H, W)`` of one input. A 1-D signal of length L is the image ``(1, 1, L)`` (or ``(C, 1, L)``);
        with an int ``kernel`` and ``H == 1`` the kernel becomes ``(1, kernel)`` and pooling ``(1, 2)``.
    channels : ``(c1, …, ck)``, k >= 1, output channels of conv1 … conv<k> (default ``(16, 32)``: k = 2).
    kernel : odd kernel size, int or ``(kh, kw)``, the same for every conv layer.
    hidden : width of the hidden dense layer fc<k+1>.
    n_out : output size (fc<k+2>).

    Weight shapes: conv1 ``(c1, C, kh, kw)``, conv<j> ``(cj, c(j-1), kh, kw)``, fc<k+1> ``(ck·Hk·Wk, hidden)``,
    fc<k+2> ``(hidden, n_out)`` with ``H_j = ⌊H_(j-1)/p_h⌋`` (``H_0 = H``) after j pools (8×8 digits with k = 3:
    8 → 4 → 2 → 1). The recorded output of a conv layer is after ReLU **and** max-pooling (the next layer's
    input); :meth:`layer_forward` includes both. DFA is not available (``ConfigError``).
    """

    supports_dfa = False

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int] = (16, 32),
        kernel: int | Sequence[int] = 5,
        hidden: int = 64,
        n_out: int = 10,
    ):
        if not isinstance(in_shape, (list, tuple)) or len(in_shape) != 3:
            raise ConfigError(f"in_shape must be (C, H, W), got {in_shape!r} (a 1-D signal of length L is (1, 1, L))")
        C, H, W = (check_positive_int(f"in_shape[{i}]", v) for i, v in enumerate(in_shape))
        if not isinstance(channels, (list, tuple)) or len(channels) < 1:
            raise ConfigError(f"channels must be a non-empty list (c1, …, ck) of conv channels, got {channels!r}")
        chans = tuple(check_positive_int(f"channels[{i}]", c) for i, c in enumerate(channels))
        k = len(chans)
        kh, kw = _pair(kernel, "kernel")
        if not isinstance(kernel, (list, tuple)) and H == 1:
            kh = 1
        if kh % 2 == 0 or kw % 2 == 0:
            raise ConfigError(f"kernel sizes must be odd (same padding), got {(kh, kw)}")
        self.pool = (2 if H >= 2 else 1, 2 if W >= 2 else 1)
        self.in_shape = (C, H, W)
        self.channels = chans
        self.kernel = (kh, kw)
        self.padding = (kh // 2, kw // 2)
        self.hidden = check_positive_int("hidden", hidden)
        self.n_out = check_positive_int("n_out", n_out)
        self.n_conv = k
        # (c_j, H_j, W_j) after conv<j> and its pool
        self._maps: list[tuple[int, int, int]] = []
        h, w = H, W
        for c in chans:
            h, w = h // self.pool[0], w // self.pool[1]
            self._maps.append((c, h, w))
        if h < 1 or w < 1:
            raise ConfigError(
                f"in_shape {in_shape} is too small for {k} 2×2 pooling(s); use fewer conv layers or larger inputs"
            )
        c_in = (C, *chans[:-1])
        shapes = [(c, ci, kh, kw) for c, ci in zip(chans, c_in, strict=True)]
        shapes += [(math.prod(self._maps[-1]), self.hidden), (self.hidden, self.n_out)]
        groups = group_layers(k + 2)
        kinds = ["conv"] * k + ["dense", "dense"]
        self.layers = [
            LayerInfo(f"{'conv' if kinds[i] == 'conv' else 'fc'}{i + 1}", kinds[i], i, groups[i], shapes[i])
            for i in range(k + 2)
        ]

    def __repr__(self) -> str:
        return (
            f"ConvNet(in_shape={self.in_shape}, channels={self.channels}, kernel={self.kernel}, "
            f"hidden={self.hidden}, n_out={self.n_out})"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "circuit": "conv",
            "in_shape": list(self.in_shape),
            "channels": list(self.channels),
            "kernel": list(self.kernel),
            "hidden": self.hidden,
            "n_out": self.n_out,
        }

    def output_units(self, index: int) -> int:
        return math.prod(self._maps[index]) if index < self.n_conv else self.layers[index].weight_shape[1]

    # ------------------------------------------------------------------ primitives (ensemble form)
    def _conv(self, x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
        E = W.shape[0]
        bias = None if b is None else b.reshape(-1)
        return from_grouped(F.conv2d(to_grouped(x), _stack(W), bias, padding=self.padding, groups=E), E)

    def linear(self, index: int, x: Tensor, W: Tensor) -> Tensor:
        return self._conv(x, W, None) if index < self.n_conv else dense_linear(x, W)

    def affine(self, index: int, x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        return self._conv(x, W, b) if index < self.n_conv else dense_affine(x, W, b)

    def linear_adjoint(self, index: int, delta: Tensor, T: Tensor) -> Tensor:
        if index >= self.n_conv:
            return dense_adjoint(delta, T)
        E = T.shape[0]
        return from_grouped(F.conv_transpose2d(to_grouped(delta), _stack(T), padding=self.padding, groups=E), E)

    def linear_weight_grad(self, index: int, x: Tensor, delta: Tensor) -> Tensor:
        if index >= self.n_conv:
            return dense_weight_grad(x, delta)
        E, shape = delta.shape[0], self.layers[index].weight_shape
        g = torch.nn.grad.conv2d_weight(
            to_grouped(x), (E * shape[0], *shape[1:]), to_grouped(delta), padding=self.padding, groups=E
        )
        return g.view(E, *shape)

    def bias_grad(self, index: int, delta: Tensor) -> Tensor:
        return delta.sum((1, 3, 4)) if index < self.n_conv else delta.sum(-2)

    def _prepare_input(self, index: int, h: Tensor) -> Tensor:
        return h.flatten(2) if index == self.n_conv else h

    def _post(self, index: int, a: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if index == self.n_conv + 1:
            return a, {}
        h = torch.relu(a)
        if index == self.n_conv:
            return h, {}
        E = a.shape[0]
        pooled, idx = F.max_pool2d(to_grouped(h), self.pool, return_indices=True)
        return from_grouped(pooled, E), {"pool_indices": from_grouped(idx, E)}

    def _post_vjp(self, index: int, record: dict[str, Tensor], delta_h: Tensor) -> Tensor:
        pre = record["pre"]
        if index < self.n_conv:  # undo the max-pool: route each error to its window's argmax
            idx = record["pool_indices"]
            flat = delta_h.new_zeros(*pre.shape[:3], pre.shape[3] * pre.shape[4])
            delta_h = flat.scatter(-1, idx.flatten(-2), delta_h.flatten(-2)).view(pre.shape)
        return delta_h * (pre > 0).to(delta_h.dtype)
