"""The eigenlearning overlay (learnscope.theory.overlay): ranking, assignment, ill-posed ties, the MSE test, the
control functions' marginal, the contrast — on synthetic spectra whose answers follow from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.domains import Disc, Sphere
from learnscope.errors import LearnscopeError
from learnscope.learners.kernels import KernelRidge
from learnscope.learners.ridge import Ridge
from learnscope.targets import Uniform
from learnscope.theory import overlay as ov
from learnscope.theory.eigenlearning import eigenlearning
from learnscope.theory.spectra import Spectrum, learner_spectrum


def _spectrum(lam, mult, labels=None) -> Spectrum:
    labels = labels or [f"degree {i}" for i in range(len(lam))]
    return Spectrum(np.array(lam, float), np.array(mult), tuple(labels), "funk_hecke", d=3)


def _kappa(lam, mult, n, ridge) -> float:
    """κ by plain bisection on log κ (independent of the library's solver)."""
    lam, mult = np.asarray(lam, float), np.asarray(mult, float)
    lo, hi = -60.0, 30.0
    for _ in range(300):
        mid = (lo + hi) / 2
        k = math.exp(mid)
        if (mult * lam / (lam + k)).sum() + ridge / k > n:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


# ------------------------------------------------------------------------------------------ ranking, slots
def test_slots_count_multiplicity_in_eigenvalue_order_and_skip_the_constant():
    # levels: constant (largest), a 3-fold λ=0.5, a 2-fold λ=0.05, a 4-fold zero, a 1-fold λ=0.2
    spec = _spectrum([1.0, 0.5, 0.05, 0.0, 0.2], [1, 3, 2, 4, 1])
    slots = ov.assignment_slots(spec, 8)
    assert [s["level"] for s in slots] == [1, 1, 1, 4, 2, 2, 3, 3]
    assert not any(s["ill_posed"] for s in slots[:6])
    table = ov.eigenspace_table(spec)
    assert [r["level"] for r in table] == [1, 4, 2, 3]
    np.testing.assert_allclose([r["gap_to_next"] for r in table[:3]], [(0.5 - 0.2) / 0.5, (0.2 - 0.05) / 0.2, 1.0])


def test_arccos1_on_s2_puts_f1_f3_in_degree_1_f4_f8_in_degree_2_never_degree_3():
    spec = learner_spectrum(KernelRidge("arccos1", lam=1e-3), Sphere(3), max_degree=10)
    slots = ov.assignment_slots(spec, 17)
    labels = [s["label"] for s in slots]
    assert labels[:3] == ["degree 1"] * 3 and labels[3:8] == ["degree 2"] * 5 and labels[8:17] == ["degree 4"] * 9
    assert not any(s["ill_posed"] for s in slots)


def test_slots_past_every_mode_are_the_null_space():
    vectors = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # mean 0: neither is the constant
    spec = Spectrum(np.array([0.3, 0.29]), np.array([1, 1]), ("mode 1", "mode 2"), "nystrom",
                    points=np.zeros((4, 2)), eigenvectors=vectors, d=2)
    slots = ov.assignment_slots(spec, 3)
    assert slots[2]["level"] is None and slots[2]["label"] == ov.NULL_SPACE
    # the two modes are within 10 %: tied, so which one f1 lies in is ill-posed
    assert slots[0]["ill_posed"] and sorted(slots[0]["tied_levels"]) == [0, 1]


@pytest.mark.parametrize("lam2, ill", [(0.48, True), (0.44, False)])
def test_ill_posed_when_the_relative_gap_is_below_the_threshold(lam2, ill):
    spec = _spectrum([1.0, 0.5, lam2, 0.1], [1, 1, 1, 1])
    slots = ov.assignment_slots(spec, 3)
    assert slots[0]["ill_posed"] is ill and slots[1]["ill_posed"] is ill
    assert not slots[2]["ill_posed"]  # 0.1 is far from both
    assert slots[0]["gap"] == pytest.approx((0.5 - lam2) / 0.5)
    assert ov.ILL_POSED_GAP == 0.1


def test_zero_eigenvalues_are_tied_with_each_other():
    spec = _spectrum([1.0, 0.5, 0.0, 0.0], [1, 1, 1, 1])
    slot = ov.assignment_slots(spec, 2)[1]
    assert slot["ill_posed"] and sorted(slot["tied_levels"]) == [2, 3]


# ------------------------------------------------------------------------------------------ assignment energies
def test_assignment_energy_is_the_fraction_of_the_norm_in_the_predicted_eigenspace():
    spec = _spectrum([1.0, 0.5, 0.48, 0.01], [1, 1, 1, 1])
    # f1: 2 seeds; coefficients per level, totals include 0.02 of energy above the top level
    c1 = np.array([[0.0, 0.97, 0.01, 0.0], [0.0, 0.90, 0.05, 0.03]])
    c2 = np.array([[0.0, 0.02, 0.96, 0.0], [0.0, 0.50, 0.48, 0.0]])
    c3 = np.array([[0.0, 0.0, 0.0, 0.98], [0.0, 0.0, 0.01, 0.90]])
    totals = [np.array([1.0, 1.0])] * 3
    out = ov.assignment(spec, [c1, c2, c3], totals)
    np.testing.assert_allclose(out[0]["energy"], [0.97, 0.90])
    np.testing.assert_allclose(out[0]["energy_tied"], [0.98, 0.95])  # levels 1 and 2 are tied (gap 4 %)
    assert out[0]["meets_bar"] is None and out[0]["meets_bar_tied"] is True  # ill-posed: not judged alone
    np.testing.assert_allclose(out[1]["energy_tied"], [0.98, 0.98])
    assert out[2]["ill_posed"] is False
    np.testing.assert_allclose(out[2]["energy"], [0.98, 0.90])
    assert out[2]["meets_bar"] is False


# ------------------------------------------------------------------------------------------ MSE test
def test_predicted_mse_is_e0_times_the_unlearnt_energy_plus_the_remainder():
    lam, mult = [0.2, 0.08, 0.01, 0.0], [1, 3, 5, 7]
    spec, n, ridge = _spectrum(lam, mult), 12, 1e-2
    pred = eigenlearning(spec, n, ridge)
    k = _kappa(lam, mult, n, ridge)
    L = np.array(lam) / (np.array(lam) + k)
    e0 = n / (n - (np.array(mult) * L**2).sum())
    v2 = np.array([0.1, 0.5, 0.2, 0.05])
    total = 1.0  # 0.15 above the top level, counted as unlearnt
    expected = e0 * (((1 - L) ** 2 * v2).sum() + 0.15)
    assert ov.predicted_mse(pred, v2, total) == pytest.approx(expected, rel=1e-8)
    assert ov.predicted_mse(pred, v2) == pytest.approx(e0 * ((1 - L) ** 2 * v2).sum(), rel=1e-8)


def test_compare_mse_matches_the_rank_correlation_definition_with_ties():
    from scipy.stats import spearmanr

    p = np.array([0.1, 0.2, 0.2, 0.5, 0.9, 1.5])
    m = np.array([0.12, 0.15, 0.3, 0.4, 1.0, 2.0])
    out = ov.compare_mse(p, m)
    assert out["spearman"] == pytest.approx(spearmanr(p, m).statistic, abs=1e-12)
    assert out["median_relative_error"] == pytest.approx(np.median(np.abs(p / m - 1)))
    # non-positive or NaN measurements are left out
    out2 = ov.compare_mse([*p, 1.0, 2.0], [*m, 0.0, float("nan")])
    assert out2["count"] == 6 and out2["spearman"] == pytest.approx(out["spearman"])


def test_controls_have_the_target_marginal_and_are_seeded_per_index():
    target = Uniform(-1.0, 1.0)

    def quantile(u):
        return target.quantile(torch.as_tensor(u)).numpy()

    sphere = Sphere(3)
    controls = ov.control_functions(sphere, quantile, 20, seed=3)
    x = sphere.sample(5000, torch.Generator().manual_seed(11), dtype=torch.float64).numpy()
    grid = np.linspace(-1, 1, 201)
    values = []
    for g in controls:
        v = g(x)
        values.append(v)
        ks = np.abs(np.searchsorted(np.sort(v), grid, side="right") / len(v) - (grid + 1) / 2).max()
        assert ks < 0.06  # 5000 fresh points (≈0.02 sampling) + a 2000-point reference CDF (≈0.03)
    corr = np.corrcoef(np.stack(values))
    assert np.abs(corr[~np.eye(20, dtype=bool)]).max() < 0.95  # twenty different functions
    # control i does not depend on how many were asked for, and the same seed gives the same function
    again = ov.control_functions(sphere, quantile, 5, seed=3)
    np.testing.assert_array_equal(again[4](x), controls[4](x))
    other = ov.control_functions(sphere, quantile, 1, seed=4)[0]
    assert not np.allclose(other(x), controls[0](x))


def test_coefficients_many_equals_one_call_per_function():
    sphere = Sphere(3)
    spec = learner_spectrum(KernelRidge("arccos1", lam=1e-3), sphere, max_degree=6)
    x = sphere.spread_sample(600, torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    f = np.stack([x[:, 0], x[:, 0] * x[:, 1] + 0.3, np.tanh(3 * x[:, 2])])
    many = ov.coefficients_many(spec, f, x)
    one = np.stack([spec.coefficients_sq(fi, x) for fi in f])
    np.testing.assert_allclose(many, one, rtol=1e-8, atol=1e-12)
    disc = Disc()
    nys = learner_spectrum(Ridge(lam=1e-3), disc, samples=300)
    xd = nys.points
    fd = np.stack([xd[:, 0] + 0.5 * xd[:, 1], xd[:, 0] ** 2])
    np.testing.assert_allclose(ov.coefficients_many(nys, fd, xd),
                               np.stack([nys.coefficients_sq(fi, xd) for fi in fd]), rtol=1e-10, atol=1e-14)


def test_optimality_ratio_is_measured_over_the_theory_floor_for_f1s_norm():
    lam, mult = [0.3, 0.1, 0.01], [1, 3, 5]
    spec = _spectrum(lam, mult)
    pred = eigenlearning(spec, 10, 1e-3)
    k = _kappa(lam, mult, 10, 1e-3)
    L = np.array(lam) / (np.array(lam) + k)
    e0 = 10 / (10 - (np.array(mult) * L**2).sum())
    out = ov.optimality(pred, spec, [0.02, 0.04], [1 / 3, 0.5])
    floor = e0 * (1 - L[1]) ** 2
    assert out["min_unit_mse"] == pytest.approx(floor, rel=1e-8)
    np.testing.assert_allclose(out["ratio"], [0.02 / (floor / 3), 0.04 / (floor * 0.5)], rtol=1e-8)


# ------------------------------------------------------------------------------------------ contrast
def test_contrast_ratio_per_eigenspace_best_outside_the_shared_easy_ones_and_the_admixture_note():
    n, ridge = 30, 1e-3
    # A learns degrees 1 and 2, B (a linear kernel) only degree 1
    spec_a = _spectrum([0.2, 0.1, 0.02, 0.0, 0.001], [1, 3, 5, 7, 9])
    spec_b = _spectrum([0.0, 1 / 3, 0.0, 0.0, 0.0], [1, 3, 5, 7, 9])
    pa, pb = eigenlearning(spec_a, n, ridge), eigenlearning(spec_b, n, ridge)
    ka, kb = _kappa(spec_a.eigenvalues, spec_a.multiplicity, n, ridge), _kappa(spec_b.eigenvalues,
                                                                                spec_b.multiplicity, n, ridge)
    La, Lb = spec_a.eigenvalues / (spec_a.eigenvalues + ka), spec_b.eigenvalues / (spec_b.eigenvalues + kb)
    ea = n / (n - (spec_a.multiplicity * La**2).sum())
    eb = n / (n - (spec_b.multiplicity * Lb**2).sum())
    ratio = eb * (1 - Lb) ** 2 / (ea * (1 - La) ** 2)
    found_pure = np.array([[0.0, 0.0, 1 / 3, 0.0, 0.0]])
    out = ov.contrast_overlay(spec_a, pa, spec_b, pb, found_pure, np.array([1 / 3]))
    by_level = {r["level"]: r for r in out["per_eigenspace"]}
    for level in (1, 2, 3, 4):
        assert by_level[level]["ratio_b_over_a"] == pytest.approx(ratio[level], rel=1e-6)
    assert out["shared_easy"] == ["degree 1"]
    assert out["best"]["label"] == "degree 2"  # largest ratio outside degree 1 (both learn degree 1)
    assert "note" not in out["found"]
    np.testing.assert_allclose(out["found"]["predicted_ratio"], [ratio[2]], rtol=1e-6)
    # 90 % on the shared easy degree 1 plus a 10 % admixture of degree 2: not a finding
    mixed = np.array([[0.0, 0.3, 1 / 30, 0.0, 0.0]])
    out2 = ov.contrast_overlay(spec_a, pa, spec_b, pb, mixed, np.array([1 / 3]))
    assert out2["found"]["shared_easy_share"][0] == pytest.approx(0.9)
    assert "admixture" in out2["found"]["note"]
    # spectra on different eigenspaces have no per-eigenspace ratio
    nys = Spectrum(np.array([0.3]), np.array([1]), ("mode 1",), "nystrom", points=np.zeros((1, 3)),
                   eigenvectors=np.ones((1, 1)), d=3)
    assert ov.contrast_overlay(spec_a, pa, nys, eigenlearning(nys, 3, 1e-3))["available"] is False


# ------------------------------------------------------------------------------------------ summary, hook
def test_theory_summary_of_the_fig3_and_fig4_configs():
    s = ov.theory_summary("fig3_series_kernel_exact")
    assert s["n"] == 6 and s["learner"]["ridge"] == 1e-3
    labels = [slot["label"] for slot in s["learner"]["slots"]]
    assert labels == ["degree 1"] * 3 + ["degree 2"] * 5
    text = ov.format_theory_summary(s)
    assert "f4 degree 2" in text and "degree 1" in text.splitlines()[3]
    c = ov.theory_summary("fig4_contrast_kernel_linear", n=50)
    # linear ridge learns only degree 1 (both learn it well); the kernel's next eigenspace is degree 2
    assert c["contrast"]["shared_easy"] == ["degree 1"] and c["contrast"]["best"]["label"] == "degree 2"
    assert "predicted best contrast: degree 2" in ov.format_theory_summary(c)


def test_kernel_type_learners():
    from learnscope.bias.experiment import kernel_type
    from learnscope.learners.random_features import RandomFeatureRidge
    from learnscope.learners.trained import CircuitLearner

    sphere = Sphere(3)
    assert kernel_type(KernelRidge("arccos1"), sphere) and kernel_type(RandomFeatureRidge(5), sphere)
    assert kernel_type(Ridge(), Disc())
    assert not kernel_type(CircuitLearner({"circuit": "mlp", "hidden": [4]}, rule="sgd", steps=2), sphere)


def test_run_hook_adds_the_overlay_to_a_kernel_run():
    import tomllib

    from learnscope.bias.config import parse_config
    from learnscope.bias.experiment import run_experiment
    from learnscope.bundled import resolve_config_path

    raw = tomllib.loads(resolve_config_path("fig3_series_kernel_exact", "bias").read_text())
    raw["run"]["seeds"] = [0]
    raw["search"] |= {"steps": 3, "n_reference": 200}
    raw["series"] = raw["series"][:2]
    raw["analysis"] |= {"n_eval": 2000, "gen_draws": 20}
    result = run_experiment(parse_config(raw), progress=False)
    th = result.metrics["theory"]
    assert th["available"] and th["n"] == 6 and th["ridge"] == 1e-3
    assert [a["label"] for a in th["assignment"]] == ["degree 1", "degree 1"]
    assert len(th["mse"]["controls"]) == ov.CONTROL_COUNT
    measured = [m["gen_mse"] for fn in result.metrics["functions"] for m in fn["per_seed"]]
    assert [p["measured"] for p in th["mse"]["found"]] == measured
    np.testing.assert_allclose(th["optimality"]["measured"], [measured[0]])
    with pytest.raises(LearnscopeError):
        ov.theory_summary("fig3_series_kernel_exact", n=0)


def test_nystrom_on_the_discs_spread_points_finds_the_degenerate_linear_pair_and_calls_it_tied():
    # the linear kernel x·x' on the uniform unit disc: eigenvalues E x₁² = E x₂² = 1/4, all others 0
    spec, errors = ov._overlay_spectrum(Ridge(lam=1e-3), Disc(), 10, 400, 0, True)
    np.testing.assert_allclose(spec.eigenvalues, [0.25, 0.25], rtol=0.02)
    assert not errors.any()
    slots = ov.assignment_slots(spec, 3, errors=errors)
    assert slots[0]["ill_posed"] and sorted(slots[0]["tied_levels"]) == [0, 1]  # which direction is not decided
    assert slots[2]["label"] == ov.NULL_SPACE
    # random samples carry Monte Carlo errors; the same split is then also within 3 standard errors
    rand = learner_spectrum(Ridge(lam=1e-3), Disc(), samples=400, seed=0)
    se = ov.eigenvalue_errors(rand)
    # φ = 2x₁ has E φ⁴ = 2, so std(φ²) = 1 and se = λ/√M
    np.testing.assert_allclose(se, rand.eigenvalues / math.sqrt(400), rtol=0.15)
    assert ov.assignment_slots(rand, 2)[0]["ill_posed"]
