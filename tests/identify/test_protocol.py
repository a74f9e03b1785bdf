"""Evaluation protocol: the original row-level splits against an independent re-implementation of spec §5.2,
network-grouped and held-out splits, the grouped inner CV, and evaluate()'s scores and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.dataset import TrajectoryDataset
from learnscope.identify.protocol import evaluate, get_splits, inner_cv, original_splits, sem

RULES = ["adam", "fa", "ia", "sgdm"]
STATS = ["weightraw_median", "actraw_norm", "gradavgraw_id", "weightabs_mean"]


def reference_splits(labels, num_splits, n_test, n_train, seed, train_pool=None, test_pool=None):
    """Spec §5.2 read literally, written independently of the source: one RandomState(seed) for all splits; per
    split, for each label in sorted order take the first ``n_test`` entries of a permutation of that label's test
    pool; then the same for training from the train pool without the chosen test rows."""
    rs = np.random.RandomState(seed)
    n = len(labels)
    train_pool = list(range(n)) if train_pool is None else list(train_pool)
    test_pool = list(range(n)) if test_pool is None else list(test_pool)
    out = []
    for _ in range(num_splits):
        test = []
        for c in sorted({labels[i] for i in test_pool}):
            members = [i for i in test_pool if labels[i] == c]
            order = rs.permutation(len(members))
            test += [members[o] for o in order[:n_test]]
        chosen = set(test)
        train = []
        for c in sorted({labels[i] for i in train_pool}):
            members = [i for i in train_pool if labels[i] == c and i not in chosen]
            order = rs.permutation(len(members))
            train += [members[o] for o in order[:n_train]]
        out.append((sorted(train), sorted(test)))
    return out


def make_meta(layers_per_rule=(3, 2, 4, 3), nets_per_rule=(5, 6, 4, 7)):
    rows = []
    for r, (n_layers, n_nets) in enumerate(zip(layers_per_rule, nets_per_rule, strict=True)):
        for k in range(n_nets):
            for li in range(n_layers):
                rows.append({"network_id": f"{RULES[r]}-{k}", "rule": RULES[r], "architecture": f"arch{k % 3}",
                             "task": ["digits", "teacher"][k % 2], "layer_index": li})
    # interleave the rules so that row order carries no label information
    meta = pd.DataFrame(rows)
    return meta.iloc[np.random.default_rng(0).permutation(len(meta))].reset_index(drop=True)


def test_row_mode_reproduces_the_original_index_sets():
    meta = make_meta()
    labels = meta["rule"].to_numpy()
    counts = pd.Series(labels).value_counts()
    n_min = int(counts.min())  # rows per rule: adam 15, fa 12, ia 16, sgdm 21 -> 3 test and 9 train per rule
    n_test = int(np.floor(0.25 * n_min + 0.5))
    splits = get_splits(meta, n_splits=10, test_size=0.25, seed=0, mode="row")
    ref = reference_splits(list(labels), 10, n_test, n_min - n_test, seed=0)
    assert len(splits) == 10 and n_min == 12 and n_test == 3
    for s, (tr, te) in zip(splits, ref, strict=True):
        np.testing.assert_array_equal(s.train, tr)
        np.testing.assert_array_equal(s.test, te)
        assert not set(s.train) & set(s.test)
        assert (pd.Series(labels[s.test]).value_counts() == n_test).all()  # category-balanced
        assert (pd.Series(labels[s.train]).value_counts() == n_min - n_test).all()
    # a different seed gives different splits
    other = get_splits(meta, n_splits=1, seed=1, mode="row")[0]
    assert not np.array_equal(other.test, splits[0].test)


def test_original_splits_with_filters_matches_the_reference():
    labels = np.array(list("abcabcabcabcabcaab"))
    train_mask = np.arange(len(labels)) % 4 != 0
    test_mask = np.arange(len(labels)) % 2 == 0
    got = original_splits(labels, 3, 1, 2, train_mask=train_mask, test_mask=test_mask, seed=5)
    ref = reference_splits(list(labels), 3, 1, 2, seed=5, train_pool=np.flatnonzero(train_mask),
                           test_pool=np.flatnonzero(test_mask))
    for g, (tr, te) in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g["train"], tr)
        np.testing.assert_array_equal(g["test"], te)
    with pytest.raises(ConfigError, match="only"):
        original_splits(labels, 1, 10, 1)


def test_network_mode_keeps_networks_whole_and_balances_rules():
    meta = make_meta()
    nets = meta["network_id"].to_numpy()
    rules = meta["rule"].to_numpy()
    # 4 networks in the smallest rule: floor(0.25 * 4 + 0.5) = 1 test and 3 train networks per rule
    splits = get_splits(meta, n_splits=10, test_size=0.25, seed=0, mode="network")
    seen_test = set()
    for s in splits:
        tr_nets, te_nets = set(nets[s.train]), set(nets[s.test])
        assert not tr_nets & te_nets
        for side, net_set in ((s.train, tr_nets), (s.test, te_nets)):
            np.testing.assert_array_equal(np.sort(side), np.flatnonzero(np.isin(nets, list(net_set))))  # whole
        te_rules = pd.Series([n.split("-")[0] for n in te_nets]).value_counts()
        tr_rules = pd.Series([n.split("-")[0] for n in tr_nets]).value_counts()
        assert sorted(te_rules.index) == RULES and (te_rules == 1).all()
        assert sorted(tr_rules.index) == RULES and (tr_rules == 3).all()
        assert set(rules[s.test]) == set(RULES)
        seen_test |= te_nets
    assert len(seen_test) > 8  # the test networks change from split to split
    again = get_splits(meta, n_splits=10, test_size=0.25, seed=0, mode="network")
    for a, b in zip(splits, again, strict=True):
        np.testing.assert_array_equal(a.train, b.train)
        np.testing.assert_array_equal(a.test, b.test)


@pytest.mark.parametrize("mode,column", [("heldout-arch", "architecture"), ("heldout-task", "task")])
def test_heldout_modes_hold_out_one_value_each(mode, column):
    meta = make_meta()
    values = meta[column].to_numpy()
    splits = get_splits(meta, mode=mode)
    assert [s.held_out for s in splits] == sorted(set(values))
    for s in splits:
        np.testing.assert_array_equal(s.test, np.flatnonzero(values == s.held_out))
        np.testing.assert_array_equal(s.train, np.flatnonzero(values != s.held_out))


def test_split_errors():
    meta = make_meta()
    with pytest.raises(UnknownNameError, match="did you mean 'heldout-task'"):
        get_splits(meta, mode="heldout_task")
    with pytest.raises(ConfigError):
        get_splits(meta.assign(architecture="one"), mode="heldout-arch")
    with pytest.raises(ConfigError):
        get_splits(meta, test_size=1.5)


def test_grouped_inner_cv_never_splits_a_network():
    meta = make_meta()
    y, groups = meta["rule"].to_numpy(), meta["network_id"].to_numpy()
    cv = inner_cv(y, groups, seed=3)
    assert cv.get_n_splits() == 4  # ia has 4 networks, fewer than 5
    folds = list(cv.split(np.zeros((len(y), 1)), y, groups))
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
    same = list(inner_cv(y, groups, seed=3).split(np.zeros((len(y), 1)), y, groups))
    other = list(inner_cv(y, groups, seed=4).split(np.zeros((len(y), 1)), y, groups))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, same, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def make_dataset(n_nets=6, T=6, signal=0.5, seed=0):
    """Rule r makes statistic STATS[r] grow by ``signal`` per checkpoint; two layers per network."""
    rng = np.random.default_rng(seed)
    rows, nets = [], []
    for r, rule in enumerate(RULES):
        for k in range(n_nets):
            nid = f"{rule}-{k}"
            nets.append({"network_id": nid, "status": "ok", "loss_curve": list(rng.normal(size=T)),
                         "train_accuracy_curve": list(rng.uniform(size=T)),
                         "test_accuracy_curve": list(rng.uniform(size=T))})
            for li, group in enumerate(("early", "deep")):
                level = rng.normal(0, 0.5, size=len(STATS))
                for c in range(T):
                    vals = level + rng.normal(0, 0.2, size=len(STATS))
                    vals[r] += signal * c
                    rows.append({"network_id": nid, "task": ["digits", "teacher"][k % 2],
                                 "architecture": f"arch{k % 3}", "rule": rule, "batch_size": 32, "seed": k,
                                 "layer": f"fc{li}", "group": group, "lr": 0.01, "layer_index": li,
                                 "condition": "clean", "checkpoint": c, **dict(zip(STATS, vals, strict=True))})
    return TrajectoryDataset.from_frames(pd.DataFrame(rows), pd.DataFrame(nets), obs_class=STATS)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset()


def test_evaluate_scores_and_determinism(dataset):
    calls = []
    a = evaluate(dataset, "rf", "network", grid="none", n_splits=3, seed=0,
                 progress=lambda i, n: calls.append((i, n)))
    b = evaluate(dataset, "rf", "network", grid="none", n_splits=3, seed=0)
    assert a == b
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert a["labels"] == RULES
    assert a["accuracy_mean"] >= 0.9  # the rules are separable
    cm = np.array(a["confusion_matrix"])
    # 6 networks per rule: floor(0.25·6 + 0.5) = 2 test networks per rule, 2 layers each, 3 splits
    assert cm.sum() == sum(a["n_test"]) == 3 * 4 * 2 * 2
    # equal test sizes: the pooled accuracy equals the mean of the per-split accuracies
    assert np.trace(cm) / cm.sum() == pytest.approx(a["accuracy_mean"])
    assert a["accuracy_mean"] == pytest.approx(np.mean(a["accuracy_per_split"]))
    assert a["accuracy_sem"] == pytest.approx(np.std(a["accuracy_per_split"], ddof=1) / np.sqrt(3))
    for k, rule in enumerate(RULES):
        assert a["per_class_recall"][rule] == pytest.approx(cm[k, k] / cm[k].sum())


def test_evaluate_grid_search_is_deterministic_and_picks_grid_points(dataset):
    a = evaluate(dataset, "svm", "row", grid="reduced", n_splits=2, seed=1)
    b = evaluate(dataset, "svm", "row", grid="reduced", n_splits=2, seed=1)
    assert a == b
    assert all(p["cls__C"] in (0.01, 0.1, 1.0) for p in a["chosen_params"])
    c = evaluate(dataset, "svm", "row", grid="reduced", n_splits=2, seed=1, inner="original")
    assert all(p["cls__C"] in (0.01, 0.1, 1.0) for p in c["chosen_params"])


def test_shuffled_rules_are_near_chance():
    ds = make_dataset()
    # relabel whole networks at random (a network keeps one label): the trajectories carry no label information
    rng = np.random.default_rng(7)
    net_ids = np.unique(ds.meta["network_id"])
    new_rule = dict(zip(net_ids, rng.permutation(np.repeat(RULES, len(net_ids) // 4)), strict=True))
    rules = ds.meta["network_id"].map(new_rule).to_numpy()
    shuffled = type(ds)(X=ds.X, X_cat=ds.X_cat, y=rules, meta=ds.meta.assign(rule=rules), obs_names=ds.obs_names,
                        checkpoints=ds.checkpoints)
    res = evaluate(shuffled, "rf", "network", grid="none", n_splits=10, seed=0)
    # each split tests 4 networks (8 rows); over 10 splits chance accuracy has s.d. ≈ sqrt(.25·.75/40) ≈ 0.07
    assert res["accuracy_mean"] < 0.25 + 0.2


def test_evaluate_heldout_reports_the_held_out_values(dataset):
    res = evaluate(dataset, "svm", "heldout-task", grid="none", seed=0)
    assert res["held_out"] == ["digits", "teacher"]
    assert res["n_test"] == [12 * 2, 12 * 2]
    assert res["accuracy_mean"] >= 0.8  # the signal does not depend on the task


def test_evaluate_errors(dataset):
    with pytest.raises(UnknownNameError, match="did you mean 'rf'"):
        evaluate(dataset, "rff")
    with pytest.raises(UnknownNameError):
        evaluate(dataset, "rf", split_mode="by-layer")
    with pytest.raises(UnknownNameError):
        evaluate(dataset, "rf", inner="kfold")


def test_sem_is_the_standard_error_over_splits_and_undefined_for_one():
    # values 1, 2, 3: sample std (ddof=1) is 1, so the s.e.m. is 1/√3
    assert sem([1.0, 2.0, 3.0]) == pytest.approx(1 / np.sqrt(3))
    assert np.isnan(sem([0.7]))
