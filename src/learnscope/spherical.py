"""Spherical math, written once: quadrature points, harmonic dimensions, zonal polynomials, harmonic bases and
Funk–Hecke spectra on the unit sphere S^{d−1} ⊂ R^d.

Everything here is plain numpy (float64). σ is the uniform *probability* measure on S^{d−1}; "degree l" means the
space H_l of spherical harmonics of degree l (restrictions to the sphere of harmonic homogeneous polynomials of
degree l), L²(σ) = ⊕_l H_l.

* :func:`fibonacci_sphere` — near-equal-area lattice on S², an equal-weight quadrature of σ.
* :func:`harmonic_dimension` — N(d, l) = dim H_l.
* :func:`zonal` / :func:`legendre` — the zonal profile of degree l (Gegenbauer C_l^{((d−2)/2)}, Chebyshev T_l on
  the circle) and its normalisation P_l(1) = 1 (the Legendre polynomial of dimension d).
* :func:`zonal_basis` — a basis of H_l on any point set, with the exact L²(σ) Gram of its columns.
* :func:`real_spherical_harmonics` — the orthonormal real basis Y_lm on S².
* :func:`funk_hecke_eigenvalues` — the eigenvalues λ_l of a zonal kernel k(x·x') (Funk–Hecke formula).
* :func:`harmonic_power` — the absolute energy ‖Π_l f‖² of a sampled function in each degree.

Identities used throughout (Atkinson & Han, "Spherical Harmonics and Approximations on the Unit Sphere", 2012):
the addition theorem Σ_m Y_lm(x) Y_lm(y) = N(d, l) P_l(x·y) for any L²(σ)-orthonormal basis (Y_lm) of H_l, and
the Funk–Hecke formula ∫ k(x·y) Y(y) dσ(y) = λ_l Y(x) for Y ∈ H_l.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import as_finite_array, check_positive_int, check_scalar

__all__ = [
    "GOLDEN_ANGLE",
    "check_on_sphere",
    "fibonacci_sphere",
    "funk_hecke_eigenvalues",
    "harmonic_dimension",
    "harmonic_power",
    "legendre",
    "real_spherical_harmonics",
    "zonal",
    "zonal_basis",
]

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

# Zonal centres per degree = N(d, l) + oversampling; with ~25 % extra centres the zonal design on
# 20 000 points has condition number ≲ 25 on its top-N(d, l) singular values (vs up to 1e4 with exactly
# N(d, l) centres), while the rank gap below them stays at machine precision.
_OVERSAMPLE = 0.25


# ----------------------------------------------------------------------------------------------- checks
def check_on_sphere(name: str, points: Any, d: int | None = None) -> np.ndarray:
    """``points`` as a float64 array ``(N, d)`` of unit vectors, or a one-line :class:`LearnscopeError`.

    Accepts numpy arrays, torch tensors (detached, moved to the CPU) and nested lists. Raises
    :class:`ShapeError` for a non-numeric input or a shape other than ``(N, d)`` (``(N, ·)`` if ``d`` is None),
    :class:`NonFiniteError` for NaN/inf and :class:`ConfigError` unless every row has norm 1 within 1e-6.
    """
    x = as_finite_array(name, points)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        want = "(N, d)" if d is None else f"(N, {d})"
        raise ShapeError(f"{name} must have shape {want}, got {x.shape}")
    err = np.abs(np.linalg.norm(x, axis=1) - 1.0).max(initial=0.0)
    if err > 1e-6:
        raise ConfigError(f"{name} must lie on the unit sphere (max |‖x‖ − 1| = {err:.2e})")
    return x


# ----------------------------------------------------------------------------------------------- points
def fibonacci_sphere(n: int) -> np.ndarray:
    """Fibonacci lattice of ``n`` near-equal-area points on S² ⊂ R³: shape ``(n, 3)``.

    .. math:: z_i = 1 - \\frac{2i + 1}{n},\\quad \\phi_i = i\\,\\pi(3 - \\sqrt5),\\quad
              x_i = (\\sqrt{1 - z_i^2}\\cos\\phi_i, \\sqrt{1 - z_i^2}\\sin\\phi_i, z_i)

    Every point owns (almost exactly) the same area, so the plain mean over the points is an equal-weight
    quadrature of the uniform measure; smooth functions are integrated with error far below Monte Carlo.
    """
    check_positive_int("n", n)
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = np.mod(i * GOLDEN_ANGLE, 2.0 * math.pi)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


# ------------------------------------------------------------------------------------ degrees and profiles
def harmonic_dimension(d: int, l: int) -> int:
    """Dimension N(d, l) of the space of degree-``l`` spherical harmonics on S^{d−1} ⊂ R^d.

    .. math:: N(d, l) = \\binom{l + d - 1}{l} - \\binom{l + d - 3}{l - 2}

    (homogeneous polynomials of degree l minus those of degree l − 2); N(3, l) = 2l + 1, N(2, l≥1) = 2,
    N(4, l) = (l + 1)². ``d ≥ 2``, ``l ≥ 0``; returns a Python int.
    """
    d = check_scalar("d", d, int, low=2)
    l = check_scalar("l", l, int, low=0)
    return math.comb(l + d - 1, l) - (math.comb(l + d - 3, l - 2) if l >= 2 else 0)


def zonal(d: int, l: int, t: np.ndarray) -> np.ndarray:
    """The zonal profile of degree ``l`` on S^{d−1} at ``t = x·y``: same shape as ``t``.

    .. math:: Z_l(t) = C_l^{((d-2)/2)}(t)\\ (d \\ge 3), \\qquad Z_l(t) = T_l(t)\\ (d = 2)

    (Gegenbauer / Chebyshev, scipy's normalisation). y ↦ Z_l(x·y) lies in H_l for every x. ``t`` in [−1, 1].
    """
    import scipy.special as sps  # here, not at the top: ``import learnscope.domains`` stays free of scipy

    if d == 2:
        return sps.eval_chebyt(l, t)
    return sps.eval_gegenbauer(l, (d - 2) / 2.0, t)


def legendre(d: int, l: int, t: np.ndarray) -> np.ndarray:
    """The Legendre polynomial of dimension d, P_l(t) = Z_l(t) / Z_l(1) (so P_l(1) = 1): same shape as ``t``.

    For d = 3 the ordinary Legendre polynomial; for d = 2 the Chebyshev T_l. With it the addition theorem reads
    Σ_m Y_lm(x) Y_lm(y) = N(d, l) P_l(x·y).
    """
    return zonal(d, l, t) / zonal(d, l, np.ones(1))[0]


# ------------------------------------------------------------------------------------------------ bases
def zonal_basis(x: np.ndarray, l: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Basis of the degree-l harmonics on the rows of ``x`` ``(N, d)`` (unit vectors) and the exact L² Gram.

    Returns ``q`` of shape ``(N, N(d, l))``, orthonormal in the Euclidean sense on the points, and ``m`` of
    shape ``(N(d, l), N(d, l))`` with ``c @ m @ c`` = ∫ (q c)² dσ, the mean square of the component q c
    under the uniform probability measure (exact, not a sum over the points).

    The degree-l space is spanned by zonal functions Z_l(x·p_j) around generic centres p_j; we take
    N(d, l) plus ~25 % extra centres drawn from ``rng`` and keep the top N(d, l) left singular vectors of that
    design (needs ``N`` ≥ that many points). By the reproducing property of the zonal kernel N(d, l) P_l(x·y),

    .. math:: \\int Z_l(x\\cdot p)\\,Z_l(x\\cdot q)\\,d\\sigma(x) = \\frac{Z_l(1)\\,Z_l(p\\cdot q)}{N(d, l)},

    which gives ``m`` from the change of basis q = Z D⁻¹ V S⁻¹ (Z the zonal design, D its column norms).
    Degree 0 draws nothing from ``rng``: q = 1/√N, m = 1/N.
    """
    n, d = x.shape
    dim = harmonic_dimension(d, l)
    if l == 0:
        return np.full((n, 1), 1.0 / math.sqrt(n)), np.full((1, 1), 1.0 / n)
    k = dim + max(2, math.ceil(_OVERSAMPLE * dim))
    p = rng.standard_normal((k, d))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    z = zonal(d, l, np.clip(x @ p.T, -1.0, 1.0))
    norms = np.linalg.norm(z, axis=0)
    u, s, vt = np.linalg.svd(z / norms, full_matrices=False)
    b = vt[:dim].T / s[:dim] / norms[:, None]  # q = z @ b, shape (k, dim)
    c1 = float(zonal(d, l, np.ones(1))[0])
    gram = c1 * zonal(d, l, np.clip(p @ p.T, -1.0, 1.0)) / dim
    m = b.T @ gram @ b
    return u[:, :dim], (m + m.T) / 2


def real_spherical_harmonics(l_max: int, points: Any) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Real spherical harmonics of degree ≤ ``l_max`` on S²: values ``(N, (l_max + 1)²)`` and (l, m) labels.

    Orthonormal w.r.t. the uniform probability measure (mean of Y² over the sphere = 1), built from
    ``scipy.special.sph_harm_y(l, m, polar, azimuth)`` with polar = arccos z, azimuth = atan2(y, x):

    .. math:: Y_{l0} = \\sqrt{4\\pi}\\,Y_l^0,\\quad
              Y_{lm} = \\sqrt{8\\pi}\\,(-1)^m\\,\\mathrm{Re}\\,Y_l^{m}\\ (m > 0),\\quad
              Y_{lm} = \\sqrt{8\\pi}\\,(-1)^m\\,\\mathrm{Im}\\,Y_l^{|m|}\\ (m < 0).

    Columns are ordered l = 0, 1, …, and within a degree m = −l, …, l. ``points`` is ``(N, 3)`` on the unit
    sphere (checked by :func:`check_on_sphere`).
    """
    import scipy.special as sps

    l_max = check_scalar("l_max", l_max, int, low=0)
    x = check_on_sphere("points", points, 3)
    labels = [(l, m) for l in range(l_max + 1) for m in range(-l, l + 1)]
    ls = np.array([lm[0] for lm in labels])
    ms = np.array([lm[1] for lm in labels])
    polar = np.arccos(np.clip(x[:, 2], -1.0, 1.0))[:, None]
    azimuth = np.arctan2(x[:, 1], x[:, 0])[:, None]
    y = sps.sph_harm_y(ls[None, :], np.abs(ms)[None, :], polar, azimuth)
    sign = np.where(ms % 2 == 0, 1.0, -1.0)
    out = np.where(
        ms == 0,
        math.sqrt(4 * math.pi) * y.real,
        math.sqrt(8 * math.pi) * sign * np.where(ms > 0, y.real, y.imag),
    )
    return out, labels


# ------------------------------------------------------------------------------------------ Funk–Hecke
def funk_hecke_eigenvalues(
    profile: Callable[[np.ndarray], np.ndarray], d: int, max_degree: int, nodes: int = 400
) -> np.ndarray:
    """Funk–Hecke eigenvalues λ_0..λ_L of the zonal kernel k(x·x') on S^{d−1}, given as a function of the angle.

    A kernel that depends on x·x' = cos θ only acts on every Y ∈ H_l as ∫ k(x·x') Y(x') dσ(x') = λ_l Y(x), with

    .. math::

        \\lambda_l = \\frac{\\int_0^\\pi k(\\cos\\theta)\\,P_l(\\cos\\theta)\\,\\sin^{d-2}\\theta\\,d\\theta}
                          {\\int_0^\\pi \\sin^{d-2}\\theta\\,d\\theta}

    (P_l = :func:`legendre`), and k(t) = Σ_l N(d, l) λ_l P_l(t) (Mercer). The integral over θ is taken by
    ``nodes``-point Gauss–Legendre quadrature; this converges exponentially when k is analytic in θ, which is
    the case for the arc-cosine and ReLU kernels (they are not analytic in t = cos θ at t = ±1, so Gauss–Gegenbauer
    quadrature in t would converge only algebraically).

    profile : vectorised θ ↦ k(cos θ) on ``(nodes,)`` angles in (0, π); d : ≥ 2; max_degree : L ≥ 0.
    Returns a float64 array of shape ``(L + 1,)``.
    """
    d = check_scalar("d", d, int, low=2, note="the sphere S^(d-1) in R^d")
    max_degree = check_scalar("max_degree", max_degree, int, low=0)
    nodes = check_positive_int("nodes", nodes)
    if not callable(profile):
        raise ConfigError(f"profile must be a callable θ -> k(cos θ), got {type(profile).__name__}")
    from scipy.special import roots_legendre

    u, w = roots_legendre(nodes)
    theta = (u + 1.0) * (math.pi / 2.0)
    weight = w * np.sin(theta) ** (d - 2)
    k = np.asarray(profile(theta), dtype=np.float64)
    if k.shape != theta.shape:
        raise ShapeError(f"profile must map {theta.shape} angles to {theta.shape} values, got {k.shape}")
    t = np.cos(theta)
    lam = np.empty(max_degree + 1)
    for ell in range(max_degree + 1):
        lam[ell] = np.sum(weight * k * legendre(d, ell, t)) / np.sum(weight)
    return lam


# ------------------------------------------------------------------------------------ energy per degree
def harmonic_power(values: Any, points: Any, max_degree: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Absolute energy (mean square under σ) of a function in each degree 0..L, plus the rest: ``(L + 2,)``.

    ``values`` ``(N,)`` are f at ``points`` ``(N, d)`` (unit vectors). Entry l ≤ L is ‖Π_l f‖² = ∫ (Π_l f)² dσ, with
    Π_l the orthogonal projection onto H_l; the last entry is ‖f‖² − Σ_l ‖Π_l f‖² (energy above degree L), so the
    entries sum to the mean square of f. Unlike ``bias.measures.harmonic_energy`` these are not fractions.

    Two estimators:

    * P = Σ_{l ≤ L} N(d, l) ≤ min(N/2, 3000): least squares on the :func:`zonal_basis` of every degree jointly,
      f ≈ Σ_l Q_l c_l + r, with ‖Π_l f‖² = c_lᵀ M_l c_l exact (the closed-form L² Gram) and the rest the mean of r²
      over the points. Exact for f of degree ≤ L on any point set; otherwise aliasing as for any finite set.
    * otherwise (high dimension: too many harmonics to fit), the unbiased U-statistic of the projection kernel
      N(d, l) P_l(x·y) of H_l (addition theorem), for points drawn from σ:

      .. math:: \\|\\Pi_l f\\|^2 \\approx \\frac{N(d, l)}{N(N-1)} \\sum_{i \\ne j} f(x_i) f(x_j) P_l(x_i \\cdot x_j).

    ``rng`` draws the zonal centres (the result does not depend on them beyond rounding); default a fixed stream.
    """
    max_degree = check_scalar("max_degree", max_degree, int, low=0)
    x = check_on_sphere("points", points)
    f = as_finite_array("values", values)
    n, d = x.shape
    if f.shape != (n,):
        raise ShapeError(f"values must have shape ({n},) to match points {x.shape}, got {f.shape}")
    if n < 2:
        raise ConfigError(f"harmonic_power needs at least 2 points, got {n}")
    dims = [harmonic_dimension(d, l) for l in range(max_degree + 1)]
    total = float(f @ f) / n
    out = np.empty(max_degree + 2)
    if sum(dims) <= min(n // 2, 3000):
        if rng is None:
            rng = np.random.default_rng([0, 1])
        blocks = [zonal_basis(x, l, rng) for l in range(max_degree + 1)]
        design = np.concatenate([q for q, _ in blocks], axis=1)
        coef, *_ = np.linalg.lstsq(design, f, rcond=None)
        start = 0
        for l, (q, m) in enumerate(blocks):
            c = coef[start : start + q.shape[1]]
            out[l] = max(float(c @ m @ c), 0.0)
            start += q.shape[1]
        resid = f - design @ coef
        out[-1] = float(resid @ resid) / n
        return out
    t = np.clip(x @ x.T, -1.0, 1.0)
    ff = np.outer(f, f)
    np.fill_diagonal(ff, 0.0)
    for l in range(max_degree + 1):
        out[l] = max(dims[l] * float(np.sum(ff * legendre(d, l, t))) / (n * (n - 1)), 0.0)
    out[-1] = max(total - float(out[:-1].sum()), 0.0)
    return out
