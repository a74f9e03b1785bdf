"""Algorithm 1 (meta_train and its drivers): the followed meta-gradient is the true gradient (finite
differences through meta_train itself, and a hand-built step loss), seeds batch independently and
reproducibly, deflation/penalties match their formulas in numpy, contrast losses match their formulas,
settings validation, and a diverging seed stopping alone.

How the gradient is read off: with ``optimiser="sgd"`` and one step, the parameters move by exactly
``-lr * grad``, so ``grad = (θ_0 - θ_1) / lr``. θ_0 is captured by a MetaMLP subclass whose ``init`` can also
shift the drawn parameters by a chosen δ, which is how the loss is evaluated at θ_0 ± εv *by meta_train
itself* (the data, learner and target draws depend only on the seeds, not on θ).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from learnscope.bias.metalearner import MetaMLP
from learnscope.bias.search import (
    SearchSettings,
    find_contrast,
    find_easiest,
    find_series,
    meta_train,
    override,
)
from learnscope.domains import Domain, Sphere
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.learners import RandomFeatureRidge, Ridge
from learnscope.targets import make_target

F64 = torch.float64
UNIFORM = make_target("uniform")  # U(-1, 1)


class RecordingMeta(MetaMLP):
    """MetaMLP that remembers its initial parameters and can shift them by ``delta`` (list like params)."""

    def __init__(self, *args, delta: list[torch.Tensor] | None = None, **kw):
        super().__init__(*args, **kw)
        self.delta = delta
        self.initial: list[torch.Tensor] = []

    def init(self, generators, dtype=torch.float32):
        params = super().init(generators, dtype)
        if self.delta is not None:
            with torch.no_grad():
                for p, d in zip(params, self.delta, strict=True):
                    p.add_(d.to(p.dtype))
        self.initial = [p.detach().clone() for p in params]
        return params


class RecordingDomain(Domain):
    """Wraps a domain and keeps every batch and spread set it hands out."""

    def __init__(self, inner: Domain):
        self.inner, self.dim, self.name = inner, inner.dim, inner.name
        self.batches: list[torch.Tensor] = []
        self.spread: list[torch.Tensor] = []

    def sample_batch(self, batch, n, generator, dtype=torch.float32):
        x = self.inner.sample_batch(batch, n, generator, dtype)
        self.batches.append(x.clone())
        return x

    def spread_sample(self, n, generator, dtype=torch.float32):
        x = self.inner.spread_sample(n, generator, dtype)
        self.spread.append(x.clone())
        return x


def _meta(delta=None, **kw) -> RecordingMeta:
    args = {"hidden": 10, "layers": 2, "tied": True} | kw
    return RecordingMeta(3, delta=delta, **args)


def _settings(**kw) -> SearchSettings:
    base = dict(steps=1, n_train=6, n_test=10, optimiser="sgd", lr=1e-2, dtype="float64", alpha_d=1.0)
    return SearchSettings(**(base | kw))


# --------------------------------------------------------------------------------------------------------
# the meta-gradient is the true gradient: finite differences through meta_train itself


def _first_function(seeds):
    """A previous function for the orthogonality cases (a few steps, float64)."""
    return meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, _settings(steps=3, optimiser="adam"), seeds).function


CASES = {
    "ridge-union": dict(settings={}, learner=lambda: Ridge(1e-3)),
    "ridge-train+test-B2": dict(settings={"distance_on": "train+test", "learners_per_step": 2},
                                learner=lambda: Ridge(1e-2, bias=True)),
    "ridge-test-samples": dict(settings={"distance_on": "test", "target_samples": 7}, learner=lambda: Ridge(1e-3)),
    "rf-resample-energy": dict(settings={"distance": "energy", "learners_per_step": 2},
                               learner=lambda: RandomFeatureRidge(15, lam=1e-2, resample=True)),
    "contrast-log-ratio": dict(settings={"contrast_objective": "log_ratio", "alpha_g": 0.5},
                               learner=lambda: Ridge(1e-3), learner_b=lambda: Ridge(1.0)),
    "deflate": dict(settings={"orthogonality": "deflate", "n_reference": 300}, learner=lambda: Ridge(1e-3),
                    previous=True),
    "normalised-penalty": dict(settings={"orthogonality": "normalised_penalty", "n_reference": 300,
                                         "alpha_o": 3.0}, learner=lambda: Ridge(1e-3), previous=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_meta_gradient_matches_finite_differences_of_meta_train(case):
    c = CASES[case]
    seeds = [3, 8]
    st = _settings(**c["settings"])
    prev = [_first_function(seeds)] if c.get("previous") else []

    def run(delta=None):
        meta = _meta(delta=delta, cos=True)
        kw = {"previous": prev}
        if "learner_b" in c:
            kw["learner_b"] = c["learner_b"]()
        res = meta_train(meta, Sphere(3), c["learner"](), UNIFORM, st, seeds, **kw)
        return meta, res

    meta, res = run()
    grads = [(p0 - p1) / st.lr for p0, p1 in zip(meta.initial, res.function.params, strict=True)]
    assert sum(float(g.abs().sum()) for g in grads) > 0
    eps = 1e-6
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        v = [torch.randn(g.shape, generator=gen, dtype=F64) for g in grads]
        lp = run([eps * t for t in v])[1].history["loss"][0]
        lm = run([-eps * t for t in v])[1].history["loss"][0]
        fd = (lp - lm) / (2 * eps)  # (S,)
        analytic = sum((g * t).reshape(len(seeds), -1).sum(1) for g, t in zip(grads, v, strict=True)).numpy()
        np.testing.assert_allclose(fd, analytic, rtol=1e-6, atol=1e-8 * np.abs(analytic).max())


# --------------------------------------------------------------------------------------------------------
# the same, with the step loss built by hand from closed forms


def _ridge_np_free(x_tr, y_tr, x_te, lam):
    """Ridge without intercept, (XᵀX + λI)⁻¹Xᵀy, in torch (differentiable in y)."""
    d = x_tr.shape[-1]
    A = x_tr.transpose(1, 2) @ x_tr + lam * torch.eye(d, dtype=x_tr.dtype)
    w = torch.linalg.solve(A, x_tr.transpose(1, 2) @ y_tr.unsqueeze(-1))
    return (x_te @ w).squeeze(-1)


def _w2_uniform(labels):
    """Exact W2² of each row's empirical law to U(-1, 1): mean (y_(i) − m_i)² + 1/(3n²), with bin means
    m_i = -1 + (2i + 1)/n and the within-bin variance (2/n)²/12 of a uniform bin."""
    n = labels.shape[1]
    m = -1 + (2 * torch.arange(n, dtype=labels.dtype) + 1) / n
    return ((torch.sort(labels, dim=1).values - m) ** 2).mean(1) + 1 / (3 * n * n)


def _hand_loss(meta, params, x, st, lam, lam_b=None):
    """One step of Algorithm 1 for S seeds × B learners, from closed forms. Returns (loss, gen, gen_b, dist)."""
    S, B, n, d = x.shape
    y = meta.forward(x, params).reshape(S * B, n)
    xf = x.reshape(S * B, n, d)
    x_tr, x_te, y_tr, y_te = xf[:, : st.n_train], xf[:, st.n_train:], y[:, : st.n_train], y[:, st.n_train:]
    gen = ((_ridge_np_free(x_tr, y_tr, x_te, lam) - y_te) ** 2).mean(1).reshape(S, B).mean(1)
    if st.distance_on == "union":
        dist = _w2_uniform(y)
    elif st.distance_on == "test":
        dist = _w2_uniform(y_te)
    else:
        dist = _w2_uniform(y_tr) + _w2_uniform(y_te)
    dist = dist.reshape(S, B).mean(1)
    gen_b = None
    term = gen
    if lam_b is not None:
        gen_b = ((_ridge_np_free(x_tr, y_tr, x_te, lam_b) - y_te) ** 2).mean(1).reshape(S, B).mean(1)
        term = gen - gen_b if st.contrast_objective == "difference" else gen.log() - gen_b.log()
    return st.alpha_g * term + st.alpha_d * dist, gen, gen_b, dist


@pytest.mark.parametrize("distance_on, B", [("union", 1), ("train+test", 2), ("test", 3)])
def test_hand_built_step_loss_value_gradient_and_finite_differences(distance_on, B):
    seeds = [0, 5]
    st = _settings(distance_on=distance_on, learners_per_step=B, alpha_g=2.0, alpha_d=0.5)
    dom = RecordingDomain(Sphere(3))
    meta = _meta()
    res = find_easiest(meta, dom, Ridge(1e-2), UNIFORM, st, seeds)
    x = torch.stack(dom.batches)  # (S, B, n, d): one sample_batch call per seed, in seed order
    assert x.shape == (2, B, 16, 3)
    params = [p.clone().requires_grad_(True) for p in meta.initial]
    loss, gen, _, dist = _hand_loss(meta, params, x, st, 1e-2)
    np.testing.assert_allclose(res.history["loss"][0], loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.history["generalisation"][0], gen.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.history["distribution"][0], dist.detach().numpy(), rtol=1e-12)
    grads = torch.autograd.grad(loss.sum(), params)
    followed = [(p0 - p1) / st.lr for p0, p1 in zip(meta.initial, res.function.params, strict=True)]
    for g, f in zip(grads, followed, strict=True):
        torch.testing.assert_close(f, g, rtol=1e-8, atol=1e-10)
    # the autograd gradient of the hand-built loss against central differences, entry by entry
    eps = 1e-6
    for k, idx in [(0, (0, 1, 3)), (0, (1, 2, 0)), (1, (1, 4)), (2, (0, 3, 5)), (4, (1, 7, 0)), (5, (0, 0))]:
        plus = [p.detach().clone() for p in params]
        minus = [p.detach().clone() for p in params]
        plus[k][idx] += eps
        minus[k][idx] -= eps
        with torch.no_grad():
            fd = (_hand_loss(meta, plus, x, st, 1e-2)[0] - _hand_loss(meta, minus, x, st, 1e-2)[0]).sum() / (2 * eps)
        g = float(grads[k][idx])
        assert abs(float(fd) - g) <= 1e-4 * abs(g) + 1e-9, (k, idx, float(fd), g)


# --------------------------------------------------------------------------------------------------------
# batching seeds and determinism


LEARNERS = {
    "ridge": lambda: Ridge(1e-3),
    "rf-resample": lambda: RandomFeatureRidge(12, lam=1e-2, resample=True),
    "rf-fixed": lambda: RandomFeatureRidge(12, lam=1e-2, resample=False),
}


def _compare_seed(a, ia, b, ib):
    """Seed ``ia`` of run a and seed ``ib`` of run b are bit-for-bit the same run: every history entry, the trained
    parameters and the function's values. Exact, not to a tolerance: meta-training amplifies a rounding
    difference exponentially (1e-7 at the first step grew to 1e-3 in the label std after 200 steps of the Fig 2
    config), so only equality at every step guarantees equal results at the end of a long run."""
    assert set(a.history) == set(b.history)
    for k in a.history:
        np.testing.assert_array_equal(a.history[k][:, ia], b.history[k][:, ib], err_msg=k)
    for pa, pb in zip(a.function.params, b.function.params, strict=True):
        assert torch.equal(pa[ia], pb[ib])
    x = Sphere(a.function.meta.d_in).sample(50, torch.Generator().manual_seed(99), F64)
    np.testing.assert_array_equal(a.function.for_seed(ia)(x), b.function.for_seed(ib)(x))


@pytest.mark.parametrize("learner", list(LEARNERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("B", [1, 2])
def test_batching_seeds_does_not_change_a_seed(learner, dtype, B):
    """B = 1 is the case that used to differ: a lone seed's learner batch of one took another BLAS kernel."""
    st = _settings(steps=6, optimiser="adagrad", lr=0.05, learners_per_step=B, dtype=dtype,
                   target_samples=9, target_resample=True)
    three = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [0, 1, 2])
    alone = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [1])
    first = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [0])
    _compare_seed(three, 1, alone, 0)
    _compare_seed(three, 0, first, 0)
    # the seeds really are different runs
    assert not np.allclose(three.history["loss"][:, 0], three.history["loss"][:, 1])


def test_batching_seeds_in_a_deflated_series():
    sts = [_settings(steps=3, optimiser="adam", n_reference=200, dtype="float32")] * 3
    both = find_series(lambda: _meta(), Sphere(3), Ridge(1e-3), UNIFORM, sts, seeds=[2, 7])
    alone = find_series(lambda: _meta(), Sphere(3), Ridge(1e-3), UNIFORM, sts, seeds=[7])
    for k, (rb, ra) in enumerate(zip(both, alone, strict=True)):
        _compare_seed(rb, 1, ra, 0)
        if k:
            assert torch.equal(rb.function.coef[1], ra.function.coef[0])


@pytest.mark.parametrize("learner", list(LEARNERS))
def test_batched_seeds_match_exact_seeds_to_rounding_and_a_batch_of_one_exactly(learner):
    """``seed_batching = "batched"`` shares kernel calls across seeds: the same run up to float64 rounding after a few
    steps, and for one seed the very computation of the exact mode."""
    st = _settings(steps=5, optimiser="adagrad", lr=0.05, learners_per_step=2, target_samples=9)
    batched = override(st, seed_batching="batched")
    exact = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [0, 1, 2])
    both = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, batched, [0, 1, 2])
    for k in exact.history:
        np.testing.assert_allclose(both.history[k], exact.history[k], rtol=1e-9, atol=1e-12, err_msg=k)
    one = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, batched, [1])
    _compare_seed(one, 0, exact, 1)


def test_a_diverging_seed_in_a_batch_is_frozen_and_the_others_go_on():
    st = _settings(steps=6, optimiser="adam", lr=0.02, seed_batching="batched")
    res = meta_train(_meta(), _NaNOnCall(bad=3 * 2 + 1), Ridge(1e-3), UNIFORM, st, [4, 9])  # seed 9 at step 3
    assert res.extra["diverged_at"] == [None, 3] and np.isnan(res.history["loss"][3:, 1]).all()
    two_steps = meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, override(st, steps=2), [4, 9])
    for p, q in zip(res.function.params, two_steps.function.params, strict=True):
        assert torch.equal(p[1], q[1])  # seed 9 keeps the parameters of its step 2, those a 2-step run ends with
    clean = meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, st, [4, 9])
    np.testing.assert_allclose(res.history["loss"][:, 0], clean.history["loss"][:, 0], rtol=1e-12)


@pytest.mark.parametrize("learner", ["ridge", "rf-resample"])
def test_rerun_is_identical(learner):
    st = _settings(steps=5, optimiser="adam", lr=0.02, dtype="float32", learners_per_step=2)
    a = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [4, 9])
    b = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [4, 9])
    for k in a.history:
        assert np.array_equal(a.history[k], b.history[k])
    for pa, pb in zip(a.function.params, b.function.params, strict=True):
        assert torch.equal(pa, pb)
    c = meta_train(_meta(), Sphere(3), LEARNERS[learner](), UNIFORM, st, [4, 10])
    assert np.array_equal(a.history["loss"][:, 0], c.history["loss"][:, 0])
    assert not np.array_equal(a.history["loss"][:, 1], c.history["loss"][:, 1])


# --------------------------------------------------------------------------------------------------------
# orthogonality


def _series(mode, n=3, seeds=(0, 1), steps=(4, 4, 4), dtype="float64", **kw):
    dom = RecordingDomain(Sphere(3))
    metas: list[RecordingMeta] = []

    def make_meta():
        metas.append(_meta(hidden=12))
        return metas[-1]

    sts = [_settings(steps=steps[k], optimiser="adam", lr=0.02, orthogonality=mode, n_reference=2000,
                     dtype=dtype, **kw) for k in range(n)]
    res = find_series(make_meta, dom, Ridge(1e-3), UNIFORM, sts, seeds=list(seeds))
    return res, dom, metas


def test_deflation_orthogonal_on_reference_and_fresh_points():
    res, dom, metas = _series("deflate")
    # one reference set (same stream) for every later function
    assert len(dom.spread) == 2 * 2
    ref = torch.stack(dom.spread[:2])  # (S, R, d)
    assert torch.equal(ref, torch.stack(dom.spread[2:]))
    fresh = torch.stack([Sphere(3).sample(20000, torch.Generator().manual_seed(50 + s), F64) for s in range(2)])
    f_ref = [r.function(ref).numpy() for r in res]  # each (S, R)
    f_new = [r.function(fresh).numpy() for r in res]
    for k in range(1, 3):
        for j in range(k):
            norm = np.sqrt((f_ref[k] ** 2).mean(1) * (f_ref[j] ** 2).mean(1))
            # the Cholesky jitter 1e-8·mean f_j² bounds the residual correlation at ~1e-8
            assert (np.abs((f_ref[k] * f_ref[j]).mean(1)) < 1e-7 * norm).all()
            prod = f_new[k] * f_new[j]
            se = prod.std(1) / math.sqrt(prod.shape[1])
            assert (np.abs(prod.mean(1)) < 5 * se + 1e-3 * norm).all()
    # the frozen coefficients are the least-squares fit of the raw network on earlier functions
    for k in range(1, 3):
        fn = res[k].function
        raw = fn.raw(ref).numpy()
        for s in range(2):
            A = np.stack([f_ref[j][s] for j in range(k)], axis=1)
            c = np.linalg.lstsq(A, raw[s], rcond=None)[0]
            np.testing.assert_allclose(fn.coef[s].numpy(), c, rtol=1e-6, atol=1e-9 * np.abs(c).max())
        np.testing.assert_allclose(f_ref[k], raw - np.einsum("sk,srk->sr", fn.coef.numpy(),
                                                             np.stack(f_ref[:k], -1)), atol=1e-12)


def test_deflation_float32_orthogonal_to_float_precision():
    res, dom, _ = _series("deflate", n=2, seeds=(3,), dtype="float32")
    ref = dom.spread[0][None]
    f1, f2 = (r.function(ref).double().numpy() for r in res)
    norm = np.sqrt((f1**2).mean() * (f2**2).mean())
    assert abs((f1 * f2).mean()) < 1e-5 * norm


@pytest.mark.parametrize("mode", ["normalised_penalty", "penalty"])
def test_orthogonality_penalties_match_numpy(mode):
    res, dom, metas = _series(mode, steps=(4, 1, 1), alpha_o=0.3)
    ref = torch.stack(dom.spread[:2]).numpy()
    f = [r.function for r in res]
    prev_vals = [f[j](torch.from_numpy(ref)).numpy() for j in range(3)]
    for k in (1, 2):
        assert res[k].function.coef is None  # penalty modes keep the raw network
        # at step 0 the penalty is taken at the initial parameters of the k-th network
        h = metas[k].forward(torch.from_numpy(ref), metas[k].initial).detach().numpy()
        expected = np.zeros(2)
        for j in range(k):
            dot = (h * prev_vals[j]).mean(1)
            if mode == "normalised_penalty":
                expected += dot**2 / (prev_vals[j] ** 2).mean(1)
            else:
                expected += (h * prev_vals[j]).sum(1) ** 2
        np.testing.assert_allclose(res[k].history["orthogonality"][0], expected, rtol=1e-10)
        hist = res[k].history
        np.testing.assert_allclose(
            hist["loss"], hist["generalisation"] + hist["distribution"] + 0.3 * hist["orthogonality"], rtol=1e-12
        )
    assert (res[0].history["orthogonality"] == 0).all()


# --------------------------------------------------------------------------------------------------------
# contrast


@pytest.mark.parametrize("objective", ["log_ratio", "difference"])
def test_contrast_history_and_loss_formula(objective):
    st = _settings(steps=4, optimiser="adam", lr=0.02, contrast_objective=objective, alpha_g=0.7, alpha_d=1.3,
                   learners_per_step=2)
    dom = RecordingDomain(Sphere(3))
    meta = _meta()
    res = find_contrast(meta, dom, Ridge(1e-3), Ridge(1.0), UNIFORM, st, seeds=[0, 3])
    h = res.history
    assert set(h) == {"loss", "generalisation", "generalisation_b", "distribution", "orthogonality"}
    g, gb, dist = h["generalisation"], h["generalisation_b"], h["distribution"]
    term = np.log(g) - np.log(gb) if objective == "log_ratio" else g - gb
    np.testing.assert_allclose(h["loss"], 0.7 * term + 1.3 * dist, rtol=1e-12, atol=1e-14)
    # step 0 from closed forms
    x = torch.stack(dom.batches[:2])
    loss, g0, gb0, d0 = _hand_loss(meta, meta.initial, x, st, 1e-3, lam_b=1.0)
    np.testing.assert_allclose(g[0], g0.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb[0], gb0.numpy(), rtol=1e-12)
    np.testing.assert_allclose(h["loss"][0], loss.numpy(), rtol=1e-12)
    assert not np.allclose(g, gb)


def test_contrast_with_itself_cancels_generalisation():
    st = _settings(steps=3, optimiser="adam", lr=0.02, contrast_objective="log_ratio")
    res = find_contrast(_meta(), Sphere(3), Ridge(1e-3), Ridge(1e-3), UNIFORM, st, seeds=[1])
    np.testing.assert_array_equal(res.history["generalisation"], res.history["generalisation_b"])
    np.testing.assert_allclose(res.history["loss"], res.history["distribution"], rtol=1e-14)


def test_easiest_has_no_b_history():
    res = find_easiest(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, _settings(steps=2), seeds=[0])
    assert "generalisation_b" not in res.history
    assert all(v.shape == (2, 1) for v in res.history.values())


# --------------------------------------------------------------------------------------------------------
# found functions


def test_found_function_for_seed_and_range():
    res = meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, _settings(steps=2), [5, 6, 7])
    fn = res.function
    x = Sphere(3).sample(13, torch.Generator().manual_seed(0), F64)
    both = fn(x.expand(3, 13, 3)).numpy()
    assert both.shape == (3, 13)
    for i in range(3):
        np.testing.assert_array_equal(fn.for_seed(i)(x.numpy()), both[i])
    assert not np.allclose(both[0], both[1])
    with pytest.raises(ConfigError):
        fn.for_seed(3)


# --------------------------------------------------------------------------------------------------------
# settings validation and divergence


BAD = [
    ("steps", 0), ("n_train", -1), ("n_test", 1.5), ("learners_per_step", True), ("n_reference", 0),
    ("lr", 0.0), ("lr", -1.0), ("lr", math.inf), ("alpha_g", -1.0), ("alpha_d", math.nan), ("alpha_o", "1"),
    ("target_samples", -1), ("target_samples", True), ("target_samples", 2.0),
    ("es_pairs", 0), ("es_pairs", 2.0), ("es_sigma", 0.0), ("es_sigma", math.nan),
    # segment / truncate: positive integers, and only with the estimator they belong to
    ("segment", 3), ("truncate", 3),
]
BAD_NAMES = [
    ("optimiser", "adagard", "adagrad"), ("distance_on", "tset", "test"),
    ("contrast_objective", "log_ratoi", "log_ratio"), ("orthogonality", "deflation", "deflate"),
    ("dtype", "float16", None), ("meta_gradient", "checkpointd", "checkpointed"),
    ("meta_gradient", "trunctaed", "truncated"),
]


@pytest.mark.parametrize("changes, fragment", [
    ({"meta_gradient": "checkpointed", "segment": 0}, "search.segment must be a positive integer"),
    ({"meta_gradient": "truncated", "truncate": -2}, "search.truncate must be a positive integer"),
    ({"meta_gradient": "truncated"}, "needs search.truncate = K"),
    ({"meta_gradient": "implicit", "segment": 4}, "search.segment applies to search.meta_gradient = 'checkpointed'"),
])
def test_meta_gradient_settings_are_checked(changes, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        SearchSettings(**changes)
    assert "\n" not in str(err.value)
    assert SearchSettings(meta_gradient="checkpointed", segment=4).segment == 4  # and a valid pair is kept


@pytest.mark.parametrize("field, value", BAD)
def test_settings_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"search.{field}"):
        SearchSettings(**{field: value})
    with pytest.raises(ConfigError, match=f"search.{field}"):
        override(SearchSettings(), **{field: value})


@pytest.mark.parametrize("field, value, near", BAD_NAMES)
def test_settings_unknown_names(field, value, near):
    with pytest.raises(UnknownNameError, match=f"search.{field}") as err:
        SearchSettings(**{field: value})
    if near is not None:
        assert f"did you mean {near!r}" in str(err.value)


def test_settings_unknown_distance():
    with pytest.raises(UnknownNameError, match="search.distance"):
        SearchSettings(distance="w3")


def test_unknown_distance_fails_at_latest_in_meta_train():
    with pytest.raises(UnknownNameError, match="did you mean 'w2'"):
        meta_train(_meta(), Sphere(3), Ridge(), UNIFORM, _settings(distance="w3"), [0])


def test_no_seeds():
    with pytest.raises(ConfigError):
        meta_train(_meta(), Sphere(3), Ridge(), UNIFORM, _settings(), [])


class _NaNOnCall(Domain):
    """Sphere(3) whose ``bad``-th batch (0-based, counting every seed's draw) is NaN: with S seeds, call
    ``step * S + i`` is seed i's batch at ``step``."""

    def __init__(self, bad: int):
        self.inner, self.dim, self.name, self.bad, self.calls = Sphere(3), 3, "sphere", bad, 0

    def sample_batch(self, batch, n, generator, dtype=torch.float32):
        x = self.inner.sample_batch(batch, n, generator, dtype)
        self.calls += 1
        return x * math.nan if self.calls - 1 == self.bad else x

    def spread_sample(self, n, generator, dtype=torch.float32):
        return self.inner.spread_sample(n, generator, dtype)


def test_a_diverging_seed_stops_at_its_last_finite_step_and_the_others_go_on():
    st = _settings(steps=6, optimiser="adam", lr=0.02)
    res = meta_train(_meta(), _NaNOnCall(bad=3 * 2 + 1), Ridge(1e-3), UNIFORM, st, [4, 9])  # seed 9 at step 3
    assert res.extra["diverged_at"] == [None, 3] and res.extra["diverged_what"] == [None, "labels"]
    loss = res.history["loss"]
    assert np.isfinite(loss[:3, 1]).all() and np.isnan(loss[3:, 1]).all() and np.isfinite(loss[:, 0]).all()
    # seed 9 keeps the parameters of its last finite step (step 2): those a 3-step run ends with… minus one update,
    # i.e. the parameters of a 2-step run; seed 4 is the run it would be alone
    two_steps = meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, _settings(steps=2, optimiser="adam", lr=0.02),
                           [9])
    for p, q in zip(res.function.params, two_steps.function.params, strict=True):
        assert torch.equal(p[1], q[0])
    alone = meta_train(_meta(), Sphere(3), Ridge(1e-3), UNIFORM, st, [4])
    _compare_seed(res, 0, alone, 0)


def test_a_blown_up_search_is_recorded_not_raised():
    """SGD at lr 1e10 sends the parameters to inf: the run returns, with the step recorded for the verdict."""
    st = SearchSettings(steps=20, n_train=8, n_test=12, optimiser="sgd", lr=1e10)
    res = meta_train(MetaMLP(3, hidden=16), Sphere(3), Ridge(), UNIFORM, st, [41, 42])
    at = res.extra["diverged_at"]
    assert all(isinstance(t, int) and 0 < t < 20 for t in at), at
    for i, t in enumerate(at):
        assert np.isfinite(res.history["loss"][:t, i]).all() and np.isnan(res.history["loss"][t:, i]).all()
    x = Sphere(3).sample(100, torch.Generator().manual_seed(0), F64)
    assert all(np.isfinite(res.function.for_seed(i)(x)).all() for i in range(2))


# --------------------------------------------------------------------------------------------------------
# a whole experiment: `--seed 2` alone reproduces seed 2 of a batched run (issue 11 item 13)


def test_a_seed_run_alone_reproduces_that_seed_of_a_batched_experiment():
    """A mushroom body with one learner per step (B = 1), the case where a lone seed's learner batch of one took
    another BLAS kernel than the batch of three. Every number of seed 2 — history, parameters, values on the
    evaluation points, every metric and check — is bit-for-bit equal (see :func:`_compare_seed` for why exact)."""
    from learnscope.bias.config import parse_config
    from learnscope.bias.experiment import run_experiment

    raw = {"run": {"kind": "easiest", "seeds": [0, 1, 2]}, "domain": {"name": "sphere", "dim": 5},
           "learner": {"name": "mushroom_body", "n_hidden": 30, "scheme": "overconnected", "steps": 10},
           "meta": {"hidden": 16}, "search": {"steps": 4, "n_train": 20, "n_test": 40, "lr": 0.01, "optimiser": "adam"},
           "analysis": {"n_eval": 600, "gen_draws": 6, "max_degree": 2}}
    batched = run_experiment(parse_config(raw), progress=False)
    raw["run"]["seeds"] = [2]
    alone = run_experiment(parse_config(raw), progress=False)
    _compare_seed(batched.functions[0], 2, alone.functions[0], 0)
    fb, fa = batched.metrics["functions"][0], alone.metrics["functions"][0]
    assert fb["per_seed"][2] == fa["per_seed"][0]
    np.testing.assert_array_equal(batched.arrays["f1_values"][2], alone.arrays["f1_values"][0])
    vb, va = batched.metrics["verdict"]["checks"]["f1"]["2"], alone.metrics["verdict"]["checks"]["f1"]["2"]
    assert json.dumps(vb) == json.dumps(va)
    dep_b, dep_a = fb["input_dependence"], fa["input_dependence"]
    assert dep_b["weights"][2] == dep_a["weights"][0]
    assert dep_b["paired"]["per_seed"][2] == dep_a["paired"]["per_seed"][0]
