"""Learners trained by unrolled plasticity: fresh random circuits per call, differentiable in the labels.

Every call of ``fit_predict`` draws B fresh learners (one per batch element: ``circuit.draw`` — initial weights
and the circuit's fixed randomness such as a connectivity mask —, the rule's feedback matrices, minibatch
indices, per-point input noise), trains member b for ``steps`` updates on ``(x_train[b], y_train[b])`` and
predicts ``x_test[b]``. The B learners are one ensemble (parameters with a leading axis E = B) trained in batched
tensor ops by the one engine of :mod:`learnscope.learners.unroll`. By default nothing is detached: the prediction
is a differentiable function of ``y_train`` through the whole unrolled run (bias-spec §1.2 "Neural learners":
MAML-style second-order meta-gradient, w.r.t. the labels); ``meta_gradient`` picks an estimator with bounded
memory instead (:mod:`learnscope.learners.meta_gradient`).

Plain gradient descent on the mean squared error (the paper's learner) is ``rule="sgd"`` (alias
``"backprop"``):

.. math::

    \\theta_{t+1} = \\theta_t - \\eta\\, \\nabla_\\theta \\frac{1}{|I_t|}\\sum_{i \\in I_t}
    (g_{\\theta_t}(x_i) - y_i)^2,

with ``I_t`` the full training set (``batch_size=None``) or ``batch_size`` indices drawn uniformly *with*
replacement (Fig 7: 30 of 50). Other rules (``"fa"``, ``"ss"``, ``"kp"``, ``"dfa"``, ``"ia"``, …) use
:meth:`learnscope.plasticity.Rule.step` (``create_graph=True``) on any circuit of the protocol — the MLP, the
ConvNet, the mushroom body, the LIF network, ConvPool (``"dfa"`` and ``"ia"`` need an MLP / ConvNet) — with
fresh feedback matrices per learner and call; by default with plain SGD (``optimiser="sgd"``) so only the credit
transport differs from the paper's learner. All of it is exact (checked against finite differences in the
tests).

:class:`CircuitLearner` (formerly ``TrainedLearner``) and its presets :class:`MushroomBodyLearner` (Fig 7) and
:class:`SpikingLearner` live here; a user's own ``torch.nn.Module`` is
:class:`~learnscope.learners.module_learner.ModuleLearner` (formerly ``Trained``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor

from learnscope.circuits.base import Circuit
from learnscope.circuits.mlp import MLP
from learnscope.circuits.protocol import FunctionalCircuit, Members
from learnscope.circuits.registry import input_dim, make_circuit
from learnscope.circuits.sparse import SCHEMES, MushroomBody
from learnscope.circuits.spiking import SpikingLIF
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners.base import GeneratorLike, LearnerBase, described, validate_fit_inputs
from learnscope.learners.meta_gradient import make_meta_gradient
from learnscope.learners.module_learner import PLAIN_GD, ModuleLearner, Trained, check_batch_size  # noqa: F401
from learnscope.learners.unroll import (
    Fitted,
    Trainer,
    circuit_gradient_descent,
    dense_gradient_descent,
    rule_trainer,
    unroll,
)
from learnscope.plasticity.optimisers import OPTIMISERS
from learnscope.plasticity.rules import Rule, make_rule
from learnscope.validation import check_positive, check_positive_int

__all__ = [
    "DEFAULT_CIRCUIT",
    "CircuitLearner",
    "Fitted",
    "ModuleLearner",
    "MushroomBodyLearner",
    "SpikingLearner",
    "Trained",
    "TrainedLearner",
    "build_circuit",
    "make_circuit",
]

DEFAULT_CIRCUIT: dict[str, Any] = {"circuit": "mlp", "hidden": [20, 20]}


def _members(init: Callable) -> Callable:
    """A custom initialiser ``init(generator, ensemble, dtype)`` as a draw: its Members, or ``Members(list, {})``."""

    def draw(g, size, dtype) -> Members:
        out = init(g, size, dtype)
        return out if isinstance(out, Members) else Members(list(out), {})

    return draw


class CircuitLearner(LearnerBase):
    """A fresh circuit per batch element, trained by ``steps`` unrolled updates of a learning rule.

    Parameters
    ----------
    circuit : the network (see :func:`~learnscope.circuits.make_circuit`): a circuit object, MLP sizes, or a spec
        dict; default ``{"circuit": "mlp", "hidden": [20, 20]}`` — the notebook-Fig8 learner ``d → 20 → 20 → 1``
        (ReLU). The circuit must have one output.
    rule : ``"sgd"`` / ``"backprop"`` (gradient descent, the paper's learner) or a rule name of
        :data:`learnscope.plasticity.RULES` (``"fa"``, ``"ss"``, ``"kp"``, ``"dfa"``, ``"ia"``, …), a rule dict or
        a :class:`Rule` — ``"dfa"`` and ``"ia"`` need an ``MLP`` / ``ConvNet`` circuit.
    steps : number of updates t (Fig 8: 200; Fig 7: 50).
    lr : learning rate η (Fig 8: 0.025; Fig 7: 0.05); overrides the rule's.
    batch_size : ``None`` for full-batch updates, else each update uses ``batch_size`` training indices drawn
        uniformly with replacement (Fig 7: 30).
    init : ``"default"`` (the circuit's ``draw``: PyTorch's ``U(±1/√fan_in)``) or a callable with the signature of
        ``draw`` (``(generator, ensemble, dtype)``) returning :class:`~learnscope.circuits.Members` or, for a
        circuit without fixed randomness, the parameter list with an ensemble axis.
    optimiser : ``"sgd"`` (default: plain updates ``θ ← θ − ηg``), ``"momentum"`` or ``"adam"``; ``None`` keeps
        the named rule's own optimiser (momentum for ``fa``, ``ss``, …).
    meta_gradient : how the prediction is differentiated w.r.t. the data (:mod:`learnscope.learners.meta_gradient`):
        ``"full"`` (autograd through every step; memory ∝ ``steps``), ``"checkpointed"`` (exact; keeps the carry
        every ``segment`` steps and recomputes one segment at a time in the backward pass: memory ∝
        steps/segment + segment, time ≈ one more forward pass), ``"truncated"`` (through the last ``truncate``
        steps only — **biased**: the paths through earlier updates are dropped) or ``"implicit"`` (the implicit
        function theorem at the fixed point of full-batch gradient descent with weight decay > 0, conjugate
        gradients on Hessian–vector products; raises if the run ends with a gradient norm above ``tol``).
    segment : checkpointed segment length (default ⌈√steps⌉). truncate : K of ``"truncated"``.
    cg_iters, tol : the implicit estimator's CG iteration cap and tolerance (relative CG residual, and the largest
        per-member ‖∇θL‖ accepted as converged).

    ``fit_predict(x_train (B, n, d), y_train (B, n), x_test (B, m, d), generator=...) -> (B, m)``: see
    :mod:`learnscope.learners.unroll` for what is drawn and in which order. With ``"full"`` memory grows linearly
    with ``steps`` (:func:`learnscope.learners.memory.estimate_peak_memory` estimates it).
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
        meta_gradient: str = "full",
        segment: int | None = None,
        truncate: int | None = None,
        cg_iters: int = 100,
        tol: float = 1e-6,
    ):
        self.circuit = dict(DEFAULT_CIRCUIT) if circuit is None else circuit
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.batch_size = check_batch_size(batch_size)
        if not (init == "default" or callable(init)):
            raise ConfigError(f"init must be 'default' or a callable like the circuit's draw, got {init!r}")
        self.init = init
        if optimiser is not None and optimiser not in OPTIMISERS:
            raise UnknownNameError("optimiser", str(optimiser), OPTIMISERS)
        self.optimiser = optimiser
        self.rule = "sgd" if rule == "backprop" else rule
        overrides: dict[str, Any] = {"lr": self.lr}
        if optimiser is not None:
            overrides["optimiser"] = optimiser
        self._rule = make_rule(self.rule, **overrides)
        self.meta_gradient, self.segment, self.truncate = meta_gradient, segment, truncate
        self.cg_iters, self.tol = cg_iters, tol
        self._mg = make_meta_gradient(meta_gradient, self.steps, segment, truncate, cg_iters, tol)
        if meta_gradient == "implicit":
            self._check_implicit()
        self._circuits: dict[int, FunctionalCircuit] = {}
        # build now when the spec fixes the input dimension (catches config errors early)
        if not isinstance(self.circuit, Mapping) or "sizes" in self.circuit or "in_shape" in self.circuit:
            c = make_circuit(self.circuit, 0, n_out=1)
            self._check_circuit(c)
            self._circuits[input_dim(c)] = c

    # -------------------------------------------------------------- set-up
    def _check_circuit(self, c: FunctionalCircuit) -> None:
        if c.n_out != 1:
            raise ConfigError(f"a learner predicts one number per point; the circuit has n_out={c.n_out}")
        self._rule.check_circuit(c)
        if self.meta_gradient == "implicit" and isinstance(c, SpikingLIF):
            raise ConfigError("meta_gradient = 'implicit' is not for the LIF network: its surrogate-gradient updates "
                              "do not descend a loss; use 'checkpointed'")

    def _check_implicit(self) -> None:
        """The implicit estimator needs a characterised fixed point: ∇θ[MSE + λ‖θ‖²/2] = 0 reached by full-batch
        gradient descent (transport backprop) with weight decay λ > 0."""
        rule = self._rule
        if rule.transport != "backprop":
            raise ConfigError(f"meta_gradient = 'implicit' needs updates that descend a loss (transport backprop), got "
                              f"transport {rule.transport!r}; use 'checkpointed'")
        if not rule.weight_decay > 0:
            raise ConfigError("meta_gradient = 'implicit' needs weight decay > 0 for a unique fixed point: pass e.g. "
                              "rule={'name': 'sgd', 'weight_decay': 0.01}")
        if self.batch_size is not None:
            raise ConfigError("meta_gradient = 'implicit' needs full-batch training (batch_size = None): minibatch "
                              "updates have no fixed point")

    def circuit_for(self, d: int) -> FunctionalCircuit:
        """The circuit used for inputs of dimension d (built from the spec on first use)."""
        if d not in self._circuits:
            if len(self._circuits) == 1 and not isinstance(self.circuit, Mapping):
                have = next(iter(self._circuits))
                raise ShapeError(f"the circuit takes inputs of dimension {have}, got x with d={d}")
            c = make_circuit(self.circuit, d, n_out=1)
            self._check_circuit(c)
            have = input_dim(c)
            if have != d:
                raise ShapeError(f"the circuit takes inputs of dimension {have}, got x with d={d}")
            self._circuits[d] = c
        return self._circuits[d]

    def _fixed_point_gradient(self, c: FunctionalCircuit) -> Callable:
        """``(θ, x, y, fixed) -> ∇θ Σ_e [MSE_e + λ‖θ_e‖²/2]``: the exact gradient the implicit estimator's fixed
        point zeroes (the circuit's ``loss_grads`` with a graph, plus the rule's weight decay ``λθ``)."""
        wd = self._rule.weight_decay

        def gradient(theta, x, y, fixed):
            g = c.loss_grads(theta, x, y, fixed or None, create_graph=True, with_loss=False)[0]
            return [gi + wd * p for gi, p in zip(g, theta, strict=True)]

        return gradient

    def _trainer(self, c: FunctionalCircuit, graph: bool) -> Trainer:
        """The dense fast path (MLP, plain GD); the circuit's own gradients under plain GD (every circuit but the
        layered ones, which keep their explicit backward pass); the rule's step otherwise."""
        plain = self._rule.transport == "backprop" and not self._rule.weight_decay
        if isinstance(c, MLP) and plain:
            return dense_gradient_descent(c, self._rule.optim, graph)
        if plain and not isinstance(c, Circuit):
            return circuit_gradient_descent(c, self._rule.optim, graph)
        return rule_trainer(c, self._rule, graph)

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
        return_fitted : also return a :class:`~learnscope.learners.unroll.Fitted` (initial and trained parameters,
            the members' fixed randomness, the final trainer state).
        Differentiable in ``y_train`` (and the inputs) through the unrolled training.
        """
        validate_fit_inputs(x_train, y_train, x_test)
        c = self.circuit_for(x_train.shape[2])
        draw = c.draw if self.init == "default" else _members(self.init)
        fixed_point = self._fixed_point_gradient(c) if self.meta_gradient == "implicit" else None
        pred, fitted = unroll(c, lambda graph: self._trainer(c, graph), draw, x_train, y_train, x_test, generator,
                              self.steps, self.batch_size, self._mg, fixed_point)
        return (pred, fitted) if return_fitted else pred

    # -------------------------------------------------------------- description
    def _describe_param(self, key: str, value: Any) -> Any:
        """A circuit object without ``describe()`` is described by its repr (and cannot be rebuilt)."""
        if key == "circuit" and not isinstance(value, (Mapping, list, tuple)):
            return value.describe() if callable(getattr(value, "describe", None)) else repr(value)
        return described(value)


# ---------------------------------------------------------------- presets

_META_ARGUMENTS = ("meta_gradient", "segment", "truncate", "cg_iters", "tol")
_TRAINING_ARGUMENTS = ("steps", "lr", "batch_size", "rule", *_META_ARGUMENTS)


def _circuit_arguments(preset: CircuitLearner) -> dict[str, Any]:
    """A preset's constructor arguments that go to its circuit: all of them but the training ones."""
    return {k: getattr(preset, k) for k in preset.param_names() if k not in _TRAINING_ARGUMENTS}


class MushroomBodyLearner(CircuitLearner):
    """The Fig 7 learner: a :class:`~learnscope.circuits.sparse.MushroomBody` trained by minibatch GD.

    Defaults are the notebook's: 5 inputs → 100 Kenyon cells (2 inputs each) → 1, t = 50 steps, η = 0.05,
    minibatches of 30 drawn with replacement. ``scheme``, ``positive``, ``probs``: see the circuit. A fresh mask
    and fresh weights per learner per call. ``n_inputs=None`` takes d from the data (the circuit, and any error in
    ``probs``, then comes at the first call). ``rule``: ``"sgd"`` (plain GD, the paper's) or a rule with plain SGD
    updates, e.g. ``"fa"`` (feedback alignment: the readout error reaches the Kenyon cells through a fixed random
    matrix), ``"ss"``, ``"kp"``.
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
        rule: str | Mapping[str, Any] = "sgd",
        meta_gradient: str = "full",
        segment: int | None = None,
        truncate: int | None = None,
        cg_iters: int = 100,
        tol: float = 1e-6,
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
        super().__init__({"circuit": "mushroom_body", **spec}, rule=rule, steps=steps, lr=lr, batch_size=batch_size,
                         meta_gradient=meta_gradient, segment=segment, truncate=truncate, cg_iters=cg_iters, tol=tol)


class SpikingLearner(CircuitLearner):
    """A :class:`~learnscope.circuits.spiking.SpikingLIF` network trained by plain GD through time (BPTT).

    bias-spec §3.1 reconstruction: N_h = 20 LIF neurons, current injection, time-averaged leaky readout, surrogate
    spike derivative; ``steps`` full-batch GD updates with rate ``lr``. Remaining keyword arguments go to
    :class:`SpikingLIF` (``t_sim``, ``encoding``, ``surrogate``, ``slope``, ``smooth``, ``input_gain``, …);
    the input dimension comes from the data. ``rule``: ``"sgd"`` (GD through time) or a rule with plain SGD
    updates, e.g. ``"fa"`` (the readout error enters the spiking layer through a fixed random matrix).
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
        rule: str = "sgd",
        meta_gradient: str = "full",
        segment: int | None = None,
        truncate: int | None = None,
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
        if meta_gradient == "implicit":
            raise ConfigError("meta_gradient = 'implicit' is not for the LIF network: its surrogate-gradient updates "
                              "do not descend a loss; use 'checkpointed'")
        spec = _circuit_arguments(self)
        SpikingLIF(**spec)  # validate now
        super().__init__({"circuit": "lif", **spec}, rule=rule, steps=steps, lr=lr, batch_size=batch_size,
                         meta_gradient=meta_gradient, segment=segment, truncate=truncate)



#: deprecated aliases (the names before issue 12), kept for one release: ``TrainedLearner`` is
#: :class:`CircuitLearner`, ``build_circuit`` is :func:`~learnscope.circuits.make_circuit` (``Trained`` is
#: :class:`~learnscope.learners.module_learner.ModuleLearner`, imported above)
TrainedLearner = CircuitLearner
build_circuit = make_circuit
