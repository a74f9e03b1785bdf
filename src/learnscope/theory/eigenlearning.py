"""Eigenlearning: closed-form predictions of kernel ridge regression's few-shot behaviour from the kernel's spectrum.

Simon, Dickens, Karkada & DeWeese, "The eigenlearning framework" (2021/2023); equivalently the omniscient risk
estimate of Canatar, Bordelon & Pehlevan (2021). The learner is kernel ridge regression on n points drawn from μ,

.. math:: \\hat f(x) = k(x, X)\\,(K_{XX} + \\delta I_n)^{-1} y,

with δ **not** scaled by n — learnscope's ``KernelRidge``/``RandomFeatureRidge``/``Ridge`` convention, so a
learner's ``lam`` is δ as it is. The spectrum (λ_i, m_i) is that of the kernel's integral operator w.r.t. the
probability measure μ (:mod:`learnscope.theory.spectra`), so that K_XX = Σ_i λ_i φ_i(X)φ_i(X)ᵀ with E φ_i² = 1.
In that pairing the effective regularisation κ solves

.. math:: \\sum_i m_i \\frac{\\lambda_i}{\\lambda_i + \\kappa} + \\frac{\\delta}{\\kappa} = n,

and the predictions are the learnabilities L_i = λ_i/(λ_i + κ) (E f̂ = Σ_i L_i v_i φ_i for f = Σ_i v_i φ_i), the
overfitting coefficient E₀ = n/(n − Σ_i m_i L_i²) and the test MSE (noisy test labels, label-noise std ε)

.. math:: \\mathcal E(f) = E_0\\Big(\\sum_i (1 - L_i)^2 v_i^2 + \\varepsilon^2\\Big),
          \\qquad \\text{train MSE} = \\Big(\\frac{\\delta}{n\\kappa}\\Big)^2 \\mathcal E(f),

where v_i² is the energy of f in level i (multiplicity folded in: Σ over the m_i harmonics of the level).

Why δ pairs as it is: for δ ≫ Σ m_i λ_i the equation gives κ → δ/n, so L_i → nλ_i/(nλ_i + δ), the population
ridge solution of min_f (1/n)Σ_a (f(x_a) − y_a)² + (δ/n)‖f‖²_H — the per-sample objective of (K + δI)α = y.

The predictions are asymptotic (exact as n, the number of modes → ∞ at fixed ratios): at n = 20 on S² they are off
by 25–50 % in magnitude but right in order (wave2-spec §2.2), and tighten with n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learnscope.errors import ConfigError, ShapeError
from learnscope.theory.spectra import Spectrum, learner_spectrum
from learnscope.validation import as_finite_array, check_positive_int, check_scalar

__all__ = ["Prediction", "eigenlearning", "find_kappa", "learner_prediction"]


def _check_spectrum(eigenvalues: Any, multiplicity: Any) -> tuple[np.ndarray, np.ndarray]:
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mult = np.asarray(multiplicity, dtype=np.float64)
    if lam.ndim != 1 or mult.shape != lam.shape or lam.size == 0:
        raise ShapeError(f"eigenvalues and multiplicity must be non-empty 1-D arrays of one shape, got "
                         f"{lam.shape} and {mult.shape}")
    if np.any(np.isnan(lam)) or np.any(lam < 0) or np.any(~np.isfinite(mult)) or np.any(mult < 0):
        raise ConfigError("eigenvalues must be >= 0 (np.inf: an unpenalised direction) and multiplicities >= 0")
    return lam, mult


def _learnability(lam: np.ndarray, kappa: float) -> np.ndarray:
    """λ/(λ + κ), with 1 for λ = inf."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(lam), 1.0, lam / (lam + kappa))


def find_kappa(n: int, eigenvalues: Any, multiplicity: Any, ridge: float) -> float:
    """The effective regularisation κ > 0 solving Σ_i m_i λ_i/(λ_i + κ) + δ/κ = n.

    n : number of training points ≥ 1; eigenvalues ``(K,)`` ≥ 0 (``np.inf`` for an unpenalised direction, L = 1);
    multiplicity ``(K,)``; ridge : δ ≥ 0 in the learner's convention ((K_XX + δI)α = y).

    The left side decreases strictly in κ, so the root is unique; it is bracketed by
    δ/n ≤ κ ≤ (Σ_i m_i λ_i + δ)/(n − m_∞) (m_∞ the multiplicity of infinite eigenvalues) and found by Brent's method
    on log κ, then polished by Newton steps (residual ≲ 1e-12 n). With δ = 0 a root exists only if n is below the
    number of non-zero modes R = Σ_{λ_i > 0} m_i (otherwise the interpolant is not unique: ConfigError).
    """
    from scipy.optimize import brentq

    n = check_positive_int("n", n)
    delta = check_scalar("ridge", ridge, float, low=0.0, note="the ridge δ added to K_XX")
    lam, mult = _check_spectrum(eigenvalues, multiplicity)
    inf = np.isinf(lam)
    m_inf = float(mult[inf].sum())
    if m_inf >= n:
        raise ConfigError(f"n={n} training points cannot exceed the {m_inf:g} unpenalised (infinite-eigenvalue) "
                          "modes; use more points")
    fin_lam, fin_m = lam[~inf], mult[~inf]
    rank = float(fin_m[fin_lam > 0].sum()) + m_inf
    if delta == 0.0 and rank <= n:
        raise ConfigError(f"with ridge 0, n={n} must be below the effective rank {rank:g} of the spectrum (the "
                          "number of non-zero modes held); add a ridge or more levels")
    trace = float(np.sum(fin_m * fin_lam))

    def g(log_k: float) -> float:
        k = math.exp(log_k)
        return m_inf + float(np.sum(fin_m * fin_lam / (fin_lam + k))) + delta / k - n

    hi = math.log(max((trace + delta) / (n - m_inf), 1e-300))
    if delta > 0:
        lo = math.log(delta / n)
    else:
        lo = hi - 1.0
        while g(lo) <= 0.0:
            lo -= 2.0
            if lo < -690.0:
                raise ConfigError("κ is below 1e-300: the spectrum is too close to rank n for ridge 0")
    if g(hi) >= 0.0:  # only when κ_hi is the exact root or trace + δ == 0
        return math.exp(hi)
    if g(lo) <= 0.0:
        return math.exp(lo)
    log_k = brentq(g, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    k = math.exp(log_k)
    for _ in range(3):  # Newton on κ: g'(κ) = −Σ m λ/(λ+κ)² − δ/κ²
        res = m_inf + float(np.sum(fin_m * fin_lam / (fin_lam + k))) + delta / k - n
        slope = -float(np.sum(fin_m * fin_lam / (fin_lam + k) ** 2)) - delta / k**2
        if slope == 0.0:
            break
        step = k - res / slope
        k = step if step > 0 else k / 2
    return float(k)


@dataclass(frozen=True, eq=False)
class Prediction:
    """Eigenlearning's predictions for kernel ridge regression with n points and ridge δ (module docstring).

    Attributes
    ----------
    n, ridge, kappa : n, δ and the effective regularisation κ of :func:`find_kappa`.
    learnability : ``(K,)`` L_i = λ_i/(λ_i + κ) per level of ``spectrum``.
    e0 : the overfitting coefficient E₀ = n/(n − Σ_i m_i L_i²) ≥ 1.
    spectrum : the :class:`~learnscope.theory.spectra.Spectrum` predicted from.

    ``coefficients_sq`` arguments are ``(K,)`` energies v_i² per level (multiplicity folded in), e.g. from
    :meth:`Spectrum.coefficients_sq`, or ``(K + 1,)`` whose last entry is energy outside the levels held (treated as
    unlearnable, L = 0 — right when the spectrum holds every mode with λ not ≪ κ; see :attr:`tail_learnability`).
    """

    n: int
    ridge: float
    kappa: float
    learnability: np.ndarray
    e0: float
    spectrum: Spectrum

    def _levels(self, coefficients_sq: Any) -> tuple[np.ndarray, np.ndarray]:
        v2 = as_finite_array("coefficients_sq", coefficients_sq)
        k = self.learnability.size
        if v2.shape == (k,):
            return v2, self.learnability
        if v2.shape == (k + 1,):
            return v2, np.append(self.learnability, 0.0)
        raise ShapeError(f"coefficients_sq must have shape ({k},) or ({k + 1},) (with a remainder), got {v2.shape}")

    def test_mse(self, coefficients_sq: Any, noise: float = 0.0) -> float:
        """Predicted test MSE against noisy test labels: E₀ (Σ_i (1 − L_i)² v_i² + ε²), ε = ``noise`` (label-noise
        standard deviation). The error against the clean target is this minus ε²."""
        eps = check_scalar("noise", noise, float, low=0.0, note="label-noise standard deviation")
        v2, L = self._levels(coefficients_sq)
        return float(self.e0 * (np.sum((1.0 - L) ** 2 * v2) + eps * eps))

    def train_mse(self, coefficients_sq: Any, noise: float = 0.0) -> float:
        """Predicted train MSE: (δ/(nκ))² · :meth:`test_mse`."""
        return float((self.ridge / (self.n * self.kappa)) ** 2 * self.test_mse(coefficients_sq, noise))

    def learnability_of(self, coefficients_sq: Any) -> float:
        """The function's learnability L(f) = Σ_i v_i² L_i / Σ_i v_i² = ⟨E f̂, f⟩/‖f‖² ∈ [0, 1]."""
        v2, L = self._levels(coefficients_sq)
        total = float(v2.sum())
        if not total > 0:
            raise ConfigError("coefficients_sq are all zero; the learnability of the zero function is undefined")
        return float(np.sum(v2 * L) / total)

    def level_mse(self) -> np.ndarray:
        """``(K,)`` predicted test MSE E₀ (1 − L_i)² of a unit-energy function inside level i (no noise)."""
        return self.e0 * (1.0 - self.learnability) ** 2

    def top_level(self) -> int:
        """The most learnable non-constant level (the first of ``spectrum.ranking()``)."""
        ranking = self.spectrum.ranking(skip_constant=True)
        if ranking.size == 0:
            raise ConfigError("the spectrum has no non-constant level")
        return int(ranking[0])

    def min_mse(self) -> float:
        """The optimality floor E₀ (1 − L_top)²: the least predicted test MSE of a unit-variance non-constant
        function (no noise), reached inside the most learnable non-constant level."""
        return float(self.e0 * (1.0 - self.learnability[self.top_level()]) ** 2)

    @property
    def tail_learnability(self) -> float:
        """L of the last level held with λ > 0 (Funk–Hecke: the highest non-zero degree; Nyström: the smallest mode).

        Modes beyond the spectrum are missing from the κ equation: if this is not ≪ 1 (say > 0.05), κ and E₀
        are off — raise ``max_degree`` (Funk–Hecke) or the number of samples (Nyström)."""
        lam = self.spectrum.eigenvalues
        if self.spectrum.kind == "funk_hecke":
            nz = np.flatnonzero(lam > 0)
            return float(self.learnability[nz[-1]]) if nz.size else 0.0
        return float(self.learnability[np.argmin(lam)])


def eigenlearning(spectrum: Spectrum, n: int, ridge: float) -> Prediction:
    """Eigenlearning's :class:`Prediction` for kernel ridge regression on n points with ridge δ (learner convention).

    .. math:: \\sum_i m_i \\frac{\\lambda_i}{\\lambda_i+\\kappa} + \\frac{\\delta}{\\kappa} = n, \\quad
              L_i = \\frac{\\lambda_i}{\\lambda_i + \\kappa}, \\quad E_0 = \\frac{n}{n - \\sum_i m_i L_i^2}.
    """
    if not isinstance(spectrum, Spectrum):
        raise ConfigError(f"spectrum must be a learnscope.theory.Spectrum, got {type(spectrum).__name__}")
    kappa = find_kappa(n, spectrum.eigenvalues, spectrum.multiplicity, ridge)
    L = _learnability(spectrum.eigenvalues, kappa)
    denom = n - float(np.sum(spectrum.multiplicity * L * L))
    e0 = n / denom if denom > 0 else math.inf
    return Prediction(n=int(n), ridge=float(ridge), kappa=kappa, learnability=L, e0=float(e0), spectrum=spectrum)


def learner_prediction(learner: Any, domain: Any, n: int | Sequence[int], **spectrum_kwargs: Any
                       ) -> Prediction | list[Prediction]:
    """:func:`eigenlearning` for a learnscope learner: its :func:`learner_spectrum` on ``domain`` and its own ridge
    ``learner.lam`` as δ. ``n`` an int gives one Prediction, a sequence one per n (the spectrum computed once)."""
    lam = getattr(learner, "lam", None)
    if lam is None:
        raise ConfigError(f"{type(learner).__name__} has no ridge 'lam'; call eigenlearning(spectrum, n, ridge)")
    spectrum = learner_spectrum(learner, domain, **spectrum_kwargs)
    if isinstance(n, (int, np.integer)):
        return eigenlearning(spectrum, int(n), lam)
    return [eigenlearning(spectrum, int(k), lam) for k in n]
