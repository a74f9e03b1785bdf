"""Exact kernels: closed forms vs Monte-Carlo expectations, wide random networks, and the arc-cosine Funk–Hecke
spectra (the general spherical machinery is tested in test_spherical.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import eval_jacobi
from torch.func import jacrev, vmap

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners import (
    KERNELS,
    KernelRidge,
    arccos,
    arccos_eigenvalues,
    rbf,
    relu_nngp,
    relu_ntk,
)
from learnscope.spherical import harmonic_dimension

F64 = torch.float64


def _points(gen, seed: int, B: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(B, n, d, generator=gen(seed), dtype=F64)


# ---------------------------------------------------------------- arc-cosine kernels vs Monte-Carlo


@pytest.mark.parametrize("order", [0, 1])
def test_arccos_matches_monte_carlo_expectation(order: int) -> None:
    """k_0 = E[Θ(w·x)Θ(w·x')], k_1 = E[ReLU(w·x)ReLU(w·x')], w ~ N(0, I_d): within 5 MC standard errors."""
    rng = np.random.default_rng(0)
    d = 4
    x = rng.normal(size=(5, d))
    x2 = np.stack([x[0], -2.0 * x[1], 3.0 * x[2], rng.normal(size=d), rng.normal(size=d)])
    w = rng.normal(size=(400_000, d))
    a, b = x @ w.T, x2 @ w.T  # (5, M)
    fa, fb = (np.maximum(a, 0), np.maximum(b, 0)) if order == 1 else ((a > 0) * 1.0, (b > 0) * 1.0)
    prod = fa[:, None, :] * fb[None, :, :]  # (5, 5, M)
    mc, se = prod.mean(-1), prod.std(-1) / math.sqrt(w.shape[0])
    k = arccos(torch.tensor(x)[None], torch.tensor(x2)[None], order)[0].numpy()
    assert np.all(np.abs(k - mc) <= 5 * se + 1e-12), np.max(np.abs(k - mc) / (se + 1e-300))
    # exact special cases: coincident (θ = 0) and antipodal (θ = π) pairs
    n0 = np.linalg.norm(x[0])
    assert k[0, 0] == pytest.approx(n0**2 / 2 if order == 1 else 0.5, rel=1e-12)
    assert k[1, 1] == pytest.approx(0.0, abs=1e-12)


def test_arccos_gradients_finite_and_exact_at_coincident_points(gen) -> None:
    """At θ = 0: d k_1(x, x)/dx = x (k_1(x, x) = |x|²/2) and d k_1(x, x')/dx' at x' = x is x/2."""
    x = _points(gen, 1, 2, 5, 3)
    xa = x.clone().requires_grad_(True)
    arccos(xa, xa, 1).diagonal(dim1=1, dim2=2).sum().backward()
    torch.testing.assert_close(xa.grad, x, rtol=1e-10, atol=1e-12)
    xb = x.clone().requires_grad_(True)
    arccos(x, xb, 1).diagonal(dim1=1, dim2=2).sum().backward()
    torch.testing.assert_close(xb.grad, x / 2, rtol=1e-8, atol=1e-10)
    for order in (0, 1):  # no NaN at θ = 0 or θ = π, also for the non-differentiable order-0 kernel
        xc = x.clone().requires_grad_(True)
        arccos(xc, torch.cat([xc, -xc], dim=1), order).sum().backward()
        assert torch.isfinite(xc.grad).all()


def test_arccos_zero_input_is_finite(gen) -> None:
    x = torch.zeros(1, 1, 3, dtype=F64, requires_grad=True)
    y = _points(gen, 2, 1, 3, 3)
    k1, k0 = arccos(x, y, 1), arccos(x, y, 0)
    assert torch.all(k1.abs() < 1e-14) and torch.allclose(k0, torch.full_like(k0, 0.25))
    (k1.sum() + k0.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_rbf_matches_numpy(gen) -> None:
    x1, x2 = _points(gen, 3, 2, 4, 3), _points(gen, 4, 2, 6, 3)
    ell = 0.7
    ref = np.exp(-((x1.numpy()[:, :, None, :] - x2.numpy()[:, None, :, :]) ** 2).sum(-1) / (2 * ell**2))
    np.testing.assert_allclose(rbf(x1, x2, lengthscale=ell).numpy(), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_named_kernels_are_symmetric_psd(gen, name: str) -> None:
    x = _points(gen, 5, 2, 30, 3)
    K = KernelRidge(name).gram(x, x)
    torch.testing.assert_close(K, K.transpose(1, 2), rtol=1e-12, atol=1e-12)
    ev = torch.linalg.eigvalsh(K)
    assert (ev.min(dim=1).values >= -1e-10 * ev.max(dim=1).values).all()


# ---------------------------------------------------------------- NNGP / NTK


def test_relu_kernels_depth1_equal_arccos_formulas(gen) -> None:
    """Depth 1, σ_b = 0: pre-activations u = σ_w w·x/√d, so Σ¹ = σ_w² (σ_w²/d) k_1 and
    Θ¹ = Σ¹ + (σ_w² x·x'/d) σ_w² k_0."""
    x1, x2 = _points(gen, 6, 2, 4, 5), _points(gen, 7, 2, 3, 5)
    sw, d = 1.7, 5
    k1, k0 = arccos(x1, x2, 1), arccos(x1, x2, 0)
    nngp = sw * (sw / d) * k1
    torch.testing.assert_close(relu_nngp(x1, x2, 1, sw, 0.0), nngp, rtol=1e-12, atol=1e-12)
    ntk = nngp + sw * (x1 @ x2.transpose(1, 2)) / d * sw * k0
    torch.testing.assert_close(relu_ntk(x1, x2, 1, sw, 0.0), ntk, rtol=1e-12, atol=1e-12)


def _net_forward(params: list[torch.Tensor], x: torch.Tensor, sw2: float, sb2: float):
    """NTK-parameterised ReLU MLP (the convention of relu_nngp's docstring); returns (f(x), last hidden)."""
    h = x
    for i in range(0, len(params), 2):
        W, b = params[i], params[i + 1]
        z = math.sqrt(sw2 / W.shape[1]) * h @ W.T + math.sqrt(sb2) * b
        if i == len(params) - 2:
            return z[..., 0], h
        h = torch.relu(z)
    raise AssertionError("unreachable")


def _draw_net(g: torch.Generator, dims: list[int]) -> list[torch.Tensor]:
    params = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        params += [torch.randn(b, a, generator=g, dtype=F64), torch.randn(b, generator=g, dtype=F64)]
    return params


def test_nngp_matches_one_very_wide_network(gen) -> None:
    """Depth 1, width 32768: the readout covariance σ_w² φ(z¹)·φ(z¹)'/N + σ_b² self-averages to Σ¹.
    Relative MC error ≈ 2.2/√N ≈ 1.3% per diagonal entry; tolerance 5%."""
    g = gen(11)
    x = torch.randn(6, 3, generator=g, dtype=F64)
    sw2, sb2, width = 2.0, 0.1, 32768
    _, h = _net_forward(_draw_net(g, [3, width, 1]), x, sw2, sb2)
    emp = sw2 * h @ h.T / width + sb2
    th = relu_nngp(x[None], x[None], 1, sw2, sb2)[0]
    assert ((emp - th).norm() / th.norm()).item() < 0.05


@pytest.mark.parametrize("depth", [2, 3])
def test_nngp_and_ntk_match_wide_random_networks(gen, depth: int) -> None:
    """Empirical NNGP (last-hidden-layer covariance) and empirical NTK ⟨∂f(x)/∂θ, ∂f(x')/∂θ⟩ (torch.func
    jacrev + vmap), averaged over R = 128 independent nets of width 256 (R·N = 32768 units in all), vs the
    closed-form recursions. Relative Frobenius error measured over 10 seeds: mean 1.0–1.4%, max 2.4%
    (MC error ~1/√(R·N), finite-width bias O(1/N)); tolerance 5%."""
    g = gen(20 + depth)
    m, d, width, R, sw2, sb2 = 6, 3, 256, 128, 2.0, 0.5
    x = torch.randn(m, d, generator=g, dtype=F64)
    nngp = torch.zeros(m, m, dtype=F64)
    ntk = torch.zeros(m, m, dtype=F64)

    def f_single(params: list[torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return _net_forward(params, xi[None], sw2, sb2)[0][0]

    for _ in range(R):
        params = _draw_net(g, [d] + [width] * depth + [1])
        _, h = _net_forward(params, x, sw2, sb2)
        nngp += sw2 * h @ h.T / width + sb2
        jac = vmap(jacrev(f_single), in_dims=(None, 0))(params, x)  # one (m, *shape) per parameter
        ntk += sum(j.reshape(m, -1) @ j.reshape(m, -1).T for j in jac)
    nngp, ntk = nngp / R, ntk / R
    nngp_th = relu_nngp(x[None], x[None], depth, sw2, sb2)[0]
    ntk_th = relu_ntk(x[None], x[None], depth, sw2, sb2)[0]
    assert ((nngp - nngp_th).norm() / nngp_th.norm()).item() < 0.05
    assert ((ntk - ntk_th).norm() / ntk_th.norm()).item() < 0.05
    # the NTK exceeds the NNGP (it adds the non-negative lower-layer terms), so the check is not vacuous
    assert (ntk_th.diagonal() > 1.5 * nngp_th.diagonal()).all()


def test_relu_kernel_parameter_errors(gen) -> None:
    x = _points(gen, 8, 1, 2, 3)
    with pytest.raises(ConfigError):
        relu_ntk(x, x, depth=0)
    with pytest.raises(ConfigError):
        relu_nngp(x, x, sigma_w2=-1.0)
    with pytest.raises(ConfigError):
        relu_nngp(x, x, sigma_b2=float("nan"))
    with pytest.raises(ConfigError):
        arccos(x, x, order=2)
    with pytest.raises(ConfigError):
        rbf(x, x, lengthscale=0.0)
    with pytest.raises(ShapeError):
        arccos(x, _points(gen, 9, 1, 2, 4))


# ---------------------------------------------------------------- Funk–Hecke eigenvalues


def test_arccos1_eigenvalues_on_s2_match_spec_table() -> None:
    """bias-spec §1.6: λ_0..λ_6 = 0.1875, 0.0833, 0.0117, 0, 3.3e-4, 0, 4.6e-5 (tolerance: the table's
    rounding); λ_0 = 3/16 and λ_1 = 1/12 exactly (direct integration of the kernel against 1 and t)."""
    lam = arccos_eigenvalues(1, 3, 6)
    table = [0.1875, 0.0833, 0.0117, 0.0, 3.3e-4, 0.0, 4.6e-5]
    half_unit = [5e-5, 5e-5, 5e-5, 1e-12, 5e-6, 1e-12, 5e-7]
    for ell, (v, tol) in enumerate(zip(table, half_unit, strict=True)):
        assert abs(lam[ell] - v) <= tol, (ell, lam[ell], v)
    assert lam[0] == pytest.approx(3 / 16, rel=1e-12)
    assert lam[1] == pytest.approx(1 / 12, rel=1e-12)
    # order 0 on S²: λ_0 = E[(π − θ)/(2π)] = 1/4, and λ_1 = E[t (π − arccos t)]/(2π) = 1/16 (t ~ U(−1, 1))
    lam0 = arccos_eigenvalues(0, 3, 2)
    assert lam0[0] == pytest.approx(0.25, rel=1e-12) and lam0[1] == pytest.approx(1 / 16, rel=1e-12)


@pytest.mark.parametrize(("order", "d"), [(1, 5), (1, 2), (0, 4)])
def test_eigenvalues_reconstruct_kernel_by_addition_theorem(order: int, d: int) -> None:
    """Mercer on S^{d−1}: k(t) = Σ_l N(d, l) λ_l P_l(t) with P_l the normalised Gegenbauer polynomial."""
    L = 150
    lam = arccos_eigenvalues(order, d, L)
    a = (d - 3) / 2
    t = np.array([-0.9, -0.3, 0.0, 0.4, 0.8])
    series = sum(
        harmonic_dimension(d, ell) * lam[ell] * eval_jacobi(ell, a, a, t) / eval_jacobi(ell, a, a, 1.0)
        for ell in range(L + 1)
    )
    th = np.arccos(t)
    k = (np.pi - th) / (2 * np.pi) if order == 0 else (np.sin(th) + (np.pi - th) * t) / (2 * np.pi)
    np.testing.assert_allclose(series, k, atol=2e-4 if order == 0 else 1e-6)


def test_eigenvalue_argument_errors() -> None:
    with pytest.raises(ConfigError):
        arccos_eigenvalues(2, 3, 4)
    with pytest.raises(ConfigError):
        arccos_eigenvalues(1, 1, 4)
    with pytest.raises(ConfigError):
        arccos_eigenvalues(1, 3, -1)


def test_unknown_kernel_name_suggests_nearest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'arccos1'"):
        KernelRidge("arcos1")
    with pytest.raises(UnknownNameError, match="lengthscale"):
        KernelRidge("rbf", lenghtscale=2.0)
    with pytest.raises(UnknownNameError):
        KernelRidge("arccos1", depth=2)
