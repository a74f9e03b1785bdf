"""How the meta-gradient of a search is taken: the learner's estimator for the run (full, checkpointed, truncated,
implicit — :mod:`learnscope.learners.meta_gradient`), antithetic evolution strategies for a learner without autograd,
and the meta-gradient's estimated peak memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from learnscope import rng
from learnscope.errors import ConfigError

if TYPE_CHECKING:
    from learnscope.bias.search import SearchSettings

UNROLLED_ESTIMATORS = ("checkpointed", "truncated", "implicit")
META_GRADIENTS = ("full", *UNROLLED_ESTIMATORS, "es")
#: The named random stream of the ES perturbations ε of seed s, function k: ``rng.torch_generator(s, purpose, k)``.
ES_PERTURBATION = rng.META_ES_PERTURBATION


def takes_meta_gradient(learner: object) -> bool:
    """Whether ``learner`` offers the bounded-memory estimators: an unrolled learner built with a ``meta_gradient``
    argument (CircuitLearner and its presets, ModuleLearner)."""
    get = getattr(learner, "get_params", None)
    return callable(get) and "meta_gradient" in get()


def unrolled_only(estimator: str, name: str, closed_form: bool) -> ConfigError:
    """The one-line error of an unrolled-only estimator asked of a learner that does not offer it."""
    why = "has a closed form" if closed_form else "offers meta_gradient = 'full' only"
    return ConfigError(f"search.meta_gradient = {estimator!r} needs an unrolled learner (trained, mushroom_body, "
                       f"spiking, or a ModuleLearner in Python); {name} {why}")


def learner_name(learner: object) -> str:
    return str(getattr(learner, "name", None) or type(learner).__name__)


def learner_for_search(learner: object, settings: SearchSettings) -> object:
    """``learner`` with the meta-gradient estimator of ``settings``: unchanged for "full" and "es" (the learner as
    built) and for a learner without estimators; else rebuilt from its ``get_params()`` with ``meta_gradient``,
    ``segment`` (checkpointed) and ``truncate`` (truncated) — None in ``settings`` keeps the learner's own value — or
    returned as is when it already has them."""
    est = settings.meta_gradient
    if est not in UNROLLED_ESTIMATORS or not takes_meta_gradient(learner):
        return learner
    params = learner.get_params()
    changes = {
        "meta_gradient": est,
        "segment": (settings.segment or params.get("segment")) if est == "checkpointed" else None,
        "truncate": (settings.truncate or params.get("truncate")) if est == "truncated" else None,
    }
    if all(params.get(k) == v for k, v in changes.items()):
        return learner
    return type(learner)(**(params | changes))


def check_meta_gradient(settings: SearchSettings, learners: Sequence[object]) -> None:
    """One-line :class:`ConfigError` if ``settings.meta_gradient`` is an unrolled-only estimator and no learner of
    the run offers it (a closed-form learner needs none: its gradient is exact and cheap)."""
    est = settings.meta_gradient
    learners = [lr for lr in learners if lr is not None]
    if est in UNROLLED_ESTIMATORS and learners and not any(takes_meta_gradient(lr) for lr in learners):
        first = learners[0]
        raise unrolled_only(est, learner_name(first), getattr(first, "steps", None) is None)


def antithetic_es_gradient(
    loss: Callable[[list[torch.Tensor]], torch.Tensor],
    params: Sequence[torch.Tensor],
    sigma: float,
    pairs: int,
    generators: Sequence[torch.Generator],
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Antithetic evolution-strategies estimate of ∇_θ L, row by row, without autograd (Salimans et al. 2017).

    params : tensors ``(G, ...)``, G independent rows (seeds); not modified. loss : maps such a list to the losses
    ``(G,)``, row g depending only on row g. generators : one per row; row g's ε are drawn from ``generators[g]``
    alone (per pair, one ``torch.randn`` per tensor, in order), so a row's estimate is the same in any batch.

    .. math:: \\hat g = \\frac{1}{2σP} \\sum_{j=1}^{P} \\big(L(θ + σε_j) − L(θ − σε_j)\\big)\\, ε_j,
        \\quad ε_j \\sim N(0, I)

    E ĝ = ∇L + O(σ²) (the even terms cancel); for a quadratic L the sum is exactly (1/P) Σ ε_j ε_jᵀ ∇L, whose error
    has E‖ĝ − ∇L‖² = (D + 1)‖∇L‖²/P for D parameters. Returns (ĝ like ``params``, L⁺ ``(P, G)``, L⁻ ``(P, G)``).
    """
    G = params[0].shape[0]
    if len(generators) != G:
        raise ConfigError(f"antithetic_es_gradient needs one generator per row: {G} rows, {len(generators)} generators")
    grads = [torch.zeros_like(p) for p in params]
    plus_all, minus_all = [], []
    with torch.no_grad():
        for _ in range(pairs):
            eps = [torch.stack([torch.randn(p.shape[1:], generator=generators[g], dtype=p.dtype) for g in range(G)])
                   for p in params]
            plus = loss([p + sigma * e for p, e in zip(params, eps, strict=True)])
            minus = loss([p - sigma * e for p, e in zip(params, eps, strict=True)])
            weight = (plus - minus) / (2 * sigma * pairs)  # (G,)
            for grad, e in zip(grads, eps, strict=True):
                grad.add_(weight.reshape(G, *[1] * (e.dim() - 1)) * e)
            plus_all.append(plus)
            minus_all.append(minus)
    return grads, torch.stack(plus_all), torch.stack(minus_all)


def estimate_search_memory(learner: object, settings: SearchSettings, n_seeds: int, dim: int,
                           learner_b: object | None = None) -> int | None:
    """Estimated peak bytes of one meta-step's meta-gradient through the learner(s) of a run, or None when no learner
    is unrolled with estimators (closed form: small) or ``settings.meta_gradient == "es"`` (no graph is kept).

    Every seed's graph lives until the one backward pass of the step, so the estimate is S × the estimate of one
    seed's ``learners_per_step`` learners with ``"exact"`` seed batching (the estimate is linear in the batch) and
    that of one batch of S·B learners with ``"batched"``, summed over the learner and ``learner_b``
    (:func:`learnscope.learners.memory.estimate_peak_memory`; a :class:`~learnscope.learners.memory.MemoryEstimate`
    whose ``by_estimator`` is summed alike).
    """
    from learnscope.learners.memory import MemoryEstimate, estimate_peak_memory

    if settings.meta_gradient == "es":
        return None
    run = [learner_for_search(lr, settings) for lr in (learner, learner_b) if lr is not None]
    if not any(takes_meta_gradient(lr) for lr in run):
        return None
    exact = settings.seed_batching == "exact"
    batch, times = (settings.learners_per_step, n_seeds) if exact else (settings.learners_per_step * n_seeds, 1)
    from learnscope.bias.search import DTYPES

    dtype = DTYPES[settings.dtype]
    ests = [estimate_peak_memory(lr, settings.n_train, settings.n_test, batch, dtype, dim=dim) for lr in run]
    main = next(e for e, lr in zip(ests, run, strict=True) if takes_meta_gradient(lr))
    keys = {k for e in ests for k in e.by_estimator}
    by = {k: times * sum(e.by_estimator.get(k, int(e)) for e in ests) for k in keys}
    return MemoryEstimate(times * sum(int(e) for e in ests), main.estimator, main.steps, by)
