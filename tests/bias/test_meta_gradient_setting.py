"""``search.meta_gradient``: the unrolled estimators reach the learner through the config and meta_train, the "es"
estimator (antithetic evolution strategies) is the gradient in expectation and needs no autograd, and the memory
estimate of a meta-step matches the bytes autograd really saves.

How a step's gradient is read off (as in test_search.py): with ``optimiser="sgd"``, ``lr=1`` and one step, the
parameters move by exactly ``-grad``; the data, learner and target draws depend only on the seed, so two estimators
are compared on the very same batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnscope import rng
from learnscope.bias.config import parse_config
from learnscope.bias.experiment import build_components
from learnscope.bias.metalearner import MetaMLP
from learnscope.bias.search import (
    SearchSettings,
    antithetic_es_gradient,
    estimate_search_memory,
    learner_for_search,
    meta_train,
)
from learnscope.domains import Disc, Sphere
from learnscope.errors import ConfigError
from learnscope.learners import Ridge
from learnscope.learners.memory import SavedTensorMeter
from learnscope.learners.registry import make_learner
from learnscope.targets import make_target

F64 = torch.float64
UNIFORM = make_target("uniform")


def one_step_gradient(domain, learner, meta_kw: dict, **settings) -> torch.Tensor:
    """The gradient meta_train followed in one SGD step of lr 1 (seed 0), flattened."""
    meta = MetaMLP(domain.dim, **meta_kw)
    init = meta.init([rng.meta_generator(0, rng.META_INIT, 0)], F64)
    st = SearchSettings(steps=1, optimiser="sgd", lr=1.0, dtype="float64", **settings)
    res = meta_train(meta, domain, learner, UNIFORM, st, [0])
    return torch.cat([(a.detach() - b).flatten() for a, b in zip(init, res.function.params, strict=True)])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


class Detaching:
    """A black box: ridge regression on detached data, so no gradient reaches the labels."""

    name = "detaching_ridge"

    def __init__(self) -> None:
        self.inner = Ridge(lam=1e-3)

    def fit_predict(self, x_train, y_train, x_test, *, generator=None):
        return self.inner.fit_predict(x_train.detach(), y_train.detach(), x_test.detach(), generator=generator)


# ------------------------------------------------------------------------------------------------ the ES estimator


def test_es_estimate_of_a_quadratic_is_the_projection_formula():
    # For L(θ) = ½ θᵀAθ + bᵀθ the antithetic difference is exact: (L(θ+σε) − L(θ−σε)) / 2σ = εᵀ∇L, so the estimate
    # must equal (1/P) Σ_j ε_j ε_jᵀ ∇L with the ε the loss was evaluated at (recorded, then checked in numpy).
    D, P, sigma = 5, 7, 0.3
    g = torch.Generator().manual_seed(1)
    M = torch.randn(D, D, generator=g, dtype=F64)
    A, b = M @ M.T + torch.eye(D, dtype=F64), torch.randn(D, generator=g, dtype=F64)
    theta = torch.randn(2, D, generator=g, dtype=F64)  # two rows (seeds)
    seen: list[torch.Tensor] = []

    def loss(params):
        seen.append(params[0].clone())
        t = params[0]
        return 0.5 * ((t @ A) * t).sum(dim=1) + t @ b

    grads, plus, minus = antithetic_es_gradient(loss, [theta], sigma, P, [rng.torch_generator(s, "test es", 0)
                                                                         for s in (3, 4)])
    eps = np.stack([(seen[2 * j].numpy() - theta.numpy()) / sigma for j in range(P)])  # (P, 2, D)
    np.testing.assert_allclose(np.stack([(seen[2 * j + 1].numpy() - theta.numpy()) / -sigma for j in range(P)]), eps,
                               rtol=1e-12, atol=1e-12)  # antithetic: the second of a pair is θ − σε
    true = theta.numpy() @ A.numpy() + b.numpy()  # (2, D)
    expected = np.einsum("pgi,pgj,gj->gi", eps, eps, true) / P
    np.testing.assert_allclose(grads[0].numpy(), expected, rtol=1e-9, atol=1e-12)
    assert plus.shape == minus.shape == (P, 2)
    # a row's estimate depends only on its own generator: row 1 alone is bit-for-bit row 1 of the pair
    alone, _, _ = antithetic_es_gradient(lambda p: loss(p), [theta[1:]], sigma, P, [rng.torch_generator(4, "test es",
                                                                                                         0)])
    assert torch.equal(alone[0][0], grads[0][1])


def test_es_meta_gradient_is_autograds_gradient_in_expectation():
    # On one batch, ridge on the disc, a meta-MLP of D = 17 parameters (float64). For smooth L the antithetic
    # estimate is ĝ = (1/P) Σ ε_j ε_jᵀ ∇L + O(σ²); its relative squared error has mean (D + 1)/P (E[εεᵀ g gᵀ εεᵀ] =
    # ‖g‖² I + 2 g gᵀ), here 18/400 = 0.045, so the expected cosine is ≈ (1 + 0.045)^(−1/2) ≈ 0.98. Cosine ≥ 0.9
    # fails only for a relative squared error above sin²(arccos 0.9) = 0.19, over 4× its mean; σ = 1e-3 makes the
    # O(σ²) bias negligible. A wrong sign, scale or pairing of the estimator gives a cosine near 0 or −1.
    domain, meta_kw = Disc(), {"hidden": 4, "layers": 1}
    sizes = {"n_train": 6, "n_test": 12}
    full = one_step_gradient(domain, Ridge(lam=0.01), meta_kw, **sizes)
    assert full.numel() == 17
    es = one_step_gradient(domain, Ridge(lam=0.01), meta_kw, meta_gradient="es", es_pairs=400, es_sigma=1e-3, **sizes)
    assert cosine(es, full) >= 0.9
    # and the estimate's size: ‖ĝ‖² = ‖g‖² (1 + O((D+1)/P)), within ±40 % (4× the expected deviation)
    assert 0.6 <= float(es.norm() / full.norm()) <= 1.4


def test_es_needs_no_autograd_and_full_refuses_a_learner_without_it():
    st = SearchSettings(steps=40, n_train=6, n_test=12, learners_per_step=2, optimiser="adam", lr=0.02,
                        meta_gradient="es", es_pairs=8, es_sigma=0.05)
    res = meta_train(MetaMLP(2, hidden=16), Disc(), Detaching(), UNIFORM, st, [0, 1])
    loss = res.history["loss"]
    assert np.isfinite(loss).all() and res.extra["diverged_at"] == [None, None]
    # the loss starts near that of all-zero labels (W2² of 0 to U[−1, 1] is E u² = 1/3, few-shot error 0) and ES
    # must take it well below: under half of it at the end
    assert np.all(loss[:3].mean(axis=0) > 0.25)
    assert np.all(loss[-5:].mean(axis=0) < 0.5 / 3)
    with pytest.raises(ConfigError, match="without a gradient.*search.meta_gradient = 'es'"):
        meta_train(MetaMLP(2, hidden=16), Disc(), Detaching(), UNIFORM, SearchSettings(steps=1), [0])


def test_es_seed_result_does_not_depend_on_its_batch():
    st = SearchSettings(steps=4, n_train=6, n_test=12, meta_gradient="es", es_pairs=3, dtype="float64")
    both = meta_train(MetaMLP(2, hidden=8), Disc(), Ridge(), UNIFORM, st, [0, 1])
    alone = meta_train(MetaMLP(2, hidden=8), Disc(), Ridge(), UNIFORM, st, [1])
    for a, b in zip(both.function.params, alone.function.params, strict=True):
        assert torch.equal(a[1:], b)
    np.testing.assert_array_equal(both.history["loss"][:, 1], alone.history["loss"][:, 0])


# ------------------------------------------------------------------------------------------------ unrolled estimators


def test_the_estimator_of_search_reaches_the_unrolled_learner():
    # A trained MLP (6 inner GD steps, float64): "checkpointed" is exact (same step as "full" to 1e-10),
    # "truncated" with K = T is "full", and with K = 1 it is biased (a different step) — so the estimator the
    # settings name is the one that ran.
    learner = make_learner({"name": "trained", "steps": 6, "lr": 0.1})
    kw = {"n_train": 8, "n_test": 16}
    meta_kw = {"hidden": 8}
    full = one_step_gradient(Sphere(3), learner, meta_kw, **kw)
    ckpt = one_step_gradient(Sphere(3), learner, meta_kw, meta_gradient="checkpointed", segment=2, **kw)
    all_k = one_step_gradient(Sphere(3), learner, meta_kw, meta_gradient="truncated", truncate=6, **kw)
    last = one_step_gradient(Sphere(3), learner, meta_kw, meta_gradient="truncated", truncate=1, **kw)
    torch.testing.assert_close(ckpt, full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(all_k, full, rtol=1e-10, atol=1e-12)
    assert float((last - full).norm() / full.norm()) > 1e-3
    rebuilt = learner_for_search(learner, SearchSettings(meta_gradient="checkpointed", segment=2))
    assert (rebuilt.meta_gradient, rebuilt.segment) == ("checkpointed", 2) and learner.meta_gradient == "full"
    assert learner_for_search(rebuilt, SearchSettings(meta_gradient="checkpointed")) is rebuilt  # keeps its segment
    with pytest.raises(ConfigError, match="needs an unrolled learner.*ridge has a closed form"):
        meta_train(MetaMLP(3, hidden=8), Sphere(3), Ridge(), UNIFORM, SearchSettings(steps=1, meta_gradient="implicit"),
                   [0])


def test_a_config_builds_its_learner_with_the_estimator():
    raw = {"run": {"kind": "easiest"}, "domain": {"name": "sphere", "dim": 3},
           "learner": {"name": "trained", "steps": 12}, "search": {"meta_gradient": "truncated", "truncate": 4}}
    cfg = parse_config(raw)
    learner = build_components(cfg).learner
    assert (learner.meta_gradient, learner.truncate) == ("truncated", 4)
    again = parse_config(cfg.to_dict(learners=(learner.describe(),)))  # the resolved config: the same experiment
    assert again.search == cfg.search and make_learner(again.learner).describe() == learner.describe()


# ------------------------------------------------------------------------------------------------ memory


@pytest.mark.parametrize("estimator, extra", [("full", {}), ("truncated", {"truncate": 5})])
def test_memory_estimate_of_a_step_is_what_autograd_saves(estimator, extra):
    # Every seed's graph lives until the one backward pass of a step: the estimate is S × one seed's. Measured: the
    # saved-tensor peak of a real meta-step, less that of the same step through a closed-form learner whose graph is
    # a few KiB (the meta-learner and the loss), within 3 % of the estimate.
    st = SearchSettings(steps=1, n_train=10, n_test=20, learners_per_step=2, meta_gradient=estimator, **extra)
    learner = make_learner({"name": "trained", "steps": 30, "lr": 0.025})
    est = estimate_search_memory(learner, st, 2, 3)
    with SavedTensorMeter() as meter:
        meta_train(MetaMLP(3, hidden=8), Sphere(3), learner, UNIFORM, st, [0, 1])
    with SavedTensorMeter() as base:
        meta_train(MetaMLP(3, hidden=8), Sphere(3), Ridge(), UNIFORM, SearchSettings(**{**vars(st),
                   "meta_gradient": "full", "truncate": None}), [0, 1])
    assert abs(meter.peak - base.peak - int(est)) <= 0.03 * int(est)
    assert est.estimator == estimator and est.steps == 30
    assert estimate_search_memory(Ridge(), SearchSettings(), 2, 3) is None
    assert estimate_search_memory(learner, SearchSettings(meta_gradient="es"), 2, 3) is None
