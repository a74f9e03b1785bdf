"""Meta-learner networks f_θ: X → R that propose labellings.

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

import math
from collections.abc import Sequence

import torch

from learnscope.errors import ConfigError, ShapeError, check_positive_int


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * bound


class MetaMLP:
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

    def init(
        self, generators: Sequence[torch.Generator], dtype: torch.dtype = torch.float32
    ) -> list[torch.Tensor]:
        """Draw parameters for one meta-learner per generator; returns leaf tensors with requires_grad."""
        if len(generators) == 0:
            raise ConfigError("need at least one seed generator")
        d, h = self.d_in, self.hidden
        shapes = [((d, h), d), ((h,), d)]
        for _ in range(self.n_hidden_maps):
            shapes += [((h, h), h), ((h,), h)]
        shapes += [((h, 1), h), ((1,), h)]
        per_seed = [[_uniform(s, 1 / math.sqrt(fan), g, dtype) for s, fan in shapes] for g in generators]
        self.params = [torch.stack(ts).requires_grad_(True) for ts in zip(*per_seed, strict=True)]
        return self.params

    @property
    def n_seeds(self) -> int:
        return self.params[0].shape[0] if self.params else 0

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Labels f_θ(x).

        x : shape ``(S, ..., d)`` — one block of points per seed.
        Returns shape ``(S, ...)``.
        """
        p = list(self.params if params is None else params)
        S = p[0].shape[0]
        if x.shape[0] != S or x.shape[-1] != self.d_in:
            raise ShapeError(
                f"meta-learner input must have shape ({S}, ..., {self.d_in}), got {tuple(x.shape)}"
            )
        lead = x.shape[1:-1]
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
