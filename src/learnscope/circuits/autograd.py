"""The shared base of circuits trained through autograd: the mushroom body, the LIF network, ConvPool.

Such a circuit is a feature map followed by a dense readout,

.. math:: \\hat y = h W + b, \\qquad h = \\phi_\\theta(x)\\ \\text{(any differentiable map: masked layer, LIF
    dynamics, convolution and pooling)},

and writes only :meth:`AutogradCircuit.features`; it inherits the rest of the protocol of
:mod:`learnscope.circuits.protocol`: ``param_shapes``, ``draw`` (PyTorch's default initialisation of its layers),
``draw_per_point`` (nothing), ``forward`` and ``loss_grads`` — ``torch.autograd.grad`` of the summed per-member
loss (backpropagation through time for the LIF network), ``create_graph`` for second-order meta-gradients. A
transport ``T`` of the readout sends its error to the features as ``δ Tᵀ``:

.. math:: g_W = h^\\top\\delta,\\quad g_b = \\textstyle\\sum_n \\delta,\\quad
    g_\\theta = \\Big(\\frac{\\partial h}{\\partial \\theta}\\Big)^{\\!\\top} \\delta T^\\top,
    \\qquad \\delta = \\partial L/\\partial \\hat y,

each an ordinary differentiable op (the last a vector-Jacobian product with ``create_graph``), so second
derivatives through the update are exact — the values and their derivatives stay the circuit's own, only the
error sent to the features changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from learnscope.circuits.base import LayerInfo
from learnscope.circuits.protocol import Fixed, LossFn, Members, Transport, init_layers, member_mse
from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int


class AutogradCircuit:
    """Base class: a subclass sets ``layers`` (the last one the dense readout ``params[-2:] = W (E, F, n_out),
    b (E, n_out)``), ``n_out``, ``in_shape`` and defines :meth:`features`.

    Members always carry the leading ensemble axis E. Direct feedback alignment and information alignment need
    a layered :class:`~learnscope.circuits.base.Circuit` (``supports_dfa`` is False here).
    """

    layers: list[LayerInfo]
    n_out: int = 1
    in_shape: tuple[int, ...]
    supports_dfa: bool = False
    #: keys of ``fixed`` that ``forward`` needs (beyond them, extra entries are an error)
    fixed_keys: tuple[str, ...] = ()

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of ``[W1, b1, W2, b2, …]`` without the ensemble axis."""
        return [s for layer in self.layers for s in (layer.weight_shape, layer.bias_shape)]

    def ensemble_size(self, params: Sequence[Tensor]) -> int:
        """``E`` of ensemble parameters ``(E, *shape)``; :class:`ShapeError` for anything else."""
        shapes = self.param_shapes()
        if not isinstance(params, (list, tuple)) or len(params) != len(shapes) or not isinstance(params[0], Tensor):
            raise ShapeError(f"params must be a list of {len(shapes)} tensors [W1, b1, …] drawn by the circuit")
        E = params[0].shape[0]
        for i, (p, s) in enumerate(zip(params, shapes, strict=True)):
            if not isinstance(p, Tensor) or tuple(p.shape) != (E, *s):
                got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
                raise ShapeError(f"params[{i}] must have shape (E, *{s}) with one E for all tensors, got {got}")
        return E

    # -------------------------------------------------------------- the protocol
    def draw(self, generator: torch.Generator, ensemble: int, dtype: torch.dtype = torch.float32) -> Members:
        """``ensemble`` fresh members: ``U(±1/√fan_in)`` weights and biases in layer order, no fixed randomness."""
        E = check_positive_int("ensemble", ensemble)
        return Members(init_layers(self.layers, generator, E, dtype), {})

    def draw_per_point(self, generator: torch.Generator, ensemble: int, n_points: int,
                       dtype: torch.dtype = torch.float32) -> Fixed:
        """No per-point randomness: ``{}`` (nothing is drawn)."""
        return {}

    def features(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """The readout's input ``h (E, N, F)`` for ``x (E, N, *in_shape)``."""
        raise NotImplementedError

    def forward(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Outputs ``h W + b`` of shape ``(E, N, n_out)``."""
        return torch.baddbmm(params[-1].unsqueeze(1), self.features(params, x, fixed), params[-2])

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
        """``(grads, per-member loss)`` by ``torch.autograd.grad`` of ``Σ_e loss_fn(forward(…), y)_e``.

        loss_fn : ``None`` for :func:`~learnscope.circuits.protocol.member_mse`, else ``loss_fn(out, y) -> (E,)``.
        create_graph : keep the graph (the gradients are then differentiable in params, x, y and the transports).
        """
        loss_fn = member_mse if loss_fn is None else loss_fn
        T = self._transport(transport, self.n_layers - 1)
        with torch.enable_grad():
            ps = [p if p.requires_grad else p.detach().requires_grad_(True) for p in params]
            if T is None:
                loss = loss_fn(self.forward(ps, x, fixed), y)
                grads = list(torch.autograd.grad(loss.sum(), ps, create_graph=create_graph))
                return grads, loss.detach() if with_loss else None
            h = self.features(ps, x, fixed)
            out = torch.baddbmm(ps[-1].unsqueeze(1), h, ps[-2])
            loss = loss_fn(out, y)
            (delta,) = torch.autograd.grad(loss.sum(), out, create_graph=create_graph, retain_graph=True)
            if T.shape != ps[-2].shape:
                raise ShapeError(f"the readout's transport must have its weight's shape {tuple(ps[-2].shape)}, got "
                                 f"{tuple(T.shape)}")
            hidden = torch.autograd.grad(h, ps[:-2], grad_outputs=torch.matmul(delta, T.transpose(-1, -2)),
                                         create_graph=create_graph)
            grads = [*hidden, torch.matmul(h.transpose(-1, -2), delta), delta.sum(1)]
        if not create_graph:
            grads = [g.detach() for g in grads]
        return grads, loss.detach() if with_loss else None

    # -------------------------------------------------------------- checks for subclasses
    def _fixed(self, fixed: Fixed | None, E: int) -> Fixed:
        """``fixed`` with exactly the keys this circuit's forward needs, each with the leading axis E."""
        fixed = {} if fixed is None else fixed
        keys = self.fixed_keys
        if not isinstance(fixed, dict) or len(fixed) != len(keys) or any(k not in fixed for k in keys):
            if not isinstance(fixed, dict):
                raise ConfigError(f"fixed must be a dict of tensors (the Members.fixed drawn by the circuit), got "
                                  f"{type(fixed).__name__}")
            raise ConfigError(
                f"{type(self).__name__} needs fixed entries {list(keys)} (from draw / draw_per_point); missing "
                f"{[k for k in keys if k not in fixed]}, unexpected {[k for k in fixed if k not in keys]}"
            )
        for k in keys:
            v = fixed[k]
            if not isinstance(v, Tensor) or v.ndim == 0 or v.shape[0] != E:
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ShapeError(f"fixed[{k!r}] must have the leading ensemble axis E={E}, got {got}")
        return fixed

    def _transport(self, transport: Transport, index: int) -> Tensor | None:
        """Layer ``index``'s transport matrix (or None), after checking the list has one entry per layer."""
        if transport is None:
            return None
        if not isinstance(transport, (list, tuple)) or len(transport) != self.n_layers:
            raise ShapeError(f"transport must be None or a list of {self.n_layers} entries (one per weight layer)")
        return transport[index]
