"""Ensemble simulation: networks of a grid that differ only in seed and learning rate train as one batched run.

Two networks of a grid can share one training run when their jobs (:func:`learnscope.identify.grid.expand`) agree
on everything but ``seed``, ``lr``, ``lr_multiplier`` and ``network_id`` (:func:`ensemble_key`): the same task,
architecture, rule and rule options, batch size, training settings and measurement conditions. Such networks have
the same parameter shapes and the same number of steps, so E of them train as one circuit with a leading ensemble
axis (:mod:`learnscope.circuits.base`): one batched forward / backward per step instead of E.

:class:`EnsembleTraining` is :func:`~learnscope.identify.simulation.training_checkpoints` for E members. Each
member is trained exactly as it would be alone:

- its initial parameters and backward matrices are drawn from *its own* ``rng.network_generator(seed_m, 0)``
  (one member at a time, then stacked), its data order from its own ``(seed_m, 1)`` — so a member's values do
  not depend on which other networks share its ensemble;
- the minibatch of member m at step s is ``x_train[idx_m]`` with its own permutation: ``x_train[idx]`` with
  ``idx (E, B)`` gives ``(E, B, *in_shape)``;
- its learning rate ``η_m`` is its own. :class:`~learnscope.plasticity.rules.Rule` takes one float ``lr``, so the
  rule runs with the member-independent part of the update and the parameter step is taken here from the
  optimiser's new state (:func:`member_lr_update`): with ``v`` the momentum buffer (``μv + g``, weight decay
  inside ``g``) and ``m̂, v̂`` Adam's moments,

  .. math::

      \\theta_m \\leftarrow \\theta_m - \\eta_m v_m \\quad(\\text{momentum; sgd is } \\mu = 0), \\qquad
      \\theta_m \\leftarrow \\theta_m - \\eta_m \\frac{m_m / (1-\\beta_1^t)}{\\sqrt{v_m / (1-\\beta_2^t)} + \\epsilon}
      \\quad(\\text{adam}),

  the same floating-point operations as :class:`~learnscope.plasticity.optimisers.Optimiser` with a float lr
  (the buffers do not depend on η: they are built from the gradients, which depend on η only through θ). Learned
  backward matrices (IA, KP) take the same step from their own buffers.

Divergence is per member: a member whose loss or parameters are not finite leaves the ensemble with the message
and step of the one-network path (``"non-finite loss or weights at step s"``, checked where that path checks: the
minibatch loss after every update, the parameters at the member's measured steps) and the others go on.

:func:`train_and_record_ensemble` is :func:`~learnscope.identify.simulation.train_and_record` for a group
(:func:`group_specs`): the members' task performance is evaluated in one batched call and their on-schedule
observables measured batched (:func:`record_members`, through ``simulation._record``'s ensemble form; each
condition's noise stream and unit subsets are the same for every network, so one draw serves all members); each
member's rows are yielded as soon as it is finished, for the simulator to commit it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.utils._pytree as pytree
from torch import Tensor

from learnscope import rng
from learnscope.errors import ConfigError
from learnscope.identify import simulation
from learnscope.identify.observables import Condition, measure_layer_members
from learnscope.identify.simulation import (
    Diverged,
    NetworkRecording,
    TrainingPoint,
    TrainingRun,
)
from learnscope.identify.training_task import Evaluation
from learnscope.plasticity.optimisers import safe_sqrt
from learnscope.plasticity.rules import Rule, RuleState
from learnscope.plasticity.transports import LEARNED_FEEDBACK
from learnscope.validation import check_positive_int

__all__ = [
    "MEMBER_KEYS",
    "EnsemblePoint",
    "EnsembleTraining",
    "ensemble_key",
    "group_specs",
    "member_lr_update",
    "stack_states",
    "train_and_record_ensemble",
]

MEMBER_KEYS: tuple[str, ...] = ("seed", "lr", "lr_multiplier", "network_id")
"""The keys of a job in which the members of one ensemble may differ; every other key must be equal."""


def ensemble_key(spec: dict) -> str:
    """The grouping key of a job: canonical JSON of every key except :data:`MEMBER_KEYS`.

    Two jobs with the same key share task, architecture, rule (and its options), batch size, training settings and
    conditions — everything but seed and learning rate — and so can train as one ensemble. A key that a future
    grid adds to its jobs separates them unless it is listed in :data:`MEMBER_KEYS`.
    """
    if not isinstance(spec, dict) or "network_id" not in spec:
        raise ConfigError("a job spec is the dict of learnscope.identify.grid.expand (with a 'network_id')")
    return json.dumps({k: v for k, v in spec.items() if k not in MEMBER_KEYS}, sort_keys=True, default=repr)


def group_specs(specs: Sequence[dict], max_members: int) -> list[list[dict]]:
    """Split jobs into ensembles of at most ``max_members`` compatible networks, deterministically.

    Jobs with one :func:`ensemble_key` form a family in the order they first appear in ``specs``; a family of ``n``
    jobs is cut, in its order, into ``k = ceil(n / max_members)`` consecutive groups whose sizes differ by at most
    one (the first ``n mod k`` get the extra member). ``max_members = 1`` gives one group per job (the
    one-network path). Returns the groups in family order; every job appears exactly once.
    """
    max_members = check_positive_int("max_members", max_members)
    families: dict[str, list[dict]] = {}
    for spec in specs:
        families.setdefault(ensemble_key(spec), []).append(spec)
    groups: list[list[dict]] = []
    for members in families.values():
        n = len(members)
        k = math.ceil(n / max_members)
        size, extra = divmod(n, k)
        start = 0
        for g in range(k):
            stop = start + size + (g < extra)
            groups.append(members[start:stop])
            start = stop
    return groups


# ---------------------------------------------------------------- stacking members


def _leaves(state: RuleState) -> tuple[list, pytree.TreeSpec]:
    return pytree.tree_flatten(state)


def stack_states(states: Sequence[RuleState]) -> RuleState:
    """E single-network :class:`RuleState` s → one with a leading ensemble axis (``None`` entries stay ``None``)."""
    flat = [_leaves(s) for s in states]
    spec = flat[0][1]
    if any(f[1] != spec for f in flat[1:]) or len({s.step for s in states}) != 1:
        raise ConfigError("the members' rule states differ in structure or step; they cannot form one ensemble")
    leaves = [None if ls[0] is None else torch.stack(ls) for ls in zip(*(f[0] for f in flat), strict=True)]
    return pytree.tree_unflatten(leaves, spec)


def _take(state: RuleState, index) -> RuleState:
    """Member(s) ``index`` of an ensemble state (an int drops the axis; a tensor of indices keeps it)."""
    return pytree.tree_map(lambda t: None if t is None else t[index], state)


# ---------------------------------------------------------------- per-member learning rates


def _lr_column(lr: Tensor, like: Tensor) -> Tensor:
    return lr.view(-1, *([1] * (like.ndim - 1)))


def _optimiser_step(rule: Rule, lr: Tensor, old: Sequence[Tensor | None], opt: dict, t: int) -> list[Tensor | None]:
    """The parameter step of ``rule``'s optimiser with per-member ``lr (E,)`` from its new buffers ``opt``."""
    if rule.optimiser in ("sgd", "momentum"):  # sgd runs as momentum with μ = 0 (see _lr_free_rule)
        return [None if p is None else p - _lr_column(lr, p) * v for p, v in zip(old, opt["v"], strict=True)]
    b1, b2 = rule.betas
    c1, c2 = 1 - b1**t, 1 - b2**t
    out: list[Tensor | None] = []
    for p, m, v in zip(old, opt["m"], opt["v"], strict=True):
        out.append(None if p is None else p - _lr_column(lr, p) * (m / c1) / (safe_sqrt(v / c2) + rule.eps))
    return out


def _lr_free_rule(rule: Rule) -> Rule:
    """The rule whose state update the ensemble uses: lr 1 (its own parameter step is discarded) and plain sgd as
    momentum with μ = 0, so the buffer ``v = 0·v + g`` holds the gradient (exactly, for finite values)."""
    if rule.optimiser == "sgd":
        return dataclasses.replace(rule, optimiser="momentum", momentum=0.0, lr=1.0)
    return dataclasses.replace(rule, lr=1.0)


def member_lr_update(rule: Rule, lr: Tensor, params: Sequence[Tensor], state: RuleState,
                     new_state: RuleState) -> tuple[list[Tensor], RuleState]:
    """Parameters and state after one step with per-member learning rates (see the module doc).

    rule : the members' rule (its own ``lr`` is ignored). lr : ``(E,)`` learning rates, the parameters' dtype.
    params, state : before the step (ensemble form). new_state : what ``_lr_free_rule(rule).step`` returned from
    them; its buffers are the optimiser's and do not depend on the learning rate.
    Returns ``(new_params, new_state)`` with learned backward matrices stepped by ``lr`` too.
    """
    t = new_state.step
    new_params = _optimiser_step(rule, lr, params, new_state.opt, t)
    if rule.transport in LEARNED_FEEDBACK:
        fb = tuple(_optimiser_step(rule, lr, state.feedback, new_state.feedback_opt, t))
        new_state = RuleState(fb, new_state.opt, new_state.feedback_opt, t)
    return new_params, new_state


# ---------------------------------------------------------------- the ensemble loop


@dataclass(frozen=True)
class EnsemblePoint:
    """What happens to the ensemble at one step (see :meth:`EnsembleTraining.__iter__`).

    Attributes:
        step: the optimisation step (0 = initialisation).
        points: ``{member: TrainingPoint}`` for the members that measure at this step (member = index into the
            runs given to :class:`EnsembleTraining`); each point holds that member's parameters and state alone
            (views into the ensemble's tensors; read them, do not modify them).
        diverged: ``{member: Diverged}`` for the members whose training stopped after this step's update (they
            are out of the ensemble from now on); the exception carries the one-network path's message and step.
        finished: the members whose training is complete at this step (the last step, for those still in).
    """

    step: int
    points: dict[int, TrainingPoint]
    diverged: dict[int, Diverged]
    finished: tuple[int, ...] = ()


def _check_members(runs: Sequence[TrainingRun]) -> None:
    if not runs:
        raise ConfigError("an ensemble needs at least one network")
    keys = {ensemble_key(r.spec) for r in runs}
    if len(keys) != 1:
        raise ConfigError("these networks cannot train as one ensemble: they differ in more than seed and learning "
                          "rate (group them with learnscope.identify.ensemble.group_specs)")
    first = runs[0]
    for r in runs[1:]:
        if r.total_steps != first.total_steps or not (r.steps == first.steps).all():
            raise ConfigError("the members of an ensemble must have the same steps and checkpoints")


class EnsembleTraining:
    """Train E compatible networks (:func:`ensemble_key`) as one ensemble; iterate for the measured steps.

    runs : one :class:`~learnscope.identify.simulation.TrainingRun` per member
        (:func:`~learnscope.identify.simulation.setup_training`); the task, circuit and loss of ``runs[0]`` are
        used for all (they are equal), each member keeps its own seed, learning rate and jittered steps.

    Iterating yields an :class:`EnsemblePoint` at every step where a member measures (its checkpoints ``steps``
    and its jittered steps) or diverges, in step order; member m's points are exactly those that
    ``training_checkpoints(runs[m])`` yields, with the same values up to the float rounding of batched kernels.
    :meth:`drop` takes a member out (e.g. when its consumer finds a non-finite evaluation). The state in a point
    is the rule's state for that member, except that a plain-``sgd`` member carries the buffer ``{"v": g}`` of
    the momentum-0 form it trains with (:func:`member_lr_update`) where alone it has ``{}``.
    """

    def __init__(self, runs: Sequence[TrainingRun]):
        runs = list(runs)
        _check_members(runs)
        self.runs = runs
        self.alive: list[int] = list(range(len(runs)))
        self._dropped: set[int] = set()

    def drop(self, member: int) -> None:
        """Stop training ``member`` (it gets no further points); the others are unaffected."""
        self._dropped.add(member)

    def __iter__(self) -> Iterator[EnsemblePoint]:
        runs, first = self.runs, self.runs[0]
        circuit, task, loss_fn, ttask = first.circuit, first.task, first.loss_fn, first.training_task
        rule = first.rule
        lr_rule = _lr_free_rule(rule)
        inits, states, order_gens, view_gens = [], [], [], []
        for r in runs:  # each member alone, exactly as training_checkpoints draws it
            init_gen = rng.network_generator(r.spec["seed"], 0)
            order_gens.append(rng.network_generator(r.spec["seed"], 1))
            view_gens.append(rng.torch_generator(r.spec["seed"], rng.IDENTIFY_TRAINING_VIEWS))
            p = circuit.init_params(init_gen)
            states.append(lr_rule.init_state(circuit, p, init_gen))  # same draws as r.rule's (lr-independent)
            inits.append(p)
        cur = _Members(params=[torch.stack(ps) for ps in zip(*inits, strict=True)], state=stack_states(states),
                       lr=torch.tensor([float(r.rule.lr) for r in runs], dtype=inits[0][0].dtype),
                       members=list(range(len(runs))), perms=[], order_gens=order_gens, view_gens=view_gens)

        n = task.x_train.shape[0]
        bs = min(first.spec["batch_size"], n)
        per_epoch = math.ceil(n / bs)
        total = first.total_steps
        ckpt_of_step = {int(s): i for i, s in enumerate(first.steps)}
        cur.perms = [torch.randperm(n, generator=g) for g in cur.order_gens]

        diverged: dict[int, Diverged] = {}
        for step in range(total + 1):
            cur = cur.without(self._dropped)
            measuring = [row for row, m in enumerate(cur.members)
                         if step in ckpt_of_step or step in runs[m].jittered]
            if step > 0 and measuring:  # the one-network path checks the parameters at its measured steps
                finite = _finite_members(cur.params)
                for row in measuring:
                    if not bool(finite[row]):
                        diverged[cur.members[row]] = Diverged(f"non-finite loss or weights at step {step}", step)
                cur = cur.without(diverged)
            points: dict[int, TrainingPoint] = {}
            for row, m in enumerate(cur.members):
                jit = runs[m].jittered.get(step, [])
                if step in ckpt_of_step or jit:
                    points[m] = TrainingPoint(step=step, fraction=step / total, checkpoint=ckpt_of_step.get(step),
                                              jittered=jit, params=[p[row] for p in cur.params],
                                              state=_take(cur.state, row))
            done = tuple(cur.members) if step == total else ()
            if points or diverged or done:
                yield EnsemblePoint(step, points, diverged, done)
            diverged = {}
            if step == total or not cur.members:
                return
            cur = cur.without(self._dropped)
            if not cur.members:
                return
            k = step % per_epoch
            if k == 0 and step > 0:
                cur.perms = [torch.randperm(n, generator=g) for g in cur.order_gens]
            idx = torch.stack([perm[k * bs:(k + 1) * bs] for perm in cur.perms])
            x, y = ttask.batch(task.x_train[idx], task.y_train[idx], cur.view_gens)
            before = cur.params
            _, new_state, info = lr_rule.step(circuit, cur.params, cur.state, x, y, loss_fn)
            cur.params, cur.state = member_lr_update(rule, cur.lr, cur.params, cur.state, new_state)
            loss_ok = torch.isfinite(torch.as_tensor(info["loss"])).reshape(-1).expand(len(cur.members))
            if not bool(loss_ok.all()):  # as the one-network path: step s = this update, or the last if θ was bad
                finite_before = _finite_members(before)
                for row in (~loss_ok).nonzero().reshape(-1).tolist():
                    s = step if step > 0 and not bool(finite_before[row]) else step + 1
                    diverged[cur.members[row]] = Diverged(f"non-finite loss or weights at step {s}", s)
                cur = cur.without(diverged)


def _finite_members(params: Sequence[Tensor]) -> Tensor:
    """``(E,)`` bool: whether every parameter of each member is finite."""
    ok = torch.isfinite(params[0]).flatten(1).all(1)
    for p in params[1:]:
        ok &= torch.isfinite(p).flatten(1).all(1)
    return ok


@dataclass
class _Members:
    """The members still training: ensemble row i is member ``members[i]``; everything else is per row."""

    params: list[Tensor]
    state: RuleState
    lr: Tensor
    members: list[int]
    perms: list[Tensor]
    order_gens: list[torch.Generator]
    view_gens: list[torch.Generator]

    def without(self, gone) -> _Members:
        """These rows less the members in ``gone`` (a set or dict of member indices); ``self`` if none leaves."""
        keep = [i for i, m in enumerate(self.members) if m not in gone]
        if len(keep) == len(self.members):
            return self
        index = torch.tensor(keep, dtype=torch.long)
        return _Members([p.index_select(0, index) for p in self.params], _take(self.state, index),
                        self.lr.index_select(0, index), [self.members[i] for i in keep],
                        [self.perms[i] for i in keep] if self.perms else [], [self.order_gens[i] for i in keep],
                        [self.view_gens[i] for i in keep])


# ---------------------------------------------------------------- training and recording a group of networks


def _stack(points: Sequence[TrainingPoint]) -> tuple[list[Tensor], list[Tensor | None]]:
    params = [torch.stack(ps) for ps in zip(*(pt.params for pt in points), strict=True)]
    fbs = [list(pt.state.feedback) for pt in points]
    feedback = [None if fs[0] is None else torch.stack(fs) for fs in zip(*fbs, strict=True)]
    return params, feedback


def _evaluate_members(run: TrainingRun, points: Sequence[TrainingPoint]) -> list[Evaluation]:
    """Each member's :class:`~learnscope.identify.training_task.Evaluation`, from one batched evaluation."""
    params, _ = _stack(points)
    ev = run.training_task.evaluate(run.circuit, params)
    return [Evaluation(ev.loss[j], ev.train_accuracy[j], ev.test_accuracy[j], ev.performance[j])
            for j in range(len(points))]


def record_members(circuit, params: list[Tensor], rule: Rule, feedback: list[Tensor | None], probe: Tensor,
                   conditions: list[tuple[int, Condition, int]], metas: list[dict], step: int, frac: float,
                   network_keys: list[int]) -> list[list[dict]]:
    """The ensemble form of ``learnscope.identify.simulation._record``: every layer's observables under the given
    conditions for E members at one common step, measured batched
    (:func:`~learnscope.identify.observables.measure_layer_members`); one list of rows per member, the rows that
    ``_record`` gives each member alone (same order, same values up to float rounding).

    params, feedback : ensemble form (leading E). metas, network_keys : one per member."""
    rows: list[list[dict]] = [[] for _ in metas]
    for layer, weight, x_in, out, forward_fn, feedback_fn in simulation.recorded_layers(circuit, params, rule,
                                                                                        feedback, probe):
        li = layer.index
        jacobians: dict = {}  # one backward pass per layer for the conditions that keep every unit
        for ci, cond, ckpt in conditions:
            noise = rng.network_generator(cond.seed, li, ckpt, ci)
            values = measure_layer_members(weight, x_in, out, forward_fn, cond, layer_fn_feedback=feedback_fn,
                                           noise_generator=noise,
                                           weight_layout="torch" if weight.ndim == 5 else "as_given",
                                           network_keys=network_keys, layer_index=li, session=ckpt,
                                           jacobians=jacobians)
            for j, v in enumerate(values):
                rows[j].append(metas[j] | {"layer": layer.name, "layer_index": li, "group": layer.group,
                                           "condition": cond.name, "checkpoint": ckpt, "step": step,
                                           "training_fraction": frac} | v)
    return rows


def _record_at_checkpoint(runs: Sequence[TrainingRun], points: Sequence[TrainingPoint],
                          recordings: Sequence[NetworkRecording]) -> list[list[dict]]:
    """The on-schedule rows of members at one common checkpoint, through ``simulation._record``'s ensemble form
    (looked up at call time, as the one-network path does)."""
    run = runs[0]
    params, feedback = _stack(points)
    on_schedule = [(ci, c, points[0].checkpoint) for ci, c in enumerate(run.conditions) if c.jitter == 0]
    return simulation._record(run.circuit, params, run.rule, feedback, run.task.probe, on_schedule,
                              [r.meta for r in recordings], points[0].step, points[0].fraction,
                              [r.network_key for r in runs])


def train_and_record_ensemble(specs: Sequence[dict]) -> Iterator[tuple[dict, dict, pd.DataFrame | None]]:
    """Train compatible networks (one :func:`ensemble_key`) as one ensemble and record each of them; yields
    ``(spec, network row, observation rows)`` for each network as soon as it is finished (diverged or failed
    ones first, the others together at the end of training).

    The rows are those of :func:`~learnscope.identify.simulation.train_and_record` for each network alone, up to
    the float rounding of batched kernels: training as :class:`EnsembleTraining`, the loss / accuracy /
    performance of the members evaluated in one batched call, the on-schedule observables measured with
    :func:`~learnscope.identify.observables.measure_layer_members` (jittered conditions member by member).
    ``wall_time_s`` is each network's share of the ensemble's wall time (elapsed until it finished / E).
    If the ensemble itself fails (an error outside one member's recording), the networks not yet finished are
    trained one at a time with ``train_and_record``, so they end exactly as they would alone.
    """
    torch.set_num_threads(1)
    specs = list(specs)
    t0 = time.perf_counter()
    recordings = [NetworkRecording(s) for s in specs]
    open_ = list(range(len(specs)))

    def done(m: int, result: tuple[dict, pd.DataFrame | None]) -> tuple[dict, dict, pd.DataFrame | None]:
        open_.remove(m)
        result[0]["wall_time_s"] = (time.perf_counter() - t0) / len(specs)
        return specs[m], result[0], result[1]

    runs: dict[int, TrainingRun] = {}
    for m, spec in enumerate(specs):  # a network that cannot be set up fails alone, as on the one-network path
        try:
            runs[m] = simulation.setup_training(spec)
            recordings[m].start(runs[m])
        except Exception as err:  # noqa: BLE001 - recorded, the others go on
            runs.pop(m, None)
            yield done(m, recordings[m].fail(err))
    if not runs:
        return
    index = list(runs)  # ensemble member i is network index[i]
    try:
        training = EnsembleTraining([runs[m] for m in index])
        first = runs[index[0]]
        for event in training:
            for i, err in event.diverged.items():
                yield done(index[i], recordings[index[i]].fail(err))
            at_checkpoint = [i for i, pt in event.points.items() if pt.checkpoint is not None]
            evaluations: dict[int, Evaluation] = {}
            recorded: dict[int, list[dict]] = {}
            if at_checkpoint:
                pts = [event.points[i] for i in at_checkpoint]
                evaluations = dict(zip(at_checkpoint, _evaluate_members(first, pts), strict=True))
                if any(c.jitter == 0 for c in first.conditions):
                    try:
                        recorded = dict(zip(at_checkpoint, _record_at_checkpoint(
                            [runs[index[i]] for i in at_checkpoint], pts,
                            [recordings[index[i]] for i in at_checkpoint]), strict=True))
                    except Exception:  # noqa: BLE001 - each member records alone below and fails as it would alone
                        recorded = {}
            for i, pt in event.points.items():
                try:
                    recordings[index[i]].measure(pt, evaluations.get(i), recorded.get(i))
                except Exception as err:  # noqa: BLE001 - one member's failure stops that member only
                    training.drop(i)
                    yield done(index[i], recordings[index[i]].fail(err))
            for i in event.finished:
                if index[i] in open_:
                    yield done(index[i], recordings[index[i]].finish())
    except Exception:  # noqa: BLE001 - the ensemble failed: the networks left train alone (the one-network path)
        for m in list(open_):
            row, obs = simulation.train_and_record(specs[m])
            open_.remove(m)
            yield specs[m], row, obs
