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
:func:`heldout`               held-out architecture and held-out task, per held-out value and mean (§7.3 item 6)
:func:`importances`           permutation importance on network splits, summed per statistic and per
                              checkpoint (§7.4)
:func:`performance_baseline`  a classifier on loss/accuracy curves only vs the observables (§7.3 item 2)
============================= =========================================================================

:func:`learnscope.identify.classify.run_all` runs all of them that a store supports (:func:`plan_analyses`), each
shared fit once. The store view and its checks live in :mod:`learnscope.identify.frames`, the per-split fit in
:mod:`learnscope.identify.protocol`, the fit cache and progress count in :mod:`learnscope.identify.runner`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from learnscope.errors import LearnscopeError
from learnscope.identify.dataset import PERFORMANCE_NAMES
from learnscope.identify.frames import Frames, check_enough_networks, clean_condition, curve_conditions, load_frames
from learnscope.identify.observables import OBS_CLASSES
from learnscope.identify.protocol import sem
from learnscope.identify.runner import IMPORTANCE_CLASSES, Job, Plan, Progress, Runner, check_settings
from learnscope.identify.store import Store
from learnscope.identify.tables import (
    ANALYSES,
    SCORE_KEYS,
    Evaluation,
    Heldout,
    Importances,
    MainTable,
    NoiseCurves,
    PerformanceBaseline,
    Scores,
    Skipped,
    SubsamplingCurve,
    TemporalCurves,
)
from learnscope.results import to_jsonable
from learnscope.validation import check_positive_int

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


def _plan_main(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    cells = [Job(clean, o, c) for o in MAIN_CLASSES for c in classifiers]
    rows = [Job(clean, "all", c, split_mode="row") for c in classifiers]

    def finish(runner: Runner) -> MainTable:
        out_cells, gaps, row_cells = [], [], []
        for job in cells:
            out_cells.append({"obs_class": job.obs_class} | runner.get(job))
        for job in rows:
            row = runner.get(job)
            net = runner.get(Job(clean, "all", job.classifier))
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


def _plan_heldout(frames: Frames, classifiers: tuple[str, ...]) -> Plan:
    clean = clean_condition(frames)["name"]
    meta = frames.dataset(clean, "all").meta
    parts = {"architecture": "heldout-arch", "task": "heldout-task"}
    available = {col: int(meta[col].nunique()) >= 2 for col in parts}
    jobs = [Job(clean, "all", clf, split_mode=mode) for col, mode in parts.items() if available[col]
            for clf in classifiers]

    def finish(runner: Runner) -> Heldout:
        out: dict[str, Any] = {"condition": clean, "obs_class": "all", "classifiers": list(classifiers),
                               "chance": 1.0 / meta["rule"].nunique()}
        for col, mode in parts.items():
            if not available[col]:
                out[col] = {"available": False,
                            "reason": f"the store has one {col} ({meta[col].iloc[0]!r}); held-out {col} needs two"}
                continue
            per_clf = []
            try:
                held = {clf: runner.get(Job(clean, "all", clf, split_mode=mode)) for clf in classifiers}
            except LearnscopeError as err:  # e.g. a held-out value leaves a rule without training networks
                out[col] = {"available": False, "reason": f"held-out {col} cannot be evaluated: {err}"}
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
            out[col] = {"available": True, "split_mode": mode, "per_classifier": per_clf}
        return out  # type: ignore[return-value]

    grouped_jobs = [Job(clean, "all", clf) for clf in classifiers] if jobs else []
    return Plan(jobs + grouped_jobs, finish)


def heldout(source: Source, classifiers: Sequence[str] = ("rf", "hgb"), grid: str = "reduced",
            n_splits: int = 10, seed: int = 0, progress: Progress | None = None) -> Heldout:
    """Generalisation to a held-out architecture and to a held-out task (spec §6.3, §7.3 item 6): for each value,
    train on the networks of every other value and test on all of its networks (``all``, clean condition).

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
# all of them


def plan_analyses(frames: Frames, classifiers: tuple[str, ...], curve_classifiers: tuple[str, ...],
                  importance_classifier: str, ks: Sequence[int] = DEFAULT_KS,
                  ms: Sequence[int] = DEFAULT_MS) -> dict[str, Plan]:
    """The :class:`~learnscope.identify.runner.Plan` of every analysis, keyed and ordered as
    :data:`~learnscope.identify.tables.ANALYSES`: ``classifiers`` for the main table, held-out and performance
    baseline, ``curve_classifiers`` for the three curves, ``importance_classifier`` for the importances."""
    return dict(zip(ANALYSES, (
        _plan_main(frames, classifiers),
        _plan_noise(frames, curve_classifiers),
        _plan_subsampling(frames, curve_classifiers),
        _plan_temporal(frames, curve_classifiers, ks=ks, ms=ms),
        _plan_heldout(frames, classifiers),
        _plan_importances(frames, (importance_classifier,)),
        _plan_performance(frames, classifiers),
    ), strict=True))


__all__ = [
    "CURVE_CLASSES", "DEFAULT_KS", "DEFAULT_MS", "MAIN_CLASSES", "ORDERING_MARGIN", "heldout", "importances",
    "main_table", "noise_curves", "ordering_verdict", "performance_baseline", "plan_analyses", "subsampling_curve",
    "temporal_curves",
]
