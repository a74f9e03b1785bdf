"""Simulation grids for ``learnscope identify simulate``: a TOML config in, a list of network job specs out.

Config tables::

    [grid]        tasks, architectures, rules, batch_sizes, learning_rates (multipliers of each rule's base lr),
                  seeds — the grid is their Cartesian product — and optionally exclude, a list of tables of
                  task / architecture / rule / batch_size / seed values whose networks are left out
    [training]    epochs, checkpoints (evenly spaced, including initialisation), weight_decay, n_train, n_probe,
                  lr_spread (default 1: none; s > 1 multiplies each network's lr by a log-uniform factor in
                  [1/s, s], as the original grid did with s = 2, so that learning speed alone does not name the rule)
    [rules.NAME]  parameters of a rule (lr = its base learning rate, momentum, ia_alpha, …)
    [[conditions]] measurement conditions (name, frac, sigma, noise_mode, seed, gradavg_mode, weight_norm_mode,
                  and the activity keys units, small_layers, matched, probes, activity_model, rate_scale, window,
                  tau, frames, amplitude, photons, baseline_frames, jitter, observables: see
                  :class:`~learnscope.identify.observables.Condition`); default: one clean condition. A condition
                  table keeps the activity keys only where they differ from their defaults.

A task is a dataset task (``digits``, ``mnist5k``, ``mnist1d``, ``teacher_classification``, ``teacher_regression``)
with an optional objective (``digits:contrastive``, ``mnist1d:autoencoding``; bare names are classification, or
regression for the teacher regression task), see :mod:`learnscope.identify.training_task`.

Architectures are ``cnn`` and ``cnn_deep`` (the KNet-like 4-layer and knetc4-like 5-layer ConvNets, for the tasks
with an image layout; :data:`CONV_ARCHITECTURES`), any ``mlp_<L>x<W>``
(L hidden ReLU layers of W units: ``mlp_3x256``, ``mlp_2x64``, …) or a list of hidden sizes (``[160, 80]``, named
``mlp_160-80`` in the store; a list of equal sizes is named ``mlp_<L>x<W>``, so ``[64, 64, 64]`` is ``mlp_3x64``).
Every job spec is a plain JSON-serialisable dict with a stable ``network_id`` (the ids of grids written with
architecture names are unchanged, so existing stores keep resuming).

:func:`parse_grid` rejects, before any work, every grid that cannot train: besides names and values, a training
with fewer optimisation steps than checkpoints at any batch size. :func:`check_feasible` goes further (it loads
the tasks): it builds every (task, architecture) circuit and takes one step of every rule on it, so impossible
pairs (``cnn`` with a task without an image layout, ``dfa`` on ``cnn``, ``n_train`` larger than a dataset) are
one error before the first network, not a store full of failed ones.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np

from learnscope import rng
from learnscope.bundled import read_config
from learnscope.errors import ConfigError, UnknownNameError, nearest_name
from learnscope.identify.conditions import check_probes
from learnscope.identify.objectives import check_task_entry
from learnscope.identify.observables import Condition, check_recordable
from learnscope.plasticity.rules import RULES, make_rule
from learnscope.validation import Interval, check_constraints, check_keys, check_scalar

GRID_KEYS = ("tasks", "architectures", "rules", "batch_sizes", "learning_rates", "seeds", "exclude")
#: The key of an ``exclude`` entry for each [grid] list it names a value of.
EXCLUDE_KEYS = {"task": "tasks", "architecture": "architectures", "rule": "rules", "batch_size": "batch_sizes",
                "seed": "seeds"}
TRAINING_KEYS = ("epochs", "checkpoints", "weight_decay", "n_train", "n_probe", "lr_spread")
SECTIONS = ("grid", "training", "rules", "conditions", "run")
# lr_spread (default 1) is not filled in, so grids without it keep their network ids
TRAINING_DEFAULTS = {"epochs": 15, "checkpoints": 21, "weight_decay": 1e-4, "n_train": 1400, "n_probe": 128}
# what each [training] value must be (checked by one loop, as scikit-learn's _parameter_constraints)
TRAINING_CONSTRAINTS = {
    "epochs": Interval(int, 1),
    "checkpoints": Interval(int, 2, note="initialisation and the end of training"),
    "n_train": Interval(int, 1),
    "n_probe": Interval(int, 1),
    "weight_decay": Interval(float, 0),
    "lr_spread": Interval(float, 1, note="1 = no spread"),
}
# what each entry of a [grid] list of numbers must be
GRID_ENTRY_CONSTRAINTS = {
    "batch_sizes": Interval(int, 1),
    "learning_rates": Interval(float, 0, closed="neither", note="a multiplier of each rule's base lr"),
    "seeds": Interval(int, 0),
}
DEFAULT_BASE_LR = {"adam": 1e-3}
_MLP = re.compile(r"^mlp_(\d+)x(\d+)$")
_MLP_SIZES = re.compile(r"^mlp_(\d+(?:-\d+)*)$")
_MLP_LOOSE = re.compile(r"^\s*mlp[\s_-]*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)
#: The convolutional architectures: name -> keyword arguments of :class:`~learnscope.circuits.ConvNet` (besides
#: in_shape and n_out). ``cnn`` is the KNet-like 4-layer net (2 conv + 2 dense, ConvNet's defaults); ``cnn_deep``
#: the knetc4-like 5-layer one (3 conv + 2 dense: conv1 early, conv2 middle, conv3, fc4, fc5 deep; three 2×2
#: pools take 8×8 digits to 1×1, 28×28 MNIST to 3×3, the (1, 1, 40) mnist1d signal to 1×5).
CONV_ARCHITECTURES: dict[str, dict] = {
    "cnn": {},
    "cnn_deep": {"channels": (16, 32, 64), "kernel": 3, "hidden": 64},
}
_ARCH_HELP = ("use 'cnn', 'cnn_deep', any 'mlp_<L>x<W>' (L hidden layers of W units, e.g. 'mlp_3x64') or a list "
              "of hidden sizes such as [160, 80]")


def is_convolutional(architecture: str) -> bool:
    """Whether an architecture name (as :func:`check_architecture` returns it) is a CNN, i.e. needs the task's
    image layout ``(C, H, W)`` instead of flat inputs: ``cnn`` and ``cnn_deep`` (:data:`CONV_ARCHITECTURES`)."""
    return architecture in CONV_ARCHITECTURES


def _unknown_architecture(name: object) -> UnknownNameError:
    conv = list(CONV_ARCHITECTURES)
    err = UnknownNameError("architecture", str(name), conv)
    hint = ""
    loose = _MLP_LOOSE.match(str(name))
    near = nearest_name(str(name), conv)
    if loose:
        hint = f"; did you mean 'mlp_{int(loose[1])}x{int(loose[2])}'?"
    elif near is not None:
        hint = f"; did you mean {near!r}?"
    err.args = (f"unknown architecture {name!r}{hint} ({_ARCH_HELP})",)
    return err


def _sizes_name(sizes: list[int]) -> str:
    if len(set(sizes)) == 1:
        return f"mlp_{len(sizes)}x{sizes[0]}"
    return "mlp_" + "-".join(str(w) for w in sizes)


def check_architecture(name: object) -> str:
    """The store name of an architecture entry of a grid: ``cnn``, ``cnn_deep``, ``mlp_<L>x<W>`` (kept exactly as
    written, so network ids do not change), or a list of hidden sizes / ``mlp_<w1>-<w2>-…`` (named by
    :func:`_sizes_name`)."""
    if isinstance(name, list):
        if not name:
            raise ConfigError(f"[grid] architecture [] lists no hidden layer ({_ARCH_HELP})")
        for i, w in enumerate(name):
            check_scalar(f"[grid] architecture {name!r}: hidden width [{i}]", w, int, low=1, note=_ARCH_HELP)
        return _sizes_name([int(w) for w in name])
    if not isinstance(name, str):
        raise _unknown_architecture(name)
    if is_convolutional(name):
        return name
    m = _MLP.match(name)
    if m:
        if int(m[2]) == 0:
            raise ConfigError(f"[grid] architecture {name!r} has hidden layers of width 0; use a width >= 1")
        return name
    m = _MLP_SIZES.match(name)
    if m:
        sizes = [int(w) for w in m[1].split("-")]
        if min(sizes) == 0:
            raise ConfigError(f"[grid] architecture {name!r} has a hidden layer of width 0; use widths >= 1")
        return _sizes_name(sizes)
    raise _unknown_architecture(name)


def hidden_sizes(architecture: str) -> list[int] | None:
    """The hidden-layer widths of an MLP architecture name (``mlp_3x64`` -> [64, 64, 64]); ``None`` for a CNN
    (:func:`is_convolutional`)."""
    if is_convolutional(architecture):
        return None
    m = _MLP.match(architecture)
    if m:
        return [int(m[2])] * int(m[1])
    m = _MLP_SIZES.match(architecture)
    if m:
        return [int(w) for w in m[1].split("-")]
    raise _unknown_architecture(architecture)


def circuit_for(architecture: str, input_shape: tuple[int, ...], n_out: int):
    """The circuit an architecture name describes for inputs of ``input_shape`` and ``n_out`` outputs (a CNN
    needs the image layout ``(C, H, W)``, an MLP takes any shape and flattens it)."""
    from learnscope.circuits import MLP, ConvNet

    sizes = hidden_sizes(architecture)
    if sizes is None:
        return ConvNet(in_shape=tuple(input_shape), n_out=n_out, **CONV_ARCHITECTURES[architecture])
    return MLP([int(np.prod(input_shape)), *sizes, n_out])


def _list(table: dict, key: str, where: str) -> list:
    value = table.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"[{where}] {key} must be a non-empty list, got {value!r}")
    return value


def _entries(grid: dict, key: str) -> list:
    """The checked entries of the [grid] list ``key`` (see :data:`GRID_ENTRY_CONSTRAINTS`)."""
    rule = GRID_ENTRY_CONSTRAINTS[key]
    return [rule.check(f"grid.{key}[{i}]", v) for i, v in enumerate(_list(grid, key, "grid"))]


def parse_grid(raw: dict) -> dict:
    """Validate a grid config and return it fully resolved (defaults filled in); raises before any work."""
    check_keys(raw, SECTIONS, "key in [config (top-level table)]")
    grid = raw.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("the config needs a [grid] table")
    check_keys(grid, GRID_KEYS, "key in [grid]")
    tasks = _list(grid, "tasks", "grid")
    for t in tasks:
        check_task_entry(t)
    archs = [check_architecture(a) for a in _list(grid, "architectures", "grid")]
    rules = _list(grid, "rules", "grid")
    for r in rules:
        if r not in RULES:
            raise UnknownNameError("rule", r, RULES)
    batch_sizes = _entries(grid, "batch_sizes")
    lrs = _entries({"learning_rates": [1.0]} | grid, "learning_rates")
    seeds = _entries(grid, "seeds")
    for name, values in (("tasks", tasks), ("architectures", archs), ("rules", rules), ("seeds", seeds),
                         ("batch_sizes", batch_sizes)):
        if len(set(values)) != len(values):
            raise ConfigError(f"[grid] {name} has duplicates: {values}")

    training = dict(TRAINING_DEFAULTS) | (raw.get("training") or {})
    check_keys(training, TRAINING_KEYS, "key in [training]")
    check_constraints(training, TRAINING_CONSTRAINTS, prefix="training.")
    _check_steps(batch_sizes, training)

    rule_tables = raw.get("rules") or {}
    check_keys(rule_tables, RULES, "key in [rules]")
    resolved_rules = {}
    for r in rules:
        params = dict(rule_tables.get(r, {}))
        params.setdefault("lr", DEFAULT_BASE_LR.get(r, 1e-2))
        make_rule({"name": r, **params})  # validates names and values now
        resolved_rules[r] = params

    conditions_raw = raw.get("conditions") or [{"name": "clean"}]
    conditions = []
    for i, c in enumerate(conditions_raw):
        if not isinstance(c, dict):
            raise ConfigError(f"[[conditions]] entry {i + 1} must be a table")
        cond = Condition.from_table(c, where=f"conditions {i + 1}")
        _check_units_fit(cond, archs, training["n_probe"])
        conditions.append(cond.table())
    names = [c["name"] for c in conditions]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[conditions]] names must be unique, got {names}")
    resolved_grid = {"tasks": tasks, "architectures": archs, "rules": rules, "batch_sizes": batch_sizes,
                     "learning_rates": [float(m) for m in lrs], "seeds": seeds}
    exclude = _exclusions(grid.get("exclude"), resolved_grid)
    if exclude:  # only then: grids without it keep their store meta, so their stores keep resuming
        resolved_grid["exclude"] = exclude
    parsed = {"grid": resolved_grid, "training": training, "rules": resolved_rules, "conditions": conditions}
    if exclude and not expand(parsed):
        raise ConfigError("[grid] exclude leaves no network to train; remove an exclude entry")
    return parsed


def _exclusions(raw: object, grid: dict) -> list[dict]:
    """The checked ``exclude`` entries of [grid]: tables of some of ``task``, ``architecture``, ``rule``,
    ``batch_size``, ``seed``, each value one of the grid's; a network matching every key of an entry is left out
    (e.g. ``{ task = "teacher_regression", architecture = "cnn" }``: the teacher has no image layout)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"[grid] exclude must be a list of tables such as {{ task = \"teacher_regression\", "
                          f"architecture = \"cnn\" }}, got {raw!r}")
    out = []
    for i, entry in enumerate(raw):
        where = f"[grid] exclude entry {i + 1}"
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"{where} must be a non-empty table of {', '.join(EXCLUDE_KEYS)}, got {entry!r}")
        check_keys(entry, tuple(EXCLUDE_KEYS), f"key in {where}")
        checked = {}
        for key, value in entry.items():
            value = check_architecture(value) if key == "architecture" else value
            if value not in grid[EXCLUDE_KEYS[key]]:
                raise ConfigError(f"{where}: {key} {value!r} is not in [grid] {EXCLUDE_KEYS[key]} "
                                  f"{grid[EXCLUDE_KEYS[key]]}; it would exclude nothing")
            checked[key] = value
        out.append(checked)
    return out


def is_excluded(exclude: list[dict], **values: object) -> bool:
    """Whether a network (or a partial one: the keys given) matches an ``exclude`` entry on all of its keys; an
    entry naming a key not given does not match."""
    return any(all(k in values and values[k] == v for k, v in entry.items()) for entry in exclude)


def _check_units_fit(cond: Condition, archs: list[str], n_probe: int) -> None:
    """What :func:`parse_grid` can check of a condition's unit and probe counts without loading a task: probes
    against ``training.n_probe``, and ``units`` (with ``small_layers = "error"``) against every hidden width of the
    MLPs. :func:`check_feasible` checks every recorded tensor (input, readout, conv layers)."""
    check_probes(cond, n_probe)
    if cond.units is None or cond.small_layers == "all":
        return
    for arch in archs:
        sizes = hidden_sizes(arch)
        for i, width in enumerate(sizes or []):
            if cond.units > width:
                raise ConfigError(f"condition {cond.name!r}: units = {cond.units} is more than the {width} units of "
                                  f"hidden layer {i + 1} of architecture {arch!r}; lower units or set small_layers = "
                                  "\"all\" to record every unit of smaller layers")


def _check_steps(batch_sizes: list[int], training: dict) -> None:
    """Refuse a training with fewer optimisation steps than checkpoints at any batch size of the grid.

    A network of batch size b takes ``epochs · ⌈n / min(b, n)⌉`` steps (n = ``n_train``, the same for every task),
    and its C checkpoints sit at distinct steps ``round(linspace(0, steps, C))`` only if ``steps >= C − 1``."""
    n, epochs, checkpoints = training["n_train"], training["epochs"], training["checkpoints"]
    short = []
    for bs in batch_sizes:
        per_epoch = math.ceil(n / min(bs, n))
        if epochs * per_epoch + 1 < checkpoints:
            short.append((bs, per_epoch))
    if not short:
        return
    bs, per_epoch = max(short)  # the largest batch takes the fewest steps
    total = epochs * per_epoch
    need = math.ceil((checkpoints - 1) / per_epoch)
    others = f" (also at batch size(s) {', '.join(str(b) for b, _ in sorted(short)[:-1])})" if len(short) > 1 else ""
    raise ConfigError(
        f"at batch size {bs}, {epochs} epoch(s) of {n} samples is {total} optimisation steps, too few for the "
        f"{checkpoints} checkpoints (they need >= {checkpoints - 1} steps){others}; raise training.epochs to "
        f"{need} or lower training.checkpoints to {total + 1}"
    )


def check_feasible(grid: dict) -> None:
    """Build every (task, architecture) circuit of a parsed grid and take one training step of every rule on it.

    Loads each task once (seconds for the MNIST tasks). Raises :class:`ConfigError` naming the combination for
    anything that would make its networks fail: ``cnn`` with a task without an image layout, ``n_train`` or
    ``n_probe`` larger than a dataset, a rule that a circuit does not support (``dfa`` on ``cnn``), …"""
    import torch

    from learnscope.errors import LearnscopeError
    from learnscope.identify.training_task import training_task

    g, tr = grid["grid"], grid["training"]
    conditions = [Condition(**c) for c in grid["conditions"]]
    exclude = g.get("exclude", [])
    for task_name in g["tasks"]:
        archs = [a for a in g["architectures"] if not is_excluded(exclude, task=task_name, architecture=a)]
        for image in sorted({is_convolutional(a) for a in archs}):
            try:
                ttask = training_task(task_name, n_train=tr["n_train"], n_probe=tr["n_probe"], image=image)
                task = ttask.data
            except LearnscopeError as err:
                if image and "image layout" in str(err):
                    conv = ", ".join(repr(a) for a in archs if is_convolutional(a))
                    raise ConfigError(f"[grid] architecture {conv} needs a task with an image layout and task "
                                      f"{task_name!r} has none ({err}); remove one of them from the grid or leave the "
                                      f"pair out with [grid] exclude = [{{ task = \"{task_name}\", architecture = "
                                      f"\"{next(a for a in archs if is_convolutional(a))}\" }}]") from None
                raise ConfigError(f"[grid] task {task_name!r}: {err}") from None
            x, y = ttask.batch(task.x_train[:2], task.y_train[:2], torch.Generator().manual_seed(0))
            for arch in (a for a in archs if is_convolutional(a) == image):
                for rule in (r for r in g["rules"] if not is_excluded(exclude, task=task_name, architecture=arch,
                                                                       rule=r)):
                    where = f"[grid] rule {rule!r} on architecture {arch!r} for task {task_name!r}"
                    try:
                        circuit = ttask.circuit(arch)
                        gen = torch.Generator().manual_seed(0)
                        params = circuit.init_params(gen)
                        r = make_rule({"name": rule, "weight_decay": tr["weight_decay"], **grid["rules"][rule]})
                        state = r.init_state(circuit, params, gen)
                        with torch.no_grad():
                            _, records = circuit.forward(params, task.probe[:2], record=True)
                        r.step(circuit, params, state, x, y, ttask.loss_fn)
                    except LearnscopeError as err:
                        raise ConfigError(f"{where}: {err}") from None
                    except Exception as err:  # noqa: BLE001 - any failure here would fail every such network
                        raise ConfigError(f"{where} cannot train: {type(err).__name__}: {err}") from None
                    for layer in circuit.layers:
                        rec = records[layer.index]
                        for cond in conditions:
                            check_recordable(cond, f"layer {layer.name!r} of architecture {arch!r} for task "
                                                   f"{task_name!r}", act_units=rec["output"][0].numel(),
                                             in_units=rec["input"][0].numel(),
                                             synapses=params[2 * layer.index].numel(), n_probe=tr["n_probe"])


def load_grid(path: str | Path) -> dict:
    """Read and validate a grid config file (a path or the name of a bundled identify config)."""
    return parse_grid(read_config(path, "identify"))


def network_id(spec: dict) -> str:
    """A stable id of a network from everything that determines its training."""
    keys = ("task", "architecture", "rule", "batch_size", "lr", "seed", "rule_params", "training")
    blob = json.dumps({k: spec[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lr_jitter(spread: float, task: str, architecture: str, batch_size: int, multiplier: float, seed: int) -> float:
    """The log-uniform lr factor in ``[1/spread, spread]`` of one grid cell; 1 when ``spread == 1``.

    Drawn from a generator keyed by everything but the rule, so the rules of one cell share their factor (a paired
    design: rules are compared at the same relative learning rate)."""
    if spread == 1:
        return 1.0
    u = rng.hashed_numpy_rng(task, architecture, batch_size, multiplier, seed).uniform(-1.0, 1.0)
    return float(spread ** u)


def expand(grid: dict) -> list[dict]:
    """One job spec per network of the grid, in a deterministic order."""
    g = grid["grid"]
    jobs = []
    for task, arch, rule, bs, mult, seed in itertools.product(
        g["tasks"], g["architectures"], g["rules"], g["batch_sizes"], g["learning_rates"], g["seeds"]
    ):
        if is_excluded(g.get("exclude", []), task=task, architecture=arch, rule=rule, batch_size=bs, seed=seed):
            continue
        params = dict(grid["rules"][rule])
        base_lr = params.pop("lr")
        mult = mult * lr_jitter(grid["training"].get("lr_spread", 1.0), task, arch, bs, mult, seed)
        spec = {
            "task": task, "architecture": arch, "rule": rule, "batch_size": bs, "lr_multiplier": mult,
            "lr": base_lr * mult, "seed": seed, "rule_params": params, "training": grid["training"],
            "conditions": grid["conditions"],
        }
        spec["network_id"] = network_id(spec)
        jobs.append(spec)
    return jobs
