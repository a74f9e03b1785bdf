"""Recordings tables for ``identify predict``: reading, validating, and turning them into arrays.

The schema is documented in :mod:`learnscope.identify.predict`. Every check raises a one-line
:class:`~learnscope.errors.LearnscopeError` naming the column and the first bad row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, NonFiniteError, ShapeError
from learnscope.fileio import shown
from learnscope.identify.dataset import GROUPS
from learnscope.identify.observables import ALL_OBS

KEY_COLUMNS = ("network", "layer", "group", "checkpoint")

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

