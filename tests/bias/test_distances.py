"""Distribution distances: exact W2 against scipy quadrature, brute-force numpy and POT's ``wasserstein_1d`` (the
test-only oracle of DESIGN.md, values and gradients), closed forms between targets, energy distance against a numpy
double loop and the 1-D CDF identity, the Sinkhorn divergence against its translation closed form, W2²/2, geomloss
and finite differences; the contract every registered distance keeps; factory dispatch and errors."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy import integrate, special

from learnscope.bias.distances import (
    DISTANCES,
    energy_distance,
    geomloss_sinkhorn,
    make_distance,
    sinkhorn_divergence,
    w2_between_samples,
    w2_between_targets,
    w2_to_target,
)
from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError
from learnscope.targets import Empirical, Gaussian, QuantileFunction, Uniform


def central_fd(f, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central finite differences of a scalar function f of a float64 tensor x."""
    out = torch.zeros_like(x)
    flat = out.view(-1)
    for k in range(x.numel()):
        xp, xm = x.clone(), x.clone()
        xp.view(-1)[k] += h
        xm.view(-1)[k] -= h
        flat[k] = (f(xp) - f(xm)) / (2 * h)
    return out


# ---------------------------------------------------------------------------------------------- w2 to target


def w2_quad(y: np.ndarray, q) -> float:
    """∫_0^1 (F_y^{-1}(u) − Q(u))² du, bin by bin with scipy quad."""
    y, n = np.sort(y), len(y)
    return sum(
        integrate.quad(lambda u, v=v: (v - q(u)) ** 2, i / n, (i + 1) / n, limit=200, epsabs=1e-14)[0]
        for i, v in enumerate(y)
    )


@pytest.mark.parametrize(
    "target, q",
    [
        (Uniform(-1.0, 1.0), lambda u: -1.0 + 2.0 * u),
        (Uniform(0.0, 3.0), lambda u: 3.0 * u),
        (Gaussian(0.2, 0.8), lambda u: 0.2 + 0.8 * special.ndtri(u)),
    ],
)
@pytest.mark.parametrize("n", [1, 5, 12])
def test_w2_to_target_matches_quadrature(target, q, n, gen):
    labels = 0.7 * torch.randn(3, n, generator=gen(n), dtype=torch.float64) + 0.1
    got = w2_to_target(labels, target).numpy()
    want = np.array([w2_quad(row, q) for row in labels.numpy()])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_w2_to_target_is_zero_at_bin_means_and_equals_samples_version_for_empirical(gen):
    t = Gaussian(0.0, 1.0)
    m = t.bin_means(6, torch.float64)
    # at y = m the residual is the target's within-bin variance E[Y²] − mean m² only (> 0 for continuous q)
    within = t.second_moment() - float((m**2).mean())
    assert float(w2_to_target(m[None], t)[0]) == pytest.approx(within, rel=1e-12)
    s = torch.randn(9, generator=gen(2), dtype=torch.float64)
    labels = torch.randn(4, 6, generator=gen(3), dtype=torch.float64)
    np.testing.assert_allclose(w2_to_target(labels, Empirical(s)), w2_between_samples(labels, s), rtol=1e-12)


@pytest.mark.parametrize("target", [Uniform(), Gaussian(0.3, 0.5)])
def test_w2_to_target_gradient_matches_finite_differences(target, gen):
    labels = torch.randn(2, 7, generator=gen(4), dtype=torch.float64)
    x = labels.clone().requires_grad_(True)
    w2_to_target(x, target).sum().backward()
    fd = central_fd(lambda z: w2_to_target(z, target).sum(), labels)
    torch.testing.assert_close(x.grad, fd, rtol=1e-6, atol=1e-8)


def test_w2_to_target_float32_and_quantile_function_target(gen):
    labels = torch.randn(5, 40, generator=gen(5), dtype=torch.float64)
    ref = w2_to_target(labels, Gaussian(0.0, 0.5))
    got32 = w2_to_target(labels.float(), Gaussian(0.0, 0.5))
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), ref, rtol=1e-5, atol=1e-7)
    qf = QuantileFunction(lambda u: 0.5 * torch.special.ndtri(u))
    torch.testing.assert_close(w2_to_target(labels, qf), ref, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------------------- between targets


@pytest.mark.parametrize("a, b, c, d", [(-1.0, 1.0, 0.0, 3.0), (0.0, 1.0, 0.0, 1.0), (-2.0, 5.0, 1.0, 1.5)])
def test_w2_between_uniform_targets_closed_form(a, b, c, d):
    want = ((a + b) / 2 - (c + d) / 2) ** 2 + (b - a - (d - c)) ** 2 / 12
    got = w2_between_targets(Uniform(a, b), Uniform(c, d))
    assert got == pytest.approx(want, rel=1e-4, abs=1e-12)


@pytest.mark.parametrize(
    "m1, s1, m2, s2", [(0.0, 1.0, 0.0, 2.0), (0.5, 0.3, -1.0, 1.2), (1.0, 1.0, 1.5, 1.0)]
)
def test_w2_between_gaussian_targets_closed_form(m1, s1, m2, s2):
    want = (m1 - m2) ** 2 + (s1 - s2) ** 2
    got = w2_between_targets({"name": "gaussian", "mean": m1, "std": s1}, Gaussian(m2, s2))
    assert got == pytest.approx(want, rel=1e-4)


# ------------------------------------------------------------------------------------------- between samples


def w2_brute(x: np.ndarray, y: np.ndarray) -> float:
    """Midpoint rule on the grid (k + ½)/(n m): exact, both quantile functions are constant on each cell."""
    n, m = len(x), len(y)
    u = (np.arange(n * m) + 0.5) / (n * m)
    qx, qy = np.sort(x)[np.floor(u * n).astype(int)], np.sort(y)[np.floor(u * m).astype(int)]
    return float(np.mean((qx - qy) ** 2))


def test_w2_between_samples_equal_sizes(gen):
    x = torch.randn(4, 9, generator=gen(6), dtype=torch.float64)
    y = torch.rand(4, 9, generator=gen(7), dtype=torch.float64)
    want = np.mean((np.sort(x.numpy(), 1) - np.sort(y.numpy(), 1)) ** 2, axis=1)
    np.testing.assert_allclose(w2_between_samples(x, y).numpy(), want, rtol=1e-13)


@pytest.mark.parametrize("n, m", [(5, 7), (6, 4), (1, 3), (10, 25)])
def test_w2_between_samples_unequal_sizes_brute_force(n, m, gen):
    x = torch.randn(3, n, generator=gen(n), dtype=torch.float64)
    y = 2 * torch.rand(3, m, generator=gen(m + 100), dtype=torch.float64)
    got = w2_between_samples(x, y).numpy()
    want = [w2_brute(x[i].numpy(), y[i].numpy()) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    shared = w2_between_samples(x, y[0]).numpy()  # (m,) broadcast to every row
    np.testing.assert_allclose(shared, [w2_brute(x[i].numpy(), y[0].numpy()) for i in range(3)], rtol=1e-12)


def test_w2_between_samples_duplicated_sample_is_zero_and_gradient(gen):
    y = torch.randn(2, 4, generator=gen(8), dtype=torch.float64)
    assert torch.allclose(
        w2_between_samples(y.repeat(1, 3), y), torch.zeros(2, dtype=torch.float64), atol=1e-15
    )
    x = torch.randn(2, 5, generator=gen(9), dtype=torch.float64)
    s = torch.randn(2, 3, generator=gen(10), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    w2_between_samples(xr, s).sum().backward()
    torch.testing.assert_close(
        xr.grad, central_fd(lambda z: w2_between_samples(z, s).sum(), x), rtol=1e-6, atol=1e-8
    )


# ---------------------------------------------------------------------------------------------- energy


def energy_loop(x: np.ndarray, y: np.ndarray) -> float:
    """E|X−Y| − ½E|X−X'| − ½E|Y−Y'| with V-statistics, by plain double loops; x (n, D), y (m, D)."""

    def mean_dist(a, b):
        return sum(np.linalg.norm(ai - bj) for ai in a for bj in b) / (len(a) * len(b))

    return mean_dist(x, y) - 0.5 * mean_dist(x, x) - 0.5 * mean_dist(y, y)


def test_energy_distance_matches_double_loop_1d_and_2d(gen):
    x1 = torch.randn(3, 8, generator=gen(11), dtype=torch.float64)
    y1 = torch.rand(3, 6, generator=gen(12), dtype=torch.float64)
    want1 = [energy_loop(x1[i, :, None].numpy(), y1[i, :, None].numpy()) for i in range(3)]
    np.testing.assert_allclose(energy_distance(x1, y1).numpy(), want1, rtol=1e-12)
    x2 = torch.randn(2, 7, 2, generator=gen(13), dtype=torch.float64)
    y2 = torch.rand(5, 2, generator=gen(14), dtype=torch.float64)  # shared (m, D) cloud
    want2 = [energy_loop(x2[i].numpy(), y2.numpy()) for i in range(2)]
    np.testing.assert_allclose(energy_distance(x2, y2).numpy(), want2, rtol=1e-12)


def cdf_l2(x: np.ndarray, y: np.ndarray) -> float:
    """∫ (F_x − F_y)² dt exactly: both CDFs are constant between consecutive pooled points."""
    z = np.sort(np.concatenate([x, y]))
    f = np.searchsorted(np.sort(x), z[:-1], side="right") / len(x)
    g = np.searchsorted(np.sort(y), z[:-1], side="right") / len(y)
    return float(np.sum((f - g) ** 2 * np.diff(z)))


def test_energy_distance_1d_is_the_cdf_l2_distance(gen):
    # Székely: 2E|X−Y| − E|X−X'| − E|Y−Y'| = 2∫(F − G)², so the halved form here is ∫(F − G)²
    x = torch.randn(4, 10, generator=gen(15), dtype=torch.float64)
    y = 1.5 * torch.randn(4, 13, generator=gen(16), dtype=torch.float64) + 0.3
    want = [cdf_l2(x[i].numpy(), y[i].numpy()) for i in range(4)]
    np.testing.assert_allclose(energy_distance(x, y).numpy(), want, rtol=1e-12)


def test_energy_distance_gradient_finite_and_correct(gen):
    x = torch.randn(2, 6, 2, generator=gen(17), dtype=torch.float64)
    y = torch.randn(2, 5, 2, generator=gen(18), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    energy_distance(xr, y).sum().backward()
    torch.testing.assert_close(
        xr.grad, central_fd(lambda z: energy_distance(z, y).sum(), x), rtol=1e-6, atol=1e-8
    )
    # coincident points (|0| inside the V-statistic): the gradient must stay finite
    for pts in (x, x[..., :1]):
        z = pts.clone().requires_grad_(True)
        energy_distance(z, pts.detach().clone()).sum().backward()
        assert torch.isfinite(z.grad).all()


def test_energy_distance_matches_geomloss(gen):
    geomloss = pytest.importorskip("geomloss")
    x = torch.randn(3, 20, 2, generator=gen(19), dtype=torch.float64)
    y = torch.rand(3, 15, 2, generator=gen(20), dtype=torch.float64)
    ref = geomloss.SamplesLoss("energy", backend="tensorized")(x, y)
    # geomloss floors pairwise distances at 1e-4 (sqrt of a 1e-8 clamp), which shifts the i = i' terms
    torch.testing.assert_close(energy_distance(x, y), ref, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------- sinkhorn


def test_sinkhorn_nonnegative_and_zero_for_identical_clouds(gen):
    x = 0.5 * torch.randn(4, 30, generator=gen(21), dtype=torch.float64)
    y = torch.rand(4, 25, generator=gen(22), dtype=torch.float64) * 2 - 1
    s = sinkhorn_divergence(x, y)
    assert (s > 0).all()
    x2 = torch.randn(3, 20, 2, generator=gen(23), dtype=torch.float64)
    assert (
        sinkhorn_divergence(x2, x2 + 0.05 * torch.randn(3, 20, 2, generator=gen(24), dtype=torch.float64)) > 0
    ).all()
    # S_ε(α, α) = 0 exactly; numerically the residual is second order in the 1e-3·ε stopping tolerance,
    # while a wrong debiasing term would leave an O(ε) = O(1e-3) value
    assert sinkhorn_divergence(x, x).abs().max() < 1e-8
    assert sinkhorn_divergence(x2, x2).abs().max() < 1e-8


@pytest.mark.parametrize(
    "shape, shift, blur", [((2, 25), [0.3], 0.05), ((2, 25), [-0.2], 0.3), ((2, 20, 2), [0.3, -0.2], 0.1)]
)
def test_sinkhorn_translation_closed_form(shape, shift, blur, gen):
    # C = ½|x − y|²: shifting β by t adds separable terms only, so S_ε(α, α + t) = ½|t|² for every ε
    x = torch.randn(*shape, generator=gen(25), dtype=torch.float64)
    t = torch.tensor(shift, dtype=torch.float64)
    y = x + t if x.ndim == 3 else x + t[0]
    got = sinkhorn_divergence(x, y, blur=blur)
    torch.testing.assert_close(
        got, torch.full((2,), 0.5 * float((t**2).sum()), dtype=torch.float64), rtol=1e-5, atol=0
    )


def test_sinkhorn_small_blur_approaches_half_w2(gen):
    x = 0.5 * torch.randn(3, 64, generator=gen(26), dtype=torch.float64)
    y = torch.rand(3, 80, generator=gen(27), dtype=torch.float64) * 2 - 1
    s = sinkhorn_divergence(x, y, blur=0.01, scaling=0.95)
    half_w2 = w2_between_samples(x, y) / 2
    torch.testing.assert_close(s, half_w2, rtol=0.05, atol=0)


def test_sinkhorn_matches_geomloss(gen):
    geomloss = pytest.importorskip("geomloss")
    x = 0.5 * torch.randn(3, 40, generator=gen(28), dtype=torch.float64)
    y = torch.rand(3, 50, generator=gen(29), dtype=torch.float64) * 2 - 1
    for D, (xx, yy) in ((1, (x, y)), (2, (x.reshape(3, 20, 2), y.reshape(3, 25, 2)))):
        xs, ys = (xx[..., None], yy[..., None]) if D == 1 else (xx, yy)
        ref = geomloss.SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.9, backend="tensorized")(xs, ys)
        # same algorithm as geomloss when the refinement is off
        torch.testing.assert_close(
            sinkhorn_divergence(xx, yy, 0.05, 0.9, refine=False), ref, rtol=1e-5, atol=0
        )
        # refined to convergence: geomloss' scaling 0.9 is a few % low; at 0.99 it is nearly converged
        ref99 = geomloss.SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.99, backend="tensorized")(xs, ys)
        torch.testing.assert_close(sinkhorn_divergence(xx, yy, 0.05, 0.9), ref99, rtol=3e-3, atol=0)
        assert (torch.as_tensor(geomloss_sinkhorn(xx, yy, 0.05, 0.9)) == ref).all()


@pytest.mark.parametrize("blur, p, D", [(0.3, 2, 1), (0.05, 2, 1), (0.1, 2, 2), (0.2, 1, 2)])
def test_sinkhorn_gradient_matches_finite_differences(blur, p, D, gen):
    x = torch.randn(2, 6, D, generator=gen(30), dtype=torch.float64)
    y = 0.7 * torch.randn(2, 7, D, generator=gen(31), dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    sinkhorn_divergence(xr, y, blur=blur, p=p).sum().backward()
    fd = central_fd(lambda z: sinkhorn_divergence(z, y, blur=blur, p=p).sum(), x, h=1e-5)
    torch.testing.assert_close(xr.grad, fd, rtol=1e-3, atol=1e-3 * float(fd.abs().max()))


def test_sinkhorn_gradient_wrt_target_samples(gen):
    x = torch.randn(2, 5, generator=gen(32), dtype=torch.float64)
    y = torch.randn(2, 6, generator=gen(33), dtype=torch.float64)
    yr = y.clone().requires_grad_(True)
    sinkhorn_divergence(x, yr, blur=0.2).sum().backward()
    fd = central_fd(lambda z: sinkhorn_divergence(x, z, blur=0.2).sum(), y, h=1e-5)
    torch.testing.assert_close(yr.grad, fd, rtol=1e-3, atol=1e-3 * float(fd.abs().max()))


# ---------------------------------------------------------------------------------------------- factory


def test_make_distance_dispatch(gen):
    labels = torch.randn(3, 8, generator=gen(34), dtype=torch.float64)
    samples = torch.randn(11, generator=gen(35), dtype=torch.float64)
    w2 = make_distance("w2")
    torch.testing.assert_close(w2(labels, Uniform()), w2_to_target(labels, Uniform()))
    torch.testing.assert_close(w2(labels, samples), w2_between_samples(labels, samples))
    torch.testing.assert_close(w2(labels, "uniform"), w2_to_target(labels, Uniform()))
    mid = torch.tensor(-1.0 + 2.0 * (np.arange(8) + 0.5) / 8)  # Uniform[-1, 1] midpoint quantiles
    torch.testing.assert_close(make_distance("energy")(labels, Uniform()), energy_distance(labels, mid))
    torch.testing.assert_close(make_distance("energy")(labels, samples), energy_distance(labels, samples))
    sk = make_distance("sinkhorn", blur=0.2, scaling=0.8)
    torch.testing.assert_close(sk(labels, Uniform()), sinkhorn_divergence(labels, mid, blur=0.2, scaling=0.8))


def _registered(name: str):
    """``make_distance(name)``, or a skip where the distance needs an optional extra that is not installed (the
    error then names the extra to install, as every optional distance must)."""
    try:
        return make_distance(name)
    except ConfigError as err:
        if "pip install" not in str(err):
            raise
        pytest.skip(f"distance {name!r} needs an optional extra: {err}")


@pytest.mark.parametrize("name", DISTANCES)
def test_every_registered_distance_is_a_symmetric_distance_between_label_sets(name, gen):
    # The contract of a distance between distributions, for every registered entry (an added one is checked too):
    # shape (N,), finite, zero between a label set and itself, positive between different ones, symmetric, blind to
    # the order of the labels, and growing as one set is shifted away from the other.
    dist = _registered(name)
    x = torch.randn(4, 7, generator=gen(40), dtype=torch.float64)
    y = 0.5 * torch.randn(4, 9, generator=gen(41), dtype=torch.float64) + 0.3
    d_xy = dist(x, y)
    assert d_xy.shape == (4,) and d_xy.dtype == torch.float64 and torch.isfinite(d_xy).all()
    assert dist(x, x).abs().max() < 1e-6 * float(d_xy.min()), name
    assert (d_xy > 0).all(), name
    torch.testing.assert_close(dist(y, x), d_xy, rtol=1e-4, atol=0)  # Sinkhorn's iterations are not exactly symmetric
    perm = torch.randperm(7, generator=gen(42))
    torch.testing.assert_close(dist(x[:, perm], y), d_xy, rtol=1e-6, atol=0)
    shifted = torch.stack([dist(x, x + t)[0] for t in (0.1, 0.5, 2.0)])
    assert (shifted[1:] > shifted[:-1]).all(), (name, shifted)


# ------------------------------------------------------------------------------------------------ POT oracle


def _pot():
    return pytest.importorskip(
        "ot", reason="POT (pip install pot, in the dev extra) is the test-only oracle for the exact W2"
    )


@pytest.mark.parametrize("n, m", [(9, 9), (5, 7), (1, 3), (13, 8), (40, 25)])
def test_exact_w2_matches_pots_wasserstein_1d(n, m, gen):
    # POT's wasserstein_1d(u, v, p=2) is ∫_0^1 |F_u^{-1} − F_v^{-1}|² du (W2 squared), batched over trailing axes.
    ot = _pot()
    x = torch.randn(6, n, generator=gen(50 + n), dtype=torch.float64)
    y = 1.5 * torch.rand(6, m, generator=gen(60 + m), dtype=torch.float64) - 0.2
    x[:, : n // 2] = x[:, :1]  # ties inside a row
    want = ot.wasserstein_1d(x.T.numpy(), y.T.numpy(), p=2)  # (n, N) and (m, N) -> (N,)
    np.testing.assert_allclose(w2_between_samples(x, y).numpy(), want, rtol=1e-10, atol=1e-14)
    shared = ot.wasserstein_1d(x.T.numpy(), np.repeat(y[0].numpy()[:, None], 6, axis=1), p=2)
    np.testing.assert_allclose(w2_between_samples(x, y[0]).numpy(), shared, rtol=1e-10, atol=1e-14)
    per_row = [w2_to_target(x[i : i + 1], Empirical(y[i]))[0] for i in range(6)]  # the Target form, same law
    np.testing.assert_allclose(torch.stack(per_row).numpy(), want, rtol=1e-10, atol=1e-14)


def test_exact_w2_gradient_matches_pots_torch_backend(gen):
    # POT differentiates its W2 through its torch backend: both gradients are the exact 2 (x_(i) − s_(j)) weighted by
    # the transport plan, so they agree to rounding.
    ot = _pot()
    x = torch.randn(5, 11, generator=gen(70), dtype=torch.float64)
    s = torch.randn(5, 4, generator=gen(71), dtype=torch.float64)
    ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    w2_between_samples(ours, s).sum().backward()
    ot.wasserstein_1d(theirs.T, s.T, p=2).sum().backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-14)


def test_make_distance_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'sinkhorn'"):
        make_distance("sinkhorm")
    with pytest.raises(UnknownNameError, match="blur"):
        make_distance("sinkhorn", blurr=0.1)
    with pytest.raises(UnknownNameError):
        make_distance("w2", blur=0.1)
    with pytest.raises(ConfigError):
        make_distance("sinkhorn", scaling=1.0)
    with pytest.raises(ConfigError):
        make_distance("sinkhorn", blur=-0.1)
    with pytest.raises(ConfigError, match="negative"):
        make_distance("geomloss_sinkhorn", scaling=0.5)


def test_geomloss_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "geomloss", None)  # makes `import geomloss` raise ImportError
    with pytest.raises(ConfigError, match=r"learnscope\[sinkhorn\]"):
        geomloss_sinkhorn(torch.zeros(1, 3), torch.zeros(3))


def test_input_validation():
    t = Uniform()
    with pytest.raises(ShapeError):
        w2_to_target(torch.zeros(5), t)
    with pytest.raises(ShapeError):
        w2_to_target(torch.zeros(2, 0), t)
    with pytest.raises(NonFiniteError):
        w2_to_target(torch.tensor([[0.0, math.nan]]), t)
    with pytest.raises(ShapeError):
        w2_between_samples(torch.zeros(3, 4), torch.zeros(2, 5))
    with pytest.raises(NonFiniteError):
        w2_between_samples(torch.zeros(3, 4), torch.tensor([0.0, math.inf]))
    with pytest.raises(ShapeError):
        energy_distance(torch.zeros(3, 4, 2), torch.zeros(2, 5, 2))
    with pytest.raises(ShapeError):
        energy_distance(torch.zeros(3, 4, 2), torch.zeros(3, 5, 3))
    with pytest.raises(ShapeError):
        sinkhorn_divergence(torch.zeros(3, 4), torch.zeros(2, 5))
    with pytest.raises(NonFiniteError):
        sinkhorn_divergence(torch.tensor([[math.nan, 0.0]]), torch.zeros(2))
    with pytest.raises(ShapeError):
        make_distance("energy")(torch.zeros(4), Uniform())


# ------------------------------------------------------------------------------- sinkhorn: converged reference


def _sinkhorn_reference(x: np.ndarray, y: np.ndarray, blur: float) -> float:
    """S_ε for 1-D samples by plain float64 log-domain Sinkhorn (scipy logsumexp), run to a converged fixed point.

    ε-scaling 0.9 from diameter² down to ε = blur² as a warm start, then alternating updates at ε (over-relaxed,
    ω = 1.8) until g moves by < 1e-12 ε (or 20000 iterations); the symmetric terms by their averaged fixed point.
    The value is the dual objective <a, f> + <b, g> (its plan's total mass is 1 at convergence)."""
    from scipy.special import logsumexp

    n, m = len(x), len(y)
    la, lb = -math.log(n), -math.log(m)
    c_xy = 0.5 * (x[:, None] - y[None, :]) ** 2
    c_xx, c_yy = 0.5 * (x[:, None] - x[None, :]) ** 2, 0.5 * (y[:, None] - y[None, :]) ** 2
    eps = blur**2
    diam = max(x.max(), y.max()) - min(x.min(), y.min())
    f, g, fa, gb = np.zeros(n), np.zeros(m), np.zeros(n), np.zeros(m)

    def soft(c, h, lw, e):
        return -e * logsumexp(lw + (h[None, :] - c) / e, axis=1)

    e = diam**2
    while True:
        e = max(e, eps)
        for _ in range(1 if e > eps else 20000):
            w = 1.0 if e > eps else 1.8  # over-relaxed at the final ε
            f = (1 - w) * f + w * soft(c_xy, g, lb, e)
            g_new = (1 - w) * g + w * soft(c_xy.T, f, la, e)
            fa = 0.5 * (fa + soft(c_xx, fa, la, e))
            gb = 0.5 * (gb + soft(c_yy, gb, lb, e))
            done = e == eps and np.abs(g_new - g).max() < 1e-12 * e
            g = g_new
            if done:
                break
        if e == eps:
            break
        e *= 0.81
    return float(f.mean() + g.mean() - fa.mean() - gb.mean())


_AUTHORS_CASES = [(100, 100, "gaussian"), (6, 15, "gaussian"), (24, 15, "two_clusters"), (150, 100, "uniform")]
_SLOW_CASES = [(n, m, lab) for n, m in [(100, 100), (6, 15), (24, 15), (50, 100), (150, 100)]
               for lab in ("gaussian", "uniform", "two_clusters") if (n, m, lab) not in _AUTHORS_CASES]


@pytest.mark.parametrize(
    "n, m, labels", _AUTHORS_CASES + [pytest.param(*c, marks=pytest.mark.slow) for c in _SLOW_CASES]
)  # label-set sizes of Fig 2C (100 vs 100 samples), Fig 2B (6 and 24 vs 15), Fig 4 (50 and 150 vs 100)
def test_sinkhorn_within_1_percent_of_converged_reference_at_the_authors_settings(n, m, labels, gen):
    # blur 0.05, p = 2, float32 labels (as in training), default tolerance; geomloss at its default scaling 0.5
    # (the authors' call) is off by up to ~100 % on such problems (specs/stack.md §2), our refinement is not
    g = gen(100 + n + m)
    y = 2 * torch.rand(m, generator=g, dtype=torch.float64) - 1
    x = {"gaussian": 0.5 * torch.randn(n, generator=g, dtype=torch.float64),
         "uniform": 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1,
         "two_clusters": 0.9 * torch.sign(torch.randn(n, generator=g, dtype=torch.float64))
         + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)}[labels]
    ref = _sinkhorn_reference(x.numpy(), y.numpy(), 0.05)
    got = sinkhorn_divergence(x.float()[None], y.float(), blur=0.05)
    assert got.dtype == torch.float32
    assert abs(float(got[0]) / ref - 1) < 0.01, (float(got[0]), ref)
    got64 = sinkhorn_divergence(x[None], y, blur=0.05)  # float64: default tolerance 1e-6
    assert abs(float(got64[0]) / ref - 1) < 1e-5, (float(got64[0]), ref)


def test_sinkhorn_float32_gradient_matches_float64_finite_differences(gen):
    # the training path (float32, default tolerance): its envelope gradient against central differences of the
    # converged float64 divergence
    x = 0.5 * torch.randn(1, 12, generator=gen(110), dtype=torch.float64)
    y = 2 * torch.rand(15, generator=gen(111), dtype=torch.float64) - 1
    xr = x.float().requires_grad_(True)
    sinkhorn_divergence(xr, y.float()).sum().backward()
    fd = central_fd(lambda z: sinkhorn_divergence(z, y, tol=1e-10, max_iter=2000).sum(), x, h=1e-5)
    torch.testing.assert_close(xr.grad.double(), fd, rtol=0.02, atol=0.02 * float(fd.abs().max()))


def test_sinkhorn_batched_rows_equal_single_rows_and_second_derivative_raises(gen):
    x = 0.5 * torch.randn(3, 20, generator=gen(112), dtype=torch.float64)
    y = 2 * torch.rand(3, 16, generator=gen(113), dtype=torch.float64) - 1
    batched = sinkhorn_divergence(x, y)
    single = torch.stack([sinkhorn_divergence(x[i : i + 1], y[i : i + 1])[0] for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-6, atol=0)
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(sinkhorn_divergence(xr, y).sum(), xr, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()  # first order only: the gradient is the envelope formula, not a graph


@pytest.mark.parametrize("n,m,N", [(5, 7, 1), (30, 300, 4), (1, 1, 2)])
def test_the_sorted_1d_energy_distance_equals_the_pairwise_sums(n, m, N):
    """∫(F_x − F_y)² dt by sorting equals the V-statistic pairwise form in value (float64, a tie included) and in
    gradient wherever it is differentiable (at a tie both are subgradients, and the two forms pick different ones)."""
    from learnscope.bias.distances import _safe_pairwise_norm, energy_distance

    g = torch.Generator().manual_seed(n * 100 + m)
    x = torch.randn(N, n, generator=g, dtype=torch.float64)
    y = torch.randn(N, m, generator=g, dtype=torch.float64)
    if n > 1 and m > 1:
        x[:, 0] = y[:, 0]  # a tie between the two samples
    x.requires_grad_(True)
    y.requires_grad_(True)
    fast = energy_distance(x, y)
    xs, ys = x[..., None], y[..., None]
    ref = (_safe_pairwise_norm(xs, ys).mean(dim=(1, 2)) - 0.5 * _safe_pairwise_norm(xs, xs).mean(dim=(1, 2))
           - 0.5 * _safe_pairwise_norm(ys, ys).mean(dim=(1, 2)))
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-14)
    gf = torch.autograd.grad(fast.sum(), (x, y))
    gr = torch.autograd.grad(ref.sum(), (x, y))
    untied = torch.ones_like(x, dtype=torch.bool)
    if n > 1 and m > 1:
        untied[:, 0] = False
    torch.testing.assert_close(gf[0][untied], gr[0][untied], rtol=1e-10, atol=1e-12)
    if not (n > 1 and m > 1):
        torch.testing.assert_close(gf[1], gr[1], rtol=1e-10, atol=1e-12)
