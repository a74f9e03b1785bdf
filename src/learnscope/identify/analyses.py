r"""The paper's analyses on a simulated store, one function each (identify-spec §6.3, §7.1 item 5, §7.3, §7.4).

Every function takes a *source* (a :class:`~learnscope.identify.store.Store`, its directory, or pre-loaded
:class:`Frames`), classifier names, ``grid`` (``"reduced" | "original" | "none"``, see
:func:`~learnscope.identify.classifiers.make_classifier`), ``n_splits``, ``seed`` and an optional
``progress(done, total)`` callback counted in *outer-split fits* (one fit = one outer split of
:func:`~learnscope.identify.protocol.evaluate`, inner grid search included). Each returns a plain JSON-ready dict
(floats, ints, strings, lists, dicts; NaN becomes ``None``).

Every reported number uses **network-grouped** outer splits (``split_mode="network"``: all layers of a network on
one side) unless a key says otherwise. Outer splits depend only on the rule/network metadata and ``seed``, so
the same networks are tested in every condition, observable class and checkpoint selection: differences between
two curves are *paired* per split and their s.e.m. is the s.e.m. of the per-split differences.

=========================== ===========================================================================
function                    what it measures
=========================== ===========================================================================
:func:`main_table`          accuracy per observable class (weight, act, grad, all) × classifier on the
                            clean condition, plus row-level vs network-level splits for ``all``
:func:`noise_curves`        weight / act / all accuracy vs σ for absolute and relative noise conditions,
                            and accuracy(act) − accuracy(weight) per σ (§7.3 item 4, §8 item 4)
:func:`subsampling_curve`   the same vs the fraction of units kept (clean = 1.0)
:func:`temporal_curves`     ``all`` with first-k, spread-k, last-k, every-m and end-only checkpoints (§7.3
                            item 5: spread-3 ≥ first-3)
:func:`heldout`             held-out architecture and held-out task, per held-out value and mean (§7.3 item 6)
:func:`importances`         permutation importance on network splits, summed per statistic and per
                            checkpoint (§7.4)
:func:`performance_baseline` a classifier on loss/accuracy curves only vs the observables (§7.3 item 2)
:func:`run_all`             all of the above that the store supports → ``metrics.json`` + ``report.html``
=========================== ===========================================================================

Conditions are classified from the store's condition table (``store.json``): *clean* has ``sigma == 0`` and
``frac is None``; *absolute / relative noise* have ``sigma > 0``, ``frac is None`` and that ``noise_mode``;
*subsampling* has ``frac`` set and ``sigma == 0``. Curve conditions must share the clean condition's
``gradavg_mode`` and ``weight_norm_mode`` (other conditions are ignored).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from learnscope.errors import ConfigError, LearnscopeError, StoreError, check_positive_int
from learnscope.identify.classifiers import estimator_input, grid_size, make_classifier
from learnscope.identify.dataset import GROUPS, META_COLUMNS, PERFORMANCE_NAMES, TrajectoryDataset
from learnscope.identify.observables import ADMISSIBLE_OBS, OBS_CLASSES, Condition
from learnscope.identify.protocol import evaluate, get_splits, inner_cv, split_seed_for
from learnscope.identify.store import Store

MAIN_CLASSES: tuple[str, ...] = ("weight", "act", "grad", "all")
CURVE_CLASSES: tuple[str, ...] = ("weight", "act", "all")
DEFAULT_KS: tuple[int, ...] = (2, 3, 5)
DEFAULT_MS: tuple[int, ...] = (2, 3)
ORDERING_MARGIN = 0.05  # spec §7.3 item 4: accuracy(act) − accuracy(weight) ≥ 0.05
TEST_SIZE = 0.25
Progress = Callable[[int, int], None]
_ACC_KEYS = ("accuracy_mean", "accuracy_sem", "balanced_accuracy_mean", "balanced_accuracy_sem",
             "accuracy_per_split", "balanced_accuracy_per_split")
_CONDITION_DEFAULTS = {f.name: f.default for f in fields(Condition)}


IMPORTANCE_CLASSES: tuple[str, ...] = ("weight", "act", "grad")


def importance_groups(obs_names: list[str], n_checkpoints: int) -> tuple[list[str], list[np.ndarray]]:
    """Column groups of the 2-D features (3 one-hot columns, then observable-major trajectories) whose joint
    permutation measures an importance: each statistic's trajectory, each checkpoint's statistics, each
    observable class, and the layer-position one-hot. Returns (names, column index arrays) in that order."""
    T, lead = n_checkpoints, len(GROUPS)
    stat_cols = [lead + j * T + np.arange(T) for j in range(len(obs_names))]
    ckpt_cols = [lead + np.arange(len(obs_names)) * T + t for t in range(T)]
    class_cols = [np.concatenate([stat_cols[j] for j, n in enumerate(obs_names) if n in OBS_CLASSES[c]]
                                 or [np.zeros(0, dtype=int)]) for c in IMPORTANCE_CLASSES]
    names = ([f"statistic:{n}" for n in obs_names] + [f"checkpoint:{t}" for t in range(T)]
             + [f"class:{c}" for c in IMPORTANCE_CLASSES] + ["layer_position"])
    return names, [*stat_cols, *ckpt_cols, *class_cols, np.arange(lead)]


def grouped_permutation_importance(model: Any, X: np.ndarray, y: np.ndarray, groups: Sequence[np.ndarray],
                                   n_repeats: int, rng: np.random.Generator) -> np.ndarray:
    """Mean accuracy drop when the columns of each group are shuffled together across rows: shape (len(groups),).

    One row permutation per repeat is applied to all columns of a group at once, so a group's columns keep their
    joint structure within a row; an empty group has importance 0.
    """
    base = float(np.mean(model.predict(X) == y))
    out = np.zeros(len(groups))
    for g, cols in enumerate(groups):
        if len(cols) == 0:
            continue
        drops = []
        for _ in range(n_repeats):
            Xp = X.copy()
            Xp[:, cols] = X[rng.permutation(len(X))][:, cols]
            drops.append(base - float(np.mean(model.predict(Xp) == y)))
        out[g] = np.mean(drops)
    return out


# --------------------------------------------------------------------------------------------------------------
# inputs


@dataclass
class Frames:
    """Pre-loaded store tables: ``observations`` (one row per network × layer × condition × checkpoint with the
    metadata columns and the admissible statistics), ``networks`` (one row per network: ``network_id``,
    ``status``, loss/accuracy curves) and ``conditions`` (the condition tables of ``store.json``; entries missing
    a key get :class:`~learnscope.identify.observables.Condition`'s defaults). Without a condition table only a
    condition named ``"clean"`` is known (as clean); other conditions are then not used for curves.
    """

    observations: pd.DataFrame
    networks: pd.DataFrame
    conditions: list[dict] | None = None
    source: str | None = None
    _datasets: dict = field(default_factory=dict, repr=False)

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

    def dataset(self, condition: str, obs_class: str) -> TrajectoryDataset:
        """The :class:`TrajectoryDataset` of ``condition`` and ``obs_class`` (``"performance"``: the loss /
        accuracy curves of :meth:`TrajectoryDataset.performance_only`), cached."""
        key = (condition, obs_class)
        if key not in self._datasets:
            if obs_class == "performance":
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
        raise StoreError(f"{store.root} holds no finished networks; run `learnscope identify simulate` first")
    columns = list(dict.fromkeys((*META_COLUMNS, "condition", "checkpoint", *ADMISSIBLE_OBS)))
    try:
        obs = store.observations(columns=columns)
    except (KeyError, ValueError) as err:
        raise StoreError(f"{store.root}: observations lack a needed column ({err})") from None
    conditions = (store.meta.get("grid") or {}).get("conditions")
    return Frames(obs, networks, conditions=conditions, source=str(store.root))


def _is_default_modes(c: dict) -> bool:
    return c["gradavg_mode"] == _CONDITION_DEFAULTS["gradavg_mode"] and \
        c["weight_norm_mode"] == _CONDITION_DEFAULTS["weight_norm_mode"]


def clean_condition(frames: Frames) -> dict:
    """The clean condition (``sigma == 0``, ``frac is None``): the one named ``"clean"`` if it qualifies, else
    the first with default gradavg / weight-norm modes, else the first."""
    clean = [c for c in frames.conditions if float(c["sigma"]) == 0.0 and c["frac"] is None]
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
               and c["noise_mode"] == kind]
        return sorted(out, key=lambda c: float(c["sigma"]))
    if kind == "subsampling":
        out = [c for c in frames.conditions if same_modes(c) and c["frac"] is not None
               and float(c["sigma"]) == 0.0]
        return sorted(out, key=lambda c: -float(c["frac"]))
    raise ConfigError(f"unknown curve kind {kind!r}")  # pragma: no cover


# --------------------------------------------------------------------------------------------------------------
# validation


def _check_classifiers(classifiers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(classifiers, str):
        classifiers = (classifiers,)
    classifiers = tuple(classifiers)
    if not classifiers:
        raise ConfigError("name at least one classifier (e.g. rf)")
    for name in classifiers:
        estimator_input(name)  # UnknownNameError for a bad name
    if len(set(classifiers)) != len(classifiers):
        raise ConfigError(f"a classifier is named twice: {list(classifiers)}")
    return classifiers


def _check_settings(classifiers: Sequence[str], grid: str, n_splits: int, seed: int) -> tuple[str, ...]:
    classifiers = _check_classifiers(classifiers)
    for name in classifiers:
        make_classifier(name, grid)  # UnknownNameError for a bad grid
    check_positive_int("n_splits", n_splits)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return classifiers


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
    n_test = max(1, int(np.floor(TEST_SIZE * n_min + 0.5)))
    if n_min - n_test < need_train:
        rule = str(per_rule.idxmin())
        need = need_train + 1
        what = "network-grouped splits with an inner grid search" if inner else "network-grouped splits"
        raise ConfigError(f"rule {rule!r} has only {n_min} status-ok network(s); {what} need at least {need} per "
                          "rule (simulate more seeds or batch sizes, or use grid='none')")
    return {r: int(n) for r, n in per_rule.items()}


# --------------------------------------------------------------------------------------------------------------
# the fit runner: deduplicates identical fits across analyses and counts progress


@dataclass(frozen=True)
class _Job:
    condition: str
    obs_class: str  # an OBS_CLASSES key or "performance"
    classifier: str
    split_mode: str = "network"
    ckpt_mode: str | None = None
    k: int | None = None
    kind: str = "evaluate"  # or "importance"


class _Runner:
    def __init__(self, frames: Frames, grid: str, n_splits: int, seed: int, progress: Progress | None,
                 n_repeats: int = 3):
        self.frames, self.grid, self.n_splits, self.seed = frames, grid, n_splits, seed
        self.progress, self.n_repeats = progress, n_repeats
        self.cache: dict[_Job, dict] = {}
        self.announced: set[_Job] = set()
        self.total = 0
        self.done = 0

    def n_fits(self, job: _Job) -> int:
        if job.split_mode in ("heldout-arch", "heldout-task"):
            column = "architecture" if job.split_mode == "heldout-arch" else "task"
            return int(self.frames.dataset(job.condition, "all").meta[column].nunique())
        return self.n_splits

    def announce(self, jobs: Sequence[_Job]) -> None:
        for job in jobs:
            if job not in self.announced:
                self.announced.add(job)
                self.total += self.n_fits(job)

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def dataset(self, job: _Job) -> TrajectoryDataset:
        ds = self.frames.dataset(job.condition, job.obs_class)
        return ds.select_checkpoints(job.ckpt_mode, job.k) if job.ckpt_mode else ds

    def get(self, job: _Job) -> dict:
        if job not in self.cache:
            self.announce([job])
            if job.kind == "importance":
                self.cache[job] = self._importance(job)
            else:
                self.cache[job] = evaluate(self.dataset(job), job.classifier, job.split_mode, self.grid,
                                           self.n_splits, self.seed, progress=lambda d, t: self.tick())
        return self.cache[job]

    def _importance(self, job: _Job) -> dict:
        """Per-split permutation importances of the model :func:`evaluate` fits on the same split (same seeds,
        same inner selection), on that split's test rows."""
        ds = self.dataset(job)
        layout = estimator_input(job.classifier)
        if layout != "2d":
            raise ConfigError(f"importances need a classifier on flattened features; {job.classifier!r} takes 3-D "
                              "input (use rf or hgb)")
        X, y = ds.to_2d(), ds.y
        groups = ds.meta["network_id"].astype(str).to_numpy()
        splits = get_splits(ds.meta, n_splits=self.n_splits, test_size=TEST_SIZE, seed=self.seed, mode="network")
        group_names, column_groups = importance_groups(list(ds.obs_names), ds.n_checkpoints)
        imp = np.zeros((len(splits), len(column_groups)))
        acc = []
        for i, split in enumerate(splits):
            rs = split_seed_for(self.seed, i)
            estimator, param_grid = make_classifier(job.classifier, self.grid, random_state=rs)
            Xtr, ytr = X[split.train], y[split.train]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if grid_size(param_grid) == 1:
                    point = {k: v[0] for k, v in param_grid.items()} if isinstance(param_grid, dict) else {}
                    model = estimator.set_params(**point).fit(Xtr, ytr)
                else:
                    cv = inner_cv(ytr, groups[split.train], rs)
                    search = GridSearchCV(estimator, param_grid, scoring="accuracy", cv=cv, n_jobs=1, refit=True,
                                          error_score="raise")
                    model = search.fit(Xtr, ytr, groups=groups[split.train]).best_estimator_
            imp[i] = grouped_permutation_importance(model, X[split.test], y[split.test], column_groups,
                                                    self.n_repeats, np.random.default_rng(rs))
            acc.append(float(model.score(X[split.test], y[split.test])))
            self.tick()
        return {"importances": imp, "accuracy": acc, "group_names": group_names,
                "obs_names": list(ds.obs_names), "checkpoints": [int(c) for c in ds.checkpoints]}


@dataclass
class _Plan:
    jobs: list[_Job]
    finish: Callable[[_Runner], dict]


def _run(source: Store | str | Path | Frames, classifiers: Sequence[str], grid: str, n_splits: int, seed: int,
         progress: Progress | None, plan_fn: Callable[..., _Plan], **kwargs: Any) -> dict:
    classifiers = _check_settings(classifiers, grid, n_splits, seed)
    frames = load_frames(source)
    check_enough_networks(frames, classifiers, grid)
    runner = _Runner(frames, grid, n_splits, seed, progress, kwargs.pop("n_repeats", 3))
    plan = plan_fn(frames, classifiers, **kwargs)
    runner.announce(plan.jobs)
    return to_jsonable(plan.finish(runner))


# --------------------------------------------------------------------------------------------------------------
# helpers


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/lists, tuples into lists, dict keys into
    strings and NaN/inf into ``None`` (so ``json.dumps(..., allow_nan=False)`` accepts it)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _sem(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _acc(result: dict) -> dict:
    return {k: result[k] for k in _ACC_KEYS}


def _paired_difference(a: dict, b: dict) -> tuple[float, float]:
    """Mean and s.e.m. over splits of accuracy(a) − accuracy(b) (same splits)."""
    d = np.asarray(a["accuracy_per_split"]) - np.asarray(b["accuracy_per_split"])
    return float(d.mean()), _sem(d)


def ordering_verdict(differences: Sequence[float], margin: float = ORDERING_MARGIN) -> str:
    """Whether accuracy(act) − accuracy(weight), listed by increasing noise level, shows activations to be the
    more robust: ``"holds"`` (≥ ``margin`` at the largest level and ≤ −margin nowhere), ``"reversed"`` (≤ −margin
    at the largest level and ≥ margin nowhere), ``"no difference"`` (|d| < margin everywhere), else ``"mixed"``;
    ``"untested"`` for an empty list."""
    d = [float(v) for v in differences if v is not None and math.isfinite(v)]
    if not d:
        return "untested"
    if d[-1] >= margin and min(d) > -margin:
        return "holds"
    if d[-1] <= -margin and max(d) < margin:
        return "reversed"
    if max(abs(v) for v in d) < margin:
        return "no difference"
    return "mixed"


# --------------------------------------------------------------------------------------------------------------
# 1. main table


def _plan_main(frames: Frames, classifiers: tuple[str, ...]) -> _Plan:
    clean = clean_condition(frames)["name"]
    cells = [_Job(clean, o, c) for o in MAIN_CLASSES for c in classifiers]
    rows = [_Job(clean, "all", c, split_mode="row") for c in classifiers]

    def finish(runner: _Runner) -> dict:
        out_cells, gaps, row_cells = [], [], []
        for job in cells:
            out_cells.append({"obs_class": job.obs_class} | runner.get(job))
        for job in rows:
            row = runner.get(job)
            net = runner.get(_Job(clean, "all", job.classifier))
            row_cells.append({"obs_class": "all"} | row)
            gaps.append({"classifier": job.classifier, "obs_class": "all", "row": _acc(row), "network": _acc(net),
                         "gap": row["accuracy_mean"] - net["accuracy_mean"]})
        alls = [c for c in out_cells if c["obs_class"] == "all"]
        best = max(alls, key=lambda c: c["accuracy_mean"])
        labels = best["labels"]
        return {
            "condition": clean, "split_mode": "network", "chance": 1.0 / len(labels), "labels": labels,
            "obs_classes": list(MAIN_CLASSES), "classifiers": list(classifiers), "cells": out_cells,
            "row_vs_network": gaps, "row_cells": row_cells,
            "best": {"classifier": best["classifier"], "obs_class": "all", "accuracy_mean": best["accuracy_mean"],
                     "accuracy_sem": best["accuracy_sem"], "labels": labels,
                     "confusion_matrix": best["confusion_matrix"], "per_class_recall": best["per_class_recall"]},
        }

    return _Plan(cells + rows, finish)


def main_table(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf", "hgb"),
               grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: Progress | None = None) -> dict:
    """Accuracy (mean ± s.e.m. over network-grouped splits, and balanced accuracy) per observable class
    ``weight, act, grad, all`` × classifier on the clean condition (spec §6.2, §7.3 item 1), and the row-level
    (original, leaky) vs network-level accuracy of ``all`` per classifier (§7.3 item 3).

    Returns ``{"condition", "split_mode", "chance" (1 / #rules), "labels", "obs_classes", "classifiers",
    "cells": [evaluate() dict + obs_class, …], "row_vs_network": [{classifier, row, network, gap = row −
    network}], "row_cells", "best": the classifier with the highest ``all`` accuracy and its confusion matrix}``.
    """
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_main)


# --------------------------------------------------------------------------------------------------------------
# 2./3. noise and subsampling curves


def _curve(frames: Frames, classifiers: tuple[str, ...], kind: str, margin: float) -> tuple[list[_Job], Callable]:
    clean = clean_condition(frames)
    conds = curve_conditions(frames, kind)
    xkey = "frac" if kind == "subsampling" else "sigma"
    points = [(1.0 if kind == "subsampling" else 0.0, clean)] + [(float(c[xkey]), c) for c in conds]
    jobs = [_Job(c["name"], o, clf) for _, c in points for o in CURVE_CLASSES for clf in classifiers]

    def finish(runner: _Runner) -> dict:
        if not conds:
            return {"available": False, "reason": f"the store has no {kind}{' noise' * (kind != 'subsampling')} "
                                                  "conditions"}
        recs, diffs, ordering = [], [], {}
        for clf in classifiers:
            clean_acc = {o: runner.get(_Job(clean["name"], o, clf))["accuracy_mean"] for o in CURVE_CLASSES}
            series = []
            for x, c in points:
                res = {o: runner.get(_Job(c["name"], o, clf)) for o in CURVE_CLASSES}
                for o in CURVE_CLASSES:
                    recs.append({xkey: x, "condition": c["name"], "classifier": clf, "obs_class": o}
                                | _acc(res[o]) | {"drop_from_clean": clean_acc[o] - res[o]["accuracy_mean"]})
                d, d_sem = _paired_difference(res["act"], res["weight"])
                diffs.append({xkey: x, "condition": c["name"], "classifier": clf, "difference": d,
                              "difference_sem": d_sem})
                if c is not clean:
                    series.append(d)
            ordering[clf] = {"verdict": ordering_verdict(series, margin), "margin": margin,
                             xkey + "s": [x for x, c in points if c is not clean], "differences": series}
        return {"available": True, "x": xkey, "conditions": [c["name"] for _, c in points], "points": recs,
                "act_minus_weight": diffs, "ordering": ordering}

    return jobs, finish


def _plan_noise(frames: Frames, classifiers: tuple[str, ...], margin: float = ORDERING_MARGIN) -> _Plan:
    abs_jobs, abs_finish = _curve(frames, classifiers, "absolute", margin)
    rel_jobs, rel_finish = _curve(frames, classifiers, "relative", margin)
    have_abs, have_rel = bool(curve_conditions(frames, "absolute")), bool(curve_conditions(frames, "relative"))
    if not (have_abs or have_rel):
        return _Plan([], lambda r: {"skipped": "the store has no noise conditions (sigma > 0 with frac None)"})
    jobs = (abs_jobs if have_abs else []) + (rel_jobs if have_rel else [])

    def finish(runner: _Runner) -> dict:
        return {"classifiers": list(classifiers), "obs_classes": list(CURVE_CLASSES),
                "condition_clean": clean_condition(frames)["name"], "margin": margin,
                "absolute": abs_finish(runner), "relative": rel_finish(runner)}

    return _Plan(jobs, finish)


def noise_curves(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf",), grid: str = "reduced",
                 n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                 margin: float = ORDERING_MARGIN) -> dict:
    """Accuracy of ``weight``, ``act`` and ``all`` against the noise level σ (clean = σ 0) for the absolute-noise
    conditions and, separately, the relative-noise conditions (spec §6.3, §7.3 item 4, §8 item 4).

    Returns ``{"absolute": curve, "relative": curve, …}`` where a curve is ``{"available": False, "reason"}`` or
    ``{"available": True, "points": [{sigma, condition, classifier, obs_class, accuracy…, drop_from_clean}],
    "act_minus_weight": [{sigma, classifier, difference, difference_sem}], "ordering": {classifier: {"verdict":
    see :func:`ordering_verdict`, …}}}``; ``{"skipped": reason}`` when the store has no noise condition at all.
    """
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_noise, margin=margin)


def _plan_subsampling(frames: Frames, classifiers: tuple[str, ...], margin: float = ORDERING_MARGIN) -> _Plan:
    if not curve_conditions(frames, "subsampling"):
        return _Plan([], lambda r: {"skipped": "the store has no unit-subsampling conditions (frac set, sigma 0)"})
    jobs, curve_finish = _curve(frames, classifiers, "subsampling", margin)

    def finish(runner: _Runner) -> dict:
        out = curve_finish(runner)
        return {"classifiers": list(classifiers), "obs_classes": list(CURVE_CLASSES), "margin": margin,
                "note": "with frac set, weight norm is the L2 norm of the kept synapses, not the mean row norm "
                        "(identify-spec §8 item 3), so the weight curve mixes subsampling with a change of "
                        "definition"} | out

    return _Plan(jobs, finish)


def subsampling_curve(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf",),
                      grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                      margin: float = ORDERING_MARGIN) -> dict:
    """Accuracy of ``weight``, ``act`` and ``all`` against the fraction of units kept (clean = 1.0), for the
    conditions with ``frac`` set and no noise (spec §6.3, §7.3 item 4). Same layout as one curve of
    :func:`noise_curves` with ``frac`` instead of ``sigma``; ``{"skipped": reason}`` without such conditions."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_subsampling, margin=margin)


# --------------------------------------------------------------------------------------------------------------
# 4. temporal subsampling


def _plan_temporal(frames: Frames, classifiers: tuple[str, ...], ks: Sequence[int] = DEFAULT_KS,
                   ms: Sequence[int] = DEFAULT_MS) -> _Plan:
    clean = clean_condition(frames)["name"]
    C = frames.dataset(clean, "all").n_checkpoints
    ks_used = sorted({int(k) for k in ks if 1 <= int(k) < C})
    ms_used = sorted({int(m) for m in ms if 2 <= int(m) < C})
    specs: list[tuple[str, int | None]] = []
    for k in ks_used:
        specs += [("first-k", k), ("last-k", k)] + ([("spread-k", k)] if k >= 2 else [])
    specs += [("every-m", m) for m in ms_used] + [("end-only", None)]
    jobs = {(mode, k, clf): _Job(clean, "all", clf, ckpt_mode=mode, k=k) for mode, k in specs for clf in classifiers}
    full = {clf: _Job(clean, "all", clf) for clf in classifiers}

    def finish(runner: _Runner) -> dict:
        points, acceptance = [], {}
        for (mode, k, clf), job in jobs.items():
            res = runner.get(job)
            points.append({"mode": mode, "k": k, "n_kept": len(res["checkpoints"]), "checkpoints": res["checkpoints"],
                           "classifier": clf} | _acc(res))
        for clf in classifiers:
            ref = runner.get(full[clf])
            if 3 in ks_used:
                s3 = runner.get(jobs[("spread-k", 3, clf)])
                f3 = runner.get(jobs[("first-k", 3, clf)])
                d, d_sem = _paired_difference(s3, f3)
                acceptance[clf] = {"spread3": s3["accuracy_mean"], "first3": f3["accuracy_mean"],
                                   "difference": d, "difference_sem": d_sem,
                                   "spread3_ge_first3": bool(s3["accuracy_mean"] >= f3["accuracy_mean"])}
            else:
                acceptance[clf] = {"spread3_ge_first3": None,
                                   "reason": f"needs k = 3 < the {C} checkpoints in ks (got {list(ks)})"}
            points.append({"mode": "full", "k": C, "n_kept": C, "checkpoints": ref["checkpoints"],
                           "classifier": clf} | _acc(ref))
        return {"condition": clean, "obs_class": "all", "classifiers": list(classifiers), "n_checkpoints": C,
                "ks": ks_used, "ms": ms_used, "points": points, "acceptance": acceptance}

    return _Plan(list(jobs.values()) + list(full.values()), finish)


def temporal_curves(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf",),
                    grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                    ks: Sequence[int] = DEFAULT_KS, ms: Sequence[int] = DEFAULT_MS) -> dict:
    """Accuracy of ``all`` on the clean condition with limited access to the trajectory (spec §6.3, §7.3 item 5):
    ``first-k``, ``spread-k`` and ``last-k`` for each ``k`` in ``ks`` below the number of checkpoints C,
    ``every-m`` for each ``m`` in ``ms`` (2 ≤ m < C), ``end-only``, and ``full`` (all C checkpoints).

    Returns ``{"points": [{mode, k, n_kept, checkpoints, classifier, accuracy…}], "acceptance": {classifier:
    {"spread3", "first3", "difference" (paired), "spread3_ge_first3"}}, "n_checkpoints", …}``."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_temporal, ks=ks, ms=ms)


# --------------------------------------------------------------------------------------------------------------
# 5. held-out generalisation


def _plan_heldout(frames: Frames, classifiers: tuple[str, ...]) -> _Plan:
    clean = clean_condition(frames)["name"]
    meta = frames.dataset(clean, "all").meta
    parts = {"architecture": "heldout-arch", "task": "heldout-task"}
    available = {col: int(meta[col].nunique()) >= 2 for col in parts}
    jobs = [_Job(clean, "all", clf, split_mode=mode) for col, mode in parts.items() if available[col]
            for clf in classifiers]

    def finish(runner: _Runner) -> dict:
        out: dict[str, Any] = {"condition": clean, "obs_class": "all", "classifiers": list(classifiers),
                               "chance": 1.0 / meta["rule"].nunique()}
        for col, mode in parts.items():
            if not available[col]:
                out[col] = {"available": False,
                            "reason": f"the store has one {col} ({meta[col].iloc[0]!r}); held-out {col} needs two"}
                continue
            per_clf = []
            try:
                held = {clf: runner.get(_Job(clean, "all", clf, split_mode=mode)) for clf in classifiers}
            except LearnscopeError as err:  # e.g. a held-out value leaves a rule without training networks
                out[col] = {"available": False, "reason": f"held-out {col} cannot be evaluated: {err}"}
                continue
            for clf in classifiers:
                res = held[clf]
                grouped = runner.get(_Job(clean, "all", clf))
                values = [{"held_out": v, "accuracy": a, "balanced_accuracy": b, "n_test": n}
                          for v, a, b, n in zip(res["held_out"], res["accuracy_per_split"],
                                                res["balanced_accuracy_per_split"], res["n_test"], strict=True)]
                per_clf.append({"classifier": clf, "values": values, "mean_accuracy": res["accuracy_mean"],
                                "mean_balanced_accuracy": res["balanced_accuracy_mean"],
                                "sem_accuracy": res["accuracy_sem"],
                                "network_split_accuracy": grouped["accuracy_mean"],
                                "confusion_matrix": res["confusion_matrix"], "labels": res["labels"]})
            out[col] = {"available": True, "split_mode": mode, "per_classifier": per_clf}
        return out

    grouped_jobs = [_Job(clean, "all", clf) for clf in classifiers] if jobs else []
    return _Plan(jobs + grouped_jobs, finish)


def heldout(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced",
            n_splits: int = 10, seed: int = 0, progress: Progress | None = None) -> dict:
    """Generalisation to a held-out architecture and to a held-out task (spec §6.3, §7.3 item 6): for each value,
    train on the networks of every other value and test on all of its networks (``all``, clean condition).

    Returns ``{"architecture": part, "task": part, "chance", …}`` with ``part = {"available": False, "reason"}``
    (fewer than two values, or a held-out value that leaves a rule with too few training networks) or
    ``{"available": True, "per_classifier": [{classifier, "values": [{held_out,
    accuracy, balanced_accuracy, n_test}], "mean_accuracy" (over held-out values), "mean_balanced_accuracy",
    "network_split_accuracy" (the within-distribution reference)}]}``. ``n_splits`` only affects the reference."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_heldout)


# --------------------------------------------------------------------------------------------------------------
# 6. permutation importances


def _plan_importances(frames: Frames, classifiers: tuple[str, ...]) -> _Plan:
    clean = clean_condition(frames)["name"]
    clf = classifiers[0]
    job = _Job(clean, "all", clf, kind="importance")

    def finish(runner: _Runner) -> dict:
        raw = runner.get(job)
        imp = np.asarray(raw["importances"])  # (n_splits, groups) in importance_groups order
        names, ckpts = raw["obs_names"], raw["checkpoints"]
        n_obs, T = len(names), len(ckpts)
        per_stat, per_ckpt = imp[:, :n_obs], imp[:, n_obs:n_obs + T]
        classes = imp[:, n_obs + T:n_obs + T + len(IMPORTANCE_CLASSES)]
        layer = imp[:, -1]
        stats = sorted(({"name": n, "importance_mean": float(per_stat[:, j].mean()),
                         "importance_sem": _sem(per_stat[:, j])} for j, n in enumerate(names)),
                       key=lambda r: -r["importance_mean"])
        per_class = {c: {"importance_mean": float(classes[:, k].mean()), "importance_sem": _sem(classes[:, k])}
                     for k, c in enumerate(IMPORTANCE_CLASSES) if any(n in OBS_CLASSES[c] for n in names)}
        return {
            "condition": clean, "obs_class": "all", "classifier": clf, "split_mode": "network",
            "n_splits": len(imp), "n_repeats": runner.n_repeats, "scoring": "accuracy",
            "test_accuracy_mean": float(np.mean(raw["accuracy"])),
            "per_statistic": stats,
            "per_checkpoint": [{"checkpoint": c, "importance_mean": float(per_ckpt[:, t].mean()),
                                "importance_sem": _sem(per_ckpt[:, t])} for t, c in enumerate(ckpts)],
            "per_class": per_class,
            "layer_position": {"importance_mean": float(layer.mean()), "importance_sem": _sem(layer)},
            "note": "grouped permutations on each split's test networks: a statistic's whole trajectory, all "
                    "statistics at one checkpoint, or a whole observable class is shuffled across rows at once, so "
                    "correlated columns do not share credit; accuracy drop, mean over repeats and splits",
        }

    return _Plan([job], finish)


def importances(source: Store | str | Path | Frames, classifier: str = "rf", grid: str = "reduced",
                n_splits: int = 10, seed: int = 0, progress: Progress | None = None, n_repeats: int = 3) -> dict:
    """Grouped permutation importance (accuracy drop, ``n_repeats`` seeded shuffles per group, see
    :func:`grouped_permutation_importance`) of ``classifier`` on ``all`` (clean condition), on the test networks of
    each network-grouped split, for the model :func:`evaluate` fits on that split (spec §7.4: permutation importance
    on grouped splits instead of MDI).

    Returns ``{"per_statistic": [{name, importance_mean, importance_sem}] sorted by decreasing importance (the
    statistic's whole trajectory shuffled), "per_checkpoint": [{checkpoint, …}] in checkpoint order (all statistics
    at that checkpoint shuffled), "per_class" (weight / act / grad, each class shuffled as a block),
    "layer_position" (the one-hot shuffled), …}``; means and s.e.m. are over splits."""
    check_positive_int("n_repeats", n_repeats)
    return _run(source, (classifier,), grid, n_splits, seed, progress, _plan_importances, n_repeats=n_repeats)


# --------------------------------------------------------------------------------------------------------------
# 7. performance-only baseline


def _plan_performance(frames: Frames, classifiers: tuple[str, ...]) -> _Plan:
    clean = clean_condition(frames)["name"]
    perf = {clf: _Job(clean, "performance", clf) for clf in classifiers}
    obs = {clf: _Job(clean, "all", clf) for clf in classifiers}

    def finish(runner: _Runner) -> dict:
        cells, observables, comparison = [], [], []
        for clf in classifiers:
            p, o = runner.get(perf[clf]), runner.get(obs[clf])
            cells.append({"classifier": clf} | _acc(p) | {"confusion_matrix": p["confusion_matrix"],
                                                           "labels": p["labels"]})
            observables.append({"classifier": clf, "obs_class": "all"} | _acc(o))
            d, d_sem = _paired_difference(o, p)
            comparison.append({"classifier": clf, "performance": p["accuracy_mean"], "observables": o["accuracy_mean"],
                               "difference": d, "difference_sem": d_sem,
                               "observables_beat_performance": bool(d > 0)})
        return {"condition": clean, "statistics": list(PERFORMANCE_NAMES), "classifiers": list(classifiers),
                "cells": cells, "observables": observables, "comparison": comparison}

    return _Plan(list(perf.values()) + list(obs.values()), finish)


def performance_baseline(source: Store | str | Path | Frames, classifiers: Sequence[str] = ("rf", "hgb"),
                         grid: str = "reduced", n_splits: int = 10, seed: int = 0,
                         progress: Progress | None = None) -> dict:
    """A classifier on the loss / train-accuracy / test-accuracy curves alone
    (:meth:`TrajectoryDataset.performance_only`, same rows, checkpoints and splits) against the same classifier
    on all observables (spec §7.3 item 2, §8 item 12: are rules told apart only through how well they learn?).

    Returns ``{"cells": [performance-only accuracy per classifier], "observables": [all-observable accuracy],
    "comparison": [{classifier, performance, observables, difference (paired, observables − performance),
    difference_sem, observables_beat_performance}]}``."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_performance)


# --------------------------------------------------------------------------------------------------------------
# 8. everything


def _summary(frames: Frames) -> dict:
    clean = clean_condition(frames)
    ds = frames.dataset(clean["name"], "all")
    nets = frames.networks
    status = nets["status"].value_counts().to_dict() if "status" in nets else {}
    return {
        "source": frames.source, "clean_condition": clean["name"],
        "n_networks": int(len(nets)), "status_counts": {str(k): int(v) for k, v in status.items()},
        "n_rows": int(ds.n_rows), "n_checkpoints": int(ds.n_checkpoints),
        "rules": [str(r) for r in ds.classes],
        "networks_per_rule": {str(k): int(v) for k, v in ds.meta.groupby("rule")["network_id"].nunique().items()},
        "tasks": sorted(map(str, ds.meta["task"].unique())),
        "architectures": sorted(map(str, ds.meta["architecture"].unique())),
        "conditions": frames.conditions, "unspecified_conditions": frames.unspecified,
    }


def run_all(store: Store | str | Path | Frames, out_dir: str | Path, classifiers: Sequence[str] = ("rf", "hgb"),
            grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: bool = True, *,
            curve_classifiers: Sequence[str] | None = None, n_repeats: int = 3,
            ks: Sequence[int] = DEFAULT_KS, ms: Sequence[int] = DEFAULT_MS) -> dict:
    """Every analysis the store supports, then ``out_dir/metrics.json`` and ``out_dir/report.html``.

    ``classifiers`` are used for the main table, held-out generalisation and the performance baseline;
    ``curve_classifiers`` (default: ``("rf",)`` if rf is among ``classifiers``, else the first) for the noise,
    subsampling and temporal curves; importances use the first curve classifier on flattened features. Identical
    fits shared by several analyses run once. A tqdm bar counts outer-split fits (``progress=False`` hides it).
    Analyses the store cannot support (no noise / subsampling conditions, a single task or architecture) are
    listed under ``"skipped"`` with the reason. Returns the dict written to ``metrics.json``.
    """
    from tqdm.auto import tqdm

    from learnscope.report.identify_report import write_report

    t_start = time.perf_counter()
    classifiers = _check_settings(classifiers, grid, n_splits, seed)
    if curve_classifiers is None:
        curve_classifiers = ("rf",) if "rf" in classifiers else classifiers[:1]
    curve_classifiers = _check_classifiers(curve_classifiers)
    check_positive_int("n_repeats", n_repeats)
    imp_clf = next((c for c in curve_classifiers if estimator_input(c) == "2d"), "rf")
    frames = load_frames(store)
    check_enough_networks(frames, tuple(dict.fromkeys((*classifiers, *curve_classifiers, imp_clf))), grid)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the output directory {out}: {err.strerror}") from None

    plans = {
        "main_table": _plan_main(frames, classifiers),
        "noise_curves": _plan_noise(frames, curve_classifiers),
        "subsampling_curve": _plan_subsampling(frames, curve_classifiers),
        "temporal_curves": _plan_temporal(frames, curve_classifiers, ks=ks, ms=ms),
        "heldout": _plan_heldout(frames, classifiers),
        "importances": _plan_importances(frames, (imp_clf,)),
        "performance_baseline": _plan_performance(frames, classifiers),
    }
    bar = tqdm(total=0, desc="model fits", unit="fit", disable=not progress, smoothing=0.1)

    def advance(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    runner = _Runner(frames, grid, n_splits, seed, advance, n_repeats)
    for plan in plans.values():
        runner.announce(plan.jobs)
    bar.total = runner.total
    bar.refresh()

    results: dict[str, Any] = {
        "settings": {"classifiers": list(classifiers), "curve_classifiers": list(curve_classifiers),
                     "importance_classifier": imp_clf, "grid": grid, "n_splits": n_splits, "seed": seed,
                     "split_mode": "network", "test_size": TEST_SIZE, "n_repeats": n_repeats},
        "dataset": _summary(frames),
    }
    timings, skipped = {}, {}
    try:
        for name, plan in plans.items():
            t0 = time.perf_counter()
            res = plan.finish(runner)
            timings[name] = time.perf_counter() - t0
            results[name] = res
            if "skipped" in res:
                skipped[name] = res["skipped"]
            for part in ("absolute", "relative", "architecture", "task"):
                if isinstance(res.get(part), dict) and res[part].get("available") is False:
                    skipped[f"{name}.{part}"] = res[part]["reason"]
    finally:
        bar.close()
    results["skipped"] = skipped
    results["timing"] = {"total_s": time.perf_counter() - t_start, "per_analysis_s": timings,
                         "n_fits": runner.done}
    results = to_jsonable(results)
    try:
        (out / "metrics.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    except OSError as err:
        raise StoreError(f"cannot write {out / 'metrics.json'}: {err.strerror}") from None
    write_report(results, out)
    return results


__all__ = [
    "CURVE_CLASSES", "Frames", "MAIN_CLASSES", "check_enough_networks", "clean_condition",
    "curve_conditions", "heldout", "importances", "load_frames", "main_table", "noise_curves", "ordering_verdict",
    "performance_baseline", "run_all", "subsampling_curve", "temporal_curves", "to_jsonable",
]
