"""The image learner of Fig 6: a one-convolution network trained by unrolled minibatch SGD.

:class:`ConvPool` is the circuit ``Conv(C→c, k×k, same) → ReLU → MaxPool2 → Linear(c·H/2·W/2 → 1)`` as a functional
ensemble (parameters with a leading axis E, one fresh network per learner); :class:`SmallCNNLearner` trains it with
:class:`~learnscope.learners.trained.TrainedLearner` (plain SGD on the MSE, minibatches drawn with replacement,
``create_graph=True`` so the prediction stays differentiable in the training labels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from learnscope.circuits.base import default_uniform_init
from learnscope.errors import ConfigError, ShapeError, check_positive_int
from learnscope.learners.base import Introspected, described
from learnscope.learners.trained import TrainedLearner


class ConvPool(Introspected):
    """``Conv(C→c, k×k, same padding) → ReLU → MaxPool2 → Linear(c·⌊H/2⌋·⌊W/2⌋ → 1)`` for E members at once.

    Parameters ``[W1 (E, c, C, k, k), b1 (E, c), W2 (E, c·H'·W', 1), b2 (E, 1)]`` with the flatten in torch's
    ``(c, H', W')`` order, so member e equals ``nn.Sequential(Conv2d, ReLU, MaxPool2d(2), Flatten, Linear)`` with
    ``weight = W2[e].T``. Initialisation: PyTorch's default for Conv2d / Linear, U(±1/√fan_in) for weights and biases,
    drawn in the order W1, b1, W2, b2 (as :class:`~learnscope.learners.trained.Trained` draws a module's parameters).

    ``forward(params, x)`` takes flattened images ``(E, N, C·H·W)`` and returns ``(E, N, 1)``. One channels-last
    convolution per member (measured faster on CPU than one grouped convolution over the E members, whose
    double backward is slow); the pooling comes before the ReLU (the same values, as both are monotone, on a 4×
    smaller tensor).
    """

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

    def init_params(
        self, generator: torch.Generator, ensemble: int, dtype: torch.dtype = torch.float32
    ) -> list[Tensor]:
        """``[W1, b1, W2, b2]`` of ``ensemble`` members, PyTorch's default ``U(±1/√fan_in)``
        (:func:`~learnscope.circuits.base.default_uniform_init`), drawn in that order."""
        C, _, _ = self.in_shape
        c, k = self.channels, self.kernel
        shapes = [((c, C, k, k), C * k * k), ((c,), C * k * k), ((self.n_flat, 1), self.n_flat), ((1,), self.n_flat)]
        return default_uniform_init(shapes, generator, check_positive_int("ensemble", ensemble), dtype)

    def forward(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        W1, b1, W2, b2 = params
        E, N = x.shape[:2]
        if x.shape[2:] != (self.n_inputs,):
            raise ShapeError(f"ConvPool takes flattened images (E, N, {self.n_inputs}), got {tuple(x.shape)}")
        xs = x.reshape(E, N, *self.in_shape)
        pad = self.kernel // 2
        h = torch.stack([
            F.max_pool2d(F.conv2d(xs[e].contiguous(memory_format=torch.channels_last), W1[e], b1[e], padding=pad), 2)
            for e in range(E)
        ])
        return torch.baddbmm(b2.unsqueeze(1), h.relu().reshape(E, N, self.n_flat), W2)

    def describe(self) -> dict[str, Any]:
        """The constructor arguments in plain form (no ``"name"``: ConvPool is not a named circuit)."""
        return {k: described(v) for k, v in self.get_params().items()}


class SmallCNNLearner(TrainedLearner):
    """The Fig 6 learner: a fresh :class:`ConvPool` per learner, ``steps`` SGD updates on the MSE.

    Defaults are the authors' (bias-spec Fig. 6): 16 channels, 5×5 kernel, t = 100 steps, lr 0.0025, minibatches of
    20 indices drawn with replacement from the training points. ``in_shape`` ``None`` reads square single-channel
    images from the input dimension d (784 → (1, 28, 28)).
    """

    name = "small_cnn"

    def __init__(
        self,
        in_shape: Sequence[int] | None = None,
        channels: int = 16,
        kernel: int = 5,
        steps: int = 100,
        lr: float = 0.0025,
        batch_size: int | None = 20,
    ):
        self.in_shape = None if in_shape is None else list(in_shape)
        self.channels = channels
        self.kernel = kernel
        circuit = ConvPool(in_shape, channels, kernel) if in_shape is not None else None
        if circuit is None:
            ConvPool((1, 28, 28), channels, kernel)  # validate channels / kernel now
        super().__init__(circuit, rule="sgd", steps=steps, lr=lr, batch_size=batch_size)

    def circuit_for(self, d: int) -> ConvPool:
        if d not in self._circuits:
            if self.in_shape is not None:
                have = math.prod(self.in_shape)
                raise ShapeError(f"the learner takes images of shape {self.in_shape} (d={have}), got d={d}")
            side = math.isqrt(d)
            if side * side != d:
                raise ShapeError(f"cannot read d={d} as a square single-channel image; give the learner in_shape")
            self._circuits[d] = ConvPool((1, side, side), self.channels, self.kernel)
        return self._circuits[d]

