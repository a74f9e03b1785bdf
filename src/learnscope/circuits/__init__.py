"""Functional circuits with an optional leading ensemble axis: ``MLP``, ``ConvNet`` (see ``circuits.base``)."""

from __future__ import annotations

from learnscope.circuits.base import (
    GROUPS,
    Circuit,
    LayerInfo,
    Records,
    default_uniform_init,
    dual,
    group_layers,
    uniform,
)
from learnscope.circuits.conv import ConvNet, from_grouped, to_grouped
from learnscope.circuits.mlp import ACTIVATIONS, MLP

__all__ = [
    "ACTIVATIONS",
    "GROUPS",
    "MLP",
    "Circuit",
    "ConvNet",
    "LayerInfo",
    "Records",
    "default_uniform_init",
    "dual",
    "from_grouped",
    "group_layers",
    "to_grouped",
    "uniform",
]
