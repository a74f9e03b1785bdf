"""Train a grid of networks with known learning rules and record what an experimenter could record.

:func:`train_and_record` runs one network job (a dict from :func:`learnscope.identify.grid.expand`): it trains
the circuit with its rule, and at each of the evenly spaced checkpoints (initialisation included) measures
every layer's 45 observables under every measurement condition, from the same raw tensors. :func:`simulate`
runs all unfinished jobs of a grid through joblib (loky processes locally, dask.distributed on a cluster)
and each job writes its own files into the :class:`~learnscope.identify.store.Store`.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from learnscope.circuits import MLP, Circuit, ConvNet
from learnscope.datasets import Task, load_task
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.grid import expand
from learnscope.identify.observables import ALL_OBS, Condition, measure_layer
from learnscope.identify.store import Store
from learnscope.plasticity.rules import angle_between, cross_entropy_loss, make_rule, mse_loss

BACKENDS = ("loky", "dask", "sequential")


class Diverged(Exception):
    """Training produced a non-finite loss or parameter."""


def build_circuit(architecture: str, task: Task) -> Circuit:
    """The circuit an architecture name describes, sized for the task's inputs and outputs."""
    if architecture == "cnn":
        return ConvNet(in_shape=task.input_shape, n_out=task.n_out)
    depth, width = (int(v) for v in architecture.removeprefix("mlp_").split("x"))
    d_in = int(np.prod(task.input_shape))
    return MLP([d_in, *([width] * depth), task.n_out])


def checkpoint_steps(total_steps: int, checkpoints: int) -> np.ndarray:
    """``checkpoints`` evenly spaced step indices from 0 (initialisation) to ``total_steps`` inclusive."""
    if total_steps + 1 < checkpoints:
        raise ConfigError(
            f"training has only {total_steps} steps, fewer than the {checkpoints} checkpoints asked for; "
            "raise training.epochs or lower training.checkpoints"
        )
    return np.round(np.linspace(0, total_steps, checkpoints)).astype(int)


def _generator(*keys: int) -> torch.Generator:
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _evaluate(circuit: Circuit, params, x: torch.Tensor, y: torch.Tensor, loss_fn, classification: bool):
    with torch.no_grad():
        out = circuit.forward(params, x)
        loss = float(loss_fn(out, y))
        acc = float((out.argmax(-1) == y).float().mean()) if classification else float("nan")
    return loss, acc


def _record(circuit: Circuit, params, rule, feedback, probe: torch.Tensor, conditions: list[Condition],
            meta: dict, ckpt_index: int, step: int, frac: float) -> list[dict]:
    """All observables of every layer under every condition at one checkpoint (rows of the store)."""
    with torch.no_grad():
        _, records = circuit.forward(params, probe, record=True)
    rows = []
    for layer in circuit.layers:
        li = layer.index
        weight = params[2 * li].detach()

        def forward_fn(x, li=li):
            return circuit.layer_forward(params, li, x)

        def feedback_fn(x, li=li):
            return circuit.layer_forward(params, li, x, transport=rule.transport, feedback=feedback)

        for ci, cond in enumerate(conditions):
            noise = _generator(cond.seed, li, ckpt_index, ci)
            values = measure_layer(weight, records[li]["input"].detach(), records[li]["output"].detach(), forward_fn,
                                   cond, layer_fn_feedback=feedback_fn, noise_generator=noise,
                                   weight_layout="torch" if weight.ndim == 4 else "as_given")
            rows.append(meta | {"layer": layer.name, "layer_index": li, "group": layer.group, "condition": cond.name,
                                "checkpoint": ckpt_index, "step": step, "training_fraction": frac} | values)
    return rows


def train_and_record(spec: dict) -> tuple[dict, pd.DataFrame | None]:
    """Train one network of a grid and record its observables; returns (network row, observation rows).

    The network row has status ``ok``, ``diverged`` (non-finite loss or weights; the grid goes on) or
    ``failed`` (an unexpected error, with its message), the loss and accuracy curves at the checkpoints and the
    angle between each layer's feedback matrix B and Wᵀ (NaN for rules without B).
    """
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tr = spec["training"]
    meta = {"network_id": spec["network_id"], "task": spec["task"], "architecture": spec["architecture"],
            "rule": spec["rule"], "batch_size": spec["batch_size"], "lr": spec["lr"],
            "lr_multiplier": spec["lr_multiplier"], "seed": spec["seed"]}
    row = dict(meta) | {"status": "ok", "reason": "", "loss_curve": [], "test_accuracy_curve": [],
                        "train_accuracy_curve": [], "angle_curves": [], "steps": 0, "wall_time_s": 0.0}
    obs_rows: list[dict] = []
    try:
        task = load_task(spec["task"], n_train=tr["n_train"], n_probe=tr["n_probe"],
                         image=spec["architecture"] == "cnn")
        circuit = build_circuit(spec["architecture"], task)
        rule = make_rule({"name": spec["rule"], "lr": spec["lr"], "weight_decay": tr["weight_decay"],
                          **spec["rule_params"]})
        conditions = [Condition(**c) for c in spec["conditions"]]
        classification = task.kind == "classification"
        loss_fn: Callable = cross_entropy_loss if classification else mse_loss
        init_gen = _generator(spec["seed"], 0)
        order_gen = _generator(spec["seed"], 1)
        params = circuit.init_params(init_gen)
        state = rule.init_state(circuit, params, init_gen)
        n = task.x_train.shape[0]
        bs = min(spec["batch_size"], n)
        per_epoch = math.ceil(n / bs)
        total = tr["epochs"] * per_epoch
        ckpts = checkpoint_steps(total, tr["checkpoints"])
        ckpt_of_step = {int(s): i for i, s in enumerate(ckpts)}
        perm = torch.randperm(n, generator=order_gen)
        angles: list[list[float]] = [[] for _ in circuit.layers]
        for step in range(total + 1):
            if step in ckpt_of_step:
                i = ckpt_of_step[step]
                loss, acc = _evaluate(circuit, params, task.x_train, task.y_train, loss_fn, classification)
                _, test_acc = _evaluate(circuit, params, task.x_test, task.y_test, loss_fn, classification)
                if not math.isfinite(loss):
                    raise Diverged(f"training loss is {loss} at step {step}")
                row["loss_curve"].append(loss)
                row["train_accuracy_curve"].append(acc)
                row["test_accuracy_curve"].append(test_acc)
                fb = rule.feedback(state)
                for layer in circuit.layers:
                    b = fb[layer.index] if fb is not None else None
                    angles[layer.index].append(
                        float(angle_between(b, params[2 * layer.index])) if b is not None else float("nan"))
                obs_rows += _record(circuit, params, rule, fb, task.probe, conditions, meta, i, step,
                                    step / total)
            if step == total:
                break
            k = step % per_epoch
            if k == 0 and step > 0:
                perm = torch.randperm(n, generator=order_gen)
            idx = perm[k * bs:(k + 1) * bs]
            params, state, info = rule.step(circuit, params, state, task.x_train[idx], task.y_train[idx], loss_fn)
            if not torch.isfinite(torch.as_tensor(info["loss"])).all() or not all(
                    torch.isfinite(p).all() for p in params):
                raise Diverged(f"non-finite loss or weights at step {step + 1}")
        row["steps"] = total
        row["angle_curves"] = angles
    except Diverged as err:
        row["status"], row["reason"] = "diverged", str(err)
        obs_rows = []
    except Exception as err:  # noqa: BLE001 - any failure of one network is recorded and the grid goes on
        row["status"] = "failed"
        row["reason"] = f"{type(err).__name__}: {err} ({traceback.extract_tb(err.__traceback__)[-1].name})"
        obs_rows = []
    row["wall_time_s"] = time.perf_counter() - t0
    obs = pd.DataFrame(obs_rows, columns=list(obs_rows[0]) if obs_rows else None) if obs_rows else None
    if obs is not None:
        obs[list(ALL_OBS)] = obs[list(ALL_OBS)].astype("float64")
    return row, obs


def _run_and_write(spec: dict, root: str) -> tuple[str, str]:
    row, obs = train_and_record(spec)
    Store.open(Path(root)).write_network(spec["network_id"], row, obs)
    return spec["network_id"], row["status"]


def simulate(grid: dict, out: Path, *, jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
             progress: bool = True) -> dict:
    """Run every unfinished network of ``grid`` into the store at ``out``; returns counts by status.

    jobs : worker processes (loky) or, for dask without ``scheduler``, workers of a local cluster.
    backend : "loky" (local processes), "dask" (dask.distributed; ``scheduler`` is the address of a running
        scheduler, else a LocalCluster is started), or "sequential" (in this process, for debugging).
    """
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    store = Store.create(out, grid)
    specs = expand(grid)
    done = store.finished_ids()
    pending = [s for s in specs if s["network_id"] not in done]
    counts = {"total": len(specs), "already_done": len(specs) - len(pending), "ok": 0, "diverged": 0, "failed": 0}
    if not pending:
        return counts
    bar = tqdm(total=len(specs), initial=counts["already_done"], desc="networks", disable=not progress,
               unit="net", smoothing=0.1)
    for _, status in _results(pending, str(Path(out).resolve()), jobs, backend, scheduler):
        counts[status] += 1
        bar.update(1)
    bar.close()
    return counts


def _results(pending: list[dict], root: str, jobs: int, backend: str, scheduler: str | None) -> Iterator[tuple]:
    """(network_id, status) of each pending job as it finishes, from the chosen backend."""
    if backend == "sequential":
        for spec in pending:
            yield _run_and_write(spec, root)
        return
    tasks = [delayed(_run_and_write)(spec, root) for spec in pending]
    if backend == "loky":
        yield from Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(tasks)
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the dask backend needs dask.distributed: pip install 'learnscope[dask]'") from None
    cluster = None if scheduler else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        with parallel_config(backend="dask"):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
