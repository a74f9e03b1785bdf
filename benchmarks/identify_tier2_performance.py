"""Task performance of every rule on every objective of a tier-2 store, and the feedback alignment behind it.

From the networks table only (no model fits): :func:`learnscope.identify.task_performance.task_performance` per
(objective, rule) and per (objective, rule, architecture), and for the rules with a feedback matrix B (FA, IA) the
angle between B and Wᵀ of each hidden layer at the first and the last checkpoint (median over networks; 90° is no
alignment, the angle of two random matrices), which is how a rule that trains its hidden layers with B can learn.

``python -m benchmarks.identify_tier2_performance runs/tier2`` writes
``benchmarks/results/identify_tier2_performance.json`` and prints the tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from learnscope.identify.store import Store
from learnscope.identify.task_performance import task_performance
from learnscope.results import to_jsonable

RESULTS = Path(__file__).resolve().parent / "results" / "identify_tier2_performance.json"


def alignment(nets) -> list[dict]:
    """Median B–Wᵀ angle (degrees) of the hidden layers at the first and last checkpoint, per (objective, rule)."""
    out = []
    ok = nets[(nets.status == "ok") & nets.rule.isin(["fa", "ia"])]
    for (objective, rule), group in ok.groupby(["objective", "rule"], sort=True):
        first, last = [], []
        for curves in group["angle_curves"]:
            layers = [np.asarray(c, dtype=float) for c in curves]
            hidden = [c for c in layers[1:] if c.size and np.isfinite(c).all()]  # layer 0 has no B (no input δ)
            if hidden:
                first.append(np.mean([c[0] for c in hidden]))
                last.append(np.mean([c[-1] for c in hidden]))
        out.append({"objective": objective, "rule": rule, "n": len(last),
                    "angle_first_deg": float(np.median(first)) if first else float("nan"),
                    "angle_last_deg": float(np.median(last)) if last else float("nan")})
    return out


def run(store: str) -> dict:
    nets = Store.open(store).networks()
    out = {"store": store, "n_networks": int(len(nets)),
           "by_objective_rule": task_performance(nets),
           "by_objective_rule_architecture": task_performance(nets, by=("objective", "rule", "architecture")),
           "alignment": alignment(nets)}
    RESULTS.write_text(json.dumps(to_jsonable(out), indent=1) + "\n")
    for r in out["by_objective_rule"]:
        print(f"{r['objective']:15s} {r['rule']:5s} {r['measure']:16s} {r['initial']:.3f} -> {r['final']:.3f} "
              f"(chance {r['chance']:.3g}) learns={r['learns']} ok={r['n_ok']} div={r['n_diverged']}")
    for r in out["by_objective_rule_architecture"]:
        if not r["learns"]:
            print(f"  not learned: {r['objective']} {r['rule']} {r['architecture']}: {r['initial']:.3f} -> "
                  f"{r['final']:.3f}")
    for r in out["alignment"]:
        print(f"angle {r['objective']:15s} {r['rule']}: {r['angle_first_deg']:.1f} -> {r['angle_last_deg']:.1f} deg")
    return out


if __name__ == "__main__":
    run(*sys.argv[1:])
