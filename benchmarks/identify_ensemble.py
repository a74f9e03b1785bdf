"""Networks per second of ``identify simulate`` one network per job vs ensembles (issue 14 item 3).

Both paths run the same subset of the tier-1 grid (``configs/identify_tier1.toml``: by default the digits task
with two architectures and every rule, batch size and seed, i.e. 72 of its 288 networks) through
:func:`learnscope.identify.simulation.simulate` with the loky backend, into fresh stores, alternating
``ensemble=1`` (today's path: one job per network) and ``ensemble=E`` (one job per ensemble of networks that
differ only in seed and learning rate; tier 1 has 3 seeds, so E = 3). The two stores must hold the same values
(checked: max relative difference of every observable and loss). ``split`` times, in one process, one family of
networks trained alone vs as one ensemble, with and without recording, to show what dominates once training is
batched.

``scaling`` times one tier-1 cell with E = 1, 3 and 8 seeds, alone vs as one ensemble (tier 1 has 3 seeds per
cell; a grid with more seeds or learning-rate multipliers per cell gets larger ensembles).

Writes ``benchmarks/results/identify_ensemble.json``. ``python -m benchmarks.identify_ensemble [--archs …]
[--repeats R] [--jobs J]``; ``--scaling-only`` adds only ``scaling`` to an existing result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import machine_info
from learnscope.identify.ensemble import EnsembleTraining, group_specs
from learnscope.identify.grid import expand, load_grid
from learnscope.identify.observables import ALL_OBS
from learnscope.identify.simulation import setup_training, simulate, train_and_record, training_checkpoints
from learnscope.identify.store import Store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def subset_grid(tasks: list[str], archs: list[str]) -> dict:
    grid = load_grid(ROOT / "configs" / "identify_tier1.toml")
    grid["grid"] = dict(grid["grid"], tasks=tasks, architectures=archs)
    return grid


def _run(grid: dict, ensemble: int, jobs: int) -> tuple[float, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"bench_ens{ensemble}_", dir=ROOT / "runs"))
    shutil.rmtree(out)
    t0 = time.perf_counter()
    counts = simulate(grid, out, jobs=jobs, backend="loky", progress=False, ensemble=ensemble)
    wall = time.perf_counter() - t0
    assert counts["ok"] + counts["diverged"] + counts["failed"] == counts["total"], counts
    return wall, out


def _compare(a: Path, b: Path) -> dict:
    """Largest differences between the values of two stores of the same grid."""
    keys = ["network_id", "layer_index", "condition", "checkpoint"]
    oa = Store.open(a).observations().sort_values(keys).reset_index(drop=True)
    ob = Store.open(b).observations().sort_values(keys).reset_index(drop=True)
    va, vb = oa[list(ALL_OBS)].to_numpy(), ob[list(ALL_OBS)].to_numpy()
    both = np.isfinite(va) & np.isfinite(vb)
    rel = np.abs(va - vb)[both] / np.maximum(np.abs(va[both]), 1e-6)
    na = Store.open(a).networks().sort_values("network_id")
    nb = Store.open(b).networks().sort_values("network_id")
    la, lb = np.concatenate(na.loss_curve.to_list()), np.concatenate(nb.loss_curve.to_list())
    return {"observation_rows": len(oa), "same_rows": bool(len(oa) == len(ob)),
            "same_nan_pattern": bool((np.isfinite(va) == np.isfinite(vb)).all()),
            "same_statuses": bool((na.status.to_numpy() == nb.status.to_numpy()).all()),
            "observables_max_rel_diff": float(rel.max()) if rel.size else 0.0,
            "observables_p99_rel_diff": float(np.quantile(rel, 0.99)) if rel.size else 0.0,
            "loss_max_rel_diff": float(np.max(np.abs(la - lb) / np.maximum(np.abs(la), 1e-12)))}


def split(grid: dict, arch: str, rule: str, batch_size: int) -> dict:
    """One family (the seeds of one tier-1 cell) trained alone and as one ensemble, in this process."""
    torch.set_num_threads(1)
    from learnscope.identify.ensemble import train_and_record_ensemble

    fam = [s for s in expand(grid) if s["architecture"] == arch and s["rule"] == rule
           and s["batch_size"] == batch_size]
    t0 = time.perf_counter()
    for s in fam:
        for _ in training_checkpoints(setup_training(s)):
            pass
    t1 = time.perf_counter()
    for _ in EnsembleTraining([setup_training(s) for s in fam]):
        pass
    t2 = time.perf_counter()
    for s in fam:
        train_and_record(s)
    t3 = time.perf_counter()
    for _ in train_and_record_ensemble(fam):
        pass
    t4 = time.perf_counter()
    return {"architecture": arch, "rule": rule, "batch_size": batch_size, "members": len(fam),
            "train_only_s": {"one_per_network": t1 - t0, "ensemble": t2 - t1},
            "train_and_record_s": {"one_per_network": t3 - t2, "ensemble": t4 - t3},
            "recording_share": {"one_per_network": 1 - (t1 - t0) / (t3 - t2), "ensemble": 1 - (t2 - t1) / (t4 - t3)}}


def scaling(members: list[int], arch: str = "mlp_3x64", rule: str = "sgdm", batch_size: int = 32) -> list[dict]:
    """Seconds per network of one tier-1 cell trained and recorded alone vs as one ensemble of E seeds (in this
    process, alternating), for E in ``members``: how the gain grows with the ensemble size (tier 1 has 3 seeds)."""
    torch.set_num_threads(1)
    from learnscope.identify.ensemble import train_and_record_ensemble

    out = []
    for E in members:
        grid = subset_grid(["digits"], [arch])
        grid["grid"] = dict(grid["grid"], rules=[rule], batch_sizes=[batch_size], seeds=list(range(E)))
        fam = expand(grid)
        t0 = time.perf_counter()
        for s in fam:
            train_and_record(s)
        t1 = time.perf_counter()
        for _ in train_and_record_ensemble(fam):
            pass
        t2 = time.perf_counter()
        out.append({"members": E, "architecture": arch, "rule": rule, "batch_size": batch_size,
                    "alone_s_per_network": (t1 - t0) / E, "ensemble_s_per_network": (t2 - t1) / E,
                    "speedup": (t1 - t0) / (t2 - t1)})
        print(out[-1], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["digits"])
    ap.add_argument("--archs", nargs="+", default=["mlp_3x64", "mlp_2x256"])
    ap.add_argument("--repeats", type=int, default=1, help="alternations of the two paths")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ensemble", type=int, default=8)
    ap.add_argument("--scaling-only", action="store_true",
                    help="only the ensemble-size scaling (E = 1, 3, 8), merged into an existing result file")
    args = ap.parse_args()
    path = RESULTS / "identify_ensemble.json"
    if args.scaling_only:
        result = json.loads(path.read_text()) if path.exists() else {"machine": machine_info()}
        result["scaling"] = scaling([1, 3, 8])
        path.write_text(json.dumps(result, indent=2) + "\n")
        return
    (ROOT / "runs").mkdir(exist_ok=True)
    grid = subset_grid(args.tasks, args.archs)
    n = len(expand(grid))
    groups = group_specs(expand(grid), args.ensemble)
    walls: dict[str, list[float]] = {"one_per_job": [], "ensemble": []}
    stores: dict[str, Path] = {}
    for _ in range(args.repeats):
        for name, e in (("one_per_job", 1), ("ensemble", args.ensemble)):
            wall, out = _run(grid, e, args.jobs)
            walls[name].append(wall)
            if name in stores:
                shutil.rmtree(stores[name], ignore_errors=True)
            stores[name] = out
            print(f"{name}: {n} networks in {wall:.1f} s ({n / wall:.2f} networks/s)", flush=True)
    same = _compare(stores["one_per_job"], stores["ensemble"])
    for out in stores.values():
        shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    result = {
        "machine": machine_info(),
        "grid": "configs/identify_tier1.toml", "subset": {"tasks": args.tasks, "architectures": args.archs},
        "networks": n, "ensembles": len(groups), "max_members": args.ensemble,
        "members_per_ensemble": sorted({len(g) for g in groups}), "jobs": args.jobs, "backend": "loky",
        "wall_s": walls, "networks_per_s": {k: n / v for k, v in med.items()},
        "speedup_ensemble_vs_one_per_job": med["one_per_job"] / med["ensemble"],
        "goal_speedup": 3.0,
        "tier1_estimate_s": {k: v * 288 / n for k, v in med.items()},
        "same_values": same,
        "split": split(grid, args.archs[0], "sgdm", 32),
        "scaling": scaling([1, 3, 8]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("networks_per_s", "speedup_ensemble_vs_one_per_job", "same_values",
                                             "split")}, indent=2))


if __name__ == "__main__":
    main()
