"""Algorithm 1 on a learner we can differentiate — the hidden learner of a simulated animal (the truth a route is
checked against) or a fitted surrogate — and how close a route's f1 is to it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from learnscope.domains import Domain, Sphere

#: Algorithm 1's settings when the config gives none: the Fig 2 kernel settings of bias-spec, 8 learners per step.
DEFAULT_SEARCH = {"steps": 300, "n_test": 100, "learners_per_step": 8, "optimiser": "adagrad", "lr": 0.01,
                  "distance": "w2", "distance_on": "union", "dtype": "float64"}
DEFAULT_META = {"hidden": 64, "layers": 2, "cos": False}


def algorithm1_f1(learner: object, domain: Domain, n_train: int, *, search: dict | None = None,
                  meta: dict | None = None, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """The easiest function of ``learner`` by Algorithm 1 (:func:`learnscope.bias.search.find_easiest`) at
    ``n_train`` training points, target U[−1, 1]; returns ``f1(x (N, d)) -> (N,)``."""
    from learnscope.bias.experiment import meta_factory
    from learnscope.bias.search import SearchSettings, find_easiest
    from learnscope.targets import make_target

    settings = SearchSettings(**{**DEFAULT_SEARCH, "n_train": n_train, **(search or {})})
    make_meta = meta_factory({**DEFAULT_META, **(meta or {})}, domain)
    res = find_easiest(make_meta(), domain, learner, make_target("uniform"), settings, seeds=(seed,))
    return res.function.for_seed(0)


def algorithm1_series(learner: object, domain: Domain, n_train: int, count: int, *, search: dict | None = None,
                      meta: dict | None = None, seed: int = 0) -> list[Callable[[np.ndarray], np.ndarray]]:
    """A series f1, f2, … (``count`` functions, each orthogonal to the earlier ones by deflation) of ``learner``
    (:func:`learnscope.bias.search.find_series`)."""
    from learnscope.bias.experiment import meta_factory
    from learnscope.bias.search import SearchSettings, find_series
    from learnscope.targets import make_target

    settings = SearchSettings(**{**DEFAULT_SEARCH, "n_train": n_train, "orthogonality": "deflate", **(search or {})})
    make_meta = meta_factory({**DEFAULT_META, **(meta or {})}, domain)
    results = find_series(make_meta, domain, learner, make_target("uniform"), [settings] * count, seeds=(seed,))
    return [r.function.for_seed(0) for r in results]


def algorithm1_contrast(learner_a: object, learner_b: object, domain: Domain, n_train: int, *,
                        search: dict | None = None, meta: dict | None = None, seed: int = 0
                        ) -> Callable[[np.ndarray], np.ndarray]:
    """The function ``learner_a`` generalises well and ``learner_b`` badly
    (:func:`learnscope.bias.search.find_contrast`, ``search.contrast_objective`` as given, log-ratio by default)."""
    from learnscope.bias.experiment import meta_factory
    from learnscope.bias.search import SearchSettings, find_contrast
    from learnscope.targets import make_target

    settings = SearchSettings(**{**DEFAULT_SEARCH, "n_train": n_train, **(search or {})})
    make_meta = meta_factory({**DEFAULT_META, **(meta or {})}, domain)
    res = find_contrast(make_meta(), domain, learner_a, learner_b, make_target("uniform"), settings, seeds=(seed,))
    return res.function.for_seed(0)


def dominant_degree(f_values: np.ndarray, x: np.ndarray, d: int, share: float = 0.9) -> int | None:
    """The harmonic degree holding ≥ ``share`` of f's energy on S^{d−1} (f sampled at the points ``x``), else
    None. Degrees up to 6 on S², up to 3 above (the points must resolve every degree fitted)."""
    from learnscope.bias.measures import harmonic_energy

    e = harmonic_energy(lambda _points: f_values, d, max_degree=6 if d == 3 else 3, points=x)
    k = int(np.argmax(e[:-1]))
    return k if e[k] >= share else None


def degree_projection(f_values: np.ndarray, x: np.ndarray, d: int, degree: int) -> np.ndarray:
    """The least-squares projection of f (sampled at points ``x`` on S^{d−1}) on the harmonics of ``degree``
    (with a constant): the part of f in that eigenspace."""
    from learnscope.spherical import zonal_basis

    rng = np.random.default_rng(0)
    Q, _ = zonal_basis(x, degree, rng)
    A = np.c_[Q, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(A, f_values, rcond=None)
    return A @ coef


def agreement(estimate: np.ndarray, truth: np.ndarray, x: np.ndarray, domain: Domain,
              rotation_invariant: bool) -> float:
    """|corr| of a route's f1 with the white-box f1, both sampled at ``x``.

    For a rotation-invariant learner on the sphere the white-box f1 lies in a degenerate eigenspace (degree 1 has
    d functions): any direction in it is equally easy, and Algorithm 1 picks one by chance. Then the agreement is
    |corr| of the estimate with its projection on the harmonic degree that holds ≥ 90 % of the white-box f1's
    energy (the eigenspace, not one direction in it). Otherwise it is the plain |corr|.
    """
    if rotation_invariant and isinstance(domain, Sphere):
        k = dominant_degree(truth, x, domain.dim)
        if k is not None:
            return abs(float(np.corrcoef(estimate, degree_projection(estimate, x, domain.dim, k))[0, 1]))
    return abs(float(np.corrcoef(estimate, truth)[0, 1]))


def is_rotation_invariant(learner: object, domain: Domain) -> bool:
    """A dot-product kernel learner on the sphere (its kernel depends on x·x' only)."""
    from learnscope.learners.kernels import KernelRidge

    dot_product = {"arccos0", "arccos1", "nngp", "ntk", "rbf"}
    return isinstance(domain, Sphere) and isinstance(learner, KernelRidge) and learner.kernel in dot_product


def simulated_truth(cfg, route) -> dict:
    """Algorithm 1's f1 on the hidden learner of a simulated experiment, on the route's reference stimuli:
    ``{"values": (M,), "rotation_invariant": bool}`` (the n is the first stage's training-set size)."""
    from learnscope.learners.registry import make_learner

    learner = make_learner(dict(cfg.animal))
    n_train = route.search_stages[0].settings.n_train
    a1 = cfg.algorithm1 or {}
    f1 = algorithm1_f1(learner, route.domain, n_train, search=a1.get("search"), meta=a1.get("meta"), seed=cfg.seed)
    return {"values": f1(route.references), "rotation_invariant": is_rotation_invariant(learner, route.domain)}


def truth_agreement(estimate, route, truth: dict) -> dict[str, float | None]:
    """|corr| of each stage's current f1 with the white-box f1 (:func:`agreement`)."""
    out = {}
    for name, e in estimate.stages.items():
        out[name] = None if e.f1 is None else agreement(e.f1(route.references), truth["values"], route.references,
                                                         route.domain, truth["rotation_invariant"])
    return out
