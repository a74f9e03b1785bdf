"""Learning rules = credit transport × optimiser, functional, batched over an ensemble axis, differentiable.

A :class:`Rule` turns a minibatch into one update of a circuit's parameters (and, for information alignment and
Kolen–Pollack, of the backward matrices B):

1. forward pass with records; output error ``e = ∂L/∂output`` of the summed per-member loss (autograd);
2. the transported parameter gradients: from the explicit backward pass :meth:`Circuit.backward` for a layered
   circuit (MLP, ConvNet), from the circuit's own ``loss_grads`` with the transport matrices for every other
   circuit of the protocol (:mod:`learnscope.circuits.protocol`: the mushroom body, the LIF network, ConvPool —
   backprop, feedback alignment, sign symmetry and Kolen–Pollack; information alignment and direct feedback
   alignment need a layered circuit's records); backward matrices from :mod:`~learnscope.plasticity.transports`;
3. L2 weight decay ``g += λθ`` on weights and biases (the ``λ‖θ‖²/2`` convention of TF's ``l2_regularizer``);
4. B's own gradient: ``∂R_IA/∂B`` (IA, :func:`~learnscope.plasticity.transports.ia_feedback_grad`) or
   ``g_Wᵀ + λ_KP B`` (KP, with ``λ_KP W`` also added to W's gradient, so ``B − Wᵀ`` decays like
   ``(1 − ηλ_KP)^t`` under sgd when ``weight_decay = 0``);
5. the optimiser update (:mod:`~learnscope.plasticity.optimisers`); B uses the same optimiser and learning
   rate as the parameters (identify-spec §2.3: alignment losses share the global optimiser).

With ``create_graph=True`` every step is built from differentiable torch ops on live tensors, so the derivative
of anything computed after a few steps with respect to the targets, the inputs or the initial parameters is the
true derivative of the training map (checked against finite differences in the tests). The "detach trick" of
:meth:`Circuit.forward` is *not* used here: it gives the right first-order gradients but wrong second
derivatives (it cuts ``∂g_W/∂x`` and reads ``T`` in place of ``W`` when later steps differentiate the values).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import Tensor

from learnscope.circuits.base import Circuit
from learnscope.circuits.protocol import Fixed, FunctionalCircuit
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.plasticity.optimisers import OPTIMISERS, Optimiser, State, scalar
from learnscope.plasticity.transports import (
    LEARNED_FEEDBACK,
    angle_between,
    check_transport,
    ia_feedback_grad,
    ia_normalise_mode,
    init_feedback,
    transport_matrices,
    transport_to_feedback,
)
from learnscope.validation import Interval, check_constraints

LossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "RULES",
    "Rule",
    "RuleState",
    "angle_between",
    "cross_entropy_loss",
    "make_rule",
    "mse_loss",
]


# ---------------------------------------------------------------- losses


def _check_out(out: Tensor) -> None:
    if not isinstance(out, Tensor) or out.ndim not in (2, 3):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ShapeError(f"out must have shape (N, k) or (E, N, k), got {got}")


def mse_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per ensemble member: ``mean_{n,k} (out − y)²``.

    out : ``(N, k)`` or ``(E, N, k)``. y : ``(N, k)`` or ``(E, N, k)``; with ``k = 1`` also ``(N,)`` / ``(E, N)``.
    Returns ``()`` or ``(E,)`` — ``torch.nn.functional.mse_loss`` of each member.
    """
    _check_out(out)
    if not isinstance(y, Tensor):
        raise ShapeError(f"y must be a torch.Tensor, got {type(y).__name__}")

    def fits(t: Tensor) -> bool:
        return t.shape == out.shape or (out.ndim == 3 and t.shape == out.shape[1:])

    if not fits(y) and out.shape[-1] == 1 and fits(y.unsqueeze(-1)):
        y = y.unsqueeze(-1)
    if not fits(y):
        raise ShapeError(f"y must have shape (N, k) or (E, N, k) matching out {tuple(out.shape)}, got {tuple(y.shape)}")
    sq = (out - y).pow(2)
    return sq.mean((-2, -1))


def cross_entropy_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean softmax cross-entropy per ensemble member.

    out : logits ``(N, k)`` or ``(E, N, k)``. y : integer class labels ``(N,)`` (shared) or ``(E, N)``.
    Returns ``()`` or ``(E,)`` — ``torch.nn.functional.cross_entropy`` of each member.
    """
    _check_out(out)
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.ndim == 0 or y.shape != out.shape[-1 - y.ndim : -1]:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ShapeError(f"y must be integer labels of shape {tuple(out.shape[:-1])} or (N,), got {got}")
    if out.ndim == 2:  # one network: the same op without the reshapes (and their autograd nodes)
        return F.cross_entropy(out, y.long(), reduction="none").mean(-1)
    y = y.expand(out.shape[:-1])
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1).long(), reduction="none")
    return ce.view(out.shape[:-1]).mean(-1)


# ---------------------------------------------------------------- state


def _map(ts: Sequence[Tensor | None], fn: Callable[[Tensor], Tensor]) -> tuple[Tensor | None, ...]:
    return tuple(None if t is None else fn(t) for t in ts)


def _map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    return {k: _map(v, fn) for k, v in state.items()}


def _requires_grad(params: Sequence[Tensor], state: RuleState) -> bool:
    """Whether any parameter or state tensor requires grad (only then does a step without a graph detach)."""
    if any(p.requires_grad for p in params):
        return True
    return any(t is not None and t.requires_grad
               for ts in (state.feedback, *state.opt.values(), *state.feedback_opt.values()) for t in ts)


@dataclass(frozen=True)
class RuleState:
    """What a rule carries between steps (all tensors with the parameters' ensemble axis, if any).

    feedback : one entry per weight layer: B (FA / IA / KP, spec layout ``(out, in)`` or the conv kernel shape),
        DFA's ``(n_out, units_l)`` matrices (``None`` for the output layer), or ``None`` (backprop, sign symmetry).
    opt : optimiser buffers of the parameters (``{"v": …}`` momentum, ``{"m": …, "v": …}`` adam, ``{}`` sgd).
    feedback_opt : optimiser buffers of the learned B (IA, KP), else ``{}``.
    step : number of updates done.
    """

    feedback: tuple[Tensor | None, ...]
    opt: State = field(default_factory=dict)
    feedback_opt: State = field(default_factory=dict)
    step: int = 0

    def detach(self) -> RuleState:
        """The same state with every tensor detached from its autograd graph."""
        return RuleState(
            _map(self.feedback, Tensor.detach),
            _map_state(self.opt, Tensor.detach),
            _map_state(self.feedback_opt, Tensor.detach),
            self.step,
        )


# RuleState is a pytree (feedback, opt, feedback_opt are the children; step the context), so one tree_map moves,
# detaches or concatenates a whole state.
pytree.register_pytree_node(
    RuleState,
    lambda s: ([s.feedback, s.opt, s.feedback_opt], s.step),
    lambda children, step: RuleState(*children, step=step),
    serialized_type_name="learnscope.plasticity.rules.RuleState",
)


# ---------------------------------------------------------------- the rule


# what each number of a Rule must be (one loop checks them, as scikit-learn's _parameter_constraints); the
# optimiser's own numbers (momentum, betas, eps) are checked by Optimiser
RULE_CONSTRAINTS = {
    "lr": Interval(float, 0.0, closed="neither"),
    **{key: Interval(float, 0.0) for key in ("weight_decay", "ia_alpha", "ia_beta", "ia_gamma", "kp_decay")},
}


@dataclass(frozen=True)
class Rule:
    """A learning rule: ``transport`` (:data:`~learnscope.plasticity.transports.TRANSPORTS`) × ``optimiser``.

    Parameters
    ----------
    transport : how errors travel backwards (see :mod:`learnscope.plasticity.transports`).
    optimiser : ``"sgd"``, ``"momentum"`` or ``"adam"``.
    lr : learning rate η > 0 (parameters and learned B alike).
    momentum : heavy-ball μ ∈ [0, 1).
    betas, eps : Adam's (β1, β2) and ε.
    weight_decay : L2 coefficient λ ≥ 0, ``g += λθ`` for weights and biases (never for B).
    ia_alpha, ia_beta, ia_gamma : IA coefficients α, β, γ of ``R_IA`` (defaults: Neural-Alignment's code
        defaults 2e-3, 1e-3, 1e-3, identify-spec §2.3).
    ia_normalise : IA stabiliser (default on): divide the amplitude and null terms by the batch mean
        ``E_n‖r_n‖²`` of the layer's forward projection, which makes the B update invariant to the activity scale
        and bounds the null curvature by 2β (see :func:`~learnscope.plasticity.transports.ia_feedback_grad`).
        ``False`` = the original code's loss; ``"weight"`` divides by ``E_n‖r_n‖² / ‖W‖²`` instead, which keeps the
        fixed point of B at the scale of Wᵀ (the tier grids use it, see their configs).
    kp_decay : Kolen–Pollack decay λ_KP ≥ 0 added as ``λ_KP θ`` to the gradients of both W and B (spec §2.4:
        α = 1e-3 on ``‖W‖² + ‖B‖²`` without ½ → λ_KP = 2e-3).
    name : a label (``make_rule`` sets the registry name).
    """

    transport: str
    optimiser: str
    lr: float
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    ia_alpha: float = 2e-3
    ia_beta: float = 1e-3
    ia_gamma: float = 1e-3
    ia_normalise: bool | str = True
    kp_decay: float = 2e-3
    name: str = "custom"

    def __post_init__(self) -> None:
        check_transport(self.transport)
        if self.optimiser not in OPTIMISERS:
            raise UnknownNameError("optimiser", self.optimiser, OPTIMISERS)
        check_constraints(vars(self), RULE_CONSTRAINTS)
        object.__setattr__(self, "betas", tuple(self.betas) if isinstance(self.betas, list) else self.betas)
        # built (and validated: momentum, betas, eps) once; not a field, so asdict / replace / eq ignore it
        object.__setattr__(self, "_optim", Optimiser(self.optimiser, self.lr, self.momentum, self.betas, self.eps))
        if not isinstance(self.ia_normalise, (bool, str)):
            raise ConfigError(f"ia_normalise must be True, False, 'activity' or 'weight', got {self.ia_normalise!r}")
        ia_normalise_mode(self.ia_normalise)

    @property
    def optim(self) -> Optimiser:
        """The :class:`Optimiser` of this rule."""
        return self._optim

    def describe(self) -> dict[str, Any]:
        """All fields as a JSON-able dict."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    # -------------------------------------------------------------- state
    def check_circuit(self, circuit: FunctionalCircuit) -> None:
        """:class:`ConfigError` unless this rule can train ``circuit``: information alignment needs a layered
        :class:`Circuit` (its layer records), direct feedback alignment a circuit with ``supports_dfa``."""
        if self.transport == "information_alignment" and not isinstance(circuit, Circuit):
            raise ConfigError(
                f"information alignment needs a layered circuit (MLP or ConvNet) for its layer records; "
                f"{type(circuit).__name__} trains with backprop, feedback alignment, sign symmetry or Kolen-Pollack"
            )
        if self.transport == "direct_feedback_alignment" and not getattr(circuit, "supports_dfa", False):
            raise ConfigError(
                f"direct_feedback_alignment is not available for {type(circuit).__name__} (MLP only); "
                "choose another transport"
            )

    def init_state(
        self, circuit: FunctionalCircuit, params: Sequence[Tensor], generator: torch.Generator
    ) -> RuleState:
        """Initial state: backward matrices drawn from ``generator`` (see ``transports.init_feedback``), zero
        optimiser buffers, ``step = 0``. A rule that cannot train the circuit raises :class:`ConfigError`
        (:meth:`check_circuit`)."""
        if not isinstance(generator, torch.Generator):
            raise ConfigError("generator must be a torch.Generator (explicit seeding, no global RNG)")
        self.check_circuit(circuit)
        circuit.ensemble_size(params)
        fb = init_feedback(self.transport, circuit, params, generator)
        opt = self.optim.init_state(params)
        fb_opt = self.optim.init_state(fb) if self.transport in LEARNED_FEEDBACK else {}
        return RuleState(tuple(fb), opt, fb_opt, 0)

    def feedback(self, state: RuleState, params: Sequence[Tensor] | None = None) -> list[Tensor | None]:
        """The backward matrix of each weight layer in spec layout (``(out, in)`` dense, kernel shape conv).

        FA / IA / KP: the stored B. DFA: the ``(n_out, units_l)`` matrices of the hidden layers and ``None`` for
        the output layer (they map the output error, so they are not comparable with ``Wᵀ``). Sign symmetry:
        ``sign(W)`` in B layout, computed from ``params`` (``None`` entries without them). Backprop: ``None``
        (the backward matrix is ``Wᵀ`` itself).
        """
        if self.transport == "sign_symmetry" and params is not None:
            return [_weight_transpose(torch.sign(W)) for W in params[::2]]
        return list(state.feedback)

    # -------------------------------------------------------------- one update
    def step(
        self,
        circuit: FunctionalCircuit,
        params: Sequence[Tensor],
        state: RuleState,
        x: Tensor,
        y: Tensor,
        loss_fn: LossFn,
        *,
        fixed: Fixed | None = None,
        create_graph: bool = False,
    ) -> tuple[list[Tensor], RuleState, dict[str, Tensor]]:
        """One update on a minibatch ``(x, y)``.

        circuit : any circuit of the protocol (:mod:`learnscope.circuits.protocol`); a layered :class:`Circuit`
            goes through its explicit backward pass, any other through its ``loss_grads`` with the transports.
        params : ``[W1, b1, …]`` (optional ensemble axis E for a layered circuit, required otherwise).
        state : from :meth:`init_state` or a previous step.
        x : ``(N, *in_shape)`` or ``(E, N, *in_shape)``. y : whatever ``loss_fn`` takes.
        fixed : the members' fixed randomness for the rows of x (``Members.fixed`` plus ``draw_per_point`` rows).
        loss_fn : ``loss_fn(output, y)`` → per-member loss ``(E,)`` (or a scalar); it receives the output in the
            parameters' form (``(N, k)`` without an ensemble axis, ``(E, N, k)`` with one), e.g. :func:`mse_loss`.
        create_graph : keep the autograd graph through the update (for meta-gradients). ``False`` detaches
            everything and runs the update without a graph.

        Returns ``(new_params, new_state, {"loss": per-member loss before the update, detached})``; the inputs are
        not modified.
        """
        if not isinstance(circuit, Circuit):
            return self._autograd_step(circuit, params, state, x, y, loss_fn, fixed, create_graph)
        circuit._check_fixed(fixed)
        E = circuit.ensemble_size(params)
        squeeze = E is None
        if not isinstance(state, RuleState) or len(state.feedback) != circuit.n_layers:
            raise ConfigError("state must be the RuleState returned by init_state/step for this circuit")
        if not create_graph and _requires_grad(params, state):
            params = [p.detach() for p in params]
            state = state.detach()
        ctx = torch.enable_grad if create_graph else torch.no_grad

        # the circuit works in ensemble form (E = 1 for one network); the decay terms and the optimiser are
        # element-wise, so they run on the parameters and buffers in the form they came in (no round trip of the
        # state through unsqueeze / squeeze)
        with ctx():
            P = [p.unsqueeze(0) for p in params] if squeeze else list(params)
            fb = [None if B is None else B.unsqueeze(0) for B in state.feedback] if squeeze else list(state.feedback)
            out, records = circuit.forward(P, x, record=True)
        graph = create_graph and out.requires_grad
        # without a graph the loss sees a leaf in the parameters' form (no squeeze node), and a scalar loss is
        # differentiated as it is (no sum node): the same backward ops, so the same δ
        o = out if graph else (out.squeeze(0) if squeeze else out).detach().requires_grad_()
        with torch.enable_grad():
            loss = loss_fn(o.squeeze(0) if graph and squeeze else o, y)
            if not isinstance(loss, Tensor) or loss.shape not in ((), (1,) if squeeze else (E,)):
                got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ShapeError(f"loss_fn must return a scalar or one loss per ensemble member, got {got}")
            (delta,) = torch.autograd.grad(loss if loss.ndim == 0 else loss.sum(), o, create_graph=create_graph)

        with ctx():
            if not graph and squeeze:
                delta = delta.unsqueeze(0)
            grads = self._param_grads(circuit, P, fb, records, delta)
            fb_grads = self._feedback_grads(circuit, P, fb, records, grads)
            if squeeze:
                grads = [g.squeeze(0) for g in grads]
                fb_grads = None if fb_grads is None else [None if g is None else g.squeeze(0) for g in fb_grads]
            t = state.step + 1
            new_params, fb, opt, fb_opt = self._update(list(params), list(state.feedback), grads, fb_grads,
                                                       state.opt, state.feedback_opt, t)
        return new_params, RuleState(tuple(fb), opt, fb_opt, t), {"loss": loss.detach()}

    def _autograd_step(self, circuit: FunctionalCircuit, params: Sequence[Tensor], state: RuleState, x: Tensor,
                       y: Tensor, loss_fn: LossFn, fixed: Fixed | None, create_graph: bool):
        """:meth:`step` for a circuit without an explicit backward pass: ``circuit.loss_grads`` with the transport
        matrices (exact to every order), then the same decay terms and optimiser."""
        self.check_circuit(circuit)
        circuit.ensemble_size(params)
        if not isinstance(state, RuleState) or len(state.feedback) != len(circuit.layers):
            raise ConfigError("state must be the RuleState returned by init_state/step for this circuit")
        if not create_graph:
            params = [p.detach() for p in params]
            state = state.detach()
        fb = list(state.feedback)
        T = transport_matrices(self.transport, circuit, params, fb)
        grads, loss = circuit.loss_grads(params, x, y, fixed, transport=T, loss_fn=None if loss_fn is mse_loss
                                         else loss_fn, create_graph=create_graph)
        ctx = torch.enable_grad if create_graph else torch.no_grad
        with ctx():
            fb_grads = None
            if self.transport == "kolen_pollack":
                fb_grads = [transport_to_feedback(layer, grads[2 * layer.index]) + self.kp_decay * B
                            for layer, B in zip(circuit.layers, fb, strict=True)]
            t = state.step + 1
            new_P, fb, opt, fb_opt = self._update(list(params), fb, grads, fb_grads, state.opt, state.feedback_opt, t)
        if not create_graph:
            new_P = [p.detach() for p in new_P]
        return new_P, RuleState(tuple(fb), opt, fb_opt, t), {"loss": loss}

    def _update(self, P: list[Tensor], fb: list, grads: list[Tensor], fb_grads: list[Tensor] | None, opt: State,
                fb_opt: State, t: int):
        """Weight decay and the Kolen–Pollack decay on the gradients, then the optimiser step of the parameters
        and (learned transports) of B: ``(new_params, new_feedback, opt, feedback_opt)``."""
        if self.weight_decay:
            # g + λθ; without a graph as two foreach calls over all tensors (the same mul and add, bit-identical)
            graph = torch.is_grad_enabled() and any(t.requires_grad for t in (*grads, *P))
            grads = ([g + self.weight_decay * p for g, p in zip(grads, P, strict=True)] if graph
                     else _foreach_weight_decay(list(grads), list(P), self.weight_decay))
        if self.transport == "kolen_pollack" and self.kp_decay:
            grads = [g + self.kp_decay * p if i % 2 == 0 else g for i, (g, p) in enumerate(zip(grads, P, strict=True))]
        new_P, opt = self.optim.update(P, grads, opt, t)
        if fb_grads is not None:
            fb, fb_opt = self.optim.update(fb, fb_grads, fb_opt, t)
        return new_P, fb, opt, fb_opt

    def _param_grads(self, circuit: Circuit, P: list[Tensor], fb: list, records, delta: Tensor) -> list[Tensor]:
        if self.transport == "direct_feedback_alignment":
            return circuit.backward(P, records, delta, feedback=fb)
        T = transport_matrices(self.transport, circuit, P, fb)
        return circuit.backward(P, records, delta, transport=T)

    def _feedback_grads(self, circuit: Circuit, P: list[Tensor], fb: list, records, grads: list[Tensor]):
        if self.transport == "kolen_pollack":
            return [
                transport_to_feedback(layer, grads[2 * layer.index]) + self.kp_decay * B
                for layer, B in zip(circuit.layers, fb, strict=True)
            ]
        if self.transport == "information_alignment":
            return [
                ia_feedback_grad(
                    circuit,
                    layer.index,
                    records[layer.index]["input"],
                    P[2 * layer.index],
                    P[2 * layer.index + 1],
                    B,
                    self.ia_alpha,
                    self.ia_beta,
                    self.ia_gamma,
                    self.ia_normalise,
                    pre=records[layer.index]["pre"],
                )
                for layer, B in zip(circuit.layers, fb, strict=True)
            ]
        return None


def _foreach_weight_decay(grads: list[Tensor], P: list[Tensor], decay: float) -> list[Tensor]:
    """``[g + λθ]`` without a graph: ``mul(θ, λ)`` then ``add`` over all tensors at once (the list path's ops;
    ``λθ + g`` into the fresh ``λθ`` is ``g + λθ``, IEEE addition commutes), the list path for mixed dtypes."""
    dtype, device = P[0].dtype, P[0].device
    if any(t.dtype != dtype or t.device != device for t in (*grads, *P)):
        return [g + decay * p for g, p in zip(grads, P, strict=True)]
    out = torch._foreach_mul(P, scalar(decay, dtype, device))
    try:
        torch._foreach_add_(out, grads)
    except RuntimeError:  # a gradient the in-place add cannot take (it would broadcast λθ to a larger shape)
        return [g + decay * p for g, p in zip(grads, P, strict=True)]
    return out


def _weight_transpose(W: Tensor) -> Tensor:
    """``Wᵀ`` of a dense weight (2-D, or 3-D with an ensemble axis); a conv kernel unchanged (spec B layout)."""
    return W.transpose(-1, -2) if W.ndim in (2, 3) else W


# ---------------------------------------------------------------- registry

RULES: dict[str, Rule] = {
    "sgdm": Rule("backprop", "momentum", 0.01, name="sgdm"),
    "adam": Rule("backprop", "adam", 1e-3, name="adam"),
    "fa": Rule("feedback_alignment", "momentum", 0.01, name="fa"),
    "ia": Rule("information_alignment", "momentum", 0.01, name="ia"),
    "ss": Rule("sign_symmetry", "momentum", 0.01, name="ss"),
    "kp": Rule("kolen_pollack", "momentum", 0.01, name="kp"),
    "dfa": Rule("direct_feedback_alignment", "momentum", 0.01, name="dfa"),
    "sgd": Rule("backprop", "sgd", 0.01, name="sgd"),
}
"""The named rules: backprop with momentum (``sgdm``), Adam, plain SGD, and the momentum rules with feedback
alignment (``fa``), information alignment (``ia``), sign symmetry (``ss``), Kolen–Pollack (``kp``) and direct
feedback alignment (``dfa``). Learning rates are starting points (0.01 momentum / sgd, 1e-3 Adam), not tuned."""

_FIELDS = tuple(f.name for f in dataclasses.fields(Rule))


def make_rule(spec: str | Mapping[str, Any] | Rule, **overrides: Any) -> Rule:
    """A :class:`Rule` from a registry name, a dict ``{"name": …, <field>: …}`` or a Rule, with overrides.

    >>> make_rule("fa").transport
    'feedback_alignment'
    >>> make_rule({"name": "ia", "lr": 0.05}, ia_beta=5e-3).ia_beta
    0.005

    Unknown names or fields raise :class:`~learnscope.errors.UnknownNameError` (with the nearest valid one);
    invalid values (``lr ≤ 0``, momentum outside [0, 1), …) raise :class:`~learnscope.errors.ConfigError`.
    """
    if isinstance(spec, Rule):
        base, opts = spec, {}
    elif isinstance(spec, str):
        if spec not in RULES:
            raise UnknownNameError("rule", spec, RULES)
        base, opts = RULES[spec], {}
    elif isinstance(spec, Mapping):
        opts = dict(spec)
        if "name" not in opts:
            raise ConfigError(f"a rule dict needs a 'name' key (one of {', '.join(RULES)}), got keys {sorted(opts)}")
        name = opts.pop("name")
        if name not in RULES:
            raise UnknownNameError("rule", name, RULES)
        base = RULES[name]
    else:
        raise ConfigError(f"a rule is a name, a dict with 'name' or a Rule, got {type(spec).__name__}")
    opts.update(overrides)
    for key in opts:
        if key not in _FIELDS:
            raise UnknownNameError("rule option", key, [f for f in _FIELDS if f != "name"])
    return dataclasses.replace(base, **opts)
