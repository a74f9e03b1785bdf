"""Train a grid of networks with known learning rules and record what an experimenter could record.

:func:`train_and_record` runs one network job (a dict from :func:`learnscope.identify.grid.expand`): it trains
the circuit with its rule, and at each of the evenly spaced checkpoints (initialisation included) measures
every layer's 45 observables under every measurement condition, from the same raw tensors (a condition with
``jitter`` measures each checkpoint at its own perturbed step, :func:`jittered_steps`). The training itself is
:func:`training_checkpoints` (a generator over the measured steps of a :class:`TrainingRun` from
:func:`setup_training`), the one loop that :func:`~learnscope.identify.replay.replay_network` shares. :func:`simulate`
runs all unfinished jobs of a grid through joblib (loky processes locally, dask.distributed on a cluster)
and each job writes its own files into the :class:`~learnscope.identify.store.Store`.

:func:`prepare` checks everything before any work (backend, store location, the grid's feasibility, damaged
files) and returns a :class:`Plan` that :meth:`Plan.run` executes; :func:`simulate` is both. Each job trains its
network only while it holds the network's lock in the store, so concurrent runs on one store split the work
(a run waits at the end for the networks another run is still training). A rerun retrains nothing that is
committed, except, with ``retry_failed``, the networks whose status is ``failed`` (an error: a bug, a missing
resource). ``diverged`` networks are kept: training is deterministic, so a diverged network is the rule's
legitimate outcome at that learning rate and would diverge again; lower the rule's lr to change it.
:func:`outcome_warnings` groups the failed and diverged networks of a store by reason.
"""

from __future__ import annotations

import importlib.util
import math
import re
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from learnscope import rng
from learnscope.circuits import Circuit
from learnscope.datasets import Task
from learnscope.errors import ConfigError, StoreError, UnknownNameError
from learnscope.identify import measurement
from learnscope.identify.grid import check_feasible, circuit_for, expand, is_convolutional
from learnscope.identify.objectives import task_objective
from learnscope.identify.observables import ALL_OBS, Condition, measure_layer
from learnscope.identify.store import Damage, Store
from learnscope.identify.training_task import PERFORMANCE_MEASURES, TrainingTask, training_task
from learnscope.plasticity.rules import Rule, RuleState, angle_between, make_rule
from learnscope.plasticity.transports import STORED_FEEDBACK, transport_matrices
from learnscope.validation import check_positive_int

BACKENDS = ("loky", "dask", "sequential")


class Diverged(Exception):
    """Training produced a non-finite loss or parameter (``step``: where, when known).

    From :func:`training_checkpoints`: let ``k`` be the first update after which the parameters ``θ_k`` or the
    update's own minibatch loss (computed at ``θ_{k-1}``) are non-finite — the step a check of every parameter
    after every update reports. Then ``step = k`` whenever non-finite parameters make the next minibatch's loss
    non-finite (a NaN or +inf weight normally does, through every later layer), when ``k`` is a measured step, or
    when the loss was the first to go; otherwise (e.g. a −inf bias that a ReLU silences) ``k < step ≤`` the first
    measured step at or after ``k``. ``total_steps`` is always measured, so no non-finite network goes unreported
    and no measured point has non-finite parameters.
    """

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


def circuit_for_architecture(architecture: str, task: Task) -> Circuit:
    """The circuit an architecture name describes, sized for the task's inputs and outputs."""
    return circuit_for(architecture, task.input_shape, task.n_out)


def checkpoint_steps(total_steps: int, checkpoints: int) -> np.ndarray:
    """``checkpoints`` evenly spaced step indices from 0 (initialisation) to ``total_steps`` inclusive."""
    if total_steps + 1 < checkpoints:
        raise ConfigError(
            f"training has only {total_steps} steps, fewer than the {checkpoints} checkpoints asked for; "
            "raise training.epochs or lower training.checkpoints"
        )
    return np.round(np.linspace(0, total_steps, checkpoints)).astype(int)


def recorded_layers(circuit: Circuit, params, rule: Rule, feedback, probe: torch.Tensor) -> Iterator[tuple]:
    """What an experimenter records of each layer on the probe batch, for :func:`_record` and its ensemble form:
    ``(layer, weight, input, output, forward_fn, feedback_fn)`` with the layer's map from its input to its output
    (the true Jacobian) and the same map with the error sent back through the rule's B (``gradavg_mode =
    "as_original"``, identify-spec §4.3). Tensors detached; ensemble form when ``params`` have a leading E."""
    with torch.no_grad():
        _, records = circuit.forward(params, probe, record=True)
    transport = transport_matrices(rule.transport, circuit, params, feedback)
    for layer in circuit.layers:
        li = layer.index

        def forward_fn(x, li=li):
            return circuit.layer_forward(params, li, x)

        def feedback_fn(x, li=li):
            return circuit.layer_forward(params, li, x, transport=transport, feedback=feedback)

        yield (layer, params[2 * li].detach(), records[li]["input"].detach(), records[li]["output"].detach(),
               forward_fn, feedback_fn)


def _record(circuit: Circuit, params, rule, feedback, probe: torch.Tensor, conditions: list[tuple[int, Condition, int]],
            meta: dict, step: int, frac: float, network_key: int) -> list[dict]:
    """All observables of every layer under the given conditions at one step (rows of the store).

    ``conditions`` holds ``(condition index in the grid, condition, checkpoint index)``: the index keys the noise
    stream of the original measurement model; the checkpoint index is the ordinal one stored (a jittered condition
    measures checkpoint ``c`` at its own perturbed step).

    Ensemble form: ``params`` and ``feedback`` with a leading axis E, ``meta`` and ``network_key`` lists of E;
    returns one list of rows per member, measured batched
    (:func:`learnscope.identify.ensemble.record_members`)."""
    if isinstance(meta, list):
        from learnscope.identify.ensemble import record_members

        return record_members(circuit, params, rule, feedback, probe, conditions, meta, step, frac, network_key)
    rows = []
    for layer, weight, x_in, out, forward_fn, feedback_fn in recorded_layers(circuit, params, rule, feedback, probe):
        li = layer.index
        for ci, cond, ckpt_index in conditions:
            noise = rng.network_generator(cond.seed, li, ckpt_index, ci)
            values = measure_layer(weight, x_in, out, forward_fn, cond, layer_fn_feedback=feedback_fn,
                                   noise_generator=noise,
                                   weight_layout="torch" if weight.ndim == 4 else "as_given",
                                   network_key=network_key, layer_index=li, session=ckpt_index)
            rows.append(meta | {"layer": layer.name, "layer_index": li, "group": layer.group, "condition": cond.name,
                                "checkpoint": ckpt_index, "step": step, "training_fraction": frac} | values)
    return rows


def jittered_steps(conditions: list[Condition], total_steps: int, n_checkpoints: int,
                   network_key: int) -> dict[int, list[tuple[int, Condition, int]]]:
    """Where the jittered conditions measure: ``{step: [(condition index, condition, checkpoint index), …]}``.

    Checkpoint ``c`` of a condition with ``jitter > 0`` is measured at step ``round(f̃_c · total_steps)`` with
    ``f̃`` = :func:`~learnscope.identify.measurement.jittered_fractions` drawn from
    ``rng.numpy_rng(seed, "identify.jitter.<name>", network_key)`` (per network, independent of the others)."""
    out: dict[int, list[tuple[int, Condition, int]]] = defaultdict(list)
    for ci, cond in enumerate(conditions):
        if cond.jitter == 0:
            continue
        fractions = measurement.jittered_fractions(
            n_checkpoints, cond.jitter, rng.numpy_rng(cond.seed, f"identify.jitter.{cond.name}", network_key))
        for c, s in enumerate(np.round(fractions * total_steps).astype(int)):
            out[int(s)].append((ci, cond, c))
    return dict(out)


@dataclass(frozen=True)
class TrainingRun:
    """One network job set up to train: what :func:`training_checkpoints` steps through.

    Attributes:
        spec: the job (:func:`learnscope.identify.grid.expand`).
        training_task: the task entry loaded with its objective (:class:`~learnscope.identify.training_task.
            TrainingTask`: minibatches, evaluation); ``task`` is its dataset split.
        task, circuit, rule, loss_fn: the task split, the circuit the objective needs, the learning rule and the
            objective's loss.
        conditions: the grid's measurement conditions, in order (the index keys their noise streams).
        network_key: ``int(network_id, 16)``, the key of the per-network random streams of the measurement models.
        total_steps: ``epochs · ceil(n_train / batch_size)`` optimisation steps.
        steps: ``(C,)`` the evenly spaced checkpoint steps (:func:`checkpoint_steps`), 0 and ``total_steps`` included.
        jittered: where the jittered conditions measure (:func:`jittered_steps`).
    """

    spec: dict
    training_task: TrainingTask
    task: Task
    circuit: Circuit
    rule: Rule
    loss_fn: Callable
    conditions: tuple[Condition, ...]
    network_key: int
    total_steps: int
    steps: np.ndarray
    jittered: dict[int, list[tuple[int, Condition, int]]]

    @property
    def objective(self) -> str:
        """The objective trained (:data:`~learnscope.identify.objectives.OBJECTIVES`)."""
        return self.training_task.objective


@dataclass(frozen=True)
class TrainingPoint:
    """A step of training at which something is measured (see :func:`training_checkpoints`).

    Attributes:
        step: the optimisation step (0 = initialisation; the parameters after ``step`` updates).
        fraction: ``step / total_steps``, in ``[0, 1]``.
        checkpoint: index of the evenly spaced checkpoint at this step, ``None`` where only jittered conditions
            measure here.
        jittered: ``(condition index, condition, checkpoint index)`` of the jittered conditions measuring here.
        params, state: the circuit's parameters and the rule's state at this step (read them, do not modify them).
    """

    step: int
    fraction: float
    checkpoint: int | None
    jittered: list[tuple[int, Condition, int]]
    params: list[torch.Tensor]
    state: RuleState


def setup_training(spec: dict) -> TrainingRun:
    """Load the task, build the circuit and the rule of a job, and place its checkpoints (nothing trained yet)."""
    tr = spec["training"]
    ttask = training_task(spec["task"], n_train=tr["n_train"], n_probe=tr["n_probe"],
                          image=is_convolutional(spec["architecture"]))
    task = ttask.data
    circuit = ttask.circuit(spec["architecture"])
    rule = make_rule({"name": spec["rule"], "lr": spec["lr"], "weight_decay": tr["weight_decay"],
                      **spec["rule_params"]})
    conditions = tuple(Condition(**c) for c in spec["conditions"])
    network_key = int(spec["network_id"], 16)
    n = task.x_train.shape[0]
    total = tr["epochs"] * math.ceil(n / min(spec["batch_size"], n))
    return TrainingRun(spec=spec, training_task=ttask, task=task, circuit=circuit, rule=rule, loss_fn=ttask.loss_fn,
                       conditions=conditions, network_key=network_key, total_steps=total,
                       steps=checkpoint_steps(total, tr["checkpoints"]),
                       jittered=jittered_steps(list(conditions), total, tr["checkpoints"], network_key))


def training_checkpoints(run: TrainingRun) -> Iterator[TrainingPoint]:
    """Train ``run``'s network and yield it at every step where something is measured, in step order.

    Those steps are the evenly spaced checkpoints ``run.steps`` and the jittered conditions' steps ``run.jittered``.
    Deterministic: the initialisation draws from ``rng.network_generator(seed, 0)``, the data order (a fresh
    permutation of the training set each epoch, minibatches of ``batch_size``) from ``(seed, 1)``, a contrastive
    network's augmented views from ``rng.torch_generator(seed, IDENTIFY_TRAINING_VIEWS)``; nothing else
    draws from them, so what a consumer does at a yielded point cannot change the training.

    Raises:
        Diverged: ``"non-finite loss or weights at step s"`` (see :class:`Diverged` for what ``s`` is). The check
            costs nothing per step: the minibatch loss (computed by the step anyway) is checked after every
            update, the parameters only at the yielded steps and, once, when a loss is non-finite. A consumer
            therefore never receives non-finite parameters.
    """
    circuit, rule, task = run.circuit, run.rule, run.task
    init_gen = rng.network_generator(run.spec["seed"], 0)
    order_gen = rng.network_generator(run.spec["seed"], 1)
    views_gen = rng.torch_generator(run.spec["seed"], rng.IDENTIFY_TRAINING_VIEWS)
    params = circuit.init_params(init_gen)
    state = rule.init_state(circuit, params, init_gen)
    n = task.x_train.shape[0]
    bs = min(run.spec["batch_size"], n)
    per_epoch = math.ceil(n / bs)
    total = run.total_steps
    ckpt_of_step = {int(s): i for i, s in enumerate(run.steps)}
    perm = torch.randperm(n, generator=order_gen)
    for step in range(total + 1):
        if step in ckpt_of_step or step in run.jittered:
            if step > 0 and not _all_finite(params):
                raise Diverged(f"non-finite loss or weights at step {step}", step)
            yield TrainingPoint(step=step, fraction=step / total, checkpoint=ckpt_of_step.get(step),
                                jittered=run.jittered.get(step, []), params=params, state=state)
        if step == total:
            return
        k = step % per_epoch
        if k == 0 and step > 0:
            perm = torch.randperm(n, generator=order_gen)
        idx = perm[k * bs:(k + 1) * bs]
        x, y = run.training_task.batch(task.x_train[idx], task.y_train[idx], views_gen)
        before = params
        params, state, info = rule.step(circuit, params, state, x, y, run.loss_fn)
        if not _finite_loss(info["loss"]):  # the loss of θ_step: θ_step itself was non-finite, or update step + 1
            s = step if step > 0 and not _all_finite(before) else step + 1
            raise Diverged(f"non-finite loss or weights at step {s}", s)


def _finite_loss(loss) -> bool:
    """Whether a step's loss (a number or a tensor of per-member losses) is finite everywhere."""
    if isinstance(loss, torch.Tensor):
        return math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss).all())
    return math.isfinite(float(loss))


def _all_finite(params) -> bool:
    """Whether every parameter tensor is finite (one reduction per tensor; called at measured steps only)."""
    return all(bool(torch.isfinite(p).all()) for p in params)


class NetworkRecording:
    """What :func:`train_and_record` records of one network, fed point by point (shared with the ensemble path,
    :func:`learnscope.identify.ensemble.train_and_record_ensemble`).

    ``NetworkRecording(spec)``, then :meth:`start` with its :class:`TrainingRun`, :meth:`measure` at every
    :class:`TrainingPoint`, and :meth:`finish` (or :meth:`fail` with the exception that stopped it) for the
    ``(network row, observation rows)`` of :func:`train_and_record`.
    """

    def __init__(self, spec: dict):
        self.t0 = time.perf_counter()
        self.spec = spec
        self.meta = {"network_id": spec["network_id"], "task": spec["task"],
                     "objective": task_objective(spec["task"]), "architecture": spec["architecture"],
                     "rule": spec["rule"], "batch_size": spec["batch_size"], "lr": spec["lr"],
                     "lr_multiplier": spec["lr_multiplier"], "seed": spec["seed"]}
        self.row = dict(self.meta) | {"status": "ok", "reason": "", "loss_curve": [], "test_accuracy_curve": [],
                                      "train_accuracy_curve": [], "performance_curve": [],
                                      "performance_measure": PERFORMANCE_MEASURES[self.meta["objective"]],
                                      "chance_performance": float("nan"), "angle_curves": [], "steps": 0,
                                      "wall_time_s": 0.0}
        self.obs_rows: list[dict] = []
        self.run: TrainingRun | None = None

    def start(self, run: TrainingRun) -> None:
        self.run = run
        self.row["chance_performance"] = run.training_task.chance
        self.on_schedule = [(ci, c) for ci, c in enumerate(run.conditions) if c.jitter == 0]
        self.angles: list[list[float]] = [[] for _ in run.circuit.layers]

    def measure(self, point: TrainingPoint, evaluation=None, recorded: list[dict] | None = None) -> None:
        """Record one point: at a checkpoint the loss, accuracies, performance, B–Wᵀ angles and the on-schedule
        conditions' observables, and the jittered conditions' observables measuring here. ``evaluation`` (this
        network's :class:`~learnscope.identify.training_task.Evaluation`) and ``recorded`` (the on-schedule rows)
        may be given by a caller that computed them for several networks at once.

        Raises :class:`Diverged` for a non-finite training loss at a checkpoint."""
        run, row = self.run, self.row
        circuit, rule, task = run.circuit, run.rule, run.task
        params, step = point.params, point.step
        if point.checkpoint is not None:
            ev = run.training_task.evaluate(circuit, params) if evaluation is None else evaluation
            loss = float(ev.loss)
            if not math.isfinite(loss):
                raise Diverged(f"training loss is {loss} at step {step}", step)
            row["loss_curve"].append(loss)
            row["train_accuracy_curve"].append(float(ev.train_accuracy))
            row["test_accuracy_curve"].append(float(ev.test_accuracy))
            row["performance_curve"].append(float(ev.performance))
            fb = rule.feedback(point.state)
            aligned = fb is not None and rule.transport in STORED_FEEDBACK  # DFA's B maps the output error, not W
            for layer in circuit.layers:
                b = fb[layer.index] if aligned else None
                self.angles[layer.index].append(
                    float(angle_between(b, params[2 * layer.index])) if b is not None else float("nan"))
            if recorded is not None:
                self.obs_rows += recorded
            elif self.on_schedule:
                self.obs_rows += _record(circuit, params, rule, fb, task.probe,
                                         [(ci, c, point.checkpoint) for ci, c in self.on_schedule], self.meta, step,
                                         point.fraction, run.network_key)
        if point.jittered:
            self.obs_rows += _record(circuit, params, rule, rule.feedback(point.state), task.probe, point.jittered,
                                     self.meta, step, point.fraction, run.network_key)

    def finish(self) -> tuple[dict, pd.DataFrame | None]:
        """The rows of a network trained to the end."""
        run = self.run
        self.row["steps"] = run.total_steps
        self.row["angle_curves"] = self.angles
        if run.jittered:  # the order of a grid without jitter: checkpoint, layer, condition
            order = {c.name: ci for ci, c in enumerate(run.conditions)}
            self.obs_rows.sort(key=lambda r: (r["checkpoint"], r["layer_index"], order[r["condition"]]))
        return self._rows()

    def fail(self, err: Exception) -> tuple[dict, pd.DataFrame | None]:
        """The rows of a network stopped by ``err``: ``diverged`` for :class:`Diverged`, else ``failed``."""
        if isinstance(err, Diverged):
            self.row["status"], self.row["reason"] = "diverged", str(err)
        else:
            self.row["status"] = "failed"
            self.row["reason"] = f"{type(err).__name__}: {err} ({traceback.extract_tb(err.__traceback__)[-1].name})"
        self.obs_rows = []
        return self._rows()

    def _rows(self) -> tuple[dict, pd.DataFrame | None]:
        self.row["wall_time_s"] = time.perf_counter() - self.t0
        obs_rows = self.obs_rows
        obs = pd.DataFrame(obs_rows, columns=list(obs_rows[0]) if obs_rows else None) if obs_rows else None
        if obs is not None:
            obs[list(ALL_OBS)] = obs[list(ALL_OBS)].astype("float64")
        return self.row, obs


def train_and_record(spec: dict) -> tuple[dict, pd.DataFrame | None]:
    """Train one network of a grid and record its observables; returns (network row, observation rows).

    The network row has status ``ok``, ``diverged`` (non-finite loss or weights; the grid goes on) or
    ``failed`` (an unexpected error, with its message), the loss and accuracy curves at the checkpoints, the task
    performance curve (``performance_measure``: test accuracy, R², view retrieval or explained variance, see
    :mod:`learnscope.identify.training_task`; ``chance_performance`` what a network that learnt nothing scores)
    and the angle between each layer's feedback matrix B and Wᵀ (NaN for rules without B). Network and
    observation rows name the task entry as written (``task``) and its ``objective``.
    """
    torch.set_num_threads(1)
    recording = NetworkRecording(spec)
    try:
        run = setup_training(spec)
        recording.start(run)
        for point in training_checkpoints(run):
            recording.measure(point)
        return recording.finish()
    except Exception as err:  # noqa: BLE001 - any failure of one network is recorded and the grid goes on
        return recording.fail(err)


def _run_and_write(specs: list[dict], root: str, stamps: list[tuple | None], wait: bool) -> list[tuple[str, str]]:
    """Train and commit a group of networks (one ensemble, :func:`learnscope.identify.ensemble.group_specs`) while
    holding their locks: ``[(network_id, status), …]``, where status is ``busy`` (another process holds it; only
    without ``wait``) or ``elsewhere`` (committed by another process since it was planned) when this process did
    not train it.

    The locks are taken in the order of ``specs`` (the grid's order, so concurrent runs waiting for each other's
    networks cannot deadlock); the networks claimed train as one ensemble (one network alone: exactly
    :func:`train_and_record`), and each is committed, and its lock released, as soon as it is finished, so a
    killed job loses at most its networks in flight."""
    store = Store.open(Path(root))
    results: list[tuple[str, str]] = []
    with ExitStack() as held:
        locks: dict[str, ExitStack] = {}
        mine_specs = []
        for spec, stamp in zip(specs, stamps, strict=True):
            network_id = spec["network_id"]
            lock = held.enter_context(ExitStack())
            if not lock.enter_context(store.claim(network_id, wait=wait)):
                lock.close()
                results.append((network_id, "busy"))
            elif store.stamp(network_id) != stamp:
                lock.close()
                results.append((network_id, "elsewhere"))
            else:
                locks[network_id] = lock
                mine_specs.append(spec)
        if len(mine_specs) <= 1:
            trained = iter([(spec, *train_and_record(spec)) for spec in mine_specs])
        else:
            from learnscope.identify.ensemble import train_and_record_ensemble

            trained = train_and_record_ensemble(mine_specs)
        for spec, row, obs in trained:
            store.write_network(spec["network_id"], row, obs)
            locks[spec["network_id"]].close()
            results.append((spec["network_id"], row["status"]))
    return results


@dataclass
class Plan:
    """A checked simulation: the store, every job of the grid, and the jobs to train now (see :func:`prepare`).

    ``ensemble``: at most that many networks that differ only in seed and learning rate train as one ensemble,
    one job per ensemble (:func:`learnscope.identify.ensemble.group_specs`); 1 = one job per network."""

    store: Store
    grid: dict
    specs: list[dict]
    pending: list[dict]
    backend: str
    stamps: dict[str, tuple | None] = field(default_factory=dict)
    repaired: list[Damage] = field(default_factory=list)
    retried: int = 0
    ensemble: int = 8

    @property
    def already_done(self) -> int:
        return len(self.specs) - len(self.pending)

    def run(self, jobs: int = 1, scheduler: str | None = None, progress: bool = True,
            notify: Callable[[str], None] | None = None) -> dict:
        """Train the pending jobs; returns counts: total, already_done, ok / diverged / failed (trained by this
        run) and elsewhere (trained meanwhile by another process on the same store)."""
        check_positive_int("jobs", jobs)
        counts = {"total": len(self.specs), "already_done": self.already_done, "ok": 0, "diverged": 0, "failed": 0,
                  "elsewhere": 0}
        if not self.pending:
            return counts
        from learnscope.identify.ensemble import group_specs

        check_positive_int("ensemble", self.ensemble)
        root = str(self.store.root.resolve())
        by_id = {s["network_id"]: s for s in self.pending}
        order = {s["network_id"]: i for i, s in enumerate(self.pending)}
        bar = tqdm(total=len(self.specs), initial=self.already_done, desc="networks", disable=not progress,
                   unit="net", smoothing=0.1)
        try:
            todo, wait = list(self.pending), False
            while todo:
                busy = []
                jobs_now = [(group, [self.stamps.get(s["network_id"]) for s in group], wait)
                            for group in group_specs(todo, self.ensemble)]
                for network_id, status in _results(jobs_now, root, jobs, self.backend, scheduler):
                    if status == "busy":
                        busy.append(by_id[network_id])
                        continue
                    counts[status] += 1
                    bar.update(1)
                if busy and notify is not None:
                    notify(f"waiting for {len(busy)} network(s) that another process is training on this store")
                todo, wait = sorted(busy, key=lambda s: order[s["network_id"]]), True
        finally:
            bar.close()
        return counts


def prepare(grid: dict, out: Path, *, backend: str = "loky", retry_failed: bool = False,
            repair: bool = False, ensemble: int = 8) -> Plan:
    """Check everything a simulation needs before any work, create (or reopen) the store, and plan the jobs.

    Raises (nothing trained, nothing removed unless ``repair``) :class:`UnknownNameError` for a bad backend,
    :class:`StoreError` for an unusable ``out`` (a file, a foreign directory, a store of another grid) or a store
    with damaged files (unless ``repair``, which removes them so they are retrained),
    :class:`~learnscope.errors.EnvironmentFailure` for an ``out`` without write permission, and
    :class:`ConfigError` for a grid that cannot train (:func:`~learnscope.identify.grid.check_feasible`).
    ``retry_failed`` retrains the networks whose status is ``failed`` (not ``diverged``: see the module docstring).
    """
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    if backend == "dask" and importlib.util.find_spec("distributed") is None:
        raise ConfigError("the dask backend needs dask.distributed: pip install 'learnscope[dask]'")
    out = Path(out)
    Store.check_target(out, grid)
    specs = expand(grid)
    if not (out / "store.json").exists():
        check_feasible(grid)
        return Plan(Store.create(out, grid), grid, specs, list(specs), backend, stamps={}, ensemble=ensemble)
    store = Store.create(out, grid)
    # Stamps first, scan second: a network another process commits after this line no longer matches its stamp,
    # so it is skipped as 'elsewhere' however long the checks below take (taken after the scan, a commit landing
    # during check_feasible would carry the stamp and be trained a second time).
    stamps = {s["network_id"]: store.stamp(s["network_id"]) for s in specs}
    scan = store.scan()
    repaired: list[Damage] = []
    if scan.damages:
        if not repair:
            raise StoreError(store.damage_message(scan.damages))
        repaired = store.remove(scan.damages)
        left = [d for d in scan.damages if d not in repaired]
        if left:
            raise StoreError(f"cannot repair {len(left)} network(s) now, another process holds them: "
                             f"{', '.join(d.network_id for d in left[:5])}; rerun when it has finished")
    removed = {d.network_id for d in repaired}
    statuses = scan.statuses
    retry = {nid for nid, st in statuses.items() if st == "failed"} if retry_failed else set()
    pending = [s for s in specs if s["network_id"] not in statuses or s["network_id"] in retry]
    if pending:
        check_feasible(grid)
    stamps = {s["network_id"]: None if s["network_id"] in removed else stamps[s["network_id"]] for s in pending}
    retried = sum(s["network_id"] in retry for s in pending)
    return Plan(store, grid, specs, pending, backend, stamps=stamps, repaired=repaired, retried=retried,
                ensemble=ensemble)


def simulate(grid: dict, out: Path, *, jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
             progress: bool = True, retry_failed: bool = False, repair: bool = False, ensemble: int = 8) -> dict:
    """Run every unfinished network of ``grid`` into the store at ``out``; returns counts by status.

    jobs : worker processes (loky) or, for dask without ``scheduler``, workers of a local cluster.
    backend : "loky" (local processes), "dask" (dask.distributed; ``scheduler`` is the address of a running
        scheduler, else a LocalCluster is started), or "sequential" (in this process, for debugging).
    retry_failed, repair : see :func:`prepare`.
    ensemble : at most this many networks that differ only in seed and learning rate train as one ensemble (one
        job each; :mod:`learnscope.identify.ensemble`); 1 trains one network per job. The values are the same
        either way up to the float rounding of batched kernels.
    """
    check_positive_int("jobs", jobs)
    plan = prepare(grid, out, backend=backend, retry_failed=retry_failed, repair=repair, ensemble=ensemble)
    return plan.run(jobs=jobs, scheduler=scheduler, progress=progress)


def _reason_key(status: str, reason: str) -> str:
    return re.sub(r" at step \d+$", "", reason) if status == "diverged" else reason


def outcome_warnings(store: Store, specs: list[dict]) -> list[str]:
    """One line per (status, reason) group of the grid's failed and diverged networks, and one for networks not
    simulated; empty when every network of ``specs`` is committed with status ok."""
    nets = store.networks()
    ids = {s["network_id"] for s in specs}
    nets = nets[nets.network_id.isin(ids)] if not nets.empty else nets
    lines = []
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for r in ([] if nets.empty else nets[nets.status != "ok"].itertuples()):
        groups[(r.status, _reason_key(r.status, str(r.reason)))].append(r)
    for (status, reason), members in sorted(groups.items(), key=lambda kv: (kv[0][0] != "failed", -len(kv[1]))):
        rules = ", ".join(sorted({str(m.rule) for m in members}))
        n = len(members)
        hint = ("; fix the cause and rerun with --retry-failed" if status == "failed" else
                "; that is the rule's outcome at that learning rate (kept; lower its lr in the grid to change it)")
        lines.append(f"{n} network{'s' if n != 1 else ''} {status}: {reason} (rule {rules}; e.g. "
                     f"{members[0].network_id}){hint}")
    missing = len(ids) - (0 if nets.empty else len(nets))
    if missing:
        lines.append(f"{missing} network(s) of the grid are not simulated; rerun the same command")
    return lines


def _results(jobs: list[tuple], root: str, n_jobs: int, backend: str, scheduler: str | None) -> Iterator[tuple]:
    """(network_id, status) of each network of each job ``(specs, stamps, wait)`` as its job finishes, from the
    chosen backend."""
    if backend == "sequential":
        for specs, stamps, wait in jobs:
            yield from _run_and_write(specs, root, stamps, wait)
        return
    tasks = [delayed(_run_and_write)(specs, root, stamps, wait) for specs, stamps, wait in jobs]
    if backend == "loky":
        for results in Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(tasks):
            yield from results
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the dask backend needs dask.distributed: pip install 'learnscope[dask]'") from None
    cluster = None if scheduler else LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        with parallel_config(backend="dask"):
            for results in Parallel(n_jobs=-1, return_as="generator_unordered")(tasks):
                yield from results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
