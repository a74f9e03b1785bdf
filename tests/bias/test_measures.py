"""Tests of learnscope.bias.measures against closed forms, scipy and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps
import torch
from scipy.integrate import quad
from sklearn.linear_model import LinearRegression

from learnscope import spherical
from learnscope.bias import measures
from learnscope.bias.measures import (
    affine_r2,
    fibonacci_sphere,
    fourier_energy,
    generalisation_error,
    harmonic_energy,
    linear_fit,
    mean_products,
    overlap_matrix,
    paired_generalisation_difference,
    real_spherical_harmonics,
    refit_half_mse,
    sphere_points,
)
from learnscope.domains import Sphere
from learnscope.errors import ConfigError, LearnscopeError, NonFiniteError, ShapeError

LATTICE = fibonacci_sphere(20000)


def _sh_combination(l: int, coeffs: np.ndarray, l_max: int = 6):
    """f(x) = Σ_m a_m Y_lm(x), built from the scipy-based real harmonics."""

    def f(x: np.ndarray) -> np.ndarray:
        y, labels = real_spherical_harmonics(l_max, x)
        cols = [i for i, (ll, _) in enumerate(labels) if ll == l]
        return y[:, cols] @ coeffs

    return f


def _theta(x: np.ndarray) -> np.ndarray:
    return np.arctan2(x[:, 1], x[:, 0])


# ------------------------------------------------------------------------------------------------ points
def test_sphere_points_lattice_for_s2_and_seeded_random_otherwise():
    np.testing.assert_array_equal(sphere_points(3, 500, seed=4), fibonacci_sphere(500))
    a, b, c = sphere_points(5, 3000, seed=1), sphere_points(5, 3000, seed=1), sphere_points(5, 3000, seed=2)
    assert a.shape == (3000, 5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # uniform on S⁴: E[x_i²] = 1/5 (Monte Carlo, 3000 points: sd ≈ 0.003)
    np.testing.assert_allclose((a**2).mean(axis=0), 0.2, atol=0.015)


# --------------------------------------------------------------------------------------------- harmonics
def test_spherical_math_is_spherical_modules_not_a_copy():
    """measures re-exports learnscope.spherical (tested in test_spherical.py) instead of keeping its own copies."""
    for name in ("fibonacci_sphere", "harmonic_dimension", "real_spherical_harmonics"):
        assert getattr(measures, name) is getattr(spherical, name), name
    for gone in ("_unit_points", "_degree_basis", "_zonal", "_OVERSAMPLE", "_check_int_ge"):
        assert not hasattr(measures, gone), gone


def test_real_spherical_harmonics_low_degrees_closed_form():
    x = sphere_points(4, 50, seed=0)[:, :3]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y, _ = real_spherical_harmonics(2, x)
    s3 = math.sqrt(3)
    np.testing.assert_allclose(y[:, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(y[:, 1:4], s3 * x[:, [1, 2, 0]], atol=1e-12)  # m = -1, 0, 1 -> y, z, x
    np.testing.assert_allclose(y[:, 6], math.sqrt(5) * (3 * x[:, 2] ** 2 - 1) / 2, atol=1e-12)  # (2, 0)
    np.testing.assert_allclose(y[:, 8], math.sqrt(15) / 2 * (x[:, 0] ** 2 - x[:, 1] ** 2), atol=1e-12)


@pytest.mark.parametrize("l", range(5))
def test_harmonic_energy_pure_degree_on_s2(l):
    coeffs = np.random.default_rng(10 + l).standard_normal(2 * l + 1)
    e = harmonic_energy(_sh_combination(l, coeffs), d=3, max_degree=6)
    expected = np.zeros(8)
    expected[l] = 1.0
    assert e.shape == (8,)
    np.testing.assert_allclose(e, expected, atol=1e-6)


@pytest.mark.parametrize("l", range(5))
def test_harmonic_energy_pure_degree_on_s4(l):
    u = np.array([0.3, -0.5, 0.1, 0.7, 0.2])
    u /= np.linalg.norm(u)
    zonal = harmonic_energy(lambda x: sps.eval_gegenbauer(l, 1.5, x @ u), d=5, max_degree=5, n_points=4000)
    # Re((x1 + i x2)^l) is a harmonic polynomial of degree l (and not zonal)
    nonzonal = harmonic_energy(
        lambda x: ((x[:, 0] + 1j * x[:, 1]) ** l).real, d=5, max_degree=5, n_points=4000, seed=3
    )
    expected = np.zeros(7)
    expected[l] = 1.0
    np.testing.assert_allclose(zonal, expected, atol=1e-8)  # exact: degree-l functions lie in the span
    np.testing.assert_allclose(nonzonal, expected, atol=1e-8)


def test_harmonic_energy_on_circle_matches_fourier_split():
    # d = 2 uses Chebyshev zonal functions; cos 3θ + 0.5 sin θ has energies 0.5 and 0.125 -> 0.8 / 0.2
    f = lambda x: np.cos(3 * _theta(x)) + 0.5 * np.sin(_theta(x))  # noqa: E731
    e = harmonic_energy(f, d=2, max_degree=4, n_points=500)
    np.testing.assert_allclose(e, [0, 0.2, 0, 0.8, 0, 0], atol=1e-8)


def test_harmonic_energy_mixture_on_s4_random_points_exact():
    # degrees 1, 2, 3 with L² norms from independent closed forms; on S⁴, t = x·u has density (3/4)(1 − t²)
    u = np.array([0.5, 0.5, -0.5, 0.1, 0.4])
    u /= np.linalg.norm(u)
    norm2_zonal = quad(lambda t: sps.eval_gegenbauer(2, 1.5, t) ** 2 * 0.75 * (1 - t * t), -1, 1)[0]
    # x1² + x2² ~ Beta(1, 3/2) on S⁴: E[(x1² + x2²)^3] = Π_{k<3} (1 + k)/(5/2 + k); Re² averages to half
    norm2_re3 = 0.5 * np.prod([(1 + k) / (2.5 + k) for k in range(3)])
    a, b, c = 0.7, 1.3, 0.9

    def f(x):
        return a * x[:, 2] + b * sps.eval_gegenbauer(2, 1.5, x @ u) + c * ((x[:, 0] + 1j * x[:, 1]) ** 3).real

    energies = np.array([0.0, a * a / 5, b * b * norm2_zonal, c * c * norm2_re3, 0.0, 0.0])
    e = harmonic_energy(f, d=5, max_degree=4, n_points=3000, seed=2)
    np.testing.assert_allclose(e, energies / energies.sum(), atol=1e-8)


def test_harmonic_energy_matches_direct_projection_on_s2():
    rng = np.random.default_rng(0)
    parts = [
        _sh_combination(l, rng.standard_normal(2 * l + 1) * a) for l, a in enumerate([0.5, 1, 0.7, 0.4, 0.3])
    ]
    v = np.array([0.2, -0.6, 0.77])

    def f(x):
        return sum(p(x) for p in parts) + 0.4 * np.exp(2 * x @ v) + 0.3 * np.tanh(6 * x[:, 0])

    e = harmonic_energy(f, d=3, max_degree=6)
    y, labels = real_spherical_harmonics(6, LATTICE)
    vals = f(LATTICE)
    c = y.T @ vals / len(vals)  # quadrature inner products with the orthonormal basis
    deg = np.array([lab[0] for lab in labels])
    direct = np.array([np.sum(c[deg == l] ** 2) for l in range(7)]) / np.mean(vals**2)
    direct = np.append(direct, 1 - direct.sum())
    assert direct[-1] > 1e-4  # the extras do put energy above degree 6
    np.testing.assert_allclose(e, direct, atol=1e-4)
    assert abs(e.sum() - 1) < 1e-12 and (e >= 0).all()


def test_harmonic_energy_puts_high_degree_in_remainder():
    rng = np.random.default_rng(5)
    a2, a5 = rng.standard_normal(5), rng.standard_normal(11)
    a2 *= math.sqrt(0.6) / np.linalg.norm(a2)  # unit-mean-square basis -> energy = ‖a‖²
    a5 *= math.sqrt(0.4) / np.linalg.norm(a5)
    f2, f5 = _sh_combination(2, a2), _sh_combination(5, a5)
    e = harmonic_energy(lambda x: f2(x) + f5(x), d=3, max_degree=3)
    np.testing.assert_allclose(e, [0, 0, 0.6, 0, 0.4], atol=1e-4)


def test_harmonic_energy_accepts_points_and_torch():
    pts = torch.as_tensor(sphere_points(4, 1000, seed=7))
    e = harmonic_energy(lambda x: torch.as_tensor(x[:, 2] * x[:, 3]), d=4, max_degree=3, points=pts)
    np.testing.assert_allclose(e, [0, 0, 1, 0, 0], atol=1e-8)


# ---------------------------------------------------------------------------------------------- fourier
def test_fourier_energy_closed_form():
    e = fourier_energy(lambda x: np.cos(3 * _theta(x)) + 0.5 * np.sin(_theta(x)), max_freq=8)
    expected = np.zeros(10)
    expected[1], expected[3] = 0.2, 0.8
    np.testing.assert_allclose(e, expected, atol=1e-12)
    # constant 1 (energy 1) + cos θ (energy 1/2)
    np.testing.assert_allclose(
        fourier_energy(lambda x: 1 + x[:, 0], max_freq=2), [2 / 3, 1 / 3, 0, 0], atol=1e-12
    )
    # frequency 20 lies above max_freq = 8: all remainder
    np.testing.assert_allclose(
        fourier_energy(lambda x: np.sin(20 * _theta(x)), max_freq=8)[-1], 1.0, atol=1e-12
    )


# ----------------------------------------------------------------------------------------- linear fits
def test_affine_r2_and_linear_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    w_true, b_true = np.array([1.5, -2.0, 0.3]), 0.7
    y_exact = x @ w_true + b_true
    assert abs(affine_r2(x, y_exact) - 1.0) < 1e-12
    w, b = linear_fit(x, y_exact)
    np.testing.assert_allclose(w, w_true, atol=1e-12)
    assert abs(b - b_true) < 1e-12

    y = y_exact + 0.8 * rng.standard_normal(300) + 0.5 * x[:, 0] ** 2
    sk = LinearRegression().fit(x, y)
    assert abs(affine_r2(x, y) - sk.score(x, y)) < 1e-12
    w, b = linear_fit(x, y)
    np.testing.assert_allclose(w, sk.coef_, atol=1e-10)
    assert abs(b - sk.intercept_) < 1e-10

    # no bias: least squares through the origin, SS_tot still about mean(y)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    expected = 1 - np.sum((y - x @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
    assert abs(affine_r2(x, y, bias=False) - expected) < 1e-12
    assert affine_r2(x, y, bias=False) < affine_r2(x, y)  # y has an offset the origin fit cannot follow
    w0, b0 = linear_fit(x, y, bias=False)
    np.testing.assert_allclose(w0, coef, atol=1e-12)
    assert b0 == 0.0

    # 1-D x and torch input
    assert abs(affine_r2(torch.as_tensor(x[:, 0]), 2 * x[:, 0] - 1) - 1.0) < 1e-12


# -------------------------------------------------------------------------------------------- overlaps
def test_overlap_matrix_on_lattice():
    x, y = LATTICE[:, 0], LATTICE[:, 1]
    vals = np.stack([x, y, x + y])
    o = overlap_matrix(vals)
    np.testing.assert_allclose(o, o.T, atol=0)
    np.testing.assert_allclose(np.diag(o), 1.0, atol=1e-12)
    assert abs(o[0, 1]) < 1e-4
    # mean x(x+y) = 1/3, mean (x+y)² = 2/3 -> 1/√2
    np.testing.assert_allclose(o[0, 2], 1 / math.sqrt(2), atol=1e-4)
    m = mean_products(vals)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), [1 / 3, 1 / 3, 2 / 3], atol=1e-4)
    np.testing.assert_allclose(overlap_matrix(torch.as_tensor(vals)), o)


# ---------------------------------------------------------------------------------------------- learners
def _f_lin(x: np.ndarray) -> np.ndarray:
    return 2.0 * x[..., 0] - x[..., 2]


class ExactLearner:
    """Predicts the true target from the closed form (ignores the training data)."""

    def fit_predict(self, x_tr, y_tr, x_te, generator):
        return 2.0 * x_te[..., 0] - x_te[..., 2]


class ZeroLearner:
    def __init__(self):
        self.calls = []

    def fit_predict(self, x_tr, y_tr, x_te, generator):
        assert isinstance(generator, torch.Generator)
        self.calls.append((tuple(x_tr.shape), tuple(y_tr.shape), tuple(x_te.shape)))
        return torch.zeros(x_te.shape[:2], dtype=x_te.dtype)


class LstsqLearner:
    """Linear least squares without bias; exact for a linear target when n_train ≥ d."""

    def fit_predict(self, x_tr, y_tr, x_te, generator):
        w = torch.linalg.lstsq(x_tr, y_tr.unsqueeze(-1)).solution
        return (x_te @ w).squeeze(-1)


def test_generalisation_error_exact_and_zero_learners():
    dom = Sphere(3)
    exact = generalisation_error(ExactLearner(), _f_lin, dom, n_train=5, n_test=20, draws=40, batch=15)
    assert exact["mse"] == 0.0 and exact["relative"] == 0.0 and exact["draws"] == 40

    fitted = generalisation_error(LstsqLearner(), _f_lin, dom, n_train=5, n_test=20, draws=40)
    assert fitted["mse"] < 1e-20  # labels are aligned with their training inputs

    zl = ZeroLearner()
    zero = generalisation_error(zl, _f_lin, dom, n_train=5, n_test=20, draws=200, batch=64)
    # E[(2x − z)²] on S² = (4 + 1)/3
    assert abs(zero["mse"] - 5 / 3) < 4 * zero["sem"]
    assert 0 < zero["sem"] < 0.1
    assert abs(zero["relative"] - 1.0) < 1e-12
    assert [c[0][0] for c in zl.calls] == [64, 64, 64, 8]
    assert zl.calls[0] == ((64, 5, 3), (64, 5), (64, 20, 3))
    again = generalisation_error(ZeroLearner(), _f_lin, dom, n_train=5, n_test=20, draws=200, batch=64)
    assert again == zero


def test_paired_difference_of_an_exact_and_a_zero_learner_is_the_mean_square_of_each_task():
    dom = Sphere(3)
    paired = paired_generalisation_difference(ExactLearner(), ZeroLearner(), _f_lin, dom, 5, 20, draws=30, seed=4,
                                              batch=7)
    zero = generalisation_error(ZeroLearner(), _f_lin, dom, n_train=5, n_test=20, draws=30, seed=4, batch=7)
    assert paired["mse_a"] == 0.0 and paired["n"] == 30
    assert paired["mse_b"] == pytest.approx(zero["mse"], rel=1e-12)  # the same tasks as generalisation_error
    d = paired["differences"]  # per task: mean f² over its test points (the zero learner's error)
    assert d.shape == (30,) and (d > 0).all()
    assert paired["mean_difference"] == pytest.approx(d.mean(), rel=1e-12)
    assert paired["sem"] == pytest.approx(d.std(ddof=1) / math.sqrt(30), rel=1e-12) == pytest.approx(zero["sem"])
    swapped = paired_generalisation_difference(ZeroLearner(), ExactLearner(), _f_lin, dom, 5, 20, draws=30, seed=4,
                                               batch=7)
    np.testing.assert_array_equal(swapped["differences"], -d)


class _StreamDomain:
    """Inputs are the generator's first uniforms, kept, so a test can read which stream the tasks came from."""

    def __init__(self):
        self.first = None

    def sample_batch(self, b, n, generator, dtype):
        x = torch.rand(b, n, 2, generator=generator, dtype=dtype)
        self.first = x.flatten()[:4] if self.first is None else self.first
        return x


class _StreamLearner:
    """Predicts 0 and keeps the first uniforms of the generator it is given."""

    def __init__(self):
        self.first = None

    def fit_predict(self, x_tr, y_tr, x_te, generator):
        if self.first is None:
            self.first = torch.rand(4, generator=generator, dtype=torch.float64)
        return torch.zeros(x_te.shape[:2], dtype=x_te.dtype)


def _streams(seed: int) -> tuple[tuple, tuple]:
    dom, learner = _StreamDomain(), _StreamLearner()
    generalisation_error(learner, lambda x: x[:, 0] + 0.1, dom, n_train=2, n_test=2, draws=1, seed=seed,
                         dtype=torch.float64)
    return tuple(dom.first.tolist()), tuple(learner.first.tolist())


def test_few_shot_streams_of_neighbouring_seeds_do_not_overlap():
    """The first release drew seed s's tasks from manual_seed(s) and its learner from manual_seed(s + 1), so the
    learner of seed s drew exactly the tasks of seed s + 1; named streams keep every (seed, purpose) apart, and the
    same seed repeats its draws exactly (the paired design across learners)."""
    draws = [_streams(seed) for seed in (0, 1, 2)]
    assert len({stream for pair in draws for stream in pair}) == 6
    assert _streams(1) == draws[1]


def test_refit_half_mse():
    f = np.linspace(-1, 1, 11)
    assert refit_half_mse(f + 1.0, f) == pytest.approx(0.5, abs=1e-15)
    assert refit_half_mse(torch.as_tensor(f), f) == 0.0


# ------------------------------------------------------------------------------------------------ errors
def test_errors():
    with pytest.raises(ConfigError):
        harmonic_energy(lambda x: x[:, 0], d=3, max_degree=-1)
    with pytest.raises(ConfigError, match=">= 98"):
        harmonic_energy(lambda x: x[:, 0], d=3, max_degree=6, n_points=50)
    with pytest.raises(ShapeError):
        harmonic_energy(lambda x: x, d=3, max_degree=2, n_points=200)
    with pytest.raises(NonFiniteError):
        harmonic_energy(lambda x: np.full(len(x), np.nan), d=3, max_degree=2, n_points=200)
    with pytest.raises(ShapeError):
        harmonic_energy(lambda x: x[:, 0], d=3, points=sphere_points(4, 200))
    with pytest.raises(ConfigError):
        harmonic_energy(lambda x: x[:, 0], d=3, max_degree=1, points=2 * fibonacci_sphere(200))
    with pytest.raises(ConfigError):
        harmonic_energy(lambda x: np.zeros(len(x)), d=3, max_degree=1, n_points=200)
    with pytest.raises(ConfigError):
        fourier_energy(lambda x: x[:, 0], max_freq=8, n_points=10)
    with pytest.raises(ShapeError):
        affine_r2(np.ones((5, 2)), np.ones(4))
    with pytest.raises(ConfigError):
        affine_r2(np.arange(5.0), np.ones(5))
    with pytest.raises(NonFiniteError):
        linear_fit(np.array([1.0, np.nan, 2.0]), np.ones(3))
    with pytest.raises(ShapeError):
        overlap_matrix(np.ones(5))
    with pytest.raises(ConfigError):
        overlap_matrix(np.stack([np.ones(5), np.zeros(5)]))
    with pytest.raises(ShapeError):
        refit_half_mse(np.ones(3), np.ones(4))
    with pytest.raises(ConfigError):
        generalisation_error(object(), _f_lin, Sphere(3), 5, 5)
    with pytest.raises(ConfigError):
        generalisation_error(ZeroLearner(), _f_lin, Sphere(3), 0, 5)

    class BadShape:
        def fit_predict(self, x_tr, y_tr, x_te, generator):
            return torch.zeros(x_te.shape[0])

    with pytest.raises(ShapeError):
        generalisation_error(BadShape(), _f_lin, Sphere(3), 5, 5, draws=4)
    assert issubclass(ShapeError, LearnscopeError)
