"""The paper's analyses (identify/analyses.py) and their report, on hand-built stores whose truth is known.

Every table is built so that the expected outcome follows from the construction:

* a statistic "carries the signal" when each rule shifts it by a large, rule-specific amount (3 noise standard
  deviations, on a rule-specific subset of statistics, so the classes are separable even by a linear model);
  statistics that do not carry it are i.i.d. N(0, 1), independent of the rule, so a classifier on them can only
  reach chance (0.25 with 4 rules, up to sampling error);
* identical loss/accuracy curves for every network make the performance-only classifier's prediction a function of
  the layer one-hot alone; since every test split holds the same number of networks of each rule and every network
  has the same layers, any such prediction is right on exactly 1/4 of the test rows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from learnscope.errors import ConfigError, LearnscopeError, UnknownNameError
from learnscope.identify.analyses import (
    Frames,
    curve_conditions,
    heldout,
    importances,
    main_table,
    noise_curves,
    ordering_verdict,
    performance_baseline,
    run_all,
    subsampling_curve,
    temporal_curves,
)
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.protocol import evaluate
from learnscope.identify.store import Store
from learnscope.report.identify_report import SECTIONS

RULES = ["adam", "fa", "ia", "sgdm"]
ADMISSIBLE = list(OBS_CLASSES["all"])
SHIFT = 3.0
FAST = {"grid": "none", "n_splits": 3, "seed": 0}


def _signal(rule: int, names: list[str], stats: tuple[str, ...] | str | None) -> np.ndarray:
    """The rule-dependent mean of each statistic: ``SHIFT`` on the informative statistics whose position in their
    list is ≡ rule (mod 4) (a one-hot pattern per rule, so the classes are linearly separable), else 0."""
    informative = OBS_CLASSES[stats] if isinstance(stats, str) else (stats or ())
    inf_list = [n for n in names if n in informative]
    return np.array([SHIFT if n in informative and inf_list.index(n) % len(RULES) == rule else 0.0 for n in names])


def make_frames(conditions: dict, nets_per_rule: int = 8, n_layers: int = 2, T: int = 4, archs=("mlp_a",),
                tasks=("digits",), curves: str = "same", rules=RULES, signature: bool = False, seed: int = 0,
                condition_table: list[dict] | None = None) -> Frames:
    """Observation and network tables of ``len(rules) × nets_per_rule`` networks.

    ``conditions``: name -> ``{"stats": class name or tuple of statistic names carrying the signal, "ckpts":
    checkpoints where it is present (default all), "single": True for a signal 2·SHIFT·rule (rules 6 σ apart),
    "flip_arch": an architecture where the signal's sign is flipped}``. ``signature``: every value is a
    network-specific random constant (shared by its layers, independent of the rule) plus 0.01 noise. ``curves``:
    "same" (identical loss/accuracy curves) or "by_rule" (a rule-specific one-hot offset of the three curves)."""
    rng = np.random.default_rng(seed)
    groups = {1: ["deep"], 2: ["early", "deep"], 3: ["early", "middle", "deep"]}[n_layers]
    obs_rows, net_rows = [], []
    for r, rule in enumerate(rules):
        for k in range(nets_per_rule):
            nid = f"{rule}-{k}"
            arch, task = archs[k % len(archs)], tasks[(k // len(archs)) % len(tasks)]
            base = np.linspace(2.0, 0.5, T)
            off = np.eye(3)[r] if (curves == "by_rule" and r < 3) else np.zeros(3)
            net_rows.append({"network_id": nid, "rule": rule, "task": task, "architecture": arch, "status": "ok",
                             "loss_curve": list(base + off[0]), "train_accuracy_curve": list(0.5 + 0 * base + off[1]),
                             "test_accuracy_curve": list(0.4 + 0 * base + off[2])})
            sig = rng.normal(size=(T, len(ADMISSIBLE))) if signature else None
            for li, group in enumerate(groups):
                for cond, spec in conditions.items():
                    if signature:
                        values = sig + 0.01 * rng.normal(size=sig.shape)
                    else:
                        values = rng.normal(size=(T, len(ADMISSIBLE)))
                        if spec.get("single"):
                            mean = np.array([2 * SHIFT * r if n in spec["stats"] else 0.0 for n in ADMISSIBLE])
                        else:
                            mean = _signal(r, ADMISSIBLE, spec.get("stats"))
                        if spec.get("flip_arch") == arch:
                            mean = -mean
                        ckpts = spec.get("ckpts", range(T))
                        values[list(ckpts)] += mean
                    for c in range(T):
                        row = {"network_id": nid, "task": task, "architecture": arch, "rule": rule, "batch_size": 32,
                               "seed": k, "layer": f"fc{li}", "group": group, "lr": 0.01, "layer_index": li,
                               "condition": cond, "checkpoint": c}
                        row.update(dict(zip(ADMISSIBLE, values[c], strict=True)))
                        obs_rows.append(row)
    table = condition_table if condition_table is not None else [{"name": n} for n in conditions]
    return Frames(pd.DataFrame(obs_rows), pd.DataFrame(net_rows), conditions=table)


def _cell(result: dict, obs_class: str, classifier: str = "svm") -> dict:
    return next(c for c in result["cells"] if c["obs_class"] == obs_class and c["classifier"] == classifier)


def _point(curve: dict, x: float, obs_class: str, xkey: str = "sigma") -> dict:
    return next(p for p in curve["points"] if p[xkey] == x and p["obs_class"] == obs_class)


# --------------------------------------------------------------------------------------------------------------
# main table


def test_main_table_weight_signal_act_noise():
    frames = make_frames({"clean": {"stats": "weight"}})
    res = main_table(frames, ("svm",), **FAST)
    assert res["chance"] == 0.25 and res["labels"] == RULES and res["split_mode"] == "network"
    assert _cell(res, "weight")["accuracy_mean"] >= 0.9
    assert _cell(res, "all")["accuracy_mean"] >= 0.9
    # act and grad are independent of the rule: chance 0.25 up to sampling error (48 test networks in all)
    assert _cell(res, "act")["accuracy_mean"] <= 0.5
    assert _cell(res, "grad")["accuracy_mean"] <= 0.5
    # round(0.25 · 8) = 2 test networks per rule and split, 2 layers each, 3 splits -> 12 rows per actual rule
    cm = np.array(res["best"]["confusion_matrix"])
    np.testing.assert_array_equal(cm.sum(axis=1), [12, 12, 12, 12])
    assert np.trace(cm) / cm.sum() == pytest.approx(_cell(res, "all")["accuracy_mean"])
    w = _cell(res, "weight")
    assert w["accuracy_sem"] == pytest.approx(np.std(w["accuracy_per_split"], ddof=1) / np.sqrt(3))


def test_row_splits_leak_a_network_signature_that_network_splits_do_not():
    # every network has its own random signature shared by its layers and nothing depends on the rule: a test
    # layer whose sibling layers were trained on is recognised (row splits), an unseen network is not
    frames = make_frames({"clean": {}}, nets_per_rule=8, n_layers=3, signature=True)
    res = main_table(frames, ("rf",), **FAST)
    gap = res["row_vs_network"][0]
    assert gap["network"]["accuracy_mean"] <= 0.45
    assert gap["row"]["accuracy_mean"] >= 0.7
    assert gap["gap"] == pytest.approx(gap["row"]["accuracy_mean"] - gap["network"]["accuracy_mean"])


# --------------------------------------------------------------------------------------------------------------
# noise and subsampling curves


NOISE_TABLE = [
    {"name": "clean"},
    {"name": "abs_noise_0.3", "sigma": 0.3},
    {"name": "abs_noise_1.0", "sigma": 1.0},
    {"name": "rel_noise_0.5", "sigma": 0.5, "noise_mode": "relative"},
    {"name": "units_0.5", "frac": 0.5},
    {"name": "as_original_0.3", "sigma": 0.3, "gradavg_mode": "as_original"},  # another axis: not on the curves
]
NOISE_CONDITIONS = {
    "clean": {"stats": "weight"},
    "abs_noise_0.3": {"stats": "act"},  # absolute noise swamps the small weights, activations survive
    "abs_noise_1.0": {"stats": "act"},
    "rel_noise_0.5": {"stats": "weight"},  # relative noise hurts both alike: weights keep their edge
    "units_0.5": {"stats": "act"},
    "as_original_0.3": {"stats": "weight"},
}


@pytest.fixture(scope="module")
def noise_frames() -> Frames:
    return make_frames(NOISE_CONDITIONS, condition_table=NOISE_TABLE)


def test_curve_conditions_are_classified_from_the_condition_table(noise_frames):
    assert [c["name"] for c in curve_conditions(noise_frames, "absolute")] == ["abs_noise_0.3", "abs_noise_1.0"]
    assert [c["name"] for c in curve_conditions(noise_frames, "relative")] == ["rel_noise_0.5"]
    assert [c["name"] for c in curve_conditions(noise_frames, "subsampling")] == ["units_0.5"]


def test_noise_curves_show_the_constructed_ordering(noise_frames):
    res = noise_curves(noise_frames, ("svm",), **FAST)
    ab, rel = res["absolute"], res["relative"]
    assert ab["available"] and rel["available"]
    assert ab["conditions"] == ["clean", "abs_noise_0.3", "abs_noise_1.0"]
    assert rel["conditions"] == ["clean", "rel_noise_0.5"]
    for sigma in (0.3, 1.0):
        assert _point(ab, sigma, "act")["accuracy_mean"] >= 0.9
        assert _point(ab, sigma, "weight")["accuracy_mean"] <= 0.5
    assert _point(ab, 0.0, "weight")["accuracy_mean"] >= 0.9  # clean: weights carry the signal
    diffs = {d["sigma"]: d for d in ab["act_minus_weight"]}
    for sigma in (0.0, 0.3, 1.0):
        expected = _point(ab, sigma, "act")["accuracy_mean"] - _point(ab, sigma, "weight")["accuracy_mean"]
        assert diffs[sigma]["difference"] == pytest.approx(expected)
    assert diffs[1.0]["difference"] >= 0.4 and diffs[0.0]["difference"] <= -0.4
    assert ab["ordering"]["svm"]["verdict"] == "holds"
    assert ab["ordering"]["svm"]["sigmas"] == [0.3, 1.0]
    assert rel["ordering"]["svm"]["verdict"] == "reversed"


def test_subsampling_curve(noise_frames):
    res = subsampling_curve(noise_frames, ("svm",), **FAST)
    assert res["available"] and res["conditions"] == ["clean", "units_0.5"]
    act, weight = _point(res, 0.5, "act", "frac"), _point(res, 0.5, "weight", "frac")
    assert act["accuracy_mean"] >= 0.9 and weight["accuracy_mean"] <= 0.5
    clean_weight = _point(res, 1.0, "weight", "frac")["accuracy_mean"]
    assert weight["drop_from_clean"] == pytest.approx(clean_weight - weight["accuracy_mean"])
    assert weight["drop_from_clean"] >= 0.4


def test_ordering_verdict_rules():
    assert ordering_verdict([0.01, 0.2]) == "holds"
    assert ordering_verdict([0.1, -0.2]) == "mixed"
    assert ordering_verdict([-0.01, -0.3]) == "reversed"
    assert ordering_verdict([0.01, -0.04]) == "no difference"
    assert ordering_verdict([]) == "untested"


def test_curves_are_skipped_without_such_conditions():
    frames = make_frames({"clean": {"stats": "weight"}})
    assert "skipped" in noise_curves(frames, ("svm",), **FAST)
    assert "skipped" in subsampling_curve(frames, ("svm",), **FAST)


# --------------------------------------------------------------------------------------------------------------
# temporal subsampling and importances: the signal is present at late checkpoints only


def test_temporal_last_k_beats_first_k():
    # the weight statistics carry the signal at checkpoints 4 and 5 of 0..5 only
    frames = make_frames({"clean": {"stats": "weight", "ckpts": (4, 5)}}, T=6)
    res = temporal_curves(frames, ("rf",), ks=(2, 3), ms=(2,), **FAST)
    pts = {(p["mode"], p["k"]): p for p in res["points"]}
    assert pts[("first-k", 2)]["checkpoints"] == [0, 1] and pts[("last-k", 2)]["checkpoints"] == [4, 5]
    assert pts[("spread-k", 3)]["checkpoints"] == [0, 2, 5] and pts[("every-m", 2)]["checkpoints"] == [0, 2, 4]
    assert pts[("end-only", None)]["checkpoints"] == [5] and pts[("full", 6)]["n_kept"] == 6
    for k in (2, 3):
        assert pts[("first-k", k)]["accuracy_mean"] <= 0.5  # checkpoints 0..2 are pure noise
        assert pts[("last-k", k)]["accuracy_mean"] >= 0.9
    assert pts[("end-only", None)]["accuracy_mean"] >= 0.9
    assert pts[("every-m", 2)]["accuracy_mean"] >= 0.9  # includes checkpoint 4
    acc = res["acceptance"]["rf"]
    assert acc["spread3_ge_first3"] is True and acc["difference"] >= 0.4
    assert acc["spread3"] == pts[("spread-k", 3)]["accuracy_mean"]


def test_importances_put_the_informative_statistic_and_checkpoints_first():
    # one statistic, weightraw_median, carries the signal (rules 6 σ apart) at checkpoints 2 and 3 of 0..3
    frames = make_frames({"clean": {"stats": ("weightraw_median",), "single": True, "ckpts": (2, 3)}}, T=4)
    res = importances(frames, n_repeats=2, grid="none", n_splits=2, seed=0)
    assert res["per_statistic"][0]["name"] == "weightraw_median"
    assert res["per_statistic"][0]["importance_mean"] >= 0.2
    assert len(res["per_statistic"]) == 24 and res["n_splits"] == 2
    by_ckpt = [c["importance_mean"] for c in res["per_checkpoint"]]
    assert [c["checkpoint"] for c in res["per_checkpoint"]] == [0, 1, 2, 3]
    assert min(by_ckpt[2:]) > max(by_ckpt[:2])
    assert res["per_class"]["weight"]["importance_mean"] > res["per_class"]["act"]["importance_mean"]
    # only weightraw_median carries signal: shuffling any other statistic, or the act/grad blocks, costs at most
    # the odd test row that a split on pure noise happened to decide
    others = [abs(r["importance_mean"]) for r in res["per_statistic"][1:]]
    assert max(others) < 0.25 * res["per_statistic"][0]["importance_mean"]
    assert abs(res["per_class"]["act"]["importance_mean"]) < 0.25 * res["per_class"]["weight"]["importance_mean"]
    # the permuted model is the one evaluate() fits on the same split (same seeds): same test accuracy
    reference = evaluate(frames.dataset("clean", "all"), "rf", "network", grid="none", n_splits=2, seed=0)
    assert res["test_accuracy_mean"] == pytest.approx(reference["accuracy_mean"])


# --------------------------------------------------------------------------------------------------------------
# held-out generalisation


def test_heldout_architecture_and_task():
    frames = make_frames({"clean": {"stats": "weight"}}, archs=("mlp_a", "mlp_b"), tasks=("digits", "teacher"))
    res = heldout(frames, ("svm",), **FAST)
    for part, values in (("architecture", ["mlp_a", "mlp_b"]), ("task", ["digits", "teacher"])):
        pc = res[part]["per_classifier"][0]
        assert [v["held_out"] for v in pc["values"]] == values
        assert all(v["accuracy"] >= 0.9 for v in pc["values"])
        # half of the 32 networks hold each value, 2 layers each
        assert [v["n_test"] for v in pc["values"]] == [32, 32]
        assert pc["mean_accuracy"] == pytest.approx(np.mean([v["accuracy"] for v in pc["values"]]))


def test_heldout_architecture_fails_when_the_signal_flips_with_architecture():
    # rule r raises its statistics by +3 on mlp_a and lowers them by 3 on mlp_b (not linearly separable: rf)
    frames = make_frames({"clean": {"stats": "weight", "flip_arch": "mlp_b"}}, archs=("mlp_a", "mlp_b"))
    res = heldout(frames, ("rf",), **FAST)
    pc = res["architecture"]["per_classifier"][0]
    assert pc["network_split_accuracy"] >= 0.8  # both signs are seen in training
    assert pc["mean_accuracy"] <= 0.5  # the sign seen in training is the wrong one on the held-out architecture
    assert res["task"]["available"] is False and "one task" in res["task"]["reason"]


def test_heldout_value_that_leaves_a_rule_untrainable_is_reported_not_raised():
    base = make_frames({"clean": {"stats": "weight"}}, archs=("mlp_a", "mlp_b"))
    obs = base.observations.copy()
    adam = obs["rule"] == "adam"  # 7 adam networks on mlp_a, one on mlp_b
    obs.loc[adam, "architecture"] = np.where(obs.loc[adam, "network_id"] == "adam-0", "mlp_b", "mlp_a")
    frames = Frames(obs, base.networks, conditions=base.conditions)
    res = heldout(frames, ("svm",), grid="reduced", n_splits=2)
    # holding out mlp_a leaves one adam network to train on: the inner CV needs two
    assert res["architecture"]["available"] is False
    assert "at least two networks of every rule" in res["architecture"]["reason"]


# --------------------------------------------------------------------------------------------------------------
# performance baseline


def test_performance_baseline_is_exactly_chance_when_curves_are_identical():
    frames = make_frames({"clean": {"stats": "weight"}}, curves="same")
    res = performance_baseline(frames, ("svm",), **FAST)
    assert res["cells"][0]["accuracy_per_split"] == pytest.approx([0.25, 0.25, 0.25], abs=1e-12)
    comp = res["comparison"][0]
    assert comp["observables_beat_performance"] is True and comp["observables"] >= 0.9


def test_performance_baseline_wins_when_rules_learn_differently():
    frames = make_frames({"clean": {}}, curves="by_rule")  # observables carry nothing, the curves everything
    res = performance_baseline(frames, ("svm",), **FAST)
    comp = res["comparison"][0]
    assert comp["performance"] == pytest.approx(1.0)
    assert comp["observables"] <= 0.5 and comp["observables_beat_performance"] is False


# --------------------------------------------------------------------------------------------------------------
# run_all and the report


def _write_store(frames: Frames, root) -> Store:
    store = Store.create(root, {"conditions": frames.conditions})
    for nid, obs in frames.observations.groupby("network_id"):
        row = frames.networks[frames.networks.network_id == nid].iloc[0].to_dict()
        store.write_network(nid, row, obs.reset_index(drop=True))
    return store


def test_run_all_writes_metrics_and_report(noise_frames, tmp_path):
    _write_store(noise_frames, tmp_path / "store")
    out = tmp_path / "run"
    res = run_all(tmp_path / "store", out, classifiers=("svm",), progress=False, n_repeats=1, ks=(2, 3), **FAST)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == res
    for key in ("main_table", "noise_curves", "subsampling_curve", "temporal_curves", "heldout", "importances",
                "performance_baseline"):
        assert key in metrics and "skipped" not in metrics[key]
    assert set(metrics["skipped"]) == {"heldout.architecture", "heldout.task"}  # one architecture, one task
    assert metrics["dataset"]["networks_per_rule"] == dict.fromkeys(RULES, 8)
    assert metrics["settings"]["curve_classifiers"] == ["svm"]
    # a fit shared by several analyses runs once: 4 + 1 main-table cells; 4 non-clean noise/subsampling conditions
    # × 3 classes; first/last/spread for k = 2, 3, every-m for m = 2, 3 and end-only (T = 4); 1 importance run;
    # 1 performance-only run; 3 splits each
    assert metrics["timing"]["n_fits"] == 3 * (5 + 12 + 9 + 1 + 1)
    html = (out / "report.html").read_text()
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html
    assert html.count("<img") == 7  # everything but the held-out figure
    assert "Under absolute noise (svm)" in html and "ordering holds" in html
    assert "Under relative noise (svm)" in html and "ordering is reversed" in html
    assert "scale effect" in html


def test_run_all_on_frames_without_curve_conditions_says_what_was_skipped(tmp_path):
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4)
    res = run_all(frames, tmp_path, classifiers=("svm",), progress=False, n_repeats=1, ks=(2,), ms=(), **FAST)
    assert "noise_curves" in res["skipped"] and "subsampling_curve" in res["skipped"]
    html = (tmp_path / "report.html").read_text()
    assert "the store has no noise conditions" in html and "no unit-subsampling conditions" in html


# --------------------------------------------------------------------------------------------------------------
# bad input


def test_a_single_rule_is_refused():
    frames = make_frames({"clean": {"stats": "weight"}}, rules=["sgdm"])
    with pytest.raises(ConfigError, match="at least 2 learning rules"):
        main_table(frames, ("svm",), **FAST)


def test_too_few_networks_per_rule_is_refused_with_the_count():
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=2)
    with pytest.raises(ConfigError, match=r"rule 'adam' has only 2 status-ok network\(s\).*at least 3"):
        main_table(frames, ("svm",), grid="reduced", n_splits=2)
    # without an inner grid search 2 networks per rule suffice (1 to test, 1 to train)
    assert main_table(frames, ("svm",), grid="none", n_splits=2)["cells"]


def test_bad_names_and_settings_are_refused_before_any_work(tmp_path):
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=3)
    with pytest.raises(UnknownNameError, match="classifier"):
        main_table(frames, ("rff",))
    with pytest.raises(UnknownNameError, match="grid"):
        main_table(frames, ("svm",), grid="tiny")
    with pytest.raises(ConfigError, match="n_splits"):
        main_table(frames, ("svm",), grid="none", n_splits=0)
    with pytest.raises(ConfigError, match="at least one classifier"):
        run_all(frames, tmp_path / "x", classifiers=(), progress=False)
    assert not (tmp_path / "x").exists()
    no_clean = make_frames({"noisy": {"stats": "weight"}}, condition_table=[{"name": "noisy", "sigma": 0.1}])
    with pytest.raises(LearnscopeError, match="no clean condition"):
        main_table(no_clean, ("svm",), **FAST)
