"""Labellings shared by the routes: the rank transform to the target marginal U[−1, 1], random smooth functions, and
values mapped through a training set's rank transform."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def rank_to_uniform(values: np.ndarray) -> np.ndarray:
    """Rank transform to the quantiles of U[−1, 1]: ``(rank − ½)/n · 2 − 1`` (ties share their mean rank)."""
    n = len(values)
    return (rankdata(values) - 0.5) / n * 2 - 1


def random_labelling(rng: np.random.Generator, d: int, scale: float, features: int):
    """A random smooth function :math:`f(x) = \\sum_j a_j \\cos(w_j\\cdot x + b_j)`, w ~ N(0, scale² I), b ~ U[0, 2π),
    a ~ N(0, 1): ``features`` random Fourier features, as a callable ``x (N, d) -> (N,)``."""
    w = rng.normal(0, scale, (features, d))
    b = rng.uniform(0, 2 * np.pi, features)
    a = rng.normal(0, 1, features)
    return lambda x: np.cos(x @ w.T + b) @ a


def on_training_marginal(raw_train: np.ndarray, raw_other: np.ndarray) -> np.ndarray:
    """Map values through the training labels' rank transform (linear interpolation of its empirical CDF)."""
    order = np.sort(raw_train)
    u = rank_to_uniform(order)
    return np.interp(raw_other, order, u)
