"""Networks per minute of ``identify simulate`` for the bundled tier-0 and tier-1 grids on this machine, and the
one-network training path beside the plain hand-written torch loop of the same network.

Writes ``benchmarks/results/identify_simulate.json``. Tier 1 (288 MLPs, 21 checkpoints, 7 measurement
conditions) has a goal of at most 10 minutes on 2 cores (issue #4); a toy reference needed ≈ 5 s per network
per core. Stores go to ``runs/bench_*`` (reused: delete them to re-measure from scratch).

``one_network_vs_plain_loop`` (issue 14, goal ≤ 1.1×): our training of one tier-1 network (``setup_training``,
then :func:`~learnscope.identify.simulation.training_checkpoints` to the end, nothing recorded) against
``torch.nn.Sequential`` of ``Linear`` + ``ReLU`` with the same initial weights, ``torch.optim.SGD(momentum=0.9)``
or ``torch.optim.Adam`` at the rule's lr and weight decay, and the same minibatches; runs alternate in one
process, medians over repetitions. ``time_split`` divides one tier-1 network's ``train_and_record`` wall time into
setup, training, loss/accuracy evaluation and observable recording. Alone:
``python -m benchmarks.identify_simulate --plain-loop-only``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path

import torch

from benchmarks.machine import machine_info  # noqa: E402
from learnscope import rng
from learnscope.identify import simulation
from learnscope.identify.grid import expand, load_grid
from learnscope.identify.simulation import setup_training, simulate, training_checkpoints
from learnscope.identify.store import Store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLAIN_LOOP_CASES = (("mlp_3x64", "sgdm"), ("mlp_3x64", "adam"), ("mlp_3x256", "sgdm"), ("mlp_3x256", "adam"))


def measure(config: str, jobs: int) -> dict:
    out = ROOT / "runs" / f"bench_{config}"
    shutil.rmtree(out, ignore_errors=True)
    grid = load_grid(config)
    t0 = time.perf_counter()
    counts = simulate(grid, out, jobs=jobs, backend="loky", progress=True)
    wall = time.perf_counter() - t0
    nets = Store.open(out).networks()
    per_net = nets.wall_time_s
    return {
        "config": config, "networks": len(expand(grid)), "conditions": len(grid["conditions"]),
        "checkpoints": grid["training"]["checkpoints"], "jobs": jobs, "wall_s": wall,
        "networks_per_minute": len(nets) / wall * 60, "counts": counts,
        "per_network_s": {"median": float(per_net.median()), "max": float(per_net.max()),
                          "sum": float(per_net.sum())},
        "store": str(out.relative_to(ROOT)),
    }


def tier1_spec(architecture: str, rule: str, batch_size: int = 32, task: str = "digits", seed: int = 0) -> dict:
    """The tier-1 job of that architecture, rule, batch size, task and seed (its training settings unchanged)."""
    for spec in expand(load_grid("identify_tier1")):
        if (spec["architecture"], spec["rule"], spec["batch_size"], spec["task"], spec["seed"]) == (
                architecture, rule, batch_size, task, seed):
            return spec
    raise LookupError(f"no tier-1 job {architecture} {rule} batch {batch_size} {task} seed {seed}")


def _ours(spec: dict) -> tuple[float, float, float, float]:
    """Wall seconds of setup_training and of training_checkpoints to the end (nothing recorded), the process CPU
    seconds of the latter, and the training-set loss at the end (a check that both loops train the same
    network)."""
    t0 = time.perf_counter()
    run = setup_training(spec)
    t1, c1 = time.perf_counter(), time.process_time()
    for point in training_checkpoints(run):
        params = point.params
    t2, c2 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        loss = float(run.loss_fn(run.circuit.forward(params, run.task.x_train), run.task.y_train))
    return t1 - t0, t2 - t1, c2 - c1, loss


def _plain(spec: dict) -> tuple[float, float, float, float]:
    """The loop a user would write for the same network, optimiser, initial weights and minibatches (as _ours)."""
    t0 = time.perf_counter()
    run = setup_training(spec)  # the same data
    t1, c1 = time.perf_counter(), time.process_time()
    task, circuit, rule = run.task, run.circuit, run.rule
    init_gen = rng.network_generator(spec["seed"], 0)
    order_gen = rng.network_generator(spec["seed"], 1)
    init = circuit.init_params(init_gen)
    layers: list[torch.nn.Module] = []
    for layer in circuit.layers:
        lin = torch.nn.Linear(*layer.weight_shape)
        with torch.no_grad():
            lin.weight.copy_(init[2 * layer.index].T)
            lin.bias.copy_(init[2 * layer.index + 1])
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    wd = spec["training"]["weight_decay"]
    if rule.optimiser == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=rule.lr, betas=rule.betas, eps=rule.eps, weight_decay=wd)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=rule.lr, momentum=rule.momentum, weight_decay=wd)
    x, y = task.x_train, task.y_train
    n = x.shape[0]
    bs = min(spec["batch_size"], n)
    for _ in range(spec["training"]["epochs"]):
        perm = torch.randperm(n, generator=order_gen)
        for k in range(math.ceil(n / bs)):
            idx = perm[k * bs:(k + 1) * bs]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    t2, c2 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(model(x), y))
    return t1 - t0, t2 - t1, c2 - c1, loss


def one_network_vs_plain_loop(repeats: int = 7, cases=PLAIN_LOOP_CASES) -> dict:
    """Median seconds of our one-network training and of the plain torch loop per case, runs alternating."""
    torch.set_num_threads(1)
    specs = {case: tier1_spec(*case) for case in cases}
    for spec in specs.values():  # warm up: data caches, allocator, lazy imports
        _ours(spec), _plain(spec)
    times: dict = {(case, name): [] for case in cases for name in ("ours", "plain")}
    losses: dict = {}
    for r in range(repeats):
        for case, spec in specs.items():
            order = (("ours", _ours), ("plain", _plain)) if r % 2 == 0 else (("plain", _plain), ("ours", _ours))
            for name, fn in order:
                setup_s, train_s, cpu_s, loss = fn(spec)
                times[(case, name)].append((setup_s, train_s, cpu_s))
                losses[(case, name)] = loss
    out = []
    for case, spec in specs.items():
        med = {name: {"setup": statistics.median(t[0] for t in times[(case, name)]),
                      "training": statistics.median(t[1] for t in times[(case, name)]),
                      "total": statistics.median(t[0] + t[1] for t in times[(case, name)]),
                      "cpu": statistics.median(t[2] for t in times[(case, name)])}
               for name in ("ours", "plain")}
        n = spec["training"]["n_train"]
        out.append({"architecture": case[0], "rule": case[1], "task": spec["task"], "batch_size": spec["batch_size"],
                    "epochs": spec["training"]["epochs"],
                    "steps": spec["training"]["epochs"] * math.ceil(n / spec["batch_size"]),
                    "ours_s": med["ours"]["total"], "plain_loop_s": med["plain"]["total"],
                    "ratio": med["ours"]["total"] / med["plain"]["total"],
                    "training_only": {"ours_s": med["ours"]["training"], "plain_loop_s": med["plain"]["training"],
                                      "ratio": med["ours"]["training"] / med["plain"]["training"]},
                    "training_cpu": {"ours_s": med["ours"]["cpu"], "plain_loop_s": med["plain"]["cpu"],
                                     "ratio": med["ours"]["cpu"] / med["plain"]["cpu"]},
                    "paired_ratio_median": statistics.median(
                        a[1] / b[1] for a, b in zip(times[(case, "ours")], times[(case, "plain")], strict=True)),
                    "paired_cpu_ratio_median": statistics.median(
                        a[2] / b[2] for a, b in zip(times[(case, "ours")], times[(case, "plain")], strict=True)),
                    "setup_s": med["ours"]["setup"],
                    "ours_training_all_s": [t[1] for t in times[(case, "ours")]],
                    "plain_loop_training_all_s": [t[1] for t in times[(case, "plain")]],
                    "final_train_loss": {"ours": losses[(case, "ours")], "plain_loop": losses[(case, "plain")]}})
    return {"goal": "ours / plain loop <= 1.1", "repeats": repeats, "statistic": "median, runs alternating",
            "what": "setup_training + training_checkpoints to the end (nothing recorded) vs torch.nn.Sequential of "
                    "Linear+ReLU + torch.optim (SGD momentum 0.9 / Adam), same initial weights, minibatches, lr and "
                    "weight decay, both after the same setup_training (ratio: wall time with setup; training_only: "
                    "wall time without; training_cpu: process CPU time without, less sensitive to other load; "
                    "paired_*: median over repetitions of the ratio of the two adjacent runs, robust to load drift)",
            "cases": out}


def time_split(spec: dict | None = None, repeats: int = 3) -> dict:
    """One tier-1 network's ``train_and_record`` wall time split into setup, loss/accuracy evaluation, observable
    recording and the rest (training: the rule's steps, minibatches and finiteness checks; the feedback angles).

    The parts are timed by wrapping ``setup_training``, the evaluation (``TrainingTask.evaluate``, or the older
    ``simulation._evaluate``) and ``simulation._record`` for the duration of the measurement."""
    from learnscope.identify import training_task

    torch.set_num_threads(1)
    spec = spec or tier1_spec("mlp_3x256", "sgdm")
    spent = {"setup": 0.0, "evaluation": 0.0, "recording": 0.0}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
        return wrapper

    targets = [(simulation, "setup_training", "setup"), (simulation, "_record", "recording")]
    targets.append((simulation, "_evaluate", "evaluation") if hasattr(simulation, "_evaluate")
                   else (training_task.TrainingTask, "evaluate", "evaluation"))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    splits = []
    try:
        for (owner, name, key), (_, _, fn) in zip(targets, originals, strict=True):
            setattr(owner, name, timed(key, fn))
        simulation.train_and_record(spec)  # warm-up
        for _ in range(repeats):
            for key in spent:
                spent[key] = 0.0
            row, _ = simulation.train_and_record(spec)
            total = row["wall_time_s"]
            splits.append(dict(spent) | {"training_and_rest": total - sum(spent.values()), "total": total})
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    med = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    return {"network": {k: spec[k] for k in ("network_id", "task", "architecture", "rule", "batch_size", "seed")},
            "conditions": len(spec["conditions"]), "checkpoints": spec["training"]["checkpoints"],
            "steps": spec["training"]["epochs"] * math.ceil(spec["training"]["n_train"] / spec["batch_size"]),
            "repeats": repeats, "median_s": med,
            "fractions": {k: med[k] / med["total"] for k in med if k != "total"}}


def _write(out: dict, merge: bool) -> None:
    """Write the results JSON; ``merge`` keeps the keys of an existing one that ``out`` does not have."""
    path = RESULTS / "identify_simulate.json"
    old = json.loads(path.read_text()) if merge and path.exists() else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old | out, indent=2))


def run_plain_loop() -> dict:
    """The one-network vs plain-loop comparison and the time split, merged into the results JSON."""
    out = {"one_network_vs_plain_loop": one_network_vs_plain_loop() | {"machine": machine_info()},
           "tier1_network_time_split": time_split() | {"machine": machine_info()}}
    _write(out, merge=True)
    return out


def run(tiers: tuple[str, ...] = ("identify_tier0", "identify_tier1")) -> dict:
    jobs = min(2, os.cpu_count() or 1)
    out = {"machine": machine_info(), "goal": "tier 1 (288 MLPs, 21 checkpoints, 7 conditions) <= 10 min on 2 cores",
           "reference": "toy reference ~5 s per network per core (identify-spec 7.2)",
           "cases": [measure(t, jobs) for t in tiers]}
    out |= {"one_network_vs_plain_loop": one_network_vs_plain_loop() | {"machine": machine_info()},
            "tier1_network_time_split": time_split() | {"machine": machine_info()}}
    _write(out, merge=False)
    return out


def _print_plain(out: dict) -> None:
    for c in out["one_network_vs_plain_loop"]["cases"]:
        print(f"{c['architecture']} {c['rule']}: ours {c['ours_s']:.3f} s, plain loop {c['plain_loop_s']:.3f} s, "
              f"ratio {c['ratio']:.2f} (CPU time {c['training_cpu']['ratio']:.2f}, paired "
              f"{c['paired_ratio_median']:.2f})")
    split = out["tier1_network_time_split"]
    print("tier-1 network time split:", {k: round(v, 3) for k, v in split["fractions"].items()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-loop-only", action="store_true",
                        help="only the one-network vs plain torch loop comparison and the time split")
    if parser.parse_args().plain_loop_only:
        _print_plain(run_plain_loop())
    else:
        result = run()
        for case in result["cases"]:
            print(f"{case['config']}: {case['networks']} networks in {case['wall_s']:.0f} s with {case['jobs']} jobs "
                  f"({case['networks_per_minute']:.1f} networks/min), counts {case['counts']}")
        _print_plain(result)
