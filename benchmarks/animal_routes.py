"""Trials and wall time per route of ``learnscope.animal`` on simulated animals (issue 13's acceptance numbers).

For each bundled ``animal_*`` config and seed: run the experiment in process (``sessions``: planning, surrogate
fits for query by committee, the simulated sessions), read the route out (``estimate``: the smoother, the
surrogate's Algorithm 1 per ensemble member, or the ES state), and run Algorithm 1 on the hidden learner itself
(``truth``, :func:`learnscope.animal.whitebox.simulated_truth`). Agreement is
:func:`learnscope.animal.whitebox.agreement` (the eigenspace agreement for rotation-invariant hidden learners,
plain |corr| otherwise); along a route's history it gives the trials at which |corr| first reaches 0.9.

Writes ``benchmarks/results/animal_routes.json`` (1 thread; every run's numbers per seed, and the machine).
``python -m benchmarks.animal_routes [--only iterated,es,staged,surrogate,misspecified,seed_check] [--seeds 0,1]``
(all of it: ~25 min on one loaded core; the surrogate groups dominate, ~1.5–2.5 min per seed).
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from learnscope.animal.config import AnimalConfig, parse_animal_config
from learnscope.animal.loop import run_in_process
from learnscope.animal.simulated import TrialBudget
from learnscope.animal.whitebox import agreement, simulated_truth, truth_agreement
from learnscope.bias.measures import linear_fit
from learnscope.bundled import resolve_config_path

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "animal_routes.json"
BAR = 0.9

#: (key, config, seeds, budget override) — the ES budget is raised to 100,000 trials (the config has 60,000)
PLAN = {
    "iterated": [("iterated_graded", "animal_kernel_graded", range(5), None),
                 ("iterated_binary", "animal_kernel_binary", range(5), None)],
    "es": [("es_kernel", "animal_kernel_es", range(3), 100_000)],
    "staged": [("staged_kernel", "animal_kernel_staged", range(1), None)],
    "surrogate": [("surrogate_mushroom", "animal_mushroom_surrogate", range(5), None)],
    "misspecified": [("surrogate_mlp_misspecified", "animal_mlp_misspecified", range(5), None)],
}


def config_for(name: str, seed: int, budget: int | None = None) -> AnimalConfig:
    """The bundled config ``name`` with ``[experiment] seed`` (and ``budget``) replaced."""
    raw = tomllib.loads(resolve_config_path(name, "animal").read_text())
    raw["experiment"]["seed"] = int(seed)
    if budget is not None:
        raw["experiment"]["budget"] = int(budget)
    return parse_animal_config(raw)


def x0_share(f_values: np.ndarray, x: np.ndarray) -> float:
    """Share of the linear-fit weight norm on input 0: w₀² / ‖w‖² of f ≈ x w + b (``bias.measures.linear_fit``)."""
    w, _ = linear_fit(x, f_values)
    return float(w[0] ** 2 / (w @ w))


def first_reaching(history: list[tuple[int, float]], bar: float = BAR) -> int | None:
    """The trials at the first (trials, agreement) point of ``history`` with agreement ≥ ``bar`` (None: never)."""
    return next((t for t, a in history if a >= bar), None)


def measure(name: str, seed: int, budget: int | None = None) -> dict:
    """Run one experiment and its white-box truth; every number the bench and the acceptance tests report."""
    cfg = config_for(name, seed, budget)
    route, animal = cfg.make_route(), cfg.make_animal()
    t0 = time.perf_counter()
    log = run_in_process(route, animal, TrialBudget(cfg.budget), seed=cfg.seed)
    t1 = time.perf_counter()
    est = route.estimate(log)
    t2 = time.perf_counter()
    truth = simulated_truth(cfg, route)
    t3 = time.perf_counter()
    refs, dom = route.references, route.domain
    out = {"config": name, "seed": seed, "budget": cfg.budget, "sessions": len(log),
           "trials": int(sum(r.trials for r in log)),
           "trials_per_stage": {s.route: int(sum(r.trials for r in log if r.plan.route == s.route))
                                for s in route.stages},
           "converged": bool(est.converged), "warnings": list(est.warnings),
           "truth_rotation_invariant": bool(truth["rotation_invariant"]),
           "agreement": truth_agreement(est, route, truth),
           "wall_s": {"sessions": t1 - t0, "estimate": t2 - t1, "truth": t3 - t2}}
    t = truth["values"]
    for stage_name, e in est.stages.items():
        if e.f1 is None:
            continue
        v = e.f1(refs)
        out.setdefault("plain_abs_corr", {})[stage_name] = abs(float(np.corrcoef(v, t)[0, 1]))
        out.setdefault("eigenspace_agreement", {})[stage_name] = agreement(v, t, refs, dom, rotation_invariant=True)
        out.setdefault("x0_share", {})[stage_name] = x0_share(v, refs)
        if stage_name == "iterated":
            hist = [(tr, agreement(s(refs), t, refs, dom, truth["rotation_invariant"])) for tr, s in e.history]
            out["iterated_trials_to_bar"] = first_reaching(hist)
        if stage_name == "es":
            hist = [(tr, agreement(e.labelling(th)(refs), t, refs, dom, rotation_invariant=True))
                    for tr, th in e.history]
            out["es_history"] = hist
            out["es_trials_to_bar"] = first_reaching(hist)
        if stage_name == "surrogate":
            out["surrogate_ensemble_agreement"] = e.ensemble_agreement
            out["surrogate_members"] = [m.describe() for m in e.members]
    out["truth_x0_share"] = x0_share(t, refs)
    if est.validation is not None:
        out["validation"] = est.validation.to_dict()
    return out


def seed_check(names: tuple[str, ...] = ("animal_mlp_misspecified", "animal_kernel_graded")) -> dict:
    """White-box f1 at Algorithm 1 seed 0 against seed 1 on the same hidden learner: for a learner that is rotation
    invariant (in distribution) the two runs pick different directions of one eigenspace, so plain |corr| between
    a route and the truth that share a seed says little; the eigenspace agreement is the meaningful number."""
    from learnscope.animal.whitebox import algorithm1_f1
    from learnscope.learners.registry import make_learner

    out = {}
    for name in names:
        cfg = config_for(name, 0)
        route = cfg.make_route()
        a1 = cfg.algorithm1 or {}
        n = route.search_stages[0].settings.n_train
        vals = [algorithm1_f1(make_learner(dict(cfg.animal)), route.domain, n, search=a1.get("search"),
                              meta=a1.get("meta"), seed=s)(route.references) for s in (0, 1)]
        out[name] = {"plain_abs_corr_seed0_vs_seed1": abs(float(np.corrcoef(*vals)[0, 1])),
                     "eigenspace_agreement_seed1_vs_seed0": agreement(vals[1], vals[0], route.references,
                                                                      route.domain, rotation_invariant=True)}
    return out


def _summary(runs: list[dict]) -> dict:
    def col(key, stage):
        return [r[key].get(stage) for r in runs if r.get(key)]

    stages = sorted({s for r in runs for s in r["agreement"]})
    return {"seeds": [r["seed"] for r in runs], "trials": [r["trials"] for r in runs],
            "agreement": {s: col("agreement", s) for s in stages},
            "wall_s_median": {k: float(np.median([r["wall_s"][k] for r in runs])) for k in runs[0]["wall_s"]}}


def run(only: list[str] | None = None, seeds: list[int] | None = None, out: Path = OUT) -> dict:
    """Measure the groups in ``only`` (default all) and write ``out``; an existing file keeps its other groups."""
    import torch

    torch.set_num_threads(1)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["machine"] = machine_info()
    doc["note"] = ("one experiment per config and seed; wall_s: sessions (planning incl. surrogate fits, and the "
                   "simulated sessions), estimate (the route's read-out incl. Algorithm 1 on the surrogate), truth "
                   "(Algorithm 1 on the hidden learner); agreement: whitebox.agreement (eigenspace for rotation-"
                   "invariant hidden learners, else plain |corr|); *_trials_to_bar: first point of the route's "
                   f"history with agreement >= {BAR} (not computed for the surrogate: each point is an Algorithm 1 "
                   "run per ensemble member)")
    doc.setdefault("runs", {})
    groups = only or [*PLAN, "seed_check"]
    if "seed_check" in groups:
        doc["white_box_seed_check"] = seed_check()
        RESULTS.mkdir(exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=float))
    for group in [g for g in groups if g != "seed_check"]:
        for key, name, default_seeds, budget in PLAN[group]:
            runs = []
            for seed in seeds if seeds is not None else default_seeds:
                r = measure(name, seed, budget)
                print(json.dumps({k: v for k, v in r.items() if k not in ("es_history", "surrogate_members")}),
                      flush=True)
                runs.append(r)
            doc["runs"][key] = {"runs": runs, "summary": _summary(runs)}
            RESULTS.mkdir(exist_ok=True)
            out.write_text(json.dumps(doc, indent=2, default=float))
    return doc


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="comma-separated groups: " + ",".join([*PLAN, "seed_check"]))
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: each group's own)")
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    run(a.only.split(",") if a.only else None, [int(s) for s in a.seeds.split(",")] if a.seeds else None,
        Path(a.out))
    print(f"wrote {a.out}")
