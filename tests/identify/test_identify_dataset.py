"""TrajectoryDataset: row construction, the original's observable-major flattening (spec §4.6), checkpoint
selection, the performance-only baseline, and input errors — on hand-built tables with known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError
from learnscope.identify.dataset import TrajectoryDataset, checkpoint_indices
from learnscope.identify.observables import ALL_OBS
from learnscope.identify.store import Store

# Spec §4.1, in the spec's order (written out here, not imported, so the test checks the source's lists).
ADMISSIBLE_WEIGHT = [
    "weightabs_mean", "weightabs_median", "weightabs_norm", "weightabs_thirdquartile", "weightabs_var",
    "weightraw_mean", "weightraw_median", "weightraw_norm", "weightraw_thirdquartile", "weightraw_var",
    "weightsq_mean", "weightsq_median", "weightsq_thirdquartile",
]
ADMISSIBLE_ACT = [
    "actabs_mean", "actabs_median", "actabs_norm", "actabs_thirdquartile",
    "actraw_mean", "actraw_median", "actraw_norm", "actraw_thirdquartile",
]
ADMISSIBLE_GRAD = ["gradavgabs_id", "gradavgraw_id", "gradavgsq_id"]

# network index -> (network_id, rule, architecture, task, status); layers: (name, index, group)
NETWORKS = [("n0", "sgdm", "mlp2", "digits", "ok"), ("n1", "fa", "mlp3", "teacher", "ok"),
            ("n2", "adam", "mlp2", "digits", "diverged")]
LAYERS = [("fc0", 0, "early"), ("fc1", 1, "deep")]


def value(net: int, layer: int, obs_j: int, ckpt: int, condition: int = 0) -> float:
    """The known value of observable ``ALL_OBS[obs_j]`` in the hand-built tables."""
    return 100_000.0 * condition + 10_000.0 * net + 1_000.0 * layer + 10.0 * obs_j + ckpt


def make_frames(C: int = 3, conditions=("clean", "noise0.3"), seed: int = 0):
    obs_rows, net_rows = [], []
    for ni, (nid, rule, arch, task, status) in enumerate(NETWORKS):
        net_rows.append({
            "network_id": nid, "task": task, "architecture": arch, "rule": rule, "status": status,
            "loss_curve": [1.0 + ni - 0.1 * c for c in range(C)],
            "train_accuracy_curve": [float("nan")] * C if task == "teacher" else [0.5 + 0.01 * c for c in range(C)],
            "test_accuracy_curve": [float("nan")] * C if task == "teacher" else [0.4 + 0.02 * c for c in range(C)],
        })
        for name, li, group in LAYERS:
            for ci, cond in enumerate(conditions):
                for c in range(C):
                    row = {"network_id": nid, "task": task, "architecture": arch, "rule": rule, "batch_size": 32,
                           "lr": 0.01, "lr_multiplier": 1.0, "seed": ni, "layer": name, "layer_index": li,
                           "group": group, "condition": cond, "checkpoint": c, "step": 10 * c,
                           "training_fraction": c / (C - 1)}
                    row.update({o: value(ni, li, j, c, ci) for j, o in enumerate(ALL_OBS)})
                    obs_rows.append(row)
    obs = pd.DataFrame(obs_rows)
    # storage order is not the dataset's order
    obs = obs.iloc[np.random.default_rng(seed).permutation(len(obs))].reset_index(drop=True)
    return obs, pd.DataFrame(net_rows)


def test_rows_labels_and_metadata():
    obs, nets = make_frames()
    ds = TrajectoryDataset.from_frames(obs, nets, obs_class="grad")
    assert ds.X.shape == (4, 3, 3)  # the diverged network n2 is dropped
    np.testing.assert_array_equal(ds.y, ["sgdm", "sgdm", "fa", "fa"])
    assert list(ds.meta["network_id"]) == ["n0", "n0", "n1", "n1"]
    assert list(ds.meta["layer"]) == ["fc0", "fc1", "fc0", "fc1"]
    assert list(ds.meta["architecture"]) == ["mlp2", "mlp2", "mlp3", "mlp3"]
    for col in ("network_id", "task", "architecture", "rule", "batch_size", "seed", "layer", "group"):
        assert col in ds.meta.columns
    np.testing.assert_array_equal(ds.X_cat, [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]])  # early, deep
    assert ds.X.dtype == np.float64


def test_to_2d_is_observable_major_with_one_hot_first():
    obs, nets = make_frames()
    names = ["actraw_mean", "weightraw_norm", "gradavgsq_id"]
    ds = TrajectoryDataset.from_frames(obs, nets, obs_class=names)
    js = [ALL_OBS.index(n) for n in names]
    ref = []
    for ni, li in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        onehot = [1.0, 0.0, 0.0] if li == 0 else [0.0, 0.0, 1.0]
        ref.append(onehot + [value(ni, li, j, c) for j in js for c in range(3)])
    np.testing.assert_array_equal(ds.to_2d(), np.array(ref))
    assert ds.to_2d().shape == (4, 3 + 3 * 3)
    assert ds.feature_names_2d()[:6] == ["grp_id0", "grp_id1", "grp_id2", "actraw_mean@0", "actraw_mean@1",
                                         "actraw_mean@2"]
    X3, Xc3 = ds.to_3d()
    assert X3.shape == (4, 3, 3) and Xc3.shape == (4, 3, 3)
    np.testing.assert_array_equal(X3[2, :, 1], [value(1, 0, js[1], c) for c in range(3)])  # channels-last
    np.testing.assert_array_equal(Xc3[:, 1, :], ds.X_cat)  # one-hot repeated over time
    F = ds.features("3d")
    np.testing.assert_array_equal(F[..., :3], Xc3)
    np.testing.assert_array_equal(F[..., 3:], X3)


def test_condition_selects_its_rows_and_unknown_condition_is_named():
    obs, nets = make_frames()
    ds = TrajectoryDataset.from_frames(obs, nets, condition="noise0.3", obs_class=["actabs_norm"])
    j = ALL_OBS.index("actabs_norm")
    np.testing.assert_array_equal(ds.X[3, :, 0], [value(1, 1, j, c, condition=1) for c in range(3)])
    with pytest.raises(UnknownNameError, match="did you mean 'clean'"):
        TrajectoryDataset.from_frames(obs, nets, condition="clen")


def test_observable_classes_are_the_spec_lists():
    obs, nets = make_frames()
    expected = {"weight": ADMISSIBLE_WEIGHT, "act": ADMISSIBLE_ACT, "grad": ADMISSIBLE_GRAD,
                "all": ADMISSIBLE_WEIGHT + ADMISSIBLE_ACT + ADMISSIBLE_GRAD}
    for cls, names in expected.items():
        ds = TrajectoryDataset.from_frames(obs, nets, obs_class=cls)
        assert list(ds.obs_names) == names
        assert ds.to_2d().shape[1] == 3 + 3 * len(names)
    with pytest.raises(UnknownNameError, match="did you mean 'actraw_norm'"):
        TrajectoryDataset.from_frames(obs, nets, obs_class=["actraw_norn"])
    with pytest.raises(UnknownNameError):
        TrajectoryDataset.from_frames(obs, nets, obs_class="weights_and_acts")


def test_non_finite_selected_statistic_is_named():
    obs, nets = make_frames()
    obs.loc[obs.index[(obs["network_id"] == "n1") & (obs["condition"] == "clean")][0], "weightraw_skew"] = np.nan
    ds = TrajectoryDataset.from_frames(obs, nets, obs_class="weight")  # skew is not admissible: fine
    assert np.isfinite(ds.X).all()
    with pytest.raises(NonFiniteError, match="weightraw_skew"):
        TrajectoryDataset.from_frames(obs, nets, obs_class=["weightraw_mean", "weightraw_skew"])
    # non-finite values of a diverged network do not matter: its rows are dropped
    obs2, _ = make_frames()
    obs2.loc[obs2["network_id"] == "n2", "actraw_mean"] = np.inf
    TrajectoryDataset.from_frames(obs2, nets, obs_class="act")


def test_missing_or_repeated_checkpoints_raise():
    obs, nets = make_frames()
    drop = obs.index[(obs["network_id"] == "n1") & (obs["checkpoint"] == 1) & (obs["condition"] == "clean")][0]
    with pytest.raises(ShapeError):
        TrajectoryDataset.from_frames(obs.drop(index=drop), nets)
    dup = pd.concat([obs, obs.loc[[drop]]], ignore_index=True)
    with pytest.raises(ShapeError):
        TrajectoryDataset.from_frames(dup, nets)


@pytest.mark.parametrize("mode,k,expected", [
    ("first-k", 3, [0, 1, 2]),
    ("every-m", 5, [0, 5, 10, 15, 20]),
    ("every-m", 7, [0, 7, 14]),
    ("spread-k", 3, [0, 10, 20]),
    ("spread-k", 4, [0, 7, 13, 20]),  # 20/3 = 6.67 -> 7, 40/3 = 13.33 -> 13
    ("spread-k", 21, list(range(21))),
    ("last-k", 2, [19, 20]),
    ("end-only", None, [20]),
])
def test_checkpoint_indices(mode, k, expected):
    np.testing.assert_array_equal(checkpoint_indices(mode, 21, k), expected)


def test_select_checkpoints_keeps_the_original_values_and_composes():
    obs, nets = make_frames(C=21, conditions=("clean",))
    ds = TrajectoryDataset.from_frames(obs, nets, obs_class=["weightraw_median"])
    j = ALL_OBS.index("weightraw_median")
    sub = ds.select_checkpoints("spread-k", 3)
    np.testing.assert_array_equal(sub.checkpoints, [0, 10, 20])
    np.testing.assert_array_equal(sub.X[1, :, 0], [value(0, 1, j, c) for c in (0, 10, 20)])
    np.testing.assert_array_equal(sub.to_2d()[1, 3:], [value(0, 1, j, c) for c in (0, 10, 20)])
    last = sub.select_checkpoints("last-k", 1)
    np.testing.assert_array_equal(last.checkpoints, [20])
    assert ds.X.shape[1] == 21  # the original is unchanged
    with pytest.raises(ConfigError):
        ds.select_checkpoints("first-k", 22)
    with pytest.raises(ConfigError):
        ds.select_checkpoints("spread-k", 1)
    with pytest.raises(UnknownNameError, match="did you mean 'last-k'"):
        ds.select_checkpoints("last-n", 2)


def test_performance_only_uses_the_curves_at_the_selected_checkpoints():
    obs, nets = make_frames(C=5, conditions=("clean",))
    ds = TrajectoryDataset.from_frames(obs, nets, obs_class="all").select_checkpoints("every-m", 2)
    perf = ds.performance_only()
    assert perf.obs_names == ("loss", "train_accuracy", "test_accuracy")
    assert perf.X.shape == (4, 3, 3)
    cks = np.array([0, 2, 4])
    for row, ni in enumerate([0, 0, 1, 1]):  # both layers of a network carry the network's curves
        np.testing.assert_allclose(perf.X[row, :, 0], 1.0 + ni - 0.1 * cks)
    np.testing.assert_allclose(perf.X[0, :, 1], 0.5 + 0.01 * cks)
    np.testing.assert_allclose(perf.X[0, :, 2], 0.4 + 0.02 * cks)
    np.testing.assert_array_equal(perf.X[2, :, 1:], 0.0)  # the regression task has no accuracy
    np.testing.assert_array_equal(perf.y, ds.y)
    np.testing.assert_array_equal(perf.X_cat, ds.X_cat)
    bad = nets.copy()
    bad.at[0, "loss_curve"] = [1.0, np.nan, 1.0, 1.0, 1.0]
    ds.performance_only(bad)  # checkpoint 1 is not selected
    bad.at[0, "loss_curve"] = [1.0, 1.0, np.nan, 1.0, 1.0]
    with pytest.raises(NonFiniteError, match="loss_curve"):
        ds.performance_only(bad)


def test_from_store_equals_from_frames(tmp_path):
    obs, nets = make_frames()
    store = Store.create(tmp_path / "store", grid={"name": "test"})
    for nid in nets["network_id"]:
        row = nets[nets["network_id"] == nid].iloc[0].to_dict()
        store.write_network(nid, row, obs[obs["network_id"] == nid].reset_index(drop=True))
    a = TrajectoryDataset.from_store(tmp_path / "store", condition="noise0.3", obs_class="act")
    b = TrajectoryDataset.from_frames(obs, nets, condition="noise0.3", obs_class="act")
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.X_cat, b.X_cat)
    np.testing.assert_array_equal(a.y, b.y)
    pd.testing.assert_frame_equal(a.meta, b.meta, check_dtype=False)
    np.testing.assert_allclose(a.performance_only().X, b.performance_only().X)
