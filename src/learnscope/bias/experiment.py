"""Run a validated :class:`~learnscope.bias.config.ExperimentConfig` end to end and judge what it found.

:func:`run_experiment` builds the domain, target, learner(s) and meta-learner from the config, runs
Algorithm 1 once (easiest / contrast) or once per function (series) for all seeds side by side (each seed's
result is exactly what it would be alone), then :func:`measure_functions` measures every found function on a fixed
evaluation set and checks it against simple baselines (``metrics["verdict"]``: ok, diverged or collapsed).
A series checkpoints each finished function into ``checkpoint_dir`` (atomically) and resumes from there; a damaged
checkpoint is a one-line :class:`~learnscope.errors.StoreError` that leaves the others in place.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learnscope import rng
from learnscope.bias import measures, verdict
from learnscope.bias.config import ExperimentConfig
from learnscope.bias.distances import SPREADS
from learnscope.bias.metalearner import MetaCNN, MetaMLP
from learnscope.bias.search import FoundFunction, SearchResult, SearchSettings, meta_train
from learnscope.domains import Circle, Disc, Domain, Sphere, SplitDataset, make_domain
from learnscope.errors import ConfigError, StoreError
from learnscope.fileio import atomic_path, shown
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


def _previous_digest(previous: list[FoundFunction]) -> str:
    """A hash of the earlier functions of a series (their parameters and coefficients): function k's checkpoint is
    only resumed on top of the very functions it was trained against."""
    h = hashlib.sha256()
    for fn in previous:
        for name, a in sorted(fn.state().items()):
            h.update(name.encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _save_function(path: Path, res: SearchResult, digest: str, previous: list[FoundFunction]) -> None:
    """Checkpoint one finished function atomically (:func:`learnscope.fileio.atomic_path`)."""
    arrays = {f"state_{k}": v for k, v in res.function.state().items()}
    arrays |= {f"history_{k}": v for k, v in res.history.items()}
    arrays["step_times_s"] = res.extra["step_times_s"]
    at = res.extra.get("diverged_at") or [None] * len(res.seeds)
    what = res.extra.get("diverged_what") or [None] * len(res.seeds)
    arrays["diverged_at"] = np.array([-1 if t is None else t for t in at], dtype=np.int64)
    arrays["diverged_what"] = np.array(["" if w is None else w for w in what])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, digest=np.array(digest), previous_digest=np.array(_previous_digest(previous)), **arrays)


#: What a damaged checkpoint raises on reading (a truncated or corrupt zip, a missing or malformed array).
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, IndexError)


def _damaged(path: Path, why: str) -> StoreError:
    return StoreError(
        f"checkpoint {shown(path)} is damaged ({why}); delete it and rerun the same command — that function is "
        "trained again and the other checkpoints are kept"
    )


def _load_function(
    path: Path,
    digest: str,
    meta: MetaMLP | MetaCNN,
    previous: list[FoundFunction],
    settings: SearchSettings,
    seeds: list[int],
) -> SearchResult | None:
    """The function saved in checkpoint ``path``, or None if it belongs to another experiment (digest differs) or was
    trained against other earlier functions.

    A file that cannot be read, or whose arrays do not fit this experiment (parameter shapes, S seeds, the steps
    of the history), raises a one-line :class:`~learnscope.errors.StoreError` naming it and the remedy.
    """
    S = len(seeds)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["digest"]) != digest or str(z["previous_digest"]) != _previous_digest(previous):
                return None
            params = [torch.from_numpy(z[f"state_param{i}"]) for i in range(len(meta.param_shapes()))]
            coef = torch.from_numpy(z["state_deflation_coef"]) if "state_deflation_coef" in z else None
            history = {k.removeprefix("history_"): z[k] for k in z if k.startswith("history_")}
            at = [None if t < 0 else int(t) for t in z["diverged_at"]] if "diverged_at" in z else [None] * S
            what = [str(w) or None for w in z["diverged_what"]] if "diverged_what" in z else [None] * S
            extra = {"step_times_s": z["step_times_s"], "resumed": True, "diverged_at": at, "diverged_what": what}
    except KeyError as err:
        raise _damaged(path, f"it has no array {err.args[0]!r}") from None
    except _UNREADABLE:
        raise _damaged(path, "truncated, or not an .npz file") from None
    for p, (shape, _) in zip(params, meta.param_shapes(), strict=True):
        if tuple(p.shape) != (S, *shape):
            raise _damaged(path, f"a parameter has shape {tuple(p.shape)}, expected {(S, *shape)}")
    if "loss" not in history or any(h.shape != (settings.steps, S) for h in history.values()) or len(at) != S:
        raise _damaged(path, f"its history does not cover {settings.steps} steps of {S} seeds")
    deflated = bool(previous) and settings.orthogonality == "deflate"
    if deflated != (coef is not None) or (coef is not None and tuple(coef.shape) != (S, len(previous))):
        raise _damaged(path, "its deflation coefficients do not match the earlier functions")
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
                _save_function(ckpt, res, digest, previous)
        result.functions.append(res)
    train_time = time.perf_counter() - t0
    measure_functions(result)
    result.metrics["train_wall_time_s"] = train_time
    return result


#: The seed of the evaluation set (``torch.Generator().manual_seed(12345)``), the first release's, kept so that every
#: reported number is measured on the same points as before.
EVALUATION_POINTS_SEED_OF_FIRST_RELEASE = 12345


def evaluation_points(domain: Domain, n: int, seed: int = EVALUATION_POINTS_SEED_OF_FIRST_RELEASE) -> np.ndarray:
    """A fixed, evenly spread evaluation set (:meth:`Domain.spread_sample`): shape ``(n, d)``, float64."""
    return domain.spread_sample(n, rng.offset_torch_generator(seed), dtype=torch.float64).numpy()


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
    on_test = measures.class_agreement(values[test], domain.labels[test], pair)
    return {
        "agreement": on_test["agreement"],
        "class_labelled_1": on_test["class_labelled_1"],
        "agreement_train_pool": measures.class_agreement(values[~test], domain.labels[~test], pair)["agreement"],
        "agreement_all": measures.class_agreement(values, domain.labels, pair)["agreement"],
    }


def _generalisation(
    learner: object, domain: Domain, f: Callable, values: np.ndarray, n_tr: int, n_te: int, draws: int, seed: int
) -> dict:
    """Few-shot error of a learner on a found function: fresh draws from the domain, or on a split dataset the
    learner trained on the pool and scored on the test set (``values``: the function on ``domain.points``)."""
    if isinstance(domain, SplitDataset):
        return measures.split_generalisation_error(learner, values, domain, n_tr, n_te, draws=draws, seed=seed)
    return measures.generalisation_error(learner, f, domain, n_tr, n_te, draws=draws, seed=seed)


#: The split-dataset control (true-class and random balanced labellings) draws the tasks seed 0's evaluation draws.
CONTROL_SEED = 0


def _split_control(
    learner: object, domain: SplitDataset, n_tr: int, n_te: int, draws: int, cache: dict[tuple[int, int], dict]
) -> dict:
    """The learner's few-shot error on the true-class labelling and on random balanced labellings
    (:func:`~learnscope.bias.measures.split_control_errors` with :data:`CONTROL_SEED`: the tasks of seed 0's
    evaluation), once per ``(n_tr, n_te)``: the yardsticks for the found labellings' ``gen_mse``."""
    if (n_tr, n_te) not in cache:
        cache[n_tr, n_te] = measures.split_control_errors(learner, domain, n_tr, n_te, draws=draws,
                                                          seed=CONTROL_SEED)
    return cache[n_tr, n_te]


def _final_loss(history: np.ndarray) -> float:
    """Mean of the last 10 finite losses of one seed (a diverged seed's history is NaN after it stopped)."""
    finite = history[np.isfinite(history)][-10:]
    return float(finite.mean()) if finite.size else float("nan")


def _measures(domain: Domain, points: np.ndarray, v: np.ndarray, f: Callable, an) -> dict:
    """Label statistics, linear fits and spectra of one labelling ``v`` on the evaluation points (NaN where the
    labelling is not finite or, for fits and spectra, constant)."""
    finite = bool(np.isfinite(v).all())
    m: dict = {"label_mean": float(v.mean()), "label_std": float(v.std())}
    varies = finite and m["label_std"] > 0
    if isinstance(domain, SplitDataset):
        m |= {"affine_r2": float("nan"), "linear_r2_no_bias": float("nan")}
        m |= _split_metrics(domain, v) if finite else {}
    else:
        nan_w = [float("nan")] * points.shape[1]
        m |= {
            "affine_r2": measures.affine_r2(points, v, bias=True) if varies else float("nan"),
            "linear_r2_no_bias": measures.affine_r2(points, v, bias=False) if varies else float("nan"),
            "linear_weights": measures.linear_fit(points, v, bias=True)[0].tolist() if finite else nan_w,
        }
    nonzero = finite and bool((v != 0).any())
    if isinstance(domain, Sphere):
        e = measures.harmonic_energy(f, domain.dim, an.max_degree, points=points) if nonzero else None
        m["degree_energy"] = e.tolist() if e is not None else [float("nan")] * (an.max_degree + 2)
    elif isinstance(domain, Circle):
        e = measures.fourier_energy(f, an.max_degree) if nonzero else None
        m["frequency_energy"] = e.tolist() if e is not None else [float("nan")] * (an.max_degree + 2)
    return m


_NAN_GEN = {"mse": float("nan"), "sem": float("nan"), "relative": float("nan"), "draws": 0}


def _overconnected_input(spec: dict, d: int) -> int | None:
    """The over-connected input of a mushroom-body learner spec with ``scheme = "overconnected"`` (the input of
    largest connection weight, if one is largest), else None."""
    if spec.get("name") != "mushroom_body" or spec.get("scheme") not in ("overconnected", 1):
        return None
    from learnscope.circuits.sparse import default_overconnected

    probs = spec.get("probs")
    p = np.asarray(probs, dtype=float) if probs is not None else default_overconnected(d).numpy()
    top = np.flatnonzero(p == p.max())
    return int(top[0]) if len(top) == 1 else None


def _input_dependence(comp: Components, learner: object, res: SearchResult, per_seed: list[dict], n_tr: int,
                      n_te: int, draws: int) -> dict:
    """Which inputs the found function depends on (domains of dimension > 3, which have no map).

    ``weights``: the affine fit's weight per input, per seed (``per_seed[i]["linear_weights"]``); ``norm_share``:
    |w_j| / ‖w‖₂ per seed and input. For a mushroom body with an over-connected input i, also ``overconnected_input``
    = i, ``share`` = |w_i| / ‖w‖₂ per seed, and ``paired``: the few-shot MSE of a random-wiring learner (the same
    learner with ``scheme = "random"``) minus that of the over-connected one, paired over the same tasks
    (:func:`~learnscope.bias.measures.paired_generalisation_difference`, ``analysis.gen_draws`` learners per seed,
    the tasks of the seed's own evaluation), per seed and pooled over every seed's learners.
    """
    weights = np.array([m["linear_weights"] for m in per_seed], dtype=float)
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.abs(weights) / norms
    out: dict = {"weights": weights.tolist(), "norm_share": share.tolist()}
    spec = _describe(comp.learner)
    i = _overconnected_input(spec, comp.domain.dim)
    if i is None:
        return out
    random_spec = spec | {"scheme": "random", "probs": None}
    random_learner = _evaluation_learner(make_learner(random_spec))
    rows, diffs = [], []
    for k, m in enumerate(per_seed):
        f = res.function.for_seed(k)
        p = measures.paired_generalisation_difference(learner, random_learner, f, comp.domain, n_tr, n_te,
                                                      draws=draws, seed=m["seed"])
        diffs.append(p.pop("differences"))
        rows.append({"seed": m["seed"], "mean_difference": p["mean_difference"], "sem": p["sem"], "n": p["n"],
                     "mse_overconnected": p["mse_a"], "mse_random": p["mse_b"]})
    pooled = np.concatenate(diffs)
    out |= {
        "overconnected_input": i,
        "share": share[:, i].tolist(),
        "paired": {
            "quantity": "few-shot test MSE of a random-wiring learner minus that of the over-connected learner, "
                        "on the same tasks",
            "learner_b": random_spec,
            "mean_difference": float(pooled.mean()),
            "sem": float(pooled.std(ddof=1) / math.sqrt(len(pooled))) if len(pooled) > 1 else float("nan"),
            "n": int(len(pooled)),
            "per_seed": rows,
        },
    }
    return out


def _verdict(checks: dict[str, dict[str, dict]], warnings: list[str], notes: list[str]) -> dict:
    """The run's verdict: the worst status over every function and seed, the warnings (the result failed a check),
    the notes (worth knowing, not a failure), the numbers compared and the thresholds."""
    statuses = {c["status"] for per_fn in checks.values() for c in per_fn.values()}
    status = "diverged" if "diverged" in statuses else "collapsed" if "collapsed" in statuses else "ok"
    return {
        "status": status,
        "warnings": warnings,
        "notes": notes,
        "checks": checks,
        "thresholds": {
            "collapse_std_fraction": verdict.COLLAPSE_STD_FRACTION,
            "collapse_w2_fraction_of_zero_labels": verdict.COLLAPSE_W2_FRACTION,
            "blowup_std_factor": verdict.BLOWUP_FACTOR,
            "noise_roughness": verdict.NOISE_ROUGHNESS,
            "baseline_sems": verdict.BASELINE_SEMS,
        },
    }


#: Draws of the few-shot MSE of each control function of the theory overlay (the found functions use
#: ``analysis.gen_draws``); with 20 controls this keeps the overlay within about a second per run.
THEORY_CONTROL_DRAWS = 50
#: Test points per task of each control function's few-shot MSE (at most; fewer where the run's n_test is smaller).
THEORY_CONTROL_TEST_POINTS = 60
#: Nyström samples of the theory overlay's spectrum for learners that are not a dot-product kernel on the sphere.
THEORY_NYSTROM_SAMPLES = 800


def kernel_type(learner: object, domain: Domain) -> bool:
    """Whether the eigenlearning overlay covers this learner on this domain: kernel ridge, random-feature ridge and
    linear ridge without an intercept (their spectra come from :func:`learnscope.theory.spectra.learner_spectrum`),
    not on a split dataset (whose few-shot tasks are not fresh draws from the domain)."""
    from learnscope.learners.kernels import KernelRidge
    from learnscope.learners.random_features import RandomFeatureRidge
    from learnscope.learners.ridge import Ridge

    if isinstance(learner, Ridge) and learner.bias:  # an unpenalised intercept is not a kernel
        return False
    return isinstance(learner, (KernelRidge, RandomFeatureRidge, Ridge)) and not isinstance(domain, SplitDataset)


def _has_quadrature(domain: Domain) -> bool:
    """Whether ``domain.spread_sample`` is a low-discrepancy set (S², the disc, the circle), not random draws."""
    return isinstance(domain, (Disc, Circle)) or (isinstance(domain, Sphere) and domain.dim == 3)


def _theory(result: ExperimentResult, learner_a: object, learner_b: object | None, target: Target | None,
            all_values: list[np.ndarray], functions_out: list[dict]) -> dict | None:
    """``metrics["theory"]``: the eigenlearning overlay (:func:`learnscope.theory.overlay.run_overlay`) of a
    kernel-type run, or None for other learners; ``{"available": False, "reason"}`` where the theory cannot be
    computed. The controls take the target's marginal (under a spread distance, which has no target: f1's own on the
    evaluation points, seed 0) and are measured as the found functions are, with :data:`THEORY_CONTROL_DRAWS` draws
    of at most :data:`THEORY_CONTROL_TEST_POINTS` test points and the first seed's tasks."""
    cfg, comp = result.config, result.components
    domain = comp.domain
    if not kernel_type(learner_a, domain) or (learner_b is not None and not kernel_type(learner_b, domain)):
        return None
    from learnscope.errors import LearnscopeError
    from learnscope.theory.overlay import run_overlay

    an = cfg.analysis
    n_train = [an.gen_n_train or res.settings.n_train for res in result.functions]
    n_te = an.gen_n_test or result.functions[0].settings.n_test
    if target is not None:
        def quantile(u: np.ndarray) -> np.ndarray:
            return target.quantile(torch.as_tensor(u, dtype=torch.float64)).numpy()
    else:
        reference = np.sort(all_values[0][0])

        def quantile(u: np.ndarray) -> np.ndarray:
            return np.quantile(reference, u)

    def measure(learner: object) -> Callable[[Callable], float]:
        return lambda g: measures.generalisation_error(learner, g, domain, n_train[0],
                                                       min(n_te, THEORY_CONTROL_TEST_POINTS),
                                                       draws=THEORY_CONTROL_DRAWS, seed=cfg.seeds[0],
                                                       batch=THEORY_CONTROL_DRAWS)["mse"]

    S = len(cfg.seeds)
    t0 = time.perf_counter()
    try:
        out = run_overlay(
            learner_a, domain, [[res.function.for_seed(i) for i in range(S)] for res in result.functions], n_train,
            [[m["gen_mse"] for m in fn["per_seed"]] for fn in functions_out], kind=cfg.kind,
            measure=measure(learner_a), quantile=quantile, learner_b=learner_b,
            measured_b=([[m["gen_mse_b"] for m in fn["per_seed"]] for fn in functions_out]
                        if learner_b is not None else None),
            measure_b=measure(learner_b) if learner_b is not None else None, seed=cfg.seeds[0],
            samples=THEORY_NYSTROM_SAMPLES, quadrature=_has_quadrature(domain),
        )
    except LearnscopeError as err:
        return {"available": False, "reason": str(err)}
    out["available"] = True
    out["seeds"] = list(cfg.seeds)
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def measure_functions(result: ExperimentResult) -> None:
    """Fill ``result.metrics`` and ``result.arrays`` with measurements of every found function and seed.

    Per function and seed: label mean/std; affine and no-bias linear R² with the linear weights; harmonic
    energy per degree (sphere) or Fourier energy per frequency (circle); few-shot generalisation error of
    the learner (and of learner B for a contrast, with the ratio B/A). For a series: the overlap matrix
    (cosine of the un-centred inner products) of the functions on the evaluation set, per seed. On a domain of
    dimension > 3 (no map), per function ``input_dependence`` (see :func:`_input_dependence`).

    Every seed is measured on its own: its values come from its own parameters and its few-shot tasks from its
    own seed's named streams (:data:`learnscope.rng.FEW_SHOT_TASKS`), so its numbers do not depend on the other
    seeds of the run.

    ``metrics["theory"]`` (kernel-type learners, :func:`kernel_type`): the eigenlearning overlay — the theory's
    ranking of eigenspaces, each function's energy in its predicted eigenspace, predicted vs measured few-shot MSE of
    the found functions and of random control functions, the optimality ratio, and for a contrast the predicted
    per-eigenspace ratio (:func:`learnscope.theory.overlay.run_overlay`).

    ``metrics["verdict"]``: every labelling checked against simple baselines
    (:func:`~learnscope.bias.verdict.check_labelling`): ``status`` "ok", "diverged" or "collapsed" (the worst over
    functions and seeds), ``warnings`` (one line each: the result failed a check), ``notes`` (one line each: a later
    function of a series that the learner generalises worse than the mean predictor), ``checks[f"f{k}"][str(seed)]``
    the numbers compared, and the ``thresholds``.

    On a :class:`~learnscope.domains.SplitDataset` (e.g. MNIST 0/1) the evaluation set is the dataset itself (pool,
    then test set); linear fits in pixel space are not made (R² entries are NaN); the few-shot error trains on the
    pool and scores the test set (:func:`~learnscope.bias.measures.split_generalisation_error`); and for two classes
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
    is_test = np.arange(len(points)) >= domain.n_pool if split else None
    result.eval_points = points
    learner_a = _evaluation_learner(comp.learner)
    learner_b = _evaluation_learner(comp.learner_b) if comp.learner_b is not None else None
    compared = comparison_learners(an.compare)
    target = None if any(st.distance in SPREADS for st in cfg.function_settings()) else comp.target
    S = len(cfg.seeds)
    functions_out = []
    all_values = []
    control_cache: dict[tuple[int, int], dict] = {}
    checks: dict[str, dict[str, dict]] = {}
    warnings: list[str] = []
    notes: list[str] = []
    for k, res in enumerate(result.functions):
        settings = res.settings
        n_tr = an.gen_n_train or settings.n_train
        n_te = an.gen_n_test or settings.n_test
        values = np.stack([res.function.for_seed(i)(points) for i in range(S)]).astype(np.float64)  # (S, n_eval)
        all_values.append(values)
        diverged_at = res.extra.get("diverged_at") or [None] * S
        diverged_what = res.extra.get("diverged_what") or [None] * S
        per_seed = []
        checks[f"f{k + 1}"] = {}
        for i, seed in enumerate(cfg.seeds):
            v = values[i]
            f = res.function.for_seed(i)
            m: dict = {"seed": seed}
            m |= _measures(domain, points, v, f, an)
            m["final_loss"] = _final_loss(res.history["loss"][:, i])
            usable = bool(np.isfinite(v).all() and (v != 0).any())
            gen_args = (domain, f, v, n_tr, n_te, an.gen_draws, seed)
            gen = _generalisation(learner_a, *gen_args) if usable else _NAN_GEN
            m["gen_mse"], m["gen_sem"], m["gen_relative"] = gen["mse"], gen["sem"], gen["relative"]
            if learner_b is not None:
                gb = _generalisation(learner_b, *gen_args) if usable else _NAN_GEN
                m["gen_mse_b"], m["gen_sem_b"] = gb["mse"], gb["sem"]
                m["gen_ratio_b_over_a"] = gb["mse"] / max(gen["mse"], 1e-300)
            if compared:
                m["compare"] = {label: (_generalisation(other, *gen_args) if usable else _NAN_GEN)["mse"]
                                for label, other in compared.items()}
            per_seed.append(m)
            baseline = (verdict.mean_predictor_mse(v, n_tr, test=is_test, pool_size=domain.n_pool) if split
                        else verdict.mean_predictor_mse(v, n_tr)) if np.isfinite(v).all() else float("nan")
            _, warns, nums = verdict.check_labelling(
                v, points, target, gen_mse=m["gen_mse"], gen_sem=m["gen_sem"], baseline_mse=baseline,
                diverged_at=diverged_at[i], diverged_what=diverged_what[i], label=f"f{k + 1} seed {seed}",
                baseline_warns=k == 0,
            )
            checks[f"f{k + 1}"][str(seed)] = nums
            warnings += warns
            notes += [nums["note"]] if "note" in nums else []
        keys = ["affine_r2", "linear_r2_no_bias", "label_std", "gen_mse", "gen_relative"]
        keys += ["agreement"] if "agreement" in per_seed[0] else []
        summary = {key: _summary([m.get(key, float("nan")) for m in per_seed]) for key in keys}
        if isinstance(domain, Sphere):
            for deg in range(min(an.max_degree, 4) + 1):
                summary[f"degree{deg}_energy"] = _summary([m["degree_energy"][deg] for m in per_seed])
        if learner_b is not None:
            summary["gen_ratio_b_over_a"] = _summary([m["gen_ratio_b_over_a"] for m in per_seed])
        for label in compared:
            summary[f"gen_mse_{label}"] = _summary([m["compare"][label] for m in per_seed])
        times = np.asarray(res.extra["step_times_s"], dtype=float)
        timed = times[3:] if np.isfinite(times[3:]).any() else times
        fn_out = {
            "index": k + 1,
            "steps": settings.steps,
            "ms_per_step_median": float(np.nanmedian(timed) * 1e3) if np.isfinite(timed).any() else float("nan"),
            "loop_s": float(np.nansum(times)),
            "resumed": bool(res.extra.get("resumed", False)),
            "per_seed": per_seed,
            "summary": summary,
        }
        control = _split_control(learner_a, domain, n_tr, n_te, an.gen_draws, control_cache) if split else {}
        if control:
            fn_out["control"] = control
        if not split and domain.dim > 3:
            fn_out["input_dependence"] = _input_dependence(comp, learner_a, res, per_seed, n_tr, n_te, an.gen_draws)
        functions_out.append(fn_out)
        result.arrays[f"f{k + 1}_values"] = values.astype(np.float32)
        for name, h in res.history.items():
            result.arrays[f"f{k + 1}_history_{name}"] = h
        for name, a in res.function.state().items():
            result.arrays[f"f{k + 1}_{name}"] = a
    result.arrays["eval_points"] = points.astype(np.float32)
    if split:
        result.arrays["eval_is_test"] = is_test
        if domain.labels is not None:
            result.arrays["eval_labels"] = np.asarray(domain.labels)
    result.metrics.update(
        {"kind": cfg.kind, "seeds": list(cfg.seeds), "title": cfg.title, "functions": functions_out,
         "verdict": _verdict(checks, warnings, notes)}
    )
    theory = None if split else _theory(result, learner_a, learner_b, target, all_values, functions_out)
    if theory is not None:
        result.metrics["theory"] = theory
    if len(all_values) > 1:
        stacked = np.stack(all_values, axis=1)  # (S, k, n_eval)
        overlaps = np.stack([measures.overlap_matrix(stacked[i]) for i in range(S)])
        result.arrays["overlap"] = overlaps
        off = overlaps[:, ~np.eye(len(all_values), dtype=bool)]
        result.metrics["overlap"] = {
            "per_seed": {str(s): overlaps[i].tolist() for i, s in enumerate(cfg.seeds)},
            "max_abs_off_diagonal": float(np.abs(off).max()),
        }
