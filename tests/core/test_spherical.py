"""Spherical math against independent references: closed forms, scipy's polynomial objects and its complex
spherical harmonics, Gauss quadrature, and the Bessel expansions of the exponential kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps
import torch
from scipy.integrate import quad

from learnscope.errors import ConfigError, NonFiniteError, ShapeError
from learnscope.spherical import (
    check_on_sphere,
    fibonacci_sphere,
    funk_hecke_eigenvalues,
    harmonic_dimension,
    legendre,
    real_spherical_harmonics,
    zonal,
    zonal_basis,
)

LATTICE = fibonacci_sphere(20000)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    g = rng.standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------ Fibonacci lattice
def test_fibonacci_sphere_quadrature_closed_form():
    """mean over the lattice of exp(a·x) vs the exact sphere average sinh|a|/|a|."""
    x = fibonacci_sphere(2000)
    assert x.shape == (2000, 3)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    a = np.array([0.7, -0.4, 1.1])
    exact = math.sinh(np.linalg.norm(a)) / np.linalg.norm(a)
    assert abs(np.exp(x @ a).mean() - exact) < 1e-4 * exact
    # equal-area bands: z is evenly spaced in (-1, 1) (Archimedes' hat-box theorem)
    dz = np.diff(np.sort(x[:, 2]))
    np.testing.assert_allclose(dz, 2 / 2000, rtol=1e-9)


def test_fibonacci_sphere_rejects_bad_sizes():
    for n in (0, -3, 2.5, True):
        with pytest.raises(ConfigError):
            fibonacci_sphere(n)


# ------------------------------------------------------------------------------------------------ N(d, l)
def test_harmonic_dimension_closed_forms():
    assert [harmonic_dimension(3, l) for l in range(10)] == [2 * l + 1 for l in range(10)]
    assert [harmonic_dimension(2, l) for l in range(5)] == [1, 2, 2, 2, 2]
    assert [harmonic_dimension(4, l) for l in range(6)] == [(l + 1) ** 2 for l in range(6)]  # S³
    # N(d, l) = (2l + d − 2)(l + d − 3)! / (l! (d − 2)!) for l ≥ 1
    for d in (5, 7, 10):
        for l in range(1, 8):
            expected = (2 * l + d - 2) * math.factorial(l + d - 3) // (math.factorial(l) * math.factorial(d - 2))
            assert harmonic_dimension(d, l) == expected


@pytest.mark.parametrize("d", [2, 3, 4, 6])
def test_harmonic_dimension_is_the_inverse_mean_square_of_the_normalised_zonal(d):
    """Addition theorem at x = y: E_σ[P_l(x·e)²] = 1/N(d, l). The law of t = x·e under σ has density
    ∝ (1 − t²)^{(d−3)/2}; the integrals use scipy's quad and scipy's Gegenbauer / Chebyshev directly."""
    w = (lambda t: 1.0) if d == 3 else (lambda t: (1 - t * t) ** ((d - 3) / 2))
    norm = quad(w, -1, 1)[0]
    for l in range(6):
        if d == 2:
            p = lambda t, l=l: sps.eval_chebyt(l, t)  # noqa: E731
        else:
            p = lambda t, l=l: sps.eval_gegenbauer(l, (d - 2) / 2, t) / sps.eval_gegenbauer(l, (d - 2) / 2, 1.0)  # noqa: E731
        mean_sq = quad(lambda t, p=p: p(t) ** 2 * w(t), -1, 1, limit=200)[0] / norm
        assert harmonic_dimension(d, l) == pytest.approx(1 / mean_sq, rel=1e-8)


def test_harmonic_dimension_rejects_bad_arguments():
    for d, l in [(1, 2), (3, -1), (2.0, 1), (3, True)]:
        with pytest.raises(ConfigError):
            harmonic_dimension(d, l)


# ------------------------------------------------------------------------------------------- zonal / Legendre
@pytest.mark.parametrize("d", [3, 4, 7])
def test_zonal_is_scipys_gegenbauer_polynomial(d):
    t = np.linspace(-1, 1, 41)
    for l in range(7):
        ref = sps.gegenbauer(l, (d - 2) / 2)(t)  # a poly1d from the recurrence coefficients, not eval_gegenbauer
        np.testing.assert_allclose(zonal(d, l, t), ref, rtol=1e-10, atol=1e-12)


def test_zonal_on_the_circle_is_chebyshev():
    theta = np.linspace(0, math.pi, 33)
    for l in range(8):
        np.testing.assert_allclose(zonal(2, l, np.cos(theta)), np.cos(l * theta), atol=1e-12)


def test_legendre_is_normalised_and_is_the_legendre_polynomial_on_s2():
    t = np.linspace(-1, 1, 41)
    for d in (2, 3, 5):
        for l in range(6):
            assert legendre(d, l, np.ones(1))[0] == pytest.approx(1.0, abs=1e-14)
    for l in range(8):
        np.testing.assert_allclose(legendre(3, l, t), sps.legendre(l)(t), rtol=1e-10, atol=1e-12)


def test_addition_theorem_against_scipys_complex_harmonics():
    """Σ_m Y_l^m(x) conj(Y_l^m(y)) = N(3, l) P_l(x·y) / (4π), with scipy's complex Y_l^m (m = −l … l)."""
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 6, 3), _unit(rng, 6, 3)

    def angles(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arccos(p[:, 2]), np.arctan2(p[:, 1], p[:, 0])

    (px, ax), (py, ay) = angles(x), angles(y)
    t = (x * y).sum(1)
    for l in range(7):
        s = sum(sps.sph_harm_y(l, m, px, ax) * np.conj(sps.sph_harm_y(l, m, py, ay)) for m in range(-l, l + 1))
        np.testing.assert_allclose(s.real, harmonic_dimension(3, l) * legendre(3, l, t) / (4 * math.pi), atol=1e-12)
        np.testing.assert_allclose(s.imag, 0.0, atol=1e-12)


# -------------------------------------------------------------------------------------------- harmonic bases
def test_real_spherical_harmonics_orthonormal_and_addition_theorem():
    y, labels = real_spherical_harmonics(6, LATTICE)
    assert y.shape == (20000, 49)
    assert labels[:4] == [(0, 0), (1, -1), (1, 0), (1, 1)] and labels[-1] == (6, 6)
    np.testing.assert_allclose(y.T @ y / len(y), np.eye(49), atol=1e-4)
    # the real basis obeys the same addition theorem (with σ a probability measure): Σ_m Y_lm(x)Y_lm(y) = N P_l
    rng = np.random.default_rng(1)
    a, b = _unit(rng, 5, 3), _unit(rng, 5, 3)
    ya, _ = real_spherical_harmonics(6, a)
    yb, _ = real_spherical_harmonics(6, b)
    ls = np.array([lm[0] for lm in labels])
    for l in range(7):
        lhs = (ya[:, ls == l] * yb[:, ls == l]).sum(1)
        np.testing.assert_allclose(lhs, (2 * l + 1) * sps.eval_legendre(l, (a * b).sum(1)), atol=1e-11)


def test_real_spherical_harmonics_low_degree_closed_forms():
    x = _unit(np.random.default_rng(2), 50, 3)
    y, _ = real_spherical_harmonics(1, torch.from_numpy(x))  # tensors are accepted
    np.testing.assert_allclose(y[:, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(y[:, 1:4], math.sqrt(3) * x[:, [1, 2, 0]], atol=1e-12)  # m = −1, 0, 1 -> y, z, x


@pytest.mark.parametrize(("d", "l"), [(3, 2), (3, 5), (5, 3), (2, 4)])
def test_zonal_basis_spans_degree_l_with_the_exact_l2_gram(d, l):
    rng = np.random.default_rng(3)
    x = LATTICE if d == 3 else _unit(rng, 3000, d)
    q, m = zonal_basis(x, l, np.random.default_rng([7, l]))
    n_l = harmonic_dimension(d, l)
    assert q.shape == (len(x), n_l) and m.shape == (n_l, n_l)
    np.testing.assert_allclose(q.T @ q, np.eye(n_l), atol=1e-10)
    # an element of H_l built independently (a zonal function around a fresh pole) lies in span(q) exactly
    pole = _unit(rng, 1, d)[0]
    f = legendre(d, l, np.clip(x @ pole, -1, 1))
    resid = f - q @ (q.T @ f)
    assert np.linalg.norm(resid) < 1e-9 * np.linalg.norm(f)
    # c @ m @ c is the uniform-measure mean square of q c: exactly 1/N(d, l) for f (addition theorem at x = y)
    c = q.T @ f
    assert c @ m @ c == pytest.approx(1 / n_l, rel=1e-9)
    if d == 3:  # ... and on S² real harmonics of degree l are in the span too, with unit mean square
        y, labels = real_spherical_harmonics(l, x)
        ys = y[:, [i for i, lm in enumerate(labels) if lm[0] == l]]
        np.testing.assert_allclose(ys - q @ (q.T @ ys), 0.0, atol=1e-9)
        cs = q.T @ ys
        np.testing.assert_allclose(cs.T @ m @ cs, np.eye(n_l), atol=1e-9)


def test_zonal_basis_degree_zero_is_the_constant_and_draws_nothing():
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    q, m = zonal_basis(LATTICE[:100], 0, rng)
    np.testing.assert_allclose(q, 0.1)
    assert m.shape == (1, 1) and m[0, 0] == pytest.approx(0.01)
    assert rng.bit_generator.state == state


# ------------------------------------------------------------------------------------------------ Funk–Hecke
def test_funk_hecke_of_the_exponential_kernel_on_s2_is_the_modified_spherical_bessel():
    """e^{κ x·y} = Σ_l (2l + 1) i_l(κ) P_l(x·y) (plane-wave expansion), so λ_l = i_l(κ) on S²."""
    kappa = 1.7
    lam = funk_hecke_eigenvalues(lambda th: np.exp(kappa * np.cos(th)), 3, 10)
    assert lam.shape == (11,)
    np.testing.assert_allclose(lam, sps.spherical_in(np.arange(11), kappa), rtol=1e-12, atol=1e-15)


def test_funk_hecke_of_the_exponential_kernel_on_the_circle_is_bessel_i():
    """e^{κ cos θ} = I_0(κ) + 2 Σ_{l≥1} I_l(κ) cos(lθ) (Jacobi–Anger), N(2, l) = 2, so λ_l = I_l(κ)."""
    kappa = 0.9
    lam = funk_hecke_eigenvalues(lambda th: np.exp(kappa * np.cos(th)), 2, 8)
    np.testing.assert_allclose(lam, sps.iv(np.arange(9), kappa), rtol=1e-12, atol=1e-13)  # cancellation ~1e-14


@pytest.mark.parametrize("d", [3, 5])
def test_funk_hecke_of_a_legendre_kernel_is_diagonal(d):
    """k = P_j: by orthogonality λ_l = δ_lj / N(d, j)."""
    j = 3
    lam = funk_hecke_eigenvalues(lambda th: legendre(d, j, np.cos(th)), d, 6)
    expected = np.zeros(7)
    expected[j] = 1 / harmonic_dimension(d, j)
    np.testing.assert_allclose(lam, expected, atol=1e-13)


def test_funk_hecke_argument_errors():
    ok = np.cos
    with pytest.raises(ConfigError, match="d must be an integer >= 2"):
        funk_hecke_eigenvalues(ok, 1, 3)
    with pytest.raises(ConfigError, match="max_degree"):
        funk_hecke_eigenvalues(ok, 3, -1)
    with pytest.raises(ConfigError, match="nodes"):
        funk_hecke_eigenvalues(ok, 3, 2, nodes=0)
    with pytest.raises(ConfigError, match="profile"):
        funk_hecke_eigenvalues(3.0, 3, 2)
    with pytest.raises(ShapeError, match="profile"):
        funk_hecke_eigenvalues(lambda th: np.ones(3), 3, 2)


# ------------------------------------------------------------------------------------------------- checks
def test_check_on_sphere_accepts_unit_rows_and_rejects_everything_else():
    x = fibonacci_sphere(10)
    assert check_on_sphere("p", x, 3).dtype == np.float64
    np.testing.assert_array_equal(check_on_sphere("p", torch.from_numpy(x).float(), 3), x.astype(np.float32))
    with pytest.raises(ShapeError, match=r"p must have shape \(N, 4\)"):
        check_on_sphere("p", x, 4)
    with pytest.raises(ShapeError):
        check_on_sphere("p", x[0])
    with pytest.raises(ShapeError, match="numeric"):
        check_on_sphere("p", [["a", "b", "c"]])
    with pytest.raises(NonFiniteError):
        check_on_sphere("p", np.full((2, 3), np.nan))
    with pytest.raises(ConfigError, match="unit sphere"):
        check_on_sphere("p", 2 * x)
    with pytest.raises(ShapeError):
        real_spherical_harmonics(2, _unit(np.random.default_rng(5), 10, 5))
