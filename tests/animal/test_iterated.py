"""Route 1 (iterated learning) and the pieces it stands on: responses, the smoother, the noise-amplification
estimate, and the acceptance bars of issue 13 on simulated kernel-ridge animals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnscope.animal.iterated import IteratedLearning, IteratedSettings, rank_to_uniform
from learnscope.animal.loop import run_in_process
from learnscope.animal.responses import BinaryChoice, Graded, make_response
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.animal.simulated import BudgetExhausted, SimulatedAnimal, TrialBudget
from learnscope.animal.smoother import smooth
from learnscope.domains import Sphere
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners.kernels import KernelRidge


def test_rank_to_uniform_gives_the_midpoint_quantiles_of_u_minus1_1():
    v = np.array([3.0, -1.0, 10.0, 0.5])
    u = rank_to_uniform(v)
    assert np.allclose(np.sort(u), (2 * np.arange(1, 5) - 1) / 4 - 1)
    assert np.array_equal(np.argsort(u), np.argsort(v))


def test_graded_responses_have_the_stated_noise():
    rng = np.random.default_rng(0)
    pred = np.linspace(-1, 1, 50)
    r = Graded(noise=0.3).respond(pred, 400, rng)
    resid = r - pred[:, None]
    # mean of 20,000 N(0, 0.09) draws: s.e. 0.3/√20000 ≈ 0.0021; variance s.e. ≈ 0.09·√(2/20000) ≈ 0.0009
    assert abs(resid.mean()) < 5 * 0.0021
    assert abs(resid.var() - 0.09) < 5 * 0.0009


def test_binary_choice_probability_and_its_inversion():
    rng = np.random.default_rng(1)
    model = BinaryChoice(slope=4.0, lapse=0.1)
    pred = np.array([-0.5, 0.0, 0.3])
    choices = model.respond(pred, 20000, rng)
    p = 0.05 + 0.9 / (1 + np.exp(-4 * pred))
    assert np.all(np.abs(choices.mean(1) - p) < 5 * np.sqrt(p * (1 - p) / 20000))
    assert np.allclose(model.prediction(choices), pred, atol=0.02)
    assert np.allclose(model.labels(choices), 2 * choices.mean(1) - 1)


def test_lapses_replace_that_share_of_graded_responses():
    rng = np.random.default_rng(2)
    r = Graded(noise=0.0, lapse=0.2).respond(np.full(100, 5.0), 100, rng)
    share = float((r != 5.0).mean())
    assert abs(share - 0.2) < 5 * np.sqrt(0.2 * 0.8 / 10000)
    assert np.all(np.abs(r[r != 5.0]) <= 1)


def test_bad_response_specs_are_one_line_errors():
    with pytest.raises(UnknownNameError):
        make_response("lick")
    with pytest.raises(ConfigError):
        make_response({"kind": "graded", "slope": 2})
    with pytest.raises(ConfigError):
        BinaryChoice().check(np.array([[0.0, 0.5]]))


def test_the_smoothers_leave_one_out_error_equals_refitting_without_each_point():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 3))
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=25)
    s = smooth(x, y)
    # brute force: refit kernel ridge on 24 points (same length scale and ridge, same centring by the full mean)
    K = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * s.lengthscale**2))
    yc = y - s.mean
    errs = []
    for i in range(25):
        keep = np.arange(25) != i
        a = np.linalg.solve(K[np.ix_(keep, keep)] + s.ridge * np.eye(24), yc[keep])
        errs.append((K[i, keep] @ a - yc[i]) ** 2)
    assert s.loo_mse == pytest.approx(np.mean(errs), rel=1e-8)


def test_echo_probes_measure_the_share_of_random_labels_the_learner_memorises():
    """With noise-free graded responses the estimate is exactly 1/(1 − ‖c(H y)‖²/‖y‖²), H the learner's hat
    matrix on its training stimuli (computed here white-box from the kernel)."""
    learner = KernelRidge("arccos1", lam=0.1)
    route = IteratedLearning(Sphere(3), Graded(noise=0.0), IteratedSettings(), seed=4)
    plan = route.plan([])
    animal = SimulatedAnimal(learner, Graded(noise=0.0))
    record = SessionRecord(plan, animal.run_session(plan.train_x, plan.train_y, plan.probe_x, repeats=1,
                                                    rng=np.random.default_rng(0)))
    x = torch.as_tensor(plan.train_x)[None]
    K = learner.gram(x, x)[0].numpy()
    H = K @ np.linalg.inv(K + 0.1 * np.eye(len(K)))
    y = plan.train_y - plan.train_y.mean()
    e = H @ plan.train_y
    e = e - e.mean()
    assert route._noise_amplification(record) == pytest.approx(1 / (1 - (e @ e) / (y @ y)), rel=1e-9)


def test_sessions_validate_their_shapes():
    with pytest.raises(ShapeError):
        SessionPlan(0, "iterated", np.zeros((3, 2)), np.zeros(4), np.zeros((2, 2)))
    plan = SessionPlan(0, "iterated", np.zeros((3, 2)), np.zeros(3), np.zeros((2, 2)), repeats=2)
    assert plan.trials == 3 + 2 * 2
    with pytest.raises(ShapeError):
        SessionRecord(plan, np.zeros((2, 3)))


def test_the_budget_refuses_a_session_it_cannot_afford():
    b = TrialBudget(100)
    b.charge(60)
    assert not b.can_afford(41)
    with pytest.raises(BudgetExhausted):
        b.charge(41)
    assert b.used == 60 and b.left == 40


def test_the_animal_hides_its_learner():
    animal = SimulatedAnimal(KernelRidge("arccos1", lam=0.1), "graded")
    assert not any(isinstance(v, KernelRidge) for v in vars(animal).values())
    assert "hidden" in repr(animal)


# ------------------------------------------------------------------ acceptance (issue 13, route 1)


def _degree1_agreement(route: IteratedLearning, f1) -> float:
    """|corr| of f1 with its best fit in the white-box f1's eigenspace. For the arc-cosine kernel on S² that is the
    degree-1 harmonics (affine functions of x): Algorithm 1's series puts f1–f3 there (tests/theory), and the
    eigenspace is 3-fold degenerate, so any one direction in it is as easy as the white-box f1."""
    x = route.references
    v = f1(x)
    A = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(A, v, rcond=None)
    return abs(float(np.corrcoef(v, A @ coef)[0, 1]))


def _chain(lam: float, response, settings: IteratedSettings, budget: int, seed: int):
    animal = SimulatedAnimal(KernelRidge("arccos1", lam=lam), response)
    route = IteratedLearning(Sphere(3), response, settings, seed=seed)
    log = run_in_process(route, animal, TrialBudget(budget), seed=seed)
    return route, route.estimate(log)


@pytest.mark.parametrize("seed", range(5))
def test_graded_chain_finds_f1_within_600_trials(seed):
    route, est = _chain(0.1, Graded(noise=0.1), IteratedSettings(), 600, seed)
    assert est.trials <= 600
    assert est.converged and not est.warnings
    assert _degree1_agreement(route, est.f1) >= 0.9


@pytest.mark.parametrize("seed", range(5))
def test_binary_chain_with_five_repeats_finds_f1_within_1200_trials(seed):
    settings = IteratedSettings(repeats=5, threshold=0.9, readout_probes=30, readout_repeats=10)
    route, est = _chain(0.1, BinaryChoice(), settings, 1200, seed)
    assert est.trials <= 1200
    assert _degree1_agreement(route, est.f1) >= 0.9


@pytest.mark.parametrize("seed", range(5))
def test_a_near_interpolating_learner_warns_instead_of_converging(seed):
    _, est = _chain(1e-3, Graded(noise=0.1), IteratedSettings(), 600, seed)
    assert not est.converged
    assert any("noise" in w for w in est.warnings)
    assert est.noise_amplification >= 2.0
