"""The one training engine of the circuit learners: draw fresh members, unroll a trainer, read out.

A *trainer* is a pair of pure functions over an explicit state, as optax's ``GradientTransformation``:
``init(params, generator) -> state`` and ``step(params, state, x, y, fixed) -> (params, state)``. There are
three, and :func:`unroll` runs any of them on any circuit of the protocol (:mod:`learnscope.circuits.protocol`):

- :func:`rule_trainer` — a learning rule's :meth:`~learnscope.plasticity.Rule.step` (feedback alignment,
  sign symmetry, Kolen–Pollack, …; the rule draws its feedback matrices in ``init``);
- :func:`gradient_descent` — plain gradient descent on the mean squared error with the circuit's own exact
  gradients (``circuit.loss_grads``: the mushroom body's hand-written masked gradients, backpropagation through
  time for the LIF network, autograd for ConvPool), ``θ ← θ − ηg`` as one fused ``torch.add``;
- :func:`dense_gradient_descent` — the same for an MLP with a hand-written batched backward pass (and, for plain
  sgd, a hand-written reverse pass of the whole unroll: :mod:`learnscope.learners.dense_reverse`), the measured
  fast path of the bias search (:func:`dense_mse_grads`).

Random draws go block by block through the generators (the ``draw_normal`` convention of
:mod:`learnscope.learners.base`): generator g draws, in this order, the members (``circuit.draw``: mask, then
parameters), the trainer's state (the rule's feedback matrices), the minibatch indices ``(size, steps,
batch_size)`` and the per-point fixed randomness (``circuit.draw_per_point``: train rows, then test rows) of its
block of the batch — so one seed's learners do not depend on what else shares the batch. The blocks are joined
with one ``tree_map``.

After the draws the run is deterministic (:func:`prepare_unroll` returns it as a
:class:`~learnscope.learners.meta_gradient.Unrolled`: carry ``(params, state)``, ``run(carry, x, y, t0, t1, graph)``
the one per-step loop, the readout), and :func:`~learnscope.learners.meta_gradient.run_unrolled` differentiates it
by the chosen estimator (full, checkpointed, truncated, implicit). A whole-unroll ``autograd.Function`` with its own
reverse pass plugs in as ``Unrolled.run_full`` (used by ``"full"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from learnscope.circuits.mlp import ACTIVATIONS, MLP
from learnscope.circuits.protocol import Fixed, FunctionalCircuit, Members
from learnscope.learners.base import GeneratorLike, generator_blocks
from learnscope.learners.dense_reverse import unrolled_dense_gd_params
from learnscope.learners.meta_gradient import FixedPoint, MetaGradient, Unrolled, run_unrolled
from learnscope.plasticity.optimisers import Optimiser
from learnscope.plasticity.rules import Rule, mse_loss

Params = list[Tensor]
Draw = Callable[[torch.Generator, int, torch.dtype], Members]
FULL = MetaGradient("full")


class Trainer(NamedTuple):
    """A pair of pure functions over an explicit training state (plus the parameter layout it trains in).

    init : ``(params, generator) -> state`` for one block of members (may draw from the generator).
    step : ``(params, state, x (E, k, *in_shape), y (E, k), fixed) -> (params, state)``: one update.
    to_trainer / to_circuit : the circuit's parameter layout to the one ``step`` works in and back (identity but
        for the dense fast path, which carries biases as ``(E, 1, out)``).
    """

    init: Callable[[Params, torch.Generator], Any]
    step: Callable[[Params, Any, Tensor, Tensor, Fixed], tuple[Params, Any]]
    to_trainer: Callable[[Params], Params] = list
    to_circuit: Callable[[Params], Params] = list
    #: optional whole-unroll replacement with its own exact backward, ``(params, x_train, y_train, idx or None,
    #: steps) -> final params`` (trainer layout): the dense sgd path's hand-written reverse pass
    reverse: Callable[[Params, Tensor, Tensor, Tensor | None, int], Params] | None = None


@dataclass(frozen=True)
class Fitted:
    """What one ``fit_predict`` call trained (every tensor with the leading batch / ensemble axis B).

    circuit : the circuit used. initial / params : parameter lists before and after training.
    fixed : the members' fixed randomness (``Members.fixed``, e.g. the mushroom body's ``{"mask": (B, d, K)}``).
    state : the final trainer state: ``(optimiser buffers, t)`` (gradient descent) or the rule's
        :class:`~learnscope.plasticity.RuleState` (feedback matrices, buffers).
    """

    circuit: Any
    initial: Params
    params: Params
    fixed: Fixed
    state: Any


# ---------------------------------------------------------------- trainers


def rule_trainer(circuit: FunctionalCircuit, rule: Rule, graph: bool) -> Trainer:
    """``rule.step`` on the mean squared error; ``graph``: keep the autograd graph through training."""

    def init(params: Params, g: torch.Generator):
        return rule.init_state(circuit, params, g)

    def step(params, state, x, y, fixed):
        new, state, _ = rule.step(circuit, params, state, x, y, mse_loss, fixed=fixed, create_graph=graph)
        return new, state

    return Trainer(init, step)


def gradient_descent(
    grads: Callable[[Params, Tensor, Tensor, Fixed], Params], optim: Optimiser, graph: bool,
    to_trainer: Callable[[Params], Params] = list, to_circuit: Callable[[Params], Params] = list,
) -> Trainer:
    """Plain gradient descent with the gradient function ``grads(params, x, y, fixed)``: ``θ ← θ − ηg`` (one fused
    ``torch.add``) for sgd, else ``optim.update``; the state is ``(optimiser buffers, t)``."""

    def init(params: Params, g: torch.Generator):
        return optim.init_state(params), 0

    def step(params, state, x, y, fixed):
        g = grads(params, x, y, fixed)
        opt, t = state
        if optim.name == "sgd":
            new = [torch.add(p, gp, alpha=-optim.lr) for p, gp in zip(params, g, strict=True)]
        else:
            new, opt = optim.update(params, g, opt, t + 1)
        if not graph:
            new = [p.detach() for p in new]
        return new, (opt, t + 1)

    return Trainer(init, step, to_trainer, to_circuit)


def circuit_gradient_descent(circuit: FunctionalCircuit, optim: Optimiser, graph: bool) -> Trainer:
    """:func:`gradient_descent` with the circuit's own ``loss_grads`` of the mean squared error."""
    def grads(p: Params, x: Tensor, y: Tensor, fixed: Fixed) -> Params:
        return circuit.loss_grads(p, x, y, fixed, create_graph=graph, with_loss=False)[0]

    return gradient_descent(grads, optim, graph)


def dense_gradient_descent(mlp: MLP, optim: Optimiser, graph: bool) -> Trainer:
    """The dense fast path: :func:`gradient_descent` with :func:`dense_mse_grads`, biases carried ``(E, 1, out)``
    during training (no unsqueeze per step: fewer autograd nodes to replay)."""
    f, df = ACTIVATIONS[mlp.activation]
    relu = mlp.activation == "relu"

    def to_trainer(params: Params) -> Params:
        return [p.unsqueeze(1) if i % 2 else p for i, p in enumerate(params)]

    def to_circuit(params: Params) -> Params:
        return [p.squeeze(1) if i % 2 else p for i, p in enumerate(params)]

    trainer = gradient_descent(lambda p, x, y, fixed: dense_mse_grads(p, x, y, f, df, relu), optim, graph,
                               to_trainer, to_circuit)
    if optim.name != "sgd":  # momentum / adam: autograd through the per-step loop
        return trainer

    def reverse(params: Params, x: Tensor, y: Tensor, idx: Tensor | None, steps: int) -> Params:
        return unrolled_dense_gd_params(params, x, y, lr=optim.lr, steps=steps, activation=mlp.activation, idx=idx)

    return trainer._replace(reverse=reverse)


def dense_mse_grads(params: Params, x: Tensor, y: Tensor, f: Callable, df: Callable, relu: bool) -> Params:
    """Gradients of each member's ``mean_n (out_n − y_n)²`` for an MLP ``[W1 (E, in, h), b1 (E, 1, h), …]``.

    A deliberate second copy of :meth:`learnscope.circuits.Circuit.backward` for the one case the bias search runs
    most: the same δ recursion, specialised (biases carried ``(E, 1, out)``, one ``threshold_backward`` per ReLU,
    no records or transports). Measured 148 ms vs 200 ms per fit plus meta-gradient through :meth:`Rule.step`
    (3-20-20-1 MLP, 100 steps, B = 32, float32, one thread). The tests pin it to plain autograd gradient descent
    and to finite differences; a change to the backward pass there must be made here too.
    """
    L = len(params) // 2
    hs = [x]
    h = x
    for i in range(L):
        a = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        h = a if i == L - 1 else f(a)
        hs.append(h)
    e = (h - y.unsqueeze(-1)) * (2.0 / (h.shape[1] * h.shape[2]))  # ∂ mean (out − y)² / ∂ out
    grads: Params = [None] * len(params)  # type: ignore[list-item]
    delta = e
    for i in reversed(range(L)):
        grads[2 * i] = torch.bmm(hs[i].transpose(1, 2), delta)
        grads[2 * i + 1] = delta.sum(1, keepdim=True)
        if i > 0:
            back = torch.bmm(delta, params[2 * i].transpose(1, 2))
            # threshold_backward = back·[h > 0] as one differentiable op (a third fewer autograd nodes)
            delta = torch.ops.aten.threshold_backward(back, hs[i], 0.0) if relu else back * df(hs[i])
    return grads


# ---------------------------------------------------------------- the loop


def gather_rows(t: Tensor, idx: Tensor) -> Tensor:
    """``t (E, n, …)`` and ``idx (E, s, k)`` -> ``t[e, idx[e]]`` of shape ``(E, s, k, …)``."""
    E = t.shape[0]
    flat = idx.reshape(E, -1)
    ar = torch.arange(E, device=t.device).unsqueeze(1)
    return t[ar, flat].reshape(*idx.shape, *t.shape[2:])


def _join(*parts: Any) -> Any:
    return torch.cat(parts, dim=0) if isinstance(parts[0], Tensor) else parts[0]


def unroll(
    circuit: FunctionalCircuit,
    trainer: Trainer | Callable[[bool], Trainer],
    draw: Draw,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    generator: GeneratorLike,
    steps: int,
    batch_size: int | None,
    meta_gradient: MetaGradient = FULL,
    fixed_point: Callable[[Params, Tensor, Tensor, Fixed], Params] | None = None,
) -> tuple[Tensor, Fitted]:
    """Train B fresh members on ``(x_train (B, n, d), y_train (B, n))``, predict ``x_test (B, m, d)`` -> ``(B, m)``.

    trainer : a :class:`Trainer`, or ``graph -> Trainer`` (needed by the estimators that run some steps without a
        graph and some with one: ``"checkpointed"``, ``"truncated"``, ``"implicit"``).
    draw : ``(generator, size, dtype) -> Members`` (the circuit's ``draw`` or a custom initialiser).
    steps, batch_size : ``steps`` updates on the full training set (``batch_size`` None) or on ``batch_size``
        indices drawn uniformly with replacement per update. The inputs are read as ``(B, n, *in_shape)``.
    meta_gradient : the estimator of the meta-gradient (:mod:`learnscope.learners.meta_gradient`); a graph is
        built only when grad mode is on and an input requires grad.
    fixed_point : for ``"implicit"``: the loss gradient the trainer follows, ``(params (circuit layout), x, y, fixed)
        -> ∇_θ Σ_e L_e`` (differentiable to second order).
    Returns the predictions and the :class:`Fitted` record.
    """
    problem = prepare_unroll(circuit, trainer, draw, x_train, y_train, x_test, generator, steps, batch_size,
                             fixed_point)
    graph = torch.is_grad_enabled() and any(t.requires_grad for t in (x_train, y_train, x_test))
    u, initial, fixed, xtr, ytr, xte = problem
    pred, (params, state) = run_unrolled(u, xtr, ytr, xte, meta_gradient, graph)
    trainer_ = trainer(graph) if not isinstance(trainer, Trainer) else trainer
    return pred, Fitted(circuit, trainer_.to_circuit(initial), trainer_.to_circuit(params), fixed, state)


def prepare_unroll(
    circuit: FunctionalCircuit,
    trainer: Trainer | Callable[[bool], Trainer],
    draw: Draw,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    generator: GeneratorLike,
    steps: int,
    batch_size: int | None,
    fixed_point: Callable[[Params, Tensor, Tensor, Fixed], Params] | None = None,
) -> tuple[Unrolled, Params, Fixed, Tensor, Tensor, Tensor]:
    """Make every random draw of one :func:`unroll` call and return the deterministic run that is left:
    ``(Unrolled, initial params (trainer layout), fixed, x_train, y_train, x_test)`` (inputs reshaped to
    ``(B, n, *in_shape)``). The carry is ``(params, trainer state)``."""
    make = (lambda graph: trainer) if isinstance(trainer, Trainer) else trainer
    B, n = x_train.shape[:2]
    m = x_test.shape[1]
    dtype, dev = x_train.dtype, x_train.device
    if tuple(x_train.shape[2:]) != tuple(circuit.in_shape):
        x_train = x_train.reshape(B, n, *circuit.in_shape)
        x_test = x_test.reshape(B, m, *circuit.in_shape)
    first = make(False)
    blocks = []
    for g, size in generator_blocks(generator, B):
        params, fixed = draw(g, size, dtype)
        params = first.to_trainer(params)
        state = first.init(params, g)
        idx = None
        if batch_size is not None:
            idx = torch.randint(n, (size, steps, batch_size), generator=g, device=g.device)
        blocks.append((params, fixed, state, idx, circuit.draw_per_point(g, size, n, dtype),
                       circuit.draw_per_point(g, size, m, dtype)))
    joined = blocks[0] if len(blocks) == 1 else pytree.tree_map(_join, *blocks)
    params, fixed, state, idx, points_train, points_test = pytree.tree_map(
        lambda t: t.to(dev) if isinstance(t, Tensor) else t, joined
    )
    trainers = {False: first, True: make(True)}

    def run(carry, xtr: Tensor, ytr: Tensor, t0: int, t1: int, graph: bool):
        # the one per-step loop; a whole-unroll autograd.Function can take its place through Unrolled.run_full
        params, state = carry
        step = trainers[graph].step
        if idx is not None:  # this window's minibatches, gathered at once: (B, t1 - t0, k, …)
            window = idx[:, t0:t1]
            xs, ys = gather_rows(xtr, window), gather_rows(ytr, window)
            pts_w = {k: gather_rows(v, window) for k, v in points_train.items()}
        for t in range(t1 - t0):
            if idx is None:
                xb, yb, pts = xtr, ytr, points_train
            else:
                xb, yb, pts = xs[:, t], ys[:, t], {k: v[:, t] for k, v in pts_w.items()}
            params, state = step(params, state, xb, yb, {**fixed, **pts})
        return params, state

    to_circuit = first.to_circuit

    def readout(carry, xte: Tensor) -> Tensor:
        return circuit.forward(to_circuit(carry[0]), xte, {**fixed, **points_test})[..., 0]

    fp = None
    if fixed_point is not None:
        fp = FixedPoint(lambda carry: to_circuit(carry[0]),
                        lambda theta, xtr, ytr: fixed_point(theta, xtr, ytr, {**fixed, **points_train}),
                        lambda theta, xte: circuit.forward(theta, xte, {**fixed, **points_test})[..., 0])
    run_full = None
    if first.reverse is not None and not fixed and not points_train:
        def run_full(carry, xtr: Tensor, ytr: Tensor):
            # all T steps through the hand-written reverse pass (used by meta_gradient "full" with a graph)
            params, (opt, t) = carry
            return first.reverse(params, xtr, ytr, idx, steps), (opt, t + steps)

    u = Unrolled((params, state), steps, run, readout, fp, run_full)
    return u, params, fixed, x_train, y_train, x_test
