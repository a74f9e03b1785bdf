"""The store as the analyses see it: pre-loaded tables, its measurement conditions, and whether it is big enough.

:func:`load_frames` reads a :class:`~learnscope.identify.store.Store` once into :class:`Frames`, which hands out
(and caches) one :class:`~learnscope.identify.dataset.TrajectoryDataset` per (condition, observable class).

Conditions are classified from the store's condition table (``store.json``): *clean* has ``sigma == 0`` and
``frac is None``; *absolute / relative noise* have ``sigma > 0``, ``frac is None`` and that ``noise_mode``;
*subsampling* has ``frac`` set and ``sigma == 0``; *unit counts* (:func:`unit_conditions`) have an absolute
``units`` count, ``sigma == 0`` and no activity model. Curve conditions must share the clean condition's
``gradavg_mode`` and ``weight_norm_mode`` (other conditions are ignored).

Views (:meth:`Frames.add_view`): a dataset derived from another, asked for as ``"<obs_class>@<view>"`` (e.g. the
networks of one objective, or the features at performance-matched checkpoints), so that the fit engine
(:mod:`learnscope.identify.runner`) caches and counts their fits like any other. The per-network facts the
analyses of issue 14 need are here too: :func:`network_objectives` (the ``objective`` column, or derived from
the task for stores written before it), :func:`dataset_part` and :func:`performance_curves`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, StoreError
from learnscope.fileio import shown
from learnscope.identify.classifiers import grid_size, make_classifier
from learnscope.identify.dataset import META_COLUMNS, TrajectoryDataset
from learnscope.identify.objectives import split_task_entry
from learnscope.identify.observables import ADMISSIBLE_OBS, Condition, is_original_model
from learnscope.identify.protocol import DEFAULT_TEST_SIZE
from learnscope.identify.store import Store

_CONDITION_DEFAULTS = {f.name: f.default for f in fields(Condition)}
VIEW_SEPARATOR = "@"
"""``"all@objective=contrastive"``: the view ``objective=contrastive`` of the ``all`` dataset."""
View = Callable[[TrajectoryDataset], TrajectoryDataset]


@dataclass
class Frames:
    """Pre-loaded store tables: ``observations`` (one row per network × layer × condition × checkpoint with the
    metadata columns and the admissible statistics), ``networks`` (one row per network: ``network_id``,
    ``status``, loss/accuracy curves) and ``conditions`` (the condition tables of ``store.json``; entries missing
    a key get :class:`~learnscope.identify.observables.Condition`'s defaults). Without a condition table only a
    condition named ``"clean"`` is known (as clean); other conditions are then not used for curves. ``source``
    names the store for people (as they typed it, never made absolute).
    """

    observations: pd.DataFrame
    networks: pd.DataFrame
    conditions: list[dict] | None = None
    source: str | None = None
    _datasets: dict = field(default_factory=dict, repr=False)
    _views: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.observations is None or len(self.observations) == 0:
            raise StoreError("the observations table is empty; simulate some networks first")
        if self.networks is None or len(self.networks) == 0:
            raise StoreError("the networks table is empty; simulate some networks first")
        present = list(dict.fromkeys(self.observations["condition"].astype(str)))
        if self.conditions is None:
            table = [{"name": "clean"}] if "clean" in present else []
        else:
            table = list(self.conditions)
        resolved = []
        for c in table:
            if not isinstance(c, dict) or "name" not in c:
                raise ConfigError(f"each condition must be a table with a 'name', got {c!r}")
            if str(c["name"]) in present:
                resolved.append(_CONDITION_DEFAULTS | dict(c))
        self.conditions = resolved
        self.unspecified = [n for n in present if n not in {c["name"] for c in resolved}]

    def add_view(self, name: str, view: View) -> str:
        """Register ``view`` (a function of a dataset returning a derived one: rows kept, ``meta`` relabelled,
        features rebuilt) under ``name``; ``dataset(c, f"{obs_class}@{name}")`` is then ``view(dataset(c,
        obs_class))``, cached. A name stands for one view for the life of these frames: registering it again is a
        no-op, so a name must encode every parameter of its view. Returns the name."""
        if VIEW_SEPARATOR in name:
            raise ConfigError(f"a view name cannot contain {VIEW_SEPARATOR!r}: {name!r}")
        self._views.setdefault(name, view)
        return name

    def dataset(self, condition: str, obs_class: str) -> TrajectoryDataset:
        """The :class:`TrajectoryDataset` of ``condition`` and ``obs_class`` (``"performance"``: the loss /
        accuracy curves of :meth:`TrajectoryDataset.performance_only`; ``"<obs_class>@<view>"``: a registered
        view of it, :meth:`add_view`), cached."""
        key = (condition, obs_class)
        if key not in self._datasets:
            base, sep, view = obs_class.partition(VIEW_SEPARATOR)
            if sep:
                if view not in self._views:
                    raise ConfigError(f"unknown dataset view {view!r}; known: {sorted(self._views)}")
                ds = self._views[view](self.dataset(condition, base))
            elif obs_class == "performance":
                ds = self.dataset(condition, "all").performance_only()
            else:
                ds = TrajectoryDataset.from_frames(self.observations, self.networks, condition, obs_class)
            self._datasets[key] = ds
        return self._datasets[key]


def load_frames(source: Store | str | Path | Frames) -> Frames:
    """:class:`Frames` of a store (a :class:`Store` or its directory); a :class:`Frames` is returned as is.

    Reads only the metadata columns, ``condition``, ``checkpoint`` and the 24 admissible statistics."""
    if isinstance(source, Frames):
        return source
    store = source if isinstance(source, Store) else Store.open(Path(source))
    networks = store.networks()
    if networks.empty:
        raise StoreError(f"{shown(store.root)} holds no finished networks; run `learnscope identify simulate` first")
    columns = list(dict.fromkeys((*META_COLUMNS, "condition", "checkpoint", *ADMISSIBLE_OBS)))
    try:
        obs = store.observations(columns=columns)
    except (KeyError, ValueError) as err:
        raise StoreError(f"{shown(store.root)}: observations lack a needed column ({err})") from None
    conditions = (store.meta.get("grid") or {}).get("conditions")
    return Frames(obs, networks, conditions=conditions, source=shown(store.root))


def _is_default_modes(c: dict) -> bool:
    return c["gradavg_mode"] == _CONDITION_DEFAULTS["gradavg_mode"] and \
        c["weight_norm_mode"] == _CONDITION_DEFAULTS["weight_norm_mode"]


def clean_condition(frames: Frames) -> dict:
    """The clean condition (``sigma == 0``, ``frac is None``): the one named ``"clean"`` if it qualifies, else
    the first with default gradavg / weight-norm modes, else the first."""
    clean = [c for c in frames.conditions if float(c["sigma"]) == 0.0 and c["frac"] is None
             and is_original_model(c)]
    if not clean:
        names = [c["name"] for c in frames.conditions] + frames.unspecified
        raise ConfigError(f"no clean condition (sigma 0, frac None) among the store's conditions {names}; "
                          "add [[conditions]] name = \"clean\" to the grid")
    for pick in (lambda c: c["name"] == "clean", _is_default_modes, lambda c: True):
        for c in clean:
            if pick(c):
                return c
    raise AssertionError("unreachable")  # pragma: no cover


def curve_conditions(frames: Frames, kind: str) -> list[dict]:
    """Conditions of a curve, sorted by their x value: ``"absolute"`` / ``"relative"`` noise (by ``sigma``) or
    ``"subsampling"`` (by ``frac``, descending), with the clean condition's gradavg / weight-norm modes. The
    clean condition itself is not included."""
    ref = clean_condition(frames)

    def same_modes(c: dict) -> bool:
        return c["gradavg_mode"] == ref["gradavg_mode"] and c["weight_norm_mode"] == ref["weight_norm_mode"]

    if kind in ("absolute", "relative"):
        out = [c for c in frames.conditions if same_modes(c) and c["frac"] is None and float(c["sigma"]) > 0
               and c["noise_mode"] == kind and is_original_model(c)]
        return sorted(out, key=lambda c: float(c["sigma"]))
    if kind == "subsampling":
        out = [c for c in frames.conditions if same_modes(c) and c["frac"] is not None
               and float(c["sigma"]) == 0.0 and is_original_model(c)]
        return sorted(out, key=lambda c: -float(c["frac"]))
    raise ConfigError(f"unknown curve kind {kind!r}")  # pragma: no cover


def check_enough_networks(frames: Frames, classifiers: Sequence[str], grid: str) -> dict[str, int]:
    """Raise a one-line :class:`ConfigError` unless the clean condition has ≥ 2 rules and enough networks per rule
    for network-grouped splits (``max(1, round(0.25 n))`` test networks per rule, ≥ 1 left to train on, ≥ 2 when a
    classifier has an inner grid search). Returns the networks per rule."""
    ds = frames.dataset(clean_condition(frames)["name"], "all")
    per_rule = ds.meta.groupby("rule")["network_id"].nunique().sort_index()
    rules = [str(r) for r in per_rule.index]
    if len(rules) < 2:
        raise ConfigError(f"identifying a rule needs at least 2 learning rules with status-ok networks; the store "
                          f"has {rules}")
    inner = any(grid_size(make_classifier(c, grid)[1]) > 1 for c in classifiers)
    need_train = 2 if inner else 1
    n_min = int(per_rule.min())
    n_test = max(1, int(np.floor(DEFAULT_TEST_SIZE * n_min + 0.5)))
    if n_min - n_test < need_train:
        rule = str(per_rule.idxmin())
        need = need_train + 1
        what = "network-grouped splits with an inner grid search" if inner else "network-grouped splits"
        raise ConfigError(f"rule {rule!r} has only {n_min} status-ok network(s); {what} need at least {need} per "
                          "rule (simulate more seeds or batch sizes, or use grid='none')")
    return {r: int(n) for r, n in per_rule.items()}


def unit_conditions(frames: Frames) -> list[dict]:
    """The conditions of the recorded-unit count curve, sorted by ``units``: an absolute ``units`` count, no noise,
    no ``frac``, the same units in every session (``matched``), the rate model, every probe, no jitter, and the
    clean condition's gradavg / weight-norm modes. ``observables`` may be ``"all"`` or ``"act"`` (then the weight
    curve has no point there). One condition per count: the first of a repeated count is kept."""
    ref = clean_condition(frames)
    out: dict[int, dict] = {}
    for c in frames.conditions:
        if (c.get("units") is not None and c["frac"] is None and float(c["sigma"]) == 0.0 and c["matched"]
                and c["activity_model"] == "rate" and c["probes"] is None and float(c["jitter"]) == 0.0
                and c["gradavg_mode"] == ref["gradavg_mode"] and c["weight_norm_mode"] == ref["weight_norm_mode"]):
            out.setdefault(int(c["units"]), c)
    return [out[k] for k in sorted(out)]


def objective_of(task: str) -> str:
    """The objective of a stored task entry (``"digits:contrastive"`` → ``"contrastive"``; a bare name is its
    kind: ``"teacher_regression"`` → ``"regression"``, others ``"classification"``), for stores written before
    the ``objective`` column."""
    return split_task_entry(str(task))[1]


def dataset_part(task: str) -> str:
    """The dataset of a stored task entry, the part before ``":"`` (``"digits:contrastive"`` → ``"digits"``)."""
    return str(task).partition(":")[0]


def network_objectives(frames: Frames) -> dict[str, str]:
    """``network_id → objective`` for every network of ``frames.networks``: its ``objective`` column where the
    store has one (a missing value is derived), else :func:`objective_of` its task (the networks table's, else
    the observations')."""
    nets = frames.networks.drop_duplicates("network_id")
    if "task" in nets:
        tasks = dict(zip(nets["network_id"].astype(str), nets["task"].astype(str), strict=True))
    else:
        first = frames.observations.drop_duplicates("network_id")
        tasks = dict(zip(first["network_id"].astype(str), first["task"].astype(str), strict=True))
    stored = (dict(zip(nets["network_id"].astype(str), nets["objective"], strict=True))
              if "objective" in nets else {})
    out = {}
    for nid, task in tasks.items():
        value = stored.get(nid)
        out[nid] = str(value) if isinstance(value, str) and value else objective_of(task)
    return out


def curve_array(value: object) -> np.ndarray | None:
    """A stored per-checkpoint curve as a float64 vector, or ``None`` if it is missing, empty or not finite
    everywhere."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    arr = np.asarray(value, dtype=np.float64).ravel()
    return arr if arr.size and np.isfinite(arr).all() else None


def performance_curves(frames: Frames) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, float]]:
    """Each status-ok network's test performance per checkpoint, with what it measures and its chance level.

    ``performance_curve`` / ``performance_measure`` / ``chance_performance`` where the networks table has them;
    for a network without them (a store written before, or a missing value), ``test_accuracy_curve``
    (``"accuracy"``, chance NaN: the number of classes is not stored). A network whose curve is missing or not
    finite everywhere (regression in an old store: its accuracy is NaN) is left out. Returns three dicts keyed by
    ``network_id``: curve ``(n_checkpoints,)`` float64, measure name, chance."""
    nets = frames.networks
    nets = nets[nets["status"] == "ok"].drop_duplicates("network_id")
    curves, measures, chance = {}, {}, {}
    for _, row in nets.iterrows():
        nid = str(row["network_id"])
        curve = curve_array(row["performance_curve"]) if "performance_curve" in nets else None
        if curve is not None:
            measure = row.get("performance_measure")
            curves[nid], measures[nid] = curve, str(measure) if isinstance(measure, str) else "performance"
            value = row.get("chance_performance")
            chance[nid] = float(value) if value is not None else float("nan")
            continue
        curve = curve_array(row["test_accuracy_curve"]) if "test_accuracy_curve" in nets else None
        if curve is not None:
            curves[nid], measures[nid], chance[nid] = curve, "accuracy", float("nan")
    return curves, measures, chance


__all__ = ["VIEW_SEPARATOR", "Frames", "check_enough_networks", "clean_condition", "curve_array", "curve_conditions",
           "dataset_part",
           "load_frames", "network_objectives", "objective_of", "performance_curves", "unit_conditions"]
