"""Learners trained by unrolled plasticity: fresh random networks per call, differentiable in the labels.

Every call of ``fit_predict`` draws B fresh learners (one per batch element: initial weights, and the circuit's
or rule's other randomness — connectivity mask, feedback matrices, minibatch indices, input spike noise), trains
member b for ``steps`` updates on ``(x_train[b], y_train[b])`` and predicts ``x_test[b]``. The B learners are one
ensemble (parameters with a leading axis E = B) trained in batched tensor ops. Nothing is detached: the
prediction is a differentiable function of ``y_train`` through the whole unrolled run (bias-spec §1.2 "Neural
learners": MAML-style second-order meta-gradient, w.r.t. the labels).

Plain gradient descent on the mean squared error (the paper's learner) is ``rule="sgd"`` (alias
``"backprop"``):

.. math::

    \\theta_{t+1} = \\theta_t - \\eta\\, \\nabla_\\theta \\frac{1}{|I_t|}\\sum_{i \\in I_t}
    (g_{\\theta_t}(x_i) - y_i)^2,

with ``I_t`` the full training set (``batch_size=None``) or ``batch_size`` indices drawn uniformly *with*
replacement (Fig 7: 30 of 50). Other rules (``"fa"``, ``"ss"``, ``"kp"``, ``"dfa"``, ``"ia"``, …) use
:meth:`learnscope.plasticity.Rule.step` (``create_graph=True``) on an :class:`~learnscope.circuits.MLP` or
:class:`~learnscope.circuits.ConvNet`, with fresh feedback matrices per learner and call; by default with
plain SGD (``optimiser="sgd"``) so only the credit transport differs from the paper's learner.

Implementations (chosen from the circuit and rule; all exact, checked against finite differences in the tests):

- MLP + backprop: hand-written batched forward/backward (``baddbmm`` / ``bmm`` over the ensemble), no
  ``autograd.grad`` in the inner loop — the backward pass is itself ordinary differentiable torch ops;
- :class:`~learnscope.circuits.sparse.MushroomBody`: its hand-written masked gradients
  (:meth:`~learnscope.circuits.sparse.MushroomBody.mse_grads`);
- other Circuit + rule: :meth:`Rule.step`;
- anything else with ``init_params(generator, ensemble, dtype)`` and ``forward(params, x)`` (e.g.
  :class:`~learnscope.circuits.spiking.SpikingLIF`): ``torch.autograd.grad(create_graph=True)`` (BPTT).

Random draws go block by block through the generators (the ``draw_normal`` convention of
:mod:`learnscope.learners.base`): generator g draws, in this order, the circuit randomness (mask, then
parameters), the rule's feedback matrices, the minibatch indices ``(size, steps, batch_size)`` and the input
noise (train, then test) of its block of the batch — so one seed's learners do not depend on what else shares
the batch.

:class:`Trained` wraps a user's own ``torch.nn.Module`` (``torch.func.functional_call`` + ``vmap`` over fresh
per-member parameters, plain GD).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from learnscope.circuits.base import Circuit, default_uniform_init
from learnscope.circuits.conv import ConvNet
from learnscope.circuits.mlp import ACTIVATIONS, MLP
from learnscope.circuits.sparse import SCHEMES, MushroomBody
from learnscope.circuits.spiking import SpikingLIF
from learnscope.errors import ConfigError, ShapeError, UnknownNameError, check_positive, check_positive_int
from learnscope.learners.base import GeneratorLike, LearnerBase, described, generator_blocks, validate_fit_inputs
from learnscope.plasticity.optimisers import OPTIMISERS, Optimiser
from learnscope.plasticity.rules import RULES, Rule, RuleState, make_rule, mse_loss

CIRCUIT_NAMES = ("mlp", "conv", "mushroom_body", "lif")
PLAIN_GD = ("sgd", "backprop")
DEFAULT_CIRCUIT: dict[str, Any] = {"circuit": "mlp", "hidden": [20, 20]}


# ---------------------------------------------------------------- circuits from specs


def build_circuit(spec: object, d: int) -> Any:
    """A circuit for inputs of dimension ``d`` from a spec.

    spec : a circuit object (``MLP``, ``ConvNet``, ``MushroomBody``, ``SpikingLIF``, or anything with
        ``init_params(generator, ensemble, dtype)`` and ``forward(params, x) -> (E, N, 1)``); a list of MLP sizes
        ``[d, h1, …, 1]``; or a dict ``{"circuit": name, **kwargs}`` with name in ``mlp`` (``sizes`` or ``hidden``
        plus ``activation``), ``conv`` (ConvNet kwargs, ``n_out`` defaults to 1), ``mushroom_body``, ``lif``
        (``n_inputs`` defaults to d). ``circuit.describe()`` dicts are accepted.
    """
    if isinstance(spec, (list, tuple)):
        return MLP(list(spec))
    if isinstance(spec, Mapping):
        kw = dict(spec)
        name = kw.pop("circuit", None)
        if name not in CIRCUIT_NAMES:
            raise UnknownNameError("circuit", str(name), CIRCUIT_NAMES)
        if name == "mlp":
            hidden = kw.pop("hidden", None)
            if hidden is not None:
                if "sizes" in kw:
                    raise ConfigError("give an MLP either 'sizes' or 'hidden', not both")
                kw["sizes"] = [d, *hidden, 1]
            return MLP(**kw)
        if name == "conv":
            kw.setdefault("n_out", 1)
            return ConvNet(**kw)
        kw.setdefault("n_inputs", d)
        return MushroomBody(**kw) if name == "mushroom_body" else SpikingLIF(**kw)
    if callable(getattr(spec, "init_params", None)) and callable(getattr(spec, "forward", None)):
        return spec
    raise ConfigError(
        f"cannot make a circuit from {type(spec).__name__}; pass a circuit, a list of MLP sizes or a dict "
        f"with 'circuit' in {CIRCUIT_NAMES}"
    )


def _circuit_input_dim(circuit: Any) -> int | None:
    if isinstance(circuit, Circuit):
        return math.prod(circuit.in_shape)
    return getattr(circuit, "n_inputs", None)


# ---------------------------------------------------------------- engines: draw, step and read out one family


def _cat(parts: Sequence[Any]) -> Any:
    """Concatenate per-block pytrees (tensors along dim 0; lists, tuples, dicts, RuleStates recursively)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if first is None:
        return None
    if isinstance(first, Tensor):
        return torch.cat(list(parts), dim=0)
    if isinstance(first, RuleState):
        return RuleState(
            _cat([p.feedback for p in parts]),
            _cat([p.opt for p in parts]),
            _cat([p.feedback_opt for p in parts]),
            first.step,
        )
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f"cannot concatenate {type(first).__name__}")  # pragma: no cover - internal


def _sgd(params: Sequence[Tensor], grads: Sequence[Tensor], lr: float) -> list[Tensor]:
    return [torch.add(p, g, alpha=-lr) for p, g in zip(params, grads, strict=True)]


class _Engine:
    """One family of circuits: ``draw`` a block, ``start`` the training state, ``step``, ``predict``."""

    def __init__(self, circuit: Any, optim: Optimiser, init: Callable | None):
        self.circuit = circuit
        self.optim = optim
        self.init = init
        self.graph = True  # set per call: keep the autograd graph through training

    def draw(self, g: torch.Generator, size: int, dtype: torch.dtype) -> tuple[list[Tensor], Any]:
        init = self.init or self.circuit.init_params
        return init(g, size, dtype), None

    def start(self, params: list[Tensor], extra: Any) -> Any:
        return (self.optim.init_state(params), 0)

    def grads(self, params: list[Tensor], extra: Any, x: Tensor, y: Tensor, noise: Tensor | None) -> list[Tensor]:
        raise NotImplementedError

    def step(self, params, extra, state, x, y, noise):
        grads = self.grads(params, extra, x, y, noise)
        opt, t = state
        if self.optim.name == "sgd":
            new = _sgd(params, grads, self.optim.lr)
        else:
            new, opt = self.optim.update(params, grads, opt, t + 1)
        if not self.graph:
            new = [p.detach() for p in new]
        return new, (opt, t + 1)

    def output(self, params: list[Tensor], extra: Any, x: Tensor, noise: Tensor | None) -> Tensor:
        return self.circuit.forward(params, x)

    def predict(self, params, extra, state, x, noise) -> Tensor:
        return self.output(params, extra, x, noise)[..., 0]

    def finish(self, params: list[Tensor]) -> list[Tensor]:
        """The trained parameters in the circuit's own layout."""
        return params


class _DenseEngine(_Engine):
    """MLP + backprop, hand-written batched backward pass (plain differentiable torch ops).

    A deliberate second copy of :meth:`learnscope.circuits.Circuit.backward` for the one case the bias search runs
    most: the same δ recursion, specialised (biases carried ``(E, 1, out)``, one ``threshold_backward`` per ReLU,
    no records or transports). Measured 148 ms vs 200 ms per fit plus meta-gradient through :class:`_RuleEngine`
    (3-20-20-1 MLP, 100 steps, B = 32, float32, one thread). The tests pin it to plain autograd gradient descent
    and to finite differences; a change to the backward pass there must be made here too.
    """

    def __init__(self, circuit: MLP, optim: Optimiser, init: Callable | None):
        super().__init__(circuit, optim, init)
        self.f, self.df = ACTIVATIONS[circuit.activation]
        self.relu = circuit.activation == "relu"

    # Biases are carried as (E, 1, out) during training: no unsqueeze per step (fewer autograd nodes to replay).
    def draw(self, g, size, dtype):
        params, extra = super().draw(g, size, dtype)
        return [p.unsqueeze(1) if i % 2 else p for i, p in enumerate(params)], extra

    def finish(self, params):
        return [p.squeeze(1) if i % 2 else p for i, p in enumerate(params)]

    def output(self, params, extra, x, noise):
        return self.circuit.forward(self.finish(params), x)

    def grads(self, params, extra, x, y, noise):
        L = len(params) // 2
        hs = [x]
        h = x
        for i in range(L):
            a = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
            h = a if i == L - 1 else self.f(a)
            hs.append(h)
        e = (h - y.unsqueeze(-1)) * (2.0 / (h.shape[1] * h.shape[2]))  # ∂ mean (out − y)² / ∂ out
        grads: list[Tensor] = [None] * len(params)  # type: ignore[list-item]
        delta = e
        for i in reversed(range(L)):
            grads[2 * i] = torch.bmm(hs[i].transpose(1, 2), delta)
            grads[2 * i + 1] = delta.sum(1, keepdim=True)
            if i > 0:
                back = torch.bmm(delta, params[2 * i].transpose(1, 2))
                # threshold_backward = back·[h > 0] as one differentiable op (a third fewer autograd nodes)
                delta = torch.ops.aten.threshold_backward(back, hs[i], 0.0) if self.relu else back * self.df(hs[i])
        return grads


class _MushroomEngine(_Engine):
    """MushroomBody: fresh mask per learner, hand-written masked gradients."""

    def draw(self, g, size, dtype):
        mask = self.circuit.sample_mask(g, size, dtype)
        init = self.init or self.circuit.init_params
        return init(g, mask, dtype), mask

    def grads(self, params, mask, x, y, noise):
        return self.circuit.mse_grads(params, x, y, mask)

    def output(self, params, mask, x, noise):
        return self.circuit.forward(params, x, mask)


class _AutogradEngine(_Engine):
    """Any functional circuit: ``torch.autograd.grad(create_graph=True)`` of the summed per-member MSE."""

    def output(self, params, extra, x, noise):
        if getattr(self.circuit, "needs_noise", False):
            return self.circuit.forward(params, x, noise)
        return self.circuit.forward(params, x)

    def grads(self, params, extra, x, y, noise):
        with torch.enable_grad():
            ps = [p if p.requires_grad else p.detach().requires_grad_(True) for p in params]
            out = self.output(ps, extra, x, noise)
            loss = mse_loss(out, y).sum()
            return list(torch.autograd.grad(loss, ps, create_graph=self.graph))


class _RuleEngine(_Engine):
    """Circuit + learning rule through :meth:`Rule.step`; the rule state carries fresh feedback matrices."""

    def __init__(self, circuit: Circuit, rule: Rule, init: Callable | None):
        super().__init__(circuit, rule.optim, init)
        self.rule = rule

    def draw(self, g, size, dtype):
        params, _ = super().draw(g, size, dtype)
        return params, self.rule.init_state(self.circuit, params, g)

    def start(self, params, extra):
        return extra

    def step(self, params, extra, state, x, y, noise):
        x = x.reshape(*x.shape[:2], *self.circuit.in_shape)
        new, state, _ = self.rule.step(self.circuit, params, state, x, y, mse_loss, create_graph=self.graph)
        return new, state

    def predict(self, params, extra, state, x, noise):
        x = x.reshape(*x.shape[:2], *self.circuit.in_shape)
        return self.circuit.forward(params, x)[..., 0]


# ---------------------------------------------------------------- the learner


@dataclass(frozen=True)
class Fitted:
    """What one ``fit_predict`` call trained (every tensor with the leading batch / ensemble axis B).

    circuit : the circuit used. initial / params : parameter lists before and after training.
    extra : the per-learner fixed randomness — the MushroomBody mask ``(B, d, K)``, the rule's initial
        :class:`~learnscope.plasticity.RuleState` (feedback matrices), or None.
    state : the final optimiser state (``(buffers, t)``) or :class:`RuleState`.
    """

    circuit: Any
    initial: list[Tensor]
    params: list[Tensor]
    extra: Any
    state: Any


def _check_batch_size(batch_size: object) -> int | None:
    return None if batch_size is None else check_positive_int("batch_size", batch_size)


def _gather_rows(t: Tensor, idx: Tensor) -> Tensor:
    """``t (E, n, …)`` and ``idx (E, s, k)`` -> ``t[e, idx[e]]`` of shape ``(E, s, k, …)``."""
    E = t.shape[0]
    flat = idx.reshape(E, -1)
    ar = torch.arange(E, device=t.device).unsqueeze(1)
    return t[ar, flat].reshape(*idx.shape, *t.shape[2:])


class TrainedLearner(LearnerBase):
    """A fresh network per batch element, trained by ``steps`` unrolled updates of a learning rule.

    Parameters
    ----------
    circuit : the network (see :func:`build_circuit`): a circuit object, MLP sizes, or a spec dict; default
        ``{"circuit": "mlp", "hidden": [20, 20]}`` — the notebook-Fig8 learner ``d → 20 → 20 → 1`` (ReLU).
        The circuit must have one output.
    rule : ``"sgd"`` / ``"backprop"`` (gradient descent, the paper's learner) or a rule name of
        :data:`learnscope.plasticity.RULES` (``"fa"``, ``"ss"``, ``"kp"``, ``"dfa"``, ``"ia"``, …), a rule dict or
        a :class:`Rule` — non-backprop rules need an ``MLP`` / ``ConvNet`` circuit.
    steps : number of updates t (Fig 8: 200; Fig 7: 50).
    lr : learning rate η (Fig 8: 0.025; Fig 7: 0.05); overrides the rule's.
    batch_size : ``None`` for full-batch updates, else each update uses ``batch_size`` training indices drawn
        uniformly with replacement (Fig 7: 30).
    init : ``"default"`` (the circuit's ``init_params``: PyTorch's ``U(±1/√fan_in)``) or a callable with the
        signature of the circuit's ``init_params`` (``(generator, ensemble, dtype)``; for a MushroomBody
        ``(generator, mask, dtype)``) returning the parameter list with an ensemble axis.
    optimiser : ``"sgd"`` (default: plain updates ``θ ← θ − ηg``), ``"momentum"`` or ``"adam"``; ``None`` keeps
        the named rule's own optimiser (momentum for ``fa``, ``ss``, …).

    ``fit_predict(x_train (B, n, d), y_train (B, n), x_test (B, m, d), generator=...) -> (B, m)``: see the
    module doc for what is drawn and in which order. Memory grows linearly with ``steps``.
    """

    name = "trained"
    stochastic = True

    def __init__(
        self,
        circuit: object = None,
        rule: str | Mapping[str, Any] | Rule = "sgd",
        steps: int = 200,
        lr: float = 0.025,
        batch_size: int | None = None,
        init: str | Callable = "default",
        optimiser: str | None = "sgd",
    ):
        self.circuit = dict(DEFAULT_CIRCUIT) if circuit is None else circuit
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.batch_size = _check_batch_size(batch_size)
        if not (init == "default" or callable(init)):
            raise ConfigError(f"init must be 'default' or a callable like the circuit's init_params, got {init!r}")
        self.init = init
        if optimiser is not None and optimiser not in OPTIMISERS:
            raise UnknownNameError("optimiser", str(optimiser), OPTIMISERS)
        self.optimiser = optimiser
        self.rule = "sgd" if rule == "backprop" else rule
        overrides: dict[str, Any] = {"lr": self.lr}
        if optimiser is not None:
            overrides["optimiser"] = optimiser
        self._rule = make_rule(self.rule, **overrides)
        self._circuits: dict[int, Any] = {}
        # build now when the spec fixes the input dimension (catches config errors early)
        if not isinstance(self.circuit, Mapping) or "sizes" in self.circuit or "in_shape" in self.circuit:
            c = build_circuit(self.circuit, 0)
            self._check_circuit(c)
            d = _circuit_input_dim(c)
            if d is not None:
                self._circuits[d] = c

    # -------------------------------------------------------------- set-up
    def _check_circuit(self, c: Any) -> None:
        n_out = getattr(c, "n_out", 1)
        if n_out != 1:
            raise ConfigError(f"a learner predicts one number per point; the circuit has n_out={n_out}")
        if self._rule.transport != "backprop" and not isinstance(c, Circuit):
            raise ConfigError(
                f"rule {self._rule.name!r} ({self._rule.transport}) needs an MLP or ConvNet circuit; "
                f"{type(c).__name__} is trained by gradient descent (rule='sgd')"
            )

    def circuit_for(self, d: int) -> Any:
        """The circuit used for inputs of dimension d (built from the spec on first use)."""
        if d not in self._circuits:
            if len(self._circuits) == 1 and not isinstance(self.circuit, Mapping):
                have = next(iter(self._circuits))
                raise ShapeError(f"the circuit takes inputs of dimension {have}, got x with d={d}")
            c = build_circuit(self.circuit, d)
            self._check_circuit(c)
            have = _circuit_input_dim(c)
            if have is not None and have != d:
                raise ShapeError(f"the circuit takes inputs of dimension {have}, got x with d={d}")
            self._circuits[d] = c
        return self._circuits[d]

    def _engine(self, c: Any) -> _Engine:
        init = None if self.init == "default" else self.init
        plain = self._rule.transport == "backprop" and not self._rule.weight_decay
        if isinstance(c, MLP) and plain:
            return _DenseEngine(c, self._rule.optim, init)
        if isinstance(c, Circuit):
            return _RuleEngine(c, self._rule, init)
        if not plain:
            raise ConfigError("weight_decay is only supported for MLP / ConvNet circuits")
        if isinstance(c, MushroomBody):
            return _MushroomEngine(c, self._rule.optim, init)
        return _AutogradEngine(c, self._rule.optim, init)

    # -------------------------------------------------------------- training
    def fit_predict(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        *,
        generator: GeneratorLike = None,
        return_fitted: bool = False,
    ) -> Tensor | tuple[Tensor, Fitted]:
        """Train B fresh learners on ``(x_train (B, n, d), y_train (B, n))``, predict ``x_test (B, m, d)`` -> (B, m).

        generator : a ``torch.Generator`` or a list of G generators, one per block of B/G learners.
        return_fitted : also return a :class:`Fitted` (initial and trained parameters, mask / rule state).
        Differentiable in ``y_train`` (and the inputs) through the unrolled training.
        """
        validate_fit_inputs(x_train, y_train, x_test)
        B, n, d = x_train.shape
        m = x_test.shape[1]
        engine = self._engine(self.circuit_for(d))
        engine.graph = torch.is_grad_enabled() and any(t.requires_grad for t in (x_train, y_train, x_test))
        dtype, dev = x_train.dtype, x_train.device
        noisy = bool(getattr(engine.circuit, "needs_noise", False))
        parts: list[tuple] = []
        for g, size in generator_blocks(generator, B):
            params, extra = engine.draw(g, size, dtype)
            idx = None
            if self.batch_size is not None:
                idx = torch.randint(n, (size, self.steps, self.batch_size), generator=g, device=g.device)
            noise = None
            if noisy:
                noise = (engine.circuit.draw_noise(g, size, n, dtype), engine.circuit.draw_noise(g, size, m, dtype))
            parts.append((params, extra, idx, noise))
        params, extra, idx, noise = (_cat([p[i] for p in parts]) for i in range(4))
        to = lambda t: None if t is None else t.to(dev)  # noqa: E731
        params = [to(p) for p in params]
        extra = _move(extra, dev)
        noise_tr, noise_te = (None, None) if noise is None else (to(noise[0]), to(noise[1]))
        if idx is not None:
            idx = idx.to(dev)
            xs, ys = _gather_rows(x_train, idx), _gather_rows(y_train, idx)  # (B, steps, k, d), (B, steps, k)
            ns = None if noise_tr is None else _gather_rows(noise_tr, idx)
        initial = params
        state = engine.start(params, extra)
        for t in range(self.steps):
            if idx is None:
                xb, yb, nb = x_train, y_train, noise_tr
            else:
                xb, yb, nb = xs[:, t], ys[:, t], None if ns is None else ns[:, t]
            params, state = engine.step(params, extra, state, xb, yb, nb)
        pred = engine.predict(params, extra, state, x_test, noise_te)
        if return_fitted:
            return pred, Fitted(engine.circuit, engine.finish(initial), engine.finish(params), extra, state)
        return pred

    # -------------------------------------------------------------- description
    def _describe_param(self, key: str, value: Any) -> Any:
        """A circuit object without ``describe()`` is described by its repr (and cannot be rebuilt)."""
        if key == "circuit" and not isinstance(value, (Mapping, list, tuple)):
            return value.describe() if callable(getattr(value, "describe", None)) else repr(value)
        return described(value)


def _move(tree: Any, dev: torch.device) -> Any:
    if tree is None:
        return None
    if isinstance(tree, Tensor):
        return tree.to(dev)
    if isinstance(tree, RuleState):
        return RuleState(_move(tree.feedback, dev), _move(tree.opt, dev), _move(tree.feedback_opt, dev), tree.step)
    if isinstance(tree, dict):
        return {k: _move(v, dev) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_move(v, dev) for v in tree)
    return tree


# ---------------------------------------------------------------- presets

_TRAINING_ARGUMENTS = ("steps", "lr", "batch_size")


def _circuit_arguments(preset: TrainedLearner) -> dict[str, Any]:
    """A preset's constructor arguments that go to its circuit: all of them but the training ones."""
    return {k: getattr(preset, k) for k in preset.param_names() if k not in _TRAINING_ARGUMENTS}


class MushroomBodyLearner(TrainedLearner):
    """The Fig 7 learner: a :class:`~learnscope.circuits.sparse.MushroomBody` trained by minibatch GD.

    Defaults are the notebook's: 5 inputs → 100 Kenyon cells (2 inputs each) → 1, t = 50 steps, η = 0.05,
    minibatches of 30 drawn with replacement. ``scheme``, ``positive``, ``probs``: see the circuit. A fresh mask
    and fresh weights per learner per call. ``n_inputs=None`` takes d from the data (the circuit, and any error in
    ``probs``, then comes at the first call).
    """

    name = "mushroom_body"

    def __init__(
        self,
        n_inputs: int | None = None,
        n_hidden: int = 100,
        fan_in: int = 2,
        scheme: str | int = "random",
        positive: bool | str = False,
        probs: Sequence | None = None,
        steps: int = 50,
        lr: float = 0.05,
        batch_size: int | None = 30,
    ):
        self.n_inputs = n_inputs
        self.n_hidden = n_hidden
        self.fan_in = fan_in
        self.scheme = scheme
        self.positive = positive
        self.probs = probs
        if isinstance(scheme, str) and scheme not in SCHEMES:
            raise UnknownNameError("connectivity scheme", scheme, SCHEMES)
        spec = _circuit_arguments(self)
        if n_inputs is None:
            del spec["n_inputs"]  # taken from the data at the first call
        else:
            MushroomBody(**spec)  # validate now
        super().__init__({"circuit": "mushroom_body", **spec}, rule="sgd", steps=steps, lr=lr, batch_size=batch_size)


class SpikingLearner(TrainedLearner):
    """A :class:`~learnscope.circuits.spiking.SpikingLIF` network trained by plain GD through time (BPTT).

    bias-spec §3.1 reconstruction: N_h = 20 LIF neurons, current injection, time-averaged leaky readout, surrogate
    spike derivative; ``steps`` full-batch GD updates with rate ``lr``. Remaining keyword arguments go to
    :class:`SpikingLIF` (``t_sim``, ``encoding``, ``surrogate``, ``slope``, ``smooth``, ``input_gain``, …);
    the input dimension comes from the data.
    """

    name = "spiking"

    def __init__(
        self,
        n_hidden: int = 20,
        t_sim: int = 30,
        steps: int = 100,
        lr: float = 0.025,
        batch_size: int | None = None,
        encoding: str = "current",
        max_rate: float = 100.0,
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
        smooth: bool = False,
        input_gain: float = 0.2,
        tau_syn: float = 5.0,
        tau_mem: float = 10.0,
        readout: str = "mean",
        detach_reset: bool = False,
    ):
        self.n_hidden = n_hidden
        self.t_sim = t_sim
        self.encoding = encoding
        self.max_rate = max_rate
        self.surrogate = surrogate
        self.slope = slope
        self.smooth = smooth
        self.input_gain = input_gain
        self.tau_syn = tau_syn
        self.tau_mem = tau_mem
        self.readout = readout
        self.detach_reset = detach_reset
        spec = _circuit_arguments(self)
        SpikingLIF(**spec)  # validate now
        super().__init__({"circuit": "lif", **spec}, rule="sgd", steps=steps, lr=lr, batch_size=batch_size)


# ---------------------------------------------------------------- a user's own nn.Module


def _fan_in(shape: tuple[int, ...]) -> int:
    """``nn.Linear`` / ``nn.ConvNd`` fan-in of a weight ``(out, in, *kernel)``: ``in · prod(kernel)``; 1-D: ``s[0]``."""
    if len(shape) >= 2:
        return shape[1] * math.prod(shape[2:])
    return shape[0] if shape else 1


class Trained(LearnerBase):
    """A user's ``torch.nn.Module`` as a learner: fresh parameters per batch element, plain unrolled GD.

    The module maps ``(N, d)`` inputs to ``(N,)`` or ``(N, 1)`` outputs. Each call draws, for every batch element,
    new values of all of the module's parameters — **never** touching the global RNG: the module's own
    ``reset_parameters`` would use it, so instead each parameter of shape s gets ``U(±1/√fan_in)`` from the explicit
    generators, with ``fan_in = s[1]·prod(s[2:])`` for ≥2-D tensors (PyTorch's Linear/Conv weights) and, for a 1-D
    ``<prefix>.bias``, the fan-in of ``<prefix>.weight`` when that exists (PyTorch's bias init), else ``s[0]``.
    That is exactly PyTorch's default for ``nn.Linear`` and ``nn.ConvNd``; pass ``init`` for anything else.
    Buffers are shared by all members and not trained.

    Training is ``steps`` updates of plain GD on the per-member MSE (full batch, or ``batch_size`` indices with
    replacement), computed with ``torch.func.vmap(torch.func.grad(·))`` over the members around
    ``torch.func.functional_call``. It stays differentiable in the labels (the func transforms compose with the
    outer autograd graph).

    Parameters
    ----------
    module : the network (its parameter *values* are ignored).
    rule : ``"backprop"`` / ``"sgd"`` only (other rules need a library circuit, see :class:`TrainedLearner`).
    steps, lr, batch_size : as in :class:`TrainedLearner`.
    init : ``None`` (the default above) or ``init(name, shape, generator, dtype) -> Tensor`` for one member.
    """

    name = "trained_module"
    stochastic = True

    def __init__(
        self,
        module: torch.nn.Module,
        rule: str = "backprop",
        steps: int = 200,
        lr: float = 0.025,
        batch_size: int | None = None,
        init: Callable[[str, tuple[int, ...], torch.Generator, torch.dtype], Tensor] | None = None,
    ):
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if rule not in PLAIN_GD:
            near = "; use TrainedLearner with an MLP circuit for other rules" if rule in RULES else ""
            raise ConfigError(f"Trained(module) supports rule 'backprop' (plain GD) only, got {rule!r}{near}")
        if not list(module.parameters()):
            raise ConfigError("the module has no parameters to train")
        self.module = module
        self.rule = rule
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.batch_size = _check_batch_size(batch_size)
        if init is not None and not callable(init):
            raise ConfigError("init must be None or a callable init(name, shape, generator, dtype) -> Tensor")
        self.init = init

    def _custom(self, name: str, shape: tuple[int, ...], g: torch.Generator, size: int, dtype) -> Tensor:
        t = torch.stack([self.init(name, shape, g, dtype) for _ in range(size)])
        if tuple(t.shape) != (size, *shape):
            raise ShapeError(f"init returned shape {tuple(t.shape[1:])} for parameter {name!r} of shape {shape}")
        return t

    def init_params(
        self, generator: GeneratorLike, ensemble: int, dtype: torch.dtype = torch.float32
    ) -> dict[str, Tensor]:
        """Fresh parameters ``{name: (ensemble, *shape)}``; per block, drawn parameter by parameter in
        ``named_parameters()`` order (the block logic of :func:`~learnscope.learners.base.draw_normal`)."""
        named = [(k, tuple(p.shape)) for k, p in self.module.named_parameters()]
        shapes = dict(named)
        fans = {}
        for k, s in named:
            if len(s) == 1 and k.endswith("bias") and (k[: -len("bias")] + "weight") in shapes:
                fans[k] = _fan_in(shapes[k[: -len("bias")] + "weight"])
            else:
                fans[k] = _fan_in(s)
        blocks = []
        for g, size in generator_blocks(generator, ensemble):
            if self.init is None:
                drawn = default_uniform_init([(s, fans[k]) for k, s in named], g, size, dtype)
                blocks.append(dict(zip(shapes, drawn, strict=True)))
            else:
                blocks.append({k: self._custom(k, s, g, size, dtype) for k, s in named})
        return _cat(blocks)

    def fit_predict(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        *,
        generator: GeneratorLike = None,
    ) -> Tensor:
        """Train B fresh copies of the module (plain GD), predict ``x_test`` -> ``(B, m)``; differentiable in y."""
        validate_fit_inputs(x_train, y_train, x_test)
        B, n, _ = x_train.shape
        dtype, dev = x_train.dtype, x_train.device
        parts = []
        for g, size in generator_blocks(generator, B):
            p = self.init_params(g, size, dtype)
            idx = None
            if self.batch_size is not None:
                idx = torch.randint(n, (size, self.steps, self.batch_size), generator=g, device=g.device)
            parts.append((p, idx))
        params = {k: v.to(dev) for k, v in _cat([p[0] for p in parts]).items()}
        idx = _cat([p[1] for p in parts])
        return self.train_from(params, x_train, y_train, x_test, idx)

    def train_from(
        self, params: dict[str, Tensor], x_train: Tensor, y_train: Tensor, x_test: Tensor, idx: Tensor | None = None
    ) -> Tensor:
        """Run the unrolled GD from given initial parameters ``{name: (B, *shape)}`` (minibatch indices
        ``idx (B, steps, batch_size)`` or None for full batch) and predict ``x_test`` -> ``(B, m)``."""
        from torch.func import functional_call, grad, vmap

        module = self.module
        buffers = {k: b.to(x_train.device) for k, b in module.named_buffers()}

        def out_fn(p: dict[str, Tensor], x: Tensor) -> Tensor:
            out = functional_call(module, (p, buffers), (x,))
            if out.numel() != x.shape[0]:
                raise ShapeError(f"the module must return one number per point, got output shape {tuple(out.shape)}")
            return out.reshape(x.shape[0])

        def loss_fn(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return (out_fn(p, x) - y).pow(2).mean()

        step_grad = vmap(grad(loss_fn))
        if idx is not None:
            xs, ys = _gather_rows(x_train, idx), _gather_rows(y_train, idx)
        for t in range(self.steps):
            xb, yb = (x_train, y_train) if idx is None else (xs[:, t], ys[:, t])
            g = step_grad(params, xb, yb)
            params = {k: torch.add(v, g[k], alpha=-self.lr) for k, v in params.items()}
        return vmap(out_fn)(params, x_test)

    def _describe_param(self, key: str, value: Any) -> Any:
        """The module by its repr (a module cannot be rebuilt from a description); ``init`` None as "default"."""
        if key == "module":
            return repr(value)
        if key == "init" and value is None:
            return "default"
        return described(value)
