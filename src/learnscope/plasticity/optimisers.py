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

import functools
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
        """One step. ``t`` is the 1-based index of this update (Adam's bias correction); nothing is modified.

        Without an autograd graph (no tensor requires grad, or grad mode off) the same element-wise operations
        run as ``torch._foreach_*`` calls over all tensors at once (:meth:`_update_foreach`): the same kernels in
        the same order, so the values are bit-identical, with one Python call per operation instead of one per
        operation and tensor. Tensors of mixed dtypes or devices, or shapes that an in-place call on a temporary
        cannot take (a broadcast into a smaller buffer), take the list path; wherever an in-place call does not
        raise it gives the out-of-place result.
        """
        if len(params) != len(grads):
            raise ConfigError(f"got {len(params)} parameters but {len(grads)} gradients")
        if not _needs_graph(params, grads, state):
            try:
                return self._update_foreach(params, grads, state, t)
            except RuntimeError:  # mixed dtypes, or tensors the in-place calls cannot take (a broadcast into a
                pass  # smaller buffer): the list path below
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

    def _update_foreach(
        self, params: Sequence[Tensor | None], grads: Sequence[Tensor | None], state: State, t: int
    ) -> tuple[list[Tensor | None], State]:
        """:meth:`update` without a graph: each operation of the formulas once over all tensors.

        Operation for operation the list path (``a·x`` is ``mul(x, a)``, ``x / c`` is ``div(x, c)``), with one
        exact rewrite that saves a tensor per parameter: ``θ − u`` is computed as ``(−u) + θ`` into the temporary
        holding ``−u`` (``−u`` is exact and ``a − b`` is ``a + (−b)`` in IEEE arithmetic, signed zeros included:
        ``−(η·v) = (−η)·v``, ``−((η m̂)/d) = ((−η) m̂)/d``). The in-place calls only write into fresh temporaries,
        never into an input. The numbers enter as 0-dim tensors of the parameters' dtype (:func:`scalar`), the
        value torch would convert a Python number to, without converting it once per tensor.
        """
        keep = [i for i, p in enumerate(params) if p is not None]
        P = [params[i] for i in keep]
        G = [grads[i] for i in keep]
        if not P:
            return [None] * len(params), ({} if self.name == "sgd" else {k: tuple(v) for k, v in state.items()})
        buffers = {k: [state[k][i] for i in keep] for k in state}
        dtype, device = P[0].dtype, P[0].device
        if any(x.dtype != dtype or x.device != device for x in (*P, *G, *(b for v in buffers.values() for b in v))):
            raise RuntimeError("mixed dtypes or devices")  # the list path, with torch's own promotion

        def spread(ts: list[Tensor]) -> list[Tensor | None]:
            out: list[Tensor | None] = [None] * len(params)
            for i, tensor in zip(keep, ts, strict=True):
                out[i] = tensor
            return out

        def c(value: float):
            return scalar(value, dtype, device)

        if self.name == "sgd":
            new = torch._foreach_mul(G, c(-self.lr))  # −η g
            torch._foreach_add_(new, P)  # θ − η g
            return spread(new), {}
        if self.name == "momentum":
            vs = torch._foreach_mul(buffers["v"], c(self.momentum))  # μ v
            torch._foreach_add_(vs, G)  # μ v + g
            new = torch._foreach_mul(vs, c(-self.lr))  # −η v
            torch._foreach_add_(new, P)  # θ − η v
            return spread(new), {"v": tuple(spread(vs))}
        b1, b2 = self.betas
        c1, c2 = 1 - b1**t, 1 - b2**t
        ms = torch._foreach_mul(buffers["m"], c(b1))  # β1 m
        torch._foreach_add_(ms, torch._foreach_mul(G, c(1 - b1)))  # β1 m + (1 − β1) g
        g2 = torch._foreach_mul(G, c(1 - b2))
        torch._foreach_mul_(g2, G)  # ((1 − β2) g) g
        vs = torch._foreach_mul(buffers["v"], c(b2))  # β2 v
        torch._foreach_add_(vs, g2)  # β2 v + (1 − β2) g g
        denom = torch._foreach_div(vs, c(c2))  # v / c2
        torch._foreach_sqrt_(denom)  # √(v / c2)  (safe_sqrt without a graph)
        torch._foreach_add_(denom, c(self.eps))  # √(v / c2) + ε
        new = torch._foreach_div(ms, c(c1))  # m / c1
        torch._foreach_mul_(new, c(-self.lr))  # −η (m / c1)
        torch._foreach_div_(new, denom)  # −η (m / c1) / (√(v / c2) + ε)
        torch._foreach_add_(new, P)  # θ − …
        return spread(new), {"m": tuple(spread(ms)), "v": tuple(spread(vs))}


@functools.lru_cache(maxsize=512)
def _scalar_tensor(value: float, dtype: torch.dtype) -> Tensor:
    return torch.tensor(value, dtype=dtype)


def scalar(value: float, dtype: torch.dtype, device: torch.device) -> Tensor | float:
    """A Python number as the operand torch makes of it in an op with tensors of ``dtype``: on the CPU a 0-dim
    tensor of that dtype (``value`` rounded once, as torch rounds a Python scalar; cached, never modify it),
    which spares torch a conversion per tensor; elsewhere the number itself."""
    if device.type != "cpu":
        return value
    return _scalar_tensor(float(value), dtype)


def _needs_graph(params: Sequence[Tensor | None], grads: Sequence[Tensor | None], state: State) -> bool:
    """Whether an update of these tensors must record an autograd graph (grad mode on and one requires grad)."""
    if not torch.is_grad_enabled():
        return False
    if any(t is not None and t.requires_grad for t in (*params, *grads)):
        return True
    return any(t is not None and t.requires_grad for ts in state.values() for t in ts)


def make_optimiser(
    name: str, lr: float, momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> Optimiser:
    """:class:`Optimiser` by name; unknown names raise :class:`~learnscope.errors.UnknownNameError`."""
    return Optimiser(name, lr, momentum, tuple(betas), eps)
