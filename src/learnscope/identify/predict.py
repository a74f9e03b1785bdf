"""Name the learning rule behind a user's own recordings.

``fit_model`` trains a classifier on a simulated store, calibrates it on held-out networks and saves it with
everything needed to check new data; :func:`predict` reads a recordings table and returns calibrated rule
probabilities per layer and per network, with what the recorded statistics cannot tell apart
(:func:`predict_recordings` is the older, uncalibrated answer).

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

Observables (``obs_class``): ``all`` (the 24 admissible statistics), ``weight``, ``act`` or ``grad``, a statistic's
name, or a comma-separated mix of these (``"act"``, ``"act,grad"``, ``"act,weightraw_norm"``); see
:func:`parse_observables`. In vivo the weight and gradient statistics are usually not observable: a model for
imaging or spike data is fitted with ``obs_class="act"``. The model records the statistics it uses, and predict
refuses recordings that lack one (naming them) unless ``subset="auto"``.

Fewer checkpoints (``subset="auto"``): the model is refitted on the model checkpoints the recorded ones match.
Checkpoints numbered ``0 … k−1`` are taken as evenly spaced over learning (model checkpoints
``round(i (T−1)/(k−1))``); any other numbering is read as the model's own numbers (``0, 2, …, 20`` of a
21-checkpoint model are its checkpoints 0, 2, …, 20). Numbers beyond the model's last checkpoint are refused
with the two ways to renumber them. :func:`predict` then recalibrates the refitted classifier on held-out networks
too, so its probabilities and its list of inseparable rules belong to exactly the statistics recorded.

Calibration and the rules that cannot be separated: :mod:`learnscope.identify.crossfit` (held-out networks,
temperature or isotonic, ECE, pairwise accuracies). Per-network probabilities of :func:`predict` are the
normalised geometric mean of the network's calibrated layer probabilities (:func:`~learnscope.identify.crossfit.
network_probabilities`); those of :func:`predict_recordings` the arithmetic mean of its uncalibrated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import joblib  # noqa: F401 - ``predict.joblib`` is where tests intercept the model writer
import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, ShapeError, StoreError, UnknownNameError
from learnscope.fileio import shown
from learnscope.identify.calibration import CALIBRATORS, softmax
from learnscope.identify.classifiers import estimator_input, make_classifier
from learnscope.identify.crossfit import (
    DEFAULT_CHOICE_FOLDS,
    DEFAULT_FOLDS,
    MIN_NETWORKS_PER_RULE,
    PAIR_THRESHOLD,
    describe_observables,
    fewest_networks,
    heldout_predictions,
    network_probabilities,
    summarise,
    unavailable,
)
from learnscope.identify.dataset import TrajectoryDataset
from learnscope.identify.model_io import (  # noqa: F401 - re-exported: the CLI and tests import them from here
    _MODEL_KEYS,
    MODEL_FORMAT,
    UNBALANCED_RATIO,
    _count,
    _model_support,
    check_model_out,
    check_table_out,
    class_support,
    load_model,
    save_model,
    support_text,
    unbalanced_warning,
    write_table,
)
from learnscope.identify.observables import ALL_OBS, OBS_CLASSES
from learnscope.identify.recordings import (  # noqa: F401 - re-exported
    KEY_COLUMNS,
    _to_arrays,
    check_checkpoints_strict,
    describe_checkpoints,
    model_checkpoints,
    read_recordings,
    recording_checkpoints,
    recordings_to_arrays,
)

IN_VIVO_NOTE = ("In vivo, weight and gradient statistics are usually not observable: imaging and electrophysiology "
                "record activity, not synaptic weights or the gradients that would change them. Only a model fitted "
                "on activity statistics (obs_class 'act') applies to such recordings; weight and gradient "
                "statistics are available for simulated or in-silico networks.")


def _features(X: np.ndarray, X_cat: np.ndarray, layout: str) -> np.ndarray:
    """The classifier input of spec §4.6: 2-D observable-major with the one-hot prepended, or 3-D channels-last."""
    n, T, n_obs = X.shape
    if layout == "2d":
        return np.concatenate([X_cat, X.transpose(0, 2, 1).reshape(n, n_obs * T)], axis=1)
    return np.concatenate([np.repeat(X_cat[:, None, :], T, axis=1), X], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# observables


def parse_observables(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The statistics named by ``spec``: a class of ``OBS_CLASSES`` (``all``, ``weight``, ``act``, ``grad``), a
    statistic of ``ALL_OBS``, a comma-separated mix of them, or a list of such items; repeats are dropped (first
    appearance kept). A name that is neither raises a one-line :class:`UnknownNameError` with the nearest name."""
    items = [spec] if isinstance(spec, str) else list(spec)
    tokens = [t.strip() for item in items for t in str(item).split(",")]
    if not tokens or any(not t for t in tokens):
        raise ConfigError(f"observables {spec!r} has an empty item; name classes ({', '.join(OBS_CLASSES)}) or "
                          "statistics separated by commas, e.g. 'act' or 'act,gradavgraw_id'")
    names: list[str] = []
    for t in tokens:
        if t in OBS_CLASSES:
            names += OBS_CLASSES[t]
        elif t in ALL_OBS:
            names.append(t)
        elif "_" in t:
            raise UnknownNameError("statistic", t, ALL_OBS)
        else:
            raise UnknownNameError("observable class", t, (*OBS_CLASSES, "<a statistic name, e.g. actabs_mean>"))
    return tuple(dict.fromkeys(names))


def observables_label(obs_names: Sequence[str]) -> str:
    """``"act"`` when the names are exactly a class of ``OBS_CLASSES``, else ``"N statistics"``."""
    for name, members in OBS_CLASSES.items():
        if set(members) == set(obs_names):
            return name
    return _count(len(obs_names), "statistic")


# ----------------------------------------------------------------------------------------------------------------
# the classifier as a function of training rows, and calibration on held-out networks


def class_probabilities(pipeline, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` probabilities of a fitted classifier whose ``classes_`` are indices into the model's
    classes (a training split may lack a class: its column is 0). A classifier without ``predict_proba`` (a linear
    SVM) gets the softmax of its decision function (binary: scores ``±d/2``)."""
    if hasattr(pipeline, "predict_proba"):
        q = pipeline.predict_proba(X)
    else:
        d = np.asarray(pipeline.decision_function(X), dtype=np.float64)
        q = softmax(np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d)
    out = np.zeros((len(q), n_classes))
    out[:, np.asarray(pipeline.classes_, dtype=int)] = q
    return out


def calibrate_on_heldout(X: np.ndarray, X_cat: np.ndarray, y: np.ndarray, networks: np.ndarray | None,
                         classifier: str, seed: int, obs_names: Sequence[str], *, n_folds: int = DEFAULT_FOLDS,
                         n_choice: int = DEFAULT_CHOICE_FOLDS, methods: Sequence[str] = CALIBRATORS,
                         threshold: float = PAIR_THRESHOLD) -> tuple[object | None, dict]:
    """Run :func:`~learnscope.identify.crossfit.heldout_predictions` with ``classifier`` (seeded per fold) on
    training arrays ``X (n, T, n_obs)``, ``X_cat (n, 3)``, rule names ``y (n,)`` and network ids; returns (the
    deployed calibrator, the record of :func:`~learnscope.identify.crossfit.summarise`), or (None, a record with
    ``available: False`` and the reason) when the networks are too few or unknown."""
    if networks is None:
        return None, unavailable("the model file does not record which network each training layer came from "
                                 "(fitted before calibration existed); fit it again")
    fewest = fewest_networks(networks, y)
    if fewest < MIN_NETWORKS_PER_RULE:
        return None, unavailable(f"calibration on held-out networks needs at least {MIN_NETWORKS_PER_RULE} networks "
                                 f"of every rule; the smallest rule has {fewest} — the probabilities are the "
                                 "classifier's own, uncalibrated")
    classes, y_idx = np.unique(np.asarray(y).astype(str), return_inverse=True)
    feats = _features(X, X_cat, estimator_input(classifier))

    def fit_predict(train: np.ndarray, test: np.ndarray, fold_seed: int) -> np.ndarray:
        pipe, _ = make_classifier(classifier, grid="none", random_state=fold_seed)
        pipe.fit(feats[train], y_idx[train])
        return class_probabilities(pipe, feats[test], len(classes))

    held = heldout_predictions(fit_predict, y_idx, networks, seed, n_folds=n_folds, n_choice=n_choice,
                               methods=methods)
    return held.calibrator, summarise(held, classes, obs_names, seed, threshold)


# ----------------------------------------------------------------------------------------------------------------
# fit


def fit_model(store: str | Path, out: str | Path, *, classifier: str = "rf", obs_class: str | Sequence[str] = "all",
              condition: str = "clean", seed: int = 0, force: bool = False, calibrate: bool = True) -> dict:
    """Fit ``classifier`` on every (network, layer) of the store, calibrate it on held-out networks, and save the
    model to ``out`` (joblib).

    obs_class : the statistics to use (:func:`parse_observables`: ``"all"``, ``"act"``, ``"act,grad"``, …); the
        model records them (``obs_names``) and :func:`predict` refuses recordings that lack one.
    calibrate : run the held-out protocol of :mod:`learnscope.identify.crossfit` (5 extra classifier fits)
        and store its calibrator (``model["calibrator"]``) and record (``model["calibration"]``: held-out ECE,
        reliability bins, confusion, the rule pairs the statistics cannot separate). With fewer than
        :data:`~learnscope.identify.crossfit.MIN_NETWORKS_PER_RULE` networks of a rule the record says why
        there is none.

    The training arrays are saved too (with each layer's network id), so a model can be refitted and recalibrated
    on the statistics and checkpoints a user actually has (``subset="auto"``), with the per-class support
    (``{rule: {"networks", "layers"}}``). ``out`` is checked before any work (:func:`check_model_out`: an
    existing file is replaced only with ``force``) and written atomically. A store whose finished networks use
    fewer than two rules is refused.
    """
    out = Path(out)
    layout = estimator_input(classifier)
    names = parse_observables(obs_class)
    check_model_out(out, force)
    data = TrajectoryDataset.from_store(store, condition=condition, obs_class=names)
    support = class_support(data.meta)
    if len(support) < 2:
        rule, s = next(iter(support.items()))
        raise StoreError(f"the finished networks of {shown(store)} use one rule only ({rule}, "
                         f"{_count(s['networks'], 'network')}); a rule classifier needs at least two — simulate a "
                         "grid with two or more rules")
    pipeline, _ = make_classifier(classifier, grid="none", random_state=seed)
    pipeline.fit(_features(data.X, data.X_cat, layout), data.y)
    networks = data.meta["network_id"].astype(str).to_numpy()
    if calibrate:
        calibrator, calibration = calibrate_on_heldout(data.X, data.X_cat, data.y, networks, classifier, seed,
                                                       data.obs_names)
    else:
        calibrator, calibration = None, unavailable("fitted without calibration (calibrate=False)")
    obs_spec = obs_class if isinstance(obs_class, str) else ",".join(obs_class)
    model = {
        "format": MODEL_FORMAT, "classifier": classifier, "seed": seed, "condition": condition,
        "obs_class": obs_spec, "obs_names": list(data.obs_names), "n_checkpoints": int(data.n_checkpoints),
        "classes": list(pipeline.classes_), "pipeline": pipeline,
        "train": {"X": data.X, "X_cat": data.X_cat, "y": data.y, "networks": networks},
        "n_rows": int(data.n_rows), "n_networks": int(data.meta.network_id.nunique()), "support": support,
        "calibrator": calibrator, "calibration": calibration,
    }
    check_model_out(out, force)  # the file may have appeared while fitting
    save_model(model, out)
    return {k: model[k] for k in ("classifier", "condition", "obs_class", "obs_names", "n_checkpoints", "classes",
                                  "n_rows", "n_networks", "support", "calibration")}


# ----------------------------------------------------------------------------------------------------------------
# predict


def _missing_message(missing: list[str], model: dict) -> str:
    spec = model.get("obs_class") or observables_label(model["obs_names"])
    return (f"recordings lack {len(missing)} statistic(s) the model uses: {', '.join(missing)} (the model was fitted "
            f"on observables {spec!r}; fit one on what you record, e.g. `learnscope identify fit STORE --obs-class "
            "act`, or use --subset auto to refit on the ones you have)")


def _classify(model: dict, df: pd.DataFrame, subset: str) -> dict:
    """The shared part of :func:`predict` and :func:`predict_recordings`: validated arrays, the pipeline to use
    (the model's, or one refitted on the statistics/checkpoints present) and its raw probabilities."""
    if subset not in ("strict", "auto"):
        raise ConfigError(f"subset must be 'strict' or 'auto', got {subset!r}")
    obs = model["obs_names"]
    n_model = int(model["n_checkpoints"])
    X, X_cat, keys, missing, numbers = _to_arrays(df, obs)
    if subset == "strict":
        check_checkpoints_strict(numbers, n_model)
    support = _model_support(model)
    info: dict = {"classifier": model["classifier"], "refitted": False, "statistics_used": len(obs) - len(missing),
                  "checkpoints": X.shape[1], "recording_checkpoints": numbers.tolist(), "support": support,
                  "unbalanced": unbalanced_warning(support)}
    pipeline = model["pipeline"]
    layout = estimator_input(model["classifier"])
    if missing and subset == "strict":
        raise ShapeError(_missing_message(missing, model))
    train = model["train"]
    Xtr, used = train["X"], list(obs)
    if subset == "auto" and (missing or not np.array_equal(numbers, np.arange(n_model))):
        cols, matched = model_checkpoints(numbers, n_model)
        keep = [i for i, s in enumerate(obs) if s not in missing]
        if not keep:
            raise ShapeError("the recordings share no statistic with the model")
        Xtr, used = train["X"][:, cols][:, :, keep], [obs[i] for i in keep]
        pipeline, _ = make_classifier(model["classifier"], grid="none", random_state=model["seed"])
        pipeline.fit(_features(Xtr, train["X_cat"], layout), train["y"])
        info |= {"refitted": True, "training_checkpoints_used": cols.tolist(), "statistics_missing": missing,
                 "checkpoints_matched": matched}
    proba = pipeline.predict_proba(_features(X, X_cat, layout))
    return {"info": info, "keys": keys, "proba": proba, "classes": [str(c) for c in pipeline.classes_],
            "train_X": Xtr, "obs_used": used}


def predict_recordings(model_path: str | Path, recordings: str | Path | pd.DataFrame, *, subset: str = "strict"
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Uncalibrated rule probabilities per layer and per network (arithmetic mean) for a recordings table.

    subset : "strict" — every statistic and the checkpoints ``0..T−1`` of the model must be present (else a
        one-line error listing what is missing); "auto" — refit the model's classifier on the statistics and the
        checkpoints the recordings have (matched as in :func:`model_checkpoints`).
    Returns (per-layer table, per-network table, info); ``info`` holds the model's per-class ``support`` and an
    ``unbalanced`` warning (or ``None``). :func:`predict` gives the calibrated answer.
    """
    model = load_model(model_path)
    df = recordings if isinstance(recordings, pd.DataFrame) else read_recordings(recordings)
    r = _classify(model, df, subset)
    classes, proba = r["classes"], r["proba"]
    per_layer = r["keys"].copy()
    per_layer[classes] = proba
    per_layer["predicted_rule"] = np.asarray(classes)[proba.argmax(1)]
    per_network = per_layer.groupby("network")[classes].mean().reset_index()
    per_network["predicted_rule"] = per_network[classes].idxmax(axis=1)
    per_network["layers"] = per_layer.groupby("network").size().to_numpy()
    return per_layer, per_network, r["info"]


@dataclass
class Prediction:
    """The answer of :func:`predict`.

    table : one row per recorded layer (``level == "layer"``) and one per network (``level == "network"``, after
        that network's layers; ``layer`` and ``group`` empty), columns ``level, network, layer, group, layers``
        (layers pooled in the row), one column per rule with the **calibrated** probability (rows sum to 1),
        ``predicted_rule`` and ``confidence`` (the largest probability).
    uncalibrated : the per-layer table of the classifier's own probabilities (as :func:`predict_recordings`).
    classes : the rule columns, in order. calibration : the held-out record of the model used
        (:func:`~learnscope.identify.crossfit.summarise`, or ``available: False`` with a ``reason``), recomputed
        when the classifier was refitted on a subset. model : classifier, observables, checkpoints, support.
    info : as :func:`predict_recordings` returns it.
    """

    table: pd.DataFrame
    uncalibrated: pd.DataFrame
    classes: list[str]
    calibration: dict
    model: dict
    info: dict = field(default_factory=dict)

    @property
    def networks(self) -> pd.DataFrame:
        """The network rows of :attr:`table`."""
        return self.table[self.table.level == "network"].reset_index(drop=True)

    @property
    def indistinguishable(self) -> list[str]:
        """One sentence per rule pair the recorded statistics cannot separate (held-out, see ``calibration``)."""
        return [p["statement"] for p in self.calibration.get("indistinguishable", [])]

    def summary_lines(self) -> list[str]:
        """What ``identify predict`` prints under its table: the calibration and the inseparable rule pairs."""
        c = self.calibration
        if c.get("available"):
            lines = [f"calibration: {c['calibrator']}; held-out ECE {c['ece_layer']:.3f} per layer, "
                     f"{c['ece_network']:.3f} per network ({c['n_networks']} held-out networks)"]
        else:
            lines = [f"calibration: none — {c.get('reason', 'not available')}"]
        threshold = c.get("threshold", PAIR_THRESHOLD)
        if self.indistinguishable:
            lines += self.indistinguishable
        elif c.get("available"):
            lines.append(f"every pair of rules is told apart with held-out accuracy ≥ {threshold:.2f}")
        return lines


def predict(model_path: str | Path, recordings: str | Path | pd.DataFrame, *, subset: str = "strict") -> Prediction:
    """Calibrated rule probabilities per layer and per network for a recordings table, with the rule pairs its
    statistics cannot separate.

    subset : as in :func:`predict_recordings`; with "auto" and a refit, the refitted classifier is also
        recalibrated on held-out networks (5 more classifier fits), so the calibration and the list of
        inseparable pairs are those of exactly the recorded statistics and checkpoints.
    Network rows: the normalised geometric mean of the network's calibrated layer probabilities.
    """
    model = load_model(model_path)
    df = recordings if isinstance(recordings, pd.DataFrame) else read_recordings(recordings)
    r = _classify(model, df, subset)
    info, keys, raw, classes = r["info"], r["keys"], r["proba"], r["classes"]
    train = model["train"]
    if info["refitted"]:
        calibrator, calibration = calibrate_on_heldout(r["train_X"], train["X_cat"], train["y"],
                                                       train.get("networks"), model["classifier"], model["seed"],
                                                       r["obs_used"])
    else:
        calibrator = model.get("calibrator")
        calibration = model.get("calibration") or unavailable("the model file was fitted before calibration "
                                                              "existed; fit it again")
    p = calibrator.transform(raw) if calibrator is not None else raw
    layer_rows = keys.copy()
    layer_rows.insert(0, "level", "layer")
    layer_rows["layers"] = 1
    codes, uniques = pd.factorize(keys["network"], sort=True)
    ids, P = network_probabilities(p, codes, float(calibration.get("network_exponent", 1.0)))
    net_rows = pd.DataFrame({"level": "network", "network": uniques[ids], "layer": None, "group": None,
                             "layers": np.bincount(codes)[ids]})
    layer_rows[classes], net_rows[classes] = p, P
    order = np.concatenate([np.zeros(len(layer_rows)), np.ones(len(net_rows))])
    table = pd.concat([layer_rows, net_rows], ignore_index=True)
    table["_code"], table["_net_row"] = np.concatenate([codes, ids]), order
    table = table.sort_values(["_code", "_net_row"], kind="stable").drop(columns=["_code", "_net_row"])
    values = table[classes].to_numpy()
    table["predicted_rule"] = np.asarray(classes)[values.argmax(1)]
    table["confidence"] = values.max(1)
    uncal = keys.copy()
    uncal[classes] = raw
    summary = {"classifier": model["classifier"], "obs_class": model.get("obs_class")
               or observables_label(model["obs_names"]), "obs_names": list(r["obs_used"]),
               "observables_in_words": describe_observables(r["obs_used"]), "n_checkpoints": int(
                   model["n_checkpoints"]), "checkpoints_used": info.get("training_checkpoints_used"),
               "support": info["support"], "condition": model.get("condition", "clean"),
               "n_networks": model.get("n_networks"), "refitted": info["refitted"]}
    return Prediction(table=table.reset_index(drop=True), uncalibrated=uncal, classes=classes,
                      calibration=calibration, model=summary, info=info)


def recordings_from_store(store: str | Path, network_ids: list[str], condition: str = "clean",
                          obs_class: str | Sequence[str] = "all") -> pd.DataFrame:
    """Write networks of a simulated store in the recordings schema (for examples and held-out checks)."""
    data = TrajectoryDataset.from_store(store, condition=condition, obs_class=parse_observables(obs_class))
    rows = data.meta.network_id.isin(network_ids).to_numpy()
    if not rows.any():
        raise StoreError(f"none of the networks {network_ids} is in {shown(store)}")
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
