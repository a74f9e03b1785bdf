"""The image learner of Fig 6: one convolution (:class:`~learnscope.circuits.pool.ConvPool`) trained by unrolled
minibatch SGD through :class:`~learnscope.learners.trained.CircuitLearner` (plain SGD on the MSE, minibatches
drawn with replacement, ``create_graph=True`` so the prediction stays differentiable in the training labels).
"""

from __future__ import annotations

from collections.abc import Sequence

from learnscope.circuits.pool import ConvPool
from learnscope.learners.trained import CircuitLearner

__all__ = ["ConvPool", "SmallCNNLearner"]  # ConvPool lived here before it moved to circuits/pool.py


class SmallCNNLearner(CircuitLearner):
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
        spec = {"circuit": "conv_pool", "channels": channels, "kernel": kernel}
        if in_shape is None:
            ConvPool((1, 28, 28), channels, kernel)  # validate channels / kernel now
        else:
            spec["in_shape"] = list(in_shape)
        super().__init__(spec, rule="sgd", steps=steps, lr=lr, batch_size=batch_size)
