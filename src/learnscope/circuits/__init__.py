"""Functional circuits under one protocol (:mod:`learnscope.circuits.protocol`): ``draw`` members, ``forward``
over them, ``loss_grads`` with any error transport.

Layered (explicit backward pass, records): ``MLP``, ``ConvNet`` (:mod:`learnscope.circuits.base`). Trained through
autograd: ``MushroomBody`` (:mod:`~learnscope.circuits.sparse`), ``SpikingLIF`` (:mod:`~learnscope.circuits.spiking`),
``ConvPool`` (:mod:`~learnscope.circuits.pool`). ``make_circuit`` builds any of them from a spec.
"""

from __future__ import annotations

from learnscope.circuits.autograd import AutogradCircuit
from learnscope.circuits.base import (
    GROUPS,
    Circuit,
    LayerInfo,
    Records,
    dual,
    group_layers,
)
from learnscope.circuits.conv import ConvNet, from_grouped, to_grouped
from learnscope.circuits.mlp import ACTIVATIONS, MLP
from learnscope.circuits.pool import ConvPool
from learnscope.circuits.protocol import (
    FunctionalCircuit,
    Members,
    default_uniform_init,
    init_layers,
    member_mse,
    uniform,
)
from learnscope.circuits.registry import CIRCUIT_NAMES, CIRCUITS, make_circuit
from learnscope.circuits.sparse import MushroomBody
from learnscope.circuits.spiking import SpikingLIF

__all__ = [
    "ACTIVATIONS",
    "CIRCUITS",
    "CIRCUIT_NAMES",
    "GROUPS",
    "MLP",
    "AutogradCircuit",
    "Circuit",
    "ConvNet",
    "ConvPool",
    "FunctionalCircuit",
    "LayerInfo",
    "Members",
    "MushroomBody",
    "Records",
    "SpikingLIF",
    "default_uniform_init",
    "dual",
    "from_grouped",
    "group_layers",
    "init_layers",
    "make_circuit",
    "member_mse",
    "to_grouped",
    "uniform",
]
