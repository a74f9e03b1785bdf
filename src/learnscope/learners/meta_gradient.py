"""Meta-gradients through unrolled training whose memory does not have to grow with the number of inner steps.

An unrolled learner is a deterministic map once its random draws are made (:class:`Unrolled`):

.. math::

    c_0 \\xrightarrow{s_0} c_1 \\xrightarrow{s_1} \\cdots \\xrightarrow{s_{T-1}} c_T,
    \\qquad \\hat y = r(c_T, X_{te}),

with the carry ``c_t`` (parameters and trainer state), the update ``c_{t+1} = s_t(c_t; X_{tr}, y_{tr})`` and the
readout ``r``. The meta-gradient is the vector–Jacobian product ``(∂ŷ/∂y_tr)ᵀ ḡ`` (and the same for ``X_tr``,
``X_te``). Four estimators of it (:data:`ESTIMATORS`):

- ``"full"`` — autograd through the whole trajectory: exact; memory ∝ T (every step's saved tensors are kept).
- ``"checkpointed"`` — exact: the forward pass keeps no graph, only the carries ``c_0, c_S, c_{2S}, …`` at the
  segment boundaries; the backward pass recomputes one segment at a time with a graph, from the last one back, and
  carries the adjoint ``∂ℓ/∂c`` across the boundaries (:class:`_Checkpointed`). Memory ∝ T/S carries + S steps'
  saved tensors (S ≈ √T by default: ∝ √T); time ≈ full + one more forward pass.
- ``"truncated"`` — backpropagation through the last K steps only: the first T − K run without a graph and their
  end carry ``c_{T−K}`` is a constant. **Biased**: it drops every path from ``y_tr`` through the first T − K
  updates (the gradient is the one of the last K updates started from ``c_{T−K}``); equal to ``"full"`` for K = T.
- ``"implicit"`` — for training that reaches a fixed point ``G(θ*, X, y) = 0`` of a loss's gradient
  ``G = ∇_θ L`` (weight decay makes it unique): the implicit function theorem

  .. math::

      \\frac{\\partial θ^*}{\\partial y} = -H^{-1} \\frac{\\partial G}{\\partial y}, \\quad H = \\frac{\\partial G}
      {\\partial θ} = \\nabla^2_θ L, \\qquad
      \\bar y = -\\Big(\\frac{\\partial G}{\\partial y}\\Big)^{\\!\\top} u, \\quad H u = \\Big(\\frac{\\partial
      \\hat y}{\\partial θ}\\Big)^{\\!\\top} \\bar g,

  with ``u`` from batched conjugate gradients on Hessian–vector products (double backward of ``G``). Memory ∝ one
  step; exact at the fixed point, so the forward pass checks ‖G(θ_T)‖ ≤ tol for every member and raises otherwise.

The engine's seam: :meth:`Unrolled.run` trains the steps ``[t0, t1)`` from a carry; a whole-unroll
``torch.autograd.Function`` with its own reverse pass (a hand-written one for dense gradient descent) replaces the
per-step loop by providing ``Unrolled.run_full`` — used by ``"full"`` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor
from torch.autograd.function import once_differentiable

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_positive, check_positive_int

ESTIMATORS = ("full", "checkpointed", "truncated", "implicit")

Carry = Any  # a pytree whose tensor leaves have the ensemble axis first

__all__ = [
    "ESTIMATORS",
    "FixedPoint",
    "MetaGradient",
    "Unrolled",
    "batched_cg",
    "default_segment",
    "make_meta_gradient",
    "run_unrolled",
]


# ---------------------------------------------------------------- settings


def default_segment(steps: int) -> int:
    """The default segment length of ``"checkpointed"``: ``⌈√steps⌉`` (minimises T/S carries + S steps)."""
    return max(1, math.ceil(math.sqrt(steps)))


@dataclass(frozen=True)
class MetaGradient:
    """A validated choice of estimator (see the module doc) with its parameters.

    estimator : one of :data:`ESTIMATORS`. segment : the checkpointed segment length S (inner steps).
    truncate : K, the number of last inner steps the truncated estimator backpropagates through.
    cg_iters, tol : the implicit estimator's conjugate-gradient iteration cap and tolerance (also its fixed-point
        tolerance on ‖∇θL(θ_T)‖ per member).
    """

    estimator: str = "full"
    segment: int | None = None
    truncate: int | None = None
    cg_iters: int = 100
    tol: float = 1e-6


def make_meta_gradient(estimator: str, steps: int, segment: int | None = None, truncate: int | None = None,
                       cg_iters: int = 100, tol: float = 1e-6) -> MetaGradient:
    """Validate the estimator settings of a learner trained for ``steps`` inner steps (one-line ConfigErrors).

    ``segment`` only with ``"checkpointed"`` (positive; default :func:`default_segment`), ``truncate`` required
    with and only with ``"truncated"`` (1 ≤ K ≤ steps), ``cg_iters`` a positive int and ``tol`` > 0.
    """
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise UnknownNameError("meta_gradient", str(estimator), ESTIMATORS)
    if segment is not None and estimator != "checkpointed":
        raise ConfigError(f"segment applies to meta_gradient = 'checkpointed' only, got meta_gradient = {estimator!r}")
    if truncate is not None and estimator != "truncated":
        raise ConfigError(f"truncate applies to meta_gradient = 'truncated' only, got meta_gradient = {estimator!r}")
    cg_iters = check_positive_int("cg_iters", cg_iters)
    tol = check_positive("tol", tol)
    if estimator == "checkpointed":
        segment = default_segment(steps) if segment is None else min(check_positive_int("segment", segment), steps)
    if estimator == "truncated":
        if truncate is None:
            raise ConfigError(f"meta_gradient = 'truncated' needs truncate = K, the last K of the {steps} inner steps "
                              "to backpropagate through")
        truncate = check_positive_int("truncate", truncate)
        if truncate > steps:
            raise ConfigError(f"truncate must be at most steps = {steps}, got {truncate}")
    return MetaGradient(estimator, segment, truncate, cg_iters, tol)


# ---------------------------------------------------------------- the unrolled map


@dataclass(frozen=True)
class FixedPoint:
    """What ``"implicit"`` needs of a learner trained to a stationary point of a loss L(θ; X_tr, y_tr).

    params_of : carry -> parameter list θ (each ``(E, …)``).
    gradient : ``(θ, x_train, y_train) -> ∇_θ Σ_e L_e`` as a list like θ, differentiable to second order
        (the exact gradient the updates follow, e.g. the circuit's ``loss_grads`` plus ``λθ``).
    predict : ``(θ, x_test) -> (E, m)``.
    """

    params_of: Callable[[Carry], list[Tensor]]
    gradient: Callable[[list[Tensor], Tensor, Tensor], list[Tensor]]
    predict: Callable[[list[Tensor], Tensor], Tensor]


@dataclass(frozen=True)
class Unrolled:
    """A deterministic unrolled training run, its random draws already made.

    carry : the initial carry ``c_0`` (a pytree of tensors without a graph, e.g. ``(params, state)``).
    steps : T.
    run : ``(carry, x_train, y_train, t0, t1, graph) -> carry`` — the updates ``t0 … t1 − 1``; ``graph=False``
        returns detached tensors (no autograd graph), ``graph=True`` keeps it (differentiable in the carry's
        tensors and the data).
    readout : ``(carry, x_test) -> predictions (E, m)``.
    fixed_point : what ``"implicit"`` needs (None: the learner does not train to a characterised fixed point).
    run_full : optional ``(carry, x_train, y_train) -> carry`` for all T steps with its own exact backward (a
        whole-unroll ``autograd.Function``); ``"full"`` then uses it instead of :attr:`run`.
    """

    carry: Carry
    steps: int
    run: Callable[[Carry, Tensor, Tensor, int, int, bool], Carry]
    readout: Callable[[Carry, Tensor], Tensor]
    fixed_point: FixedPoint | None = None
    run_full: Callable[[Carry, Tensor, Tensor], Carry] | None = None


def run_unrolled(u: Unrolled, x_train: Tensor, y_train: Tensor, x_test: Tensor, mg: MetaGradient,
                 graph: bool) -> tuple[Tensor, Carry]:
    """Predictions ``(E, m)`` and the final carry, differentiable in the data by the estimator ``mg``.

    graph : whether a meta-gradient is wanted (grad mode on and some input requires grad); ``False`` runs every
        step without a graph whatever the estimator. With ``"checkpointed"`` and ``"implicit"`` the returned
        carry is detached (it has no graph of its own; the predictions carry the meta-gradient).
    """
    if not graph:
        carry = u.run(u.carry, x_train, y_train, 0, u.steps, False)
        return u.readout(carry, x_test), carry
    if mg.estimator != "full" and any(t.requires_grad for t in _float_leaves(u.carry)):
        raise ConfigError(f"meta_gradient = {mg.estimator!r} differentiates the data only; initial parameters that "
                          "require grad need meta_gradient = 'full'")
    if mg.estimator == "full":
        carry = (u.run_full(u.carry, x_train, y_train) if u.run_full is not None
                 else u.run(u.carry, x_train, y_train, 0, u.steps, True))
        return u.readout(carry, x_test), carry
    if mg.estimator == "truncated":
        start = u.steps - mg.truncate
        carry = u.run(u.carry, x_train, y_train, 0, start, False) if start else u.carry
        carry = u.run(_detached(carry), x_train, y_train, start, u.steps, True)
        return u.readout(carry, x_test), carry
    box = _Box(u, mg)
    fn = _Checkpointed if mg.estimator == "checkpointed" else _Implicit
    pred = fn.apply(box, x_train, y_train, x_test)
    return pred, box.final


# ---------------------------------------------------------------- pytree helpers


def _is_float(t: Any) -> bool:
    return isinstance(t, Tensor) and t.is_floating_point()


def _detached(carry: Carry, requires_grad: bool = False) -> Carry:
    """The carry with every floating tensor detached (and, with ``requires_grad``, made a leaf that records)."""
    def f(t: Any) -> Any:
        if not _is_float(t):
            return t
        d = t.detach()
        return d.requires_grad_(True) if requires_grad else d

    return pytree.tree_map(f, carry)


def _float_leaves(carry: Carry) -> list[Tensor]:
    return [t for t in pytree.tree_leaves(carry) if _is_float(t)]


class _Box:
    """Non-tensor context of one estimator call (the unrolled run, the settings, the final carry for the caller)."""

    def __init__(self, u: Unrolled, mg: MetaGradient):
        self.u, self.mg, self.final = u, mg, None


def _leaf_inputs(ctx, x_train: Tensor, y_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Detached copies of the data that record a graph where the caller asked for their gradient."""
    need = ctx.needs_input_grad[1:4]
    return tuple(t.detach().requires_grad_(bool(n)) for t, n in zip((x_train, y_train, x_test), need, strict=True))


def _add(acc: list[Tensor | None], grads: Sequence[Tensor | None]) -> None:
    for i, g in enumerate(grads):
        if g is not None:
            acc[i] = g if acc[i] is None else acc[i] + g


# ---------------------------------------------------------------- checkpointed


class _Checkpointed(torch.autograd.Function):
    """``(x_train, y_train, x_test) -> predictions`` with segment checkpointing (exact; see the module doc).

    forward: T steps without a graph, saving the carry at ``t = 0, S, 2S, …`` (``save_for_backward``, so a
    saved-tensor hook sees them). backward: for k = last … 0, rebuild segment k from its saved carry with a graph,
    pull the adjoint of its end carry (the predictions' cotangent for the last segment) back to its start carry and
    to the data, accumulate the data's gradients. The per-step randomness lives in ``Unrolled.run``'s closure (drawn
    before training), so the recomputation repeats the same minibatches and per-point draws.
    """

    @staticmethod
    def forward(ctx, box: _Box, x_train: Tensor, y_train: Tensor, x_test: Tensor) -> Tensor:
        u, S = box.u, box.mg.segment
        starts = list(range(0, u.steps, S))
        carry, saved = u.carry, []
        for t0 in starts:
            saved.append(carry)
            carry = u.run(carry, x_train, y_train, t0, min(t0 + S, u.steps), False)
        pred = u.readout(carry, x_test)
        box.final = carry
        flat, specs = [], []
        for c in saved:
            leaves, spec = pytree.tree_flatten(c)
            specs.append((spec, [_is_float(t) for t in leaves], [None if _is_float(t) else t for t in leaves]))
            flat.extend(t for t in leaves if _is_float(t))
        ctx.box, ctx.starts, ctx.specs = box, starts, specs
        ctx.save_for_backward(x_train, y_train, x_test, *flat)
        return pred

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pred: Tensor):
        u, S = ctx.box.u, ctx.box.mg.segment
        x_train, y_train, x_test, *flat = ctx.saved_tensors
        carries, pos = [], 0
        for spec, is_float, other in ctx.specs:
            leaves = []
            for f, o in zip(is_float, other, strict=True):
                if f:
                    leaves.append(flat[pos])
                    pos += 1
                else:
                    leaves.append(o)
            carries.append(pytree.tree_unflatten(leaves, spec))
        data_grads: list[Tensor | None] = [None, None, None]
        adjoint: list[Tensor | None] | None = None
        with torch.enable_grad():
            xd, yd, xtd = _leaf_inputs(ctx, x_train, y_train, x_test)
            data = [t for t in (xd, yd, xtd) if t.requires_grad]
            for k in reversed(range(len(ctx.starts))):
                t0 = ctx.starts[k]
                start = _detached(carries[k], requires_grad=True)
                start_leaves = _float_leaves(start)
                end = u.run(start, xd, yd, t0, min(t0 + S, u.steps), True)
                if adjoint is None:  # the last segment ends in the readout
                    outs, cots = [u.readout(end, xtd)], [grad_pred]
                else:
                    pairs = [(o, a) for o, a in zip(_float_leaves(end), adjoint, strict=True)
                             if a is not None and o.requires_grad]
                    outs, cots = [o for o, _ in pairs], [a for _, a in pairs]
                inputs = start_leaves + data
                grads = torch.autograd.grad(outs, inputs, cots, allow_unused=True) if outs else [None] * len(inputs)
                adjoint = list(grads[: len(start_leaves)])
                it = iter(grads[len(start_leaves):])
                _add(data_grads, [next(it) if t.requires_grad else None for t in (xd, yd, xtd)])
        return (None, *data_grads)


# ---------------------------------------------------------------- implicit


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Per-member inner product ``Σ_leaves ⟨a_e, b_e⟩`` -> ``(E,)``."""
    return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b, strict=True))


def _axpy(alpha: Tensor, x: Sequence[Tensor], y: Sequence[Tensor]) -> list[Tensor]:
    """``y + α_e x`` per member (α ``(E,)``)."""
    return [yi + alpha.view(-1, *([1] * (xi.ndim - 1))) * xi for xi, yi in zip(x, y, strict=True)]


def batched_cg(hvp: Callable[[list[Tensor]], list[Tensor]], b: list[Tensor], iters: int,
               tol: float) -> tuple[list[Tensor], Tensor]:
    """Solve ``H_e u_e = b_e`` for every member e by conjugate gradients (H symmetric positive definite per member,
    block diagonal over members; ``hvp(v)`` applies all blocks at once).

    b : a list of ``(E, …)`` tensors. Stops when every member's ``‖r_e‖ ≤ tol·‖b_e‖`` or after ``iters``.
    Returns ``(u, relative residual (E,))``.
    """
    u = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in r]
    rr = _dot(r, r)
    bnorm = rr.sqrt()
    scale = torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    for _ in range(iters):
        if bool((rr.sqrt() <= tol * scale).all()):
            break
        Hp = hvp(p)
        pHp = _dot(p, Hp)
        alpha = torch.where(pHp > 0, rr / torch.where(pHp > 0, pHp, torch.ones_like(pHp)), torch.zeros_like(pHp))
        u = _axpy(alpha, p, u)
        r = _axpy(-alpha, Hp, r)
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = _axpy(beta, p, r)
        rr = rr_new
    return u, rr.sqrt() / scale


def _max_norm(grads: Sequence[Tensor]) -> float:
    return float(_dot(grads, grads).sqrt().max())


class _Implicit(torch.autograd.Function):
    """``(x_train, y_train, x_test) -> predictions`` at the fixed point, differentiated by the implicit function
    theorem (see the module doc). Forward: T steps without a graph, then the stationarity check."""

    @staticmethod
    def forward(ctx, box: _Box, x_train: Tensor, y_train: Tensor, x_test: Tensor) -> Tensor:
        u, fp = box.u, box.u.fixed_point
        carry = u.run(u.carry, x_train, y_train, 0, u.steps, False)
        box.final = carry
        theta = [p.detach() for p in fp.params_of(carry)]
        with torch.enable_grad():
            th = [p.clone().requires_grad_(True) for p in theta]
            g = fp.gradient(th, x_train.detach(), y_train.detach())
        worst = _max_norm([t.detach() for t in g])
        if not worst <= box.mg.tol:
            raise ConfigError(
                f"meta_gradient = 'implicit' needs training at its fixed point: the largest gradient norm after "
                f"{u.steps} steps is {worst:.3g} > tol = {box.mg.tol:g}; raise steps or lr, or use 'checkpointed'"
            )
        ctx.box = box
        ctx.save_for_backward(x_train, y_train, x_test, *theta)
        return fp.predict(theta, x_test)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pred: Tensor):
        fp, mg = ctx.box.u.fixed_point, ctx.box.mg
        x_train, y_train, x_test, *theta = ctx.saved_tensors
        with torch.enable_grad():
            xd, yd, xtd = _leaf_inputs(ctx, x_train, y_train, x_test)
            th = [p.detach().requires_grad_(True) for p in theta]
            pred = fp.predict(th, xtd)
            direct = torch.autograd.grad(pred, th + ([xtd] if xtd.requires_grad else []), grad_pred,
                                         allow_unused=True)
            v = [torch.zeros_like(p) if d is None else d for p, d in zip(th, direct, strict=False)]
            gx_test = direct[len(th)] if xtd.requires_grad else None
            G = fp.gradient(th, xd, yd)

            def hvp(w: list[Tensor]) -> list[Tensor]:
                out = torch.autograd.grad(G, th, w, retain_graph=True, allow_unused=True)
                return [torch.zeros_like(p) if o is None else o for p, o in zip(th, out, strict=True)]

            sol, resid = batched_cg(hvp, v, mg.cg_iters, mg.tol)
            if not float(resid.max()) <= mg.tol:
                raise ConfigError(f"meta_gradient = 'implicit': conjugate gradients reached a relative residual of "
                                  f"{float(resid.max()):.3g} > tol = {mg.tol:g} in cg_iters = {mg.cg_iters}; "
                                  "raise cg_iters")
            data = [t for t in (xd, yd) if t.requires_grad]
            mixed = torch.autograd.grad(G, data, sol, allow_unused=True) if data else []
        it = iter(mixed)
        gx, gy = (None if not t.requires_grad else _neg(next(it)) for t in (xd, yd))
        return None, gx, gy, gx_test


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else -t
