"""Activity-only rule identification under realistic measurement (issue 15's acceptance numbers) on tier 1.

For every measurement condition of the activity store (``configs/identify_tier1_activity.toml``: clean, Poisson,
calcium, a different 100 units per session, the same 100 / 300 units) and every classifier, fits the model of
``learnscope identify fit --observables act`` (:func:`learnscope.identify.predict.fit_model`, calibrated) and
records its **held-out** numbers — the cross-fitted, network-grouped protocol of
:mod:`learnscope.identify.crossfit` (5 folds stratified by rule; per fold a classifier trained on 3 folds, a
calibrator chosen and fitted on the 4th, scored on the 5th): layer and network accuracy (pooled over all networks,
and mean ± s.e.m. over the 5 scored folds), expected calibration error per layer and per network (acceptance
``ece_layer <= 0.05``) with its noise floor, and the rule pairs the statistics cannot separate (two-way held-out
accuracy < 0.7). Beside them: the all-observables model on the same conditions where weights are recorded (clean,
units_100, units_300) and on the clean condition of the tier-1 store (``configs/identify_tier1.toml``).

Writes ``benchmarks/results/identify_activity.json``. Needs the stores::

    learnscope identify simulate identify_tier1_activity --out runs/identify_tier1_activity
    learnscope identify simulate identify_tier1 --out runs/identify_tier1

(or point ``--act-store`` / ``--all-store`` elsewhere; a missing all-observables store is skipped).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from learnscope import rng
from learnscope.identify import predict as predict_module
from learnscope.identify.calibration import ece_noise_floor
from learnscope.identify.crossfit import Heldout, network_probabilities
from learnscope.identify.predict import fit_model
from learnscope.identify.store import Store
from learnscope.results import dumps_metrics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ACT_STORE = ROOT / "runs" / "identify_tier1_activity"
ALL_STORE = ROOT / "runs" / "identify_tier1"
ECE_GOAL = 0.05
WEIGHTS_RECORDED = ("clean", "units_100", "units_300")
"""Conditions of the activity store whose weight and gradient statistics are finite (all-observables fits)."""
KEEP = ("method", "calibrator", "fold_methods", "accuracy_layer", "accuracy_network", "ece_layer", "ece_network",
        "ece_layer_uncalibrated", "ece_floor_layer", "ece_bound_layer", "nll_layer", "nll_layer_uncalibrated",
        "labels", "confusion_layer", "confusion_network", "pairwise", "indistinguishable", "threshold",
        "reliability_layer", "reliability_network", "n_layers", "n_networks", "n_folds", "protocol")


@contextmanager
def capture_heldout() -> Iterator[list[Heldout]]:
    """Collect the :class:`Heldout` predictions ``fit_model`` computes for its calibration record (no extra fits)."""
    original = predict_module.heldout_predictions
    captured: list[Heldout] = []

    def recording(*args, **kwargs):
        held = original(*args, **kwargs)
        captured.append(held)
        return held

    predict_module.heldout_predictions = recording
    try:
        yield captured
    finally:
        predict_module.heldout_predictions = original


def per_fold_accuracy(held: Heldout) -> dict:
    """Layer and network accuracy of the calibrated held-out predictions in each scored fold: values, mean, s.e.m.
    (s.d. / √K over the K folds; the folds are disjoint sets of networks)."""
    layer, network = [], []
    for k in range(int(held.fold.max()) + 1):
        rows = held.fold == k
        p, y, nets = held.calibrated[rows], held.y[rows], held.networks[rows]
        layer.append(float((p.argmax(1) == y).mean()))
        ids, P = network_probabilities(p, nets)
        y_net = np.array([y[np.flatnonzero(nets == n)[0]] for n in ids])
        network.append(float((P.argmax(1) == y_net).mean()))

    def stats(v: list[float]) -> dict:
        a = np.asarray(v)
        return {"folds": v, "mean": float(a.mean()), "sem": float(a.std(ddof=1) / np.sqrt(len(a)))}

    return {"layer": stats(layer), "network": stats(network)}


def network_ece_floor(held: Heldout, seed: int) -> list[float]:
    """(mean, 95th percentile) ECE of perfectly calibrated predictions with the held-out *network* probabilities'
    confidences (:func:`~learnscope.identify.calibration.ece_noise_floor` of the pooled per-network probabilities;
    the record's ``ece_floor_layer`` is the same for layers)."""
    _, P = network_probabilities(held.calibrated, held.networks)
    return list(ece_noise_floor(P, rng.numpy_rng(seed, "ece-noise-floor-network")))


def lowest_pair(pairwise: list[dict]) -> dict | None:
    """The rule pair with the lowest held-out two-way layer accuracy (whether or not it is below the threshold)."""
    finite = [p for p in pairwise if p.get("accuracy_layer") is not None]
    return min(finite, key=lambda p: p["accuracy_layer"]) if finite else None


def fit_one(store: Path, condition: str, classifier: str, obs_class: str, seed: int) -> dict:
    """One calibrated ``fit_model`` on ``condition`` and its held-out record (timed)."""
    with tempfile.TemporaryDirectory() as tmp, capture_heldout() as captured:
        t0 = time.perf_counter()
        info = fit_model(store, Path(tmp) / "model.joblib", classifier=classifier, obs_class=obs_class,
                         condition=condition, seed=seed, force=True, calibrate=True)
        wall = time.perf_counter() - t0
    cal = info["calibration"]
    rec = {"store": str(store), "condition": condition, "classifier": classifier, "obs_class": obs_class,
           "n_statistics": len(info["obs_names"]), "n_checkpoints": info["n_checkpoints"], "n_rows": info["n_rows"],
           "fit_s": wall, "n_classifier_fits": 1 + int(cal.get("n_folds", 0))}
    rec |= {k: cal[k] for k in KEEP if k in cal}
    if captured:
        rec["per_fold_accuracy"] = per_fold_accuracy(captured[-1])
        rec["ece_floor_network"] = network_ece_floor(captured[-1], seed)
    if cal.get("available"):
        floor95 = cal["ece_floor_layer"][1]
        rec["ece_ok"] = bool(cal["ece_layer"] <= ECE_GOAL)
        rec["ece_excess"] = float(max(0.0, cal["ece_layer"] - ECE_GOAL))
        rec["ece_within_floor"] = bool(cal["ece_layer"] <= floor95)
        rec["ece_network_ok"] = bool(cal["ece_network"] <= ECE_GOAL)
        rec["ece_network_within_floor"] = bool(cal["ece_network"] <= rec["ece_floor_network"][1])
        rec["lowest_pair"] = lowest_pair(cal["pairwise"])
    return rec


def conditions_of(store: Path) -> list[str]:
    """The measurement conditions a store was simulated with, in the config's order."""
    meta = json.loads((store / "store.json").read_text())
    return [c["name"] for c in meta["grid"]["conditions"]]


def finished(store: Path) -> int:
    """How many networks the store holds finished (any status)."""
    return len(Store.open(store).networks())


def clean_identity(act_store: Path, all_store: Path) -> dict:
    """Compare the clean-condition statistics of the networks both stores hold (same grid, same training):
    the largest absolute difference over every finite float column, and whether the NaN patterns agree. Zero
    means the activity store's clean condition *is* tier 1's clean condition for these networks."""
    a, b = Store.open(act_store).observations(), Store.open(all_store).observations()
    a, b = a[a.condition == "clean"], b[b.condition == "clean"]
    ids = sorted(set(a.network_id) & set(b.network_id))
    key = ["network_id", "layer", "checkpoint"]
    a = a[a.network_id.isin(ids)].sort_values(key).reset_index(drop=True)
    b = b[b.network_id.isin(ids)].sort_values(key).reset_index(drop=True)
    cols = [c for c in a.columns if c in b.columns and a[c].dtype.kind == "f"]
    same_rows = len(a) == len(b) and bool((a[key].to_numpy() == b[key].to_numpy()).all())
    diff = float(np.nanmax(np.abs(a[cols].to_numpy() - b[cols].to_numpy()))) if same_rows and len(a) else None
    return {"networks_compared": len(ids), "rows": len(a), "float_columns": len(cols), "same_rows": same_rows,
            "max_abs_difference": diff,
            "same_nan_pattern": bool((a[cols].isna().to_numpy() == b[cols].isna().to_numpy()).all())
            if same_rows else None,
            "tasks_compared": sorted(set(a.get("task", [])))}


def _line(r: dict) -> str:
    pf = r["per_fold_accuracy"]
    pairs = "; ".join(f"{'–'.join(p['rules'])} {p['accuracy']:.2f}" for p in r["indistinguishable"]) or "none"
    return (f"{r['condition']:14s} {r['classifier']:4s} {r['obs_class']:4s} layer {r['accuracy_layer']:.3f} "
            f"({pf['layer']['mean']:.3f}±{pf['layer']['sem']:.3f}) network {r['accuracy_network']:.3f} "
            f"({pf['network']['mean']:.3f}±{pf['network']['sem']:.3f}) ECE {r['ece_layer']:.3f}/"
            f"{r['ece_network']:.3f} floor95 {r['ece_floor_layer'][1]:.3f}/{r['ece_floor_network'][1]:.3f} "
            f"[{r['method']}] pairs: {pairs} lowest {'–'.join(r['lowest_pair']['rules'])} "
            f"{r['lowest_pair']['accuracy_layer']:.2f} "
            f"({r['fit_s']:.0f} s)")


def markdown_table(result: dict) -> str:
    """The README table: a row per (store, condition, observables, classifier) of ``result["fits"]``."""
    rows = ["| condition | observables | classifier | accuracy per layer | accuracy per network | ECE per layer "
            "(95 % floor) | ECE per network (95 % floor) | cannot separate (< 0.7) | hardest pair (two-way layer "
            "accuracy) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in result["fits"]:
        pf = r["per_fold_accuracy"]
        tier = "tier 1, " if Path(r["store"]) != Path(result["act_store"]) else ""
        pairs = ", ".join(f"{p['rules'][0]}–{p['rules'][1]} ({p['accuracy']:.2f})" for p in r["indistinguishable"])
        low = r["lowest_pair"]
        rows.append(f"| {tier}{r['condition']} | {r['obs_class']} | {r['classifier']} | {pf['layer']['mean']:.3f} ± "
                    f"{pf['layer']['sem']:.3f} | {pf['network']['mean']:.3f} ± {pf['network']['sem']:.3f} | "
                    f"{r['ece_layer']:.3f} ({r['ece_floor_layer'][1]:.3f}) | {r['ece_network']:.3f} "
                    f"({r['ece_floor_network'][1]:.3f}) | {pairs or 'none'} | {'–'.join(low['rules'])} "
                    f"({low['accuracy_layer']:.2f}) |")
    return "\n".join(rows)


def run(act_store: Path = ACT_STORE, all_store: Path | None = ALL_STORE, classifiers: tuple[str, ...] = ("rf",),
        seed: int = 0, out: Path = RESULTS / "identify_activity.json", append: bool = False) -> dict:
    """Every fit of the module docstring; writes ``out`` after each one (so a partial run keeps what it has).

    append : keep the activity-store fits already in ``out`` and run only the all-observables store's (for a tier-1
        store that finished after the rest)."""
    previous = json.loads(out.read_text()) if append else None
    result = {"machine": machine_info(),
              "goal": "issue 15: activity-only accuracy per condition beside all observables; held-out ECE <= 0.05",
              "protocol": "fit_model's cross-fitted held-out calibration protocol (learnscope.identify.crossfit): "
                          "network-grouped, 5 folds stratified by rule; accuracy_* pooled over all held-out "
                          "layers/networks, per_fold_accuracy = mean ± s.e.m. over the 5 scored folds",
              "act_store": str(act_store), "all_store": str(all_store) if all_store else None, "seed": seed,
              "ece_goal": ECE_GOAL, "fits": []}
    t0 = time.perf_counter()
    if previous is not None:
        result["fits"] = [f for f in previous["fits"] if Path(f["store"]) == Path(act_store)]
        t0 -= previous.get("wall_s", 0.0)
    use_all = all_store is not None and (all_store / "store.json").exists()
    if use_all:
        result["clean_identity"] = clean_identity(act_store, all_store)
        n_all, n_act = finished(all_store), finished(act_store)
        if n_all < n_act:  # a store still being simulated: fitting on part of the grid is not the tier-1 number
            result["all_store_skipped"] = f"{all_store} holds {n_all} finished networks of the {n_act} needed"
            use_all = False

    def add(rec: dict) -> None:
        result["fits"].append(rec)
        result["wall_s"] = time.perf_counter() - t0
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps_metrics(result))  # NaN (an empty reliability bin) -> null
        print(_line(rec), flush=True)

    for classifier in classifiers:
        for condition in ([] if append else conditions_of(act_store)):
            add(fit_one(act_store, condition, classifier, "act", seed))
        for condition in ([] if append else WEIGHTS_RECORDED):
            add(fit_one(act_store, condition, classifier, "all", seed))
        if use_all:
            add(fit_one(all_store, "clean", classifier, "all", seed))
            add(fit_one(all_store, "clean", classifier, "act", seed))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--act-store", type=Path, default=ACT_STORE)
    ap.add_argument("--all-store", type=Path, default=ALL_STORE)
    ap.add_argument("--classifiers", default="rf", help="comma-separated, e.g. rf,hgb")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "identify_activity.json")
    ap.add_argument("--append", action="store_true", help="keep --out's activity-store fits, fit only --all-store")
    ap.add_argument("--table", action="store_true", help="only print the README table of an existing --out")
    a = ap.parse_args()
    if a.table:
        print(markdown_table(json.loads(a.out.read_text())))
        return
    r = run(a.act_store, a.all_store, tuple(a.classifiers.split(",")), a.seed, a.out, a.append)
    print(f"{len(r['fits'])} fits in {r['wall_s']:.0f} s -> {a.out}")
    print(markdown_table(r))


if __name__ == "__main__":
    main()
