"""Simulation grids for ``learnscope identify simulate``: a TOML config in, a list of network job specs out.

Config tables::

    [grid]        tasks, architectures, rules, batch_sizes, learning_rates (multipliers of each rule's base lr),
                  seeds — the grid is their Cartesian product
    [training]    epochs, checkpoints (evenly spaced, including initialisation), weight_decay, n_train, n_probe,
                  lr_spread (default 1: none; s > 1 multiplies each network's lr by a log-uniform factor in
                  [1/s, s], as the original grid did with s = 2, so that learning speed alone does not name the rule)
    [rules.NAME]  parameters of a rule (lr = its base learning rate, momentum, ia_alpha, …)
    [[conditions]] measurement conditions (name, frac, sigma, noise_mode, seed, gradavg_mode, weight_norm_mode);
                  default: one clean condition

Architectures are names: ``mlp_3x256`` (3 hidden ReLU layers of 256 units), ``mlp_2x64``, … and ``cnn``
(the KNet-like 4-layer ConvNet). Every job spec is a plain JSON-serialisable dict with a stable ``network_id``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from learnscope.bundled import resolve_config_path
from learnscope.datasets import TASKS
from learnscope.errors import ConfigError, UnknownNameError, check_positive_int
from learnscope.identify.observables import Condition
from learnscope.plasticity.rules import RULES, make_rule

GRID_KEYS = ("tasks", "architectures", "rules", "batch_sizes", "learning_rates", "seeds")
TRAINING_KEYS = ("epochs", "checkpoints", "weight_decay", "n_train", "n_probe", "lr_spread")
SECTIONS = ("grid", "training", "rules", "conditions", "run")
# lr_spread (default 1) is not filled in, so grids without it keep their network ids
TRAINING_DEFAULTS = {"epochs": 15, "checkpoints": 21, "weight_decay": 1e-4, "n_train": 1400, "n_probe": 128}
DEFAULT_BASE_LR = {"adam": 1e-3}
_MLP = re.compile(r"^mlp_(\d+)x(\d+)$")


def check_architecture(name: str) -> str:
    if name == "cnn" or _MLP.match(name):
        return name
    raise UnknownNameError("architecture", name, ["cnn", "mlp_3x256", "mlp_3x64", "mlp_2x256", "mlp_4x128"])


def _list(table: dict, key: str, where: str) -> list:
    value = table.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"[{where}] {key} must be a non-empty list, got {value!r}")
    return value


def _check_keys(table: dict, valid, where: str) -> None:
    for key in table:
        if key not in valid:
            raise UnknownNameError(f"key in [{where}]", key, valid)


def parse_grid(raw: dict) -> dict:
    """Validate a grid config and return it fully resolved (defaults filled in); raises before any work."""
    _check_keys(raw, SECTIONS, "config (top-level table)")
    grid = raw.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("the config needs a [grid] table")
    _check_keys(grid, GRID_KEYS, "grid")
    tasks = _list(grid, "tasks", "grid")
    for t in tasks:
        if t not in TASKS:
            raise UnknownNameError("task", t, TASKS)
    archs = [check_architecture(a) for a in _list(grid, "architectures", "grid")]
    rules = _list(grid, "rules", "grid")
    for r in rules:
        if r not in RULES:
            raise UnknownNameError("rule", r, RULES)
    batch_sizes = [check_positive_int("grid.batch_sizes entry", b) for b in _list(grid, "batch_sizes", "grid")]
    lrs = grid.get("learning_rates", [1.0])
    if not isinstance(lrs, list) or not lrs:
        raise ConfigError(f"[grid] learning_rates must be a non-empty list of multipliers, got {lrs!r}")
    for m in lrs:
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not (0 < m < math.inf):
            raise ConfigError(f"[grid] learning_rates are multipliers of each rule's base lr, > 0; got {m!r}")
    seeds = _list(grid, "seeds", "grid")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"[grid] seeds must be integers >= 0, got {seeds!r}")
    for name, values in (("tasks", tasks), ("architectures", archs), ("rules", rules), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise ConfigError(f"[grid] {name} has duplicates: {values}")

    training = dict(TRAINING_DEFAULTS) | (raw.get("training") or {})
    _check_keys(training, TRAINING_KEYS, "training")
    for key in ("epochs", "checkpoints", "n_train", "n_probe"):
        check_positive_int(f"training.{key}", training[key])
    if training["checkpoints"] < 2:
        raise ConfigError("training.checkpoints must be >= 2 (initialisation and the end of training)")
    wd = training["weight_decay"]
    if isinstance(wd, bool) or not isinstance(wd, (int, float)) or wd < 0:
        raise ConfigError(f"training.weight_decay must be a number >= 0, got {wd!r}")
    spread = training.get("lr_spread", 1.0)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not (1 <= spread < math.inf):
        raise ConfigError(f"training.lr_spread must be a number >= 1 (1 = no spread), got {spread!r}")

    rule_tables = raw.get("rules") or {}
    _check_keys(rule_tables, RULES, "rules")
    resolved_rules = {}
    for r in rules:
        params = dict(rule_tables.get(r, {}))
        params.setdefault("lr", DEFAULT_BASE_LR.get(r, 1e-2))
        make_rule({"name": r, **params})  # validates names and values now
        resolved_rules[r] = params

    conditions_raw = raw.get("conditions") or [{"name": "clean"}]
    valid = [f.name for f in fields(Condition)]
    conditions = []
    for i, c in enumerate(conditions_raw):
        if not isinstance(c, dict):
            raise ConfigError(f"[[conditions]] entry {i + 1} must be a table")
        _check_keys(c, valid, f"conditions {i + 1}")
        conditions.append(asdict(Condition(**c)))
    names = [c["name"] for c in conditions]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[conditions]] names must be unique, got {names}")
    return {
        "grid": {"tasks": tasks, "architectures": archs, "rules": rules, "batch_sizes": batch_sizes,
                 "learning_rates": [float(m) for m in lrs], "seeds": seeds},
        "training": training,
        "rules": resolved_rules,
        "conditions": conditions,
    }


def load_grid(path: str | Path) -> dict:
    """Read and validate a grid config file (a path or the name of a bundled config)."""
    p = resolve_config_path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: not valid TOML ({err})") from None
    return parse_grid(raw)


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
    key = json.dumps([task, architecture, batch_size, multiplier, seed])
    words = np.frombuffer(hashlib.sha256(key.encode()).digest()[:16], dtype=np.uint32)
    u = np.random.default_rng(np.random.SeedSequence(words.tolist())).uniform(-1.0, 1.0)
    return float(spread ** u)


def expand(grid: dict) -> list[dict]:
    """One job spec per network of the grid, in a deterministic order."""
    g = grid["grid"]
    jobs = []
    for task, arch, rule, bs, mult, seed in itertools.product(
        g["tasks"], g["architectures"], g["rules"], g["batch_sizes"], g["learning_rates"], g["seeds"]
    ):
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
