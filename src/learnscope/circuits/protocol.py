"""The one circuit protocol: pure functions that draw members, run them forward and give their loss gradients.

A *circuit* is a small object that knows its weight layers and shapes and keeps no state between calls. As optax
defines a gradient transformation as a pair of pure functions over an explicit state pytree, a circuit is a pair
of pure functions over an explicit :class:`Members` pytree::

    members = circuit.draw(generator, ensemble, dtype)           # Members(params, fixed), E = ensemble
    points = circuit.draw_per_point(generator, ensemble, n, dtype)  # fixed randomness of n input rows, {} if none
    out = circuit.forward(members.params, x, {**members.fixed, **points})       # (E, N, n_out)
    grads, loss = circuit.loss_grads(members.params, x, y, fixed, transport=T, create_graph=True)

so every learning rule (:mod:`learnscope.plasticity`) trains every circuit and every learner
(:mod:`learnscope.learners`) draws, trains and reads out every circuit the same way. The circuits:
:class:`~learnscope.circuits.MLP`, :class:`~learnscope.circuits.ConvNet` (layered, explicit backward pass,
:class:`~learnscope.circuits.base.Circuit`), :class:`~learnscope.circuits.sparse.MushroomBody`,
:class:`~learnscope.circuits.spiking.SpikingLIF` and :class:`~learnscope.circuits.pool.ConvPool` (gradients by
autograd through the forward pass, :class:`~learnscope.circuits.autograd.AutogradCircuit`).

Shapes (E members, N input rows):

- ``params``: a list of tensors ``(E, *shape)``, ``shape`` from ``circuit.param_shapes()`` (weight, bias per
  layer: ``[W1, b1, W2, b2, …]``);
- ``fixed``: a dict of tensors, each with the leading E axis — per-member fixed randomness such as the mushroom
  body's connectivity mask ``"mask" (E, d, K)``; per-point entries from ``draw_per_point`` (the LIF rate code's
  input noise ``"noise" (E, N, T, 2d)``) have the input rows as their second axis, so a minibatch of ``x``
  takes the same rows of them;
- ``x``: ``(E, N, *in_shape)`` (``(N, *in_shape)`` is shared by all members); ``y``: ``(E, N)`` for one output;
- ``transport`` (of ``loss_grads``): ``None`` or one entry per weight layer (``circuit.layers``): ``None`` sends
  errors back through the layer's own weight (backprop), a tensor ``T`` of the weight's shape ``(E, *weight_shape)``
  sends the error ``δ`` at the layer's pre-activation to its input as ``δ Tᵀ`` (dense) — feedback alignment's
  ``T = Bᵀ``, sign symmetry's ``T = sign(W)``. The entry of the first layer is never used: its input is the data,
  so the way errors would travel to it reaches no parameter. Only the gradients change; the forward values and
  their derivatives (what a meta-gradient differentiates) are the circuit's own.

The feedback matrices of a rule are the *rule's* state (:class:`~learnscope.plasticity.RuleState`, drawn by
``Rule.init_state`` from the same generator right after the members), not the circuit's: the same members train
under any rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int

if TYPE_CHECKING:
    from learnscope.circuits.base import LayerInfo

Fixed = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


class Members(NamedTuple):
    """E freshly drawn members of a circuit: trainable ``params`` and their fixed randomness.

    params : ``[W1, b1, …]``, each ``(E, *shape)``.
    fixed : ``{name: (E, …)}`` — what stays fixed while the params train (a connectivity mask); ``{}`` if none.
    """

    params: list[Tensor]
    fixed: Fixed


@runtime_checkable
class FunctionalCircuit(Protocol):
    """What every circuit provides (module doc for the shapes).

    Attributes: ``layers`` (the weight layers, :class:`~learnscope.circuits.base.LayerInfo`, in forward order),
    ``n_out`` (outputs per input row), ``in_shape`` (the shape of one input row as ``forward`` takes it).
    """

    layers: Sequence[LayerInfo]
    n_out: int
    in_shape: tuple[int, ...]

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of ``[W1, b1, W2, b2, …]`` without the ensemble axis."""
        ...

    def draw(self, generator: torch.Generator, ensemble: int, dtype: torch.dtype = torch.float32) -> Members:
        """``ensemble`` fresh members from ``generator``: fixed randomness first (e.g. the mask), then the params."""
        ...

    def draw_per_point(
        self, generator: torch.Generator, ensemble: int, n_points: int, dtype: torch.dtype = torch.float32
    ) -> Fixed:
        """Fixed randomness of ``n_points`` input rows, ``{name: (E, n_points, …)}``; ``{}`` (no draws) if none."""
        ...

    def forward(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Outputs ``(E, N, n_out)`` for ``x (E, N, *in_shape)`` (``(N, *in_shape)`` is shared by the members)."""
        ...

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
        """``(grads, loss)``: the gradients of ``Σ_e loss_e`` w.r.t. ``params`` with errors sent back through
        ``transport``, and the per-member loss ``(E,)`` (detached; ``None`` with ``with_loss=False``, which spares
        hand-written gradients computing it). ``loss_fn(out, y) -> (E,)``; ``None`` is the per-member mean
        squared error :func:`member_mse`. Exact to every order: with ``create_graph`` the gradients are
        differentiable functions of the params, ``x``, ``y`` and ``T``."""
        ...


Transport = Sequence[Tensor | None] | None


# ---------------------------------------------------------------- shared primitives


def uniform(
    shape: Sequence[int], bound: float, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Draw ``U(-bound, bound)`` of ``shape`` from ``generator``: ``(2u − 1)·bound`` with ``u = torch.rand(shape)``.

    The library's one uniform-draw primitive (one ``torch.rand`` call, so the generator advances by exactly
    ``prod(shape)`` draws); initialisers and feedback matrices all go through it.
    """
    return (torch.rand(tuple(shape), generator=generator, dtype=dtype) * 2 - 1) * bound


def default_uniform_init(
    shapes: Sequence[tuple[Sequence[int], int]],
    generator: torch.Generator,
    ensemble: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """PyTorch's default initialisation of ``nn.Linear`` / ``nn.ConvNd``, from an explicit generator.

    .. math:: W, b \\sim U\\big(-1/\\sqrt{\\mathrm{fan\\_in}},\\ 1/\\sqrt{\\mathrm{fan\\_in}}\\big)

    (``kaiming_uniform_(a=√5)`` for the weight and the bias rule of ``reset_parameters``, in distribution; a
    fan-in of 0 gives bound 0, as there). The draws are :func:`uniform` calls, one per tensor, in the order of
    ``shapes``.

    shapes : ``[(shape, fan_in), …]`` in draw order, e.g. ``[((d, h), d), ((h,), d), ((h, 1), h), ((1,), h)]``.
    ensemble : ``None`` for tensors of exactly ``shape``; ``E`` for ``(E, *shape)`` (E independent draws, all
        from ``generator``; ``ensemble=1`` gives the values of ``None`` with a leading axis).
    Returns the list of tensors, in the order of ``shapes``.
    """
    if not isinstance(generator, torch.Generator):
        raise ConfigError("generator must be a torch.Generator (explicit seeding, no global RNG)")
    lead = () if ensemble is None else (check_positive_int("ensemble", ensemble),)
    return [
        uniform((*lead, *shape), 1.0 / math.sqrt(fan) if fan > 0 else 0.0, generator, dtype) for shape, fan in shapes
    ]


def init_layers(
    layers: Sequence[LayerInfo], generator: torch.Generator, ensemble: int | None, dtype: torch.dtype
) -> list[Tensor]:
    """:func:`default_uniform_init` of ``[W1, b1, W2, b2, …]``: every weight and bias ``U(±1/√fan_in)`` of its
    layer, drawn in that order — the initialiser of every circuit."""
    shapes = [(s, layer.fan_in) for layer in layers for s in (layer.weight_shape, layer.bias_shape)]
    return default_uniform_init(shapes, generator, ensemble, dtype)


def member_mse(out: Tensor, y: Tensor) -> Tensor:
    """Per-member mean squared error ``mean_{n,k} (out − y)²``: ``out (E, N, k)``, ``y (E, N)`` (k = 1) or the
    output's shape -> ``(E,)``."""
    if y.ndim == out.ndim - 1:
        y = y.unsqueeze(-1)
    return (out - y).pow(2).mean((-2, -1))


def check_member_inputs(params: Sequence[Tensor], shapes: Sequence[tuple[int, ...]], x: Tensor, n_inputs: int,
                        names: str) -> Tensor:
    """Validate ensemble parameters ``params[i]: (E, *shapes[i])`` and return ``x`` as ``(E, N, n_inputs)``
    (an ``(N, n_inputs)`` input is shared by all members); ``names`` lists the parameters for the error message."""
    if not isinstance(params, (list, tuple)) or len(params) != len(shapes):
        raise ShapeError(f"params must be the list [{names}] drawn by the circuit")
    E = params[0].shape[0]
    for i, (p, shape) in enumerate(zip(params, shapes, strict=True)):
        if tuple(p.shape) != (E, *shape):
            raise ShapeError(f"params[{i}] must have shape (E, *{shape}) with E={E}, got {tuple(p.shape)}")
    if x.ndim == 2:
        x = x.unsqueeze(0).expand(E, *x.shape)
    if x.ndim != 3 or x.shape[0] != E or x.shape[2] != n_inputs:
        raise ShapeError(f"x must have shape (N, {n_inputs}) or (E={E}, N, {n_inputs}), got {tuple(x.shape)}")
    return x
