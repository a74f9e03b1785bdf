"""Name the learning rule behind a user's own recordings.

``fit_model`` trains a classifier on a simulated store and saves it with everything needed to check new data;
``predict_recordings`` reads a recordings table and returns rule probabilities per layer and per network.

Recordings schema (CSV or Parquet, one row per (network, layer, checkpoint)):

=============  ===========================================================================================
column         meaning
=============  ===========================================================================================
network        any id of the recorded circuit (animal, session, model); layers of one network are pooled
layer          layer / area name
group          position of the layer: ``early``, ``middle`` or ``deep``
checkpoint     0 … T−1, evenly spaced over learning (0 = before learning), the same T as the model's
<statistic>    one column per statistic the model uses, named as in ``learnscope.identify.observables``
               (e.g. ``actabs_mean``, ``weightraw_median``, ``gradavgraw_id``)
=============  ===========================================================================================

Per-network probabilities are the mean of the network's per-layer probabilities.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, NonFiniteError, ShapeError, StoreError
from learnscope.identify.classifiers import estimator_input, make_classifier
from learnscope.identify.dataset import GROUPS, TrajectoryDataset
from learnscope.identify.observables import ALL_OBS

MODEL_FORMAT = 1
KEY_COLUMNS = ("network", "layer", "group", "checkpoint")


def _features(X: np.ndarray, X_cat: np.ndarray, layout: str) -> np.ndarray:
    """The classifier input of spec §4.6: 2-D observable-major with the one-hot prepended, or 3-D channels-last."""
    n, T, n_obs = X.shape
    if layout == "2d":
        return np.concatenate([X_cat, X.transpose(0, 2, 1).reshape(n, n_obs * T)], axis=1)
    return np.concatenate([np.repeat(X_cat[:, None, :], T, axis=1), X], axis=-1)


def fit_model(store: str | Path, out: str | Path, *, classifier: str = "rf", obs_class: str = "all",
              condition: str = "clean", seed: int = 0) -> dict:
    """Fit ``classifier`` on every (network, layer) of the store and save the model to ``out`` (joblib).

    The training arrays are saved too, so a model can be refitted on the statistics and checkpoints a user
    actually has (``predict_recordings(..., subset="auto")``).
    """
    data = TrajectoryDataset.from_store(store, condition=condition, obs_class=obs_class)
    pipeline, _ = make_classifier(classifier, grid="none", random_state=seed)
    layout = estimator_input(classifier)
    pipeline.fit(_features(data.X, data.X_cat, layout), data.y)
    model = {
        "format": MODEL_FORMAT, "classifier": classifier, "seed": seed, "condition": condition,
        "obs_names": list(data.obs_names), "n_checkpoints": int(data.n_checkpoints), "classes": list(pipeline.classes_),
        "pipeline": pipeline, "train": {"X": data.X, "X_cat": data.X_cat, "y": data.y},
        "n_rows": int(data.n_rows), "n_networks": int(data.meta.network_id.nunique()),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out)
    return {k: model[k] for k in ("classifier", "condition", "obs_names", "n_checkpoints", "classes", "n_rows",
                                  "n_networks")}


def load_model(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"model file {path} does not exist (make one with `learnscope identify fit`)")
    try:
        model = joblib.load(path)
    except Exception:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise StoreError(f"{path} is not a learnscope model file") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise StoreError(f"{path} is not a learnscope model file of format {MODEL_FORMAT}")
    return model


def read_recordings(path: str | Path) -> pd.DataFrame:
    """Read a recordings table (``.csv`` or ``.parquet``), with one-line errors for unreadable or empty files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recordings file {path} does not exist")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{path} is empty") from None
    except Exception as err:  # noqa: BLE001
        raise ConfigError(f"cannot read {path} as {'Parquet' if path.suffix == '.parquet' else 'CSV'}: "
                          f"{type(err).__name__}") from None
    if df.empty:
        raise ConfigError(f"{path} has no rows")
    return df


def recordings_to_arrays(df: pd.DataFrame, obs_names: list[str], n_checkpoints: int | None
                         ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    """(X (rows, T, n_obs), X_cat (rows, 3), per-row keys, missing statistics) from a recordings table."""
    missing_keys = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing_keys:
        raise ShapeError(f"recordings lack the column(s) {', '.join(missing_keys)} "
                         f"(needed: {', '.join(KEY_COLUMNS)}, then one column per statistic)")
    unknown = [c for c in df.columns if c not in KEY_COLUMNS and c not in ALL_OBS]
    if unknown:
        raise ShapeError(f"unknown column(s) {', '.join(map(str, unknown))}: statistics are named as in "
                         "learnscope.identify.observables (e.g. actabs_mean)")
    bad_groups = sorted(set(df["group"].astype(str)) - set(GROUPS))
    if bad_groups:
        raise ConfigError(f"group must be one of {', '.join(GROUPS)}; got {', '.join(bad_groups)}")
    present = [s for s in obs_names if s in df.columns]
    missing = [s for s in obs_names if s not in df.columns]
    values = df[present]
    if values.isna().any().any() or not np.isfinite(values.to_numpy(dtype=float)).all():
        cols = [c for c in present if not np.isfinite(df[c].to_numpy(dtype=float)).all()]
        raise NonFiniteError(f"recordings have NaN/inf in {', '.join(cols)}")
    ckpt = df["checkpoint"]
    T = int(ckpt.max()) + 1
    per_layer = df.groupby(["network", "layer"])["checkpoint"]
    if (per_layer.nunique() != T).any() or (per_layer.size() != T).any() or int(ckpt.min()) != 0:
        raise ShapeError(f"every (network, layer) needs each checkpoint 0..{T - 1} exactly once")
    if n_checkpoints is not None and T != n_checkpoints:
        raise ShapeError(f"recordings have {T} checkpoints per layer; the model was trained on {n_checkpoints} "
                         "(use --subset auto to refit on the checkpoints you have)")
    df = df.sort_values(["network", "layer", "checkpoint"])
    keys = df.groupby(["network", "layer"], sort=False).first().reset_index()[["network", "layer", "group"]]
    X = df[present].to_numpy(dtype=float).reshape(len(keys), T, len(present))
    X_cat = np.stack([(keys.group.to_numpy() == g).astype(float) for g in GROUPS], axis=1)
    return X, X_cat, keys, missing


def predict_recordings(model_path: str | Path, recordings: str | Path | pd.DataFrame, *, subset: str = "strict"
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Rule probabilities per layer and per network for a recordings table.

    subset : "strict" — every statistic and the checkpoint count of the model must be present (else a one-line
        error listing what is missing); "auto" — refit the model's classifier on the statistics and the (evenly
        spread) checkpoints the recordings have.
    Returns (per-layer table, per-network table, info).
    """
    if subset not in ("strict", "auto"):
        raise ConfigError(f"subset must be 'strict' or 'auto', got {subset!r}")
    model = load_model(model_path)
    df = recordings if isinstance(recordings, pd.DataFrame) else read_recordings(recordings)
    obs = model["obs_names"]
    X, X_cat, keys, missing = recordings_to_arrays(df, obs, None if subset == "auto" else model["n_checkpoints"])
    info: dict = {"classifier": model["classifier"], "refitted": False, "statistics_used": len(obs) - len(missing),
                  "checkpoints": X.shape[1]}
    pipeline = model["pipeline"]
    layout = estimator_input(model["classifier"])
    if missing and subset == "strict":
        raise ShapeError(f"recordings lack {len(missing)} statistic(s) the model uses: {', '.join(missing)} "
                         "(use --subset auto to refit on the ones you have)")
    if subset == "auto" and (missing or X.shape[1] != model["n_checkpoints"]):
        if X.shape[1] > model["n_checkpoints"] or X.shape[1] < 1:
            raise ShapeError(f"recordings have {X.shape[1]} checkpoints; the simulations have "
                             f"{model['n_checkpoints']}: record at most that many")
        keep = [i for i, s in enumerate(obs) if s not in missing]
        if not keep:
            raise ShapeError("the recordings share no statistic with the model")
        cols = np.round(np.linspace(0, model["n_checkpoints"] - 1, X.shape[1])).astype(int)
        train = model["train"]
        Xtr = train["X"][:, cols][:, :, keep]
        pipeline, _ = make_classifier(model["classifier"], grid="none", random_state=model["seed"])
        pipeline.fit(_features(Xtr, train["X_cat"], layout), train["y"])
        info |= {"refitted": True, "training_checkpoints_used": cols.tolist(), "statistics_missing": missing}
    proba = pipeline.predict_proba(_features(X, X_cat, layout))
    classes = [str(c) for c in pipeline.classes_]
    per_layer = keys.copy()
    per_layer[classes] = proba
    per_layer["predicted_rule"] = np.asarray(classes)[proba.argmax(1)]
    per_network = per_layer.groupby("network")[classes].mean().reset_index()
    per_network["predicted_rule"] = per_network[classes].idxmax(axis=1)
    per_network["layers"] = per_layer.groupby("network").size().to_numpy()
    return per_layer, per_network, info


def recordings_from_store(store: str | Path, network_ids: list[str], condition: str = "clean",
                          obs_class: str = "all") -> pd.DataFrame:
    """Write networks of a simulated store in the recordings schema (for examples and held-out checks)."""
    data = TrajectoryDataset.from_store(store, condition=condition, obs_class=obs_class)
    rows = data.meta.network_id.isin(network_ids).to_numpy()
    if not rows.any():
        raise StoreError(f"none of the networks {network_ids} is in {store}")
    sub = data.subset(np.flatnonzero(rows))
    frames = []
    for i in range(sub.n_rows):
        m = sub.meta.iloc[i]
        f = pd.DataFrame(sub.X[i], columns=list(sub.obs_names))
        f.insert(0, "checkpoint", np.arange(sub.n_checkpoints))
        f.insert(0, "group", m.group)
        f.insert(0, "layer", m.layer)
        f.insert(0, "network", m.network_id)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)
