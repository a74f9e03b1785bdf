"""Kernel profiles and spectra (learnscope.theory.profiles / spectra): Funk–Hecke against closed forms, the spec's
independent numbers, the addition theorem and Nyström; Nyström for a kernel that is not rotation-invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.domains import Disc, Sphere
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners import CircuitLearner, KernelRidge, RandomFeatureRidge, Ridge, arccos_eigenvalues
from learnscope.spherical import fibonacci_sphere, harmonic_dimension, harmonic_power, legendre
from learnscope.theory import (
    Spectrum,
    arccos_profile,
    funk_hecke_spectrum,
    learner_spectrum,
    nystrom_spectrum,
    profile_of,
    rbf_profile,
    relu_nngp_profile,
    relu_ntk_profile,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _zonal_kernel(profile):
    return lambda a, b: profile(np.clip(a @ b.T, -1.0, 1.0))


# ------------------------------------------------------------------------------------------------ profiles
@pytest.mark.parametrize(
    ("name", "params", "d"),
    [
        ("arccos0", {}, 3),
        ("arccos1", {}, 3),
        ("rbf", {"lengthscale": 0.7}, 4),
        ("nngp", {"depth": 1}, 3),
        ("nngp", {"depth": 3, "sigma_w2": 1.5, "sigma_b2": 0.2}, 5),
        ("ntk", {"depth": 2}, 3),
        ("ntk", {"depth": 3, "sigma_w2": 2.5, "sigma_b2": 0.1}, 6),
    ],
)
def test_profiles_equal_the_torch_kernels_at_unit_inputs(name: str, params: dict, d: int) -> None:
    """k(t) of theory.profiles == learners.kernels' Gram matrix on unit vectors (float64)."""
    x = _unit(np.random.default_rng(3), 40, d)
    learner = KernelRidge(name, **params)
    xt = torch.from_numpy(x)[None]
    gram = learner.gram(xt, xt)[0].numpy()  # the same tensor: the kernels set the diagonal cos θ to 1
    t = np.clip(x @ x.T, -1.0, 1.0)
    np.fill_diagonal(t, 1.0)  # x·x rounds to 1 − ε, where the angle kernels have an infinite slope in t
    np.testing.assert_allclose(learner.profile(d)(t), gram, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(profile_of(name, d, **params)(t), gram, rtol=1e-10, atol=1e-12)


def test_profile_errors() -> None:
    with pytest.raises(ConfigError):
        KernelRidge(lambda a, b: a @ b.transpose(-1, -2)).profile(3)
    with pytest.raises(UnknownNameError):
        profile_of("arcos1", 3)
    with pytest.raises(ConfigError):
        arccos_profile(2)


# ------------------------------------------------------------------------------------------------ Funk–Hecke
def test_arccos1_on_s2_matches_the_spec_and_has_exactly_zero_odd_degrees() -> None:
    """wave2-spec §2.2 (an independent simulation): λ = 0.1875, 0.0833, 0.0117, 0, 3.3e-4 (tolerance: their
    rounding); λ_0 = 3/16, λ_1 = 1/12 exactly; odd degrees ≥ 3 vanish (≤ 1e-12); multiplicities 2l + 1."""
    spec = funk_hecke_spectrum(arccos_profile(1), 3, max_degree=15)
    table = [0.1875, 0.0833, 0.0117, 0.0, 3.3e-4]
    half_unit = [5e-5, 5e-5, 5e-5, 1e-12, 5e-6]
    for ell, (v, tol) in enumerate(zip(table, half_unit, strict=True)):
        assert abs(spec.eigenvalues[ell] - v) <= tol, (ell, spec.eigenvalues[ell])
    assert spec.eigenvalues[0] == pytest.approx(3 / 16, rel=1e-12)
    assert spec.eigenvalues[1] == pytest.approx(1 / 12, rel=1e-12)
    assert np.all(np.abs(spec.eigenvalues[3::2]) <= 1e-12)
    assert np.all(spec.eigenvalues[0:15:2] > 1e-7)  # even degrees do not vanish
    np.testing.assert_array_equal(spec.multiplicity, 2 * np.arange(16) + 1)
    assert spec.labels[:2] == ("degree 0", "degree 1") and spec.kind == "funk_hecke" and spec.d == 3
    # agrees with the older θ-profile implementation in learners.kernels
    np.testing.assert_allclose(spec.eigenvalues, arccos_eigenvalues(1, 3, 15), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(
    ("profile", "d", "L", "tol", "trace_tol"),
    [
        (rbf_profile(1.0), 3, 30, 1e-12, 1e-12),
        (rbf_profile(0.5), 6, 40, 1e-12, 1e-12),
        (arccos_profile(1), 3, 200, 1e-6, 1e-6),
        (relu_ntk_profile(5, depth=2), 5, 200, 1e-4, 5e-3),
        (relu_nngp_profile(4, depth=2, sigma_b2=0.3), 4, 200, 1e-5, 1e-4),
    ],
)
def test_funk_hecke_eigenvalues_reproduce_the_kernel(profile, d: int, L: int, tol: float, trace_tol: float) -> None:
    """Addition theorem k(t) = Σ_l λ_l N(d, l) P_l(t) at interior t, and the trace Σ_l λ_l N(d, l) = k(1). The
    series of the ReLU kernels converge algebraically (the NTK's N(d, l) λ_l ~ l^-2: a tail ~ 1/L at t = 1),
    hence the looser tolerances; the trace is always below k(1), by the positive tail."""
    spec = funk_hecke_spectrum(profile, d, max_degree=L)
    t = np.array([-0.95, -0.5, 0.0, 0.3, 0.7, 0.9])
    series = sum(spec.eigenvalues[l] * spec.multiplicity[l] * legendre(d, l, t) for l in range(L + 1))
    np.testing.assert_allclose(series, profile(t), atol=tol)
    k1 = float(profile(np.ones(1))[0])
    assert spec.trace == pytest.approx(k1, abs=trace_tol)
    assert spec.trace <= k1 + 1e-12


def test_a_profile_that_is_not_positive_definite_is_refused() -> None:
    with pytest.raises(ConfigError, match="positive semi-definite"):
        funk_hecke_spectrum(lambda t: t - 0.5 * t**3, 3, 4)  # λ_3 < 0
    with pytest.raises(ConfigError):
        funk_hecke_spectrum(3.0, 3, 4)  # type: ignore[arg-type]


def test_ranking_skips_the_constant_and_puts_the_zero_degrees_last() -> None:
    spec = funk_hecke_spectrum(arccos_profile(1), 3, max_degree=9)
    np.testing.assert_array_equal(spec.ranking(), [1, 2, 4, 6, 8, 3, 5, 7, 9])
    assert spec.ranking(skip_constant=False)[0] == 0


# ------------------------------------------------------------------------------------------------ Nyström
@pytest.mark.parametrize("profile", [arccos_profile(1), rbf_profile(1.0)], ids=["arccos1", "rbf"])
def test_nystrom_agrees_with_funk_hecke_for_exact_kernels_on_s2(profile) -> None:
    """M = 1500 uniform random points: the Nyström eigenvalues, grouped into degrees in Funk–Hecke order (N(3, l)
    consecutive modes per degree), average to the Funk–Hecke λ_l within 3 % for the leading four levels; the
    degree-1 Nyström eigenvectors are (by the exact harmonic projection) linear functions."""
    fh = funk_hecke_spectrum(profile, 3, max_degree=12)
    x = _unit(np.random.default_rng(0), 1500, 3)
    ny = nystrom_spectrum(_zonal_kernel(profile), x)
    start = 0
    for level in fh.ranking(skip_constant=False)[:4]:
        m = int(fh.multiplicity[level])
        mean = ny.eigenvalues[start : start + m].mean()
        assert mean == pytest.approx(fh.eigenvalues[level], rel=0.03), (level, mean, fh.eigenvalues[level])
        start += m
    np.testing.assert_allclose(ny.eigenvectors.T @ ny.eigenvectors / len(x), np.eye(len(ny)), atol=1e-8)
    for i in (1, 2, 3):  # modes 2..4: degree 1
        power = fh.coefficients_sq(ny.eigenvectors[:, i], x, remainder=True)
        assert power[1] / power.sum() > 0.99
    assert ny.constant_level() == 0 and ny.ranking()[0] == 1


def test_nystrom_of_a_linear_kernel_recovers_the_principal_axis() -> None:
    """k(x, x′) = x·x′ with x ~ N(0, diag(1, 2, 4)): the operator's eigenvalues are 4, 2, 1 with eigenfunctions
    x_3/2, x_2/√2, x_1 (E φ² = 1); Nyström on 800 samples recovers them within Monte Carlo error."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((800, 3)) * np.sqrt([1.0, 2.0, 4.0])
    ny = nystrom_spectrum(lambda a, b: a @ b.T, x)
    assert len(ny) == 3  # rank 3: the numerically zero modes are dropped
    np.testing.assert_allclose(ny.eigenvalues, [4.0, 2.0, 1.0], rtol=0.15)
    for i, axis in enumerate((2, 1, 0)):
        corr = np.corrcoef(ny.eigenvectors[:, i], x[:, axis])[0, 1]
        assert abs(corr) > 0.97, (i, corr)
    # the Nyström extension reproduces the eigenvectors at the sample and is the linear function elsewhere
    np.testing.assert_allclose(ny.eigenfunctions(x), ny.eigenvectors, atol=1e-8)
    xn = rng.standard_normal((50, 3))
    w = np.linalg.lstsq(x, ny.eigenvectors[:, 0], rcond=None)[0]
    np.testing.assert_allclose(ny.eigenfunctions(xn)[:, 0], xn @ w, atol=1e-8)


@pytest.mark.parametrize(("c", "on_x3"), [(0.5, False), (0.8, False), (1.25, True), (2.0, True)])
def test_anisotropic_random_features_put_the_top_mode_where_the_variance_is(c: float, on_x3: bool) -> None:
    """RandomFeatureRidge with variances (1, 1, c) on S² is not rotation-invariant: learner_spectrum goes through
    Nyström of its expected kernel; the top non-constant mode is ∝ x₃ for c > 1 and lies in span(x₁, x₂) for
    c < 1 (wave2-spec §2.3 item 5: the switch at c = 1), judged by the share of its linear fit's weight on x₃."""
    learner = RandomFeatureRidge(features=100, variances=(1.0, 1.0, c))
    spec = learner_spectrum(learner, Sphere(3), samples=600, seed=1)
    assert spec.kind == "nystrom" and spec.points.shape == (600, 3)
    top = spec.ranking()[0]
    w = np.linalg.lstsq(spec.points, spec.eigenvectors[:, top], rcond=None)[0]
    share = w[2] ** 2 / np.sum(w**2)
    assert (share > 0.95) if on_x3 else (share < 0.05), share


def test_nystrom_errors() -> None:
    x = _unit(np.random.default_rng(0), 10, 3)
    with pytest.raises(ShapeError):
        nystrom_spectrum(lambda a, b: np.ones((3, 3)), x)
    with pytest.raises(ConfigError, match="positive semi-definite"):
        nystrom_spectrum(lambda a, b: -(a @ b.T), x)
    with pytest.raises(ConfigError):
        Spectrum(np.array([1.0, -1.0]), np.ones(2), ("a", "b"), "nystrom")


# ------------------------------------------------------------------------------------------------ learners
def test_learner_spectrum_uses_funk_hecke_for_rotation_invariant_kernels_in_the_learner_normalisation() -> None:
    """Unnormalised random features: F Fᵀ → K·k₁ (K features), so λ = K × the arc-cosine eigenvalues; with
    normalise=True and variances v, v × them; the ntk profile binds d; Ridge's linear kernel has λ_1 = 1/d only."""
    L = 8
    base = arccos_eigenvalues(1, 3, L)
    rf = learner_spectrum(RandomFeatureRidge(features=100), Sphere(3), max_degree=L)
    assert rf.kind == "funk_hecke"
    np.testing.assert_allclose(rf.eigenvalues, 100 * base, rtol=1e-10, atol=1e-13)
    rf2 = learner_spectrum(RandomFeatureRidge(normalise=True, variances=(2.0, 2.0, 2.0)), "sphere", max_degree=L)
    np.testing.assert_allclose(rf2.eigenvalues, 2 * base, rtol=1e-10, atol=1e-13)
    ntk = learner_spectrum(KernelRidge("ntk", depth=2), Sphere(5), max_degree=L)
    np.testing.assert_allclose(ntk.eigenvalues, funk_hecke_spectrum(relu_ntk_profile(5, 2), 5, L).eigenvalues)
    lin = learner_spectrum(Ridge(), {"name": "sphere", "dim": 4}, max_degree=3)
    np.testing.assert_allclose(lin.eigenvalues, [0.0, 0.25, 0.0, 0.0], atol=1e-14)
    assert lin.multiplicity[1] == 4


def test_learner_spectrum_falls_back_to_nystrom_and_refuses_learners_without_a_kernel() -> None:
    """Off the sphere, or with a custom kernel: Nyström of the learner's own Gram (whose trace is E k(x, x))."""
    disc = learner_spectrum(KernelRidge("rbf", lengthscale=0.5), Disc(), samples=300)
    assert disc.kind == "nystrom" and disc.trace == pytest.approx(1.0, rel=1e-8)  # k(x, x) = 1
    custom = learner_spectrum(KernelRidge(lambda a, b: (a @ b.transpose(-1, -2)) ** 2), Sphere(3), samples=300)
    assert custom.kind == "nystrom" and custom.trace == pytest.approx(1.0, rel=1e-8)
    with pytest.raises(ConfigError, match="no kernel"):
        learner_spectrum(CircuitLearner(), Sphere(3))
    with pytest.raises(ConfigError, match="bias=False"):
        learner_spectrum(Ridge(bias=True), Sphere(3))


# ------------------------------------------------------------------------------------------------ coefficients
def test_funk_hecke_coefficients_are_exact_energies_per_degree() -> None:
    """f = 0.6 √3 x₃ + 0.8 √5 P₂(x·p) + 0.5 on 400 random points: energies (0.25, 0.36, 0.64, 0, …) exactly
    (the zonal √N(d, l) P_l has unit mean square), remainder 0; consistent with bias.measures.harmonic_energy."""
    from learnscope.bias.measures import harmonic_energy

    rng = np.random.default_rng(2)
    x = _unit(rng, 400, 3)
    p = _unit(rng, 1, 3)[0]

    def f(pts):
        return 0.6 * math.sqrt(3) * pts[:, 2] + 0.8 * math.sqrt(5) * legendre(3, 2, pts @ p) + 0.5

    spec = funk_hecke_spectrum(arccos_profile(1), 3, max_degree=6)
    power = spec.coefficients_sq(f(x), x, remainder=True)
    np.testing.assert_allclose(power, [0.25, 0.36, 0.64, 0, 0, 0, 0, 0], atol=1e-10)
    np.testing.assert_allclose(spec.coefficients_sq(f(x), x), power[:-1])
    frac = harmonic_energy(f, 3, max_degree=6, n_points=2000)
    np.testing.assert_allclose(power / power.sum(), frac, atol=1e-6)


def test_harmonic_power_in_high_dimension_uses_the_unbiased_projection_estimate() -> None:
    """d = 12, degrees ≤ 3 (442 harmonics > N/2): the U-statistic of N(d, l) P_l; f = √12 x₁ has energy 1 in
    degree 1; the Monte Carlo error with N = 600 is ≈ 0.06."""
    x = _unit(np.random.default_rng(4), 600, 12)
    power = harmonic_power(math.sqrt(12) * x[:, 0], x, 3)
    assert harmonic_dimension(12, 3) > 300
    assert power[1] == pytest.approx(1.0, abs=0.2)
    assert np.all(np.abs(power[[0, 2, 3]]) < 0.1)
    rest = np.mean(12 * x[:, 0] ** 2) - power[:-1].sum()  # the remainder: the rest of the mean square, clipped at 0
    assert power[-1] == pytest.approx(max(rest, 0.0), abs=1e-12)


def test_nystrom_coefficients_on_the_sample_sum_to_the_mean_square() -> None:
    x = _unit(np.random.default_rng(6), 200, 3)
    spec = nystrom_spectrum(_zonal_kernel(rbf_profile(0.5)), x)
    f = np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2]
    v2 = spec.coefficients_sq(f, x, remainder=True)
    assert v2.sum() == pytest.approx(np.mean(f**2), rel=1e-10)
    assert v2[-1] == pytest.approx(np.mean(f**2) - v2[:-1].sum(), abs=1e-12)
    # off the sample, through the Nyström extension: √3 x₃ (unit energy, degree 1) lies in modes 2–4 (degree 1), up
    # to the Monte Carlo error of the 800-point sample (its modes mix degrees at O(1/√M))
    big = nystrom_spectrum(_zonal_kernel(rbf_profile(0.5)), _unit(np.random.default_rng(7), 800, 3), top=20)
    xf = fibonacci_sphere(3000)
    e = big.coefficients_sq(math.sqrt(3) * xf[:, 2], xf)
    assert e[1:4].sum() == pytest.approx(1.0, abs=0.05) and e[0] < 0.02 and e[4:].sum() < 0.15
