"""Circuits by name: :func:`make_circuit` builds one from a spec (a ``describe()`` dict, MLP sizes, or an object)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from learnscope.circuits.conv import ConvNet
from learnscope.circuits.mlp import MLP
from learnscope.circuits.pool import ConvPool
from learnscope.circuits.protocol import FunctionalCircuit
from learnscope.circuits.sparse import MushroomBody
from learnscope.circuits.spiking import SpikingLIF
from learnscope.errors import ConfigError, UnknownNameError

CIRCUITS: dict[str, type] = {
    "mlp": MLP,
    "conv": ConvNet,
    "mushroom_body": MushroomBody,
    "lif": SpikingLIF,
    "conv_pool": ConvPool,
}
CIRCUIT_NAMES = tuple(CIRCUITS)


def make_circuit(spec: object, d: int | None = None, n_out: int | None = None) -> FunctionalCircuit:
    """A circuit from a spec, with the input size ``d`` and output size ``n_out`` filled in where it leaves them open.

    spec : a circuit object (anything following :class:`~learnscope.circuits.protocol.FunctionalCircuit`,
        returned unchanged); a list of MLP sizes ``[d, h1, …, n_out]``; or a dict ``{"circuit": name, **kwargs}``
        with name in :data:`CIRCUITS` — a circuit's ``describe()`` is such a dict. Open sizes: ``mlp`` takes
        ``sizes`` or ``hidden`` (then ``sizes = [d, *hidden, n_out or 1]``) plus ``activation``; ``conv`` needs
        ``in_shape`` and takes ``n_out`` from the argument when the spec has none; ``mushroom_body`` and ``lif``
        take ``n_inputs = d``; ``conv_pool`` without ``in_shape`` reads ``d`` as a square single-channel image.

    >>> make_circuit({"circuit": "mlp", "hidden": [8]}, d=3)
    MLP([3, 8, 1], activation='relu')
    """
    if isinstance(spec, (list, tuple)):
        return MLP(list(spec))
    if isinstance(spec, Mapping):
        kw = dict(spec)
        name = kw.pop("circuit", None)
        if name not in CIRCUITS:
            raise UnknownNameError("circuit", str(name), CIRCUIT_NAMES)
        if name == "mlp":
            hidden = kw.pop("hidden", None)
            if hidden is not None:
                if "sizes" in kw:
                    raise ConfigError("give an MLP either 'sizes' or 'hidden', not both")
                kw["sizes"] = [_need(d, name), *hidden, 1 if n_out is None else n_out]
        elif name == "conv":
            if n_out is not None:
                kw.setdefault("n_out", n_out)
        elif name == "conv_pool":
            if "in_shape" not in kw:
                return ConvPool.square(_need(d, name), **kw)
        elif "n_inputs" not in kw:
            kw["n_inputs"] = _need(d, name)
        return CIRCUITS[name](**kw)
    if isinstance(spec, FunctionalCircuit):
        return spec
    raise ConfigError(
        f"cannot make a circuit from {type(spec).__name__}; pass a circuit (draw, forward, loss_grads), a list of "
        f"MLP sizes or a dict with 'circuit' in {CIRCUIT_NAMES}"
    )


def _need(d: int | None, name: str) -> int:
    if d is None:
        raise ConfigError(f"a {name!r} circuit spec without its input size needs d (the input dimension)")
    return d


def input_dim(circuit: Any) -> int:
    """The number of input features of one row: ``prod(in_shape)``."""
    return math.prod(circuit.in_shape)
