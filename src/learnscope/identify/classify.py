"""Every analysis a store supports, as ``learnscope identify classify`` runs them: plan first, then fit.

:func:`plan_all` checks the settings and the store and plans the analyses of
:mod:`learnscope.identify.analyses` without fitting anything, so a caller can say up front how many fits it will
run (:attr:`ClassifyPlan.n_fits`) and about how long they will take (:meth:`ClassifyPlan.estimate_seconds`);
:meth:`ClassifyPlan.run` fits them, each fit shared by several analyses once, and returns the tables.
:func:`run_all` does both. Nothing here writes a file: the CLI passes the returned
:class:`~learnscope.identify.tables.ClassifyResults` to :func:`learnscope.results.write_run_dir` (``metrics.json``)
and then to :func:`learnscope.report.identify_report.write_report` (``report.html``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from learnscope.identify.analyses import DEFAULT_KS, DEFAULT_MS, Source, plan_analyses
from learnscope.identify.classifiers import estimator_input
from learnscope.identify.frames import Frames, check_enough_networks, clean_condition, load_frames, network_objectives
from learnscope.identify.protocol import DEFAULT_TEST_SIZE
from learnscope.identify.runner import Job, Plan, Runner, check_classifiers, check_settings
from learnscope.identify.tables import ClassifyResults, DatasetSummary, Settings
from learnscope.identify.task_performance import task_performance
from learnscope.results import to_jsonable
from learnscope.validation import check_positive_int


def _summary(frames: Frames) -> DatasetSummary:
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
        "objectives": sorted(set(network_objectives(frames)[str(n)] for n in ds.meta["network_id"].unique())),
        "architectures": sorted(map(str, ds.meta["architecture"].unique())),
        "conditions": frames.conditions, "unspecified_conditions": frames.unspecified,
        "task_performance": task_performance(nets),
    }


def unavailable_parts(name: str, table: dict) -> dict[str, str]:
    """``{name: reason}`` for a skipped analysis, plus ``{"name.part": reason}`` for each part of it that is
    unavailable (a value ``{"available": False, "reason": …}``, directly or one level down in a dict such as
    ``per_objective``, or an entry of a list of parts naming its ``objective``)."""
    out = {name: table["skipped"]} if "skipped" in table else {}
    for part, value in table.items():
        if isinstance(value, dict) and value.get("available") is False:
            out[f"{name}.{part}"] = value["reason"]
        elif isinstance(value, dict):
            out |= {f"{name}.{part}.{k}": v["reason"] for k, v in value.items()
                    if isinstance(v, dict) and v.get("available") is False}
        elif isinstance(value, list):
            out |= {f"{name}.{part}.{v['objective']}": v["reason"] for v in value
                    if isinstance(v, dict) and v.get("available") is False and "objective" in v}
    return out


@dataclass
class ClassifyPlan:
    """Every analysis a store supports, planned but not yet fitted (:func:`plan_all`); :meth:`run` fits them.

    ``fits_per_analysis`` counts the outer-split fits each analysis adds (a fit shared with an earlier analysis
    counts once, for the first); :attr:`n_fits` is their sum, the length of the progress bar. ``jobs`` worker
    processes fit the planned jobs before the analyses read them (1: each fit on first use, in this process).
    ``timing`` in the results: ``per_analysis_s`` is each analysis's wall time after the parallel fits
    (``parallel_fits``), ``fit_s_per_analysis`` the fit time of the jobs each analysis brought (counted for the
    first analysis that needs a job), wherever they ran."""

    frames: Frames
    settings: Settings
    plans: dict[str, Plan]
    runner: Runner
    fits_per_analysis: dict[str, int]
    planning_s: float
    jobs: int = 1

    @property
    def jobs_planned(self) -> list[Job]:
        """Every analysis's jobs, in plan order (a job shared by several analyses appears once per analysis)."""
        return [job for plan in self.plans.values() for job in plan.jobs]

    @property
    def n_fits(self) -> int:
        return self.runner.total

    @property
    def dataset(self) -> DatasetSummary:
        return _summary(self.frames)

    def estimate_seconds(self) -> float:
        """A rough wall time of :meth:`run` (:meth:`Runner.estimate_seconds`: one timed fit per classifier, scaled
        by each job's features, divided by ``jobs`` worker processes); taking it costs about one fit per
        classifier."""
        return self.runner.estimate_seconds(self.jobs_planned) / self.jobs

    def run(self, progress: bool = True) -> ClassifyResults:
        """Fit every planned job (a tqdm bar over outer-split fits unless ``progress=False``) and return the
        tables (:class:`~learnscope.identify.tables.ClassifyResults`, JSON-ready)."""
        from tqdm.auto import tqdm

        t_start = time.perf_counter()
        bar = tqdm(total=self.runner.total, desc="model fits", unit="fit", disable=not progress, smoothing=0.1)

        def advance(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        self.runner.progress = advance
        results: dict[str, Any] = {"settings": self.settings, "dataset": _summary(self.frames)}
        timings, skipped = {}, {}
        try:
            if self.jobs > 1:
                t0 = time.perf_counter()
                self.runner.prefetch(self.jobs_planned, self.jobs)
                timings["parallel_fits"] = time.perf_counter() - t0
            for name, plan in self.plans.items():
                t0 = time.perf_counter()
                res = plan.finish(self.runner)
                timings[name] = time.perf_counter() - t0
                results[name] = res
                skipped |= unavailable_parts(name, res)
        finally:
            bar.close()
            self.runner.progress = None
        results["skipped"] = skipped
        owner: dict = {}
        for name, plan in self.plans.items():
            for job in plan.jobs:
                owner.setdefault(job, name)
        fit_s = dict.fromkeys(self.plans, 0.0)
        for job, seconds in self.runner.fit_seconds.items():
            if job in owner:
                fit_s[owner[job]] += seconds
        results["timing"] = {"total_s": self.planning_s + time.perf_counter() - t_start, "jobs": self.jobs,
                             "per_analysis_s": timings, "fit_s_per_analysis": fit_s, "n_fits": self.runner.done}
        return to_jsonable(results)


def plan_all(store: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced", n_splits: int = 10,
             seed: int = 0, *, curve_classifiers: Sequence[str] | None = None, n_repeats: int = 3,
             ks: Sequence[int] = DEFAULT_KS, ms: Sequence[int] = DEFAULT_MS, jobs: int = 1) -> ClassifyPlan:
    """Check the settings and the store, and plan every analysis it supports without fitting (arguments as for
    :func:`run_all`). Bad settings or a store too small raise a one-line error here, before any work."""
    t_start = time.perf_counter()
    check_positive_int("jobs", jobs)
    classifiers = check_settings(classifiers, grid, n_splits, seed)
    if curve_classifiers is None:
        curve_classifiers = ("rf",) if "rf" in classifiers else classifiers[:1]
    curve_classifiers = check_classifiers(curve_classifiers)
    check_positive_int("n_repeats", n_repeats)
    imp_clf = next((c for c in curve_classifiers if estimator_input(c) == "2d"), "rf")
    frames = load_frames(store)
    check_enough_networks(frames, tuple(dict.fromkeys((*classifiers, *curve_classifiers, imp_clf))), grid)
    plans = plan_analyses(frames, classifiers, curve_classifiers, imp_clf, ks=ks, ms=ms)
    runner = Runner(frames, grid, n_splits, seed, None, n_repeats)
    fits = {name: runner.announce(plan.jobs) for name, plan in plans.items()}
    settings: Settings = {"classifiers": list(classifiers), "curve_classifiers": list(curve_classifiers),
                          "importance_classifier": imp_clf, "grid": grid, "n_splits": n_splits, "seed": seed,
                          "split_mode": "network", "test_size": DEFAULT_TEST_SIZE, "n_repeats": n_repeats}
    return ClassifyPlan(frames, settings, plans, runner, fits, time.perf_counter() - t_start, jobs)


def run_all(store: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced", n_splits: int = 10,
            seed: int = 0, progress: bool = True, *, curve_classifiers: Sequence[str] | None = None,
            n_repeats: int = 3, ks: Sequence[int] = DEFAULT_KS, ms: Sequence[int] = DEFAULT_MS,
            jobs: int = 1) -> ClassifyResults:
    """Every analysis the store supports; returns their tables (:class:`~learnscope.identify.tables.
    ClassifyResults`) and writes nothing.

    ``classifiers`` are used for the main and per-objective tables, held-out generalisation (architecture, task,
    objective, hyperparameters) and the performance baseline; ``curve_classifiers`` (default: ``("rf",)`` if rf
    is among ``classifiers``, else the first) for the noise, subsampling, unit-count and temporal curves and the
    performance-matched control; importances use the first curve classifier on flattened features (else rf).
    Identical fits shared by several analyses run once. A tqdm bar counts outer-split fits (``progress=False``
    hides it). Analyses the store cannot support (no noise / subsampling / unit-count conditions, a single task,
    architecture or objective, no spread of batch sizes or learning rates, no performance curves) are listed
    under ``"skipped"`` with the reason (:func:`unavailable_parts`). ``jobs`` worker processes fit the planned
    jobs in parallel first (:meth:`~learnscope.identify.runner.Runner.prefetch`). Same settings and store → the
    same numbers, whatever ``jobs``.
    """
    plan = plan_all(store, classifiers, grid, n_splits, seed, curve_classifiers=curve_classifiers,
                    n_repeats=n_repeats, ks=ks, ms=ms, jobs=jobs)
    return plan.run(progress)


__all__ = ["ClassifyPlan", "plan_all", "run_all", "unavailable_parts"]
