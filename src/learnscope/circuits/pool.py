"""ConvPool, the image circuit of Fig 6: ``Conv(C→c, k×k, same) → ReLU → MaxPool2 → Linear(c·⌊H/2⌋·⌊W/2⌋ → 1)``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from learnscope.circuits.autograd import AutogradCircuit
from learnscope.circuits.base import LayerInfo, group_layers
from learnscope.circuits.protocol import Fixed
from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int


class ConvPool(AutogradCircuit):
    """``Conv(C→c, k×k, same padding) → ReLU → MaxPool2 → Linear(c·⌊H/2⌋·⌊W/2⌋ → 1)`` for E members at once.

    The circuit protocol (:mod:`learnscope.circuits.protocol`): :meth:`draw` gives
    ``[W1 (E, c, C, k, k), b1 (E, c), W2 (E, c·H'·W', 1), b2 (E, 1)]`` with the flatten in torch's ``(c, H', W')``
    order, so member e equals ``nn.Sequential(Conv2d, ReLU, MaxPool2d(2), Flatten, Linear)`` with
    ``weight = W2[e].T``; initialisation PyTorch's default for Conv2d / Linear, U(±1/√fan_in) for weights and
    biases, drawn in the order W1, b1, W2, b2 (as :class:`~learnscope.learners.module_learner.ModuleLearner` draws a
    module's parameters). No fixed randomness. The weight layers are ``conv1`` and ``fc2``; a transport of ``fc2``
    (``(E, c·H'·W', 1)``) sends the readout error to the pooled feature maps.

    ``forward(params, x)`` takes images ``(E, N, C, H, W)`` or flattened ``(E, N, C·H·W)`` and returns
    ``(E, N, 1)``. One channels-last convolution per member (measured faster on CPU than one grouped convolution
    over the E members, whose double backward is slow); the pooling comes before the ReLU (the same values, as
    both are monotone, on a 4× smaller tensor).
    """

    name = "conv_pool"

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), channels: int = 16, kernel: int = 5):
        if not isinstance(in_shape, (list, tuple)) or len(in_shape) != 3:
            raise ConfigError(f"in_shape must be (C, H, W), got {in_shape!r}")
        self.in_shape = tuple(check_positive_int("in_shape", v) for v in in_shape)
        self.channels = check_positive_int("channels", channels)
        self.kernel = check_positive_int("kernel", kernel)
        if self.kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd (same padding), got {kernel}")
        C, H, W = self.in_shape
        if H < 2 or W < 2:
            raise ConfigError(f"images must be at least 2×2 to pool, got {H}×{W}")
        self.n_inputs = C * H * W
        self.n_flat = self.channels * (H // 2) * (W // 2)
        groups = group_layers(2)
        self.layers = [
            LayerInfo("conv1", "conv", 0, groups[0], (self.channels, C, self.kernel, self.kernel)),
            LayerInfo("fc2", "dense", 1, groups[1], (self.n_flat, 1)),
        ]
        self.n_out = 1

    @classmethod
    def square(cls, d: int, channels: int = 16, kernel: int = 5) -> ConvPool:
        """The circuit for square single-channel images of ``d`` pixels (784 → ``(1, 28, 28)``)."""
        side = math.isqrt(d)
        if side * side != d:
            raise ShapeError(f"cannot read d={d} as a square single-channel image; give the learner in_shape")
        return cls((1, side, side), channels, kernel)

    def features(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """The pooled, rectified feature maps, flattened: ``(E, N, c·H'·W')``."""
        self._fixed(fixed, params[0].shape[0])
        W1, b1 = params[0], params[1]
        E, N = x.shape[:2]
        if x.shape[2:] != (self.n_inputs,) and tuple(x.shape[2:]) != self.in_shape:
            raise ShapeError(
                f"ConvPool takes images (E, N, {', '.join(map(str, self.in_shape))}) or flattened (E, N, "
                f"{self.n_inputs}), got {tuple(x.shape)}"
            )
        xs = x.reshape(E, N, *self.in_shape)
        pad = self.kernel // 2
        h = torch.stack([
            F.max_pool2d(F.conv2d(xs[e].contiguous(memory_format=torch.channels_last), W1[e], b1[e], padding=pad), 2)
            for e in range(E)
        ])
        return h.relu().reshape(E, N, self.n_flat)

    def describe(self) -> dict[str, Any]:
        """JSON-able constructor arguments (``make_circuit`` rebuilds the circuit from them)."""
        return {"circuit": "conv_pool", "in_shape": list(self.in_shape), "channels": self.channels,
                "kernel": self.kernel}

    def __repr__(self) -> str:
        return f"ConvPool(in_shape={self.in_shape}, channels={self.channels}, kernel={self.kernel})"
