"""Multi-layer perceptron: dense layers ``a = x W + b``, hidden activation ``f``, linear output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from learnscope.circuits.base import Circuit, LayerInfo, group_layers
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_positive_int

# activation -> (f(a), f'(a) written in terms of the output h = f(a)); both are ordinary differentiable torch
# ops, so an explicit backward pass through them stays exact to second order.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "relu": (torch.relu, lambda h: (h > 0).to(h.dtype)),
    "tanh": (torch.tanh, lambda h: 1 - h * h),
    "sigmoid": (torch.sigmoid, lambda h: h * (1 - h)),
    "identity": (lambda a: a, torch.ones_like),
}


# ---------------------------------------------------------------- dense primitives (ensemble form)
# x: (E, N, in), W: (E, in, out), b: (E, out), delta: (E, N, out). Batched matrix products over E (bmm through
# torch.matmul); x may be an expanded (stride-0) view shared by the members.


def dense_affine(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """``x W + b`` per member, ``(E, N, out)``."""
    return torch.baddbmm(b.unsqueeze(1), x, W)


def dense_linear(x: Tensor, W: Tensor) -> Tensor:
    """``x W`` per member, ``(E, N, out)``."""
    return torch.matmul(x, W)


def dense_adjoint(delta: Tensor, T: Tensor) -> Tensor:
    """``δ Tᵀ`` per member, ``(E, N, in)``."""
    return torch.matmul(delta, T.transpose(-1, -2))


def dense_weight_grad(x: Tensor, delta: Tensor) -> Tensor:
    """``xᵀ δ`` per member, ``(E, in, out)``."""
    return torch.matmul(x.transpose(-1, -2), delta)


class MLP(Circuit):
    """Fully connected network ``sizes = [d_in, h_1, …, n_out]``: hidden layers ``f(x W + b)``, last ``x W + b``.

    Parameters
    ----------
    sizes : at least two positive ints; ``len(sizes) - 1`` weight layers named ``fc1, fc2, …``.
    activation : hidden non-linearity, one of ``relu`` (default), ``tanh``, ``sigmoid``, ``identity``.

    Parameters are ``[W1 (d_in, h_1), b1 (h_1,), …]`` (each with an optional leading ensemble axis E), see
    :mod:`learnscope.circuits.base`. Supports direct feedback alignment (``feedback=``).

    >>> import torch
    >>> net = MLP([3, 8, 2])
    >>> p = net.init_params(torch.Generator().manual_seed(0), ensemble=4)
    >>> net.forward(p, torch.zeros(5, 3)).shape
    torch.Size([4, 5, 2])
    """

    supports_dfa = True

    def __init__(self, sizes: Sequence[int], activation: str = "relu"):
        try:
            sizes = [int(s) if not isinstance(s, bool) and float(s) == int(s) else s for s in sizes]
        except (TypeError, ValueError):
            raise ConfigError(f"sizes must be a sequence of positive ints, got {sizes!r}") from None
        if len(sizes) < 2:
            raise ConfigError(f"sizes must list at least [d_in, n_out], got {sizes!r}")
        for i, s in enumerate(sizes):
            check_positive_int(f"sizes[{i}]", s)
        if activation not in ACTIVATIONS:
            raise UnknownNameError("activation", activation, ACTIVATIONS)
        self.sizes = tuple(sizes)
        self.activation = activation
        self._f, self._df = ACTIVATIONS[activation]
        groups = group_layers(len(sizes) - 1)
        self.layers = [
            LayerInfo(f"fc{i + 1}", "dense", i, groups[i], (sizes[i], sizes[i + 1])) for i in range(len(sizes) - 1)
        ]
        self.n_out = sizes[-1]
        self.in_shape = (sizes[0],)

    def __repr__(self) -> str:
        return f"MLP({list(self.sizes)}, activation={self.activation!r})"

    def describe(self) -> dict[str, Any]:
        return {"circuit": "mlp", "sizes": list(self.sizes), "activation": self.activation}

    def output_units(self, index: int) -> int:
        return self.sizes[index + 1]

    def linear(self, index: int, x: Tensor, W: Tensor) -> Tensor:
        return dense_linear(x, W)

    def affine(self, index: int, x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        return dense_affine(x, W, b)

    def linear_adjoint(self, index: int, delta: Tensor, T: Tensor) -> Tensor:
        return dense_adjoint(delta, T)

    def linear_weight_grad(self, index: int, x: Tensor, delta: Tensor) -> Tensor:
        return dense_weight_grad(x, delta)

    def bias_grad(self, index: int, delta: Tensor) -> Tensor:
        return delta.sum(-2)

    def _post(self, index: int, a: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return (a if index == self.n_layers - 1 else self._f(a)), {}

    def _post_vjp(self, index: int, record: dict[str, Tensor], delta_h: Tensor) -> Tensor:
        return delta_h * self._df(record["output"])
