"""The paper's analyses (identify/analyses.py, run together by identify/classify.py) and their report, on
hand-built stores whose truth is known.

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
import re
import types
import typing

import numpy as np
import pandas as pd
import pytest

from learnscope.errors import ConfigError, LearnscopeError, UnknownNameError
from learnscope.identify import tables
from learnscope.identify.analyses import (
    heldout,
    importances,
    main_table,
    noise_curves,
    ordering_verdict,
    performance_baseline,
    subsampling_curve,
    temporal_curves,
)
from learnscope.identify.classify import plan_all, run_all
from learnscope.identify.frames import Frames, curve_conditions
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.store import Store
from learnscope.report import identify_figures
from learnscope.report.identify_report import SECTIONS, write_report
from learnscope.results import write_run_dir

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
# run_all: every analysis at once, returned and never written


def _write_store(frames: Frames, root) -> Store:
    store = Store.create(root, {"conditions": frames.conditions})
    for nid, obs in frames.observations.groupby("network_id"):
        row = frames.networks[frames.networks.network_id == nid].iloc[0].to_dict()
        store.write_network(nid, row, obs.reset_index(drop=True))
    return store


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# a fit shared by several analyses runs once: 4 + 1 main-table cells; 4 non-clean noise/subsampling conditions
# × 3 classes; first/last/spread for k = 2, 3, every-m for m = 2, 3 and end-only (T = 4); 1 importance run;
# 1 performance-only run; 3 splits each
FULL_FITS = 3 * (5 + 12 + 9 + 1 + 1)


@pytest.fixture(scope="module")
def full_run(noise_frames, tmp_path_factory):
    """run_all on a store of ``noise_frames`` (every analysis but held-out) named by its absolute path from its
    parent directory, the tree before and after, and the run directory and report written from the results."""
    root = tmp_path_factory.mktemp("full")
    _write_store(noise_frames, root / "store")
    before = _tree(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        res = run_all(root / "store", classifiers=("svm",), progress=False, n_repeats=1, ks=(2, 3), **FAST)
        after = _tree(root)
        write_run_dir(root / "run", kind="identify-classify", metrics=res)
        report = write_report(res, root / "run")
    return types.SimpleNamespace(res=res, root=root, out=root / "run", html=report.read_text(), before=before,
                                 after=after)


def test_run_all_returns_every_analysis_and_writes_nothing(full_run):
    res = full_run.res
    assert full_run.after == full_run.before  # not a file more, in the store or beside it
    assert list(res) == ["settings", "dataset", *tables.ANALYSES, "skipped", "timing"]
    # one objective, no unit-count conditions, identical (flat) performance curves
    for key in set(tables.ANALYSES) - {"objective_tables", "unit_count_curve", "performance_matched"}:
        assert "skipped" not in res[key]
    # one architecture, task and objective; one batch size and one learning rate
    assert set(res["skipped"]) == {"heldout.architecture", "heldout.task", "heldout.objective", "objective_tables",
                                   "unit_count_curve", "heldout_hyperparameters.batch_size",
                                   "heldout_hyperparameters.lr", "performance_matched"}
    assert res["dataset"]["networks_per_rule"] == dict.fromkeys(RULES, 8)
    assert res["dataset"]["source"] == "store"  # as named from the current directory, not the absolute path
    assert res["settings"]["curve_classifiers"] == ["svm"]
    assert res["timing"]["n_fits"] == FULL_FITS


def test_metrics_json_is_strict_json_of_exactly_the_results(full_run):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    metrics = json.loads((full_run.out / "metrics.json").read_text(), parse_constant=refuse)
    assert "missing" in metrics.pop("_encoding")
    assert metrics == full_run.res


def test_the_plan_counts_the_fits_the_run_performs_and_estimating_changes_no_number():
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4)
    settings = {"classifiers": ("svm",), "n_repeats": 1, "ks": (2,), "ms": (), **FAST}
    plan = plan_all(frames, **settings)
    # 4 main-table cells + 1 row split; first/last/spread-2 and end-only (svm is also the curve classifier, its
    # full "all" fit is shared); 1 importance run with rf; 1 performance-only run; 3 splits each
    assert plan.n_fits == sum(plan.fits_per_analysis.values()) == 3 * (5 + 4 + 1 + 1)
    assert plan.fits_per_analysis["noise_curves"] == plan.fits_per_analysis["heldout"] == 0
    assert plan.estimate_seconds() > 0
    res = plan.run(progress=False)
    assert res["timing"]["n_fits"] == plan.runner.done == plan.n_fits
    again = run_all(frames, progress=False, **settings)
    assert {k: v for k, v in again.items() if k != "timing"} == {k: v for k, v in res.items() if k != "timing"}
    # two worker processes fit the same jobs first: the same numbers, every fit counted once, each timed
    parallel = run_all(frames, progress=False, jobs=2, **settings)
    assert {k: v for k, v in parallel.items() if k != "timing"} == {k: v for k, v in res.items() if k != "timing"}
    assert parallel["timing"]["n_fits"] == plan.n_fits
    assert set(parallel["timing"]["fit_s_per_analysis"]) == set(tables.ANALYSES)
    assert all(parallel["timing"]["fit_s_per_analysis"][a] > 0 for a, n in plan.fits_per_analysis.items() if n)


def test_a_job_that_fails_in_a_worker_raises_where_it_is_read_and_the_others_are_kept():
    from learnscope.identify.runner import Job, Runner

    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4)
    good, bad = Job("clean", "all", "svm"), Job("clean", "all", "conv1d", kind="importance")
    runner = Runner(frames, "none", 3, 0, None)
    runner.prefetch([good, bad], n_jobs=2)
    assert good in runner.cache and bad not in runner.cache
    assert runner.total == runner.done == 3  # the failed job's fits are no longer counted as coming
    with pytest.raises(ConfigError, match="importances need a classifier on flattened features"):
        runner.get(bad)
    alone = Runner(frames, "none", 3, 0, None)
    assert runner.get(good) == alone.get(good)


# --------------------------------------------------------------------------------------------------------------
# the declared tables


def conform(value, tp, path: str = "results") -> None:
    """Assert that ``value`` has the declared type ``tp``: TypedDicts (every required key, no undeclared one),
    unions, literals, ``list[X]``, ``dict[str, X]`` and JSON scalars (an int passes for a float, a bool never for
    a number)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return
    if typing.is_typeddict(tp):
        assert isinstance(value, dict), f"{path}: {type(value).__name__}, declared {tp.__name__}"
        hints = typing.get_type_hints(tp)
        missing, extra = tp.__required_keys__ - value.keys(), value.keys() - hints.keys()
        assert not missing and not extra, f"{path} ({tp.__name__}): missing {missing}, undeclared {extra}"
        for key, v in value.items():
            conform(v, hints[key], f"{path}.{key}")
    elif origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return conform(value, option, path)
            except AssertionError as err:
                errors.append(str(err))
        raise AssertionError(f"{path}: matches none of {tp}: {errors}")
    elif origin is typing.Literal:
        assert any(value == a and type(value) is type(a) for a in args), f"{path}: {value!r} not in {args}"
    elif origin is list:
        assert isinstance(value, list), f"{path}: {type(value).__name__}, declared a list"
        for i, v in enumerate(value):
            conform(v, args[0], f"{path}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{path}: {type(value).__name__}, declared a dict"
        for key, v in value.items():
            assert isinstance(key, str), f"{path}: key {key!r}"
            conform(v, args[1], f"{path}.{key}")
    elif tp is type(None):
        assert value is None, f"{path}: {value!r}, declared None"
    elif tp is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: {value!r}, declared float"
    elif tp in (int, str, bool):
        assert isinstance(value, tp) and (tp is bool or not isinstance(value, bool)), f"{path}: {value!r} vs {tp}"
    else:  # pragma: no cover - a declaration this checker does not know
        raise AssertionError(f"{path}: cannot check {tp}")


def test_every_result_has_its_declared_table(full_run):
    conform(full_run.res, tables.ClassifyResults)


def test_declared_tables_catch_a_missing_or_an_undeclared_key(full_run):
    cell = dict(full_run.res["main_table"]["cells"][0])
    conform(cell, tables.Cell)
    with pytest.raises(AssertionError, match="missing"):
        conform({k: v for k, v in cell.items() if k != "obs_class"}, tables.Cell)
    with pytest.raises(AssertionError, match="undeclared"):
        conform(cell | {"acuracy_mean": 0.5}, tables.Cell)


def test_heldout_and_single_analyses_have_their_declared_tables():
    frames = make_frames({"clean": {"stats": "weight"}}, archs=("mlp_a", "mlp_b"), tasks=("digits", "teacher"))
    conform(heldout(frames, ("svm",), **FAST), tables.Heldout)
    skipped = noise_curves(frames, ("svm",), **FAST)
    conform(skipped, tables.NoiseCurves | tables.Skipped)
    with pytest.raises(AssertionError):
        conform(skipped, tables.NoiseCurves)


class _Declared(dict):
    """A results table that fails when read at a key its declaration does not name."""

    def __init__(self, data: dict, declared: set[str], where: str):
        super().__init__(data)
        self.declared, self.where = declared, where

    def _check(self, key):
        assert key in self.declared, f"the report reads {self.where}[{key!r}], which no table declares"

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)


def _guard(value, tp, where: str = "results"):
    """``value`` with every declared table replaced by a :class:`_Declared` of its declared keys."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                conform(value, option)
            except AssertionError:
                continue
            return _guard(value, option, where)
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        return _Declared({k: _guard(v, hints[k], f"{where}.{k}") for k, v in value.items()}, set(hints), where)
    if origin is list:
        return [_guard(v, args[0], f"{where}[]") for v in value]
    if origin is dict:
        return {k: _guard(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return value


def test_the_report_reads_only_declared_keys(full_run, tmp_path):
    guarded = _guard(full_run.res, tables.ClassifyResults)
    with pytest.raises(AssertionError, match="no table declares"):
        guarded["main_table"]["cells"][0]["acc"]
    html = write_report(guarded, tmp_path).read_text()
    assert html.count("<h2>") == len(SECTIONS)


# --------------------------------------------------------------------------------------------------------------
# the report


def _sections(html: str) -> dict[str, str]:
    parts = re.split(r"<h2>(.*?)</h2>", html)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_report_says_what_the_noise_curves_show(full_run):
    noise = _sections(full_run.html)["Measurement noise"]
    assert "Under absolute noise (svm)" in noise and "ordering holds" in noise
    assert "Under relative noise (svm)" in noise and "ordering is reversed" in noise
    assert "scale effect" in noise


@pytest.fixture
def stub_figures(monkeypatch, tmp_path):
    """The report's figure functions replaced by one that writes a 1-pixel PNG (the figures are not under test)."""
    import matplotlib.pyplot as plt

    import learnscope.report.identify_report as report

    stub = tmp_path / "stub.png"
    plt.imsave(stub, np.zeros((1, 1)))
    for name in ("main_bars", "confusion", "noise_figure", "subsampling_figure", "temporal_figure",
                 "heldout_figure", "importance_figure", "performance_figure", "unit_count_figure"):
        monkeypatch.setattr(report, name, lambda *args, **kwargs: stub)


def test_each_section_shows_the_analysis_it_names(full_run, tmp_path, stub_figures):
    """A section reads its own key: without that key (only), the section says so and the others do not."""
    full = _sections(write_report(full_run.res, tmp_path / "full").read_text())
    for key in tables.ANALYSES:
        partial = {k: v for k, v in full_run.res.items() if k != key}
        got = _sections(write_report(partial, tmp_path / key).read_text())
        for section in SECTIONS:
            missing = "not run (missing from the results)" in got[section.title]
            assert missing == (section.key == key), (key, section.title)
            if section.key not in (key, "settings", "skipped"):
                assert ("<img" in got[section.title]) == ("<img" in full[section.title]), (key, section.title)


def test_every_figure_written_is_in_the_report_and_only_shown_analyses_have_one(full_run):
    import base64

    pngs = sorted(full_run.out.glob("identify_*.png"))
    for png in pngs:
        assert base64.b64encode(png.read_bytes()).decode() in full_run.html, png.name
    sections = _sections(full_run.html)
    with_figure = {title for title, body in sections.items() if "<img" in body}
    assert len(with_figure) == len(pngs)
    assert "Held-out generalisation" not in with_figure  # one architecture and one task: nothing to show
    assert not list(full_run.out.glob(".*.tmp"))


def test_report_tables_hold_no_none_no_empty_header_no_internal_citation_and_no_absolute_path(full_run):
    html = full_run.html
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html)
    assert cells and not [c for c in cells if c.strip() in ("None", "nan", "NaN", "n/a")]
    assert not [h for h in re.findall(r"<th[^>]*>(.*?)</th>", html) if not h.strip()]
    assert "spec" not in html.lower() and "§" not in html
    assert str(full_run.root) not in html


def test_a_single_split_shows_a_dash_for_the_undefined_sem(tmp_path):
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4)
    res = run_all(frames, classifiers=("svm",), grid="none", n_splits=1, progress=False, n_repeats=1, ks=(2,),
                  ms=())
    assert res["main_table"]["cells"][0]["accuracy_sem"] is None  # std(ddof=1) of one split is undefined
    main = _sections(write_report(res, tmp_path).read_text())["Main table"]
    assert f"{res['main_table']['cells'][0]['accuracy_mean']:.3f} ± –" in main


def test_run_all_on_frames_without_curve_conditions_says_what_was_skipped(tmp_path):
    frames = make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4)
    res = run_all(frames, classifiers=("svm",), progress=False, n_repeats=1, ks=(2,), ms=(), **FAST)
    assert "noise_curves" in res["skipped"] and "subsampling_curve" in res["skipped"]
    html = write_report(res, tmp_path).read_text()
    assert "the store has no noise conditions" in html and "no unit-subsampling conditions" in html


def _overlapping_labels(fig, axis) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in labels]
    return [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])]


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report functions draw, kept open instead of saved."""
    figures = []
    monkeypatch.setattr(identify_figures, "_save", lambda fig, path: figures.append(fig) or path)
    yield figures
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)


def test_checkpoint_and_fraction_tick_labels_never_run_together(drawn, tmp_path):
    T = 101
    stats = [{"name": n, "importance_mean": 0.01, "importance_sem": 0.001} for n in ADMISSIBLE]
    imp = {"classifier": "rf", "per_statistic": stats,
           "per_checkpoint": [{"checkpoint": t, "importance_mean": 0.01, "importance_sem": None} for t in range(T)]}
    identify_figures.importance_figure(imp, tmp_path / "imp.png")
    scores = {"accuracy_mean": 0.5, "accuracy_sem": 0.01}
    temp = {"classifiers": ["rf"], "n_checkpoints": T,
            "points": [{"classifier": "rf", "mode": "first-k", "n_kept": k} | scores for k in range(1, T)]}
    identify_figures.temporal_figure(temp, tmp_path / "temp.png")
    fracs = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01]
    sub = {"available": True, "points": [{"frac": f, "classifier": "rf", "obs_class": "all"} | scores for f in fracs]}
    identify_figures.subsampling_figure(sub, tmp_path / "sub.png")
    imp_fig, temp_fig, sub_fig = drawn
    for fig, ax in ((imp_fig, imp_fig.axes[1]), (temp_fig, temp_fig.axes[0]), (sub_fig, sub_fig.axes[0])):
        labels = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
        assert 2 <= len(labels) <= identify_figures.MAX_TICKS + 2, labels
        assert not _overlapping_labels(fig, ax.xaxis), labels
    ckpt_labels = [t.get_text() for t in imp_fig.axes[1].xaxis.get_ticklabels() if t.get_text()]
    assert all(lab.lstrip("−-").isdigit() for lab in ckpt_labels)  # whole checkpoints only


def test_a_failed_figure_leaves_no_partial_file_and_no_report(full_run, tmp_path, monkeypatch):
    import matplotlib.figure

    real = matplotlib.figure.Figure.savefig

    def full_disk(fig, fname, **kwargs):
        if "importance" in str(getattr(fname, "name", fname)):
            with open(fname, "wb") as fh:
                fh.write(b"\x89PNG partial")
            raise OSError(28, "No space left on device")
        return real(fig, fname, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    with pytest.raises(OSError):
        write_report(full_run.res, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert "identify_importance.png" not in names and "report.html" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    assert "identify_main_table.png" in names  # the figures drawn before the failure are whole


# --------------------------------------------------------------------------------------------------------------
# the command


def test_classify_prints_its_plan_and_an_estimate_before_fitting(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import learnscope.identify.classify as classify
    from learnscope.cli import app

    _write_store(make_frames({"clean": {"stats": "weight"}}, nets_per_rule=4), tmp_path / "store")
    monkeypatch.chdir(tmp_path)
    args = ["identify", "classify", "store", "--out", "run", "--classifiers", "svm", "--grid", "none",
            "--n-splits", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    lines = result.stdout.splitlines()
    plan = next(i for i, ln in enumerate(lines) if ln.startswith("plan:"))
    assert lines[plan].startswith(f"plan: {metrics['timing']['n_fits']} model fits (2 network-grouped outer splits")
    assert any(ln.strip().startswith("estimated time: about") for ln in lines[plan:plan + 4])
    assert "classifiers: svm (main table" in result.stdout
    assert plan < next(i for i, ln in enumerate(lines) if "accuracy" in ln and ln.startswith("svm"))
    assert lines[-1] == "report: run/report.html"
    import tomllib

    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())["classify"]
    assert config == {"store": "store", **metrics["settings"]}

    # the plan and the estimate are printed before the first fit: interrupting the fits leaves them on screen
    def interrupted(self, progress=True):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify.ClassifyPlan, "run", interrupted)
    result = CliRunner().invoke(app, [*args[:4], "run2", *args[5:]])
    assert result.exit_code == 130 and "estimated time: about" in result.stdout
    assert not (tmp_path / "run2").exists()


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
        run_all(frames, classifiers=(), progress=False)
    no_clean = make_frames({"noisy": {"stats": "weight"}}, condition_table=[{"name": "noisy", "sigma": 0.1}])
    with pytest.raises(LearnscopeError, match="no clean condition"):
        main_table(no_clean, ("svm",), **FAST)


def test_the_analyses_import_nothing_from_the_report_layer():
    import subprocess
    import sys

    code = ("import sys, learnscope.identify.classify, learnscope.identify.analyses; "
            "print(sorted(m for m in sys.modules if m.startswith('learnscope.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
