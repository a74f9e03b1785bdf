"""The fit engine under the analyses: each distinct model fit runs once, and progress is counted in fits.

An analysis of :mod:`learnscope.identify.analyses` is a :class:`Plan`: the :class:`Job` s it needs (a dataset, a
classifier, a split mode) and a ``finish`` function that reads their results from a :class:`Runner` and builds
its table. The runner caches one result per job, so a fit that several analyses share (the clean ``all`` cell is
used by six of them) runs once, and counts *outer-split fits* (one fit = one outer split, inner grid search
included) for the progress bar. A job is either :func:`~learnscope.identify.protocol.evaluate` or, for
``kind="importance"``, the grouped permutation importances of the model :func:`~learnscope.identify.protocol.
fit_split` fits on each split (the same model ``evaluate`` would fit there).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from learnscope.errors import ConfigError
from learnscope.identify.classifiers import estimator_input, make_classifier
from learnscope.identify.dataset import GROUPS, TrajectoryDataset
from learnscope.identify.frames import Frames
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.protocol import DEFAULT_TEST_SIZE, evaluate, fit_split, get_splits, split_seed_for
from learnscope.validation import check_positive_int, check_scalar

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each outer-split fit."""
IMPORTANCE_CLASSES: tuple[str, ...] = ("weight", "act", "grad")
HELDOUT_COLUMNS = {"heldout-arch": "architecture", "heldout-task": "task"}


# --------------------------------------------------------------------------------------------------------------
# settings shared by every analysis


def check_classifiers(classifiers: Sequence[str] | str) -> tuple[str, ...]:
    """``classifiers`` as a tuple of known, distinct names (a single name is allowed)."""
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


def check_settings(classifiers: Sequence[str] | str, grid: str, n_splits: int, seed: int) -> tuple[str, ...]:
    """Refuse bad classifier / grid names, ``n_splits`` and ``seed`` before any work; returns the classifiers."""
    classifiers = check_classifiers(classifiers)
    for name in classifiers:
        make_classifier(name, grid)  # UnknownNameError for a bad grid
    check_positive_int("n_splits", n_splits)
    check_scalar("seed", seed, int, low=0)
    return classifiers


# --------------------------------------------------------------------------------------------------------------
# permutation importance


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
# jobs, plans and the runner


@dataclass(frozen=True)
class Job:
    """One distinct fit: ``classifier`` on ``obs_class`` (an OBS_CLASSES key or ``"performance"``) of
    ``condition``, with ``split_mode`` outer splits and optionally a checkpoint selection."""

    condition: str
    obs_class: str
    classifier: str
    split_mode: str = "network"
    ckpt_mode: str | None = None
    k: int | None = None
    kind: str = "evaluate"  # or "importance"


@dataclass
class Plan:
    """The jobs an analysis needs and how it builds its table from their results."""

    jobs: list[Job]
    finish: Callable[[Runner], dict]


class Runner:
    """Runs and caches :class:`Job` s over one :class:`Frames` with fixed ``grid``, ``n_splits`` and ``seed``."""

    def __init__(self, frames: Frames, grid: str, n_splits: int, seed: int, progress: Progress | None,
                 n_repeats: int = 3):
        self.frames, self.grid, self.n_splits, self.seed = frames, grid, n_splits, seed
        self.progress, self.n_repeats = progress, n_repeats
        self.cache: dict[Job, dict] = {}
        self.fit_seconds: dict[Job, float] = {}  # wall time of each job's fits, in whichever process ran them
        self.announced: set[Job] = set()
        self.total = 0
        self.done = 0

    def n_fits(self, job: Job) -> int:
        """Outer-split fits of ``job``: ``n_splits``, or one per held-out value."""
        if job.split_mode in HELDOUT_COLUMNS:
            column = HELDOUT_COLUMNS[job.split_mode]
            return int(self.frames.dataset(job.condition, job.obs_class).meta[column].nunique())
        return self.n_splits

    def announce(self, jobs: Sequence[Job]) -> int:
        """Add the fits of ``jobs`` not announced before to :attr:`total`; returns how many were added."""
        added = 0
        for job in jobs:
            if job not in self.announced:
                self.announced.add(job)
                added += self.n_fits(job)
        self.total += added
        return added

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def dataset(self, job: Job) -> TrajectoryDataset:
        ds = self.frames.dataset(job.condition, job.obs_class)
        return ds.select_checkpoints(job.ckpt_mode, job.k) if job.ckpt_mode else ds

    def get(self, job: Job) -> dict:
        """The result of ``job``, fitted on first use."""
        if job not in self.cache:
            self.announce([job])
            t0 = time.perf_counter()
            self.cache[job] = fit_job(self.dataset(job), job, self.grid, self.n_splits, self.seed, self.n_repeats,
                                      progress=self.tick)
            self.fit_seconds[job] = time.perf_counter() - t0
        return self.cache[job]

    def prefetch(self, jobs: Sequence[Job], n_jobs: int) -> None:
        """Fit the distinct ``jobs`` not yet cached in ``n_jobs`` worker processes (joblib's loky), largest first,
        and cache their results; :meth:`get` then only reads them. A job's result does not depend on where or
        with what else it runs (each split is seeded from ``(seed, split index)``), so this gives the numbers of
        fitting them one by one. Progress ticks ``n_fits(job)`` times as each job finishes. A job that raises is
        left uncached, for :meth:`get` to fit (and raise) where the analysis asks for it. ``n_jobs = 1`` does
        nothing (the jobs are fitted on first use)."""
        from joblib import Parallel, delayed

        n_jobs = check_positive_int("jobs", n_jobs)
        todo = [j for j in dict.fromkeys(jobs) if j not in self.cache]
        if n_jobs == 1 or len(todo) < 2:
            return
        self.announce(todo)

        def cost(job: Job) -> float:  # the columns a fit sees × its fits (what estimate_seconds scales by)
            ds = self.dataset(job)
            return self.n_fits(job) * ds.X.shape[1] * ds.X.shape[2] * (5 if job.kind == "importance" else 1)

        todo.sort(key=cost, reverse=True)
        calls = (delayed(_fit_job_indexed)(i, self.dataset(job), job, self.grid, self.n_splits, self.seed,
                                           self.n_repeats) for i, job in enumerate(todo))
        failed = []
        for i, result, seconds in Parallel(n_jobs=min(n_jobs, len(todo)), backend="loky",
                                           return_as="generator_unordered")(calls):
            if result is None:  # get() fits it again in this process, where an analysis may expect its error
                failed.append(todo[i])
                continue
            self.cache[todo[i]] = result
            self.fit_seconds[todo[i]] = seconds
            for _ in range(self.n_fits(todo[i])):
                self.tick()
        for job in failed:
            self.announced.discard(job)
            self.total -= self.n_fits(job)

    def estimate_seconds(self, jobs: Sequence[Job]) -> float:
        """A rough wall time of fitting the distinct ``jobs`` not yet cached, in seconds.

        For each classifier one fit is timed: the first outer split of its first plain job on ``all`` (else its
        first job), fitted and predicted as :func:`evaluate` would. Every job is then charged
        ``n_fits(job) × (fit + predict time) × rows(job) / rows(probe) × √(columns(job) / columns(probe))``
        (linear in the rows, as histogram boosting and, up to a log, forests are; the square root sits between
        random forests, whose trees draw √columns features per split, and models linear in the columns), and an
        importance job also ``n_groups × n_repeats`` predictions per split. Costs about one fit per classifier;
        the numbers of a later run are not affected (nothing is cached and there is no shared random state).
        """
        todo = [j for j in dict.fromkeys(jobs) if j not in self.cache]
        total = 0.0
        for clf in dict.fromkeys(j.classifier for j in todo):
            mine = [j for j in todo if j.classifier == clf]
            probe = next((j for j in mine if j.obs_class == "all" and j.ckpt_mode is None), mine[0])
            ds = self.frames.dataset(probe.condition, probe.obs_class)
            X, y = ds.features(estimator_input(clf)), ds.y
            groups = ds.meta["network_id"].astype(str).to_numpy()
            split = get_splits(ds.meta, n_splits=1, test_size=DEFAULT_TEST_SIZE, seed=self.seed)[0]
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model, _ = fit_split(clf, self.grid, X[split.train], y[split.train], groups[split.train],
                                     split_seed_for(self.seed, 0))
            t1 = time.perf_counter()
            model.predict(X[split.test])
            fit_s, predict_s = t1 - t0, time.perf_counter() - t1
            rows, columns = ds.X.shape[0], ds.X.shape[1] * ds.X.shape[2]
            for job in mine:
                jds = self.dataset(job)
                scale = jds.X.shape[0] / rows * math.sqrt(jds.X.shape[1] * jds.X.shape[2] / columns)
                per_fit = fit_s + predict_s
                if job.kind == "importance":
                    n_groups = len(importance_groups(list(jds.obs_names), jds.n_checkpoints)[1])
                    per_fit += n_groups * self.n_repeats * predict_s
                total += self.n_fits(job) * per_fit * scale
        return total


def fit_job(ds: TrajectoryDataset, job: Job, grid: str, n_splits: int, seed: int, n_repeats: int,
            progress: Callable[[], None] | None = None) -> dict:
    """The result of one :class:`Job` on its dataset ``ds``: :func:`~learnscope.identify.protocol.evaluate`, or
    for ``kind="importance"`` the per-split permutation importances (:func:`split_importances`); ``progress()``
    is called after each outer-split fit."""
    tick = (lambda d, t: progress()) if progress is not None else None
    if job.kind == "importance":
        return split_importances(ds, job.classifier, grid, n_splits, seed, n_repeats, progress)
    return evaluate(ds, job.classifier, job.split_mode, grid, n_splits, seed, progress=tick)


def _fit_job_indexed(i: int, *args) -> tuple[int, dict | None, float]:
    """``(i, fit_job(*args), seconds)`` in a worker; ``(i, None, seconds)`` if the job raised, so that the caller
    fits it again on first use and the error surfaces where the one-process run raises it."""
    import torch

    torch.set_num_threads(1)  # conv1d: one intra-op thread per worker process, or n workers oversubscribe the cores
    t0 = time.perf_counter()
    try:
        result = fit_job(*args)
    except Exception:  # noqa: BLE001 - re-raised by Runner.get in the calling process
        result = None
    return i, result, time.perf_counter() - t0


def split_importances(ds: TrajectoryDataset, classifier: str, grid: str, n_splits: int, seed: int, n_repeats: int,
                      progress: Callable[[], None] | None = None) -> dict:
    """Per-split permutation importances of the model :func:`evaluate` fits on the same split (same seeds,
    same inner selection, through :func:`fit_split`), on that split's test rows."""
    if estimator_input(classifier) != "2d":
        raise ConfigError(f"importances need a classifier on flattened features; {classifier!r} takes 3-D "
                          "input (use rf or hgb)")
    X, y = ds.to_2d(), ds.y
    groups = ds.meta["network_id"].astype(str).to_numpy()
    splits = get_splits(ds.meta, n_splits=n_splits, test_size=DEFAULT_TEST_SIZE, seed=seed, mode="network")
    group_names, column_groups = importance_groups(list(ds.obs_names), ds.n_checkpoints)
    imp = np.zeros((len(splits), len(column_groups)))
    acc = []
    for i, split in enumerate(splits):
        rs = split_seed_for(seed, i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model, _ = fit_split(classifier, grid, X[split.train], y[split.train], groups[split.train], rs)
        imp[i] = grouped_permutation_importance(model, X[split.test], y[split.test], column_groups, n_repeats,
                                                np.random.default_rng(rs))
        acc.append(float(model.score(X[split.test], y[split.test])))
        if progress is not None:
            progress()
    return {"importances": imp, "accuracy": acc, "group_names": group_names,
            "obs_names": list(ds.obs_names), "checkpoints": [int(c) for c in ds.checkpoints]}


__all__ = ["IMPORTANCE_CLASSES", "Job", "Plan", "Progress", "Runner", "check_classifiers", "check_settings", "fit_job",
           "grouped_permutation_importance", "importance_groups", "split_importances"]
