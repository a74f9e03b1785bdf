r"""Trajectory datasets for rule identification: one row per (network, layer) (identify-spec §4.6, §7.1 item 3).

A :class:`TrajectoryDataset` holds, for one measurement condition of a simulated grid,

* ``X``: ``(n_rows, n_checkpoints, n_obs)`` float64, the trajectory of each selected statistic;
* ``X_cat``: ``(n_rows, 3)`` one-hot layer position in the order ``early, middle, deep``;
* ``y``: ``(n_rows,)`` rule names (strings);
* ``meta``: a DataFrame with one row per example (``network_id, task, architecture, rule, batch_size, seed,
  layer, group`` plus ``lr`` and ``layer_index``).

Rows are sorted by ``network_id`` then ``layer_index``; only networks whose status is ``"ok"`` are used.

Feature layouts, as in the original ``cls_dataset_transform``:

* :meth:`TrajectoryDataset.to_2d` (SVM, RF, gradient boosting): ``X`` transposed to ``(n, n_obs, T)`` and reshaped
  to ``(n, n_obs·T)``, **observable-major** (the first ``T`` columns are observable 1's trajectory), with the
  three one-hot columns prepended: ``(n, 3 + n_obs·T)``;
* :meth:`TrajectoryDataset.to_3d` (Conv1D, MiniRocket): ``X`` channels-last ``(n, T, n_obs)`` and ``X_cat``
  repeated over time ``(n, T, 3)``; :meth:`TrajectoryDataset.features` concatenates them as
  ``[X_cat, X]`` along the last axis, as the original pipeline did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from learnscope.circuits.base import GROUPS
from learnscope.errors import ConfigError, NonFiniteError, ShapeError, StoreError, UnknownNameError
from learnscope.identify.observables import ALL_OBS, OBS_CLASSES
from learnscope.identify.store import Store
from learnscope.validation import check_scalar

META_COLUMNS: tuple[str, ...] = (
    "network_id", "task", "architecture", "rule", "batch_size", "seed", "layer", "group", "lr", "layer_index",
)
CHECKPOINT_MODES: tuple[str, ...] = ("first-k", "every-m", "spread-k", "last-k", "end-only")
PERFORMANCE_CURVES: tuple[str, ...] = ("loss_curve", "train_accuracy_curve", "test_accuracy_curve")
PERFORMANCE_NAMES: tuple[str, ...] = ("loss", "train_accuracy", "test_accuracy")
_KEY_COLUMNS = ("condition", "checkpoint")


def resolve_obs(obs_class: str | Sequence[str]) -> tuple[str, ...]:
    """The observable names of ``obs_class``: ``"all" | "weight" | "act" | "grad"`` (admissible lists of spec §4.1),
    a single observable name, or a list of names from ``ALL_OBS``."""
    if isinstance(obs_class, str):
        if obs_class in OBS_CLASSES:
            return tuple(OBS_CLASSES[obs_class])
        if obs_class in ALL_OBS:
            return (obs_class,)
        raise UnknownNameError("observable class", obs_class, (*OBS_CLASSES, "<an observable name>"))
    names = tuple(obs_class)
    if not names:
        raise ConfigError("obs_class is an empty list; name at least one statistic")
    for name in names:
        if name not in ALL_OBS:
            raise UnknownNameError("statistic", str(name), ALL_OBS)
    if len(set(names)) != len(names):
        raise ConfigError(f"obs_class lists a statistic twice: {list(names)}")
    return names


def checkpoint_indices(mode: str, n_checkpoints: int, k: int | None = None) -> np.ndarray:
    r"""Indices (ascending, into ``range(n_checkpoints)``) kept by a temporal-subsampling ``mode``.

    * ``"first-k"``: ``0, …, k−1`` (an early window);
    * ``"every-m"``: ``0, m, 2m, …`` (``k`` is the period ``m``);
    * ``"spread-k"``: ``k ≥ 2`` points evenly spaced including the first and the last,
      :math:`\mathrm{round}(i (C-1)/(k-1))` for :math:`i = 0..k-1` (round half to even);
    * ``"last-k"``: the last ``k``;
    * ``"end-only"``: the last checkpoint (``k`` must be ``None`` or 1).
    """
    C = n_checkpoints
    if mode not in CHECKPOINT_MODES:
        raise UnknownNameError("checkpoint mode", str(mode), CHECKPOINT_MODES)
    if mode == "end-only":
        if k not in (None, 1):
            raise ConfigError(f"end-only keeps one checkpoint; pass k=None or 1, got {k!r}")
        return np.array([C - 1])
    k = check_scalar("k", k, int, low=1, note=f"the {mode} window")
    if mode == "every-m":
        return np.arange(0, C, k)
    if k > C:
        raise ConfigError(f"{mode} asks for {k} checkpoints but the dataset has {C}")
    if mode == "first-k":
        return np.arange(k)
    if mode == "last-k":
        return np.arange(C - k, C)
    if k < 2:
        raise ConfigError("spread-k needs k >= 2 (it keeps the first and the last checkpoint)")
    return np.round(np.linspace(0.0, C - 1, k)).astype(int)


@dataclass(frozen=True)
class TrajectoryDataset:
    """Labelled trajectories of one measurement condition (see the module docstring for shapes)."""

    X: np.ndarray
    X_cat: np.ndarray
    y: np.ndarray
    meta: pd.DataFrame
    obs_names: tuple[str, ...]
    checkpoints: np.ndarray
    condition: str = "clean"
    networks: pd.DataFrame | None = None

    # ----------------------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_store(cls, store_or_path: Store | str | Path, condition: str = "clean",
                   obs_class: str | Sequence[str] = "all") -> TrajectoryDataset:
        """Load the rows of ``condition`` with the statistics of ``obs_class`` from a store (a :class:`Store` or
        its directory)."""
        store = store_or_path if isinstance(store_or_path, Store) else Store.open(Path(store_or_path))
        names = resolve_obs(obs_class)
        networks = store.networks()
        if networks.empty:
            raise StoreError(f"{store.root} holds no finished networks; run `learnscope identify simulate` first")
        columns = list(dict.fromkeys((*META_COLUMNS, *_KEY_COLUMNS, *names)))
        try:
            obs = store.observations(columns=columns)
        except (KeyError, ValueError) as err:  # pyarrow raises ArrowInvalid (a ValueError) for a missing column
            raise StoreError(f"{store.root}: observations lack a needed column ({err})") from None
        return cls.from_frames(obs, networks, condition=condition, obs_class=names)

    @classmethod
    def from_frames(cls, observations: pd.DataFrame, networks: pd.DataFrame, condition: str = "clean",
                    obs_class: str | Sequence[str] = "all") -> TrajectoryDataset:
        """Build the dataset from an observations table and a networks table (see ``identify/store.py``).

        Every (network, layer) must have the same checkpoints ``0..C−1``, once each, under ``condition``.
        Raises :class:`UnknownNameError` for an unknown condition or statistic, :class:`NonFiniteError` if a
        selected statistic is NaN/inf anywhere, :class:`ShapeError` for missing or repeated checkpoints.
        """
        names = resolve_obs(obs_class)
        if observations is None or len(observations) == 0:
            raise StoreError("the observations table is empty; simulate some networks first")
        missing = [c for c in (*META_COLUMNS, *_KEY_COLUMNS, *names) if c not in observations.columns]
        if missing:
            raise ConfigError(f"the observations table lacks column(s) {missing}")
        if networks is None or "status" not in networks or "network_id" not in networks:
            raise ConfigError("networks must be the store's network table (with network_id and status columns)")
        ok_nets = networks[networks["status"] == "ok"]
        conditions = sorted(set(observations["condition"].astype(str)))
        if condition not in conditions:
            raise UnknownNameError("condition", str(condition), conditions)
        obs = observations[(observations["condition"] == condition)
                           & observations["network_id"].isin(ok_nets["network_id"])]
        if len(obs) == 0:
            raise StoreError(f"no observations of a network with status 'ok' under condition {condition!r}")
        obs = obs.sort_values(["network_id", "layer_index", "checkpoint"], kind="stable")

        keys = obs[["network_id", "layer_index"]]
        row_start = ~keys.duplicated().to_numpy()
        n_rows = int(row_start.sum())
        n_ckpt = int(obs["checkpoint"].max()) + 1
        expected = np.tile(np.arange(n_ckpt), n_rows)
        if len(obs) != n_rows * n_ckpt or not np.array_equal(obs["checkpoint"].to_numpy(), expected):
            counts = obs.groupby(["network_id", "layer_index"]).size()
            bad = counts[counts != n_ckpt]
            where = f" e.g. {bad.index[0]} has {bad.iloc[0]}" if len(bad) else " (some are repeated or missing)"
            raise ShapeError(f"every (network, layer) needs checkpoints 0..{n_ckpt - 1} once each under condition "
                             f"{condition!r};{where}")

        values = obs[list(names)].to_numpy(dtype=np.float64).reshape(n_rows, n_ckpt, len(names))
        finite = np.isfinite(values)
        if not finite.all():
            bad_counts = (~finite).sum(axis=(0, 1))
            bad = ", ".join(f"{n} ({c} values)" for n, c in zip(names, bad_counts, strict=True) if c)
            raise NonFiniteError(f"non-finite values in statistic(s) {bad} under condition {condition!r}; "
                                 "choose obs_class without them (the admissible lists are finite by design)")

        meta = obs.loc[row_start, list(META_COLUMNS)].reset_index(drop=True)
        groups = meta["group"].astype(str).to_numpy()
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise UnknownNameError("layer group", unknown[0], GROUPS)
        X_cat = (groups[:, None] == np.array(GROUPS)[None, :]).astype(np.float64)
        rules_per_net = meta.groupby("network_id")["rule"].nunique()
        if (rules_per_net > 1).any():
            raise ConfigError(f"network {rules_per_net[rules_per_net > 1].index[0]!r} has more than one rule label")
        return cls(X=values, X_cat=X_cat, y=meta["rule"].astype(str).to_numpy(), meta=meta, obs_names=names,
                   checkpoints=np.arange(n_ckpt), condition=condition, networks=ok_nets.reset_index(drop=True))

    # ----------------------------------------------------------------------------------------------------------
    # views

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_checkpoints(self) -> int:
        return self.X.shape[1]

    @property
    def classes(self) -> np.ndarray:
        """The sorted distinct rule labels."""
        return np.unique(self.y)

    def select_checkpoints(self, mode: str, k: int | None = None) -> TrajectoryDataset:
        """A dataset with the checkpoints of :func:`checkpoint_indices` (relative to this dataset's checkpoints);
        ``checkpoints`` keeps the indices into the original trajectory."""
        idx = checkpoint_indices(mode, self.n_checkpoints, k)
        return replace(self, X=self.X[:, idx, :], checkpoints=self.checkpoints[idx])

    def subset(self, rows: np.ndarray) -> TrajectoryDataset:
        """The dataset restricted to ``rows`` (integer indices or a boolean mask of length ``n_rows``)."""
        rows = np.asarray(rows)
        return replace(self, X=self.X[rows], X_cat=self.X_cat[rows], y=self.y[rows],
                       meta=self.meta.iloc[rows].reset_index(drop=True))

    def to_2d(self, include_cat: bool = True) -> np.ndarray:
        """Observable-major flattening ``(n, 3 + n_obs·T)`` (``(n, n_obs·T)`` without the one-hot columns)."""
        n, T, n_obs = self.X.shape
        flat = self.X.transpose(0, 2, 1).reshape(n, n_obs * T)
        return np.concatenate([self.X_cat, flat], axis=1) if include_cat else flat

    def to_3d(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, X_cat)`` channels-last: ``(n, T, n_obs)`` and the one-hot repeated over time ``(n, T, 3)``."""
        n, T, _ = self.X.shape
        return self.X.copy(), np.repeat(self.X_cat[:, None, :], T, axis=1)

    def features(self, layout: str = "2d") -> np.ndarray:
        """Classifier input: :meth:`to_2d` for ``"2d"``; ``concat([X_cat, X], -1)`` ``(n, T, 3 + n_obs)`` for
        ``"3d"``."""
        if layout == "2d":
            return self.to_2d()
        if layout == "3d":
            X, X_cat = self.to_3d()
            return np.concatenate([X_cat, X], axis=-1)
        raise UnknownNameError("feature layout", str(layout), ("2d", "3d"))

    def feature_names_2d(self) -> list[str]:
        """Names of the :meth:`to_2d` columns: ``grp_id0..2`` then ``f"{obs}@{checkpoint}"``, observable-major."""
        return [f"grp_id{i}" for i in range(len(GROUPS))] + [
            f"{name}@{int(c)}" for name in self.obs_names for c in self.checkpoints]

    def performance_only(self, networks: pd.DataFrame | None = None) -> TrajectoryDataset:
        """The performance-only baseline (spec §7.3 item 2): same rows, labels and one-hot, but the statistics are
        the network's ``loss``, ``train_accuracy`` and ``test_accuracy`` at this dataset's checkpoints (the same
        values for every layer of a network).

        ``networks`` defaults to the table the dataset was built from. A task without an accuracy (regression:
        the whole curve is NaN) gets zeros for that curve; any other non-finite value raises
        :class:`NonFiniteError`.
        """
        nets = self.networks if networks is None else networks
        if nets is None:
            raise ConfigError("pass the networks table: this dataset was not built from one")
        missing = [c for c in ("network_id", *PERFORMANCE_CURVES) if c not in nets.columns]
        if missing:
            raise ConfigError(f"the networks table lacks column(s) {missing}")
        by_id = nets.drop_duplicates("network_id").set_index("network_id")
        ids = self.meta["network_id"].to_numpy()
        absent = sorted(set(ids) - set(by_id.index))
        if absent:
            raise ConfigError(f"network {absent[0]!r} has no row in the networks table")
        unique_ids, inverse = np.unique(ids, return_inverse=True)
        per_net = np.empty((len(unique_ids), len(self.checkpoints), len(PERFORMANCE_CURVES)))
        last = int(self.checkpoints.max())
        for i, nid in enumerate(unique_ids):
            for j, col in enumerate(PERFORMANCE_CURVES):
                curve = np.asarray(by_id.at[nid, col], dtype=np.float64).ravel()
                if curve.size <= last:
                    raise ShapeError(f"network {nid!r}: {col} has {curve.size} points, the dataset needs "
                                     f"checkpoint {last}")
                if j > 0 and np.isnan(curve).all():
                    curve = np.zeros_like(curve)
                per_net[i, :, j] = curve[self.checkpoints]
        if not np.isfinite(per_net).all():
            j = int(np.flatnonzero(~np.isfinite(per_net).all(axis=(0, 1)))[0])
            raise NonFiniteError(f"non-finite values in {PERFORMANCE_CURVES[j]} of a network with status 'ok'")
        return replace(self, X=per_net[inverse], obs_names=PERFORMANCE_NAMES)
