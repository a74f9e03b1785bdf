"""The paper's classifiers beside ours on a tier-2 store: accuracy on the clean ``all`` statistics (issue 14).

LinearSVC with and without PCA, random forest and the Conv1D of the paper (§5.1), and HGB and MiniRocket (ours),
each on the same network-grouped outer splits, by default with each estimator's own settings and no inner grid
search (``--grid none``: the reduced grid's inner search would make Conv1D alone ~20 min here); the jobs are
fitted in parallel (:meth:`learnscope.identify.runner.Runner.prefetch`), each timed. MiniRocket needs the optional extra ``aeon``
(``pip install -e ".[rocket]"``, which pins numpy below 2.4); without it that row says so.

``python -m benchmarks.identify_tier2_classifiers runs/tier2 [--n-splits 5] [--jobs 2] [--grid none]`` writes
``benchmarks/results/identify_tier2_classifiers.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

from benchmarks.machine import machine_info
from learnscope.identify.frames import clean_condition, load_frames
from learnscope.identify.runner import Job, Runner
from learnscope.results import to_jsonable

RESULTS = Path(__file__).resolve().parent / "results" / "identify_tier2_classifiers.json"
CLASSIFIERS = ("svm", "svm_pca", "rf", "conv1d", "hgb", "minirocket")
KEEP = ("accuracy_mean", "accuracy_sem", "balanced_accuracy_mean", "labels", "confusion_matrix", "per_class_recall",
        "chosen_params", "n_splits")


def run(store: str, n_splits: int, jobs: int, grid: str, classifiers: tuple[str, ...]) -> dict:
    frames = load_frames(store)
    clean = clean_condition(frames)["name"]
    available = [c for c in classifiers if c != "minirocket" or importlib.util.find_spec("aeon") is not None]
    runner = Runner(frames, grid, n_splits, 0, None)
    todo = [Job(clean, "all", c) for c in available]
    t0 = time.perf_counter()
    runner.prefetch(todo, jobs)
    wall = time.perf_counter() - t0
    rows = {}
    for c in classifiers:
        if c not in available:
            rows[c] = {"available": False, "reason": "needs the optional dependency aeon (the rocket extra)"}
            continue
        job = Job(clean, "all", c)
        res = runner.get(job)
        rows[c] = {k: res[k] for k in KEEP} | {"fit_s": runner.fit_seconds[job]}
        print(f"{c:10s} {res['accuracy_mean']:.3f} ± {res['accuracy_sem']:.3f}  ({runner.fit_seconds[job]:.0f} s)",
              flush=True)
    out = {"machine": machine_info(), "store": store, "condition": clean, "obs_class": "all", "grid": grid,
           "n_splits": n_splits, "split_mode": "network", "jobs": jobs, "wall_s": wall,
           "n_networks": int(frames.networks.network_id.nunique()), "classifiers": rows}
    RESULTS.write_text(json.dumps(to_jsonable(out), indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--n-splits", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--grid", default="none")
    ap.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS))
    args = ap.parse_args()
    run(args.store, args.n_splits, args.jobs, args.grid, tuple(args.classifiers))


if __name__ == "__main__":
    main()
