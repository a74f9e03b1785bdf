"""The analyses of issue 14 item 5 (identify/analyses.py) on hand-built frames whose answer is known by construction:
per-objective tables and held-out objective, held-out hyperparameters, the recorded-unit count curve and the
performance-matched control.

As in test_analyses.py, a statistic "carries the rule" when each of 4 rules shifts a rule-specific subset of it by
3 noise standard deviations (linearly separable); everything else is i.i.d. N(0, 1) and independent of the rule, so
a classifier on it can only reach chance (0.25 with 4 rules, up to sampling error).
"""

from __future__ import annotations

import itertools
import math
import re
import zlib

import numpy as np
import pandas as pd
import pytest

from learnscope.errors import ConfigError
from learnscope.identify import tables
from learnscope.identify.analyses import (
    heldout,
    heldout_hyperparameters,
    hyperparameter_sides,
    matched_positions,
    objective_tables,
    performance_matched,
    unit_count_curve,
    units_within,
)
from learnscope.identify.classify import plan_all
from learnscope.identify.frames import Frames, network_objectives, unit_conditions
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.protocol import get_splits

RULES = ["adam", "fa", "ia", "sgdm"]
ADMISSIBLE = list(OBS_CLASSES["all"])
SHIFT = 3.0
FAST = {"grid": "none", "n_splits": 3, "seed": 0}


def pattern(rule: str, stats: str = "all", scale: float = 1.0) -> np.ndarray:
    """``SHIFT · scale`` on the statistics of class ``stats`` whose position in that class is ≡ rule (mod 4)."""
    informative = [n for n in ADMISSIBLE if n in OBS_CLASSES[stats]]
    r = RULES.index(rule)
    return np.array([SHIFT * scale if n in informative and informative.index(n) % 4 == r else 0.0
                     for n in ADMISSIBLE])


def networks(tasks=("digits",), batch_sizes=(32,), seeds=range(4), rules=RULES, lr_spread: bool = False,
             seed: int = 0) -> list[dict]:
    """One dict per network of the product; ``lr_multiplier`` log-uniform in [1/2, 2] when ``lr_spread``."""
    rng = np.random.default_rng(seed)
    out = []
    for task, rule, bs, s in itertools.product(tasks, rules, batch_sizes, seeds):
        mult = float(2 ** rng.uniform(-1, 1)) if lr_spread else 1.0
        out.append({"network_id": f"{task}-{rule}-{bs}-{s}", "rule": rule, "task": task, "batch_size": bs,
                    "seed": s, "lr_multiplier": mult, "lr": 0.01 * mult})
    return out


def build(nets: list[dict], signal, T: int = 4, n_layers: int = 2, conditions=("clean",),
          condition_table: list[dict] | None = None, curve=None, seed: int = 0) -> Frames:
    """Frames of ``nets``: every statistic of layer × condition × checkpoint is N(0, 1) plus
    ``signal(net, condition)`` (shape (24,) or (T, 24)); ``curve(net)`` gives the performance curve (T,) (default:
    a flat 0.5)."""
    rng = np.random.default_rng(seed)
    groups = ["early", "deep"][:n_layers] if n_layers <= 2 else ["early", "middle", "deep"]
    obs_rows, net_rows = [], []
    for net in nets:
        perf = np.full(T, 0.5) if curve is None else np.asarray(curve(net), dtype=float)
        net_rows.append({**net, "architecture": "mlp_a", "status": "ok", "loss_curve": list(1 - perf),
                         "train_accuracy_curve": list(perf), "test_accuracy_curve": list(perf),
                         "performance_curve": list(perf), "performance_measure": "accuracy",
                         "chance_performance": 0.1})
        for li, group in enumerate(groups):
            for cond in conditions:
                values = rng.normal(size=(T, len(ADMISSIBLE))) + np.asarray(signal(net, cond), dtype=float)
                for c in range(T):
                    row = {"network_id": net["network_id"], "task": net["task"], "architecture": "mlp_a",
                           "rule": net["rule"], "batch_size": net["batch_size"], "seed": net["seed"],
                           "layer": f"fc{li}", "group": group, "lr": net["lr"], "layer_index": li,
                           "condition": cond, "checkpoint": c}
                    row.update(dict(zip(ADMISSIBLE, values[c], strict=True)))
                    obs_rows.append(row)
    table = condition_table if condition_table is not None else [{"name": n} for n in conditions]
    return Frames(pd.DataFrame(obs_rows), pd.DataFrame(net_rows), conditions=table)


# --------------------------------------------------------------------------------------------------------------
# objectives: per-objective tables, held-out objective and held-out task (the dataset part)


OBJ_TASKS = ("digits", "digits:contrastive", "digits:autoencoding", "mnist1d", "mnist1d:contrastive",
             "mnist1d:autoencoding")


@pytest.fixture(scope="module")
def objective_frames() -> Frames:
    # classification and autoencoding carry the same rule pattern; contrastive carries nothing
    nets = networks(tasks=OBJ_TASKS, seeds=range(3))
    return build(nets, lambda net, c: 0.0 if "contrastive" in net["task"] else pattern(net["rule"]))


def test_objectives_are_read_from_the_column_or_derived_from_the_task(objective_frames):
    derived = network_objectives(objective_frames)
    assert {derived[f"{t}-adam-32-0"] for t in ("digits", "mnist1d")} == {"classification"}
    assert derived["digits:contrastive-adam-32-0"] == "contrastive"
    assert derived["mnist1d:autoencoding-fa-32-1"] == "autoencoding"
    nets = objective_frames.networks.assign(objective="regression")  # the store's column wins where it exists
    with_column = Frames(objective_frames.observations, nets, conditions=objective_frames.conditions)
    assert set(network_objectives(with_column).values()) == {"regression"}


def test_per_objective_tables_show_where_the_signal_is(objective_frames):
    res = objective_tables(objective_frames, ("svm",), **FAST)
    assert res["objectives"] == ["autoencoding", "classification", "contrastive"]
    assert res["networks_per_objective"] == dict.fromkeys(res["objectives"], 24)
    acc = {(s["objective"], s["obs_class"]): s["accuracy_mean"] for s in res["summary"]}
    assert acc[("classification", "all")] >= 0.9 and acc[("autoencoding", "all")] >= 0.9
    assert acc[("contrastive", "all")] <= 0.5  # nothing to find there
    # the pooled table is the ordinary main table: two thirds of its networks carry the pattern
    assert 0.5 <= acc[("pooled", "all")] < acc[("classification", "all")]
    table = res["per_objective"]["classification"]
    # 6 networks per rule: round(0.25 · 6) = 2 test networks of each rule, 2 layers, 3 splits: 16 rows per split
    assert all(n == 16 for n in next(c for c in table["cells"] if c["obs_class"] == "all")["n_test"])


def test_a_single_objective_skips_the_per_objective_tables():
    frames = build(networks(seeds=range(3)), lambda net, c: pattern(net["rule"]))
    assert "one objective" in objective_tables(frames, ("svm",), **FAST)["skipped"]


def test_heldout_objective_is_chance_where_the_rule_is_not_carried(objective_frames):
    res = heldout(objective_frames, ("svm",), **FAST)
    part = res["objective"]
    assert part["available"] and part["split_mode"] == "heldout-objective"
    values = {v["held_out"]: v for v in part["per_classifier"][0]["values"]}
    assert list(values) == ["autoencoding", "classification", "contrastive"]
    # trained with the other carrier among the training objectives: found; held-out contrastive: nothing to find
    assert values["classification"]["accuracy"] >= 0.9 and values["autoencoding"]["accuracy"] >= 0.9
    assert values["contrastive"]["accuracy"] <= 0.5
    assert all(v["n_test"] == 24 * 2 for v in values.values())  # every layer of the objective's 24 networks
    # with objectives in the task names, held-out task holds out the dataset part, not the whole entry
    task = res["task"]["per_classifier"][0]
    assert [v["held_out"] for v in task["values"]] == ["digits", "mnist1d"]
    assert [v["n_test"] for v in task["values"]] == [36 * 2, 36 * 2]


# --------------------------------------------------------------------------------------------------------------
# held-out hyperparameters


def test_hyperparameter_sides_follow_the_definition():
    rules = np.array(["a"] * 9 + ["b"] * 9)
    lr = np.concatenate([np.arange(1.0, 10.0), 10 * np.arange(1.0, 10.0)])  # rule b's lrs are 10× rule a's
    sides = hyperparameter_sides(lr, rules, "lr")
    # numpy's linear terciles of 1..9 are 3.67 and 6.33: per rule 1-3 low, 4-6 middle, 7-9 high
    np.testing.assert_array_equal(sides[:9], ["low"] * 3 + ["middle"] * 3 + ["high"] * 3)
    np.testing.assert_array_equal(sides[9:], sides[:9])
    bs = np.array([16, 32, 64, 128] * 2)
    np.testing.assert_array_equal(hyperparameter_sides(bs, np.array(["a"] * 4 + ["b"] * 4), "batch_size"),
                                  ["low", "middle", "middle", "high"] * 2)
    with pytest.raises(ConfigError, match="at least 3 batch sizes"):
        hyperparameter_sides(np.array([16, 32] * 3), np.array(["a", "b"] * 3), "batch_size")
    with pytest.raises(ConfigError, match="rule 'a' has no network on the low side of the lr range: learning rates"):
        hyperparameter_sides(np.ones(6), np.array(["a", "b"] * 3), "lr")


BATCHES = (16, 32, 64, 128)


def test_heldout_hyperparameters_generalise_when_the_signal_ignores_them():
    frames = build(networks(batch_sizes=BATCHES, seeds=range(3), lr_spread=True), lambda net, c: pattern(net["rule"]))
    res = heldout_hyperparameters(frames, ("svm",), **FAST)
    bs, lr = res["batch_size"], res["lr"]
    assert bs["middle_range"] == [32.0, 64.0] and bs["n_train_networks"] == 4 * 2 * 3
    ends = {e["end"]: e for e in bs["per_classifier"][0]["ends"]}
    assert ends["low"]["range"] == [16.0, 16.0] and ends["high"]["range"] == [128.0, 128.0]
    assert ends["low"]["n_test_networks"] == 12 and ends["low"]["n_test"] == 12 * 2
    for part in (bs, lr):
        pc = part["per_classifier"][0]
        assert all(e["accuracy"] >= 0.9 for e in pc["ends"])
        n = [e["n_test"] for e in pc["ends"]]
        pooled = sum(e["accuracy"] * k for e, k in zip(pc["ends"], n, strict=True)) / sum(n)
        assert pc["accuracy"] == pytest.approx(pooled)
    # per-rule terciles: 12 networks of each rule, 4 of them on each side
    assert lr["n_train_networks"] == 16 and [e["n_test_networks"] for e in lr["per_classifier"][0]["ends"]] == [16, 16]
    mean = res["mean"][0]
    assert mean["parts"] == ["batch_size", "lr"]
    assert mean["accuracy"] == pytest.approx((bs["per_classifier"][0]["accuracy"] + lr["per_classifier"][0]["accuracy"])
                                             / 2)


def test_heldout_batch_sizes_fail_when_only_the_middle_carries_the_rule():
    frames = build(networks(batch_sizes=BATCHES, seeds=range(3), lr_spread=True),
                   lambda net, c: pattern(net["rule"]) * (net["batch_size"] in (32, 64)))
    res = heldout_hyperparameters(frames, ("svm",), **FAST)
    pc = res["batch_size"]["per_classifier"][0]
    assert pc["accuracy"] <= 0.5  # trained where the pattern is, tested where it is not
    assert all(e["reverse_accuracy"] <= 0.5 for e in pc["ends"])  # trained on nothing
    assert pc["network_split_accuracy"] >= 0.6  # half the networks carry it when splits are random


def test_hyperparameter_views_are_network_grouped():
    frames = build(networks(batch_sizes=BATCHES, seeds=range(3), lr_spread=True), lambda net, c: pattern(net["rule"]))
    heldout_hyperparameters(frames, ("svm",), **FAST)
    ds = frames.dataset("clean", "all@hp=batch_size:low")
    assert set(ds.meta["batch_size"]) == {16, 32, 64}  # the middle and this end only
    assert ds.meta.groupby("network_id")["task"].nunique().max() == 1  # one side per network
    assert set(ds.meta.loc[ds.meta["batch_size"] == 16, "task"]) == {"end"}


def test_hyperparameters_without_spread_are_unavailable_with_the_reason():
    frames = build(networks(seeds=range(3)), lambda net, c: pattern(net["rule"]))
    res = heldout_hyperparameters(frames, ("svm",), **FAST)
    assert res["batch_size"]["available"] is False and "at least 3 batch sizes" in res["batch_size"]["reason"]
    assert res["lr"]["available"] is False and "learning rates do not vary" in res["lr"]["reason"]
    assert res["mean"] == [{"classifier": "svm", "parts": [], "accuracy": None}]


# --------------------------------------------------------------------------------------------------------------
# recorded-unit count curve


UNIT_TABLE = [
    {"name": "clean"},
    {"name": "units_10", "units": 10},
    {"name": "units_20_act", "units": 20, "observables": "act"},
    {"name": "units_30", "units": 30},
    {"name": "units_100", "units": 100},
    {"name": "units_300", "units": 300},
    {"name": "units_50_noisy", "units": 50, "sigma": 0.1},  # another axis: not on the curve
]
# the rule's shift grows with the count: activations carry all of it from 30 units on, weights from 100 on, and
# a small part below (a shift of 0.12 · 3 σ on 6 statistics × 4 checkpoints: well above chance, well below 1)
ACT_FROM, WEIGHT_FROM = 30, 100
ACT_SCALE = {10: 0.05, 20: 0.12}
WEIGHT_SCALE = {10: 0.0, 30: 0.1}
UNITS = {"clean": 10 ** 6, "units_10": 10, "units_20_act": 20, "units_30": 30, "units_100": 100, "units_300": 300,
         "units_50_noisy": 50}


def _unit_signal(net: dict, cond: str) -> np.ndarray:
    n = UNITS[cond]
    act = 1.0 if n >= ACT_FROM else ACT_SCALE.get(n, 0.0)
    weight = 1.0 if n >= WEIGHT_FROM else WEIGHT_SCALE.get(n, 0.0)
    return pattern(net["rule"], "act", act) + pattern(net["rule"], "weight", weight)


@pytest.fixture(scope="module")
def unit_frames() -> Frames:
    return build(networks(seeds=range(6)), _unit_signal, conditions=[c["name"] for c in UNIT_TABLE],
                 condition_table=UNIT_TABLE)


def test_unit_conditions_are_those_with_a_count_and_no_other_change(unit_frames):
    assert [c["name"] for c in unit_conditions(unit_frames)] == ["units_10", "units_20_act", "units_30",
                                                                 "units_100", "units_300"]


def test_unit_count_curve_rises_with_the_signal_and_finds_the_threshold(unit_frames):
    res = unit_count_curve(unit_frames, ("svm",), **FAST)
    assert res["units"] == [10, 20, 30, 100, 300]
    curve = {o: [(p["units"], p["accuracy_mean"]) for p in res["points"] if p["obs_class"] == o]
             for o in ("act", "weight")}
    assert [n for n, _ in curve["act"]] == [10, 20, 30, 100, 300]
    assert [n for n, _ in curve["weight"]] == [10, 30, 100, 300]  # units_20_act records no weights
    for o in ("act", "weight"):
        accs = [a for _, a in curve[o]]
        # non-decreasing up to sampling error (one accuracy is a mean over 3 × 32 test rows: s.e. about 0.05)
        assert all(b >= a - 0.1 for a, b in zip(accs[:-1], accs[1:], strict=True)), accs
        assert accs[0] <= 0.5 and accs[-1] >= 0.9
    full = {f["obs_class"]: f["accuracy_mean"] for f in res["full"]}
    reach = {r["obs_class"]: r for r in res["reach"]}
    for o, expected in (("act", ACT_FROM), ("weight", WEIGHT_FROM)):
        # the definition, recomputed: the smallest count whose accuracy is within 0.05 of the full layer's
        first = min(n for n, a in curve[o] if a >= full[o] - 0.05)
        assert reach[o]["units_within_margin"] == first == expected
        assert reach[o]["full_accuracy"] == full[o]
    p = next(p for p in res["points"] if p["units"] == 10 and p["obs_class"] == "act")
    assert p["drop_from_full"] == pytest.approx(full["act"] - p["accuracy_mean"])


def test_units_within():
    assert units_within([(10, 0.5), (30, 0.86), (100, 0.9)], 0.9) == 30
    assert units_within([(10, 0.5), (30, 0.8)], 0.9) is None
    assert units_within([(10, 0.5)], math.nan) is None


def test_a_store_without_unit_counts_skips_the_curve():
    frames = build(networks(seeds=range(3)), lambda net, c: pattern(net["rule"]))
    assert "no unit-count conditions" in unit_count_curve(frames, ("svm",), **FAST)["skipped"]


# --------------------------------------------------------------------------------------------------------------
# performance-matched control


def test_matched_positions_of_linear_curves():
    # rule a: p(t) = t/10, rule b: p(t) = t/20 on checkpoints 0..20: both start at 0; b's best is 1.0, a's 2.0
    t = np.arange(21.0)
    curves = np.stack([t / 10, t / 10, t / 20, t / 20])
    pos = matched_positions(curves, np.array(["a", "a", "b", "b"]), n_levels=4, coverage=0.8)
    np.testing.assert_allclose(pos["levels"], [0.25, 0.5, 0.75, 1.0])
    assert pos["keep"].all()
    # a first reaches level l at t = 10 l, b at t = 20 l (linear interpolation between checkpoints is exact)
    np.testing.assert_allclose(pos["positions"][0], [2.5, 5.0, 7.5, 10.0])
    np.testing.assert_allclose(pos["positions"][2], [5.0, 10.0, 15.0, 20.0])
    flat = matched_positions(np.ones((4, 5)), np.array(["a", "a", "b", "b"]))
    assert "share no range" in flat["reason"]


SPEEDS = {"adam": 0.05, "fa": 0.1, "ia": 0.2, "sgdm": 0.4}  # per checkpoint
T_MATCH = 30


def _speed(net: dict) -> float:
    jitter = np.random.default_rng(zlib.crc32(net["network_id"].encode())).uniform(0.9, 1.1)
    return SPEEDS[net["rule"]] * jitter


def _perf(net: dict) -> np.ndarray:
    return 1 - np.exp(-_speed(net) * np.arange(T_MATCH))


@pytest.fixture(scope="module")
def speed_frames() -> Frames:
    # every statistic is the network's performance curve plus noise: it encodes how far learning has got, which
    # at a fixed time names the rule (they learn at 4 different speeds) and at a fixed performance names nothing
    return build(networks(seeds=range(10)), lambda net, c: _perf(net)[:, None] * np.ones(len(ADMISSIBLE)) * 10,
                 T=T_MATCH, curve=_perf)


def test_performance_matching_removes_a_learning_speed_signal(speed_frames):
    # the classes lie along one line (speed), which one-vs-rest linear models cannot cut in four: a forest
    res = performance_matched(speed_frames, ("rf",), **FAST)
    comp = res["comparison"][0]
    assert res["chance"] == 0.25 and res["curve_source"] == "performance_curve"
    assert comp["unmatched"]["accuracy_mean"] >= 0.9
    assert comp["matched"]["accuracy_mean"] <= 0.45
    assert comp["difference"] == pytest.approx(comp["matched"]["accuracy_mean"] - comp["unmatched"]["accuracy_mean"])
    obj = res["objectives"][0]
    assert obj["objective"] == "classification" and obj["available"] and len(obj["levels"]) == 4
    assert obj["n_kept"] == res["n_networks"] >= 0.8 * 40
    # same networks and same splits on both sides (network-grouped)
    matched = speed_frames.dataset("clean", "all@matched:levels=4,coverage=0.8")
    fixed = speed_frames.dataset("clean", "all@unmatched:levels=4,coverage=0.8")
    assert matched.X.shape == fixed.X.shape and matched.n_checkpoints == 4
    assert matched.meta.equals(fixed.meta)
    for split in get_splits(matched.meta, n_splits=3, seed=0):
        train = set(matched.meta["network_id"].iloc[split.train])
        assert not train & set(matched.meta["network_id"].iloc[split.test])


def test_performance_matching_keeps_a_signal_that_is_not_speed():
    frames = build(networks(seeds=range(10)), lambda net, c: pattern(net["rule"]), T=T_MATCH, curve=_perf)
    comp = performance_matched(frames, ("svm",), **FAST)["comparison"][0]
    assert comp["matched"]["accuracy_mean"] >= 0.9 and comp["unmatched"]["accuracy_mean"] >= 0.9


def test_old_stores_match_on_the_test_accuracy_curve_and_no_curve_skips(speed_frames):
    old = speed_frames.networks.drop(columns=["performance_curve", "performance_measure", "chance_performance"])
    frames = Frames(speed_frames.observations, old, conditions=speed_frames.conditions)
    res = performance_matched(frames, ("rf",), **FAST)
    assert res["curve_source"] == "test_accuracy_curve" and res["objectives"][0]["measure"] == "accuracy"
    assert res["comparison"][0]["matched"]["accuracy_mean"] <= 0.45
    none = old.assign(test_accuracy_curve=[[math.nan] * T_MATCH] * len(old))
    frames = Frames(speed_frames.observations, none, conditions=speed_frames.conditions)
    assert "finite test performance curve" in performance_matched(frames, ("svm",), **FAST)["skipped"]


# --------------------------------------------------------------------------------------------------------------
# everything at once


def test_run_all_runs_the_new_analyses_when_the_store_supports_them(tmp_path):
    from test_analyses import conform  # the declared-table checker

    table = UNIT_TABLE[:3]
    tasks = ("digits", "digits:contrastive")
    nets = networks(tasks=tasks, batch_sizes=(16, 32, 64), seeds=range(2), lr_spread=True)
    frames = build(nets, lambda net, c: _unit_signal(net, c) + 0.3 * _perf(net)[:6, None], T=6,
                   conditions=[c["name"] for c in table], condition_table=table, curve=lambda n: _perf(n)[:6])
    plan = plan_all(frames, classifiers=("svm",), n_repeats=1, ks=(2,), ms=(), **FAST)
    # 3 splits per job; fits shared with an earlier analysis count there (svm is also the curve classifier):
    # per objective 4 classes + 1 row split; held-out objective 2 values (one dataset, one architecture);
    # 2 hyperparameters × 2 ends × 2 held-out values; units_10 act + weight, units_20_act act; matched + unmatched
    fits = plan.fits_per_analysis
    assert fits["objective_tables"] == 2 * 5 * 3 and fits["heldout"] == 2
    assert fits["heldout_hyperparameters"] == 2 * 2 * 2 and fits["unit_count_curve"] == 3 * 3
    assert fits["performance_matched"] == 2 * 3
    res = plan.run(progress=False)
    assert res["timing"]["n_fits"] == plan.n_fits == sum(fits.values())
    conform(res, tables.ClassifyResults)
    for key in ("objective_tables", "unit_count_curve", "heldout_hyperparameters", "performance_matched"):
        assert "skipped" not in res[key], key
    assert res["dataset"]["objectives"] == ["classification", "contrastive"]
    assert res["heldout"]["objective"]["available"]
    assert "heldout.task" in res["skipped"]  # one dataset: digits
    from learnscope.report.identify_report import write_report

    html = write_report(res, tmp_path).read_text()
    for title in ("Per-objective main tables", "Held-out hyperparameters", "Recorded-unit count",
                  "Performance-matched control"):
        assert f"<h2>{title}</h2>" in html
    assert (tmp_path / "identify_unit_count.png").exists()
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html)
    assert not [c for c in cells if c.strip() in ("None", "nan", "NaN", "")]
    reach = next(r for r in res["unit_count_curve"]["reach"] if r["obs_class"] == "act")
    said = f"from {reach['units_within_margin']} recorded units on" if reach["units_within_margin"] else "at none"
    assert f"Activations (svm) come within 0.05 of their full-layer accuracy ({reach['full_accuracy']:.3f}) {said}" \
        in html


def test_an_objective_a_rule_did_not_learn_is_reported_not_dropped():
    # sgdm has no status-ok network of the contrastive objective (all diverged, say)
    nets = [n for n in networks(tasks=("digits", "digits:contrastive"), seeds=range(3))
            if not (n["rule"] == "sgdm" and "contrastive" in n["task"])]
    frames = build(nets, lambda net, c: pattern(net["rule"]))
    res = objective_tables(frames, ("svm",), **FAST)
    assert res["per_objective"]["classification"]["labels"] == RULES
    # three rules remain on contrastive: its own table, with chance 1/3
    assert res["per_objective"]["contrastive"]["labels"] == ["adam", "fa", "ia"]
    assert res["per_objective"]["contrastive"]["chance"] == pytest.approx(1 / 3)
    one_rule = [n for n in nets if "contrastive" not in n["task"] or n["rule"] == "adam"]
    res = objective_tables(build(one_rule, lambda net, c: pattern(net["rule"])), ("svm",), **FAST)
    assert res["per_objective"]["contrastive"] == {
        "available": False, "reason": "only rule 'adam' has status-ok networks of objective 'contrastive'"}
    from learnscope.identify.classify import unavailable_parts

    assert unavailable_parts("objective_tables", res) == {
        "objective_tables.per_objective.contrastive": res["per_objective"]["contrastive"]["reason"]}
