"""The paper figures of the closed-form learners, at the bundled configs, against the acceptance bars.

Each test runs a bundled config end to end (all its seeds, batched) and checks the bars that issue #3 sets
above what the authors' code reaches (baseline-original.md, bias-spec §2 and §6). The numbers come from the
theory of bias-spec §1.6: a kernel learner's easiest functions are its top eigenfunctions (first-order
harmonics on S², then second-order ones), ridge regression's are linear functions.
"""

from __future__ import annotations

import numpy as np
import pytest

from learnscope.bias.config import load_config
from learnscope.bias.experiment import run_experiment


def _run(name: str):
    result = run_experiment(load_config(name), progress=False)
    return result, result.metrics["functions"]


def _per_seed(fn: dict, key: str, index: int | None = None) -> np.ndarray:
    vals = [m[key] if index is None else m[key][index] for m in fn["per_seed"]]
    return np.array(vals)


def test_fig2_kernel_sphere_finds_a_first_order_harmonic_on_every_seed():
    _, (f1,) = _run("fig2_kernel_sphere")
    assert _per_seed(f1, "degree_energy", 1).min() >= 0.98  # authors: 0.970–0.992 on seeds 0–2


def test_fig2_ridge_disc_finds_a_linear_function_on_every_seed():
    _, (f1,) = _run("fig2_ridge_disc")
    assert _per_seed(f1, "affine_r2").min() >= 0.99  # authors: 0.94–0.997
    assert np.abs(_per_seed(f1, "label_mean")).max() <= 0.15 and _per_seed(f1, "label_std").min() >= 0.4


@pytest.mark.parametrize(
    "name, deg1_bar, deg2_bar",
    [("fig3_series_kernel_exact", 0.95, 0.9), ("fig3_series_random_features", 0.9, 0.65)],
)
def test_fig3_kernel_series_is_three_first_then_second_order_harmonics(name, deg1_bar, deg2_bar):
    result, fns = _run(name)
    assert len(fns) == 5
    for fn in fns[:3]:
        assert _per_seed(fn, "degree_energy", 1).min() >= deg1_bar, fn["index"]
    for fn in fns[3:5]:
        assert _per_seed(fn, "degree_energy", 2).min() >= deg2_bar, fn["index"]
    assert result.metrics["overlap"]["max_abs_off_diagonal"] <= 0.05


def test_fig3_ridge_disc_series_two_orthogonal_linear_functions_then_a_nonlinear_one():
    result, (f1, f2, f3) = _run("fig3_series_ridge_disc")
    assert _per_seed(f1, "affine_r2").min() >= 0.99 and _per_seed(f2, "affine_r2").min() >= 0.99
    overlaps = result.arrays["overlap"]  # (S, 3, 3)
    assert np.abs(overlaps[:, 0, 1]).max() <= 0.05
    # There is no third linear function orthogonal to two others in 2-D: f3 is not linear, and the no-bias
    # learner cannot generalise it (relative error near its whole variance), but it keeps its spread.
    assert _per_seed(f3, "linear_r2_no_bias").max() <= 0.1
    assert _per_seed(f3, "gen_relative").min() >= 0.5
    assert _per_seed(f3, "label_std").min() >= 0.3


def test_fig4_contrast_is_easy_for_the_kernel_and_hard_for_the_linear_learner():
    _, (f1,) = _run("fig4_contrast_kernel_linear")
    ratio = _per_seed(f1, "gen_ratio_b_over_a")
    assert ratio.min() >= 5 and np.median(ratio) >= 8  # authors: 3.7–18, most seeds 4–5


def _fig8(functions: int):
    import tomllib

    from learnscope.bias.config import parse_config
    from learnscope.bundled import resolve_config_path

    raw = tomllib.loads(resolve_config_path("fig8_backprop_mlp", "bias").read_text())
    raw["series"] = raw["series"][:functions]
    result = run_experiment(parse_config(raw), progress=False)
    return result, result.metrics["functions"]


@pytest.mark.slow
def test_fig8_backprop_mlp_first_function_is_a_first_order_harmonic():
    """Issue #6: f1 degree-1 energy ≥ 0.95 and few-shot error ≤ 0.03 (authors: 0.975–0.995)."""
    _, (f1,) = _fig8(1)
    assert _per_seed(f1, "degree_energy", 1).min() >= 0.95
    assert _per_seed(f1, "gen_mse").max() <= 0.03


@pytest.mark.slow
def test_fig8_series_first_order_functions_then_harder_ones():
    """Issue #6: f2, f3 degree-1 energy ≥ 0.7; f4–f6 generalise worse than f1–f3 (about 2 min)."""
    result, fns = _fig8(6)
    for fn in fns[1:3]:
        assert _per_seed(fn, "degree_energy", 1).min() >= 0.7
    easy = max(_per_seed(fn, "gen_mse").max() for fn in fns[:3])
    hard = min(_per_seed(fn, "gen_mse").min() for fn in fns[3:])
    assert hard > easy
    assert result.metrics["overlap"]["max_abs_off_diagonal"] <= 0.05


@pytest.mark.slow
def test_fig7_random_mushroom_body_finds_a_linear_function():
    """Issue #6, Fig 7 scheme random: affine R² of f1 ≥ 0.99 on seeds 0–2 (authors: 0.996–0.998)."""
    _, (f1,) = _run("fig7_mushroom_random")
    assert _per_seed(f1, "affine_r2").min() >= 0.99


@pytest.mark.slow
def test_fig7_overconnected_input_dominates_the_easiest_function(gen):
    """Issue #6: the over-connected input carries ≥ 60 % of the linear-fit weight norm on ≥ 3 of 5 seeds, and a
    scheme-1 (over-connected) learner generalises that function better than a random-wiring learner, paired over
    50 learners trained on the same tasks."""
    import torch

    from learnscope.learners import MushroomBodyLearner

    result, (f1,) = _run("fig7_mushroom_overconnected")
    weights = np.array([m["linear_weights"] for m in f1["per_seed"]])
    share = np.abs(weights[:, 0]) / np.linalg.norm(weights, axis=1)
    assert (share >= 0.6).sum() >= 3, share
    f = result.functions[0].function.for_seed(0)
    g = gen(123)
    x = result.components.domain.sample_batch(50, 50 + 300, g, dtype=torch.float64)
    y = torch.from_numpy(f(x.reshape(-1, 5).numpy()).reshape(50, -1)).double()
    errors = {}
    for scheme in ("overconnected", "random"):
        learner = MushroomBodyLearner(scheme=scheme)
        with torch.no_grad():
            pred = learner.fit_predict(x[:, :50], y[:, :50], x[:, 50:], generator=gen(7))
        errors[scheme] = ((pred - y[:, 50:]) ** 2).mean(dim=1).numpy()
    diff = errors["random"] - errors["overconnected"]
    assert diff.mean() > 2 * diff.std(ddof=1) / np.sqrt(len(diff)), {k: v.mean() for k, v in errors.items()}


@pytest.mark.slow
def test_fig7_grouped_excitatory_wiring_gives_a_function_of_the_group_sums():
    """Issue #6: with grouped wiring and non-negative weights, f1 regressed on (x0+x1, x2+x3+x4) with quadratic
    terms has R² ≥ 0.8 on every seed."""
    result, _ = _run("fig7_mushroom_grouped_positive")
    X = result.arrays["eval_points"].astype(float)
    g1, g2 = X[:, 0] + X[:, 1], X[:, 2:].sum(axis=1)
    F = np.stack([np.ones_like(g1), g1, g2, g1**2, g2**2, g1 * g2], axis=1)
    for y in result.arrays["f1_values"].astype(float):
        residual = y - F @ np.linalg.lstsq(F, y, rcond=None)[0]
        assert 1 - residual.var() / y.var() >= 0.8


@pytest.mark.slow
def test_fig5_spiking_network_finds_a_first_order_harmonic():
    """Issue #6: the spiking learner's easiest function has degree-1 energy ≥ 0.9 on S² (settings in the config)."""
    from learnscope.bias import measures
    from learnscope.bias.experiment import comparison_learners

    result, (f1,) = _run("fig5_spiking")
    assert _per_seed(f1, "degree_energy", 1).min() >= 0.9
    # The rate-based twin is reported, not held to a bar, but it must be judged on the same function and the same
    # tasks as the spiking network: both reported errors are the two halves of one paired comparison on those tasks.
    an, settings = result.config.analysis, result.config.function_settings()[0]
    twin = comparison_learners(an.compare)["rate_twin"]
    for i, m in enumerate(f1["per_seed"]):
        paired = measures.paired_generalisation_difference(
            result.components.learner, twin, result.functions[0].function.for_seed(i), result.components.domain,
            an.gen_n_train or settings.n_train, an.gen_n_test or settings.n_test, draws=an.gen_draws, seed=m["seed"])
        assert m["gen_mse"] == pytest.approx(paired["mse_a"], rel=1e-9)
        assert m["compare"]["rate_twin"] == pytest.approx(paired["mse_b"], rel=1e-9)


@pytest.mark.slow
def test_fig6_mnist01_easiest_labelling_is_the_digit_identity():
    """Issue: MNIST 0/1 agreement with the digit identity ≥ 98 % on the 700 held-out images (paper: 98.8 %), and
    bias-spec Fig. 6: std(z) over all 1000 images ≥ 0.45 (max 0.5), on seeds 0–2 after 30 meta-steps (about 2 min).
    The learner-preference control: the learner's few-shot MSE on the found labellings and on the digit labelling is
    at most ¼ of its MSE on random balanced labellings (measured: found 0.016–0.023, digit 0.018, random 0.272)."""
    _, (f1,) = _run("fig6_mnist01")
    assert _per_seed(f1, "agreement").min() >= 0.98
    assert _per_seed(f1, "label_std").min() >= 0.45
    random_mse = f1["control"]["random_balanced"]["mse"]
    assert _per_seed(f1, "gen_mse").max() <= 0.25 * random_mse
    assert f1["control"]["class_labelling"]["mse"] <= 0.25 * random_mse


def _zonal_harmonic(degree: int):
    """√(2l+1)·P_l(x_3): the degree-l zonal harmonic on S² with unit mean square (Legendre normalisation)."""
    from scipy.special import eval_legendre

    return lambda x: np.sqrt(2 * degree + 1) * eval_legendre(degree, np.asarray(x)[:, 2])


@pytest.mark.slow
def test_rules_contrast_feedback_alignment_misses_the_even_harmonic_backprop_learns():
    """Fast check of the mechanism behind fig_rules_contrast_fa_backprop, on its own learners (3→50→1 tanh, 500
    plain-SGD steps, 30 points). tanh is odd, so FA (≈ a readout of the random tanh features while B and W2 are
    unaligned) learns odd functions but hardly even ones, which backprop learns through its hidden-layer update.
    50 paired draws: the same tasks and the same initial weights for both rules (only the credit transport differs)."""
    from learnscope.bias import measures
    from learnscope.bias.experiment import build_components

    cfg = load_config("fig_rules_contrast_fa_backprop")
    comp = build_components(cfg)
    n_tr, n_te = cfg.search.n_train, cfg.search.n_test
    err = {
        (rule, deg): measures.generalisation_error(learner, _zonal_harmonic(deg), comp.domain, n_tr, n_te,
                                                   draws=50, seed=7)["relative"]
        for rule, learner in (("backprop", comp.learner), ("fa", comp.learner_b))
        for deg in (1, 2)
    }
    assert err["backprop", 1] <= 0.05 and err["fa", 1] <= 0.05, err  # the odd harmonic: both rules learn it
    assert err["backprop", 2] <= 0.25, err  # the even one: backprop learns it ...
    assert err["fa", 2] >= 2 * err["backprop", 2], err  # ... FA does not


@pytest.mark.slow
def test_rules_contrast_easy_for_backprop_hard_for_feedback_alignment():
    """Issue item "learning rules as learners": find_contrast with A = backprop, B = feedback alignment on the same
    circuit finds a second-order harmonic (the even functions a tanh readout lacks) on every seed, with held-out
    MSE_FA / MSE_backprop ≥ 2 over 100 paired draws (same tasks, same initial weights); about 4 min."""
    _, (f1,) = _run("fig_rules_contrast_fa_backprop")
    assert _per_seed(f1, "gen_ratio_b_over_a").min() >= 2
    assert _per_seed(f1, "degree_energy", 2).min() >= 0.8
    assert _per_seed(f1, "gen_relative").max() <= 0.3  # easy for backprop in absolute terms too
