"""Learning rules = credit transport × optimiser, functional, batched and differentiable (``make_rule("fa")``)."""

from __future__ import annotations

from learnscope.plasticity.optimisers import OPTIMISERS, Optimiser, make_optimiser, safe_sqrt
from learnscope.plasticity.rules import RULES, Rule, RuleState, cross_entropy_loss, make_rule, mse_loss
from learnscope.plasticity.transports import (
    LEARNED_FEEDBACK,
    STORED_FEEDBACK,
    TRANSPORTS,
    angle_between,
    feedback_to_transport,
    ia_feedback_grad,
    ia_loss,
    init_feedback,
    transport_matrices,
    transport_to_feedback,
)

__all__ = [
    "LEARNED_FEEDBACK",
    "OPTIMISERS",
    "RULES",
    "STORED_FEEDBACK",
    "TRANSPORTS",
    "Optimiser",
    "Rule",
    "RuleState",
    "angle_between",
    "cross_entropy_loss",
    "feedback_to_transport",
    "ia_feedback_grad",
    "ia_loss",
    "init_feedback",
    "make_optimiser",
    "make_rule",
    "mse_loss",
    "safe_sqrt",
    "transport_matrices",
    "transport_to_feedback",
]
