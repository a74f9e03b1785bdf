"""Meta-learner networks f_θ: X → R that propose labellings (:class:`MetaMLP`; :class:`MetaCNN` for images).

The networks are functional and carry a leading *seed* dimension S, so several independent meta-learning
runs (different seeds) train in one batched call: parameters have shape ``(S, ...)`` and inputs
``(S, ..., d)``. Element-wise optimisers (Adagrad, Adam) on the stacked tensors are exactly independent
optimisers per seed, because each seed's loss only touches its own slice.

Architecture (bias-spec §2, "NeuralNet(d_in, h, layers, cos)"):
``Linear(d, h) → [ReLU → Linear_h(h, h)] × (layers − 1) → ReLU → Linear(h, 1) → (cos)``.
With ``tied=True`` the hidden ``Linear_h`` is one shared layer re-applied (the notebooks' weight tying);
with ``tied=False`` each hidden layer has its own weights. Initialisation matches PyTorch's ``nn.Linear``
default, U(−1/√fan_in, 1/√fan_in) for weights and biases, drawn from explicit generators.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from learnscope.circuits.base import default_uniform_init
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.validation import check_positive_int


def _stacked_init(shapes: list[tuple[tuple[int, ...], int]], generators: Sequence[torch.Generator],
                  dtype: torch.dtype) -> list[torch.Tensor]:
    """PyTorch's default init U(±1/√fan_in) of each ``(shape, fan_in)``, one full draw per seed generator
    (:func:`~learnscope.circuits.base.default_uniform_init`), stacked on a leading seed axis ``(S, *shape)`` and
    set to require gradients."""
    per_seed = [default_uniform_init(shapes, g, None, dtype) for g in generators]
    return [torch.stack(ts).requires_grad_(True) for ts in zip(*per_seed, strict=True)]


class _StackedMeta:
    """What the meta-learners share: S independent parameter sets stacked on a leading seed axis.

    A subclass sets ``d_in`` and defines ``param_shapes()`` (``[(shape, fan_in), …]``) and ``forward``.
    """

    d_in: int
    params: list[torch.Tensor]

    def param_shapes(self) -> list[tuple[tuple[int, ...], int]]:
        raise NotImplementedError

    def init(
        self, generators: Sequence[torch.Generator], dtype: torch.dtype = torch.float32
    ) -> list[torch.Tensor]:
        """Draw parameters for one meta-learner per generator; returns leaf tensors with requires_grad."""
        if len(generators) == 0:
            raise ConfigError("need at least one seed generator")
        self.params = _stacked_init(self.param_shapes(), generators, dtype)
        return self.params

    @property
    def n_seeds(self) -> int:
        return self.params[0].shape[0] if self.params else 0

    def _checked(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
        """The parameters to use, after checking that x is ``(S, ..., d_in)``."""
        p = list(self.params if params is None else params)
        S = p[0].shape[0]
        if x.shape[0] != S or x.shape[-1] != self.d_in:
            raise ShapeError(f"meta-learner input must have shape ({S}, ..., {self.d_in}), got {tuple(x.shape)}")
        return p


class MetaMLP(_StackedMeta):
    """A stack of S independent MLP meta-learners, evaluated in one batched call.

    Parameters
    ----------
    d_in : input dimension d.
    hidden : hidden width h.
    layers : number of hidden ReLU stages (``layers − 1`` hidden-to-hidden maps), ≥ 1.
    cos : apply cos(·) to the output (labels in [−1, 1], Fig 2).
    tied : share one hidden-to-hidden matrix across stages (Fig 3's ``linearh``).
    """

    def __init__(self, d_in: int, hidden: int = 150, layers: int = 2, cos: bool = False, tied: bool = True):
        self.d_in = check_positive_int("meta.d_in", d_in)
        self.hidden = check_positive_int("meta.hidden", hidden)
        self.layers = check_positive_int("meta.layers", layers)
        self.cos = bool(cos)
        self.tied = bool(tied)
        self.params: list[torch.Tensor] = []

    @property
    def n_hidden_maps(self) -> int:
        if self.layers == 1:
            return 0
        return 1 if self.tied else self.layers - 1

    def param_shapes(self) -> list[tuple[tuple[int, ...], int]]:
        d, h = self.d_in, self.hidden
        shapes = [((d, h), d), ((h,), d)]
        for _ in range(self.n_hidden_maps):
            shapes += [((h, h), h), ((h,), h)]
        return shapes + [((h, 1), h), ((1,), h)]

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Labels f_θ(x).

        x : shape ``(S, ..., d)`` — one block of points per seed.
        Returns shape ``(S, ...)``.
        """
        p = self._checked(x, params)
        S, lead = x.shape[0], x.shape[1:-1]
        h = x.reshape(S, -1, self.d_in)
        h = torch.baddbmm(p[1].unsqueeze(1), h, p[0])
        stages = self.layers - 1
        for i in range(stages):
            j = 2 + 2 * (0 if self.tied else i)
            h = torch.baddbmm(p[j + 1].unsqueeze(1), h.relu(), p[j])
        out = torch.baddbmm(p[-1].unsqueeze(1), h.relu(), p[-2]).squeeze(-1)
        if self.cos:
            out = out.cos()
        return out.reshape(S, *lead)

    __call__ = forward

    def describe(self) -> dict:
        return {"hidden": self.hidden, "layers": self.layers, "cos": self.cos, "tied": self.tied}


META_OUTPUTS = ("linear", "relu6", "hardsigmoid")


def _conv_block(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Same-padded stride-1 conv, 2×2 max-pool, ReLU on a grouped batch ``(M, S·C, H, W)``.

    Pooling before the ReLU gives the same values as after it (both are monotone) on a 4× smaller tensor.
    """
    k = W.shape[-1]
    a = F.conv2d(h, W.reshape(-1, *W.shape[2:]), b.reshape(-1), padding=k // 2, groups=groups)
    return F.max_pool2d(a, 2).relu()


class MetaCNN(_StackedMeta):
    """A stack of S independent convolutional meta-learners for images (Fig 6), in one batched call.

    ``Conv(C→c₁, k×k, same) → ReLU → MaxPool2 → Conv(c₁→c₂, k×k, same) → ReLU → MaxPool2 → Linear(c₂·H/4·W/4 → 1)``
    then the output map: ``"relu6"`` gives ReLU6(·)/6 = clamp(·, 0, 6)/6, labels in [0, 1] (the authors'), or
    ``"linear"``. Initialisation is PyTorch's default for ``nn.Conv2d`` / ``nn.Linear``, U(±1/√fan_in) for weights
    and biases (fan_in = C·k² for a conv), from explicit generators.

    Inputs are flattened images ``(S, ..., C·H·W)`` (row-major), so a domain's points feed it directly. The S
    seeds run as one grouped convolution (``groups = S``) on a channels-last batch, which on CPU is the fastest
    layout for these small convolutions.
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (16, 32),
        kernel: int = 5,
        output: str = "relu6",
    ):
        if not isinstance(in_shape, (list, tuple)) or len(in_shape) != 3:
            raise ConfigError(f"meta.in_shape must be (C, H, W), got {in_shape!r}")
        self.in_shape = tuple(check_positive_int("meta.in_shape", v) for v in in_shape)
        if not isinstance(channels, (list, tuple)) or len(channels) != 2:
            raise ConfigError(f"meta.channels must be a pair [c1, c2], got {channels!r}")
        self.channels = tuple(check_positive_int("meta.channels", c) for c in channels)
        self.kernel = check_positive_int("meta.kernel", kernel)
        if self.kernel % 2 == 0:
            raise ConfigError(f"meta.kernel must be odd (same padding), got {kernel}")
        if output not in META_OUTPUTS:
            raise UnknownNameError("meta.output", str(output), META_OUTPUTS)
        self.output = output
        C, H, W = self.in_shape
        if H % 4 or W % 4:
            raise ConfigError(f"the CNN meta-learner pools twice by 2: image sides must be multiples of 4, got {H}×{W}")
        self.d_in = C * H * W
        self.params: list[torch.Tensor] = []

    def param_shapes(self) -> list[tuple[tuple[int, ...], int]]:
        """``[W1 (c1,C,k,k), b1 (c1), W2 (c2,c1,k,k), b2 (c2), W3 (c2·H·W/16, 1), b3 (1)]`` with their fan-ins."""
        C, H, W = self.in_shape
        (c1, c2), k = self.channels, self.kernel
        n_flat = c2 * (H // 4) * (W // 4)
        return [
            ((c1, C, k, k), C * k * k),
            ((c1,), C * k * k),
            ((c2, c1, k, k), c1 * k * k),
            ((c2,), c1 * k * k),
            ((n_flat, 1), n_flat),
            ((1,), n_flat),
        ]

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Labels f_θ(x): x ``(S, ..., C·H·W)`` → ``(S, ...)``."""
        p = self._checked(x, params)
        S, lead = x.shape[0], x.shape[1:-1]
        C, H, W = self.in_shape
        h = x.reshape(S, -1, C, H, W)
        M = h.shape[1]
        h = h.transpose(0, 1).reshape(M, S * C, H, W).contiguous(memory_format=torch.channels_last)
        h = _conv_block(h, p[0], p[1], S)
        h = _conv_block(h, p[2], p[3], S)  # (M, S·c2, H/4, W/4)
        h = h.reshape(M, S, -1).transpose(0, 1)  # (S, M, c2·H/4·W/4), torch's flatten order per seed
        out = torch.baddbmm(p[5].unsqueeze(1), h, p[4]).squeeze(-1)
        if self.output == "relu6":
            out = F.relu6(out) / 6
        elif self.output == "hardsigmoid":
            out = F.hardsigmoid(out)
        return out.reshape(S, *lead)

    __call__ = forward

    def describe(self) -> dict:
        return {
            "kind": "cnn",
            "in_shape": list(self.in_shape),
            "channels": list(self.channels),
            "kernel": self.kernel,
            "output": self.output,
        }
