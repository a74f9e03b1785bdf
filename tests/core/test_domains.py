"""Input distributions: shapes, closed-form moments, seeding, low-discrepancy sets and bad input.

Statistical tolerances are k standard errors computed from the closed-form variance of the statistic and the
sample size (k = 5 unless stated), so with the fixed seeds each check is deterministic and a wrong
distribution (wrong radius law, wrong bounds, ...) misses by many standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from learnscope.domains import (
    Circle,
    Disc,
    FiniteDataset,
    Hypercube,
    Sphere,
    make_domain,
    random_rotation,
)
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.spherical import fibonacci_sphere

F64 = torch.float64


# --------------------------------------------------------------------------------------------------------
# shapes, dtypes, seeding


@pytest.mark.parametrize(
    "domain, d",
    [(Sphere(3), 3), (Sphere(5), 5), (Circle(), 2), (Disc(), 2), (Hypercube(4, -2.0, 3.0), 4),
     (FiniteDataset(np.arange(30.0).reshape(10, 3)), 3)],
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sample_shapes_and_dtype(gen, domain, d, dtype):
    x = domain.sample(7, gen(0), dtype)
    xb = domain.sample_batch(4, 6, gen(0), dtype)
    xs = domain.spread_sample(9, gen(0), dtype)
    assert x.shape == (7, d) and x.dtype == dtype
    assert xb.shape == (4, 6, d) and xb.dtype == dtype
    assert xs.shape == (9, d) and xs.dtype == dtype
    assert domain.dim == d


@pytest.mark.parametrize("domain", [Sphere(3), Sphere(4), Circle(), Disc(), Hypercube(3)])
def test_same_seed_same_draws_different_seed_different(gen, domain):
    for method in (lambda g: domain.sample(50, g), lambda g: domain.sample_batch(3, 20, g),
                   lambda g: domain.spread_sample(50, g)):
        a, b, c = method(gen(11)), method(gen(11)), method(gen(12))
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)


def test_sample_batch_sets_are_distinct(gen):
    """The B blocks of one call are independent sets, not one set repeated."""
    xb = Sphere(3).sample_batch(3, 40, gen(1), F64)
    assert not torch.allclose(xb[0], xb[1]) and not torch.allclose(xb[1], xb[2])


# --------------------------------------------------------------------------------------------------------
# sphere


@pytest.mark.parametrize("d", [2, 3, 5])
def test_sphere_unit_norm_and_isotropic_second_moment(gen, d):
    N = 20000
    x = Sphere(d).sample(N, gen(d), F64).numpy()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    C = x.T @ x / N
    # x_i^2 has E = 1/d and E x_i^4 = 3/(d(d+2)); x_i x_j (i != j) has variance E x_i^2 x_j^2 = 1/(d(d+2))
    se_diag = math.sqrt(3 / (d * (d + 2)) - 1 / d**2) / math.sqrt(N)
    se_off = math.sqrt(1 / (d * (d + 2))) / math.sqrt(N)
    np.testing.assert_allclose(np.diag(C), 1 / d, atol=5 * se_diag)
    off = C[~np.eye(d, dtype=bool)]
    assert np.abs(off).max() < 5 * se_off
    # the mean is zero (E x_i^2 = 1/d gives the standard error)
    assert np.abs(x.mean(0)).max() < 5 * math.sqrt(1 / d / N)


def test_sphere_float32_unit_norm(gen):
    x = Sphere(4).sample(1000, gen(3), torch.float32)
    assert torch.allclose(x.norm(dim=1), torch.ones(1000), atol=1e-6)


def test_sphere_uniform_coordinate_law_s2(gen):
    """On S² (Archimedes) the coordinate z is U(-1, 1): a KS test with fixed seed."""
    z = Sphere(3).sample(5000, gen(4), F64).numpy()[:, 2]
    assert stats.kstest(z, stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3


# --------------------------------------------------------------------------------------------------------
# circle, disc, hypercube


def test_circle_unit_norm_uniform_angle(gen):
    N = 20000
    x = Circle().sample(N, gen(5), F64).numpy()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    theta = np.arctan2(x[:, 1], x[:, 0])
    # circular moments E cos kθ = E sin kθ = 0, each with variance 1/2
    for k in (1, 2, 3):
        for m in (np.cos(k * theta).mean(), np.sin(k * theta).mean()):
            assert abs(m) < 5 * math.sqrt(0.5 / N)
    assert stats.kstest((theta + math.pi) / (2 * math.pi), "uniform").pvalue > 1e-3


def test_disc_radius_squared_uniform_and_angle_uniform(gen):
    N = 20000
    x = Disc().sample(N, gen(6), F64).numpy()
    r2 = (x**2).sum(1)
    assert r2.max() <= 1.0 and r2.min() >= 0.0
    # r² ~ U(0, 1): mean 1/2 (var 1/12), variance 1/12 (the variance of (U - 1/2)² is 1/80 - 1/144 = 1/180)
    assert abs(r2.mean() - 0.5) < 5 * math.sqrt(1 / 12 / N)
    assert abs(r2.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / N)
    assert stats.kstest(r2, "uniform").pvalue > 1e-3
    # r itself is NOT uniform (a wrong r = U(0,1) law would pass the bounds but fail here): E r = 2/3
    assert abs(np.sqrt(r2).mean() - 2 / 3) < 5 * math.sqrt((0.5 - 4 / 9) / N)
    theta = np.arctan2(x[:, 1], x[:, 0])
    assert stats.kstest((theta + math.pi) / (2 * math.pi), "uniform").pvalue > 1e-3
    # independence of radius and angle: E[r² cos 2θ] = 0 (variance E r⁴ / 2 = 1/6)
    assert abs((r2 * np.cos(2 * theta)).mean()) < 5 * math.sqrt(1 / 6 / N)


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (2.0, 5.0), (-3.0, -2.5)])
def test_hypercube_bounds_mean_variance(gen, low, high):
    N, d = 20000, 3
    x = Hypercube(d, low, high).sample(N, gen(7), F64).numpy()
    assert x.min() >= low and x.max() <= high
    w = high - low
    np.testing.assert_allclose(x.mean(0), (low + high) / 2, atol=5 * w * math.sqrt(1 / 12 / N))
    # the sample variance of U(0, w) has standard error w² sqrt(1/180 / N)
    np.testing.assert_allclose(x.var(0), w**2 / 12, atol=5 * w**2 * math.sqrt(1 / 180 / N))
    # coordinates are independent
    c = np.corrcoef(x.T)[~np.eye(d, dtype=bool)]
    assert np.abs(c).max() < 5 / math.sqrt(N)


# --------------------------------------------------------------------------------------------------------
# finite dataset


def _rows_index(samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of each sample among the rows of ``points`` (-1 if it is not a row)."""
    flat_s, flat_p = samples.reshape(len(samples), -1), points.reshape(len(points), -1)
    eq = (flat_s[:, None, :] == flat_p[None, :, :]).all(-1)
    return np.where(eq.any(1), eq.argmax(1), -1)


def test_dataset_samples_only_rows_with_replacement_uniformly(gen):
    pts = np.random.default_rng(0).normal(size=(8, 3))
    ds = FiniteDataset(pts)
    x = ds.sample(4000, gen(8), F64).numpy()
    idx = _rows_index(x, pts)
    assert (idx >= 0).all()
    counts = np.bincount(idx, minlength=8)
    assert stats.chisquare(counts).pvalue > 1e-3
    # with replacement, more samples than rows is allowed
    assert ds.sample(20, gen(9)).shape == (20, 3)


def test_dataset_without_replacement_distinct_and_errors(gen):
    pts = np.arange(24.0).reshape(6, 4)
    ds = FiniteDataset(pts, replace=False)
    x = ds.sample(6, gen(10), F64).numpy()
    idx = _rows_index(x, pts)
    assert sorted(idx.tolist()) == list(range(6))  # a permutation of all rows
    xb = ds.sample_batch(5, 4, gen(10), F64).numpy()
    for block in xb:
        ib = _rows_index(block, pts)
        assert (ib >= 0).all() and len(set(ib.tolist())) == 4
    with pytest.raises(ConfigError, match="7"):
        ds.sample(7, gen(0))
    with pytest.raises(ConfigError):
        ds.sample_batch(2, 7, gen(0))


def test_dataset_multidimensional_rows_and_dim(gen):
    pts = np.random.default_rng(1).normal(size=(5, 2, 3))
    ds = FiniteDataset(pts)
    assert ds.dim == 6
    x = ds.sample(11, gen(0), F64).numpy()
    assert x.shape == (11, 2, 3)
    assert (_rows_index(x, pts) >= 0).all()
    assert ds.sample_batch(2, 3, gen(0)).shape == (2, 3, 2, 3)


def test_dataset_bad_points():
    with pytest.raises(ShapeError):
        FiniteDataset(np.zeros(5))
    with pytest.raises(ShapeError):
        FiniteDataset(np.zeros((0, 3)))
    bad = np.zeros((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(ConfigError):
        FiniteDataset(bad)


# --------------------------------------------------------------------------------------------------------
# low-discrepancy sets


def test_sphere_spread_sample_rotated_lattice_moments(gen):
    n = 2000
    a = Sphere(3).spread_sample(n, gen(0), F64).numpy()
    b = Sphere(3).spread_sample(n, gen(1), F64).numpy()
    for x in (a, b):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
        # Monte Carlo standard errors would be sqrt(4/45 / n) ≈ 6.7e-3 (x²) and ≈ 5.6e-3 (x⁴)
        assert np.abs((x**2).mean(0) - 1 / 3).max() < 1e-4
        assert np.abs((x**4).mean(0) - 1 / 5).max() < 1e-4
        assert np.abs(x.mean(0)).max() < 1e-4
    # different seeds -> different rotations of the same lattice: same Gram matrix up to the point order
    assert not np.allclose(a, b)
    lattice = fibonacci_sphere(n)
    R = np.linalg.lstsq(lattice, a, rcond=None)[0]  # a = lattice @ R
    np.testing.assert_allclose(lattice @ R, a, atol=1e-10)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-10)
    # i.i.d. draws are far worse: a sanity check that the threshold above is meaningful
    iid = Sphere(3).sample(n, gen(2), F64).numpy()
    assert np.abs((iid**2).mean(0) - 1 / 3).max() > 1e-4


def test_sphere_spread_sample_other_dims_are_unit_norm(gen):
    x = Sphere(4).spread_sample(100, gen(0), F64)
    assert x.shape == (100, 4)
    assert torch.allclose(x.norm(dim=1), torch.ones(100, dtype=F64), atol=1e-12)


def test_disc_spread_sample_spiral(gen):
    n = 2000
    x = Disc().spread_sample(n, gen(3), F64).numpy()
    r2 = (x**2).sum(1)
    assert r2.max() <= 1.0
    assert abs(r2.mean() - 0.5) < 1e-4  # MC standard error would be sqrt(1/12/n) ≈ 6.5e-3
    # equal-area annuli: the sorted r² are (i + 1/2)/n
    np.testing.assert_allclose(np.sort(r2), (np.arange(n) + 0.5) / n, atol=1e-12)
    # isotropy: E x² = E y² = 1/4, E xy = 0 (MC standard error ≈ 5e-3)
    assert abs((x[:, 0] ** 2).mean() - 0.25) < 2e-3
    assert abs((x[:, 1] ** 2).mean() - 0.25) < 2e-3
    assert abs((x[:, 0] * x[:, 1]).mean()) < 2e-3
    y = Disc().spread_sample(n, gen(4), F64).numpy()
    assert not np.allclose(x, y)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1), atol=1e-12)


def test_circle_spread_sample_equispaced(gen):
    n = 7
    x = Circle().spread_sample(n, gen(5), F64).numpy()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    theta = np.sort(np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * math.pi))
    gaps = np.diff(np.append(theta, theta[0] + 2 * math.pi))
    np.testing.assert_allclose(gaps, 2 * math.pi / n, atol=1e-12)
    # a set of n equispaced angles integrates cos kθ exactly for 0 < k < n
    t = np.arctan2(x[:, 1], x[:, 0])
    for k in range(1, n):
        assert abs(np.cos(k * t).mean()) < 1e-12
    y = Circle().spread_sample(n, gen(6), F64).numpy()
    assert not np.allclose(x, y)


# --------------------------------------------------------------------------------------------------------
# random rotation


@pytest.mark.parametrize("d", [2, 3, 6])
def test_random_rotation_is_orthogonal_and_haar_isotropic(gen, d):
    Q = random_rotation(d, gen(d), F64)
    assert Q.shape == (d, d) and Q.dtype == F64
    np.testing.assert_allclose((Q.T @ Q).numpy(), np.eye(d), atol=1e-12)
    # Haar: the first row is uniform on S^{d-1}, so E[q qᵀ] = I/d
    N = 4000
    rows = np.stack([random_rotation(d, gen(1000 + i), F64)[0].numpy() for i in range(N)])
    C = rows.T @ rows / N
    se_diag = math.sqrt(3 / (d * (d + 2)) - 1 / d**2) / math.sqrt(N)
    np.testing.assert_allclose(np.diag(C), 1 / d, atol=5 * se_diag)
    assert abs(abs(np.linalg.det(Q.numpy())) - 1) < 1e-12


def test_random_rotation_has_determinant_plus_one(gen):
    dets = [float(torch.linalg.det(random_rotation(3, gen(s), F64))) for s in range(20)]
    np.testing.assert_allclose(dets, 1.0, atol=1e-12)


# --------------------------------------------------------------------------------------------------------
# make_domain and bad input


def test_make_domain_builds_and_round_trips():
    assert isinstance(make_domain("disc"), Disc)
    s = make_domain({"name": "sphere", "dim": 5})
    assert isinstance(s, Sphere) and s.dim == 5
    h = Hypercube(4, -2.0, 0.5)
    h2 = make_domain(h.describe())
    assert isinstance(h2, Hypercube) and (h2.dim, h2.low, h2.high) == (4, -2.0, 0.5)
    assert make_domain(s.describe()).dim == 5
    assert make_domain(h) is h


def test_make_domain_unknown_name_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'sphere'"):
        make_domain("sphre")
    with pytest.raises(UnknownNameError, match="did you mean 'disc'"):
        make_domain({"name": "disk"})


def test_make_domain_unknown_parameter():
    with pytest.raises(UnknownNameError, match="radius"):
        make_domain({"name": "sphere", "radius": 2.0})
    with pytest.raises(UnknownNameError, match="dim"):
        make_domain({"name": "circle", "dim": 2})  # the circle's dimension is fixed


@pytest.mark.parametrize(
    "spec",
    [{"name": "sphere", "dim": 1}, {"name": "sphere", "dim": 0}, {"name": "sphere", "dim": 2.5},
     {"name": "hypercube", "low": 1.0, "high": 1.0}, {"name": "hypercube", "low": 2.0, "high": -1.0},
     {"name": "hypercube", "dim": 0}, 3, {"dim": 3}],
)
def test_make_domain_bad_values(spec):
    with pytest.raises(ConfigError):
        make_domain(spec)


@pytest.mark.parametrize("domain", [Sphere(3), Circle(), Disc(), Hypercube(2), FiniteDataset(np.zeros((3, 2)))])
@pytest.mark.parametrize("n", [0, -2])
def test_non_positive_sizes(gen, domain, n):
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        domain.sample(n, gen(0))
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        domain.sample_batch(2, n, gen(0))
    with pytest.raises(ConfigError, match="batch must be a positive integer"):
        domain.sample_batch(n, 2, gen(0))
    with pytest.raises(ConfigError):
        domain.spread_sample(n, gen(0))


def test_hypercube_infinite_bounds_rejected():
    with pytest.raises(ConfigError):
        Hypercube(2, low=-math.inf, high=1.0)
