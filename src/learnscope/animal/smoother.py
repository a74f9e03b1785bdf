"""A model-free read-out of a function known only at noisy probe responses: kernel ridge regression with a
Gaussian kernel whose length scale and ridge are chosen by exact leave-one-out cross-validation.

It makes no assumption about which functions are easy (its length scales span a decade around the stimuli's own
spacing), so it can represent a found f1 over the whole domain without favouring any eigenspace. The LOO residual
of kernel ridge has the closed form :math:`r_i = \\alpha_i / [(K + \\lambda I)^{-1}]_{ii}`,
:math:`\\alpha = (K + \\lambda I)^{-1} y` (Rifkin & Lippert 2007).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_RIDGES = (1e-3, 1e-2, 1e-1, 1.0)
_SCALES = (0.25, 0.5, 1.0, 2.0)  # × the median distance between stimuli


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


@dataclass(frozen=True)
class Smoothed:
    """A fitted smoother: ``(x (M, d)) -> values (M,)``; ``loo_mse`` its leave-one-out error, ``noise_share`` that
    error over the variance of the data (1: nothing explained)."""

    x: np.ndarray
    alpha: np.ndarray
    mean: float
    lengthscale: float
    ridge: float
    loo_mse: float
    noise_share: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        k = np.exp(-_sq_dist(np.asarray(x, dtype=np.float64), self.x) / (2 * self.lengthscale**2))
        return self.mean + k @ self.alpha


def smooth(x: np.ndarray, y: np.ndarray) -> Smoothed:
    """Fit the smoother to stimuli ``x (N, d)`` and responses ``y (N,)`` (N ≥ 3)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = float(y.mean())
    yc = y - mean
    d2 = _sq_dist(x, x)
    spacing = float(np.sqrt(np.median(d2[np.triu_indices(len(x), 1)])))
    best = None
    for scale in _SCALES:
        ell = scale * spacing
        K = np.exp(-d2 / (2 * ell**2))
        w, V = np.linalg.eigh(K)
        for lam in _RIDGES:
            inv = (V / (w + lam)) @ V.T
            alpha = inv @ yc
            loo = float(np.mean((alpha / np.diag(inv)) ** 2))
            if best is None or loo < best[0]:
                best = (loo, ell, lam, alpha)
    loo, ell, lam, alpha = best
    return Smoothed(x, alpha, mean, ell, lam, loo, loo / max(float(yc.var()), 1e-300))
