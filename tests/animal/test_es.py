"""Route 3 (antithetic evolution strategies) and the validation test, at tiny sizes: the mirrored estimator on a
known quadratic, the replay of the session log, and the bootstrap interval of the validation ratio."""

from __future__ import annotations

import numpy as np
import pytest

from learnscope.animal.es import ESSettings, EvolutionStrategies
from learnscope.animal.labellings import on_training_marginal
from learnscope.animal.loop import run_in_process
from learnscope.animal.responses import Graded
from learnscope.animal.session import SessionRecord
from learnscope.animal.simulated import SimulatedAnimal, TrialBudget
from learnscope.animal.validation import Validation, ValidationSettings
from learnscope.domains import Sphere
from learnscope.learners.kernels import KernelRidge

DIM = 8  # degree 2 on S²: 3 + 5 coefficients
A = np.diag(np.linspace(0.5, 3.0, DIM))
B = np.linspace(-1.0, 1.0, DIM)


def _quadratic(theta: np.ndarray) -> float:
    """L(θ) = ½ θᵀAθ + bᵀθ, ∇L = Aθ + b."""
    return float(0.5 * theta @ A @ theta + B @ theta)


def _one_iteration(seed: int, pairs: int, sigma: float):
    """Replay one ES iteration (2·pairs sessions) whose session losses are L at the perturbed θ; returns the route,
    θ₀, the estimate ĝ handed to Adam, and θ after the step."""
    route = EvolutionStrategies(Sphere(3), Graded(), ESSettings(degree=2, pairs=pairs, sigma=sigma, n_train=3,
                                                                n_probe=3), seed=seed)
    route._loss = lambda record, theta: _quadratic(theta)  # the "animal" is the known quadratic
    theta0 = route._replay([])["param"].detach().numpy().copy()
    log: list[SessionRecord] = []
    for _ in range(2 * pairs):
        plan = route.plan(log)
        log.append(SessionRecord(plan, np.zeros((plan.probe_x.shape[0], 1))))
    st = route._replay(log)
    return route, theta0, st["param"].grad.numpy().copy(), st["param"].detach().numpy().copy()


def test_the_mirrored_estimate_is_exact_for_a_quadratic_along_each_perturbation():
    """For a quadratic, (L(θ + σε) − L(θ − σε)) / 2σ = εᵀ∇L(θ) exactly, so ĝ = (1/P) Σ_j (ε_jᵀ∇L) ε_j; and Adam's
    first step is lr·ĝ/(|ĝ| + 1e-8) per coordinate, then θ is renormalised to the unit sphere."""
    route, theta0, g, theta1 = _one_iteration(seed=0, pairs=3, sigma=0.1)
    grad = A @ theta0 + B
    eps = np.stack([route._perturbation(0, j) for j in range(3)])
    np.testing.assert_allclose(g, (eps @ grad) @ eps / 3, rtol=1e-9, atol=1e-12)
    step = theta0 - route.settings.lr * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(theta1, step / np.linalg.norm(step), rtol=1e-9)


def test_the_mirrored_estimate_is_unbiased_for_the_true_gradient():
    """Over S independent iterations (seeds) the residual ĝ − ∇L(θ₀) has mean 0. With ε ~ N(0, I) and
    ĝ = (1/P) Σ (εᵀg) ε, Var ĝ_i = (‖g‖² + g_i²) / P (Isserlis: E[(εᵀg)² ε_i²] = ‖g‖² + 2 g_i²), so each coordinate's
    summed residual over its summed variance is ≈ N(0, 1): |z| < 4.5 for all 8 (a false alarm has p ≈ 5e-5)."""
    pairs, S = 2, 150
    resid, var, total = np.zeros(DIM), np.zeros(DIM), np.zeros(DIM)
    for seed in range(S):
        _, theta0, g, _ = _one_iteration(seed, pairs, sigma=0.3)
        grad = A @ theta0 + B
        resid += g - grad
        var += (grad @ grad + grad**2) / pairs
        total += grad
    z = resid / np.sqrt(var)
    assert np.all(np.abs(z) < 4.5), z
    # the check has power: twice the estimate (a lost 1/2 in 1/(2σP); E = 2∇L) would fail it
    assert np.abs((2 * resid + total) / np.sqrt(var)).max() > 4.5


def _es_route(seed: int = 1) -> EvolutionStrategies:
    return EvolutionStrategies(Sphere(3), Graded(noise=0.1), ESSettings(degree=2, pairs=2, n_train=8, n_probe=8),
                               seed=seed)


@pytest.fixture(scope="module")
def es_log():
    animal = SimulatedAnimal(KernelRidge("arccos1", lam=0.1), Graded(noise=0.1))
    return run_in_process(_es_route(), animal, TrialBudget(3 * 4 * 16 + 2 * 16), seed=1)  # 3½ iterations


def test_the_replay_is_incremental_and_equals_a_replay_from_scratch(es_log):
    assert len(es_log) == 14
    calls = []
    route = _es_route()
    loss = route._loss
    route._loss = lambda record, theta: calls.append(record.plan.index) or loss(record, theta)
    for k in (5, 9, 14):
        route.estimate(es_log[:k])
    assert calls == list(range(14))  # every session scored once, in order
    fresh = _es_route().estimate(es_log)
    inc = route.estimate(es_log)
    assert inc.iterations == fresh.iterations == 3 and inc.trials == fresh.trials == 14 * 16
    np.testing.assert_array_equal(inc.theta, fresh.theta)
    for (ta, a), (tb, b) in zip(inc.history, fresh.history, strict=True):
        assert ta == tb
        np.testing.assert_array_equal(a, b)
    # a shorter log than the cached one restarts the replay and matches its own from-scratch replay
    np.testing.assert_array_equal(route.estimate(es_log[:8]).theta, _es_route().estimate(es_log[:8]).theta)
    # the in-process run planned each session from the same replayed state: the next plan agrees too
    p1, p2 = route.plan(es_log), _es_route().plan(es_log)
    np.testing.assert_array_equal(p1.train_y, p2.train_y)


def test_es_losses_are_the_probe_mse_against_the_labelling_on_the_training_marginal(es_log):
    """L_g of one session = mean over probes of (label − f(probe) mapped through the training labels' ranks)."""
    route = _es_route()
    rec = es_log[0]
    theta = np.random.default_rng(0).normal(size=route.dim)
    f = route.labelling(theta)
    tr, pr = f(rec.plan.train_x), f(rec.plan.probe_x)
    order = np.sort(tr)
    u = (np.arange(1, len(order) + 1) - 0.5) / len(order) * 2 - 1  # midpoint quantiles of U[−1, 1]
    want = np.mean((rec.responses.mean(1) - np.interp(pr, order, u)) ** 2)
    assert route._loss(rec, theta) == pytest.approx(want, rel=1e-12)


def test_the_validation_interval_covers_a_known_mse_ratio():
    """Synthetic animal: its probe labels are the labelling's target plus N(0, s²) noise, s = 0.3 after f1 and 0.6
    after the control, so the true MSE ratio is 0.25. Over 60 experiments of 10 pairs the 95 % percentile-
    bootstrap interval must cover 0.25 in 80–100 % of them (binomial s.e. at 95 % coverage ≈ 3 %; the
    percentile bootstrap of a ratio under-covers a little at 10 pairs), and the point ratio is the ratio of the
    numpy mean errors."""
    s_f1, s_control, true_ratio = 0.3, 0.6, 0.25
    covered, ratios = 0, []
    for seed in range(60):
        v = Validation(Sphere(3), Graded(), ValidationSettings(pairs=10, n_train=6, n_probe=10, bootstrap=500),
                       seed=seed)
        v.f1 = lambda x: x[:, 0] + 0.5 * x[:, 1]
        rng = np.random.default_rng(seed)
        log: list[SessionRecord] = []
        errs = []
        while (plan := v.plan(log)) is not None:
            f = v.f1 if plan.extra["labelling"] == "f1" else v._functions(plan.extra["pair"])[1]
            target = on_training_marginal(f(plan.train_x), f(plan.probe_x))
            s = s_f1 if plan.extra["labelling"] == "f1" else s_control
            r = target + s * rng.standard_normal(len(target))
            errs.append(np.mean((r - target) ** 2))
            log.append(SessionRecord(plan, r[:, None]))
        res = v.estimate(log)
        assert res.pairs == 10 and res.trials == 20 * 16
        assert res.ratio == pytest.approx(np.mean(errs[0::2]) / np.mean(errs[1::2]), rel=1e-12)
        assert res.ci[0] <= res.ratio <= res.ci[1]
        covered += res.ci[0] <= true_ratio <= res.ci[1]
        ratios.append(res.ratio)
    assert 0.8 <= covered / 60 <= 1.0
    # delta method for X̄/Ȳ, each a mean of 100 scaled χ²₁: E ≈ 0.25 (1 + 2/100) = 0.255, s.d. per run
    # ≈ 0.25 √(2/100 + 2/100) = 0.05, so the mean of 60 runs is 0.255 ± 0.0065: allow 4 s.e.
    assert abs(np.mean(ratios) - true_ratio * 1.02) < 4 * 0.05 / np.sqrt(60)


class _GrowingStage:
    """A search stage whose f1 depends on how many sessions of ANY route it has seen (as the surrogate's does):
    f1(x) = x[:, len(log) mod 3]. Plans two sessions of its own."""

    route = "stub"

    def __init__(self):
        self.domain = Sphere(3)
        self.references = np.eye(3)
        self.x = np.random.default_rng(0).normal(size=(6, 3))
        self.x /= np.linalg.norm(self.x, axis=1, keepdims=True)

    def plan(self, log, budget_left=None):
        if sum(r.plan.route == self.route for r in log) >= 2:
            return None
        from learnscope.animal.session import SessionPlan

        return SessionPlan(len(log), self.route, self.x[:3], np.array([-0.5, 0.0, 0.5]), self.x[3:])

    def estimate(self, log):
        from types import SimpleNamespace

        k = len(log) % 3
        return SimpleNamespace(f1=lambda x: x[:, k], warnings=[], converged=True, to_dict=dict)


def test_a_staged_validation_tests_the_f1_found_before_it_began_in_process_and_from_the_log():
    """In one process the validation stage is given f1 when it plans its first session; a route rebuilt from the
    log (as `learnscope animal plan/status` do) must plan the same sessions and score them against the same f1."""
    from learnscope.animal.staged import Staged

    def route():
        return Staged([_GrowingStage(), Validation(Sphere(3), Graded(), ValidationSettings(pairs=2, n_train=6,
                                                                                          n_probe=6), seed=0)])

    animal = SimulatedAnimal(KernelRidge("arccos1", lam=0.1), Graded(noise=0.1))
    live = route()
    log = run_in_process(live, animal, TrialBudget(10_000), seed=0)
    assert [r.plan.route for r in log] == ["stub", "stub"] + ["validation"] * 4
    for k in range(2, len(log)):  # every session as a fresh route would plan it from the log so far
        np.testing.assert_array_equal(route().plan(log[:k]).train_y, log[k].plan.train_y)
    a, b = live.estimate(log).validation, route().estimate(log).validation
    assert a.ratio == b.ratio and a.ci == b.ci
    x = np.eye(3)
    np.testing.assert_array_equal(live.stages[1].f1(x), x[:, 2])  # found from the 2 sessions before validation


@pytest.mark.parametrize("table", [{"labelling_scale": -1.0}, {"labelling_scale": 0.0}, {"pairs": 0},
                                   {"bootstrap": 0}])
def test_bad_validation_settings_are_one_line_config_errors(table):
    from learnscope.animal.validation import validation_settings
    from learnscope.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validation_settings(table)
    assert "\n" not in str(err.value) and "validation." in str(err.value)
