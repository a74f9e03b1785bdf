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

Fewer checkpoints (``subset="auto"``): the model is refitted on the model checkpoints the recorded ones match.
Checkpoints numbered ``0 … k−1`` are taken as evenly spaced over learning (model checkpoints
``round(i (T−1)/(k−1))``); any other numbering is read as the model's own numbers (``0, 2, …, 20`` of a
21-checkpoint model are its checkpoints 0, 2, …, 20). Numbers beyond the model's last checkpoint are refused
with the two ways to renumber them.

Per-network probabilities are the mean of the network's per-layer probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, NonFiniteError, ShapeError, StoreError
from learnscope.fileio import atomic_save, check_writable, existing_ancestor, shown
from learnscope.identify.classifiers import estimator_input, make_classifier
from learnscope.identify.dataset import GROUPS, TrajectoryDataset
from learnscope.identify.observables import ALL_OBS

MODEL_FORMAT = 1
KEY_COLUMNS = ("network", "layer", "group", "checkpoint")
UNBALANCED_RATIO = 3.0
"""``predict`` and ``fit`` warn when the largest class of a model has this many times the layers of the smallest."""
_MODEL_KEYS = ("format", "classifier", "seed", "obs_names", "n_checkpoints", "classes", "pipeline", "train")
_RECORDING_SUFFIXES = (".csv", ".parquet", ".tsv", ".txt")


def _features(X: np.ndarray, X_cat: np.ndarray, layout: str) -> np.ndarray:
    """The classifier input of spec §4.6: 2-D observable-major with the one-hot prepended, or 3-D channels-last."""
    n, T, n_obs = X.shape
    if layout == "2d":
        return np.concatenate([X_cat, X.transpose(0, 2, 1).reshape(n, n_obs * T)], axis=1)
    return np.concatenate([np.repeat(X_cat[:, None, :], T, axis=1), X], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# output files: checked before any work, written atomically


_JOBLIB_MAGIC = (b"\x80", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda",
                 b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"]\x00\x00", b"\x04\x22\x4d\x18")
"""How a joblib file begins: a pickle (protocol ≥ 2), or zlib, gzip, bz2, xz, lzma or lz4 compressed."""


def _looks_like_joblib(path: Path) -> bool:
    """True for an empty file or one that begins like a joblib file (a truncated model still does)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return not head or head.startswith(_JOBLIB_MAGIC)


def _replaceable_model(path: Path) -> bool:
    """May ``--force`` replace the file ``path``? Yes for a learnscope model, and for a ``.joblib`` file that
    begins like one but does not load (a truncated model) or is empty; no for anything else (recordings, notes,
    configs, another joblib object)."""
    if not path.is_file():
        return False
    try:
        load_model(path)
        return True
    except StoreError:
        pass
    if path.suffix != ".joblib" or not _looks_like_joblib(path):
        return False
    try:
        joblib.load(path)
    except OSError as err:
        if err.errno is not None:
            raise
        return True
    except Exception:  # noqa: BLE001 - unreadable: nothing usable is lost
        return True
    return False


def check_model_out(out: str | Path, force: bool = False) -> None:
    """Refuse, before any work, an ``--out`` model path that ``fit`` may not write.

    Raises :class:`StoreError` (exit 2) for a directory, a path below a file, an existing file without ``force``
    and, with ``force``, a file that is not a learnscope model; ``OSError`` (exit 1) for an unwritable location.
    A missing parent directory is created when the model is saved.
    """
    out = Path(out)
    if out.is_dir():
        raise StoreError(f"--out {shown(out)} is a directory; name the model file to write, e.g. "
                         f"{shown(out / 'model.joblib')}")
    parent = existing_ancestor(out)
    if not parent.is_dir():
        raise StoreError(f"--out {shown(out)}: {shown(parent)} is a file, not a directory")
    if out.exists() or out.is_symlink():
        if not force:
            raise StoreError(f"--out {shown(out)} already exists; pass --force to replace it, or choose another "
                             "--out")
        if not _replaceable_model(out):
            raise StoreError(f"--out {shown(out)} exists and is not a learnscope model; --force replaces only a "
                             "model file — choose another --out, or remove it yourself")
    check_writable(parent)


def check_table_out(out: str | Path, protect: dict[str, str | Path] | None = None) -> None:
    """Refuse, before any work, an ``--out`` CSV path that ``predict`` may not write.

    ``protect`` maps a description (``"recordings"``) to an input file that ``out`` must not be. Raises
    :class:`ConfigError` (exit 2) for a directory, a missing parent directory, a path below a file or an input
    file; ``OSError`` (exit 1) for an unwritable directory. An existing output file is replaced (atomically).
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {shown(out)} is a directory; name the CSV file to write, e.g. "
                          f"{shown(out / 'probabilities.csv')}")
    parent = out.parent
    if not parent.exists():
        anc = existing_ancestor(out)
        if not anc.is_dir():
            raise ConfigError(f"--out {shown(out)}: {shown(anc)} is a file, not a directory")
        raise ConfigError(f"--out {shown(out)}: the directory {shown(parent)} does not exist; create it first or "
                          "choose another --out")
    if not parent.is_dir():
        raise ConfigError(f"--out {shown(out)}: {shown(parent)} is a file, not a directory")
    if out.exists():
        for what, path in (protect or {}).items():
            if Path(path).exists() and os.path.samefile(out, path):
                raise ConfigError(f"--out {shown(out)} is the {what} file; choose another --out")
    check_writable(parent)


def _save_atomically(path: Path, save: Callable[[Path], object]) -> None:
    """``atomic_save`` whose failures name ``path`` (as the user typed it), not the temporary file."""
    try:
        atomic_save(path, save)
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from None


def save_model(model: dict, path: str | Path) -> None:
    """Write ``model`` to ``path`` atomically (temporary file beside it, fsync, rename); a missing parent directory
    is created. A failure (full disk, read-only filesystem) leaves the old file, or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(path, lambda tmp: joblib.dump(model, tmp))


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` as CSV to ``path`` atomically (the old file, if any, stays whole on failure)."""
    path = Path(path)
    data = table.to_csv(index=False).encode("utf-8")
    _save_atomically(path, lambda tmp: tmp.write_bytes(data))


# ----------------------------------------------------------------------------------------------------------------
# class support


def class_support(meta: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{rule: {"networks": n, "layers": m}}`` of a dataset's ``meta`` table (one row per (network, layer))."""
    return {str(rule): {"networks": int(frame["network_id"].nunique()), "layers": int(len(frame))}
            for rule, frame in meta.groupby("rule", sort=True)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def support_text(support: dict[str, dict]) -> str:
    """``"adam 6 networks / 18 layers, sgdm 6 networks / 18 layers"`` (networks omitted when unknown)."""
    parts = []
    for rule, s in support.items():
        nets = f"{_count(s['networks'], 'network')} / " if s.get("networks") is not None else ""
        parts.append(f"{rule} {nets}{_count(s['layers'], 'layer')}")
    return ", ".join(parts)


def unbalanced_warning(support: dict[str, dict]) -> str | None:
    """A one-line warning when the largest class has :data:`UNBALANCED_RATIO` times the layers of the smallest."""
    layers = {rule: s["layers"] for rule, s in support.items()}
    big, small = max(layers, key=layers.get), min(layers, key=layers.get)
    if layers[big] < UNBALANCED_RATIO * max(layers[small], 1):
        return None
    return (f"the model's classes are unbalanced ({big} {layers[big]} layers, {small} {layers[small]}): its "
            f"probabilities lean towards {big}; fit on a store with as many networks of each rule")


def _model_support(model: dict) -> dict[str, dict]:
    if isinstance(model.get("support"), dict):
        return model["support"]
    rules, counts = np.unique(np.asarray(model["train"]["y"]).astype(str), return_counts=True)
    return {str(r): {"networks": None, "layers": int(c)} for r, c in zip(rules, counts, strict=True)}


# ----------------------------------------------------------------------------------------------------------------
# fit


def fit_model(store: str | Path, out: str | Path, *, classifier: str = "rf", obs_class: str = "all",
              condition: str = "clean", seed: int = 0, force: bool = False) -> dict:
    """Fit ``classifier`` on every (network, layer) of the store and save the model to ``out`` (joblib).

    The training arrays are saved too, so a model can be refitted on the statistics and checkpoints a user
    actually has (``predict_recordings(..., subset="auto")``), with the per-class support
    (``{rule: {"networks", "layers"}}``). ``out`` is checked before any work (:func:`check_model_out`: an
    existing file is replaced only with ``force``) and written atomically. A store whose finished networks use
    fewer than two rules is refused.
    """
    out = Path(out)
    layout = estimator_input(classifier)
    check_model_out(out, force)
    data = TrajectoryDataset.from_store(store, condition=condition, obs_class=obs_class)
    support = class_support(data.meta)
    if len(support) < 2:
        rule, s = next(iter(support.items()))
        raise StoreError(f"the finished networks of {shown(store)} use one rule only ({rule}, "
                         f"{_count(s['networks'], 'network')}); a rule classifier needs at least two — simulate a "
                         "grid with two or more rules")
    pipeline, _ = make_classifier(classifier, grid="none", random_state=seed)
    pipeline.fit(_features(data.X, data.X_cat, layout), data.y)
    model = {
        "format": MODEL_FORMAT, "classifier": classifier, "seed": seed, "condition": condition,
        "obs_names": list(data.obs_names), "n_checkpoints": int(data.n_checkpoints), "classes": list(pipeline.classes_),
        "pipeline": pipeline, "train": {"X": data.X, "X_cat": data.X_cat, "y": data.y},
        "n_rows": int(data.n_rows), "n_networks": int(data.meta.network_id.nunique()), "support": support,
    }
    check_model_out(out, force)  # the file may have appeared while fitting
    save_model(model, out)
    return {k: model[k] for k in ("classifier", "condition", "obs_names", "n_checkpoints", "classes", "n_rows",
                                  "n_networks", "support")}


def load_model(path: str | Path) -> dict:
    """Load a model written by :func:`fit_model`; a one-line :class:`StoreError` for anything else."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"model {shown(path)} is a directory; give the model file written by "
                         "`learnscope identify fit STORE --out FILE`")
    if not path.exists():
        raise StoreError(f"model file {shown(path)} does not exist (make one with `learnscope identify fit`)")
    looks_like_recordings = path.suffix.lower() in _RECORDING_SUFFIXES
    hint = (" — it looks like recordings: the model comes first, `learnscope identify predict MODEL RECORDINGS`"
            if looks_like_recordings else "; make a new one with `learnscope identify fit`")
    if path.stat().st_size == 0:
        raise StoreError(f"model file {shown(path)} is empty (0 bytes){hint}")
    try:
        model = joblib.load(path)
    except OSError as err:
        if err.errno is not None:  # a real environment failure (permissions, I/O), not a corrupt gzip stream
            raise
        raise StoreError(f"{shown(path)} is not a readable learnscope model (truncated, or not written by "
                         f"`learnscope identify fit`){hint}") from None
    except Exception:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise StoreError(f"{shown(path)} is not a readable learnscope model (truncated, or not written by "
                         f"`learnscope identify fit`){hint}") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT or any(k not in model for k in _MODEL_KEYS):
        raise StoreError(f"{shown(path)} is not a learnscope model file of format {MODEL_FORMAT}{hint}")
    return model


# ----------------------------------------------------------------------------------------------------------------
# recordings


def read_recordings(path: str | Path) -> pd.DataFrame:
    """Read a recordings table (``.csv`` or ``.parquet``), with one-line errors for unreadable or empty files."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"recordings {shown(path)} is a directory; give one CSV or Parquet file with a row per "
                          "(network, layer, checkpoint), like examples/recordings_example.csv")
    if not path.exists():
        raise ConfigError(f"recordings file {shown(path)} does not exist")
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{shown(path)} is empty") from None
    except OSError as err:
        if err.errno is not None:
            raise
        raise ConfigError(f"cannot read {shown(path)} as {kind}: {type(err).__name__}") from None
    except Exception as err:  # noqa: BLE001
        hint = " (is it a model? the model comes first)" if path.suffix == ".joblib" else ""
        raise ConfigError(f"cannot read {shown(path)} as {kind}: {type(err).__name__}{hint}") from None
    if df.empty:
        raise ConfigError(f"{shown(path)} has no rows")
    return df


def describe_checkpoints(numbers) -> str:
    """``"0..5"``, ``"0, 2, …, 20"`` or a short list: how a set of checkpoint numbers reads in a message."""
    c = [int(v) for v in numbers]
    if len(c) <= 4:
        return ", ".join(map(str, c)) if c else "none"
    steps = set(np.diff(c).tolist())
    if steps == {1}:
        return f"{c[0]}..{c[-1]}"
    if len(steps) == 1:
        return f"{c[0]}, {c[1]}, …, {c[-1]}"
    return ", ".join(map(str, c)) if len(c) <= 8 else ", ".join(map(str, c[:6])) + f", …, {c[-1]}"


def _where(df: pd.DataFrame, pos: int, column: str | None = None) -> str:
    """Row ``pos`` (0-based) named for a user: 1-based, with its network, layer and checkpoint (but ``column``)."""
    row = df.iloc[pos]
    keys = ", ".join(f"{k} {row[k]}" for k in ("network", "layer", "checkpoint") if k in df.columns and k != column)
    return f"row {pos + 1}" + (f" ({keys})" if keys else "")


def _numeric(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` with ``columns`` as numbers; a text value is a one-line error naming the column and its first row."""
    out = df.copy()
    for c in columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = (num.isna() & col.notna()).to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            value = col.iloc[pos]
            hint = " (write decimals with a dot)" if isinstance(value, str) and "," in value else ""
            raise ConfigError(f"column {c} must hold numbers, but {_where(df, pos, c)} holds {value!r}{hint}")
        out[c] = num.astype(float)
    return out


def _validated(df: pd.DataFrame, obs_names: list[str]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Check the columns and values of a recordings table: (numeric table, statistics present, missing)."""
    missing_keys = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing_keys:
        raise ShapeError(f"recordings lack the column(s) {', '.join(missing_keys)} "
                         f"(needed: {', '.join(KEY_COLUMNS)}, then one column per statistic)")
    unknown = [c for c in df.columns if c not in KEY_COLUMNS and c not in ALL_OBS]
    if unknown:
        raise ShapeError(f"unknown column(s) {', '.join(map(str, unknown))}: statistics are named as in "
                         "learnscope.identify.observables (e.g. actabs_mean)")
    df = df.reset_index(drop=True)
    for c in ("network", "layer", "checkpoint"):
        empty = df[c].isna().to_numpy()
        if empty.any():
            raise ConfigError(f"column {c} is empty in {_where(df, int(np.flatnonzero(empty)[0]), c)}")
    bad_groups = sorted(set(df["group"].astype(str)) - set(GROUPS))
    if bad_groups:
        raise ConfigError(f"group must be one of {', '.join(GROUPS)}; got {', '.join(bad_groups)}")
    present = [s for s in obs_names if s in df.columns]
    missing = [s for s in obs_names if s not in df.columns]
    df = _numeric(df, ["checkpoint", *present])
    ckpt = df["checkpoint"].to_numpy(dtype=float)
    not_whole = (ckpt != np.round(ckpt)) | (ckpt < 0)
    if not_whole.any():
        pos = int(np.flatnonzero(not_whole)[0])
        raise ConfigError(f"checkpoint must be a whole number ≥ 0 (0 = before learning), but "
                          f"{_where(df, pos, 'checkpoint')} holds {df['checkpoint'].iloc[pos]!r}")
    df["checkpoint"] = ckpt.astype(int)
    values = df[present].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        cols = [c for c, ok in zip(present, np.isfinite(values).all(axis=0), strict=True) if not ok]
        first = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise NonFiniteError(f"recordings have NaN/inf in {', '.join(cols)} (first in {_where(df, first)})")
    groups_per_layer = df.groupby(["network", "layer"])["group"].nunique()
    if (groups_per_layer > 1).any():
        net, layer = groups_per_layer[groups_per_layer > 1].index[0]
        raise ConfigError(f"network {net} layer {layer} is given more than one group; a layer has one position")
    return df, present, missing


def recording_checkpoints(df: pd.DataFrame) -> np.ndarray:
    """The checkpoint numbers of a (validated) recordings table, ascending; every (network, layer) must have each
    of them exactly once."""
    numbers = np.sort(df["checkpoint"].unique()).astype(int)
    per_layer = df.groupby(["network", "layer"], sort=False)["checkpoint"]
    sizes, distinct = per_layer.size(), per_layer.nunique()
    bad = (sizes != len(numbers)) | (distinct != len(numbers))
    if bad.any():
        net, layer = bad[bad].index[0]
        have = np.sort(per_layer.get_group((net, layer)).unique())
        twice = " (some twice)" if sizes[(net, layer)] != distinct[(net, layer)] else ""
        raise ShapeError(f"every (network, layer) needs each checkpoint {describe_checkpoints(numbers)} exactly "
                         f"once; network {net} layer {layer} has {describe_checkpoints(have)}{twice}")
    return numbers


def _renumber_message(numbers: np.ndarray, n_model: int) -> str:
    k = len(numbers)
    return (f"recordings number their checkpoints {describe_checkpoints(numbers)}, beyond the model's "
            f"0..{n_model - 1}: "
            f"renumber them 0..{k - 1} in order (taken as evenly spaced over learning), or give each the number "
            f"of the model checkpoint it matches (0 = before learning, {n_model - 1} = the end)")


def check_checkpoints_strict(numbers: np.ndarray, n_model: int) -> None:
    """Refuse recordings whose checkpoints are not exactly the model's ``0..n_model−1`` (``subset="strict"``)."""
    k = len(numbers)
    if np.array_equal(numbers, np.arange(n_model)):
        return
    if np.array_equal(numbers, np.arange(k)):
        raise ShapeError(f"recordings have {k} checkpoints per layer; the model was trained on {n_model} "
                         "(use --subset auto to refit on the checkpoints you have)")
    if numbers[-1] < n_model:
        raise ShapeError(f"recordings have checkpoints {describe_checkpoints(numbers)} ({k} of the model's "
                         f"0..{n_model - 1}); use --subset auto to refit on those")
    raise ShapeError(_renumber_message(numbers, n_model) + "; then use --subset auto")


def model_checkpoints(numbers: np.ndarray, n_model: int) -> tuple[np.ndarray, str]:
    """The model checkpoints that recorded checkpoints ``numbers`` correspond to, and how they were matched.

    ``0 … k−1`` (k ≤ n_model) are evenly spaced over learning: :math:`\\mathrm{round}(i (T-1)/(k-1))`
    (``"evenly spaced"``); any other numbering within ``0 … n_model−1`` is the model's own (``"by number"``).
    """
    k = len(numbers)
    if np.array_equal(numbers, np.arange(k)):
        if k > n_model:
            raise ShapeError(f"recordings have {k} checkpoints; the simulations have {n_model}: record at most "
                             "that many")
        return np.round(np.linspace(0, n_model - 1, k)).astype(int), "evenly spaced"
    if numbers[-1] < n_model:
        return numbers.astype(int), "by number"
    raise ShapeError(_renumber_message(numbers, n_model))


def _to_arrays(df: pd.DataFrame, obs_names: list[str]
               ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str], np.ndarray]:
    df, present, missing = _validated(df, obs_names)
    numbers = recording_checkpoints(df)
    df = df.sort_values(["network", "layer", "checkpoint"], kind="stable")
    keys = df.groupby(["network", "layer"], sort=False).first().reset_index()[["network", "layer", "group"]]
    X = df[present].to_numpy(dtype=float).reshape(len(keys), len(numbers), len(present))
    X_cat = np.stack([(keys.group.astype(str).to_numpy() == g).astype(float) for g in GROUPS], axis=1)
    return X, X_cat, keys, missing, numbers


def recordings_to_arrays(df: pd.DataFrame, obs_names: list[str], n_checkpoints: int | None
                         ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    """(X (rows, T, n_obs), X_cat (rows, 3), per-row keys, missing statistics) from a recordings table.

    With ``n_checkpoints`` the checkpoints must be exactly ``0..n_checkpoints−1``; without, any set that every
    (network, layer) has once each (see :func:`recording_checkpoints`).
    """
    X, X_cat, keys, missing, numbers = _to_arrays(df, obs_names)
    if n_checkpoints is not None:
        check_checkpoints_strict(numbers, n_checkpoints)
    return X, X_cat, keys, missing


def predict_recordings(model_path: str | Path, recordings: str | Path | pd.DataFrame, *, subset: str = "strict"
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Rule probabilities per layer and per network for a recordings table.

    subset : "strict" — every statistic and the checkpoints ``0..T−1`` of the model must be present (else a
        one-line error listing what is missing); "auto" — refit the model's classifier on the statistics and the
        checkpoints the recordings have (matched as in :func:`model_checkpoints`).
    Returns (per-layer table, per-network table, info); ``info`` holds the model's per-class ``support`` and an
    ``unbalanced`` warning (or ``None``).
    """
    if subset not in ("strict", "auto"):
        raise ConfigError(f"subset must be 'strict' or 'auto', got {subset!r}")
    model = load_model(model_path)
    df = recordings if isinstance(recordings, pd.DataFrame) else read_recordings(recordings)
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
        raise ShapeError(f"recordings lack {len(missing)} statistic(s) the model uses: {', '.join(missing)} "
                         "(use --subset auto to refit on the ones you have)")
    if subset == "auto" and (missing or not np.array_equal(numbers, np.arange(n_model))):
        cols, matched = model_checkpoints(numbers, n_model)
        keep = [i for i, s in enumerate(obs) if s not in missing]
        if not keep:
            raise ShapeError("the recordings share no statistic with the model")
        train = model["train"]
        Xtr = train["X"][:, cols][:, :, keep]
        pipeline, _ = make_classifier(model["classifier"], grid="none", random_state=model["seed"])
        pipeline.fit(_features(Xtr, train["X_cat"], layout), train["y"])
        info |= {"refitted": True, "training_checkpoints_used": cols.tolist(), "statistics_missing": missing,
                 "checkpoints_matched": matched}
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
