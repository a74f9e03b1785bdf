r"""The paper's analyses on a simulated store, one function each (identify-spec §6.3, §7.1 item 5, §7.3, §7.4).

Every function takes a *source* (a :class:`~learnscope.identify.store.Store`, its directory, or pre-loaded
:class:`~learnscope.identify.frames.Frames`), classifier names, ``grid`` (``"reduced" | "original" | "none"``, see
:func:`~learnscope.identify.classifiers.make_classifier`), ``n_splits``, ``seed`` and an optional
``progress(done, total)`` callback counted in *outer-split fits* (one fit = one outer split of
:func:`~learnscope.identify.protocol.evaluate`, inner grid search included). Each returns its table, a plain
JSON-ready dict (floats, ints, strings, lists, dicts; NaN becomes ``None``) whose keys are declared in
:mod:`learnscope.identify.tables`. Nothing here writes a file: the CLI writes the run directory
(:func:`learnscope.results.write_run_dir`) and the report (:mod:`learnscope.report.identify_report`).

Every reported number uses **network-grouped** outer splits (``split_mode="network"``: all layers of a network on
one side) unless a key says otherwise. Outer splits depend only on the rule/network metadata and ``seed``, so
the same networks are tested in every condition, observable class and checkpoint selection: differences between
two curves are *paired* per split and their s.e.m. is the s.e.m. of the per-split differences.

============================= =========================================================================
function                      what it measures (table in :mod:`~learnscope.identify.tables`)
============================= =========================================================================
:func:`main_table`            accuracy per observable class (weight, act, grad, all) × classifier on the
                              clean condition, plus row-level vs network-level splits for ``all``
:func:`noise_curves`          weight / act / all accuracy vs σ for absolute and relative noise conditions,
                              and accuracy(act) − accuracy(weight) per σ (§7.3 item 4, §8 item 4)
:func:`subsampling_curve`     the same vs the fraction of units kept (clean = 1.0)
:func:`temporal_curves`       ``all`` with first-k, spread-k, last-k, every-m and end-only checkpoints (§7.3
                              item 5: spread-3 ≥ first-3)
:func:`heldout`               held-out architecture, task (the dataset) and objective, per held-out value and
                              mean (§7.3 item 6; issue 14 item 5)
:func:`importances`           permutation importance on network splits, summed per statistic and per
                              checkpoint (§7.4)
:func:`performance_baseline`  a classifier on loss/accuracy curves only vs the observables (§7.3 item 2)
:func:`objective_tables`      the main table per objective beside the pooled one (issue 14 item 5)
:func:`heldout_hyperparameters` train on the middle of the batch-size / learning-rate range, test on its ends
:func:`unit_count_curve`      act and weight accuracy vs the absolute number of recorded units, and the count
                              at which activations come within 0.05 of their full-layer accuracy
:func:`performance_matched`   rules compared at equal task performance instead of equal training time, beside
                              the same networks at fixed positions (the learning-speed confound)
============================= =========================================================================

:func:`learnscope.identify.classify.run_all` runs all of them that a store supports (:func:`plan_analyses`), each
shared fit once. The store view and its checks live in :mod:`learnscope.identify.frames`, the per-split fit in
:mod:`learnscope.identify.protocol`, the fit cache and progress count in :mod:`learnscope.identify.runner`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, LearnscopeError, UnknownNameError
from learnscope.identify.dataset import PERFORMANCE_NAMES, TrajectoryDataset
from learnscope.identify.frames import (
    VIEW_SEPARATOR,
    Frames,
    check_enough_networks,
    clean_condition,
    curve_conditions,
    dataset_part,
    load_frames,
    network_objectives,
    objective_of,
    performance_curves,
    unit_conditions,
)
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.protocol import sem
from learnscope.identify.runner import IMPORTANCE_CLASSES, Job, Plan, Progress, Runner, check_settings
from learnscope.identify.store import Store
from learnscope.identify.tables import (
    ANALYSES,
    SCORE_KEYS,
    Evaluation,
    Heldout,
    HeldoutHyperparameters,
    Importances,
    MainTable,
    NoiseCurves,
    ObjectiveTables,
    PerformanceBaseline,
    PerformanceMatched,
    Scores,
    Skipped,
    SubsamplingCurve,
    TemporalCurves,
    UnitCountCurve,
)
from learnscope.results import to_jsonable
from learnscope.validation import check_positive_int, check_scalar

MAIN_CLASSES: tuple[str, ...] = ("weight", "act", "grad", "all")
CURVE_CLASSES: tuple[str, ...] = ("weight", "act", "all")
DEFAULT_KS: tuple[int, ...] = (2, 3, 5)
DEFAULT_MS: tuple[int, ...] = (2, 3)
ORDERING_MARGIN = 0.05  # spec §7.3 item 4: accuracy(act) − accuracy(weight) ≥ 0.05
Source = Store | str | Path | Frames
"""A store, its directory, or pre-loaded :class:`~learnscope.identify.frames.Frames`."""


def _run(source: Source, classifiers: Sequence[str], grid: str, n_splits: int, seed: int,
         progress: Progress | None, plan_fn: Callable[..., Plan], **kwargs: Any) -> Any:
    classifiers = check_settings(classifiers, grid, n_splits, seed)
    frames = load_frames(source)
    check_enough_networks(frames, classifiers, grid)
    runner = Runner(frames, grid, n_splits, seed, progress, kwargs.pop("n_repeats", 3))
    plan = plan_fn(frames, classifiers, **kwargs)
    runner.announce(plan.jobs)
    return to_jsonable(plan.finish(runner))


def _scores(result: Evaluation) -> Scores:
    return {k: result[k] for k in SCORE_KEYS}  # type: ignore[return-value]


def _paired_difference(a: Scores, b: Scores) -> tuple[float, float]:
    """Mean and s.e.m. over splits of accuracy(a) − accuracy(b) (same splits)."""
    d = np.asarray(a["accuracy_per_split"]) - np.asarray(b["accuracy_per_split"])
    return float(d.mean()), sem(d)


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


def _plan_main(frames: Frames, classifiers: tuple[str, ...], view: str | None = None) -> Plan:
    """The main table; with ``view`` (a :meth:`Frames.add_view` name) on that view of every dataset."""
    clean = clean_condition(frames)["name"]
    at = f"{VIEW_SEPARATOR}{view}" if view else ""
    cells = [Job(clean, o + at, c) for o in MAIN_CLASSES for c in classifiers]
    rows = [Job(clean, "all" + at, c, split_mode="row") for c in classifiers]

    def finish(runner: Runner) -> MainTable:
        out_cells, gaps, row_cells = [], [], []
        for job in cells:
            out_cells.append({"obs_class": job.obs_class.partition(VIEW_SEPARATOR)[0]} | runner.get(job))
        for job in rows:
            row = runner.get(job)
            net = runner.get(Job(clean, "all" + at, job.classifier))
            row_cells.append({"obs_class": "all"} | row)
            gaps.append({"classifier": job.classifier, "obs_class": "all", "row": _scores(row),
                         "network": _scores(net), "gap": row["accuracy_mean"] - net["accuracy_mean"]})
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

    return Plan(cells + rows, finish)


def main_table(source: Source, classifiers: Sequence[str] = ("rf", "hgb"),
               grid: str = "reduced", n_splits: int = 10, seed: int = 0,
               progress: Progress | None = None) -> MainTable:
    """Accuracy (mean ± s.e.m. over network-grouped splits, and balanced accuracy) per observable class
    ``weight, act, grad, all`` × classifier on the clean condition (spec §6.2, §7.3 item 1), and the row-level
    (original, leaky) vs network-level accuracy of ``all`` per classifier (§7.3 item 3); ``best`` is the
    classifier with the highest ``all`` accuracy. Returns a :class:`~learnscope.identify.tables.MainTable`."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_main)


# --------------------------------------------------------------------------------------------------------------
# 2./3. noise and subsampling curves


def _curve(frames: Frames, classifiers: tuple[str, ...], kind: str, margin: float
           ) -> tuple[list[Job], Callable[[Runner], dict]]:
    """The jobs and the finish of one curve (``kind`` of :func:`~learnscope.identify.frames.curve_conditions`):
    a :class:`~learnscope.identify.tables.NoiseCurve` / ``SubsamplingCurve`` body, or ``Unavailable``."""
    clean = clean_condition(frames)
    conds = curve_conditions(frames, kind)
    xkey = "frac" if kind == "subsampling" else "sigma"
    points = [(1.0 if kind == "subsampling" else 0.0, clean)] + [(float(c[xkey]), c) for c in conds]
    jobs = [Job(c["name"], o, clf) for _, c in points for o in CURVE_CLASSES for clf in classifiers]

    def finish(runner: Runner) -> dict:
        if not conds:
            return {"available": False, "reason": f"the store has no {kind}{' noise' * (kind != 'subsampling')} "
                                                  "conditions"}
        recs, diffs, ordering = [], [], {}
        for clf in classifiers:
            clean_acc = {o: runner.get(Job(clean["name"], o, clf))["accuracy_mean"] for o in CURVE_CLASSES}
            series = []
            for x, c in points:
                res = {o: runner.get(Job(c["name"], o, clf)) for o in CURVE_CLASSES}
                for o in CURVE_CLASSES:
                    recs.append({xkey: x, "condition": c["name"], "classifier": clf, "obs_class": o}
                                | _scores(res[o]) | {"drop_from_clean": clean_acc[o] - res[o]["accuracy_mean"]})
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


def _plan_noise(frames: Frames, classifiers: tuple[str, ...], margin: float = ORDERING_MARGIN) -> Plan:
    abs_jobs, abs_finish = _curve(frames, classifiers, "absolute", margin)
    rel_jobs, rel_finish = _curve(frames, classifiers, "relative", margin)
    have_abs, have_rel = bool(curve_conditions(frames, "absolute")), bool(curve_conditions(frames, "relative"))
    if not (have_abs or have_rel):
        return Plan([], lambda r: {"skipped": "the store has no noise conditions (sigma > 0 with frac None)"})
    jobs = (abs_jobs if have_abs else []) + (rel_jobs if have_rel else [])

    def finish(runner: Runner) -> NoiseCurves:
        return {"classifiers": list(classifiers), "obs_classes": list(CURVE_CLASSES),
                "condition_clean": clean_condition(frames)["name"], "margin": margin,
                "absolute": abs_finish(runner), "relative": rel_finish(runner)}

    return Plan(jobs, finish)


def noise_curves(source: Source, classifiers: Sequence[str] = ("rf",), grid: str = "reduced",
                 n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                 margin: float = ORDERING_MARGIN) -> NoiseCurves | Skipped:
    """Accuracy of ``weight``, ``act`` and ``all`` against the noise level σ (clean = σ 0) for the absolute-noise
    conditions and, separately, the relative-noise conditions (spec §6.3, §7.3 item 4, §8 item 4), with the
    paired difference act − weight per σ and its :func:`ordering_verdict` per classifier.

    Returns :class:`~learnscope.identify.tables.NoiseCurves` (a kind without conditions is ``Unavailable``), or
    ``Skipped`` when the store has no noise condition at all."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_noise, margin=margin)


def _plan_subsampling(frames: Frames, classifiers: tuple[str, ...], margin: float = ORDERING_MARGIN) -> Plan:
    if not curve_conditions(frames, "subsampling"):
        return Plan([], lambda r: {"skipped": "the store has no unit-subsampling conditions (frac set, sigma 0)"})
    jobs, curve_finish = _curve(frames, classifiers, "subsampling", margin)

    def finish(runner: Runner) -> SubsamplingCurve:
        out = curve_finish(runner)
        return {"classifiers": list(classifiers), "obs_classes": list(CURVE_CLASSES), "margin": margin,
                "note": "with frac set, weight norm is the L2 norm of the kept synapses, not the mean row norm "
                        "(identify-spec §8 item 3), so the weight curve mixes subsampling with a change of "
                        "definition"} | out

    return Plan(jobs, finish)


def subsampling_curve(source: Source, classifiers: Sequence[str] = ("rf",),
                      grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                      margin: float = ORDERING_MARGIN) -> SubsamplingCurve | Skipped:
    """Accuracy of ``weight``, ``act`` and ``all`` against the fraction of units kept (clean = 1.0), for the
    conditions with ``frac`` set and no noise (spec §6.3, §7.3 item 4): one curve of :func:`noise_curves` with
    ``frac`` for ``sigma`` (:class:`~learnscope.identify.tables.SubsamplingCurve`); ``Skipped`` without such
    conditions."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_subsampling, margin=margin)


# --------------------------------------------------------------------------------------------------------------
# 4. temporal subsampling


def _plan_temporal(frames: Frames, classifiers: tuple[str, ...], ks: Sequence[int] = DEFAULT_KS,
                   ms: Sequence[int] = DEFAULT_MS) -> Plan:
    clean = clean_condition(frames)["name"]
    C = frames.dataset(clean, "all").n_checkpoints
    ks_used = sorted({int(k) for k in ks if 1 <= int(k) < C})
    ms_used = sorted({int(m) for m in ms if 2 <= int(m) < C})
    specs: list[tuple[str, int | None]] = []
    for k in ks_used:
        specs += [("first-k", k), ("last-k", k)] + ([("spread-k", k)] if k >= 2 else [])
    specs += [("every-m", m) for m in ms_used] + [("end-only", None)]
    jobs = {(mode, k, clf): Job(clean, "all", clf, ckpt_mode=mode, k=k) for mode, k in specs for clf in classifiers}
    full = {clf: Job(clean, "all", clf) for clf in classifiers}

    def finish(runner: Runner) -> TemporalCurves:
        points, acceptance = [], {}
        for (mode, k, clf), job in jobs.items():
            res = runner.get(job)
            points.append({"mode": mode, "k": k, "n_kept": len(res["checkpoints"]),
                           "checkpoints": res["checkpoints"], "classifier": clf} | _scores(res))
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
                           "classifier": clf} | _scores(ref))
        return {"condition": clean, "obs_class": "all", "classifiers": list(classifiers), "n_checkpoints": C,
                "ks": ks_used, "ms": ms_used, "points": points, "acceptance": acceptance}

    return Plan(list(jobs.values()) + list(full.values()), finish)


def temporal_curves(source: Source, classifiers: Sequence[str] = ("rf",),
                    grid: str = "reduced", n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                    ks: Sequence[int] = DEFAULT_KS, ms: Sequence[int] = DEFAULT_MS) -> TemporalCurves:
    """Accuracy of ``all`` on the clean condition with limited access to the trajectory (spec §6.3, §7.3 item 5):
    ``first-k``, ``spread-k`` and ``last-k`` for each ``k`` in ``ks`` below the number of checkpoints C,
    ``every-m`` for each ``m`` in ``ms`` (2 ≤ m < C), ``end-only``, and ``full`` (all C checkpoints); the
    acceptance check per classifier is spread-3 ≥ first-3 (paired). Returns a
    :class:`~learnscope.identify.tables.TemporalCurves`."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_temporal, ks=ks, ms=ms)


# --------------------------------------------------------------------------------------------------------------
# 5. held-out generalisation


def _relabel_view(frames: Frames, name: str, labels: dict[str, str] | None = None,
                  keep: set[str] | None = None) -> str:
    """Register the view ``name``: the rows of the networks in ``keep`` (default: every network) with
    ``meta["task"]`` replaced by ``labels[network_id]`` (default: unchanged). Held-out splits
    (:func:`~learnscope.identify.protocol.get_splits` ``"heldout-task"``) group by that column, so relabelling it
    holds out any per-network grouping (objective, dataset, a hyperparameter range) with every layer of a network
    on one side. Returns the view's name."""

    def view(ds: TrajectoryDataset) -> TrajectoryDataset:
        nets = ds.meta["network_id"].astype(str).to_numpy()
        rows = np.flatnonzero(np.isin(nets, sorted(keep))) if keep is not None else np.arange(len(nets))
        sub = ds.subset(rows)
        if labels is None:
            return sub
        meta = sub.meta.copy()
        meta["task"] = [labels[n] for n in nets[rows]]
        return replace(sub, meta=meta)

    return frames.add_view(name, view)


def _clean_networks(frames: Frames) -> pd.DataFrame:
    """One row per status-ok network of the clean ``all`` dataset: ``network_id``, ``rule``, ``task``,
    ``architecture``, ``batch_size``, ``lr`` (its first layer's metadata) and ``objective``."""
    meta = frames.dataset(clean_condition(frames)["name"], "all").meta
    nets = meta.drop_duplicates("network_id")[["network_id", "rule", "task", "architecture", "batch_size", "lr"]]
    nets = nets.astype({"network_id": str, "rule": str, "task": str}).reset_index(drop=True)
    objectives = network_objectives(frames)
    nets["objective"] = [objectives.get(n) or objective_of(t) for n, t in zip(nets["network_id"], nets["task"],
                                                                              strict=True)]
    return nets


def _heldout_parts(frames: Frames) -> dict[str, tuple[str, str, str, int, str]]:
    """Per held-out part: (split mode, obs class key, grouping column in words, number of values, first value).

    ``task`` is the dataset part of the task entry (before ``":"``) once a store has objectives in its task
    names, so that held-out task and held-out objective are different questions."""
    nets = _clean_networks(frames)
    datasets = nets["task"].map(dataset_part)
    task_key = "all"
    if (datasets != nets["task"]).any():
        task_key = "all" + VIEW_SEPARATOR + _relabel_view(frames, "heldout=dataset",
                                                          dict(zip(nets["network_id"], datasets, strict=True)))
    obj_key = "all" + VIEW_SEPARATOR + _relabel_view(frames, "heldout=objective",
                                                     dict(zip(nets["network_id"], nets["objective"], strict=True)))
    return {
        "architecture": ("heldout-arch", "all", "architecture", nets["architecture"].nunique(),
                         str(nets["architecture"].iloc[0])),
        "task": ("heldout-task", task_key, "task (the dataset, before ':' in the task name)", datasets.nunique(),
                 str(datasets.iloc[0])),
        "objective": ("heldout-task", obj_key, "objective", nets["objective"].nunique(),
                      str(nets["objective"].iloc[0])),
    }


def _plan_heldout(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    meta = frames.dataset(clean, "all").meta
    parts = _heldout_parts(frames)
    available = {part: n >= 2 for part, (_, _, _, n, _) in parts.items()}
    jobs = [Job(clean, key, clf, split_mode=mode) for part, (mode, key, _, _, _) in parts.items()
            if available[part] for clf in classifiers]

    def finish(runner: Runner) -> Heldout:
        out: dict[str, Any] = {"condition": clean, "obs_class": "all", "classifiers": list(classifiers),
                               "chance": 1.0 / meta["rule"].nunique()}
        for part, (mode, key, grouping, _, first) in parts.items():
            if not available[part]:
                out[part] = {"available": False,
                             "reason": f"the store has one {part} ({first!r}); held-out {part} needs two"}
                continue
            per_clf = []
            try:
                held = {clf: runner.get(Job(clean, key, clf, split_mode=mode)) for clf in classifiers}
            except LearnscopeError as err:  # e.g. a held-out value leaves a rule without training networks
                out[part] = {"available": False, "reason": f"held-out {part} cannot be evaluated: {err}"}
                continue
            for clf in classifiers:
                res = held[clf]
                grouped = runner.get(Job(clean, "all", clf))
                values = [{"held_out": v, "accuracy": a, "balanced_accuracy": b, "n_test": n}
                          for v, a, b, n in zip(res["held_out"], res["accuracy_per_split"],
                                                res["balanced_accuracy_per_split"], res["n_test"], strict=True)]
                per_clf.append({"classifier": clf, "values": values, "mean_accuracy": res["accuracy_mean"],
                                "mean_balanced_accuracy": res["balanced_accuracy_mean"],
                                "sem_accuracy": res["accuracy_sem"],
                                "network_split_accuracy": grouped["accuracy_mean"],
                                "confusion_matrix": res["confusion_matrix"], "labels": res["labels"]})
            split_mode = "heldout-objective" if part == "objective" else mode
            out[part] = {"available": True, "split_mode": split_mode, "grouping": grouping, "per_classifier": per_clf}
        return out  # type: ignore[return-value]

    grouped_jobs = [Job(clean, "all", clf) for clf in classifiers] if jobs else []
    return Plan(jobs + grouped_jobs, finish)


def heldout(source: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced",
            n_splits: int = 10, seed: int = 0, progress: Progress | None = None) -> Heldout:
    """Generalisation to a held-out architecture, task and objective (spec §6.3, §7.3 item 6; issue 14 item 5):
    for each value, train on the networks of every other value and test on all of its networks (``all``, clean
    condition). ``task`` is the dataset (the task name before ``":"``), ``objective`` the training objective
    (the store's ``objective`` column, or derived from the task name for stores written before it).

    Returns a :class:`~learnscope.identify.tables.Heldout`; a part is ``Unavailable`` with fewer than two values
    or when a held-out value leaves a rule with too few training networks. ``n_splits`` only affects the
    within-distribution reference ``network_split_accuracy``."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_heldout)


# --------------------------------------------------------------------------------------------------------------
# 6. permutation importances


def _plan_importances(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    clf = classifiers[0]
    job = Job(clean, "all", clf, kind="importance")

    def finish(runner: Runner) -> Importances:
        raw = runner.get(job)
        imp = np.asarray(raw["importances"])  # (n_splits, groups) in importance_groups order
        names, ckpts = raw["obs_names"], raw["checkpoints"]
        n_obs, T = len(names), len(ckpts)
        per_stat, per_ckpt = imp[:, :n_obs], imp[:, n_obs:n_obs + T]
        classes = imp[:, n_obs + T:n_obs + T + len(IMPORTANCE_CLASSES)]
        layer = imp[:, -1]
        stats = sorted(({"name": n, "importance_mean": float(per_stat[:, j].mean()),
                         "importance_sem": sem(per_stat[:, j])} for j, n in enumerate(names)),
                       key=lambda r: -r["importance_mean"])
        per_class = {c: {"importance_mean": float(classes[:, k].mean()), "importance_sem": sem(classes[:, k])}
                     for k, c in enumerate(IMPORTANCE_CLASSES) if any(n in OBS_CLASSES[c] for n in names)}
        return {
            "condition": clean, "obs_class": "all", "classifier": clf, "split_mode": "network",
            "n_splits": len(imp), "n_repeats": runner.n_repeats, "scoring": "accuracy",
            "test_accuracy_mean": float(np.mean(raw["accuracy"])),
            "per_statistic": stats,
            "per_checkpoint": [{"checkpoint": c, "importance_mean": float(per_ckpt[:, t].mean()),
                                "importance_sem": sem(per_ckpt[:, t])} for t, c in enumerate(ckpts)],
            "per_class": per_class,
            "layer_position": {"importance_mean": float(layer.mean()), "importance_sem": sem(layer)},
            "note": "grouped permutations on each split's test networks: a statistic's whole trajectory, all "
                    "statistics at one checkpoint, or a whole observable class is shuffled across rows at once, so "
                    "correlated columns do not share credit; accuracy drop, mean over repeats and splits",
        }

    return Plan([job], finish)


def importances(source: Source, classifier: str = "rf", grid: str = "reduced",
                n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                n_repeats: int = 3) -> Importances:
    """Grouped permutation importance (accuracy drop, ``n_repeats`` seeded shuffles per group, see
    :func:`~learnscope.identify.runner.grouped_permutation_importance`) of ``classifier`` on ``all`` (clean
    condition), on the test networks of each network-grouped split, for the model
    :func:`~learnscope.identify.protocol.evaluate` fits on that split (spec §7.4: permutation importance on
    grouped splits instead of MDI).

    Returns a :class:`~learnscope.identify.tables.Importances`: ``per_statistic`` sorted by decreasing importance
    (the statistic's whole trajectory shuffled), ``per_checkpoint`` in checkpoint order (all statistics at that
    checkpoint shuffled), ``per_class`` (each class shuffled as a block), ``layer_position`` (the one-hot
    shuffled); means and s.e.m. are over splits."""
    check_positive_int("n_repeats", n_repeats)
    return _run(source, (classifier,), grid, n_splits, seed, progress, _plan_importances, n_repeats=n_repeats)


# --------------------------------------------------------------------------------------------------------------
# 7. performance-only baseline


def _plan_performance(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    perf = {clf: Job(clean, "performance", clf) for clf in classifiers}
    obs = {clf: Job(clean, "all", clf) for clf in classifiers}

    def finish(runner: Runner) -> PerformanceBaseline:
        cells, observables, comparison = [], [], []
        for clf in classifiers:
            p, o = runner.get(perf[clf]), runner.get(obs[clf])
            cells.append({"classifier": clf} | _scores(p) | {"confusion_matrix": p["confusion_matrix"],
                                                           "labels": p["labels"]})
            observables.append({"classifier": clf, "obs_class": "all"} | _scores(o))
            d, d_sem = _paired_difference(o, p)
            comparison.append({"classifier": clf, "performance": p["accuracy_mean"],
                               "observables": o["accuracy_mean"], "difference": d, "difference_sem": d_sem,
                               "observables_beat_performance": bool(d > 0)})
        return {"condition": clean, "statistics": list(PERFORMANCE_NAMES), "classifiers": list(classifiers),
                "cells": cells, "observables": observables, "comparison": comparison}

    return Plan(list(perf.values()) + list(obs.values()), finish)


def performance_baseline(source: Source, classifiers: Sequence[str] = ("rf", "hgb"),
                         grid: str = "reduced", n_splits: int = 10, seed: int = 0,
                         progress: Progress | None = None) -> PerformanceBaseline:
    """A classifier on the loss / train-accuracy / test-accuracy curves alone
    (:meth:`TrajectoryDataset.performance_only`, same rows, checkpoints and splits) against the same classifier
    on all observables (spec §7.3 item 2, §8 item 12: are rules told apart only through how well they learn?).
    Returns a :class:`~learnscope.identify.tables.PerformanceBaseline` (differences paired, observables −
    performance)."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_performance)


# --------------------------------------------------------------------------------------------------------------
# 8. pooled and per-objective main tables


def _plan_objectives(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    nets = _clean_networks(frames)
    counts = nets.groupby("objective")["network_id"].nunique().sort_index()
    objectives = [str(o) for o in counts.index]
    if len(objectives) < 2:
        return Plan([], lambda r: {"skipped": f"the store has one objective ({objectives[0]!r}); per-objective "
                                              "tables need two"})
    plans: dict[str, Plan] = {}
    reasons: dict[str, str] = {}
    for obj in objectives:
        mine = nets[nets["objective"] == obj]
        per_rule = mine.groupby("rule")["network_id"].nunique()
        if len(per_rule) < 2:
            reasons[obj] = f"only rule {per_rule.index[0]!r} has status-ok networks of objective {obj!r}"
        elif int(per_rule.min()) < 2:
            reasons[obj] = (f"rule {per_rule.idxmin()!r} has {int(per_rule.min())} status-ok network(s) of objective "
                            f"{obj!r}; a split needs 2")
        else:
            view = _relabel_view(frames, f"objective={obj}", keep=set(mine["network_id"]))
            plans[obj] = _plan_main(frames, classifiers, view=view)
    pooled = _plan_main(frames, classifiers)

    def finish(runner: Runner) -> ObjectiveTables:
        tables: dict[str, Any] = {}
        for obj in objectives:
            if obj in reasons:
                tables[obj] = {"available": False, "reason": reasons[obj]}
                continue
            try:
                tables[obj] = plans[obj].finish(runner)
            except LearnscopeError as err:  # e.g. too few networks of a rule for an inner grid search
                tables[obj] = {"available": False, "reason": f"objective {obj!r} cannot be evaluated: {err}"}
        summary = []
        for name, table in [("pooled", pooled.finish(runner)), *tables.items()]:
            if "cells" not in table:
                continue
            n = int(counts.sum()) if name == "pooled" else int(counts[name])
            for cell in table["cells"]:
                summary.append({"objective": name, "classifier": cell["classifier"], "obs_class": cell["obs_class"],
                                "n_networks": n, "chance": table["chance"]} | _scores(cell))
        return {"objectives": objectives, "networks_per_objective": {str(k): int(v) for k, v in counts.items()},
                "classifiers": list(classifiers), "obs_classes": list(MAIN_CLASSES), "per_objective": tables,
                "summary": summary}

    return Plan(pooled.jobs + [j for p in plans.values() for j in p.jobs], finish)


def objective_tables(source: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced",
                     n_splits: int = 10, seed: int = 0, progress: Progress | None = None) -> ObjectiveTables | Skipped:
    """The main table (:func:`main_table`) on the networks of each objective alone, beside the pooled one (issue
    14 item 5): ``per_objective`` maps an objective to its :class:`~learnscope.identify.tables.MainTable` (or
    ``Unavailable`` when a rule has too few networks of it), ``summary`` lists accuracy per (objective or
    ``"pooled"``, classifier, observable class). Objectives come from the store's ``objective`` column, or from
    the task names of stores written before it. ``Skipped`` with one objective."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_objectives)


# --------------------------------------------------------------------------------------------------------------
# 9. held-out hyperparameters


HYPERPARAMETERS: tuple[str, ...] = ("batch_size", "lr")


def hyperparameter_sides(values: np.ndarray, rules: np.ndarray, parameter: str) -> np.ndarray:
    r"""Which side of a hyperparameter range each network is on: ``"low"``, ``"middle"`` or ``"high"``.

    * ``batch_size``: with the distinct batch sizes :math:`b_1 < \dots < b_K` of the store (:math:`K \ge 3`),
      :math:`b_1` is ``low``, :math:`b_K` ``high``, the others ``middle``;
    * ``lr`` (the lr multiplier, the lr relative to its rule's base lr; continuous with ``lr_spread``): per rule,
      with :math:`q_{1/3}, q_{2/3}` the rule's tercile boundaries (``numpy.quantile``, linear), ``low`` is
      :math:`m < q_{1/3}`, ``high`` is :math:`m > q_{2/3}`, the rest ``middle`` — per-rule terciles, so every
      rule has networks on each side whenever its multipliers vary.

    Raises :class:`ConfigError` (one line) when the store cannot be split so: fewer than 3 batch sizes, no
    spread of learning rates within a rule, or a rule missing from a side."""
    values = np.asarray(values, dtype=np.float64)
    rules = np.asarray(rules).astype(str)
    sides = np.full(len(values), "middle", dtype=object)
    if parameter == "batch_size":
        distinct = np.unique(values)
        if len(distinct) < 3:
            raise ConfigError(f"held-out batch sizes need at least 3 batch sizes (smallest and largest tested, the "
                              f"middle trained on); the store has {[int(v) for v in distinct]}")
        sides[values == distinct[0]] = "low"
        sides[values == distinct[-1]] = "high"
    elif parameter == "lr":
        for rule in np.unique(rules):
            mine = rules == rule
            q1, q2 = np.quantile(values[mine], [1 / 3, 2 / 3])
            sides[mine & (values < q1)] = "low"
            sides[mine & (values > q2)] = "high"
    else:
        raise UnknownNameError("hyperparameter", str(parameter), HYPERPARAMETERS)
    for side in ("low", "middle", "high"):
        missing = sorted(map(str, set(rules) - set(rules[sides == side])))
        if missing:
            why = ("learning rates do not vary within it (no lr_spread or learning_rates)" if parameter == "lr"
                   else "it has no network of that batch size")
            raise ConfigError(f"rule {missing[0]!r} has no network on the {side} side of the {parameter} range: "
                              f"{why}")
    return sides.astype(str)


def _hp_values(frames: Frames, nets: pd.DataFrame, parameter: str) -> np.ndarray:
    if parameter == "batch_size":
        return nets["batch_size"].to_numpy(dtype=np.float64)
    table = frames.networks.drop_duplicates("network_id")
    if "lr_multiplier" in table:
        mult = pd.to_numeric(table.set_index(table["network_id"].astype(str))["lr_multiplier"], errors="coerce")
        values = mult.reindex(nets["network_id"]).to_numpy(dtype=np.float64)
        if np.isfinite(values).all():
            return values
    return nets["lr"].to_numpy(dtype=np.float64)  # ∝ the multiplier within a rule: the same terciles


def _range(values: np.ndarray) -> list[float]:
    return [float(values.min()), float(values.max())] if len(values) else []


def _plan_hyperparameters(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    nets = _clean_networks(frames)
    rules = nets["rule"].to_numpy()
    setups: dict[str, Any] = {}
    for parameter in HYPERPARAMETERS:
        values = _hp_values(frames, nets, parameter)
        try:
            sides = hyperparameter_sides(values, rules, parameter)
        except ConfigError as err:
            setups[parameter] = str(err)
            continue
        ids = nets["network_id"].to_numpy()
        keys = {}
        for end in ("low", "high"):
            on = (sides == "middle") | (sides == end)
            labels = {nid: ("end" if side == end else "middle") for nid, side in zip(ids[on], sides[on], strict=True)}
            keys[end] = "all" + VIEW_SEPARATOR + _relabel_view(frames, f"hp={parameter}:{end}", labels, set(labels))
        setups[parameter] = {"values": values, "sides": sides, "keys": keys}
    jobs = [Job(clean, key, clf, split_mode="heldout-task") for setup in setups.values() if isinstance(setup, dict)
            for key in setup["keys"].values() for clf in classifiers]
    grouped = [Job(clean, "all", clf) for clf in classifiers] if jobs else []

    def part(runner: Runner, parameter: str, setup: Any) -> dict:
        if isinstance(setup, str):
            return {"available": False, "reason": setup}
        values, sides = setup["values"], setup["sides"]
        try:
            res = {(end, clf): runner.get(Job(clean, key, clf, split_mode="heldout-task"))
                   for end, key in setup["keys"].items() for clf in classifiers}
        except LearnscopeError as err:
            return {"available": False, "reason": f"held-out {parameter} cannot be evaluated: {err}"}
        per_clf = []
        for clf in classifiers:
            ends, correct, tested = [], 0.0, 0
            for end in ("low", "high"):
                r = res[(end, clf)]
                i = r["held_out"].index("end")  # train on the middle, test on this end
                j = 1 - i  # the reverse: train on this end, test on the middle
                n = int(r["n_test"][i])
                ends.append({"end": end, "range": _range(values[sides == end]),
                             "n_test_networks": int((sides == end).sum()), "n_test": n,
                             "accuracy": r["accuracy_per_split"][i],
                             "balanced_accuracy": r["balanced_accuracy_per_split"][i],
                             "reverse_accuracy": r["accuracy_per_split"][j]})
                correct += r["accuracy_per_split"][i] * n
                tested += n
            per_clf.append({"classifier": clf, "ends": ends, "accuracy": correct / tested,
                            "network_split_accuracy": runner.get(Job(clean, "all", clf))["accuracy_mean"]})
        return {"available": True, "parameter": parameter, "middle_range": _range(values[sides == "middle"]),
                "n_train_networks": int((sides == "middle").sum()), "per_classifier": per_clf}

    def finish(runner: Runner) -> HeldoutHyperparameters:
        out: dict[str, Any] = {"condition": clean, "obs_class": "all", "classifiers": list(classifiers),
                               "chance": 1.0 / nets["rule"].nunique(),
                               "definition": HYPERPARAMETER_DEFINITION}
        for parameter, setup in setups.items():
            out[parameter] = part(runner, parameter, setup)
        means = []
        for clf in classifiers:
            accs = {p: next(c["accuracy"] for c in out[p]["per_classifier"] if c["classifier"] == clf)
                    for p in HYPERPARAMETERS if out[p].get("available")}
            means.append({"classifier": clf, "parts": list(accs),
                          "accuracy": float(np.mean(list(accs.values()))) if accs else None})
        out["mean"] = means
        return out  # type: ignore[return-value]

    return Plan(jobs + grouped, finish)


HYPERPARAMETER_DEFINITION = (
    "train on the networks in the middle of a hyperparameter's range, test on each end: batch size — the smallest "
    "and the largest batch size are the ends, the others the middle; learning rate — per rule, the networks "
    "below the rule's lower tercile of lr multipliers (lr / the rule's base lr) are the low end, above its upper "
    "tercile the high end; accuracy pools both ends (one model, trained on the middle), 'reverse' trains on an "
    "end and tests on the middle")


def heldout_hyperparameters(source: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced",
                            n_splits: int = 10, seed: int = 0,
                            progress: Progress | None = None) -> HeldoutHyperparameters:
    """Generalisation from the middle of the batch-size and learning-rate ranges to their ends (issue 14 item 5;
    sides by :func:`hyperparameter_sides`): per parameter and classifier, the accuracy on the low and the high
    end of a model trained on the middle networks (``all``, clean condition, every layer of a network on one
    side), pooled over both ends, the reverse direction per end, and the mean over the parameters available.

    Returns a :class:`~learnscope.identify.tables.HeldoutHyperparameters`; a parameter the store does not vary
    enough is ``Unavailable``. Each (parameter, end) is one ``heldout-task`` evaluation on a relabelled view, two
    fits (the middle → end one reported, and its reverse)."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_hyperparameters)


# --------------------------------------------------------------------------------------------------------------
# 10. recorded-unit count curve


UNIT_CLASSES: tuple[str, ...] = ("act", "weight")
UNIT_MARGIN = 0.05
"""Issue 14: the number of units at which activations reach within 0.05 of their full-layer accuracy."""


def units_within(points: Sequence[tuple[int, float]], full: float, margin: float = UNIT_MARGIN) -> int | None:
    """The smallest count ``n`` of ``(n, accuracy)`` pairs whose accuracy is ≥ ``full − margin``; None when no
    count gets there (or ``full`` is undefined)."""
    if full is None or not math.isfinite(full):
        return None
    ok = [n for n, acc in points if acc is not None and math.isfinite(acc) and acc >= full - margin]
    return min(ok) if ok else None


def _plan_units(frames: Frames, classifiers: tuple[str, ...], margin: float = UNIT_MARGIN) -> Plan:
    conds = unit_conditions(frames)
    if not conds:
        return Plan([], lambda r: {"skipped": "the store has no unit-count conditions (units = N recorded units, "
                                              "no noise, the same units in every session)"})
    clean = clean_condition(frames)["name"]
    classes = {c["name"]: [o for o in UNIT_CLASSES if o == "act" or c["observables"] in (None, "all")] for c in conds}
    jobs = [Job(clean, o, clf) for o in UNIT_CLASSES for clf in classifiers]
    jobs += [Job(c["name"], o, clf) for c in conds for o in classes[c["name"]] for clf in classifiers]

    def finish(runner: Runner) -> UnitCountCurve:
        points, full, reach = [], [], []
        for clf in classifiers:
            for o in UNIT_CLASSES:
                ref = runner.get(Job(clean, o, clf))
                full.append({"classifier": clf, "obs_class": o, "condition": clean} | _scores(ref))
                series = []
                for c in conds:
                    if o not in classes[c["name"]]:
                        continue
                    res = runner.get(Job(c["name"], o, clf))
                    points.append({"units": int(c["units"]), "condition": c["name"], "classifier": clf,
                                   "obs_class": o, "drop_from_full": ref["accuracy_mean"] - res["accuracy_mean"]}
                                  | _scores(res))
                    series.append((int(c["units"]), res["accuracy_mean"]))
                reach.append({"classifier": clf, "obs_class": o, "full_accuracy": ref["accuracy_mean"],
                              "margin": margin, "units_within_margin": units_within(series, ref["accuracy_mean"],
                                                                                    margin)})
        small = [c["name"] for c in conds if c["small_layers"] == "all"]
        return {"condition_full": clean, "classifiers": list(classifiers), "obs_classes": list(UNIT_CLASSES),
                "units": [int(c["units"]) for c in conds], "conditions": [c["name"] for c in conds],
                "margin": margin, "points": points, "full": full, "reach": reach,
                "small_layers_all": small,
                "note": "a count is of units per layer for activations (and the layer-wise activity change) and of "
                        "synapses (weight entries) for weights; with a count set, weight norm is the L2 norm of the "
                        "kept synapses; the same units at every checkpoint"}

    return Plan(jobs, finish)


def unit_count_curve(source: Source, classifiers: Sequence[str] = ("rf",), grid: str = "reduced",
                     n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                     margin: float = UNIT_MARGIN) -> UnitCountCurve | Skipped:
    """Accuracy of ``act`` and of ``weight`` against the absolute number of recorded units (the conditions of
    :func:`~learnscope.identify.frames.unit_conditions`: ``units = N``, the same units at every checkpoint) with
    the clean, full-layer condition as the reference (issue 14 item 5: the paper's "several hundred units"),
    and per classifier and class ``units_within_margin`` (:func:`units_within`: the smallest count whose accuracy
    is ≥ full − ``margin``). Returns a :class:`~learnscope.identify.tables.UnitCountCurve`, or ``Skipped``
    without such conditions."""
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_units, margin=margin)


# --------------------------------------------------------------------------------------------------------------
# 11. performance-matched control


MATCHED_LEVELS = 4
MATCHED_COVERAGE = 0.8
MATCHED_CLASSES: tuple[str, ...] = ("all",)
MATCHED_DEFINITION = (
    "per objective, with p_n(t) network n's test performance at checkpoint t: the common range runs from "
    "L = the largest over rules of the rule's median initial performance p_n(0) to H = the smallest over rules "
    "of the rule's (1 − coverage) quantile of best performance max_t p_n(t); the levels are "
    "L + (H − L)·k/K, k = 1..K. Networks that reach H are kept. A network's matched position for a level is "
    "where its curve first reaches it, linearly interpolated between the checkpoint before and the first one at "
    "or above the level; its features are its observables interpolated there. The unmatched control uses, for "
    "every network of an objective, the same fixed positions: the median over that objective's kept networks of "
    "the matched positions (so both see K points at the same average time; only the matching differs)")


def matched_positions(curves: np.ndarray, rules: np.ndarray, n_levels: int = MATCHED_LEVELS,
                      coverage: float = MATCHED_COVERAGE) -> dict[str, Any]:
    r"""Performance levels every rule reaches and where each network first reaches them (one objective).

    ``curves``: ``(n, C)`` test performance per checkpoint (higher is better); ``rules``: ``(n,)``. With
    :math:`L = \max_r \mathrm{median}_{n\in r}\, p_n(0)` and :math:`H = \min_r q_{1-\mathrm{coverage}}
    (\{\max_t p_n(t)\}_{n \in r})`, the levels are :math:`\ell_k = L + (H-L)k/K`, :math:`k = 1..K`. For a
    kept network (:math:`\max_t p_n(t) \ge H`) with :math:`t_1` its first checkpoint at or above
    :math:`\ell_k`, the position is :math:`\tau = t_1 - 1 + (\ell_k - p(t_1-1)) / (p(t_1) - p(t_1-1))`
    (0 when :math:`t_1 = 0`), in checkpoints. Returns ``{"levels": (K,), "keep": (n,) bool, "positions":
    (n, K) float (NaN where not kept), "low": L, "high": H}``, or ``{"reason": str}`` when ``H <= L``."""
    curves = np.asarray(curves, dtype=np.float64)
    rules = np.asarray(rules).astype(str)
    n, C = curves.shape
    groups = [rules == r for r in np.unique(rules)]
    low = max(float(np.median(curves[g, 0])) for g in groups)
    high = min(float(np.quantile(curves[g].max(axis=1), 1.0 - coverage)) for g in groups)
    if not high > low:
        return {"reason": f"the rules share no range of performance above their start (from {low:.3g} to "
                          f"{high:.3g})", "low": low, "high": high}
    levels = low + (high - low) * np.arange(1, n_levels + 1) / n_levels
    levels[-1] = high
    keep = curves.max(axis=1) >= high
    above = curves[:, :, None] >= levels[None, None, :]  # (n, C, K)
    t1 = np.argmax(above, axis=1)  # first checkpoint at or above each level; 0 if never (not kept)
    prev = np.maximum(t1 - 1, 0)
    rows = np.arange(n)[:, None]
    p0, p1 = curves[rows, prev], curves[rows, t1]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(t1 > 0, (levels[None, :] - p0) / (p1 - p0), 0.0)
    positions = np.where(t1 > 0, prev + np.clip(w, 0.0, 1.0), 0.0)
    positions[~keep] = np.nan
    return {"levels": levels, "keep": keep, "positions": positions, "low": low, "high": high}


def _interpolate(X: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``X`` ``(n, C, F)`` at fractional checkpoints ``positions`` ``(n, K)``: ``(n, K, F)``, linear between
    neighbours."""
    C = X.shape[1]
    lo = np.clip(np.floor(positions).astype(int), 0, C - 1)
    hi = np.clip(lo + 1, 0, C - 1)
    w = (positions - lo)[:, :, None]
    rows = np.arange(len(X))[:, None]
    return (1.0 - w) * X[rows, lo] + w * X[rows, hi]


def _plan_matched(frames: Frames, classifiers: tuple[str, ...], n_levels: int = MATCHED_LEVELS,
                  coverage: float = MATCHED_COVERAGE, obs_classes: Sequence[str] = MATCHED_CLASSES) -> Plan:
    clean = clean_condition(frames)["name"]
    curves, measures, chances = performance_curves(frames)
    nets = _clean_networks(frames)
    C = frames.dataset(clean, "all").n_checkpoints
    nets = nets[[nid in curves and curves[nid].size == C for nid in nets["network_id"]]]
    if nets.empty:
        return Plan([], lambda r: {"skipped": "no status-ok network has a finite test performance curve with one "
                                              "value per checkpoint (performance_curve, or test_accuracy_curve for "
                                              "stores written before it)"})
    matched: dict[str, np.ndarray] = {}
    fixed: dict[str, np.ndarray] = {}
    per_obj = []
    for obj in sorted(nets["objective"].unique()):
        mine = nets[nets["objective"] == obj]
        ids = mine["network_id"].to_numpy()
        entry = {"objective": str(obj), "measure": measures[ids[0]], "n_networks": len(ids), "n_kept": 0,
                 "chance_performance": chances[ids[0]], "levels": [], "fixed_positions": [], "reason": None}
        if mine["rule"].nunique() < 2:
            entry["reason"] = f"only rule {mine['rule'].iloc[0]!r} has a performance curve for objective {obj!r}"
        else:
            pos = matched_positions(np.stack([curves[i] for i in ids]), mine["rule"].to_numpy(), n_levels, coverage)
            if "reason" in pos:
                entry["reason"] = pos["reason"]
            else:
                kept = ids[pos["keep"]]
                centre = np.median(pos["positions"][pos["keep"]], axis=0)
                for nid, p in zip(kept, pos["positions"][pos["keep"]], strict=True):
                    matched[nid], fixed[nid] = p, centre
                entry |= {"n_kept": int(len(kept)), "levels": [float(v) for v in pos["levels"]],
                          "fixed_positions": [float(v) for v in centre]}
        entry["available"] = entry["reason"] is None
        per_obj.append(entry)
    if not matched:
        reasons = "; ".join(f"{e['objective']}: {e['reason']}" for e in per_obj)
        return Plan([], lambda r: {"skipped": f"no objective has a performance range every rule reaches ({reasons})"})
    tag = f"levels={n_levels},coverage={coverage:g}"

    def view_of(where: dict[str, np.ndarray]) -> Callable[[TrajectoryDataset], TrajectoryDataset]:
        def view(ds: TrajectoryDataset) -> TrajectoryDataset:
            nets_ = ds.meta["network_id"].astype(str).to_numpy()
            rows = np.flatnonzero(np.isin(nets_, sorted(where)))
            sub = ds.subset(rows)
            positions = np.stack([where[n] for n in nets_[rows]])
            return replace(sub, X=_interpolate(sub.X, positions), checkpoints=np.arange(positions.shape[1]))
        return view

    keys = {"matched": VIEW_SEPARATOR + frames.add_view(f"matched:{tag}", view_of(matched)),
            "unmatched": VIEW_SEPARATOR + frames.add_view(f"unmatched:{tag}", view_of(fixed))}
    jobs = {(kind, o, clf): Job(clean, o + key, clf) for kind, key in keys.items() for o in obs_classes
            for clf in classifiers}
    source = "performance_curve" if "performance_curve" in frames.networks else "test_accuracy_curve"

    def finish(runner: Runner) -> PerformanceMatched:
        comparison = []
        try:
            results = {k: runner.get(job) for k, job in jobs.items()}
        except LearnscopeError as err:  # e.g. too few kept networks of a rule for a split
            return {"skipped": f"the performance-matched networks cannot be evaluated: {err}"}  # type: ignore
        for o in obs_classes:
            for clf in classifiers:
                m, u = results[("matched", o, clf)], results[("unmatched", o, clf)]
                d, d_sem = _paired_difference(m, u)
                comparison.append({"classifier": clf, "obs_class": o, "matched": _scores(m),
                                   "unmatched": _scores(u), "difference": d, "difference_sem": d_sem,
                                   "labels": m["labels"]})
        first = next(iter(results.values()))
        return {"condition": clean, "classifiers": list(classifiers), "obs_classes": list(obs_classes),
                "n_levels": n_levels, "coverage": coverage, "curve_source": source,
                "chance": 1.0 / len(first["labels"]), "n_networks": len(matched),
                "objectives": per_obj, "comparison": comparison, "definition": MATCHED_DEFINITION}

    return Plan(list(jobs.values()), finish)


def performance_matched(source: Source, classifiers: Sequence[str] = ("rf",), grid: str = "reduced",
                        n_splits: int = 10, seed: int = 0, progress: Progress | None = None,
                        n_levels: int = MATCHED_LEVELS, coverage: float = MATCHED_COVERAGE,
                        obs_classes: Sequence[str] = MATCHED_CLASSES) -> PerformanceMatched | Skipped:
    """The performance-matched control (issue 14 item 5, the reviewers' learning-speed confound): rules compared
    at points of equal task performance instead of at fixed training fractions, so a classifier cannot name a
    rule by how fast it learns. Definition (:data:`MATCHED_DEFINITION`, :func:`matched_positions`): per
    objective, ``n_levels`` performance levels in the range every rule covers (up to the level that a
    ``coverage`` share of each rule's networks reach); each kept network's observables are taken, linearly
    interpolated, where its test performance curve first reaches each level. The unmatched control gives every
    network of an objective the same fixed positions (the median matched positions): same networks, same
    number of points, same network-grouped splits (paired differences, matched − unmatched).

    The curves are the networks' ``performance_curve`` (``test_accuracy_curve`` for stores written before it).
    Returns a :class:`~learnscope.identify.tables.PerformanceMatched`, or ``Skipped`` without usable curves."""
    check_positive_int("n_levels", n_levels)
    check_scalar("coverage", coverage, float, 0.0, 1.0, closed="right")
    return _run(source, classifiers, grid, n_splits, seed, progress, _plan_matched, n_levels=n_levels,
                coverage=coverage, obs_classes=tuple(obs_classes))


# --------------------------------------------------------------------------------------------------------------
# all of them


def plan_analyses(frames: Frames, classifiers: tuple[str, ...], curve_classifiers: tuple[str, ...],
                  importance_classifier: str, ks: Sequence[int] = DEFAULT_KS,
                  ms: Sequence[int] = DEFAULT_MS) -> dict[str, Plan]:
    """The :class:`~learnscope.identify.runner.Plan` of every analysis, keyed and ordered as
    :data:`~learnscope.identify.tables.ANALYSES`: ``classifiers`` for the main and per-objective tables, held-out
    (architecture, task, objective, hyperparameters) and the performance baseline, ``curve_classifiers`` for the
    noise, subsampling, unit-count and temporal curves and the performance-matched control,
    ``importance_classifier`` for the importances."""
    plans = {
        "main_table": _plan_main(frames, classifiers),
        "objective_tables": _plan_objectives(frames, classifiers),
        "noise_curves": _plan_noise(frames, curve_classifiers),
        "subsampling_curve": _plan_subsampling(frames, curve_classifiers),
        "unit_count_curve": _plan_units(frames, curve_classifiers),
        "temporal_curves": _plan_temporal(frames, curve_classifiers, ks=ks, ms=ms),
        "heldout": _plan_heldout(frames, classifiers),
        "heldout_hyperparameters": _plan_hyperparameters(frames, classifiers),
        "importances": _plan_importances(frames, (importance_classifier,)),
        "performance_baseline": _plan_performance(frames, classifiers),
        "performance_matched": _plan_matched(frames, curve_classifiers),
    }
    return {name: plans[name] for name in ANALYSES}


__all__ = [
    "CURVE_CLASSES", "DEFAULT_KS", "DEFAULT_MS", "HYPERPARAMETERS", "MAIN_CLASSES", "MATCHED_COVERAGE",
    "MATCHED_DEFINITION", "MATCHED_LEVELS", "ORDERING_MARGIN", "UNIT_MARGIN", "heldout", "heldout_hyperparameters",
    "hyperparameter_sides", "importances", "main_table", "matched_positions", "noise_curves", "objective_tables",
    "ordering_verdict", "performance_baseline", "performance_matched", "plan_analyses", "subsampling_curve",
    "temporal_curves", "unit_count_curve", "units_within",
]
