"""Calibration on held-out networks: calibrators, ECE, the cross-fitting protocol, aggregation, inseparable pairs."""

from __future__ import annotations

import numpy as np
import pytest

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify import crossfit
from learnscope.identify.calibration import (
    IsotonicCalibrator,
    TemperatureCalibrator,
    choose_calibrator,
    ece_clt_bound,
    ece_noise_floor,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
    softmax,
)
from learnscope.identify.crossfit import (
    describe_observables,
    heldout_predictions,
    indistinguishable_pairs,
    network_probabilities,
    pairwise_accuracy,
)
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.predict import parse_observables


def _draw(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from the row's probabilities (inverse CDF)."""
    return (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1).clip(max=p.shape[1] - 1)


# ----------------------------------------------------------------------------------------------------------------
# calibrators


@pytest.mark.parametrize("t0", [0.5, 2.5])
def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels(t0):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(20000, 4))
    y = _draw(softmax(z / t0), rng)
    t = fit_temperature(z, y)
    assert abs(t - t0) / t0 < 0.05, t
    # the calibrator sees only probabilities softmax(z): its log is z shifted per row, which the softmax ignores
    cal = TemperatureCalibrator().fit(softmax(z), y)
    assert abs(cal.temperature - t) < 1e-3 * t
    unclipped = softmax(z).min(axis=1) > 1e-6  # below EPS a probability is clipped before its logarithm
    np.testing.assert_allclose(cal.transform(softmax(z))[unclipped], softmax(z / cal.temperature)[unclipped],
                               atol=1e-9)


def test_temperature_minimises_the_nll():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=2.0, size=(3000, 3))
    y = _draw(softmax(z / 1.7), rng)
    t = fit_temperature(z, y)
    at = {s: nll(softmax(z / s), y) for s in (t / 1.05, t, t * 1.05)}
    assert at[t] < at[t / 1.05] and at[t] < at[t * 1.05]


def test_isotonic_maps_are_monotone_and_rows_sum_to_one():
    rng = np.random.default_rng(2)
    p1 = rng.random(2000)
    y = (rng.random(2000) < p1**2).astype(int)  # miscalibrated: P(y=1 | p1) = p1²
    p = np.stack([1 - p1, p1], axis=1)
    cal = IsotonicCalibrator().fit(p, y)
    grid = np.linspace(0, 1, 501)
    for m in cal.maps:
        assert (np.diff(m.predict(grid)) >= 0).all()
    q = cal.transform(np.stack([1 - grid, grid], axis=1))
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert (np.diff(q[:, 1]) >= -1e-12).all()  # two opposite monotone maps renormalised stay monotone in p1
    # it learns the square: at p1 = 0.5 the calibrated probability is near 0.25
    assert abs(cal.transform(np.array([[0.5, 0.5]]))[0, 1] - 0.25) < 0.08


def test_choose_calibrator_scores_only_held_out_folds_and_prefers_a_fix_for_overconfidence():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=2.0, size=(3000, 3))
    y = _draw(softmax(z), rng)
    over = softmax(3.0 * z)  # over-confident by a temperature of 3
    folds = np.repeat(np.arange(5), 600)
    cal, scores = choose_calibrator(over, y, folds)
    assert scores["none"] == pytest.approx(nll(over, y))  # the identity is fitted on nothing: plain NLL
    assert cal.name != "none" and scores[cal.name] < scores["none"] - 0.1
    # the temperature score is the fold-weighted NLL of temperatures fitted on the other folds (numpy reference)
    logits = np.log(np.maximum(over, 1e-6))  # the documented log max(p, EPS)
    ref = sum(nll(softmax(logits[folds == f] / fit_temperature(logits[folds != f], y[folds != f])),
                  y[folds == f]) * 600 for f in range(5)) / 3000
    assert scores["temperature"] == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ConfigError, match="two folds"):
        choose_calibrator(over, y, np.zeros(3000, dtype=int))


# ----------------------------------------------------------------------------------------------------------------
# calibration error


def _ece_reference(p, y, n_bins=10):
    """Plain loop: top-label ECE with equal-width bins [0, .1), …, [.9, 1]."""
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= hi))
        if inside.any():
            total += inside.sum() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return total / len(p)


def test_ece_matches_a_plain_loop_and_the_reliability_table():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(3), size=500)
    y = rng.integers(0, 3, size=500)
    assert expected_calibration_error(p, y) == pytest.approx(_ece_reference(p, y), abs=1e-12)
    rel = reliability_bins(p, y)
    n = np.array(rel["count"])
    assert n.sum() == 500
    gaps = [c * abs(a - f) for c, a, f in zip(n, rel["accuracy"], rel["confidence"], strict=True) if c]
    assert sum(gaps) / 500 == pytest.approx(_ece_reference(p, y), abs=1e-12)


def test_ece_is_near_zero_for_calibrated_and_large_for_overconfident_probabilities():
    rng = np.random.default_rng(5)
    z = rng.normal(scale=1.5, size=(20000, 3))
    p = softmax(z)
    y = _draw(p, rng)
    bound = ece_clt_bound(p)  # E[ECE] of calibrated predictions is at most this (≈ 0.5 √(B/n) ≈ 0.011)
    assert bound < 0.5 * np.sqrt(10 / 20000) + 1e-12
    assert expected_calibration_error(p, y) < 2 * bound
    over = softmax(3 * z)
    assert expected_calibration_error(over, y) > 5 * bound
    mean, q95 = ece_noise_floor(p, np.random.default_rng(6), draws=40)
    assert mean <= bound and q95 < 2 * bound


# ----------------------------------------------------------------------------------------------------------------
# the held-out protocol


def _toy(n_per_rule=6, layers=3, n_rules=3):
    networks = np.repeat([f"net{i:02d}" for i in range(n_per_rule * n_rules)], layers)
    y = np.repeat(np.arange(n_rules), n_per_rule * layers)
    return networks, y


def test_the_protocol_never_scores_a_network_its_classifier_or_calibrator_saw(monkeypatch):
    networks, y = _toy()
    n = len(y)
    calls = []

    def fit_predict(train, test, seed):
        calls.append((set(networks[train]), set(networks[test])))
        # probabilities that encode the row: a calibrator's input tells which rows it was fitted on
        code = 0.1 + 0.5 * test / n
        return np.stack([code, (1 - code) / 2, (1 - code) / 2], axis=1)

    seen_by_calibrators = []
    real = crossfit.choose_calibrator

    def spy(p, labels, folds, methods):
        rows = np.rint((p[:, 0] - 0.1) / 0.5 * n).astype(int)
        seen_by_calibrators.append(set(networks[rows]))
        return real(p, labels, folds, methods)

    monkeypatch.setattr(crossfit, "choose_calibrator", spy)
    held = heldout_predictions(fit_predict, y, networks, seed=0)
    assert all(not (tr & te) for tr, te in calls)  # every classifier fit predicts only networks it never saw
    K = len(held.audit)
    assert K == 5 and len(seen_by_calibrators) == K + 1  # one choice per outer fold, then the deployed one
    scored = [a["scored"] for a in held.audit]
    assert set().union(*scored) == set(networks) and sum(len(s) for s in scored) == len(set(networks))
    for k, audit in enumerate(held.audit):
        assert not (audit["scored"] & audit["classifier"]) and not (audit["scored"] & audit["calibrator"])
        assert not (seen_by_calibrators[k] & audit["scored"])  # checked from the calibrator's own input
        assert seen_by_calibrators[k] == audit["calibrator"] and not (audit["calibrator"] & audit["classifier"])
        assert set(networks[held.fold == k]) == audit["scored"]
    # every network is scored from a fold whose rules are all present in training (stratified)
    for k in range(K):
        assert set(y[held.fold != k]) == {0, 1, 2}


def test_the_protocol_is_seeded_and_refuses_too_few_networks():
    networks, y = _toy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=len(y)) + y

    def fit_predict(train, test, seed):
        centres = np.array([x[train][y[train] == c].mean() for c in range(3)])
        return softmax(-((x[test, None] - centres[None]) ** 2))

    a = heldout_predictions(fit_predict, y, networks, seed=3)
    b = heldout_predictions(fit_predict, y, networks, seed=3)
    np.testing.assert_array_equal(a.fold, b.fold)
    np.testing.assert_allclose(a.calibrated, b.calibrated)
    np.testing.assert_allclose(a.calibrated.sum(1), 1.0)
    few_nets, few_y = _toy(n_per_rule=2)
    with pytest.raises(ConfigError, match="at least 3 networks of every rule"):
        heldout_predictions(fit_predict, few_y, few_nets)


# ----------------------------------------------------------------------------------------------------------------
# aggregation and inseparable pairs


def test_network_aggregation_is_the_normalised_geometric_mean():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]])
    nets = np.array(["b", "b", "a", "a", "a"])
    ids, P = network_probabilities(p, nets)
    assert ids.tolist() == ["a", "b"]
    geo_b = np.array([np.sqrt(0.9 * 0.6), np.sqrt(0.1 * 0.4)])
    geo_a = np.array([(0.2 * 0.5 * 0.3) ** (1 / 3), (0.8 * 0.5 * 0.7) ** (1 / 3)])
    np.testing.assert_allclose(P[1], geo_b / geo_b.sum())
    np.testing.assert_allclose(P[0], geo_a / geo_a.sum())
    np.testing.assert_allclose(P[1], [0.78606, 0.21394], atol=1e-5)  # √.54 / (√.54 + √.04)


def test_indistinguishable_pairs_from_a_synthetic_confusion():
    classes = ["adam", "fa", "ia", "sgdm"]
    cm = np.array([[20, 0, 0, 0],
                   [0, 11, 9, 0],
                   [0, 9, 11, 0],
                   [3, 0, 0, 17]])
    acc = pairwise_accuracy(cm)
    assert acc[1, 2] == pytest.approx(22 / 40) and acc[0, 3] == pytest.approx(37 / 40) and np.isnan(acc[0, 0])
    pairs = indistinguishable_pairs(cm, classes, describe_observables(OBS_CLASSES["act"]))
    assert [p["rules"] for p in pairs] == [["fa", "ia"]]
    assert pairs[0]["statement"] == ("fa vs ia: not distinguishable with activity from one layer "
                                     "(held-out accuracy 0.55)")
    assert pairs[0]["n"] == 40
    # at the threshold a pair counts as distinguishable; with no layer predicted as either, it is not measurable
    edge = np.array([[7, 3, 0], [3, 7, 0], [0, 0, 5]])
    assert indistinguishable_pairs(edge, ["a", "b", "c"], "x") == []  # 14/20 = 0.7 exactly
    blind = np.array([[0, 0, 5], [0, 0, 5], [0, 0, 5]])
    assert np.isnan(pairwise_accuracy(blind)[0, 1]) and indistinguishable_pairs(blind, ["a", "b", "c"], "x") == [
        {"rules": ["a", "c"], "accuracy": 0.5, "n": 10,
         "statement": "a vs c: not distinguishable with x from one layer (held-out accuracy 0.50)"},
        {"rules": ["b", "c"], "accuracy": 0.5, "n": 10,
         "statement": "b vs c: not distinguishable with x from one layer (held-out accuracy 0.50)"}]


def test_observables_are_named_plainly():
    assert describe_observables(OBS_CLASSES["act"]) == "activity"
    assert describe_observables(["actabs_mean", "gradavgraw_id"]) == "activity and gradients"
    assert describe_observables(OBS_CLASSES["all"]) == "weights, activity and gradients"


# ----------------------------------------------------------------------------------------------------------------
# observable subsets


def test_observable_subsets_parse_and_unknown_names_are_one_line():
    assert parse_observables("act") == OBS_CLASSES["act"]
    assert parse_observables("act, gradavgraw_id") == (*OBS_CLASSES["act"], "gradavgraw_id")
    assert parse_observables("act,actabs_mean") == OBS_CLASSES["act"]  # a repeat is dropped
    assert parse_observables(["weight", "grad"]) == (*OBS_CLASSES["weight"], *OBS_CLASSES["grad"])
    with pytest.raises(UnknownNameError, match="unknown observable class 'acts'; did you mean 'act'") as err:
        parse_observables("acts")
    assert "\n" not in str(err.value)
    with pytest.raises(UnknownNameError, match="unknown statistic 'actabs_maen'; did you mean 'actabs_mean'"):
        parse_observables("act,actabs_maen")
    with pytest.raises(ConfigError, match="empty item"):
        parse_observables("act,")


def test_the_network_exponent_recovers_independent_evidence():
    """Three layers each see independent evidence x_l ~ N(±μ, 1) of a network's class and report their exact
    posterior p_l = σ(2μ x_l). The exact network posterior is then ∝ Π_l p_l — the mean of log p_l times β = L = 3 —
    so the fitted β must come out near 3 (3,000 networks: its sampling error is a few per cent)."""
    from learnscope.identify.crossfit import fit_network_exponent

    rng = np.random.default_rng(0)
    n, L, mu = 3000, 3, 0.5
    y_net = rng.integers(0, 2, n)
    x = rng.normal(np.where(y_net == 1, mu, -mu)[:, None], 1.0, (n, L))
    p1 = 1 / (1 + np.exp(-2 * mu * x))
    p = np.stack([1 - p1.reshape(-1), p1.reshape(-1)], axis=1)
    beta = fit_network_exponent(p, np.repeat(y_net, L), np.repeat(np.arange(n), L))
    assert 2.5 < beta < 3.6
