"""Algorithm 1: meta-learn the functions a learner generalises best (Dorrell, Yuffa & Latham 2023).

Each meta-step draws fresh inputs, labels them with the meta-learner f_θ, trains the learner on ``n_train``
of them and measures its squared error on the other ``n_test`` (L_g). A distribution term L_d pins the
labels to a target distribution (else a constant would win), and for a *series* the k-th function is kept
orthogonal to the earlier ones. θ follows the gradient of

.. math:: L = α_g L_g + α_d L_d + α_o L_o

taken *through* the learner's training (closed form or unrolled), so the learner must be differentiable
in its training labels.

Three entry points: :func:`find_easiest`, :func:`find_series`, :func:`find_contrast`. All take a list of
seeds and run them as one batched computation (a leading seed axis S on every tensor), which is how
several seeds cost little more than one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from learnscope.bias.distances import DISTANCES, SPREADS, make_distance
from learnscope.bias.metalearner import MetaCNN, MetaMLP
from learnscope.domains import Domain
from learnscope.errors import ConfigError, UnknownNameError, check_positive, check_positive_int

DISTANCE_ON = ("test", "train+test", "union")
OPTIMISERS = ("adagrad", "adam", "sgd")
CONTRAST_OBJECTIVES = ("difference", "log_ratio")
ORTHOGONALITY = ("deflate", "normalised_penalty", "penalty")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


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

    def __post_init__(self) -> None:
        for name in ("steps", "n_train", "n_test", "learners_per_step", "n_reference"):
            check_positive_int(f"search.{name}", getattr(self, name))
        check_positive("search.lr", self.lr)
        for name in ("alpha_g", "alpha_d", "alpha_o"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not math.isfinite(v):
                raise ConfigError(f"search.{name} must be a non-negative number, got {v!r}")
        if (
            isinstance(self.target_samples, bool)
            or not isinstance(self.target_samples, int)
            or self.target_samples < 0
        ):
            raise ConfigError(f"search.target_samples must be an integer >= 0, got {self.target_samples!r}")
        for name, valid in (
            ("optimiser", OPTIMISERS),
            ("distance", DISTANCES + SPREADS),
            ("distance_on", DISTANCE_ON),
            ("contrast_objective", CONTRAST_OBJECTIVES),
            ("orthogonality", ORTHOGONALITY),
            ("dtype", tuple(DTYPES)),
        ):
            if getattr(self, name) not in valid:
                raise UnknownNameError(f"search.{name}", getattr(self, name), valid)


def seed_generator(seed: int, stream: int) -> torch.Generator:
    """An independent torch generator for (seed, stream); streams separate init, data, learner, target."""
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


_STREAM_META, _STREAM_DATA, _STREAM_LEARNER, _STREAM_TARGET, _STREAM_REFERENCE = range(5)


class FoundFunction:
    """A meta-learned function (for every seed of a run), frozen and callable on new inputs.

    ``f(x)`` with x of shape ``(S, N, d)`` returns ``(S, N)``; ``f.for_seed(i)`` gives a callable
    ``(N, d) → (N,)`` for seed i alone (numpy or torch in, numpy out).
    With deflation the value is ``h(x) − Σ_j c_j f_j(x)`` with frozen coefficients c (shape (S, k)).
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

    @property
    def n_seeds(self) -> int:
        return self.params[0].shape[0]

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.meta.forward(x.to(self.params[0].dtype), self.params)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.raw(x)
            if self.coef is not None:
                for j, prev in enumerate(self.previous):
                    out = out - self.coef[:, j].reshape(-1, *([1] * (out.ndim - 1))) * prev(x)
            return out

    def for_seed(self, index: int) -> Callable[[np.ndarray | torch.Tensor], np.ndarray]:
        if not 0 <= index < self.n_seeds:
            raise ConfigError(f"seed index {index} out of range for a run with {self.n_seeds} seeds")

        def f(x: np.ndarray | torch.Tensor) -> np.ndarray:
            xt = torch.as_tensor(np.asarray(x), dtype=self.params[0].dtype)
            stacked = xt.unsqueeze(0).expand(self.n_seeds, *xt.shape)
            return self(stacked)[index].numpy()

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
    history : per-step losses, each an array of shape (steps, S).
    settings : the resolved settings.
    seeds : the seeds of the S runs.
    """

    function: FoundFunction
    history: dict[str, np.ndarray]
    settings: SearchSettings
    seeds: list[int]
    extra: dict = field(default_factory=dict)

    def settings_dict(self) -> dict:
        return asdict(self.settings)


class _Orthogonaliser:
    """Keeps the k-th function orthogonal to earlier ones on a fixed reference set (per seed)."""

    def __init__(
        self, previous: Sequence[FoundFunction], reference: torch.Tensor, mode: str, dtype: torch.dtype
    ):
        self.previous = list(previous)
        self.mode = mode
        self.reference = reference  # (S, R, d)
        with torch.no_grad():
            self.prev_ref = torch.stack([f(reference) for f in self.previous], dim=-1).to(dtype)  # (S, R, k)
        R = reference.shape[1]
        self.gram = self.prev_ref.transpose(1, 2) @ self.prev_ref / R  # (S, k, k)
        self.norms = torch.diagonal(self.gram, dim1=1, dim2=2)  # (S, k): mean f_j^2
        k = len(self.previous)
        jitter = 1e-8 * self.norms.mean(dim=1, keepdim=True).unsqueeze(-1) * torch.eye(k, dtype=dtype)
        self.gram_chol = torch.linalg.cholesky(self.gram + jitter)

    def coefficients(self, h_ref: torch.Tensor) -> torch.Tensor:
        """Least-squares coefficients c (S, k) of h on the earlier functions over the reference set."""
        b = (self.prev_ref * h_ref.unsqueeze(-1)).mean(dim=1)  # (S, k)
        return torch.cholesky_solve(b.unsqueeze(-1), self.gram_chol).squeeze(-1)

    def previous_at(self, x: torch.Tensor) -> torch.Tensor:
        """Earlier functions at x (S, N, d) → (S, N, k), no gradient."""
        with torch.no_grad():
            return torch.stack([f(x) for f in self.previous], dim=-1)

    def penalty(self, h_ref: torch.Tensor) -> torch.Tensor:
        """Per-seed orthogonality penalty (S,) for the penalty modes."""
        dots = (self.prev_ref * h_ref.unsqueeze(-1)).mean(dim=1)  # (S, k) mean_x f_k f_j
        if self.mode == "normalised_penalty":
            return (dots**2 / self.norms).sum(dim=1)
        R = h_ref.shape[1]
        return ((dots * R) ** 2).sum(dim=1)


def _check_diverged(per_seed: torch.Tensor, step: int, seeds: Sequence[int]) -> None:
    """Raise a ConfigError naming the seeds whose labels or loss (``per_seed``, shape (S,)) went NaN/inf."""
    finite = torch.isfinite(per_seed.detach())
    if not finite.all():
        bad = [seeds[i] for i in torch.nonzero(~finite).flatten().tolist()]
        raise ConfigError(
            f"meta-learning diverged at step {step} for seed(s) {bad} (labels or loss are NaN/inf); "
            "lower search.lr or the loss weights"
        )


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
    """Run Algorithm 1 for one function, for every seed at once.

    meta : the meta-learner architecture (its parameters are (re)initialised here, one per seed).
    domain : input distribution; each step's points come from ``domain.meta_batch`` (fresh independent draws, or
        for a :class:`~learnscope.domains.SplitDataset` training points from its pool and test points from its
        test set). learner (and learner_b for a contrast): objects with ``fit_predict``.
    target : target label distribution (``learnscope.targets``).
    previous : earlier functions of a series (this one is kept orthogonal to them).
    progress : show a progress bar (a string is used as its description).
    callback : called as ``callback(step, losses)`` after each step (losses are per-seed tensors).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("need at least one seed")
    s = settings
    dtype = DTYPES[s.dtype]
    S, B = len(seeds), s.learners_per_step
    n_tr, n_te = s.n_train, s.n_test
    params = meta.init([seed_generator(x, _STREAM_META + 10 * len(previous)) for x in seeds], dtype)
    opt = _make_optimiser(s.optimiser, params, s.lr)
    data_gens = [seed_generator(x, _STREAM_DATA + 10 * len(previous)) for x in seeds]
    # one generator per seed: seed i's learners draw from their own stream, whatever else is batched
    learner_gens = [seed_generator(x, _STREAM_LEARNER + 10 * len(previous)) for x in seeds]
    target_gens = [seed_generator(x, _STREAM_TARGET + 10 * len(previous)) for x in seeds]
    distance = make_distance(s.distance)

    def draw_target(n: int) -> object:
        if s.distance in SPREADS:
            return None
        if s.target_samples == 0:
            if s.distance == "w2":
                return target
            u = (torch.arange(n, dtype=dtype) + 0.5) / n
            return target.quantile(u).expand(S * B, n)
        ys = torch.stack([target.sample(s.target_samples, g, dtype=dtype) for g in target_gens])
        return ys.repeat_interleave(B, dim=0)  # (S*B, m)

    fixed_targets: dict[int, object] = {}

    def target_for(n: int) -> object:
        if s.target_resample:
            return draw_target(n)
        if n not in fixed_targets:
            fixed_targets[n] = draw_target(n)
        return fixed_targets[n]

    orth = None
    if previous:
        ref_gens = [seed_generator(x, _STREAM_REFERENCE) for x in seeds]
        reference = torch.stack([domain.spread_sample(s.n_reference, g, dtype=dtype) for g in ref_gens])
        orth = _Orthogonaliser(previous, reference, s.orthogonality, dtype)

    names = ["loss", "generalisation", "distribution", "orthogonality"] + (
        ["generalisation_b"] if learner_b is not None else []
    )
    hist: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    bar = tqdm(
        range(s.steps),
        desc=progress if isinstance(progress, str) else "meta-steps",
        disable=not progress,
        leave=False,
    )
    zeros = torch.zeros(S, dtype=dtype)
    step_times = np.empty(s.steps)
    draw_points = getattr(domain, "meta_batch", None) or (
        lambda b, n, m, g, dtype: domain.sample_batch(b, n + m, g, dtype=dtype)  # a duck-typed domain
    )
    for step in bar:
        t0 = time.perf_counter()
        x = torch.stack([draw_points(B, n_tr, n_te, g, dtype=dtype) for g in data_gens])  # (S, B, n, d)
        y = meta.forward(x, params)  # (S, B, n)
        _check_diverged(y.reshape(S, -1).sum(dim=1), step, seeds)
        coef = None
        orth_loss = zeros
        if orth is not None:
            h_ref = meta.forward(orth.reference, params)
            if s.orthogonality == "deflate":
                coef = orth.coefficients(h_ref)  # (S, k)
                y = y - (
                    orth.previous_at(x.reshape(S, B * (n_tr + n_te), -1)).reshape(*y.shape, -1)
                    * coef[:, None, None, :]
                ).sum(-1)
            else:
                orth_loss = orth.penalty(h_ref)
        xf = x.reshape(S * B, n_tr + n_te, -1)
        yf = y.reshape(S * B, n_tr + n_te)
        x_tr, x_te, y_tr, y_te = xf[:, :n_tr], xf[:, n_tr:], yf[:, :n_tr], yf[:, n_tr:]
        pred = learner.fit_predict(x_tr, y_tr, x_te, generator=learner_gens)
        gen = ((pred - y_te) ** 2).mean(dim=1).reshape(S, B).mean(dim=1)  # (S,)
        gen_term = gen
        gen_b = None
        if learner_b is not None:
            pred_b = learner_b.fit_predict(x_tr, y_tr, x_te, generator=learner_gens)
            gen_b = ((pred_b - y_te) ** 2).mean(dim=1).reshape(S, B).mean(dim=1)
            if s.contrast_objective == "difference":
                gen_term = gen - gen_b
            else:
                gen_term = torch.log(gen) - torch.log(gen_b)
        if s.distance_on == "test":
            dist = distance(y_te, target_for(n_te))
        elif s.distance_on == "union":
            dist = distance(yf, target_for(n_tr + n_te))
        else:
            dist = distance(y_tr, target_for(n_tr)) + distance(y_te, target_for(n_te))
        dist = dist.reshape(S, B).mean(dim=1)
        loss = s.alpha_g * gen_term + s.alpha_d * dist + s.alpha_o * orth_loss  # (S,)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        step_times[step] = time.perf_counter() - t0
        with torch.no_grad():
            hist["loss"].append(loss.detach())
            hist["generalisation"].append(gen.detach())
            hist["distribution"].append(dist.detach())
            hist["orthogonality"].append(orth_loss.detach())
            if gen_b is not None:
                hist["generalisation_b"].append(gen_b.detach())
        _check_diverged(loss, step, seeds)
        if callback is not None:
            callback(step, {"loss": loss.detach(), "generalisation": gen.detach()})
    bar.close()

    final_coef = None
    if orth is not None and s.orthogonality == "deflate":
        with torch.no_grad():
            final_coef = orth.coefficients(meta.forward(orth.reference, params))
    fn = FoundFunction(meta, params, previous if final_coef is not None else (), final_coef, seeds)
    history = {k: torch.stack(v).numpy() for k, v in hist.items() if v}
    return SearchResult(fn, history, s, seeds, extra={"step_times_s": step_times})


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
