"""Every bias run judges its result against simple baselines (issue 11 item 8) and reports the per-input dependence of
functions on domains of dimension > 3 (item 16).

The checks' numbers are tested against closed forms (a labelling distributed as the target shrunk by c has W2 =
|1 − c| σ*; all-zero labels have W2 = √E[Y²]; independent values have nearest-neighbour roughness 1; the mean
predictor's error), and the whole path on tiny runs: a good setting is ok, `search.lr = 1e6` diverges, a tiny
`alpha_d` collapses, an exploding SGD step is non-finite — and the CLI then prints one `warning:` line per problem and
exits 3.
"""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest
from typer.testing import CliRunner

from learnscope.bias.config import load_config, parse_config
from learnscope.bias.experiment import run_experiment
from learnscope.bias.verdict import check_labelling, mean_predictor_mse, nearest_neighbour_roughness
from learnscope.targets import make_target

UNIFORM = make_target("uniform")  # U(−1, 1): σ* = 1/√3, W2(0) = √(1/3)
SIGMA = 1 / math.sqrt(3)
N = 4000
LINE = (np.arange(N)[:, None] + 0.5) / N  # evaluation points on [0, 1]
QUANTILES = 2 * LINE[:, 0] - 1  # U(−1, 1)'s midpoint quantiles: a smooth labelling with the target's law


# ------------------------------------------------------------------------------------ closed forms of the checks
@pytest.mark.parametrize("c, status", [(1.0, "ok"), (0.6, "ok"), (0.32, "ok"), (0.27, "collapsed"),
                                       (0.1, "collapsed"), (1.8, "ok"), (2.5, "diverged")])
def test_a_shrunk_or_stretched_target_gets_its_status_from_the_closed_forms(c, status):
    got, warnings, nums = check_labelling(c * QUANTILES, LINE, UNIFORM, label="f1 seed 3")
    assert nums["w2_to_target"] == pytest.approx(abs(1 - c) * SIGMA, rel=1e-3, abs=1e-3)
    assert nums["w2_zero_labels"] == pytest.approx(SIGMA, rel=1e-12)
    assert nums["target_std"] == pytest.approx(SIGMA, rel=1e-12)
    assert nums["label_std"] == pytest.approx(c * SIGMA, rel=1e-5)
    assert nums["roughness"] < 1e-5  # a straight line sampled densely
    assert got == status == nums["status"]
    assert len(warnings) == (status != "ok")
    # the collapse boundary c = 1 − 1/√2: W2² is then half the all-zero labels' (1 − c)² σ*² = σ*²/2
    if c < 1:
        assert (nums["w2_to_target"] ** 2 > SIGMA**2 / 2) == (c < 1 - 1 / math.sqrt(2))
    if status == "collapsed":
        assert warnings[0].startswith("f1 seed 3: collapsed — label std ") and "all-zero labels" in warnings[0]
        assert "\n" not in warnings[0]
    if status == "diverged":
        assert warnings[0].startswith("f1 seed 3: the search diverged") and "\n" not in warnings[0]


def test_zero_labels_distance_is_the_root_second_moment_of_the_target():
    target = make_target({"name": "gaussian", "mean": 1.0, "std": 0.5})
    _, _, nums = check_labelling(QUANTILES, LINE, target)
    assert nums["w2_zero_labels"] == pytest.approx(math.sqrt(1.0**2 + 0.5**2), rel=1e-12)
    assert nums["target_mean"] == pytest.approx(1.0) and nums["target_std"] == pytest.approx(0.5)


def test_labels_that_are_noise_diverge_even_with_the_target_law():
    shuffled = np.random.default_rng(0).permutation(QUANTILES)  # exactly the target's law, position scrambled
    status, warnings, nums = check_labelling(shuffled, LINE, UNIFORM, label="f2 seed 0")
    assert nums["w2_to_target"] < 1e-3
    assert abs(nums["roughness"] - 1.0) < 0.1
    assert status == "diverged" and "noise" in warnings[0] and warnings[0].startswith("f2 seed 0:")


def test_non_finite_search_and_values_diverge():
    status, warnings, nums = check_labelling(QUANTILES, LINE, UNIFORM, diverged_at=12, diverged_what="loss",
                                             label="f1 seed 0")
    assert status == "diverged" and nums["diverged_at_step"] == 12
    assert warnings == ["f1 seed 0: the search diverged (non-finite loss at step 12; the function kept is that of "
                        "step 11); lower search.lr"]
    bad = QUANTILES.copy()
    bad[5] = math.nan
    status, warnings, nums = check_labelling(bad, LINE, UNIFORM)
    assert status == "diverged" and "non-finite values" in warnings[0] and math.isnan(nums["label_std"])


def test_without_a_target_only_a_constant_labelling_collapses():
    assert check_labelling(np.full(N, 0.25), LINE, None)[0] == "collapsed"
    status, _, nums = check_labelling(0.01 * QUANTILES, LINE, None)
    assert status == "ok" and "w2_to_target" not in nums


@pytest.mark.parametrize("gen, warned", [(0.5, False), (1.05, False), (1.3, True)])
def test_few_shot_error_worse_than_the_mean_predictor_is_a_warning(gen, warned):
    status, warnings, nums = check_labelling(QUANTILES, LINE, UNIFORM, gen_mse=gen, gen_sem=0.1, baseline_mse=1.0,
                                             label="f1 seed 1")
    assert status == "ok" and nums["mse_predict_mean"] == 1.0
    assert len(warnings) == warned
    if warned:
        assert warnings[0].startswith("f1 seed 1: the learner's few-shot error 1.3") and "mean" in warnings[0]


def test_later_series_functions_get_a_note_not_a_warning_for_the_baseline():
    status, warnings, nums = check_labelling(QUANTILES, LINE, UNIFORM, gen_mse=1.3, gen_sem=0.1, baseline_mse=1.0,
                                             label="f3 seed 0", baseline_warns=False)
    assert status == "ok" and warnings == [] and nums["worse_than_mean_predictor"]
    assert nums["note"].startswith("f3 seed 0: the learner's few-shot error") and "capacity" in nums["note"]


def test_roughness_of_independent_and_of_lipschitz_values():
    g = np.random.default_rng(1)
    x = g.uniform(-1, 1, size=(2000, 2))
    # independent normal values: (a − b)²/(2σ²) is χ²₁ (mean 1, variance 2); over 2000 pairs, some sharing a point,
    # the mean has sd ≤ √2 · √(2/2000) ≈ 0.045
    assert abs(nearest_neighbour_roughness(x, g.standard_normal(2000)) - 1.0) < 0.12
    # a linear f = w·x: (w·Δx)² ≤ ‖w‖² ‖Δx‖², so ρ ≤ ‖w‖² mean‖Δx_nn‖² / (2 Var f)
    w = np.array([0.7, -1.3])
    v = x @ w
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    bound = (w @ w) * d2.min(axis=1).mean() / (2 * v.var())
    assert 0 < nearest_neighbour_roughness(x, v) <= bound * (1 + 1e-9)
    assert math.isnan(nearest_neighbour_roughness(x, np.ones(2000)))


def test_mean_predictor_error_on_fresh_draws_matches_monte_carlo():
    values = np.random.default_rng(2).exponential(size=3000)
    n = 5
    g = np.random.default_rng(3)
    idx = g.integers(0, len(values), size=(200000, n + 1))
    mc = ((values[idx[:, :n]].mean(axis=1) - values[idx[:, n]]) ** 2)
    assert abs(mean_predictor_mse(values, n) - mc.mean()) < 4 * mc.std() / math.sqrt(len(mc))
    assert mean_predictor_mse(values, n) == pytest.approx(values.var() * (1 + 1 / n), rel=1e-12)


def test_mean_predictor_error_on_a_fixed_split_is_exact_over_every_training_subset():
    values = np.array([0.3, -1.0, 2.0, 0.5, 1.5, -0.2, 0.9, 0.0, 1.1])
    test = np.arange(9) >= 5  # pool: rows 0–4, test set: rows 5–8
    for n in (1, 2, 3, 5):
        errs = [((values[list(sub)].mean() - values[test]) ** 2).mean() for sub in combinations(range(5), n)]
        assert mean_predictor_mse(values, n, test=test, pool_size=5) == pytest.approx(np.mean(errs), rel=1e-12)


# ---------------------------------------------------------------------------------------- whole runs
def _raw(**search) -> dict:
    return {"run": {"kind": "easiest", "seeds": [0, 1]}, "domain": {"name": "sphere", "dim": 3},
            "learner": {"name": "random_features", "features": 10, "lam": 1e-3},
            "meta": {"hidden": 32, "layers": 2, "cos": True},
            "search": {"steps": 20, "n_train": 10, "n_test": 30, "learners_per_step": 4, "lr": 0.05} | search,
            "analysis": {"n_eval": 1000, "gen_draws": 20, "max_degree": 3}}


def _verdict(**search) -> dict:
    verdict = run_experiment(parse_config(_raw(**search)), progress=False).metrics["verdict"]
    assert set(verdict) == {"status", "warnings", "notes", "checks", "thresholds"}
    assert set(verdict["checks"]) == {"f1"} and set(verdict["checks"]["f1"]) == {"0", "1"}
    return verdict


def test_a_converged_search_is_ok():
    v = _verdict()
    assert v["status"] == "ok" and v["warnings"] == []
    for c in v["checks"]["f1"].values():
        assert c["label_std"] > SIGMA / 2 and c["w2_to_target"] < SIGMA / 2 and c["roughness"] < 0.05
        assert c["gen_mse"] < c["mse_predict_mean"]


def test_a_huge_meta_learning_rate_diverges_into_noise():
    v = _verdict(lr=1e6, steps=3)
    assert v["status"] == "diverged" and len(v["warnings"]) == 2
    for c in v["checks"]["f1"].values():
        assert c["status"] == "diverged" and c["roughness"] > 0.8  # the labels are ±1 noise: cos of a huge phase
        assert abs(c["label_std"] - 1 / math.sqrt(2)) < 0.05  # cos of a uniform phase: the arcsine law, std 1/√2
    assert [w.split(":")[0] for w in v["warnings"]] == ["f1 seed 0", "f1 seed 1"]


def test_a_tiny_distribution_weight_collapses():
    v = _verdict(alpha_d=1e-3)
    assert v["status"] == "collapsed"
    assert any(w.startswith("f1 seed 0: collapsed — label std") for w in v["warnings"])
    for c in v["checks"]["f1"].values():
        assert c["label_std"] < (1 - 1 / math.sqrt(2)) * SIGMA and c["w2_to_target"] ** 2 > SIGMA**2 / 2


def test_an_exploding_step_is_recorded_as_non_finite():
    v = _verdict(optimiser="sgd", lr=1e30, steps=5)
    assert v["status"] == "diverged"
    assert all("non-finite labels at step" in w for w in v["warnings"]) and len(v["warnings"]) == 2
    assert all(isinstance(c["diverged_at_step"], int) for c in v["checks"]["f1"].values())


def test_the_cli_prints_the_warnings_and_exits_3(tmp_path):
    import tomli_w

    from learnscope.cli import app

    (tmp_path / "c.toml").write_text(tomli_w.dumps(_raw()))
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["bias", "run", str(tmp_path / "c.toml"), "--out", str(out), "--no-progress",
                                 "--set", "search.lr=1e6", "--set", "search.steps=3"])
    assert r.exit_code == 3, r.output
    assert "Traceback" not in r.output
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 2 and all("diverged" in w for w in warnings)
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert metrics["verdict"]["status"] == "diverged"


# ---------------------------------------------------------------------------------------- input dependence
def _mushroom(scheme: str) -> dict:
    return {"run": {"kind": "easiest", "seeds": [0, 1]}, "domain": {"name": "sphere", "dim": 5},
            "learner": {"name": "mushroom_body", "n_hidden": 30, "scheme": scheme, "steps": 10},
            "meta": {"hidden": 16},
            "search": {"steps": 3, "n_train": 20, "n_test": 40, "lr": 0.01, "optimiser": "adam"},
            "analysis": {"n_eval": 600, "gen_draws": 6, "max_degree": 2}}


def test_overconnected_headline_numbers_are_in_the_metrics():
    result = run_experiment(parse_config(_mushroom("overconnected")), progress=False)
    (fn,) = result.metrics["functions"]
    dep = fn["input_dependence"]
    weights = np.array([m["linear_weights"] for m in fn["per_seed"]])
    np.testing.assert_array_equal(np.array(dep["weights"]), weights)
    assert dep["overconnected_input"] == 0  # the default scheme-1 weights (0.6, 0.1, 0.1, 0.1, 0.1)
    np.testing.assert_allclose(dep["share"], np.abs(weights[:, 0]) / np.linalg.norm(weights, axis=1), rtol=1e-12)
    np.testing.assert_allclose(np.array(dep["norm_share"])[:, 0], dep["share"], rtol=1e-12)
    paired = dep["paired"]
    assert paired["learner_b"]["scheme"] == "random" and paired["n"] == 2 * 6
    rows = paired["per_seed"]
    assert [r["seed"] for r in rows] == [0, 1]
    for r, m in zip(rows, fn["per_seed"], strict=True):
        assert r["mse_overconnected"] == m["gen_mse"]  # the same tasks and learner stream as the seed's own error
        assert r["mean_difference"] == pytest.approx(r["mse_random"] - r["mse_overconnected"], rel=1e-9, abs=1e-12)
        assert r["n"] == 6
    assert paired["mean_difference"] == pytest.approx(np.mean([r["mean_difference"] for r in rows]), rel=1e-9)
    json.dumps(result.metrics, allow_nan=False)  # the numbers are plain finite floats


def test_random_wiring_reports_weights_but_no_overconnected_input():
    result = run_experiment(parse_config(_mushroom("random")), progress=False)
    dep = result.metrics["functions"][0]["input_dependence"]
    assert set(dep) == {"weights", "norm_share"}
    assert np.array(dep["weights"]).shape == (2, 5)


# ---------------------------------------------------------------------------------------- the bundled configs
@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig2_kernel_sphere", "fig2_ridge_disc", "fig3_series_ridge_disc",
                                  "fig4_contrast_kernel_linear", "fig7_mushroom_overconnected", "fig7_mushroom_random",
                                  "fig7_mushroom_grouped", "fig7_mushroom_grouped_positive"])
def test_bundled_paper_configs_pass_their_checks(name):
    verdict = run_experiment(load_config(name), progress=False).metrics["verdict"]
    assert verdict["status"] == "ok" and verdict["warnings"] == [], verdict["warnings"]
    if name == "fig3_series_ridge_disc":  # f3 cannot be linear, and a no-bias ridge learns only linear functions
        assert len(verdict["notes"]) == 5 and all(n.startswith("f3 seed") for n in verdict["notes"])

