"""Functional, differentiable optimisers: ``sgd``, ``momentum`` (heavy ball) and ``adam``.

An optimiser maps ``(params, grads, state, t)`` to ``(new_params, new_state)`` with ordinary torch ops (no in-place
updates), so a training run can be differentiated end to end. State tensors have the shapes of the parameters
(leading ensemble axis included). Entries ``None`` in ``params`` are skipped (and stay ``None``).

.. math::

    \\text{sgd:}\\; \\theta \\leftarrow \\theta - \\eta g \\qquad
    \\text{momentum:}\\; v \\leftarrow \\mu v + g,\\; \\theta \\leftarrow \\theta - \\eta v

    \\text{adam:}\\; m \\leftarrow \\beta_1 m + (1-\\beta_1) g,\\; v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2,\\;
    \\theta \\leftarrow \\theta - \\eta\\, \\frac{m/(1-\\beta_1^t)}{\\sqrt{v/(1-\\beta_2^t)} + \\epsilon}

``momentum`` equals ``torch.optim.SGD(momentum=μ, dampening=0, nesterov=False)`` and TF's ``MomentumOptimizer``
(identify-spec §2.1); ``adam`` equals ``torch.optim.Adam`` (TF's ``AdamOptimizer`` puts ε outside the bias
correction, i.e. uses ``ε √(1-β_2^t)`` here — a difference that only matters while ``√v ≲ ε``).
L2 weight decay is not part of the optimiser: the learning rule adds ``λθ`` to ``g`` beforehand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import Interval, check_constraints

OPTIMISERS = ("sgd", "momentum", "adam")

State = dict[str, tuple[Tensor | None, ...]]


# what each number of an Optimiser must be (one loop checks them, as scikit-learn's _parameter_constraints)
OPTIMISER_CONSTRAINTS = {
    "lr": Interval(float, 0.0, closed="neither"),
    "momentum": Interval(float, 0.0, 1.0, closed="left"),
    "eps": Interval(float, 0.0, closed="neither"),
}
_BETA = Interval(float, 0.0, 1.0, closed="left")


def safe_sqrt(v: Tensor) -> Tensor:
    """``√v`` for ``v ≥ 0`` whose derivative at ``v = 0`` is 0 instead of ∞ (no NaN in second-order runs).

    ``v`` is Adam's running mean of ``g²``; at an exact zero gradient the one-sided derivative of ``√(g²) = |g|``
    does not exist and 0 is the subgradient we take.
    """
    if not v.requires_grad:
        return v.sqrt()
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


@dataclass(frozen=True)
class Optimiser:
    """A first-order update rule (see the module doc for the formulas).

    name : ``"sgd"``, ``"momentum"`` or ``"adam"``.
    lr : step size η > 0.
    momentum : μ ∈ [0, 1) of ``momentum``.
    betas : (β1, β2) of ``adam``, each in [0, 1).
    eps : ε > 0 of ``adam``.
    """

    name: str
    lr: float
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in OPTIMISERS:
            raise UnknownNameError("optimiser", self.name, OPTIMISERS)
        check_constraints(vars(self), OPTIMISER_CONSTRAINTS)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ConfigError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        _BETA.check("betas[0]", self.betas[0])
        _BETA.check("betas[1]", self.betas[1])

    def init_state(self, params: Sequence[Tensor | None]) -> State:
        """Zero buffers shaped like ``params``: ``{}`` (sgd), ``{"v"}`` (momentum), ``{"m", "v"}`` (adam)."""
        zeros = tuple(None if p is None else torch.zeros_like(p).detach() for p in params)
        if self.name == "sgd":
            return {}
        if self.name == "momentum":
            return {"v": zeros}
        return {"m": zeros, "v": tuple(None if z is None else z.clone() for z in zeros)}

    def update(
        self, params: Sequence[Tensor | None], grads: Sequence[Tensor | None], state: State, t: int
    ) -> tuple[list[Tensor | None], State]:
        """One step. ``t`` is the 1-based index of this update (Adam's bias correction); nothing is modified."""
        if len(params) != len(grads):
            raise ConfigError(f"got {len(params)} parameters but {len(grads)} gradients")
        lr = self.lr
        if self.name == "sgd":
            return [None if p is None else p - lr * g for p, g in zip(params, grads, strict=True)], {}
        if self.name == "momentum":
            mu = self.momentum
            vs = [None if p is None else mu * v + g for p, g, v in zip(params, grads, state["v"], strict=True)]
            new = [None if p is None else p - lr * v for p, v in zip(params, vs, strict=True)]
            return new, {"v": tuple(vs)}
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        new, ms, vs = [], [], []
        for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=True):
            if p is None:
                new.append(None), ms.append(None), vs.append(None)
                continue
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            new.append(p - lr * (m / c1) / (safe_sqrt(v / c2) + self.eps))
            ms.append(m)
            vs.append(v)
        return new, {"m": tuple(ms), "v": tuple(vs)}


def make_optimiser(
    name: str, lr: float, momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> Optimiser:
    """:class:`Optimiser` by name; unknown names raise :class:`~learnscope.errors.UnknownNameError`."""
    return Optimiser(name, lr, momentum, tuple(betas), eps)
