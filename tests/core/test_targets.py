"""Target label distributions: quantiles, bin means and moments against closed forms, scipy quadrature and
numpy; sampling moments with seeded generators; every registered target's samples against its own quantile
function; construction errors."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from learnscope.errors import ConfigError, LearnscopeError, ShapeError, UnknownNameError
from learnscope.targets import (
    TARGETS,
    Empirical,
    Gaussian,
    QuantileFunction,
    Target,
    Uniform,
    make_target,
)


def quad_bin_means(q, n: int) -> np.ndarray:
    """n ∫_{i/n}^{(i+1)/n} q(u) du by adaptive quadrature (scipy), i = 0..n-1."""
    return np.array(
        [
            n * integrate.quad(q, i / n, (i + 1) / n, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
            for i in range(n)
        ]
    )


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [1, 2, 7, 30])
def test_uniform_bin_means_match_quadrature(n):
    a, b = -0.5, 2.0
    got = Uniform(a, b).bin_means(n, torch.float64).numpy()
    want = quad_bin_means(lambda u: a + (b - a) * u, n)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_gaussian_bin_means_match_quadrature(n):
    mu, sigma = 0.3, 1.7
    got = Gaussian(mu, sigma).bin_means(n, torch.float64).numpy()
    want = quad_bin_means(lambda u: mu + sigma * special.ndtri(u), n)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_bin_means_average_to_the_mean_and_increase():
    for t in (Uniform(-2.0, 1.0), Gaussian(-0.4, 0.3), Empirical([3.0, -1.0, 0.5, 0.5, 2.0])):
        m = t.bin_means(13, torch.float64)
        assert float(m.mean()) == pytest.approx(t.mean, abs=1e-12)  # law of total expectation
        assert bool((m[1:] >= m[:-1] - 1e-12).all())


def test_second_moments_and_moments_closed_form():
    a, b = -0.5, 2.0
    u = Uniform(a, b)
    assert u.second_moment() == pytest.approx((a * a + a * b + b * b) / 3, rel=1e-14)  # ∫ x² dx / (b - a)
    assert u.mean == pytest.approx(0.75) and u.std == pytest.approx(2.5 / math.sqrt(12))
    g = Gaussian(0.3, 1.7)
    assert g.second_moment() == pytest.approx(0.09 + 2.89, rel=1e-14)
    assert g.mean == 0.3 and g.std == 1.7
    want = integrate.quad(lambda v: (0.3 + 1.7 * special.ndtri(v)) ** 2, 0, 1, limit=200)[0]
    assert g.second_moment() == pytest.approx(want, rel=1e-8)


def test_gaussian_quantile_matches_scipy_and_keeps_dtype():
    u = torch.tensor([1e-6, 0.01, 0.3, 0.5, 0.77, 0.999], dtype=torch.float64)
    got = Gaussian(0.3, 1.7).quantile(u)
    np.testing.assert_allclose(got.numpy(), stats.norm.ppf(u.numpy(), loc=0.3, scale=1.7), rtol=1e-12)
    assert Gaussian().quantile(u.float()).dtype == torch.float32
    assert Uniform(0.0, 4.0).quantile(torch.tensor([0.25], dtype=torch.float32)).item() == 1.0


# ---------------------------------------------------------------------------------------------- empirical


def test_empirical_quantile_is_numpys_inverted_cdf():
    rng = np.random.default_rng(0)
    s = rng.normal(size=11)
    s[3] = s[7]  # a tie
    u = rng.uniform(size=500)
    got = Empirical(s).quantile(torch.from_numpy(u)).numpy()
    np.testing.assert_array_equal(got, np.quantile(s, u, method="inverted_cdf"))


def _step_bin_means_loop(s: np.ndarray, n: int) -> np.ndarray:
    """Bin means of the empirical quantile, by summing overlaps of [i/n, (i+1)/n] with [j/m, (j+1)/m]."""
    s, m = np.sort(s), len(s)
    out = np.zeros(n)
    for i in range(n):
        for j in range(m):
            overlap = max(0.0, min((i + 1) / n, (j + 1) / m) - max(i / n, j / m))
            out[i] += n * overlap * s[j]
    return out


@pytest.mark.parametrize("n", [1, 3, 7, 10, 14, 50])
def test_empirical_bin_means_exact(n):
    s = np.random.default_rng(1).normal(size=7) * 3 + 1
    got = Empirical(s).bin_means(n, torch.float64).numpy()
    np.testing.assert_allclose(got, _step_bin_means_loop(s, n), rtol=1e-12, atol=1e-12)


def test_empirical_moments():
    s = np.array([1.0, 2.0, 2.0, 7.0])
    e = Empirical(torch.tensor(s))
    assert e.mean == pytest.approx(3.0) and e.second_moment() == pytest.approx(58 / 4)
    assert e.std == pytest.approx(np.std(s))


# ---------------------------------------------------------------------------------------------- quantile fn


def test_quantile_function_reproduces_uniform_closed_form():
    a, b = -1.0, 3.0
    qf = QuantileFunction(lambda u: a + (b - a) * u)  # numpy path
    ref = Uniform(a, b)
    for n in (1, 2, 9, 100):
        got, want = qf.bin_means(n, torch.float64), ref.bin_means(n, torch.float64)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    assert qf.second_moment() == pytest.approx(ref.second_moment(), rel=1e-12)
    assert qf.mean == pytest.approx(ref.mean, abs=1e-12) and qf.std == pytest.approx(ref.std, rel=1e-10)


def test_quantile_function_unbounded_reproduces_gaussian():
    qf = QuantileFunction(lambda u: 0.5 + 2.0 * torch.special.ndtri(u), name="normal")  # torch-only fn
    ref = Gaussian(0.5, 2.0)
    for n in (1, 2, 8, 200):
        np.testing.assert_allclose(qf.bin_means(n, torch.float64), ref.bin_means(n, torch.float64), atol=1e-9)
    assert qf.second_moment() == pytest.approx(ref.second_moment(), rel=1e-9)
    assert qf.std == pytest.approx(2.0, rel=1e-9)


def test_quantile_function_rejects_bad_functions():
    with pytest.raises(ConfigError):
        QuantileFunction(3.0)
    with pytest.raises(ConfigError, match="non-decreasing"):
        QuantileFunction(lambda u: -u).second_moment()
    with pytest.raises(ConfigError, match="NaN"):
        QuantileFunction(lambda u: np.where(u < 0.5, np.nan, u)).bin_means(4)


# ---------------------------------------------------------------------------------------------- sampling


def test_sample_moments_within_statistical_tolerance(gen):
    n = 200_000
    for t in (Uniform(-1.0, 3.0), Gaussian(0.3, 0.7), Empirical([0.0, 1.0, 5.0]), QuantileFunction(np.sqrt)):
        y = t.sample(n, gen(3), dtype=torch.float64)
        assert y.shape == (n,) and y.dtype == torch.float64
        # QuantileFunction(sqrt) is Y = √U: mean 2/3, E[Y²] = 1/2
        se = t.std / math.sqrt(n)
        assert abs(float(y.mean()) - t.mean) < 5 * se
        assert abs(float((y**2).mean()) - t.second_moment()) < 5 * float((y**2).std()) / math.sqrt(n)


def test_sample_is_reproducible_and_generator_driven(gen):
    t = Gaussian()
    a = t.sample(5, gen(7))
    b = t.sample(5, gen(7))
    c = t.sample(5, gen(8))
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    e = Empirical([1.0, 2.0, 3.0]).sample(1000, gen(0))
    assert set(e.tolist()) == {1.0, 2.0, 3.0}


# ---------------------------------------------------------------------------------------------- construction


def test_make_target_specs_and_round_trip():
    assert make_target("uniform") == Uniform(-1.0, 1.0)
    assert make_target({"name": "gaussian", "std": 0.5}) == Gaussian(0.0, 0.5)
    g = Gaussian(1.0, 2.0)
    assert make_target(g) is g
    for t in (Uniform(0.0, 2.0), Gaussian(-1.0, 0.1)):
        assert make_target(t.describe()) == t
    e = Empirical([3.0, 1.0, 2.0])
    e2 = make_target(e.describe())
    np.testing.assert_array_equal(e2.sorted_samples, e.sorted_samples)


#: Test values for the parameters a registered target cannot do without (by parameter name, not by target).
_REQUIRED = {"samples": [0.3, -1.2, 0.3, 2.0, 0.7, 0.3]}


def _registered(name: str) -> Target:
    """``make_target`` of a registered name, with test values for the parameters that have no default."""
    needed = [p.name for p in inspect.signature(TARGETS[name]).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [p for p in needed if p not in _REQUIRED]
    if missing:
        pytest.fail(f"target {name!r} needs {missing}: give them a test value in _REQUIRED")
    return make_target({"name": name, **{p: _REQUIRED[p] for p in needed}})


@pytest.mark.parametrize("name", TARGETS)
def test_every_registered_target_samples_its_own_quantile_function(name, gen):
    # Q is the generalised inverse of the CDF F: F(Q(u)−) ≤ u ≤ F(Q(u)) for every u, atoms included. The sample's
    # empirical CDF must satisfy this for the target's own Q within the DKW bound, P(sup|F_n − F| > 0.005) ≤ 1e-4
    # at n = 2·10⁵ (a 5 % error in the scale of a unit Gaussian moves its CDF by 0.012).
    t = _registered(name)
    assert isinstance(t, Target) and t.describe()["name"] == name
    again = make_target(t.describe())  # describe() is a spec that rebuilds the same law
    u = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
    q = t.quantile(u)
    torch.testing.assert_close(again.quantile(u), q, rtol=0, atol=0)
    assert bool((q[1:] >= q[:-1]).all())
    n = 200_000
    y = t.sample(n, gen(5), dtype=torch.float64)
    assert y.shape == (n,) and y.dtype == torch.float64 and torch.isfinite(y).all()
    below = (y[None, :] < q[:, None]).double().mean(dim=1)
    at_or_below = (y[None, :] <= q[:, None]).double().mean(dim=1)
    assert bool((below <= u + 0.005).all()) and bool((at_or_below >= u - 0.005).all()), name
    assert float(t.bin_means(9, torch.float64).mean()) == pytest.approx(t.mean, abs=1e-10)
    assert float(y.mean()) == pytest.approx(t.mean, abs=5 * t.std / math.sqrt(n))


def test_make_target_unknown_name_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian'"):
        make_target("gausian")
    with pytest.raises(UnknownNameError, match="did you mean 'low'"):
        make_target({"name": "uniform", "lo": 0.0})
    with pytest.raises(ConfigError):
        make_target(3)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "gaussian", "std": 0.0},
        {"name": "gaussian", "std": -1.0},
        {"name": "gaussian", "std": float("nan")},
        {"name": "gaussian", "mean": "a"},
        {"name": "uniform", "low": 1.0, "high": 1.0},
        {"name": "uniform", "low": 2.0, "high": 1.0},
        {"name": "uniform", "high": float("inf")},
        {"name": "empirical", "samples": []},
        {"name": "empirical", "samples": [1.0, float("nan")]},
        {"name": "empirical"},
    ],
)
def test_make_target_bad_params(spec):
    with pytest.raises(ConfigError):
        make_target(spec)


def test_bad_arguments_raise_learnscope_errors():
    with pytest.raises(ShapeError):
        Empirical(np.zeros((2, 3)))
    with pytest.raises(ConfigError):
        Uniform().bin_means(0)
    with pytest.raises(ConfigError):
        Uniform().sample(-1, torch.Generator())
    with pytest.raises(LearnscopeError):
        Gaussian().quantile(torch.tensor([0.5, 1.5]))
