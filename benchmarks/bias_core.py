"""Per-meta-step timings of the closed-form bias experiments, and the Sinkhorn distance beside the authors' call.

Writes ``benchmarks/results/bias_core.json`` (meta-steps) and ``benchmarks/results/sinkhorn.json`` (the distance:
today's code at ``BEFORE_COMMIT`` vs the current one vs geomloss at the authors' settings, paired and alternating in
one process). Run through ``make bench`` (1 thread); ``python -m benchmarks.bias_core --sinkhorn`` runs only the
distance part. Each meta-step case runs the real :func:`learnscope.bias.search.meta_train` loop; the median skips
the first 3 steps, as the baseline did.

No ratio is ever taken against a number measured on another machine: the authors' per-step times of
baseline-original.md are recorded with the machine they came from, and the only authors-vs-learnscope ratios are
the side-by-side table of baseline-original.md (one machine, one process per run, at commit 4c5d8bd), labelled as such.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import machine_info
from learnscope.bias.config import load_config
from learnscope.bias.experiment import build_components
from learnscope.bias.search import meta_train, override

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

#: Where the authors' numbers below were measured: NOT this machine, so no ratio is computed against them.
AUTHORS_MACHINE = "2 vCPU Intel Xeon VM (baseline-original.md, 'Speed', quiet machine, 1 thread); measured elsewhere"

#: The only authors-vs-learnscope ratios: measured side by side on ONE machine (baseline-original.md, "Re-measured
#: ... side by side"), per-step medians at 1 thread, paired runs, learnscope at commit 4c5d8bd.
SIDE_BY_SIDE = {
    "source": "baseline-original.md, 'Re-measured 2026-12-01 on the current machine type'",
    "machine": "AMD EPYC (Zen 5) VM, 1 thread",
    "learnscope_commit": "4c5d8bd",
    "ms_per_step": {
        "fig2_kernel_sphere": {"authors": 3.67, "learnscope_exact_w2": 0.91, "learnscope_authors_distance": 15.2},
        "fig2_ridge_disc": {"authors": 3.59, "learnscope_exact_w2": 0.76, "learnscope_authors_distance": 24.0},
        "fig4_contrast_kernel_linear": {"authors": 6.87, "learnscope_exact_w2": 1.29,
                                        "learnscope_authors_distance": 30.4},
        "fig7_mushroom_random": {"authors": 78.6, "learnscope_exact_w2": 10.6, "learnscope_authors_distance": 57.7},
        "fig8_backprop_mlp": {"authors": 110.0, "learnscope_authors_distance": 55.0},
    },
    "speedup_exact_w2_vs_authors": {"fig2_kernel_sphere": 4.0, "fig2_ridge_disc": 4.7,
                                    "fig4_contrast_kernel_linear": 5.4, "fig7_mushroom_random": 7.4},
    "speedup_authors_distance_vs_authors": {"fig8_backprop_mlp": 2.1},
}

# The authors' 1-thread medians and loop totals (baseline-original.md, "Speed", quiet machine: AUTHORS_MACHINE).
AUTHORS = {
    "fig2_kernel_sphere": {"ms_per_step": 5.9, "loop_s": [0.60, 0.64], "steps": 100},
    "fig2_ridge_disc": {"ms_per_step": 4.9, "loop_s": [0.51, 0.55], "steps": 100},
    "fig4_contrast_kernel_linear": {"ms_per_step": [11.2, 12.7], "loop_s": [5.8, 6.7], "steps": 500},
}

# The authors' settings expressed in our config keys: one learner per meta-step, features fixed for the run.
AUTHORS_SETTINGS = {
    "fig2_kernel_sphere": (["learner.resample=false"], {"learners_per_step": 1, "steps": 100}),
    "fig2_ridge_disc": ([], {"learners_per_step": 1, "steps": 100}),
    "fig4_contrast_kernel_linear": (
        ["learner.resample=false"],
        {"learners_per_step": 1, "steps": 500, "contrast_objective": "difference"},
    ),
}


def _time_run(
    name: str, overrides: list[str], changes: dict, seeds: list[int], steps: int | None = None
) -> dict:
    cfg = load_config(name, overrides)
    comp = build_components(cfg)
    settings = override(cfg.search, **changes)
    if steps is not None:
        settings = override(settings, steps=steps)
    t0 = time.perf_counter()
    res = meta_train(
        comp.make_meta(), comp.domain, comp.learner, comp.target, settings, seeds, learner_b=comp.learner_b
    )
    loop = time.perf_counter() - t0
    times = res.extra["step_times_s"][3:]
    return {
        "seeds": len(seeds),
        "steps": settings.steps,
        "learners_per_step": settings.learners_per_step,
        "distance": settings.distance,
        "ms_per_step_median": float(np.median(times) * 1e3),
        "ms_per_step_p90": float(np.percentile(times, 90) * 1e3),
        "ms_per_seed_step": float(np.median(times) * 1e3 / len(seeds)),
        "loop_s": loop,
    }


def run() -> dict:
    torch.set_num_threads(1)
    out: dict = {
        "machine": machine_info(),
        "authors_machine": AUTHORS_MACHINE,
        "side_by_side_reference": SIDE_BY_SIDE,
        "cases": {},
    }
    for name, (overrides, changes) in AUTHORS_SETTINGS.items():
        case = {"authors_measured_elsewhere": AUTHORS[name]}
        case["authors_settings"] = _time_run(name, overrides, changes, [0])
        case["authors_settings_sinkhorn"] = _time_run(
            name,
            overrides,
            changes | {"distance": "sinkhorn", "target_samples": 100 if "kernel" in name else 15},
            [0],
            steps=30,
        )
        case["config_settings"] = _time_run(name, [], {}, [0])
        case["config_settings_5_seeds_batched"] = _time_run(name, [], {}, [0, 1, 2, 3, 4])
        out["cases"][name] = case
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_core.json").write_text(json.dumps(out, indent=2))
    run_sinkhorn()
    return out


# ------------------------------------------------------------------------------------------- the Sinkhorn distance

#: today's implementation, timed against the current one in the same process (loaded from git)
BEFORE_COMMIT = "ef36e2c"
#: the authors' call: geomloss SamplesLoss("sinkhorn", p=2, blur=0.05) at its default scaling 0.5 (bias-spec §2)
AUTHORS_SINKHORN = {"blur": 0.05, "scaling": 0.5, "p": 2}
#: label sets per meta-step at the authors' settings: (labels, Sinkhorn samples) per distance call
SINKHORN_CASES = {
    "fig2_kernel_sphere": {"calls": [(100, 100)], "target_samples": 100},  # y_tr ∪ y_te (20 + 80) vs 100
    "fig2_ridge_disc": {"calls": [(6, 15), (24, 15)], "target_samples": 15},  # S(y_tr) + S(y_te)
    "fig4_contrast_kernel_linear": {"calls": [(50, 100), (150, 100)], "target_samples": 100},
}


def _sinkhorn_before() -> types.FunctionType | None:
    """``sinkhorn_divergence`` as it was at ``BEFORE_COMMIT`` (None when git or the commit is unavailable)."""
    try:
        src = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:src/learnscope/bias/distances.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("distances_before")
    module.__file__ = f"distances.py@{BEFORE_COMMIT}"
    sys.modules[module.__name__] = module
    exec(compile(src, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file at a fixed commit
    return module.sinkhorn_divergence


def _distance_fns() -> dict:
    import geomloss

    from learnscope.bias.distances import energy_distance, sinkhorn_divergence, w2_between_samples

    loss = geomloss.SamplesLoss("sinkhorn", backend="tensorized", **AUTHORS_SINKHORN)
    fns = {
        "sinkhorn_new": lambda x, y: sinkhorn_divergence(x, y, blur=0.05),
        "sinkhorn_geomloss_authors": lambda x, y: loss(x[..., None], y.expand(x.shape[0], -1)[..., None]),
        "w2_exact": w2_between_samples,
        "energy": energy_distance,
    }
    before = _sinkhorn_before()
    if before is not None:
        fns["sinkhorn_before"] = lambda x, y: before(x, y, blur=0.05)
    return fns


def _paired_call_times(fns: dict, n: int, m: int, rounds: int = 40) -> dict:
    """Median ms per forward + backward call of each distance, float32 labels (N = 1), calls alternating A B C …"""
    g = torch.Generator().manual_seed(n * 1000 + m)
    y = 2 * torch.rand(m, generator=g) - 1
    xs = [0.5 * torch.randn(1, n, generator=g) for _ in range(4)]  # a few label sets, cycled
    times: dict = {k: [] for k in fns}
    for r in range(rounds + 3):
        for k, fn in fns.items():
            x = xs[r % len(xs)].clone().requires_grad_(True)
            t0 = time.perf_counter()
            fn(x, y).sum().backward()
            if r >= 3:
                times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def _paired_meta_steps(name: str, overrides: list[str], changes: dict, rounds: int = 4, steps: int = 12) -> dict:
    """Median ms per meta-step with distance = sinkhorn: the current code vs today's, alternating runs."""
    import learnscope.bias.distances as distances

    before = _sinkhorn_before()
    current = distances.sinkhorn_divergence
    variants = {"new": current} | ({"before": before} if before is not None else {})
    times: dict = {k: [] for k in variants}
    try:
        for _ in range(rounds):
            for k, fn in variants.items():
                distances.sinkhorn_divergence = fn  # make_distance looks the function up when called
                run = _time_run(name, overrides, changes, [0], steps=steps)
                times[k].append(run["ms_per_step_median"])
    finally:
        distances.sinkhorn_divergence = current
    return {k: float(np.median(v)) for k, v in times.items()}


def run_sinkhorn() -> dict:
    """The Sinkhorn distance at the authors' settings: per call (today, new, the authors' geomloss call, and the
    exact W2 / energy distance for scale) and per meta-step (today vs new). Writes results/sinkhorn.json."""
    torch.set_num_threads(1)
    fns = _distance_fns()
    out: dict = {
        "machine": machine_info(),
        "what": "median ms per call (forward + backward, float32, N = 1) and per meta-step, 1 thread, all variants "
                "alternating in one process; authors' Sinkhorn settings blur 0.05, p 2, geomloss scaling 0.5",
        "before_commit": BEFORE_COMMIT,
        "authors_sinkhorn": AUTHORS_SINKHORN,
        "calls": {},
        "meta_steps": {},
    }
    for name, case in SINKHORN_CASES.items():
        per = {f"{n}x{m}": _paired_call_times(fns, n, m) for n, m in case["calls"]}
        total = {k: sum(c[k] for c in per.values()) for k in fns}
        ratios = {"new_vs_geomloss_authors": total["sinkhorn_geomloss_authors"] / total["sinkhorn_new"]}
        if "sinkhorn_before" in total:
            ratios["new_vs_before"] = total["sinkhorn_before"] / total["sinkhorn_new"]
        out["calls"][name] = {"per_call_ms": per, "per_meta_step_ms": total, "speedup": ratios}
        overrides, changes = AUTHORS_SETTINGS[name]
        changes = changes | {"distance": "sinkhorn", "target_samples": case["target_samples"]}
        steps = _paired_meta_steps(name, overrides, changes)
        out["meta_steps"][name] = {"ms_per_step": steps}
        if "before" in steps:
            out["meta_steps"][name]["speedup_new_vs_before"] = steps["before"] / steps["new"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sinkhorn.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    if "--sinkhorn" in sys.argv[1:]:
        print(json.dumps(run_sinkhorn(), indent=2))
        raise SystemExit(0)
    result = run()
    for name, case in result["cases"].items():
        a = case["authors_settings"]["ms_per_step_median"]
        c = case["config_settings"]
        b = case["config_settings_5_seeds_batched"]
        print(
            f"{name:30s} authors' settings {a:6.2f} ms/step (authors, on another machine: "
            f"{case['authors_measured_elsewhere']['ms_per_step']} ms; no ratio); config {c['ms_per_step_median']:.2f} "
            f"ms/step, loop {c['loop_s']:.2f} s; 5 seeds batched {b['ms_per_seed_step']:.2f} ms per seed-step"
        )
