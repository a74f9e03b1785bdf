"""Layered circuits: weight layers with an explicit, exact backward pass and per-layer records.

:class:`Circuit` (:class:`~learnscope.circuits.MLP`, :class:`~learnscope.circuits.ConvNet`) follows the one
circuit protocol of :mod:`learnscope.circuits.protocol` (``draw``, ``forward``, ``loss_grads``) and adds what
the identify half and the records-based rules (information alignment, direct feedback alignment) need: the
records of every layer, :meth:`Circuit.layer_forward` and :meth:`Circuit.backward`. A layered circuit knows its
weight layers (:class:`LayerInfo`) and maps parameters and inputs to outputs with pure functions. Parameters are
a flat list ``[W1, b1, W2, b2, …]``; every tensor either has exactly the layer's shape (one network) or an extra
leading axis ``E`` (an *ensemble* of E independent networks trained in one batched call). Layouts:

- dense weight ``W``: shape ``(in, out)``, pre-activation ``a = x W + b`` (the TF convention of
  identify-spec §2), bias shape ``(out,)``;
- conv weight ``W``: shape ``(c_out, c_in, kh, kw)`` (torch), stride 1, zero "same" padding, bias ``(c_out,)``.

How errors travel backwards through a weight layer is a *transport matrix* ``T`` of ``W``'s shape:

.. math::

    \\delta_x = \\delta_a T^\\top \\;(\\text{dense}), \\qquad
    \\delta_x = \\mathrm{conv\\_transpose2d}(\\delta_a, T) \\;(\\text{conv}),

with ``T = W`` for backprop, ``T = Bᵀ`` (dense; ``B`` stored ``(out, in)``) or ``T = B`` (conv) for feedback
alignment and its learned variants, ``T = sign(W)`` for sign symmetry. Direct feedback alignment instead
sends the output error ``e = ∂L/∂output`` straight to hidden layer ``l`` through a fixed ``(n_out, units_l)``
matrix ``B_l``: ``∂L/∂h_l = e B_l``.

There are two ways to get the resulting parameter updates:

- :meth:`Circuit.backward` — the explicit backward pass (``δ`` recursion written with ordinary torch ops on
  the recorded forward pass). It is **exact to every order**: when its inputs carry an autograd graph the
  returned gradients are differentiable functions of the parameters, the inputs and the targets, so the
  derivative of a whole training run (``create_graph=True`` in :mod:`learnscope.plasticity`) is the true one.
- :meth:`Circuit.forward` with ``transport`` / ``feedback`` — the "detach trick" (values unchanged, first-order
  autograd follows ``T``):

  .. math::

      a = \\mathrm{lin}(\\bar x, W) + z - \\bar z + b, \\qquad z = \\mathrm{lin}(x, T),

  where a bar is ``detach``. ``torch.autograd.grad`` through it gives the transported first-order gradients
  (used for B-based Jacobians of observables), but second derivatives through it are **not** those of the
  update map (``∂g_W/∂x`` is cut by ``x̄`` and ``∂a/∂x`` reads ``T`` instead of ``W``), so the learning rules
  use :meth:`Circuit.backward`.

Records (``record=True``) are one dict per weight layer:

- ``"input"``: the layer input (for a dense layer after a conv stack: flattened, ``(…, N, features)``);
- ``"pre"``: the pre-activation ``a``;
- ``"output"``: the observed activation — post-activation (and post-pooling for conv layers, i.e. exactly the
  next layer's input before flattening) for hidden layers, the raw output for the last layer;
- ``"pool_indices"`` (conv layers only): the max-pool argmax indices, used by :meth:`Circuit.backward`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from learnscope.circuits.protocol import (  # noqa: F401 (re-exported: the shared primitives' old home)
    Fixed,
    LossFn,
    Members,
    Transport,
    check_member_inputs,
    default_uniform_init,
    init_layers,
    member_mse,
    uniform,
)
from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int, check_scalar

GROUPS = ("early", "middle", "deep")

Records = list[dict[str, Tensor]]


@dataclass(frozen=True)
class LayerInfo:
    """One weight layer of a circuit.

    name : ``"fc1"``, ``"conv1"``, … (1-based, in forward order).
    kind : ``"dense"`` (weight ``(in, out)``) or ``"conv"`` (weight ``(c_out, c_in, kh, kw)``).
    index : 0-based position among the circuit's weight layers.
    group : ``"early"`` / ``"middle"`` / ``"deep"`` from :func:`group_layers`.
    weight_shape : the weight's shape without an ensemble axis.
    """

    name: str
    kind: str
    index: int
    group: str
    weight_shape: tuple[int, ...]

    @property
    def fan_in(self) -> int:
        """Inputs per output unit: ``in`` (dense) or ``c_in·kh·kw`` (conv)."""
        if self.kind == "dense":
            return self.weight_shape[0]
        return math.prod(self.weight_shape[1:])

    @property
    def bias_shape(self) -> tuple[int]:
        """``(out,)`` (dense) or ``(c_out,)`` (conv)."""
        return (self.weight_shape[1],) if self.kind == "dense" else (self.weight_shape[0],)

    @property
    def feedback_shape(self) -> tuple[int, ...]:
        """Shape of the feedback matrix B of identify-spec §2.2: ``(out, in)`` (dense), ``W``'s shape (conv)."""
        if self.kind == "dense":
            return (self.weight_shape[1], self.weight_shape[0])
        return self.weight_shape


def group_layers(n_layers: int) -> list[str]:
    """Early / middle / deep label of each of ``n_layers`` weight layers (identify-spec §3.3).

    With ``g = n_layers // 3``: layers ``[0, g)`` are early, ``[g, 2g)`` middle, the rest deep (so the remainder
    goes to deep: 4 → early, middle, deep, deep; 22 → 7, 7, 8).

    >>> group_layers(5)
    ['early', 'middle', 'deep', 'deep', 'deep']
    """
    n = check_positive_int("n_layers", n_layers)
    g = n // 3
    return ["early" if i < g else "middle" if i < 2 * g else "deep" for i in range(n)]


def dual(z: Tensor) -> Tensor:
    """``z - z.detach()``: value exactly 0, first-order gradient that of ``z`` (the detach trick)."""
    return z - z.detach()


class Circuit:
    """Base class of functional circuits; subclasses define the layer primitives (all in ensemble form).

    Attributes
    ----------
    layers : the weight layers, in forward order.
    n_out : output size.
    in_shape : shape of one input example, e.g. ``(d,)`` or ``(C, H, W)``.
    supports_dfa : whether direct feedback alignment (``feedback=``) is available.

    Every public method accepts parameters with or without the ensemble axis and answers in the same form.
    """

    layers: list[LayerInfo]
    n_out: int
    in_shape: tuple[int, ...]
    supports_dfa: bool = False

    # ------------------------------------------------------------------ layer primitives (ensemble form)
    def linear(self, index: int, x: Tensor, W: Tensor) -> Tensor:
        """``lin(x, W)`` of layer ``index`` without bias; ensemble form ``x (E, N, …)``, ``W (E, *weight_shape)``."""
        raise NotImplementedError

    def affine(self, index: int, x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        """``lin(x, W) + b`` (ensemble form)."""
        raise NotImplementedError

    def linear_adjoint(self, index: int, delta: Tensor, T: Tensor) -> Tensor:
        """``δ_x`` for an error ``δ`` at the pre-activation sent back through ``T`` (ensemble form)."""
        raise NotImplementedError

    def linear_weight_grad(self, index: int, x: Tensor, delta: Tensor) -> Tensor:
        """``∂⟨lin(x, W), δ⟩/∂W`` — dense ``xᵀδ`` per member, shape ``(E, *weight_shape)`` (ensemble form)."""
        raise NotImplementedError

    def bias_grad(self, index: int, delta: Tensor) -> Tensor:
        """``∂⟨a, δ⟩/∂b``: ``δ`` summed over the batch (and space), shape ``(E, *bias_shape)``."""
        raise NotImplementedError

    def _post(self, index: int, a: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Activation (and pooling) after layer ``index``; the raw output for the last layer."""
        raise NotImplementedError

    def _post_vjp(self, index: int, record: dict[str, Tensor], delta_h: Tensor) -> Tensor:
        """Error at layer ``index``'s output (record["output"] shape) → error at its pre-activation."""
        raise NotImplementedError

    def _prepare_input(self, index: int, h: Tensor) -> Tensor:
        """Previous layer's output → this layer's input (e.g. flatten before a dense layer)."""
        return h

    # ------------------------------------------------------------------ shapes and ensembles
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of ``[W1, b1, W2, b2, …]`` without the ensemble axis."""
        out: list[tuple[int, ...]] = []
        for layer in self.layers:
            out += [layer.weight_shape, layer.bias_shape]
        return out

    def ensemble_size(self, params: Sequence[Tensor]) -> int | None:
        """``E`` if the parameters carry a leading ensemble axis, ``None`` if not; :class:`ShapeError` if unusable."""
        shapes = self.param_shapes()
        if not isinstance(params, (list, tuple)) or len(params) != len(shapes):
            got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise ShapeError(f"params must be a list of {len(shapes)} tensors [W1, b1, …], got {got}")
        first = params[0]
        if not isinstance(first, Tensor):
            raise ShapeError(f"params must be tensors, got {type(first).__name__}")
        E = None if tuple(first.shape) == shapes[0] else (first.shape[0] if first.ndim == len(shapes[0]) + 1 else -1)
        for i, (p, s) in enumerate(zip(params, shapes, strict=True)):
            want = s if E is None else (E, *s)
            if not isinstance(p, Tensor) or tuple(p.shape) != want:
                got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
                raise ShapeError(f"params[{i}] must have shape {s} or (E, *{s}) with one E for all tensors, got {got}")
        return E

    def _ensemble_form(self, params: Sequence[Tensor]) -> tuple[list[Tensor], int, bool]:
        E = self.ensemble_size(params)
        if E is None:
            return [p.unsqueeze(0) for p in params], 1, True
        return list(params), E, False

    def _check_input(self, x: Tensor, E: int, squeeze: bool, dtype: torch.dtype) -> Tensor:
        if not isinstance(x, Tensor):
            raise ShapeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        k = len(self.in_shape)
        ok_plain = x.ndim == k + 1 and tuple(x.shape[1:]) == self.in_shape
        ok_ens = (not squeeze) and x.ndim == k + 2 and x.shape[0] == E and tuple(x.shape[2:]) == self.in_shape
        if not (ok_plain or ok_ens):
            lay = "(N, *in_shape)" if squeeze else "(N, *in_shape) or (E, N, *in_shape)"
            raise ShapeError(f"x must have shape {lay} with in_shape={self.in_shape}, E={E}; got {tuple(x.shape)}")
        x = x.to(dtype)
        return x.unsqueeze(0).expand(E, *x.shape) if ok_plain else x

    def _check_transport(self, transport: Sequence[Tensor | None] | None, P: list[Tensor], squeeze: bool):
        if transport is None:
            return [None] * self.n_layers
        if not isinstance(transport, (list, tuple)) or len(transport) != self.n_layers:
            raise ShapeError(f"transport must be a list of {self.n_layers} tensors or None (one per weight layer)")
        out: list[Tensor | None] = []
        for layer, T in zip(self.layers, transport, strict=True):
            if T is None:
                out.append(None)
                continue
            T = T.unsqueeze(0) if squeeze else T
            W = P[2 * layer.index]
            if T.shape != W.shape:
                raise ShapeError(
                    f"transport[{layer.index}] ({layer.name}) must have the weight's shape {tuple(W.shape[1:])}"
                    f"{'' if squeeze else ' with the ensemble axis'}, got {tuple(T.shape)}"
                )
            out.append(T)
        return out

    def output_units(self, index: int) -> int:
        """Number of units of layer ``index``'s recorded output (flattened)."""
        raise NotImplementedError

    def _check_feedback(self, feedback: Sequence[Tensor | None] | None, E: int, squeeze: bool):
        if feedback is None:
            return None
        if not self.supports_dfa:
            raise ConfigError(
                f"direct feedback alignment is not available for {type(self).__name__}; use an MLP or another transport"
            )
        L = self.n_layers
        if not isinstance(feedback, (list, tuple)) or len(feedback) not in (L - 1, L):
            raise ShapeError(f"feedback must be a list of {L - 1} (hidden layers) or {L} tensors (last one None)")
        if len(feedback) == L and feedback[-1] is not None:
            raise ShapeError("feedback[-1] must be None: the output layer receives the output error directly")
        out = []
        for i in range(L - 1):
            B = feedback[i]
            want = (self.n_out, self.output_units(i))
            if not isinstance(B, Tensor):
                raise ShapeError(f"feedback[{i}] must be a tensor of shape {want}")
            B = B.unsqueeze(0) if squeeze else B
            if tuple(B.shape) != (E, *want):
                raise ShapeError(
                    f"feedback[{i}] must have shape {want} (with ensemble axis E={E}), got {tuple(B.shape)}"
                )
            out.append(B)
        return out

    # ------------------------------------------------------------------ public API
    def init_params(
        self, generator: torch.Generator, ensemble: int | None = None, dtype: torch.dtype = torch.float32
    ) -> list[Tensor]:
        """PyTorch's default initialisation (:func:`~learnscope.circuits.protocol.init_layers`):
        ``W, b ~ U(±1/√fan_in)``, drawn in order W1, b1, W2, b2, ….

        ensemble : ``None`` for one network, ``E`` for E independent draws (every tensor gets a leading E axis).
        With ``ensemble=1`` the values equal those of ``ensemble=None`` for the same generator state.
        """
        return init_layers(self.layers, generator, ensemble, dtype)

    def draw(self, generator: torch.Generator, ensemble: int | None = None,
             dtype: torch.dtype = torch.float32) -> Members:
        """The protocol's draw: ``Members(init_params(generator, ensemble, dtype), {})`` (no fixed randomness)."""
        return Members(self.init_params(generator, ensemble, dtype), {})

    def draw_per_point(self, generator: torch.Generator, ensemble: int, n_points: int,
                       dtype: torch.dtype = torch.float32) -> Fixed:
        """No per-point randomness: ``{}`` (nothing is drawn)."""
        return {}

    def loss_grads(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        y: Tensor,
        fixed: Fixed | None = None,
        *,
        transport: Transport = None,
        loss_fn: LossFn | None = None,
        create_graph: bool = False,
        with_loss: bool = True,
    ) -> tuple[list[Tensor], Tensor | None]:
        """The protocol's gradients through the explicit backward pass: ``(grads, per-member loss)``.

        The output error ``e = ∂(Σ_e loss_e)/∂output`` comes from autograd on the loss alone, the parameter
        gradients from :meth:`backward` with ``transport`` (``loss_fn`` ``None``: :func:`member_mse`). Exact to
        every order with ``create_graph``.
        """
        self._check_fixed(fixed)
        loss_fn = member_mse if loss_fn is None else loss_fn
        ctx = torch.enable_grad if create_graph else torch.no_grad
        with ctx():
            out, records = self.forward(params, x, record=True)
        o = out if (create_graph and out.requires_grad) else out.detach().requires_grad_()
        with torch.enable_grad():
            loss = loss_fn(o, y)
            (delta,) = torch.autograd.grad(loss.sum(), o, create_graph=create_graph)
        with ctx():
            grads = self.backward(params, records, delta, transport=transport)
        return grads, loss.detach() if with_loss else None

    def _check_fixed(self, fixed: Fixed | None) -> None:
        if fixed:
            raise ConfigError(f"{type(self).__name__} has no fixed randomness; got fixed entries {sorted(fixed)}")

    def forward(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        fixed: Fixed | None = None,
        *,
        transport: Sequence[Tensor | None] | None = None,
        feedback: Sequence[Tensor | None] | None = None,
        record: bool = False,
    ) -> Tensor | tuple[Tensor, Records]:
        """Run the circuit.

        params : ``[W1, b1, …]``, optionally with a leading ensemble axis E.
        x : ``(N, *in_shape)``; with an ensemble also ``(E, N, *in_shape)`` (``(N, …)`` is shared by all members).
        fixed : the protocol's fixed randomness; these circuits have none (``None`` or ``{}``).
        transport : ``None`` or one entry per weight layer, ``None`` (use W) or a tensor ``T`` of W's shape: the
            first-order gradient w.r.t. the layer input is sent back through ``T`` (detach trick, see module doc).
        feedback : direct feedback alignment (circuits with ``supports_dfa``): one ``(n_out, units_l)`` matrix
            ``B_l`` per hidden layer (a trailing ``None`` for the output layer is accepted). Hidden outputs are
            detached before the next layer and ``Σ_l dual(h_l B_lᵀ)`` is added to the output, so the value is
            unchanged and ``∂L/∂h_l = e B_l``. Cannot be combined with ``transport``.
        record : also return the per-layer records (module doc).

        Returns the output ``(N, n_out)`` / ``(E, N, n_out)``, and the records if ``record``.
        """
        self._check_fixed(fixed)
        P, E, squeeze = self._ensemble_form(params)
        h = self._check_input(x, E, squeeze, P[0].dtype)
        T = self._check_transport(transport, P, squeeze)
        C = self._check_feedback(feedback, E, squeeze)
        if C is not None and any(t is not None for t in T):
            raise ConfigError("pass either transport (per-layer backward weights) or feedback (DFA), not both")
        records: Records = []
        dfa_terms = []
        for layer in self.layers:
            i = layer.index
            h = self._prepare_input(i, h)
            W, b = P[2 * i], P[2 * i + 1]
            if T[i] is None:
                a = self.affine(i, h, W, b)
            else:
                a = self.affine(i, h.detach(), W, b) + dual(self.linear(i, h, T[i]))
            out, extra = self._post(i, a)
            if record:
                records.append({"input": h, "pre": a, "output": out, **extra})
            if C is not None and i < self.n_layers - 1:
                dfa_terms.append(dual(torch.matmul(out.flatten(2), C[i].transpose(-1, -2))))
                out = out.detach()
            h = out
        for z in dfa_terms:
            h = h + z
        if squeeze:
            h = h.squeeze(0)
            records = [{k: v.squeeze(0) for k, v in r.items()} for r in records]
        return (h, records) if record else h

    def layer_forward(
        self,
        params: Sequence[Tensor],
        index: int,
        x_in: Tensor,
        *,
        transport: Sequence[Tensor | None] | None = None,
        feedback: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """The map from layer ``index``'s input to its recorded output (activation and pooling included).

        x_in : the layer input as recorded (``records[index]["input"]``), ``(N, …)`` or ``(E, N, …)``.
        transport : as in :meth:`forward` (only entry ``index`` is used): the first-order Jacobian w.r.t.
            ``x_in`` then goes through ``T`` — the "as_original" B-based activity change of identify-spec §4.3.
        feedback : accepted for symmetry with :meth:`forward` and ignored: DFA has no path inside one layer.
        """
        index = check_scalar("index", index, int, 0, self.n_layers, closed="left", note="a layer index")
        P, E, squeeze = self._ensemble_form(params)
        T = self._check_transport(transport, P, squeeze)[index]
        W, b = P[2 * index], P[2 * index + 1]
        layer = self.layers[index]
        d = 1 if layer.kind == "dense" else 3
        if not isinstance(x_in, Tensor):
            raise ShapeError(f"x_in must be a torch.Tensor, got {type(x_in).__name__}")
        x = x_in.to(W.dtype)
        if x.ndim == d + 1:
            x = x.unsqueeze(0).expand(E, *x.shape)
        channels = layer.weight_shape[0] if layer.kind == "dense" else layer.weight_shape[1]
        if x.ndim != d + 2 or x.shape[0] != E or x.shape[-d] != channels:
            lay = "(N, in)" if d == 1 else "(N, c_in, H, W)"
            raise ShapeError(
                f"x_in must be a batch {lay} (or with a leading E={E}) for layer {layer.name} "
                f"with {'in' if d == 1 else 'c_in'}={channels}, got {tuple(x_in.shape)}"
            )
        if T is None:
            a = self.affine(index, x, W, b)
        else:
            a = self.affine(index, x.detach(), W, b) + dual(self.linear(index, x, T))
        out, _ = self._post(index, a)
        return out.squeeze(0) if squeeze else out

    def backward(
        self,
        params: Sequence[Tensor],
        records: Records,
        delta_out: Tensor,
        *,
        transport: Sequence[Tensor | None] | None = None,
        feedback: Sequence[Tensor | None] | None = None,
    ) -> list[Tensor]:
        """Explicit backward pass: parameter updates from the output error, exact to every order.

        .. math::

            g_{W_l} = \\partial\\langle \\mathrm{lin}(h_{l-1}, W_l), \\delta_l\\rangle/\\partial W_l
            \\;(= h_{l-1}^\\top\\delta_l),\\quad g_{b_l} = \\textstyle\\sum_n \\delta_l,\\quad
            \\delta_{l-1} = \\mathrm{post}'_{l-1}\\big(\\mathrm{adj}(\\delta_l, T_l)\\big)

        with ``δ_L = delta_out`` and, for DFA, ``δ_{l} = post'_l(e B_l)`` for every hidden layer.

        params : as in :meth:`forward`.
        records : ``forward(params, x, record=True)[1]`` (same ensemble form).
        delta_out : ``∂L/∂output``, the output's shape.
        transport, feedback : as in :meth:`forward`.

        Returns ``[g_W1, g_b1, …]`` in the parameters' form. Everything is ordinary torch ops on the inputs, so
        the result carries an autograd graph exactly when they do.

        This recursion exists a second time, on purpose: ``dense_mse_grads`` in :mod:`learnscope.learners.unroll`
        is the same pass specialised to an MLP trained by backprop on the MSE (biases kept ``(E, 1, out)``, one
        ``threshold_backward`` per ReLU), a measured speed path of the bias search's inner loop (3-20-20-1 MLP,
        100 steps plus the meta-gradient: 148 ms there vs 200 ms through :meth:`Rule.step` and this method).
        ``tests/core/test_trained_learners.py`` checks that path against autograd and finite differences; change both.
        """
        P, E, squeeze = self._ensemble_form(params)
        T = self._check_transport(transport, P, squeeze)
        C = self._check_feedback(feedback, E, squeeze)
        if C is not None and any(t is not None for t in T):
            raise ConfigError("pass either transport (per-layer backward weights) or feedback (DFA), not both")
        if not isinstance(records, (list, tuple)) or len(records) != self.n_layers:
            raise ShapeError(f"records must be the list of {self.n_layers} dicts returned by forward(record=True)")
        if squeeze:
            records = [{k: v.unsqueeze(0) for k, v in r.items()} for r in records]
            delta_out = delta_out.unsqueeze(0)
        if tuple(delta_out.shape) != tuple(records[-1]["output"].shape):
            raise ShapeError(
                f"delta_out must have the output's shape {tuple(records[-1]['output'].shape)}, "
                f"got {tuple(delta_out.shape)}"
            )
        grads: list[Tensor] = [None] * len(P)  # type: ignore[list-item]
        delta = delta_out
        for i in reversed(range(self.n_layers)):
            grads[2 * i] = self.linear_weight_grad(i, records[i]["input"], delta)
            grads[2 * i + 1] = self.bias_grad(i, delta)
            if i == 0:
                break
            if C is not None:
                delta_h = torch.matmul(delta_out, C[i - 1])
            else:
                delta_h = self.linear_adjoint(i, delta, P[2 * i] if T[i] is None else T[i])
            prev = records[i - 1]
            delta = self._post_vjp(i - 1, prev, delta_h.reshape(prev["output"].shape))
        return [g.squeeze(0) for g in grads] if squeeze else grads

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (class name and constructor arguments)."""
        raise NotImplementedError
