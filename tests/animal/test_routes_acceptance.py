"""Issue 13's acceptance bars for routes 2 and 3, route 1 against the white-box truth, and the staged design
(slow: each run simulates the whole experiment and runs Algorithm 1 on the hidden learner; ~10 min on one core).

The white-box f1 is Algorithm 1 on the simulated animal's hidden learner
(:func:`learnscope.animal.whitebox.simulated_truth`); agreement is :func:`learnscope.animal.whitebox.agreement`
(the eigenspace agreement for a rotation-invariant hidden learner, whose f1 is one direction of a degenerate
eigenspace picked by chance; plain |corr| otherwise). ``benchmarks/animal_routes.py`` records the same numbers with
wall times.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from learnscope.animal.config import parse_animal_config
from learnscope.animal.loop import run_in_process
from learnscope.animal.simulated import TrialBudget
from learnscope.animal.whitebox import agreement, simulated_truth, truth_agreement
from learnscope.bias.measures import linear_fit
from learnscope.bundled import resolve_config_path

pytestmark = pytest.mark.slow


def _config(name: str, seed: int, budget: int | None = None):
    raw = tomllib.loads(resolve_config_path(name, "animal").read_text())
    raw["experiment"]["seed"] = seed
    if budget is not None:
        raw["experiment"]["budget"] = budget
    return parse_animal_config(raw)


def _run(name: str, seed: int, budget: int | None = None):
    """(cfg, route, log, estimate, truth) of one simulated experiment."""
    cfg = _config(name, seed, budget)
    route = cfg.make_route()
    log = run_in_process(route, cfg.make_animal(), TrialBudget(cfg.budget), seed=cfg.seed)
    return cfg, route, log, route.estimate(log), simulated_truth(cfg, route)


def _trials(log) -> int:
    return int(sum(r.trials for r in log))


def _x0_share(values: np.ndarray, x: np.ndarray) -> float:
    w, _ = linear_fit(x, values)
    return float(w[0] ** 2 / (w @ w))


def test_route2_surrogate_of_the_overconnected_mushroom_body_on_4_of_5_seeds():
    """Fig 7's over-connected mushroom body behind graded responses (σ = 0.3): the surrogate's f1 has |corr| ≥ 0.9
    with the white-box f1 and ≥ 60 % of its linear-fit weight norm on x₀, within 1,000 trials."""
    passed, report = 0, []
    for seed in range(5):
        _, route, log, est, truth = _run("animal_mushroom_surrogate", seed)
        assert not truth["rotation_invariant"]
        f1 = est.stages["surrogate"].f1(route.references)
        corr = abs(float(np.corrcoef(f1, truth["values"])[0, 1]))
        share = _x0_share(f1, route.references)
        trials = _trials(log)
        assert trials <= 1000
        passed += corr >= 0.9 and share >= 0.6
        report.append((seed, trials, round(corr, 3), round(share, 3)))
    print("route 2 (seed, trials, |corr|, x0 share):", report)
    assert passed >= 4, report


def test_route3_evolution_strategies_reach_the_white_box_f1_within_1e5_trials_on_3_seeds():
    """Antithetic ES on the arc-cosine kernel animal: the trials at which f_θ first reaches eigenspace agreement
    ≥ 0.9 along the ES history — the issue expects 10⁴–10⁵, two orders above route 1 (~100–700 trials)."""
    report = []
    for seed in range(3):
        _, route, log, est, truth = _run("animal_kernel_es", seed, budget=100_000)
        assert truth["rotation_invariant"]
        e = est.stages["es"]
        refs = route.references
        hist = [(t, agreement(e.labelling(th)(refs), truth["values"], refs, route.domain, rotation_invariant=True))
                for t, th in e.history]
        first = next((t for t, a in hist if a >= 0.9), None)
        report.append((seed, first, round(hist[-1][1], 3)))
        assert first is not None and 1e4 <= first <= 1e5, report
    print("route 3 (seed, trials to 0.9, final agreement):", report)


@pytest.mark.parametrize("name, bar_trials", [("animal_kernel_graded", 600), ("animal_kernel_binary", 1200)])
def test_route1_agrees_with_the_white_box_f1_on_5_seeds(name, bar_trials):
    report = []
    for seed in range(5):
        _, route, log, est, truth = _run(name, seed)
        a = truth_agreement(est, route, truth)["iterated"]
        report.append((seed, _trials(log), round(a, 3)))
        assert _trials(log) <= bar_trials and a >= 0.9, report
    print(name, "(seed, trials, agreement):", report)


def test_the_staged_design_agrees_with_the_white_box_f1_and_validates_on_the_animal():
    """Iterated learning, then the surrogate, then the paired test: both stages' f1 agree with the white box and
    f1 is easier for the animal than controls with the same marginal (MSE ratio < 1, its 95 % CI below 1)."""
    cfg, route, log, est, truth = _run("animal_kernel_staged", 0)
    a = truth_agreement(est, route, truth)
    v = est.validation
    print("staged:", a, v.to_dict(), "trials", _trials(log))
    assert a["iterated"] >= 0.9 and a["surrogate"] >= 0.9
    assert v.pairs == cfg.settings["validation"].pairs
    assert v.ratio < 1 and v.ci[1] < 1
    assert _trials(log) <= cfg.budget
