"""The MSE test of the overlay: predicted against measured few-shot MSE, and its random control functions.

* :func:`predicted_mse` and :func:`compare_mse` — E₀ (Σ (1 − L_i)² v_i² + r) from a function's measured coefficients
  (r: the energy above the spectrum's top level, counted as unlearnt), against the measured few-shot MSE:
  Spearman ρ and the median of |pred/meas − 1|.
* :func:`control_functions` — random smooth functions rank-transformed to a given marginal (the MSE test's controls,
  :class:`MarginalControl`).

Re-exported by :mod:`learnscope.theory.overlay`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from learnscope import rng
from learnscope.errors import ShapeError
from learnscope.validation import check_positive_int

#: Random control functions of the MSE test (wave2 §2.3 asks for ≥ 20).
CONTROL_COUNT = 20
#: The named stream of the control functions (``rng.numpy_rng(seed, CONTROL_STREAM, index)``).
CONTROL_STREAM = "theory_controls"


def predicted_mse(prediction: Any, coefficients_sq: np.ndarray, total: float | None = None,
                  noise: float = 0.0) -> float:
    """The eigenlearning few-shot test MSE of a function from its energy per level (wave2 §2.1):

    .. math:: \\mathrm{MSE} = E_0\\Big(\\sum_i (1 - L_i)^2 v_i^2 + r + \\varepsilon^2\\Big),
              \\qquad r = \\max\\big(\\|f\\|^2 - \\textstyle\\sum_i v_i^2,\\ 0\\big)

    coefficients_sq : (K,) v_i² per level (multiplicity folded in); total : ‖f‖² (mean square on the domain), so r is
    the energy above the spectrum's top level, counted as unlearnt (L = 0: those eigenvalues are far below κ);
    None: r = 0. noise : label noise std ε. Units: those of f².
    """
    v = np.asarray(coefficients_sq, dtype=float)
    rest = 0.0 if total is None else max(float(total) - float(v.sum()), 0.0)
    return float(prediction.test_mse(v, noise=noise)) + float(prediction.e0) * rest


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``a`` (N,), ties given their average rank (as for Spearman's ρ)."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def compare_mse(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """How well predicted MSEs match measured ones: ``spearman`` ρ (the Pearson correlation of the ranks, ties
    averaged), ``median_relative_error``
    median |pred/meas − 1|, ``count``. Pairs with a non-finite or non-positive measured value are left out."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape:
        raise ShapeError(f"{p.shape[0]} predicted but {m.shape[0]} measured MSEs")
    keep = np.isfinite(p) & np.isfinite(m) & (m > 0)
    p, m = p[keep], m[keep]
    if len(p) < 3:
        return {"spearman": float("nan"), "median_relative_error": float("nan"), "count": int(len(p))}
    rp, rm = _ranks(p), _ranks(m)
    rp, rm = rp - rp.mean(), rm - rm.mean()
    denom = math.sqrt(float(rp @ rp) * float(rm @ rm))
    rho = float(rp @ rm) / denom if denom > 0 else float("nan")
    return {"spearman": rho, "median_relative_error": float(np.median(np.abs(p / m - 1.0))), "count": int(len(p))}


class MarginalControl:
    """A random smooth function on the domain with a prescribed marginal: g(x) = Q(F̂_h(h(x))).

    h(x) = Σ_k a_k cos(ω_k·x + b_k) (R random Fourier features, ω_k ~ N(0, s² I), a_k ~ N(0, 1), b_k ~ U(0, 2π)),
    F̂_h is h's distribution function on ``reference`` points of the domain (piecewise linear through the
    mid-ranks (i + ½)/N) and Q the quantile function of the wanted marginal; so g has that marginal (up to the
    reference sample) and is a smooth, monotone re-labelling of h. Called on (N, d) numpy points -> (N,).
    """

    def __init__(self, omega: np.ndarray, phase: np.ndarray, amp: np.ndarray, reference: np.ndarray,
                 quantile: Callable[[np.ndarray], np.ndarray], bandwidth: float):
        self.omega, self.phase, self.amp, self.bandwidth = omega, phase, amp, float(bandwidth)
        self._sorted = np.sort(self._h(reference))
        self._quantile = quantile

    def _h(self, x: np.ndarray) -> np.ndarray:
        return np.cos(np.asarray(x, dtype=float) @ self.omega + self.phase) @ self.amp

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ref = self._sorted
        u = np.interp(self._h(x), ref, (np.arange(len(ref)) + 0.5) / len(ref))
        return np.asarray(self._quantile(u), dtype=float)


def control_functions(domain: Any, quantile: Callable[[np.ndarray], np.ndarray], count: int = CONTROL_COUNT, *,
                      seed: int = 0, reference: int = 2000, features: int = 32,
                      bandwidths: tuple[float, float] = (0.5, 6.0)) -> list[MarginalControl]:
    """``count`` :class:`MarginalControl` functions with the marginal of ``quantile`` (u ∈ (0, 1) -> value).

    Control i draws from ``rng.numpy_rng(seed, CONTROL_STREAM, i)`` (so it does not depend on ``count``); its
    bandwidth s is log-uniform in ``bandwidths`` (≈ the highest harmonic degree it carries on the unit sphere), so the
    controls range from nearly linear to rough. The reference points are ``domain.spread_sample(reference)`` from
    the same stream.
    """
    import torch

    count = check_positive_int("count", count)
    lo, hi = bandwidths
    out = []
    for i in range(count):
        g = rng.numpy_rng(int(seed), CONTROL_STREAM, i)
        s = float(math.exp(g.uniform(math.log(lo), math.log(hi))))
        d = int(domain.dim)
        omega = s * g.standard_normal((d, features))
        phase = g.uniform(0.0, 2 * math.pi, features)
        amp = g.standard_normal(features)
        gen = torch.Generator().manual_seed(int(g.integers(2**62)))
        ref = domain.spread_sample(reference, gen, dtype=torch.float64).reshape(reference, -1).numpy()
        out.append(MarginalControl(omega, phase, amp, ref, quantile, s))
    return out
