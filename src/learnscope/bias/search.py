"""Algorithm 1: meta-learn the functions a learner generalises best (Dorrell, Yuffa & Latham 2023).

Each meta-step draws fresh inputs, labels them with the meta-learner f_θ, trains the learner on ``n_train``
of them and measures its squared error on the other ``n_test`` (L_g). A distribution term L_d pins the
labels to a target distribution (else a constant would win), and for a *series* the k-th function is kept
orthogonal to the earlier ones. θ follows the gradient of

.. math:: L = α_g L_g + α_d L_d + α_o L_o

taken *through* the learner's training (closed form or unrolled), so the learner must be differentiable
in its training labels — or, with ``search.meta_gradient = "es"``, estimated without autograd by antithetic
evolution strategies (:func:`antithetic_es_gradient`), for a learner that is a black box.

Three entry points: :func:`find_easiest`, :func:`find_series`, :func:`find_contrast`. All take a list of
seeds and run them side by side in one loop, each seed on its own tensors and random streams
(:mod:`learnscope.rng`), so a seed's result is exactly the same alone as with any other seeds.
"""

from __future__ import annotations

import copy
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from learnscope import rng
from learnscope.bias.distances import DISTANCES, SPREADS, make_distance
from learnscope.bias.meta_gradients import (  # noqa: F401  (re-exported: their home before the split)
    ES_PERTURBATION,
    META_GRADIENTS,
    UNROLLED_ESTIMATORS,
    antithetic_es_gradient,
    check_meta_gradient,
    estimate_search_memory,
    learner_for_search,
    learner_name,
    takes_meta_gradient,
    unrolled_only,
)
from learnscope.bias.metalearner import MetaCNN, MetaMLP
from learnscope.domains import Domain
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import Interval, check_constraints

DISTANCE_ON = ("test", "train+test", "union")
META_OPTIMISERS = ("adagrad", "adam", "sgd")
CONTRAST_OBJECTIVES = ("difference", "log_ratio")
ORTHOGONALITY = ("deflate", "normalised_penalty", "penalty")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SEED_BATCHING = ("exact", "batched")
#: How the meta-gradient is computed: the four autograd estimators of an unrolled learner
#: (:mod:`learnscope.learners.meta_gradient`; "full" is plain autograd through any differentiable learner) and
#: "es", antithetic evolution strategies without autograd (shared with the black-box route of learnscope.animal).
#: The numeric [search] keys and their allowed ranges (checked by :func:`~learnscope.validation.check_constraints`).
SEARCH_CONSTRAINTS = {
    **{k: Interval(int, 1) for k in ("steps", "n_train", "n_test", "learners_per_step", "n_reference")},
    "lr": Interval(float, 0, closed="neither"),
    **{k: Interval(float, 0) for k in ("alpha_g", "alpha_d", "alpha_o")},
    "target_samples": Interval(int, 0),
    **{k: Interval(int, 1) for k in ("segment", "truncate", "es_pairs")},
    "es_sigma": Interval(float, 0, closed="neither"),
}


@dataclass
class SearchSettings:
    """Settings of one meta-learning run (one function). Field names are the ``[search]`` config keys.

    steps : meta-steps T.
    n_train, n_test : labelled points the learner trains on, and held-out points L_g is measured on.
    learners_per_step : independent learners (fresh randomness) averaged in L_g each step.
    optimiser, lr : meta-optimiser (adagrad, adam, sgd) and its learning rate.
    alpha_g, alpha_d, alpha_o : weights of generalisation, distribution and orthogonality terms.
    distance : "w2" (exact 1-D Wasserstein, default), "sinkhorn", "energy", "geomloss_sinkhorn", or the spread
        term "neg_std" (minus the std of the labels; no target distribution, Fig 6).
    distance_on : labels the distance is taken on: "test", "train+test" (sum of two terms), "union".
    target_samples : size of the target sample Y*; 0 compares with the exact target distribution
        (w2) or its n equal-probability quantile midpoints (other distances).
    target_resample : draw a fresh Y* every step (Figs 7–8) instead of once (Figs 2–4).
    contrast_objective : "difference" L_g(A) − L_g(B) (authors) or "log_ratio" log L_g(A) − log L_g(B).
    orthogonality : "deflate" (subtract the least-squares projection on earlier functions, exact),
        "normalised_penalty" Σ_j (mean f_k f_j)² / mean f_j², or "penalty" Σ_j (Σ_x f_k f_j)² (authors).
    n_reference : reference points for orthogonality (deflation coefficients / penalty sums).
    dtype : "float32" or "float64".
    seed_batching : "exact" (default): every seed is computed on its own, so its result is bit-for-bit the same
        alone (``--seed 3``) as with any other seeds. "batched": all seeds share each batched kernel call — up to
        ~3× faster for small learners (the mushroom body, ridge on the disc) — but a seed's numbers then depend on
        the batch at the rounding level, which training amplifies (Fig 2: label std 0.48847 alone, 0.48950 in a
        5-seed batch).
    meta_gradient : how θ's gradient is computed: "full" (autograd through the learner as it is built), the bounded-
        memory estimators of an unrolled learner "checkpointed" (exact, inner steps recomputed per ``segment``),
        "truncated" (the last ``truncate`` inner steps only: biased), "implicit" (a converged fixed point), which
        the learner is built with (:func:`learner_for_search`), or "es": antithetic evolution strategies, no autograd
        (each step ``es_pairs`` pairs of losses at θ ± ``es_sigma``·ε, :func:`antithetic_es_gradient`).
    segment, truncate : the checkpointed segment length and the truncated K (inner steps); None is the learner's own.
    es_pairs, es_sigma : antithetic pairs per step and the perturbation scale σ (in parameter units) of "es".
    """

    steps: int = 100
    n_train: int = 20
    n_test: int = 80
    learners_per_step: int = 1
    optimiser: str = "adagrad"
    lr: float = 0.01
    alpha_g: float = 1.0
    alpha_d: float = 1.0
    alpha_o: float = 1.0
    distance: str = "w2"
    distance_on: str = "union"
    target_samples: int = 0
    target_resample: bool = False
    contrast_objective: str = "log_ratio"
    orthogonality: str = "deflate"
    n_reference: int = 2000
    dtype: str = "float32"
    seed_batching: str = "exact"
    meta_gradient: str = "full"
    segment: int | None = None
    truncate: int | None = None
    es_pairs: int = 8
    es_sigma: float = 0.05

    def __post_init__(self) -> None:
        check_constraints({k: v for k, v in vars(self).items() if v is not None}, SEARCH_CONSTRAINTS,
                          prefix="search.")
        for name, valid in (
            ("optimiser", META_OPTIMISERS),
            ("distance", DISTANCES + SPREADS),
            ("distance_on", DISTANCE_ON),
            ("contrast_objective", CONTRAST_OBJECTIVES),
            ("orthogonality", ORTHOGONALITY),
            ("dtype", tuple(DTYPES)),
            ("seed_batching", SEED_BATCHING),
            ("meta_gradient", META_GRADIENTS),
        ):
            if getattr(self, name) not in valid:
                raise UnknownNameError(f"search.{name}", getattr(self, name), valid)
        for key, estimator in (("segment", "checkpointed"), ("truncate", "truncated")):
            if getattr(self, key) is not None and self.meta_gradient != estimator:
                raise ConfigError(f"search.{key} applies to search.meta_gradient = {estimator!r} only, got "
                                  f"search.meta_gradient = {self.meta_gradient!r}")
        if self.meta_gradient == "truncated" and self.truncate is None:
            raise ConfigError("search.meta_gradient = 'truncated' needs search.truncate = K, the last K inner steps "
                              "of the learner to backpropagate through")


class FoundFunction:
    """A meta-learned function (for every seed of a run), frozen and callable on new inputs.

    ``f(x)`` with x of shape ``(S, N, d)`` returns ``(S, N)``; ``f.at(i, x)`` evaluates seed i alone on x
    ``(..., d)``; ``f.for_seed(i)`` gives a callable ``(N, d) → (N,)`` for seed i (numpy or torch in, numpy out).
    With deflation the value is ``h(x) − Σ_j c_j f_j(x)`` with frozen coefficients c (shape (S, k)).

    Every evaluation is per seed, on that seed's own copy of its parameters, so a seed's values are the same
    whichever seeds it was trained or stored with.
    """

    def __init__(
        self,
        meta: MetaMLP | MetaCNN,
        params: Sequence[torch.Tensor],
        previous: Sequence[FoundFunction] = (),
        coef: torch.Tensor | None = None,
        seeds: Sequence[int] = (),
    ):
        self.meta = meta
        self.params = [p.detach().clone() for p in params]
        self.previous = list(previous)
        self.coef = None if coef is None else coef.detach().clone()
        self.seeds = list(seeds)
        self._own = [[p[i : i + 1].clone() for p in self.params] for i in range(self.n_seeds)]

    @property
    def n_seeds(self) -> int:
        return self.params[0].shape[0]

    def raw_at(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The meta-learner's output h(x) of seed ``index`` before deflation: x ``(..., d)`` → ``(...)``."""
        return self.meta.forward(x.to(self.params[0].dtype).unsqueeze(0), self._own[index])[0]

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) for every seed: x ``(S, ..., d)`` → ``(S, ...)``."""
        return torch.stack([self.raw_at(i, x[i]) for i in range(self.n_seeds)])

    def at(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """f(x) of seed ``index`` alone: x ``(..., d)`` → ``(...)``, no gradient."""
        with torch.no_grad():
            out = self.raw_at(index, x)
            if self.coef is not None:
                for j, prev in enumerate(self.previous):
                    out = out - self.coef[index, j] * prev.at(index, x)
            return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.at(i, x[i]) for i in range(self.n_seeds)])

    def for_seed(self, index: int) -> Callable[[np.ndarray | torch.Tensor], np.ndarray]:
        if not 0 <= index < self.n_seeds:
            raise ConfigError(f"seed index {index} out of range for a run with {self.n_seeds} seeds")

        def f(x: np.ndarray | torch.Tensor) -> np.ndarray:
            return self.at(index, torch.as_tensor(np.asarray(x), dtype=self.params[0].dtype)).numpy()

        return f

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the meta-learner description, rebuild this function (for saving)."""
        out = {f"param{i}": p.numpy() for i, p in enumerate(self.params)}
        if self.coef is not None:
            out["deflation_coef"] = self.coef.numpy()
        return out


@dataclass
class SearchResult:
    """What a meta-learning run returns.

    function : the found function (all seeds).
    history : per-step losses, each an array of shape (steps, S); NaN for a seed from the step it diverged.
    settings : the resolved settings.
    seeds : the seeds of the S runs.
    extra : ``step_times_s`` (steps,), and ``diverged_at`` / ``diverged_what``: per seed the first step whose labels
        or loss were not finite (None if none) and which of the two (``"labels"``, ``"loss"``).
    """

    function: FoundFunction
    history: dict[str, np.ndarray]
    settings: SearchSettings
    seeds: list[int]
    extra: dict = field(default_factory=dict)

    def settings_dict(self) -> dict:
        return asdict(self.settings)


class _Orthogonaliser:
    """Keeps the k-th function of seeds ``lo … lo + G − 1`` orthogonal to their earlier ones on a fixed reference set.

    Every tensor has a leading axis over those G seeds: ``reference`` is ``(G, R, d)``.
    """

    def __init__(
        self, previous: Sequence[FoundFunction], lo: int, reference: torch.Tensor, mode: str, dtype: torch.dtype
    ):
        self.previous = list(previous)
        self.lo = lo
        self.mode = mode
        self.reference = reference  # (G, R, d)
        self.prev_ref = self.previous_at(reference).to(dtype)  # (G, R, k)
        R = reference.shape[1]
        self.gram = self.prev_ref.transpose(1, 2) @ self.prev_ref / R  # (G, k, k)
        self.norms = torch.diagonal(self.gram, dim1=1, dim2=2)  # (G, k): mean f_j^2
        k = len(self.previous)
        jitter = 1e-8 * self.norms.mean(dim=1, keepdim=True).unsqueeze(-1) * torch.eye(k, dtype=dtype)
        self.gram_chol = torch.linalg.cholesky(self.gram + jitter)

    def coefficients(self, h_ref: torch.Tensor) -> torch.Tensor:
        """Least-squares coefficients c (G, k) of h on the earlier functions over the reference set."""
        b = (self.prev_ref * h_ref.unsqueeze(-1)).mean(dim=1)  # (G, k)
        return torch.cholesky_solve(b.unsqueeze(-1), self.gram_chol).squeeze(-1)

    def previous_at(self, x: torch.Tensor) -> torch.Tensor:
        """Earlier functions of these seeds at x (G, N, d) → (G, N, k), each seed on its own, no gradient."""
        with torch.no_grad():
            return torch.stack(
                [torch.stack([f.at(self.lo + g, x[g]) for f in self.previous], dim=-1) for g in range(x.shape[0])]
            )

    def penalty(self, h_ref: torch.Tensor) -> torch.Tensor:
        """Orthogonality penalty (G,) for the penalty modes."""
        dots = (self.prev_ref * h_ref.unsqueeze(-1)).mean(dim=1)  # (G, k) mean_x f_k f_j
        if self.mode == "normalised_penalty":
            return (dots**2 / self.norms).sum(dim=1)
        R = h_ref.shape[1]
        return ((dots * R) ** 2).sum(dim=1)


_SEED_LEARNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _seed_learner(learner: object, seed: tuple[int, ...]) -> object:
    """The copy of ``learner`` that the seeds ``seed`` (one, or a batch) train, made at its first use and kept across
    the functions of a series: state a learner acquires by use (the fixed features of
    ``RandomFeatureRidge(resample=False)``) is then per seed, as in a one-seed run, and never shared with others."""
    try:
        copies = _SEED_LEARNERS.setdefault(learner, {})
    except TypeError:  # not weak-referenceable or unhashable: a fresh copy per run
        copies = {}
    if seed not in copies:
        copies[seed] = copy.deepcopy(learner)
    return copies[seed]


def _make_optimiser(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


def meta_train(
    meta: MetaMLP | MetaCNN,
    domain: Domain,
    learner,
    target,
    settings: SearchSettings,
    seeds: Sequence[int],
    *,
    previous: Sequence[FoundFunction] = (),
    learner_b=None,
    progress: bool | str = False,
    callback: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
) -> SearchResult:
    """Run Algorithm 1 for one function, for every seed.

    meta : the meta-learner architecture (its parameters are (re)initialised here, one per seed).
    domain : input distribution; each step's points come from ``domain.meta_batch`` (fresh independent draws, or
        for a :class:`~learnscope.domains.SplitDataset` training points from its pool and test points from its
        test set). learner (and learner_b for a contrast): objects with ``fit_predict``.
    target : target label distribution (``learnscope.targets``).
    previous : earlier functions of a series (this one is kept orthogonal to them).
    progress : show a progress bar (a string is used as its description).
    callback : called as ``callback(step, losses)`` after each step (losses are per-seed tensors (S,)).

    Seeds are independent runs: seed i draws from its own named streams (:func:`learnscope.rng.meta_generator`).
    With ``settings.seed_batching = "exact"`` (the default) each step also computes seed i's loss on its own tensors —
    parameter leaves, points, labels, learners — with the shapes a one-seed run has, then one optimiser step updates
    every seed (element-wise per parameter tensor). So a seed's result is bit-for-bit the same alone as in any
    batch: batched kernels are not shared across seeds, because their rounding (and BLAS's choice of kernel, e.g. for
    a batch of one) changes with the batch size. The ``learners_per_step`` learners of one seed are batched.
    ``"batched"`` computes all seeds in one batch (faster for small learners, not batch-independent).

    A seed whose labels or loss become non-finite stops: its parameters go back to the last step whose labels
    and loss were finite, its history is NaN from that step, and ``extra["diverged_at"]`` records the step (the
    run's verdict reports it); the other seeds go on.

    ``settings.meta_gradient``: "full" and the unrolled estimators differentiate through the learner with autograd
    (built with the estimator by :func:`learner_for_search`; a learner whose predictions carry no gradient is a
    one-line ConfigError). "es" computes no graph: each step draws the points once, evaluates the loss at θ (the
    history, the divergence checks) and at θ ± σε_j for ``es_pairs`` pairs with the same points and the same learner
    and target randomness (common random numbers), all under ``torch.no_grad``, and hands the optimiser
    :func:`antithetic_es_gradient`'s estimate; seed i's ε come from its own stream ``rng.torch_generator(seed_i,
    ES_PERTURBATION, k)``, so its result does not depend on its batch either. A seed whose perturbed losses are not
    finite stops as above.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("need at least one seed")
    s = settings
    dtype = DTYPES[s.dtype]
    S, B = len(seeds), s.learners_per_step
    n_tr, n_te = s.n_train, s.n_test
    k = len(previous)
    # the seeds computed together: each alone (exact) or all in one batch
    groups = [(i, i + 1) for i in range(S)] if s.seed_batching == "exact" else [(0, S)]
    stacked = meta.init([rng.meta_generator(x, rng.META_INIT, k) for x in seeds], dtype)
    own = {g: [p[g[0] : g[1]].detach().clone().requires_grad_(True) for p in stacked] for g in groups}
    opt = _make_optimiser(s.optimiser, [p for g in groups for p in own[g]], s.lr)
    data_gens = [rng.meta_generator(x, rng.META_DATA, k) for x in seeds]
    learner_gens = [rng.meta_generator(x, rng.META_LEARNER, k) for x in seeds]
    target_gens = [rng.meta_generator(x, rng.META_TARGET, k) for x in seeds]
    check_meta_gradient(s, [learner, learner_b])
    learner, learner_b = learner_for_search(learner, s), learner_for_search(learner_b, s)
    es = s.meta_gradient == "es"
    es_gens = [rng.torch_generator(x, ES_PERTURBATION, k) for x in seeds] if es else []
    learners = {g: _seed_learner(learner, tuple(seeds[g[0] : g[1]])) for g in groups}
    learners_b = {} if learner_b is None else {g: _seed_learner(learner_b, tuple(seeds[g[0] : g[1]])) for g in groups}
    distance = make_distance(s.distance)

    def draw_target(g: tuple[int, int], n: int) -> object:
        G = g[1] - g[0]
        if s.distance in SPREADS:
            return None
        if s.target_samples == 0:
            if s.distance == "w2":
                return target
            u = (torch.arange(n, dtype=dtype) + 0.5) / n
            return target.quantile(u).expand(G * B, n)
        ys = torch.stack([target.sample(s.target_samples, target_gens[i], dtype=dtype) for i in range(*g)])
        return ys.repeat_interleave(B, dim=0)  # (G·B, m)

    fixed_targets: dict[tuple, object] = {}

    def target_for(g: tuple[int, int], n: int) -> object:
        if s.target_resample:
            return draw_target(g, n)
        if (g, n) not in fixed_targets:
            fixed_targets[g, n] = draw_target(g, n)
        return fixed_targets[g, n]

    orth: dict[tuple[int, int], _Orthogonaliser] = {}
    if previous:
        for g in groups:
            gens = [rng.meta_generator(seeds[i], rng.META_REFERENCE) for i in range(*g)]
            reference = torch.stack([domain.spread_sample(s.n_reference, gen, dtype=dtype) for gen in gens])
            orth[g] = _Orthogonaliser(previous, g[0], reference, s.orthogonality, dtype)

    draw_points = getattr(domain, "meta_batch", None) or (
        lambda b, n, m, g, dtype: domain.sample_batch(b, n + m, g, dtype=dtype)  # a duck-typed domain
    )

    def draw_group(g: tuple[int, int]) -> torch.Tensor:
        return torch.stack([draw_points(B, n_tr, n_te, data_gens[i], dtype=dtype) for i in range(*g)])  # (G, B, n, d)

    def group_step(
        g: tuple[int, int], params: list[torch.Tensor] | None = None, x: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss terms (each (G,)) of the seeds of group g at this step, and which labels were finite (G,); at
        ``params`` (default the seeds' own) on the points ``x`` (default drawn now)."""
        G = g[1] - g[0]
        params = own[g] if params is None else params
        x = draw_group(g) if x is None else x
        y = meta.forward(x, params)  # (G, B, n)
        finite = torch.isfinite(y.reshape(G, -1)).all(dim=1)
        if not finite.any():
            return finite, {}
        if not finite.all():  # a batched group goes on: the learners get zeros for the seed that diverged
            keep = finite[:, None, None]
            x, y = torch.where(keep[..., None], x, torch.zeros_like(x)), torch.where(keep, y, torch.zeros_like(y))
        orth_loss = torch.zeros(G, dtype=dtype)
        if previous:
            o = orth[g]
            h_ref = meta.forward(o.reference, params)
            if s.orthogonality == "deflate":
                coef = o.coefficients(h_ref)  # (G, k)
                prev = o.previous_at(x.reshape(G, B * (n_tr + n_te), -1)).reshape(*y.shape, -1)
                y = y - (prev * coef[:, None, None, :]).sum(-1)
            else:
                orth_loss = o.penalty(h_ref)
        xf = x.reshape(G * B, n_tr + n_te, -1)
        yf = y.reshape(G * B, n_tr + n_te)
        x_tr, x_te, y_tr, y_te = xf[:, :n_tr], xf[:, n_tr:], yf[:, :n_tr], yf[:, n_tr:]
        gens = learner_gens[g[0] : g[1]]
        pred = learners[g].fit_predict(x_tr, y_tr, x_te, generator=gens)
        _check_differentiable(pred, y_tr, learner)
        gen = ((pred - y_te) ** 2).mean(dim=1).reshape(G, B).mean(dim=1)  # (G,)
        terms = {"generalisation": gen}
        gen_term = gen
        if learner_b is not None:
            pred_b = learners_b[g].fit_predict(x_tr, y_tr, x_te, generator=gens)
            _check_differentiable(pred_b, y_tr, learner_b)
            gen_b = ((pred_b - y_te) ** 2).mean(dim=1).reshape(G, B).mean(dim=1)
            terms["generalisation_b"] = gen_b
            gen_term = gen - gen_b if s.contrast_objective == "difference" else torch.log(gen) - torch.log(gen_b)
        if s.distance_on == "test":
            dist = distance(y_te, target_for(g, n_te))
        elif s.distance_on == "union":
            dist = distance(yf, target_for(g, n_tr + n_te))
        else:
            dist = distance(y_tr, target_for(g, n_tr)) + distance(y_te, target_for(g, n_te))
        dist = dist.reshape(G, B).mean(dim=1)
        terms |= {"distribution": dist, "orthogonality": orth_loss}
        terms["loss"] = s.alpha_g * gen_term + s.alpha_d * dist + s.alpha_o * orth_loss
        return finite, terms

    def es_group_step(g: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[torch.Tensor] | None]:
        """As :func:`group_step` at the seeds' own θ, plus the ES estimate of the loss's gradient (None if no seed
        had finite labels); a seed whose estimate is not finite gets a non-finite loss (it stops)."""
        x = draw_group(g)
        streams = learner_gens[g[0] : g[1]] + target_gens[g[0] : g[1]]
        states = [gen.get_state() for gen in streams]

        def loss_at(params: list[torch.Tensor]) -> torch.Tensor:
            for gen, state in zip(streams, states, strict=True):  # the same learner and target draws at every θ
                gen.set_state(state)
            ok, t = group_step(g, params, x)
            if not t:
                return torch.full((g[1] - g[0],), float("nan"), dtype=dtype)
            return torch.where(ok, t["loss"], torch.full_like(t["loss"], float("nan")))

        with torch.no_grad():
            finite, terms = group_step(g, own[g], x)
            if not terms:
                return finite, terms, None
            grads, _, _ = antithetic_es_gradient(loss_at, own[g], s.es_sigma, s.es_pairs, es_gens[g[0] : g[1]])
        good = torch.stack([torch.isfinite(gr.reshape(gr.shape[0], -1)).all(dim=1) for gr in grads]).all(dim=0)
        terms["loss"] = torch.where(good, terms["loss"], torch.full_like(terms["loss"], float("nan")))
        return finite, terms, [torch.where(good.reshape(-1, *[1] * (gr.dim() - 1)), gr, 0.0) for gr in grads]

    def restore(i: int) -> None:
        g = group_of[i]
        with torch.no_grad():
            for p, good in zip(own[g], last_good[i], strict=True):
                p[i - g[0]].copy_(good)

    names = ["loss", "generalisation", "distribution", "orthogonality"] + (
        ["generalisation_b"] if learner_b is not None else []
    )
    hist = {name: np.full((s.steps, S), np.nan) for name in names}
    group_of = {i: g for g in groups for i in range(*g)}
    diverged_at: list[int | None] = [None] * S
    diverged_what: list[str | None] = [None] * S
    last_good = [[p[i - group_of[i][0]].detach().clone() for p in own[group_of[i]]] for i in range(S)]
    step_times = np.full(s.steps, np.nan)
    bar = tqdm(
        range(s.steps),
        desc=progress if isinstance(progress, str) else "meta-steps",
        disable=not progress,
        leave=False,
    )
    for step in bar:
        live = [g for g in groups if any(diverged_at[i] is None for i in range(*g))]
        if not live:
            break
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        losses = []
        for g in live:
            finite, terms, grads = es_group_step(g) if es else (*group_step(g), None)
            loss = terms.get("loss")
            ok = finite & torch.isfinite(loss.detach()) if loss is not None else finite
            for j, i in enumerate(range(*g)):
                if diverged_at[i] is None and not ok[j]:
                    diverged_at[i], diverged_what[i] = step, "labels" if not finite[j] else "loss"
            use = torch.tensor([diverged_at[i] is None for i in range(*g)])
            if not use.any():
                continue
            # one backward pass over the groups' separate graphs: each used seed's loss gets gradient exactly 1 and
            # its nodes run in their own order, so an exact seed's gradients are those of a one-seed run
            if grads is not None:  # es: the estimate is the gradient, no backward pass
                for p, grad in zip(own[g], grads, strict=True):
                    p.grad = torch.where(use.reshape(-1, *[1] * (grad.dim() - 1)), grad, torch.zeros_like(grad))
            else:
                losses.append(torch.where(use, loss, torch.zeros_like(loss)))
            for j, i in enumerate(range(*g)):
                if use[j]:
                    last_good[i] = [p[j].detach().clone() for p in own[g]]
                    for name, v in terms.items():
                        hist[name][step, i] = float(v.detach()[j])
        if losses:
            torch.cat(losses).sum().backward()
        opt.step()
        for i in range(S):  # a seed that diverged keeps its last finite parameters (in a batch, updates move it)
            if diverged_at[i] is not None and (diverged_at[i] == step or s.seed_batching != "exact"):
                restore(i)
        step_times[step] = time.perf_counter() - t0
        if callback is not None:
            callback(step, {name: torch.as_tensor(hist[name][step]) for name in ("loss", "generalisation")})
    bar.close()

    params = [torch.cat([own[g][j].detach() for g in groups]) for j in range(len(stacked))]
    meta.params = params
    final_coef = None
    if previous and s.orthogonality == "deflate":
        with torch.no_grad():
            final_coef = torch.cat([orth[g].coefficients(meta.forward(orth[g].reference, own[g])) for g in groups])
    fn = FoundFunction(meta, params, previous if final_coef is not None else (), final_coef, seeds)
    history = {name: h.astype(np.dtype(str(dtype).removeprefix("torch."))) for name, h in hist.items()}
    extra = {"step_times_s": step_times, "diverged_at": diverged_at, "diverged_what": diverged_what}
    return SearchResult(fn, history, s, seeds, extra=extra)


def _check_differentiable(pred: torch.Tensor, y_train: torch.Tensor, learner: object) -> None:
    """Under autograd, a learner's predictions must depend on its training labels through the graph."""
    if torch.is_grad_enabled() and y_train.requires_grad and not pred.requires_grad:
        raise ConfigError(f"the learner {learner_name(learner)} returns predictions without a gradient with respect "
                          "to its training labels (it detaches them or runs outside autograd): use "
                          "search.meta_gradient = 'es' (evolution strategies) for a learner without autograd")


def find_easiest(meta, domain, learner, target, settings: SearchSettings, seeds: Sequence[int] = (0,), **kw):
    """The labelling ``learner`` generalises best, under the target label distribution."""
    return meta_train(meta, domain, learner, target, settings, seeds, **kw)


def find_contrast(meta, domain, learner_a, learner_b, target, settings: SearchSettings, seeds=(0,), **kw):
    """A labelling learner A generalises well and learner B badly (``settings.contrast_objective``)."""
    return meta_train(meta, domain, learner_a, target, settings, seeds, learner_b=learner_b, **kw)


def find_series(
    make_meta: Callable[[], MetaMLP | MetaCNN],
    domain: Domain,
    learner,
    target,
    settings: Sequence[SearchSettings],
    seeds: Sequence[int] = (0,),
    progress: bool = False,
    **kw,
) -> list[SearchResult]:
    """A series f_1, f_2, … of easy functions, each orthogonal to the earlier ones (bias-spec §1.4).

    ``settings[k]`` configures the k-th function (a fresh meta-learner from ``make_meta()``). The first
    function is found exactly as by :func:`find_easiest`.
    """
    results: list[SearchResult] = []
    for k, st in enumerate(settings):
        prev = [r.function for r in results]
        res = meta_train(
            make_meta(),
            domain,
            learner,
            target,
            st,
            seeds,
            previous=prev,
            progress=f"function {k + 1}/{len(settings)}" if progress else False,
            **kw,
        )
        results.append(res)
    return results


def override(settings: SearchSettings, **changes) -> SearchSettings:
    """A copy of ``settings`` with some fields changed (validated)."""
    return replace(settings, **changes)
