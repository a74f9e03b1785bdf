"""Peak memory and time per meta-step of the Fig 8 learner vs its inner steps, full vs checkpointed meta-gradient.

Writes ``benchmarks/results/bias_memory.json``. The learner is the one of ``configs/fig8_backprop_mlp.toml`` (MLP
3→20→20→1, full-batch GD, lr 0.025, 30 training points on S², 300 test points) with ``steps`` ∈ {50, 200, 800, 3200}.
A meta-step here is: a fixed label tensor ``y (1, 30)`` requiring grad stands in for the meta-learner's output (to
isolate the learner), then ``fit_predict`` + the energy distance of the test predictions to 300 target samples
(×10⁴, the config's α_d) + ``backward`` to ``y``. Each (steps, estimator) runs in a fresh process (1 thread): a
warm-up meta-step with 2 inner steps, then the baseline ``ru_maxrss``, then the timed meta-steps; the peak memory is
the peak resident set above that baseline. Separately (after the timing, in the same process) the peak bytes of
autograd's saved tensors of one meta-step (:class:`~learnscope.learners.memory.SavedTensorMeter`) and the estimate
of :func:`~learnscope.learners.memory.estimate_peak_memory`. Goal (issue 16): checkpointed peak at 3,200 steps
≤ 1/8 of full, time ≤ 1.5× full.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = (50, 200, 800, 3200)
ESTIMATORS = ("full", "checkpointed")

_PROBE = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from learnscope.bias.config import load_config
from learnscope.bias.distances import energy_distance
from learnscope.bias.experiment import build_components
from learnscope.learners.memory import SavedTensorMeter, estimate_peak_memory
from learnscope.learners.registry import make_learner

steps, estimator, reps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cfg = load_config("fig8_backprop_mlp")
comp = build_components(cfg)
g = torch.Generator().manual_seed(0)
x_tr = comp.domain.sample_batch(1, cfg.search.n_train, g)
x_te = comp.domain.sample_batch(1, cfg.search.n_test, g)
target = comp.target.sample(cfg.search.target_samples, g).reshape(1, -1)
y = (torch.rand(1, cfg.search.n_train, generator=g) * 2 - 1).requires_grad_(True)

def learner(T):
    return make_learner({**cfg.learner, "steps": T, "meta_gradient": estimator})

def meta_step(L, seed):
    pred = L.fit_predict(x_tr, y, x_te, generator=torch.Generator().manual_seed(seed))
    loss = cfg.search.alpha_d * energy_distance(pred, target).sum()
    (grad,) = torch.autograd.grad(loss, y)
    return float(grad.abs().sum())

meta_step(learner(2), 0)  # warm-up: imports, allocator, first-call costs
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
L = learner(steps)
times = []
for r in range(reps):
    t0 = time.perf_counter()
    check = meta_step(L, 1 + r)
    times.append(time.perf_counter() - t0)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
with SavedTensorMeter() as meter:
    meta_step(L, 1)
est = estimate_peak_memory(L, cfg.search.n_train, cfg.search.n_test, 1, torch.float32, dim=3)
print(json.dumps({"times_s": times, "peak_rss_bytes": peak_kib * 1024, "saved_tensor_peak_bytes": meter.peak,
                  "estimate_bytes": int(est), "grad_abs_sum": check}))
"""


def _probe(steps: int, estimator: str, reps: int) -> dict:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _PROBE, str(steps), estimator, str(reps)], cwd=root, check=True,
                         capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()}).stdout
    return json.loads(out.strip().splitlines()[-1])


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def run() -> dict:
    out: dict = {
        "machine": machine_info(),
        "learner": "configs/fig8_backprop_mlp.toml: MLP 3-20-20-1, full-batch GD lr 0.025, 30 train / 300 test points",
        "meta_step": "fixed labels y (1, 30) requiring grad as the meta-output; fit_predict + 1e4 * energy distance "
                     "to 300 target samples + backward to y; 1 learner",
        "peak_memory": "ru_maxrss above the post-warm-up baseline, fresh process per row; saved_tensor_peak_bytes from "
                       "saved_tensors_hooks (includes the energy distance's ~0.7 MiB graph, which estimate_bytes, "
                       "the learner's meta-gradient alone, does not)",
        "note": "the machine is shared (2 cores, several jobs): absolute times are inflated, ratios are of one run",
        "rows": [],
    }
    for steps in STEPS:
        row: dict = {"inner_steps": steps}
        for est in ESTIMATORS:
            reps = 5 if steps <= 800 else 3
            r = _probe(steps, est, reps)
            times = sorted(r["times_s"][1:] if len(r["times_s"]) > 2 else r["times_s"])
            r["median_s_per_meta_step"] = times[len(times) // 2]
            row[est] = r
        f, c = row["full"], row["checkpointed"]
        row["checkpointed_over_full"] = {
            "peak_rss": c["peak_rss_bytes"] / max(f["peak_rss_bytes"], 1),
            "saved_tensors": c["saved_tensor_peak_bytes"] / max(f["saved_tensor_peak_bytes"], 1),
            "time": c["median_s_per_meta_step"] / f["median_s_per_meta_step"],
            "same_gradient": abs(c["grad_abs_sum"] - f["grad_abs_sum"]) <= 1e-4 * abs(f["grad_abs_sum"]),
        }
        out["rows"].append(row)
    last = out["rows"][-1]["checkpointed_over_full"]
    out["goal_3200"] = {"peak_rss_ratio": last["peak_rss"], "peak_rss_goal": 1 / 8, "time_ratio": last["time"],
                        "time_goal": 1.5, "met": last["peak_rss"] <= 1 / 8 and last["time"] <= 1.5}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_memory.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    from learnscope.learners.memory import format_bytes

    res = run()
    print(f"cpu: {res['cpu']}, 1 thread")
    for row in res["rows"]:
        cells = []
        for est in ESTIMATORS:
            r = row[est]
            cells.append(f"{est}: {r['median_s_per_meta_step'] * 1e3:.1f} ms, "
                         f"peak RSS {format_bytes(r['peak_rss_bytes'])}, "
                         f"saved {format_bytes(r['saved_tensor_peak_bytes'])} "
                         f"(est. {format_bytes(r['estimate_bytes'])})")
        ratio = row["checkpointed_over_full"]
        print(f"T={row['inner_steps']}: " + "; ".join(cells) + f"; ratio RSS {ratio['peak_rss']:.3f}, "
              f"time {ratio['time']:.2f}")
    print("goal at 3200:", res["goal_3200"])
