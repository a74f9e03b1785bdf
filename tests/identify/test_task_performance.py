"""Task performance per (objective, rule) and the verdict where a rule does not learn (issue 14 item 1)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from learnscope.identify.task_performance import LEARN_MARGIN, not_learned, task_performance


def _net(nid, objective, rule, curve, *, status="ok", measure="accuracy", chance=0.1, task=None):
    return {"network_id": nid, "objective": objective, "rule": rule, "status": status,
            "task": task or ("digits" if objective == "classification" else f"digits:{objective}"),
            "performance_curve": None if curve is None else list(curve), "performance_measure": measure,
            "chance_performance": chance}


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_medians_are_over_ok_networks_and_the_improvement_is_paired():
    rng = np.random.default_rng(0)
    curves = rng.uniform(0, 1, size=(5, 4))
    rows = [_net(f"n{i}", "classification", "sgdm", c) for i, c in enumerate(curves)]
    rows.append(_net("bad", "classification", "sgdm", [0.0, 9.0], status="diverged"))
    rows.append(_net("err", "classification", "sgdm", None, status="failed"))
    (r,) = task_performance(_table(rows))
    assert r["initial"] == np.median(curves[:, 0]) and r["final"] == np.median(curves[:, -1])
    # paired: the median of differences, not the difference of medians
    assert r["improvement"] == np.median(curves[:, -1] - curves[:, 0])
    assert (r["n_ok"], r["n_diverged"], r["n_failed"]) == (5, 1, 1)
    assert (r["objective"], r["rule"], r["measure"], r["chance"]) == ("classification", "sgdm", "accuracy", 0.1)


def test_a_rule_learns_only_when_it_improves_and_ends_above_chance_by_the_margin():
    m = LEARN_MARGIN
    rows = [
        _net("a", "classification", "sgdm", [0.1, 0.9]),                                  # learns
        _net("b", "classification", "fa", [0.1, 0.1 + m / 2]),                            # improves too little
        _net("c", "contrastive", "fa", [0.12, 0.109], measure="view retrieval", chance=1 / 793),  # gets worse
        _net("d", "contrastive", "sgdm", [0.12, 0.25], measure="view retrieval", chance=1 / 793),
        _net("e", "regression", "ia", [-0.5, -0.5 + 3 * m], measure="r2", chance=0.0),    # improves, below chance
        _net("f", "regression", "adam", [0.0, 0.8], measure="r2", chance=float("nan")),   # no chance: improvement
    ]
    verdicts = {(r["objective"], r["rule"]): r["learns"] for r in task_performance(_table(rows))}
    assert verdicts == {("classification", "sgdm"): True, ("classification", "fa"): False,
                        ("contrastive", "fa"): False, ("contrastive", "sgdm"): True,
                        ("regression", "ia"): False, ("regression", "adam"): True}
    sentences = not_learned(task_performance(_table(rows)))
    assert len(sentences) == 3
    assert any("rule fa does not learn the contrastive objective" in s and "0.120" in s and "0.109" in s
               for s in sentences), sentences


def test_a_group_without_an_ok_network_has_no_verdict_and_an_old_store_gets_objectives_from_tasks():
    rows = [_net("a", None, "sgdm", [0.1, 0.2], status="diverged", task="digits"),
            _net("b", None, "adam", [0.1, 0.9], task="teacher_regression", measure="r2", chance=0.0)]
    old = _table(rows).drop(columns=["objective"])
    out = {(r["objective"], r["rule"]): r for r in task_performance(old)}
    assert set(out) == {("classification", "sgdm"), ("regression", "adam")}
    assert out[("classification", "sgdm")]["learns"] is None
    assert math.isnan(out[("classification", "sgdm")]["final"])
    assert out[("regression", "adam")]["learns"] is True
    assert not_learned(list(out.values())) == []


def test_grouping_by_architecture_names_it_in_the_sentence():
    rows = [_net("a", "classification", "sgdm", [0.1, 0.1]) | {"architecture": "cnn"},
            _net("b", "classification", "sgdm", [0.1, 0.9]) | {"architecture": "mlp_3x64"}]
    out = task_performance(_table(rows), by=("objective", "rule", "architecture"))
    assert [(r["architecture"], r["learns"]) for r in out] == [("cnn", False), ("mlp_3x64", True)]
    assert "(architecture cnn)" in not_learned(out)[0]


def test_a_table_without_performance_curves_gives_no_rows():
    assert task_performance(pd.DataFrame({"network_id": ["a"], "rule": ["sgdm"], "status": ["ok"]})) == []
