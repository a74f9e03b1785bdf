"""Learners (closed-form and trained): ``fit_predict(x_train (B, n, d), y_train (B, n), x_test (B, m, d)) -> (B, m)``.

Differentiable in the labels, batched over B independent problems, λ never scaled by n.
"""

from __future__ import annotations

from learnscope.learners.base import (
    Learner,
    LearnerBase,
    draw_normal,
    draw_uniform,
    kernel_ridge_predict,
    ridge_predict,
    spd_solve,
    validate_fit_inputs,
)
from learnscope.learners.kernels import (
    KERNELS,
    KernelRidge,
    arccos,
    arccos_eigenvalues,
    rbf,
    relu_nngp,
    relu_ntk,
)
from learnscope.learners.module_learner import ModuleLearner, Trained
from learnscope.learners.random_features import RandomFeatureRidge
from learnscope.learners.registry import LEARNERS, make_learner
from learnscope.learners.ridge import Ridge
from learnscope.learners.small_cnn import SmallCNNLearner
from learnscope.learners.trained import CircuitLearner, MushroomBodyLearner, SpikingLearner, TrainedLearner

__all__ = [
    "KERNELS",
    "LEARNERS",
    "CircuitLearner",
    "KernelRidge",
    "ModuleLearner",
    "MushroomBodyLearner",
    "SpikingLearner",
    "Trained",
    "TrainedLearner",
    "Learner",
    "LearnerBase",
    "RandomFeatureRidge",
    "Ridge",
    "SmallCNNLearner",
    "arccos",
    "arccos_eigenvalues",
    "draw_normal",
    "draw_uniform",
    "kernel_ridge_predict",
    "make_learner",
    "rbf",
    "relu_nngp",
    "relu_ntk",
    "ridge_predict",
    "spd_solve",
    "validate_fit_inputs",
]
