"""Route 2 (the behavioural surrogate) piece by piece, at tiny sizes: the learnable-spectrum kernel against its
closed form, the likelihood against numpy and finite differences, recovery of a known spectrum from sessions
simulated from it, and the query-by-committee choice against a plain numpy re-computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre as npleg
from scipy.special import eval_gegenbauer

from learnscope.animal.families import InputGains, SphereSpectrum
from learnscope.animal.loop import run_in_process
from learnscope.animal.responses import BinaryChoice, Graded
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.animal.simulated import SimulatedAnimal, TrialBudget
from learnscope.animal.surrogate import Member, Surrogate, SurrogateSettings
from learnscope.domains import Sphere
from learnscope.learners.kernels import KernelRidge
from learnscope.spherical import harmonic_dimension


def _sphere_points(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _inv_softplus(v: np.ndarray) -> np.ndarray:
    return np.log(np.expm1(np.asarray(v, dtype=np.float64)))


def _theta(c: np.ndarray, ridge: float) -> torch.Tensor:
    return torch.tensor(np.r_[_inv_softplus(c), _inv_softplus(ridge)])


def _p(d: int, l: int, t: np.ndarray) -> np.ndarray:
    """Legendre polynomial of dimension d with P_l(1) = 1, from scipy's Gegenbauer C_l^{(d−2)/2} (numpy's
    Legendre series for d = 3)."""
    if d == 3:
        return npleg.legval(t, np.eye(l + 1)[l])
    a = (d - 2) / 2
    return eval_gegenbauer(l, a, t) / eval_gegenbauer(l, a, 1.0)


def _spectrum_gram(c: np.ndarray, d: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = np.clip(a @ b.T, -1, 1)
    return sum(c[l] * harmonic_dimension(d, l) * _p(d, l, t) for l in range(len(c)))


@pytest.mark.parametrize("d", [3, 5])
def test_the_spectrum_kernel_is_the_sum_over_degrees_and_positive_semidefinite(d):
    c = np.array([0.3, 1.0, 0.05, 0.4, 0.02])
    fam = SphereSpectrum(d, max_degree=4)
    theta = _theta(c, 0.1)
    a, b = _sphere_points(30, d, 0), _sphere_points(7, d, 1)
    want = _spectrum_gram(c, d, a, b)
    # the batched callable handed to KernelRidge (a three-term recurrence) and the precomputed-feature Gram
    got = fam.kernel(theta)(torch.tensor(a)[None], torch.tensor(b)[None])[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fam.gram(theta, fam.features(a, b)).detach().numpy(), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fam.spectrum(theta), c, rtol=1e-12)
    assert float(fam.ridge(theta)) == pytest.approx(0.1, rel=1e-12)
    # Schoenberg: c ≥ 0 gives a positive semi-definite Gram on any points (here 30 > rank of degrees ≤ 4 on S²)
    w = np.linalg.eigvalsh(_spectrum_gram(c, d, a, a))
    K = fam.gram(theta, fam.features(a, a)).detach().numpy()
    assert np.linalg.eigvalsh((K + K.T) / 2).min() >= -1e-9 * w.max()


def _data(fam, records):
    return [(fam.session_data(r.plan.train_x, r.plan.probe_x), torch.tensor(r.plan.train_y),
             torch.tensor(r.responses)) for r in records]


def _records(d: int, response, n_sessions: int, seed: int, repeats: int = 2) -> list[SessionRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_sessions):
        tx, px = _sphere_points(6, d, 10 * seed + k), _sphere_points(5, d, 100 + 10 * seed + k)
        plan = SessionPlan(k, "surrogate", tx, rng.uniform(-1, 1, 6), px, repeats=repeats)
        r = rng.normal(size=(5, repeats)) if isinstance(response, Graded) else \
            (rng.random((5, repeats)) < 0.5).astype(float)
        out.append(SessionRecord(plan, r))
    return out


def test_the_graded_likelihood_is_the_gaussian_one_of_the_kernel_ridge_prediction():
    d = 3
    fam_c, ridge, sigma = np.array([0.2, 0.7, 0.1, 0.05]), 0.3, 0.4
    sur = Surrogate(Sphere(d), Graded(noise=0.4), SurrogateSettings(max_degree=3))
    recs = _records(d, Graded(), 3, seed=0)
    theta = _theta(fam_c, ridge)
    resp = torch.tensor(_inv_softplus([sigma - 1e-4]))
    weights = np.array([1.0, 2.0, 0.0])
    got = float(sur._nll(theta, resp, _data(sur.family, recs), weights))
    want = 0.0
    for r, w in zip(recs, weights, strict=True):
        K = _spectrum_gram(fam_c, d, r.plan.train_x, r.plan.train_x)
        pred = _spectrum_gram(fam_c, d, r.plan.probe_x, r.plan.train_x) @ np.linalg.solve(
            K + ridge * np.eye(len(K)), r.plan.train_y)
        want += w * np.sum(0.5 * ((r.responses - pred[:, None]) / sigma) ** 2 + np.log(sigma))
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("family, response", [("sphere_spectrum", Graded()), ("sphere_spectrum", BinaryChoice()),
                                              ("input_gains", Graded()), ("input_gains", BinaryChoice(lapse=0.05))])
def test_the_likelihood_gradient_matches_finite_differences(family, response):
    d = 3
    sur = Surrogate(Sphere(d), response, SurrogateSettings(family=family, max_degree=3))
    recs = _records(d, response, 2, seed=1)
    data = _data(sur.family, recs)
    weights = np.array([1.0, 3.0])
    theta = sur.family.initial(np.random.default_rng(2)).requires_grad_(True)
    resp = (sur._initial_response() + 0.1).requires_grad_(True)
    sur._nll(theta, resp, data, weights).backward()
    for param, grad in ((theta, theta.grad), (resp, resp.grad)):
        h = 1e-6
        for i in range(len(param)):
            with torch.no_grad():
                e = torch.zeros_like(param)
                e[i] = h
                param += e
                up = float(sur._nll(theta, resp, data, weights))
                param -= 2 * e
                down = float(sur._nll(theta, resp, data, weights))
                param += e
            assert float(grad[i]) == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-6)


def test_a_surrogate_fitted_to_a_known_spectrum_finds_its_top_degree():
    """Well-specified: the animal IS a SphereSpectrum kernel ridge learner with degree 2 the most learnable (c_2
    largest — not the family's initial guess, whose spectrum falls with the degree)."""
    d = 3
    c_true, ridge = np.array([0.05, 0.1, 1.0, 0.05]), 0.05
    fam = SphereSpectrum(d, max_degree=3)
    animal = SimulatedAnimal(KernelRidge(fam.kernel(_theta(c_true, ridge)), lam=ridge), Graded(noise=0.05))
    settings = SurrogateSettings(max_degree=3, n_train=20, n_probe=20, members=1, random_sessions=8,
                                 max_sessions=8, fit_iterations=50, labelling_scale=2.0)
    sur = Surrogate(Sphere(d), Graded(noise=0.05), settings, seed=3)
    log = run_in_process(sur, animal, TrialBudget(10_000), seed=3)
    assert len(log) == 8
    (m,) = sur.fit(log)
    c = m.family.spectrum(m.theta) / float(m.family.ridge(m.theta))
    assert int(np.argmax(c)) == 2
    # kernel ridge sees only c / λ (true: 1, 2, 20, 1). The unsaturated degrees are pinned down (±20 %); the top
    # one is nearly interpolated (learnability c n / (c n + λ) ≈ 1), so only a lower bound is identifiable.
    np.testing.assert_allclose(c[[0, 1, 3]], (c_true / ridge)[[0, 1, 3]], rtol=0.2)
    assert c[2] > 5


def _np_predict(c, ridge, d, tx, ty, px) -> np.ndarray:
    K = _spectrum_gram(c, d, tx, tx)
    return _spectrum_gram(c, d, px, tx) @ np.linalg.solve(K + ridge * np.eye(len(K)), ty)


def test_query_by_committee_picks_the_labelling_the_members_disagree_on_most():
    d = 3
    settings = SurrogateSettings(max_degree=3, n_train=8, n_probe=8, candidates=6, random_sessions=2, members=3)
    sur = Surrogate(Sphere(d), Graded(), settings, seed=5)
    log = _records(d, Graded(), 2, seed=4, repeats=1)
    spectra = [(np.array([0.1, 1.0, 0.01, 0.01]), 0.1), (np.array([0.1, 0.01, 0.01, 1.0]), 0.1),
               (np.array([0.1, 0.3, 0.3, 0.3]), 1.0)]
    members = [Member(sur.family, _theta(c, r), sur._initial_response(), 0.0) for c, r in spectra]
    sur._fits[len(log)] = members  # synthetic committee in place of a fit
    plan = sur.plan(log)
    cands = [sur._candidate(2, j, plan.train_x, plan.probe_x) for j in range(settings.candidates)]
    lg = np.array([[np.mean((_np_predict(c, r, d, plan.train_x, y, plan.probe_x) - t) ** 2) for y, t in cands]
                   for c, r in spectra])
    var = lg.var(axis=0)
    best = int(np.argmax(var))
    assert np.sort(var)[-1] > 1.05 * np.sort(var)[-2]  # a clear winner, so the check can fail
    assert plan.extra["candidate"] == best
    np.testing.assert_array_equal(plan.train_y, cands[best][0])


def test_input_gains_kernel_is_the_arccos_kernel_of_rescaled_inputs():
    """k(x, x') = a · k₁(Gx, Gx'), k₁(u, v) = E_w[ReLU(w·u) ReLU(w·v)] = ‖u‖‖v‖(sin θ + (π − θ) cos θ)/(2π)
    (half of Cho & Saul's order-1 kernel)."""
    d = 4
    fam = InputGains(d)
    g, a = np.array([2.0, 0.5, 1.0, 0.1]), 1.7
    theta = torch.tensor(np.r_[_inv_softplus(g), _inv_softplus(a), _inv_softplus(0.1)])
    x, y = _sphere_points(9, d, 0) * g, _sphere_points(5, d, 1) * g
    nx, ny = np.linalg.norm(x, axis=1)[:, None], np.linalg.norm(y, axis=1)[None]
    cos = np.clip(x @ y.T / (nx * ny), -1, 1)
    th = np.arccos(cos)
    want = a * nx * ny * (np.sin(th) + (np.pi - th) * cos) / (2 * np.pi)
    got = fam.gram(theta, fam.features(x / g, y / g)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_series_and_contrast_run_on_the_fitted_surrogate():
    """Algorithm 1's series and contrast on the best fit: the series' functions are orthogonal (deflation), and the
    contrast is a labelling the surrogate learns with less error than the comparison learner."""
    from learnscope.animal.loop import run_in_process
    from learnscope.animal.responses import Graded
    from learnscope.animal.simulated import SimulatedAnimal, TrialBudget
    from learnscope.animal.surrogate import Surrogate, SurrogateSettings
    from learnscope.bias.measures import generalisation_error
    from learnscope.domains import Sphere
    from learnscope.learners.kernels import KernelRidge
    from learnscope.learners.ridge import Ridge

    quick = {"search": {"steps": 40, "learners_per_step": 4, "n_test": 40}, "meta": {"hidden": 32}}
    settings = SurrogateSettings(members=2, fit_iterations=20, series=2, random_sessions=6,
                                 contrast_with={"name": "ridge"})
    response = Graded(noise=0.1)
    route = Surrogate(Sphere(3), response, settings, seed=1, algorithm1=quick)
    log = run_in_process(route, SimulatedAnimal(KernelRidge("arccos1", lam=0.1), response), TrialBudget(240), seed=1)
    est = route.estimate(log)
    x = route.references
    f1, f2 = (f(x) for f in est.series)
    assert len(est.series) == 2
    # deflation makes them exactly orthogonal on the search's 2,000 reference points; on 500 other points their
    # normalised inner product is a sampling error of s.d. ≈ √(1/2000 + 1/500) ≈ 0.05 (3 s.d. allowed)
    assert abs(np.mean(f1 * f2)) <= 3 * np.sqrt(1 / 2000 + 1 / 500) * np.sqrt(np.mean(f1**2) * np.mean(f2**2))
    best = est.members[0].learner()
    err_a = generalisation_error(best, est.contrast, Sphere(3), 20, 40, draws=40, seed=0)["mse"]
    err_b = generalisation_error(Ridge(), est.contrast, Sphere(3), 20, 40, draws=40, seed=0)["mse"]
    assert err_a < err_b


def test_the_trained_mlp_family_is_differentiable_in_its_scale_and_learning_rate():
    """The family's prediction is gradient descent on a ReLU net, differentiated through the unroll: its gradient
    in θ = (softplus⁻¹ s, softplus⁻¹ η) matches central finite differences, and the fitted member as a learner
    gives the family's prediction when it draws the same initial weights."""
    from learnscope.animal.families import TrainedMLP

    fam = TrainedMLP(3, hidden=6, steps=5, draws=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    xp = rng.normal(size=(4, 3))
    y = torch.tensor(rng.uniform(-1, 1, 7))
    data = fam.session_data(x, xp)
    theta = torch.tensor([0.3, -2.0], dtype=torch.float64, requires_grad=True)
    fam.predict(theta, data, y).sum().backward()
    h = 1e-6
    for i in range(2):
        up, down = theta.detach().clone(), theta.detach().clone()
        up[i] += h
        down[i] -= h
        fd = (fam.predict(up, data, y).sum() - fam.predict(down, data, y).sum()) / (2 * h)
        assert float(theta.grad[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
    learner = fam.learner(theta)
    g = [torch.Generator().manual_seed(0) for _ in range(2)]
    pred = learner.fit_predict(torch.tensor(x).expand(2, 7, 3), y.expand(2, 7), torch.tensor(xp).expand(2, 4, 3),
                               generator=g)
    z1 = torch.stack([torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)] * 2)
    gg = torch.Generator().manual_seed(0)
    torch.randn(3, 6, generator=gg, dtype=torch.float64)
    z2 = torch.randn(6, 1, generator=gg, dtype=torch.float64).expand(2, 6, 1)
    params = fam._train(theta.detach(), z1, z2, torch.tensor(x).expand(2, 7, 3), y.expand(2, 7))
    np.testing.assert_allclose(pred.detach().numpy(), fam._forward(params, torch.tensor(xp).expand(2, 4, 3)).numpy(),
                               rtol=1e-12)
