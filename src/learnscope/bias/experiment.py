"""Run a validated :class:`~learnscope.bias.config.ExperimentConfig` end to end and judge what it found.

:func:`run_experiment` builds the domain, target, learner(s) and meta-learner from the config, runs
Algorithm 1 once (easiest / contrast) or once per function (series) for all seeds in one batched
computation, then :func:`evaluate` measures every found function on a fixed evaluation set.
A series checkpoints each finished function into ``checkpoint_dir`` and resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learnscope.bias import analysis
from learnscope.bias.config import ExperimentConfig
from learnscope.bias.metalearner import MetaCNN, MetaMLP
from learnscope.bias.search import FoundFunction, SearchResult, SearchSettings, meta_train
from learnscope.domains import Circle, Domain, Sphere, SplitDataset, make_domain
from learnscope.errors import ConfigError
from learnscope.learners.registry import make_learner
from learnscope.targets import Target, make_target


@dataclass
class Components:
    """The objects a config describes."""

    domain: Domain
    target: Target
    learner: object
    learner_b: object | None
    make_meta: Callable[[], MetaMLP | MetaCNN]

    def learner_specs(self) -> tuple[dict, ...]:
        out = [_describe(self.learner)]
        if self.learner_b is not None:
            out.append(_describe(self.learner_b))
        return tuple(out)


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns: the found functions, their metrics and arrays to save."""

    config: ExperimentConfig
    components: Components
    functions: list[SearchResult]
    metrics: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    eval_points: np.ndarray | None = None

    def resolved_config(self) -> dict:
        c = self.components
        return self.config.to_dict(_describe(c.domain), c.target.describe(), c.learner_specs())


def _describe(obj: object) -> dict:
    describe = getattr(obj, "describe", None)
    return describe() if callable(describe) else {"name": type(obj).__name__}


def meta_factory(table: dict, domain: Domain) -> Callable[[], MetaMLP | MetaCNN]:
    """A factory of fresh meta-learners from the ``[meta]`` table: an MLP (``kind = "mlp"``, default) or, on an
    image domain (one with ``image_shape``), a CNN (``kind = "cnn"``). Validates the values now."""
    kw = dict(table)
    kind = kw.pop("kind", "mlp")
    if kind == "cnn":
        shape = getattr(domain, "image_shape", None)
        if shape is None:
            raise ConfigError(
                f"meta.kind = 'cnn' needs an image domain (e.g. mnist01), not {domain.name!r}; use meta.kind = 'mlp'"
            )
        kw = {"channels": [16, 32], "kernel": 5, "output": "relu6"} | kw

        def make_cnn() -> MetaCNN:
            return MetaCNN(shape, **kw)

        make_cnn()
        return make_cnn
    kw = {"hidden": 150, "layers": 2, "cos": False, "tied": True} | kw

    def make_mlp() -> MetaMLP:
        return MetaMLP(domain.dim, **kw)

    make_mlp()
    return make_mlp


def _check_split_sizes(cfg: ExperimentConfig, domain: SplitDataset) -> None:
    """Every function's n_train / n_test (and the analysis sizes) must fit the domain's pool and test set."""
    for st in cfg.function_settings():
        sizes = [("search.n_train", st.n_train, domain.n_pool), ("search.n_test", st.n_test, domain.n_test),
                 ("analysis.gen_n_train", cfg.analysis.gen_n_train, domain.n_pool),
                 ("analysis.gen_n_test", cfg.analysis.gen_n_test, domain.n_test)]
        for key, n, have in sizes:
            if n > have:
                part = "training pool" if "train" in key else "test set"
                raise ConfigError(f"{key} = {n} exceeds the {have} points of the {part} of domain {domain.name!r}")


def build_components(cfg: ExperimentConfig) -> Components:
    """Domain, target, learners and a meta-learner factory from the config tables."""
    domain = make_domain(cfg.domain)
    target = make_target(cfg.target)
    learner = make_learner(cfg.learner)
    learner_b = make_learner(cfg.learner_b) if cfg.learner_b is not None else None
    make_meta = meta_factory(cfg.meta, domain)  # validates the [meta] values now, before any work
    if isinstance(domain, SplitDataset):
        _check_split_sizes(cfg, domain)
    comparison_learners(cfg.analysis.compare)  # and the [[analysis.compare]] learners
    return Components(domain, target, learner, learner_b, make_meta)


def config_digest(resolved: dict) -> str:
    """A short hash of a resolved config: a checkpoint is only resumed by the identical experiment."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_function(path: Path, res: SearchResult, digest: str) -> None:
    arrays = {f"state_{k}": v for k, v in res.function.state().items()}
    arrays |= {f"history_{k}": v for k, v in res.history.items()}
    arrays["step_times_s"] = res.extra["step_times_s"]
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, digest=np.array(digest), **arrays)
    tmp.replace(path)


def _load_function(
    path: Path,
    digest: str,
    meta: MetaMLP | MetaCNN,
    previous: list[FoundFunction],
    settings: SearchSettings,
    seeds: list[int],
) -> SearchResult | None:
    with np.load(path) as z:
        if str(z["digest"]) != digest:
            return None
        params = [
            torch.from_numpy(z[f"state_param{i}"]) for i in range(sum(k.startswith("state_param") for k in z))
        ]
        coef = torch.from_numpy(z["state_deflation_coef"]) if "state_deflation_coef" in z else None
        history = {k.removeprefix("history_"): z[k] for k in z if k.startswith("history_")}
        extra = {"step_times_s": z["step_times_s"], "resumed": True}
    fn = FoundFunction(meta, params, previous if coef is not None else (), coef, seeds)
    return SearchResult(fn, history, settings, seeds, extra=extra)


def run_experiment(
    cfg: ExperimentConfig,
    *,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    components: Components | None = None,
) -> ExperimentResult:
    """Find the function(s) the config asks for, for all its seeds, and evaluate them.

    progress : show a progress bar over meta-steps.
    checkpoint_dir : where finished functions of a series are saved; a rerun with the same resolved
        config loads them instead of training again.
    """
    comp = components or build_components(cfg)
    settings_list = cfg.function_settings()
    result = ExperimentResult(cfg, comp, [])
    digest = config_digest(result.resolved_config())
    t0 = time.perf_counter()
    for k, settings in enumerate(settings_list):
        previous = [r.function for r in result.functions]
        label = f"function {k + 1}/{len(settings_list)}" if len(settings_list) > 1 else "meta-steps"
        ckpt = checkpoint_dir / f"function_{k + 1}.npz" if checkpoint_dir is not None else None
        res = None
        if ckpt is not None and ckpt.is_file():
            res = _load_function(ckpt, digest, comp.make_meta(), previous, settings, cfg.seeds)
        if res is None:
            res = meta_train(
                comp.make_meta(),
                comp.domain,
                comp.learner,
                comp.target,
                settings,
                cfg.seeds,
                previous=previous,
                learner_b=comp.learner_b,
                progress=label if progress else False,
            )
            if ckpt is not None:
                _save_function(ckpt, res, digest)
        result.functions.append(res)
    train_time = time.perf_counter() - t0
    evaluate(result)
    result.metrics["train_wall_time_s"] = train_time
    return result


def evaluation_points(domain: Domain, n: int, seed: int = 12345) -> np.ndarray:
    """A fixed, evenly spread evaluation set (:meth:`Domain.spread_sample`): shape ``(n, d)``, float64."""
    return domain.spread_sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()


def _evaluation_learner(learner: object) -> object:
    """A learner of the same family that draws fresh randomness each call (fixed features are per run)."""
    spec = _describe(learner)
    if spec.get("resample") is False:
        return make_learner(spec | {"resample": True})
    return learner


def comparison_learners(specs: list[dict]) -> dict[str, object]:
    """``{label: learner}`` for the ``[[analysis.compare]]`` tables (label defaults to the learner's name)."""
    out = {}
    for spec in specs:
        spec = dict(spec)
        label = str(spec.pop("label", spec.get("name", "learner")))
        if label in out:
            raise ConfigError(f"analysis.compare has two learners labelled {label!r}; give each a distinct label")
        out[label] = _evaluation_learner(make_learner(spec))
    return out


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def _split_metrics(domain: SplitDataset, values: np.ndarray) -> dict:
    """Agreement of a labelling of a two-class :class:`SplitDataset` with the true classes (Fig 6), on the held-out
    test set (the headline), the training pool and all points."""
    if domain.labels is None:
        return {}
    pair = tuple(int(c) for c in np.unique(domain.labels))
    if len(pair) != 2:
        return {}
    test = np.arange(len(values)) >= domain.n_pool
    on_test = analysis.class_agreement(values[test], domain.labels[test], pair)
    return {
        "agreement": on_test["agreement"],
        "class_labelled_1": on_test["class_labelled_1"],
        "agreement_train_pool": analysis.class_agreement(values[~test], domain.labels[~test], pair)["agreement"],
        "agreement_all": analysis.class_agreement(values, domain.labels, pair)["agreement"],
    }


def _generalisation(
    learner: object, domain: Domain, f: Callable, values: np.ndarray, n_tr: int, n_te: int, draws: int, seed: int
) -> dict:
    """Few-shot error of a learner on a found function: fresh draws from the domain, or on a split dataset the
    learner trained on the pool and scored on the test set (``values``: the function on ``domain.points``)."""
    if isinstance(domain, SplitDataset):
        return analysis.split_generalisation_error(learner, values, domain, n_tr, n_te, draws=draws, seed=seed)
    return analysis.generalisation_error(learner, f, domain, n_tr, n_te, draws=draws, seed=seed)


def _split_control(
    learner: object, domain: SplitDataset, n_tr: int, n_te: int, draws: int, cache: dict[tuple[int, int], dict]
) -> dict:
    """The learner's few-shot error on the true-class labelling and on random balanced labellings
    (:func:`~learnscope.bias.analysis.split_control_errors`, seed 1000, the found labelling of seed 0's seed), once
    per ``(n_tr, n_te)``: the yardsticks for the found labellings' ``gen_mse``."""
    if (n_tr, n_te) not in cache:
        cache[n_tr, n_te] = analysis.split_control_errors(learner, domain, n_tr, n_te, draws=draws, seed=1000)
    return cache[n_tr, n_te]


def evaluate(result: ExperimentResult) -> None:
    """Fill ``result.metrics`` and ``result.arrays`` with measurements of every found function and seed.

    Per function and seed: label mean/std; affine and no-bias linear R² with the linear weights; harmonic
    energy per degree (sphere) or Fourier energy per frequency (circle); few-shot generalisation error of
    the learner (and of learner B for a contrast, with the ratio B/A). For a series: the overlap matrix
    (cosine of the un-centred inner products) of the functions on the evaluation set, per seed.

    On a :class:`~learnscope.domains.SplitDataset` (e.g. MNIST 0/1) the evaluation set is the dataset itself (pool,
    then test set); linear fits in pixel space are not made (R² entries are NaN); the few-shot error trains on the
    pool and scores the test set (:func:`~learnscope.bias.analysis.split_generalisation_error`); and for two classes
    the agreement with the true class at threshold 0.5 is reported (``agreement`` on the held-out test set,
    ``class_labelled_1``, ``agreement_train_pool``, ``agreement_all``), with, per function, the learner's few-shot
    error on the true-class labelling and on random balanced labellings (``control``: ``class_labelling`` and
    ``random_balanced``, each ``{"mse", "sem", "relative", "draws"}``) to set the found labelling's error against.
    """
    cfg, comp = result.config, result.components
    an = cfg.analysis
    domain = comp.domain
    split = isinstance(domain, SplitDataset)
    points = domain.points.double().numpy() if split else evaluation_points(domain, an.n_eval)
    result.eval_points = points
    learner_a = _evaluation_learner(comp.learner)
    learner_b = _evaluation_learner(comp.learner_b) if comp.learner_b is not None else None
    compared = comparison_learners(an.compare)
    S = len(cfg.seeds)
    x = torch.from_numpy(points).unsqueeze(0).expand(S, *points.shape)
    functions_out = []
    all_values = []
    control_cache: dict[tuple[int, int], dict] = {}
    for k, res in enumerate(result.functions):
        settings = res.settings
        n_tr = an.gen_n_train or settings.n_train
        n_te = an.gen_n_test or settings.n_test
        values = res.function(x).double().numpy()  # (S, n_eval)
        all_values.append(values)
        per_seed = []
        for i, seed in enumerate(cfg.seeds):
            v = values[i]
            f = res.function.for_seed(i)

            gen_args = (domain, f, v, n_tr, n_te, an.gen_draws, 1000 + seed)
            m: dict = {
                "seed": seed,
                "label_mean": float(v.mean()),
                "label_std": float(v.std()),
                "final_loss": float(res.history["loss"][-10:, i].mean()),
            }
            if split:
                m |= {"affine_r2": float("nan"), "linear_r2_no_bias": float("nan")} | _split_metrics(domain, v)
            else:
                m |= {
                    "affine_r2": analysis.affine_r2(points, v, bias=True),
                    "linear_r2_no_bias": analysis.affine_r2(points, v, bias=False),
                    "linear_weights": analysis.linear_fit(points, v, bias=True)[0].tolist(),
                }
            if isinstance(domain, Sphere):
                e = analysis.harmonic_energy(f, domain.dim, an.max_degree, points=points)
                m["degree_energy"] = e.tolist()
            elif isinstance(domain, Circle):
                m["frequency_energy"] = analysis.fourier_energy(f, an.max_degree).tolist()
            gen = _generalisation(learner_a, *gen_args)
            m["gen_mse"], m["gen_sem"], m["gen_relative"] = gen["mse"], gen["sem"], gen["relative"]
            if learner_b is not None:
                gb = _generalisation(learner_b, *gen_args)
                m["gen_mse_b"], m["gen_sem_b"] = gb["mse"], gb["sem"]
                m["gen_ratio_b_over_a"] = gb["mse"] / max(gen["mse"], 1e-300)
            if compared:
                m["compare"] = {label: _generalisation(other, *gen_args)["mse"] for label, other in compared.items()}
            per_seed.append(m)
        keys = ["affine_r2", "linear_r2_no_bias", "label_std", "gen_mse", "gen_relative"]
        keys += ["agreement"] if "agreement" in per_seed[0] else []
        summary = {key: _summary([m[key] for m in per_seed]) for key in keys}
        if isinstance(domain, Sphere):
            for deg in range(min(an.max_degree, 4) + 1):
                summary[f"degree{deg}_energy"] = _summary([m["degree_energy"][deg] for m in per_seed])
        if learner_b is not None:
            summary["gen_ratio_b_over_a"] = _summary([m["gen_ratio_b_over_a"] for m in per_seed])
        for label in compared:
            summary[f"gen_mse_{label}"] = _summary([m["compare"][label] for m in per_seed])
        times = res.extra["step_times_s"]
        fn_out = {
            "index": k + 1,
            "steps": settings.steps,
            "ms_per_step_median": float(np.median(times[3:] if len(times) > 3 else times) * 1e3),
            "loop_s": float(times.sum()),
            "resumed": bool(res.extra.get("resumed", False)),
            "per_seed": per_seed,
            "summary": summary,
        }
        control = _split_control(learner_a, domain, n_tr, n_te, an.gen_draws, control_cache) if split else {}
        if control:
            fn_out["control"] = control
        functions_out.append(fn_out)
        result.arrays[f"f{k + 1}_values"] = values.astype(np.float32)
        for name, h in res.history.items():
            result.arrays[f"f{k + 1}_history_{name}"] = h
        for name, a in res.function.state().items():
            result.arrays[f"f{k + 1}_{name}"] = a
    result.arrays["eval_points"] = points.astype(np.float32)
    if split:
        result.arrays["eval_is_test"] = np.arange(len(points)) >= domain.n_pool
        if domain.labels is not None:
            result.arrays["eval_labels"] = np.asarray(domain.labels)
    result.metrics.update(
        {"kind": cfg.kind, "seeds": list(cfg.seeds), "title": cfg.title, "functions": functions_out}
    )
    if len(all_values) > 1:
        stacked = np.stack(all_values, axis=1)  # (S, k, n_eval)
        overlaps = np.stack([analysis.overlap_matrix(stacked[i]) for i in range(S)])
        result.arrays["overlap"] = overlaps
        off = overlaps[:, ~np.eye(len(all_values), dtype=bool)]
        result.metrics["overlap"] = {
            "per_seed": {str(s): overlaps[i].tolist() for i, s in enumerate(cfg.seeds)},
            "max_abs_off_diagonal": float(np.abs(off).max()),
        }
