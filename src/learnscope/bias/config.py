"""Experiment configs for ``learnscope bias run``: TOML in, validated and fully resolved config out.

A config has these tables (every key optional except where noted)::

    [run]       kind = "easiest" | "series" | "contrast", seeds = [0, 1], title, description
    [domain]    name = "sphere" | "disc" | "circle" | "hypercube" | "mnist01" + its parameters  (required)
    [target]    name = "uniform" | "gaussian" | "empirical" + its parameters          (default uniform[-1, 1])
    [learner]   name = "ridge" | "kernel_ridge" | "random_features" | "trained" | … | "small_cnn" + parameters
                (required)
    [learner_b] the second learner of a contrast (required for kind = "contrast")
    [meta]      kind = "mlp": hidden, layers, cos, tied; kind = "cnn" (image domains): channels, kernel, output
    [search]    every field of :class:`~learnscope.bias.search.SearchSettings`
    [[series]]  one table per function of a series: overrides of [search] for that function
    [analysis]  how found functions are judged (see :class:`AnalysisSettings`)

Unknown tables or keys raise :class:`~learnscope.errors.UnknownNameError` naming the nearest valid key;
``--set search.steps=50`` style overrides are applied before validation.

``search.meta_gradient`` (with ``search.segment`` / ``search.truncate``) is written into the tables of the run's
unrolled learners ([learner], [learner_b]) when the config is parsed, so the learners are built with that estimator
and the resolved config records it in both places (:func:`merge_meta_gradient`).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from learnscope.bias.search import UNROLLED_ESTIMATORS, SearchSettings, unrolled_only
from learnscope.bundled import read_config
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import Interval, check_constraints, check_keys, check_scalar, split_spec

KINDS = ("easiest", "series", "contrast")
SECTIONS = ("run", "domain", "target", "learner", "learner_b", "meta", "search", "series", "analysis")
RUN_KEYS = ("kind", "seeds", "title", "description")
META_KINDS = ("mlp", "cnn")
#: [meta] keys of each meta-learner kind (``kind`` itself defaults to "mlp").
META_KIND_KEYS = {"mlp": ("hidden", "layers", "cos", "tied"), "cnn": ("channels", "kernel", "output")}
META_KEYS = ("kind", *META_KIND_KEYS["mlp"], *META_KIND_KEYS["cnn"])
#: The numeric [analysis] keys and their allowed ranges.
ANALYSIS_CONSTRAINTS = {
    **{k: Interval(int, 1) for k in ("n_eval", "gen_draws")},
    **{k: Interval(int, 0) for k in ("max_degree", "gen_n_train", "gen_n_test")},
}


@dataclass
class AnalysisSettings:
    """How a found function is judged after training.

    n_eval : evaluation points for spectra, fits and overlaps (a Fibonacci lattice on S²).
    max_degree : highest harmonic degree (sphere) or frequency (circle) resolved; the rest is "remainder".
    gen_draws : independent (train, test) draws averaged in the few-shot generalisation error.
    gen_n_train, gen_n_test : sizes of those draws; 0 means "as in [search]" (n_train, n_test).
    compare : other learners (``[[analysis.compare]]`` tables, as ``[learner]``, with an optional ``label``) whose
        few-shot error on every found function is reported beside the learner's own (e.g. a spiking network's
        rate-based twin).
    """

    n_eval: int = 20000
    max_degree: int = 6
    gen_draws: int = 200
    gen_n_train: int = 0
    gen_n_test: int = 0
    compare: list = field(default_factory=list)

    def __post_init__(self) -> None:
        check_constraints(vars(self), ANALYSIS_CONSTRAINTS, prefix="analysis.")
        if not isinstance(self.compare, list) or not all(isinstance(c, dict) for c in self.compare):
            raise ConfigError("analysis.compare must be a list of learner tables ([[analysis.compare]])")


@dataclass
class ExperimentConfig:
    """A validated experiment: what :func:`learnscope.bias.experiment.run_experiment` executes."""

    kind: str
    seeds: list[int]
    domain: dict
    learner: dict
    target: dict = field(default_factory=lambda: {"name": "uniform"})
    learner_b: dict | None = None
    meta: dict = field(default_factory=dict)
    search: SearchSettings = field(default_factory=SearchSettings)
    series: list[SearchSettings] = field(default_factory=list)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    title: str = ""
    description: str = ""

    def function_settings(self) -> list[SearchSettings]:
        """Settings of each function to find: one for easiest/contrast, one per [[series]] table."""
        return self.series if self.kind == "series" else [self.search]

    def to_dict(self, domain: dict | None = None, target: dict | None = None, learners: tuple = ()) -> dict:
        """The fully resolved config as plain TOML-able data (resolved component descriptions if given)."""
        out: dict[str, Any] = {
            "run": {
                "kind": self.kind,
                "seeds": list(self.seeds),
                "title": self.title,
                "description": self.description,
            },
            "domain": domain or self.domain,
            "target": target or self.target,
            "learner": learners[0] if learners else self.learner,
            "meta": dict(self.meta),
            "search": asdict(self.search),
            "analysis": asdict(self.analysis),
        }
        if self.learner_b is not None:
            out["learner_b"] = learners[1] if len(learners) > 1 else self.learner_b
        if self.kind == "series":
            out["series"] = [asdict(s) for s in self.series]
        return _drop_none(out)


def _drop_none(value: Any) -> Any:
    """TOML has no null: a key whose value is None (a library default) is left out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _table(raw: dict, name: str, required: bool = False) -> dict:
    value = raw.get(name)
    if value is None:
        if required:
            raise ConfigError(f"the config needs a [{name}] table")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table, got {type(value).__name__}")
    return dict(value)


def _settings(table: dict, base: SearchSettings | None, where: str) -> SearchSettings:
    valid = [f.name for f in fields(SearchSettings)]
    check_keys(table, valid, f"key in [{where}]")
    merged = asdict(base) if base is not None else {}
    merged.update(table)
    try:
        return SearchSettings(**merged)
    except TypeError as err:  # a wrongly typed value that the dataclass could not take
        raise ConfigError(f"[{where}]: {err}") from None


#: The keys that [search] and an unrolled learner's table share (the estimator of the meta-gradient).
META_GRADIENT_KEYS = ("meta_gradient", "segment", "truncate")


def _learner_parameters(table: dict) -> list[str]:
    """The constructor arguments of the learner a table names (UnknownNameError for an unknown name)."""
    from learnscope.learners.base import init_parameters
    from learnscope.learners.registry import LEARNERS

    return init_parameters(LEARNERS[split_spec(table, "learner", LEARNERS)[0]])[0]


def merge_meta_gradient(search_table: dict, search: SearchSettings, learners: dict[str, dict | None]) -> SearchSettings:
    """Put the meta-gradient estimator of [search] into the tables of the run's unrolled learners (edited in place)
    and return the [search] settings that agree with them.

    search_table : the [search] table as written; search : its settings; learners : ``{"learner": table,
    "learner_b": table or None}``. A key (``meta_gradient``, ``segment``, ``truncate``) written in [search] goes into
    the table of every learner that takes it (trained, mushroom_body, spiking); a different value written there is a
    one-line ConfigError. A ``meta_gradient`` written only in the learners' tables (all alike) is taken into [search],
    so a resolved config parses to the same experiment. ``"checkpointed"``, ``"truncated"`` and ``"implicit"`` need
    at least one such learner; ``"es"`` leaves the tables alone (no autograd runs through them).
    """
    tables = {w: t for w, t in learners.items() if t is not None}
    keys = [k for k in META_GRADIENT_KEYS if k in search_table]
    if not keys and not any("meta_gradient" in t for t in tables.values()):
        return search  # "full", the default: the learners as written
    unrolled = {w: t for w, t in tables.items() if "meta_gradient" in _learner_parameters(t)}
    for where, t in unrolled.items() if search.meta_gradient != "es" else ():  # es: no autograd through them
        for k in keys:
            if k in t and t[k] != search_table[k]:
                raise ConfigError(f"[{where}] {k} = {t[k]!r} contradicts search.{k} = {search_table[k]!r}; set it "
                                  "once, in [search]")
    if not keys:
        written = {tuple(t.get(k) for k in META_GRADIENT_KEYS) for t in unrolled.values() if "meta_gradient" in t}
        if len(written) > 1:
            raise ConfigError("[learner] and [learner_b] set different meta_gradient estimators; set "
                              "search.meta_gradient once instead")
        if written:
            search = SearchSettings(**(asdict(search) | dict(zip(META_GRADIENT_KEYS, written.pop(), strict=True))))
    est = search.meta_gradient
    if est in UNROLLED_ESTIMATORS and not unrolled:
        first = tables["learner"]
        raise unrolled_only(est, str(first.get("name")), "steps" not in _learner_parameters(first))
    if est != "es":
        for t in unrolled.values():
            t["meta_gradient"] = est
            t.update({k: getattr(search, k) for k in ("segment", "truncate") if getattr(search, k) is not None})
    return search


def parse_config(raw: dict) -> ExperimentConfig:
    """Validate a config dictionary (as read from TOML) and return an :class:`ExperimentConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError("a config is a TOML document of tables")
    check_keys(raw, SECTIONS, "key in [config (top-level table)]")
    run = _table(raw, "run")
    check_keys(run, RUN_KEYS, "key in [run]")
    kind = run.get("kind", "easiest")
    if kind not in KINDS:
        raise UnknownNameError("run.kind", kind, KINDS)
    seeds = run.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"run.seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    for i, s in enumerate(seeds):
        check_scalar(f"run.seeds[{i}]", s, int, low=0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"run.seeds has duplicates: {seeds}")

    domain = _table(raw, "domain", required=True)
    learner = _table(raw, "learner", required=True)
    learner_b = _table(raw, "learner_b") or None
    if kind == "contrast" and learner_b is None:
        raise ConfigError(
            "run.kind = 'contrast' needs a [learner_b] table (the learner that should find it hard)"
        )
    if kind != "contrast" and learner_b is not None:
        raise ConfigError(f"[learner_b] is only used by run.kind = 'contrast', not {kind!r}")
    target = _table(raw, "target") or {"name": "uniform"}
    meta = _table(raw, "meta")
    check_keys(meta, META_KEYS, "key in [meta]")
    meta_kind = meta.get("kind", "mlp")
    if meta_kind not in META_KINDS:
        raise UnknownNameError("meta.kind", str(meta_kind), META_KINDS)
    for key in meta:
        if key != "kind" and key not in META_KIND_KEYS[meta_kind]:
            raise ConfigError(
                f"[meta] key {key!r} does not apply to meta.kind = {meta_kind!r} "
                f"(its keys: kind, {', '.join(META_KIND_KEYS[meta_kind])})"
            )
    search_table = _table(raw, "search")
    search = _settings(search_table, None, "search")
    search = merge_meta_gradient(search_table, search, {"learner": learner, "learner_b": learner_b})

    series_raw = raw.get("series", [])
    if kind == "series":
        if not isinstance(series_raw, list) or not series_raw:
            raise ConfigError("run.kind = 'series' needs one [[series]] table per function (at least one)")
        series = []
        for i, t in enumerate(series_raw):
            if not isinstance(t, dict):
                raise ConfigError(f"[[series]] entry {i + 1} must be a table")
            series.append(_settings(t, search, f"series {i + 1}"))
            est = series[-1].meta_gradient
            if est in UNROLLED_ESTIMATORS and not any(
                "meta_gradient" in _learner_parameters(lt) for lt in (learner, learner_b) if lt is not None
            ):
                raise unrolled_only(est, str(learner.get("name")), "steps" not in _learner_parameters(learner))
    else:
        if series_raw:
            raise ConfigError(f"[[series]] tables are only used by run.kind = 'series', not {kind!r}")
        series = []
    analysis_t = _table(raw, "analysis")
    check_keys(analysis_t, [f.name for f in fields(AnalysisSettings)], "key in [analysis]")
    analysis = AnalysisSettings(**analysis_t)
    return ExperimentConfig(
        kind=kind,
        seeds=list(seeds),
        domain=domain,
        learner=learner,
        target=target,
        learner_b=learner_b,
        meta=meta,
        search=search,
        series=series,
        analysis=analysis,
        title=str(run.get("title", "")),
        description=str(run.get("description", "")),
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``"search.steps=50"`` into (["search", "steps"], 50); values are TOML literals or bare strings."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value (e.g. search.steps=50), got {text!r}")
    key, value = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set has an empty key part in {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with each ``key.path=value`` applied (``series.2.steps=100`` indexes from 1)."""
    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = _list_item(node, part, path)
                continue
            if part not in node:
                if i == 0 and part not in SECTIONS:
                    raise UnknownNameError("config section in --set", part, SECTIONS)
                node[part] = {}
            node = node[part]
        last = path[-1]
        if isinstance(node, list):
            raise ConfigError(
                f"--set {'.'.join(path)}: name a key inside series entry {last}, e.g. series.{last}.steps"
            )
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[:-1])} is not a table")
        node[last] = value
    return out


def _list_item(node: list, part: str, path: list[str]) -> Any:
    if not part.isdigit() or not 1 <= int(part) <= len(node):
        raise ConfigError(f"--set {'.'.join(path)}: index {part!r} must be 1..{len(node)}")
    return node[int(part) - 1]


def load_config(
    name_or_path: str | Path, overrides: list[str] = (), seed: int | None = None
) -> ExperimentConfig:
    """Read, override and validate a config file (or bundled config name)."""
    raw = apply_overrides(read_config(name_or_path, "bias"), list(overrides))
    if seed is not None:
        raw.setdefault("run", {})["seeds"] = [seed]
    return parse_config(raw)
