"""Naming the rule behind recordings written in the documented schema, and refusing malformed ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.identify.grid import parse_grid
from learnscope.identify.predict import fit_model, predict_recordings, recordings_from_store
from learnscope.identify.simulate import simulate
from learnscope.identify.store import Store

runner = CliRunner()


def _grid(seeds):
    return parse_grid({
        "grid": {"tasks": ["digits"], "architectures": ["mlp_2x32"], "rules": ["sgdm", "adam"], "batch_sizes": [64],
                 "seeds": seeds},
        "training": {"epochs": 4, "checkpoints": 6, "n_train": 512, "n_probe": 32},
    })


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    simulate(_grid([0, 1, 2, 3, 4, 5]), root / "train", backend="sequential", progress=False)
    simulate(_grid([7]), root / "heldout", backend="sequential", progress=False)
    info = fit_model(root / "train", root / "model.joblib", classifier="rf")
    held = Store.open(root / "heldout").networks()
    recordings = recordings_from_store(root / "heldout", held.network_id.tolist())
    path = root / "rec.csv"
    recordings.to_csv(path, index=False)
    return root, info, held, recordings, path


def test_heldout_networks_are_named_by_their_true_rule(fitted):
    root, info, held, recordings, path = fitted
    assert info["classes"] == ["adam", "sgdm"] and info["n_checkpoints"] == 6
    per_layer, per_network, _ = predict_recordings(root / "model.joblib", path)
    truth = dict(zip(held.network_id, held.rule, strict=True))
    assert len(per_network) == 2 and (per_network.layers == 3).all()
    np.testing.assert_allclose(per_network[["adam", "sgdm"]].sum(axis=1), 1.0)
    for _, r in per_network.iterrows():
        assert r[truth[r.network]] > 0.5, (r.network, truth[r.network], r.to_dict())
    # per-network probability is the mean over that network's layers
    mean = per_layer.groupby("network")[["adam", "sgdm"]].mean().reset_index()
    np.testing.assert_allclose(mean[["adam", "sgdm"]].to_numpy(), per_network[["adam", "sgdm"]].to_numpy())


def test_subset_auto_refits_on_the_statistics_and_checkpoints_present(fitted):
    root, _, _, recordings, _ = fitted
    fewer = recordings[recordings.checkpoint.isin([0, 5])].drop(columns=["actabs_mean", "gradavgsq_id"]).copy()
    fewer["checkpoint"] = fewer.checkpoint // 5
    with pytest.raises(Exception, match="checkpoints"):
        predict_recordings(root / "model.joblib", fewer)
    _, per_network, info = predict_recordings(root / "model.joblib", fewer, subset="auto")
    assert info["refitted"] and info["training_checkpoints_used"] == [0, 5]
    assert info["statistics_missing"] == ["actabs_mean", "gradavgsq_id"]
    np.testing.assert_allclose(per_network[["adam", "sgdm"]].sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda d: d.rename(columns={"layer": "area"}), "lack the column(s) layer"),
        (lambda d: d.rename(columns={"actabs_mean": "actabs_avg"}), "unknown column(s) actabs_avg"),
        (lambda d: d.assign(actraw_norm=np.where(d.index == 3, np.nan, d.actraw_norm)), "NaN/inf in actraw_norm"),
        (lambda d: d[d.checkpoint < 5], "5 checkpoints per layer; the model was trained on 6"),
        (lambda d: d[~((d.checkpoint == 2) & (d.index < 10))], "each checkpoint 0..5 exactly once"),
        (lambda d: d.assign(group="top"), "group must be one of early, middle, deep"),
        (lambda d: d.drop(columns=["weightsq_median"]), "lack 1 statistic(s) the model uses: weightsq_median"),
        (lambda d: d.iloc[:0], "has no rows"),
    ],
)
def test_malformed_recordings_exit_2_with_one_line(fitted, tmp_path, corrupt, fragment):
    root, _, _, recordings, _ = fitted
    path = tmp_path / "bad.csv"
    corrupt(recordings).to_csv(path, index=False)
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(path)])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_empty_file_and_missing_model_exit_2(fitted, tmp_path):
    root, *_ = fitted
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(empty)])
    assert r.exit_code == 2 and "is empty" in r.stderr
    r = runner.invoke(app, ["identify", "predict", str(tmp_path / "none.joblib"), str(empty)])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_parquet_recordings_give_the_same_answer_as_csv(fitted, tmp_path):
    root, _, _, recordings, path = fitted
    pq = tmp_path / "rec.parquet"
    recordings.to_parquet(pq)
    a = predict_recordings(root / "model.joblib", path)[1]
    b = predict_recordings(root / "model.joblib", pq)[1]
    pd.testing.assert_frame_equal(a, b)


def test_the_shipped_example_follows_the_documented_schema():
    from pathlib import Path

    from learnscope.identify.observables import ADMISSIBLE_OBS
    from learnscope.identify.predict import read_recordings, recordings_to_arrays

    example = Path(__file__).resolve().parent.parent / "examples" / "recordings_example.csv"
    X, X_cat, keys, missing = recordings_to_arrays(read_recordings(example), list(ADMISSIBLE_OBS), 21)
    assert missing == [] and X.shape == (4, 21, 24)
    assert keys.group.tolist() == ["early", "middle", "deep", "deep"] and (X_cat.sum(axis=1) == 1).all()
