"""Closed-form learners: numpy / sklearn references, finite-difference meta-gradients, random features."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge as SkRidge

from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError
from learnscope.learners import (
    LEARNERS,
    KernelRidge,
    RandomFeatureRidge,
    Ridge,
    arccos,
    draw_normal,
    kernel_ridge_predict,
    make_learner,
    ridge_predict,
    spd_solve,
)

F64 = torch.float64


def _task(gen, seed: int, B: int = 3, n: int = 6, m: int = 9, d: int = 3, dtype: torch.dtype = F64):
    """Inputs on the unit sphere, a smooth non-linear target; returns x_tr, y_tr, x_te, y_te."""
    g = gen(seed)
    x = torch.randn(B, n + m, d, generator=g, dtype=dtype)
    x = x / x.norm(dim=-1, keepdim=True)
    y = x[..., 0] + 0.5 * x[..., 1] * x[..., -1] + 0.1 * torch.randn(B, n + m, generator=g, dtype=dtype)
    return x[:, :n], y[:, :n], x[:, n:], y[:, n:]


def _np_ridge(F: np.ndarray, y: np.ndarray, Ft: np.ndarray, lam: float) -> np.ndarray:
    out = []
    for b in range(F.shape[0]):
        w = np.linalg.solve(F[b].T @ F[b] + lam * np.eye(F.shape[2]), F[b].T @ y[b])
        out.append(Ft[b] @ w)
    return np.stack(out)


# ---------------------------------------------------------------- solvers


@pytest.mark.parametrize("p", [4, 12])  # p <= n: primal (p×p) solve; p > n: dual (n×n) solve
def test_ridge_predict_primal_and_dual_match_numpy(gen, p: int) -> None:
    g = gen(0)
    F, Ft, y = (
        torch.randn(3, 7, p, generator=g, dtype=F64),
        torch.randn(3, 5, p, generator=g, dtype=F64),
        torch.randn(3, 7, generator=g, dtype=F64),
    )
    for lam in (1e-3, 0.7):
        ref = _np_ridge(F.numpy(), y.numpy(), Ft.numpy(), lam)
        np.testing.assert_allclose(ridge_predict(F, y, Ft, lam).numpy(), ref, rtol=1e-9, atol=1e-10)


def test_kernel_ridge_predict_matches_numpy(gen) -> None:
    g = gen(1)
    A = torch.randn(2, 6, 10, generator=g, dtype=F64)
    K, Kte = A @ A.transpose(1, 2), torch.randn(2, 4, 6, generator=g, dtype=F64)
    y = torch.randn(2, 6, generator=g, dtype=F64)
    ref = np.stack(
        [Kte[b].numpy() @ np.linalg.solve(K[b].numpy() + 0.01 * np.eye(6), y[b].numpy()) for b in range(2)]
    )
    np.testing.assert_allclose(kernel_ridge_predict(K, y, Kte, 0.01).numpy(), ref, rtol=1e-10, atol=1e-12)


def test_spd_solve_falls_back_for_indefinite_matrices() -> None:
    A = torch.tensor([[[2.0, 1.0], [1.0, -3.0]]], dtype=F64)  # symmetric, indefinite: Cholesky fails
    b = torch.tensor([[[1.0], [2.0]]], dtype=F64)
    np.testing.assert_allclose(
        spd_solve(A, b).numpy()[0], np.linalg.solve(A[0].numpy(), b[0].numpy()), rtol=1e-12
    )


# ---------------------------------------------------------------- ridge


def test_ridge_matches_numpy_and_sklearn(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 2, B=3, n=8, m=5)
    ref = _np_ridge(x_tr.numpy(), y_tr.numpy(), x_te.numpy(), 0.05)
    np.testing.assert_allclose(Ridge(0.05).fit_predict(x_tr, y_tr, x_te).numpy(), ref, rtol=1e-10, atol=1e-12)
    pred = Ridge(0.05, bias=True).fit_predict(x_tr, y_tr, x_te).numpy()
    for b in range(3):
        sk = SkRidge(alpha=0.05, fit_intercept=True).fit(x_tr[b].numpy(), y_tr[b].numpy())
        np.testing.assert_allclose(pred[b], sk.predict(x_te[b].numpy()), rtol=1e-9, atol=1e-10)


def test_ridge_is_exact_on_linear_and_affine_targets(gen) -> None:
    g = gen(3)
    x = torch.randn(2, 30, 4, generator=g, dtype=F64)
    w = torch.randn(2, 4, generator=g, dtype=F64)
    y = (x @ w[:, :, None])[..., 0]
    pred = Ridge(1e-10).fit_predict(x[:, :10], y[:, :10], x[:, 10:])
    torch.testing.assert_close(pred, y[:, 10:], rtol=0, atol=1e-8)
    pred = Ridge(1e-10, bias=True).fit_predict(x[:, :10], y[:, :10] + 3.0, x[:, 10:])
    torch.testing.assert_close(pred, y[:, 10:] + 3.0, rtol=0, atol=1e-8)
    # without the intercept the same affine target is not fitted exactly
    pred = Ridge(1e-10).fit_predict(x[:, :10], y[:, :10] + 3.0, x[:, 10:])
    assert (pred - y[:, 10:] - 3.0).abs().max() > 0.1


# ---------------------------------------------------------------- kernel ridge


def test_kernel_ridge_arccos1_matches_numpy_closed_form(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 4, B=2, n=7, m=4)

    def k1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        na, nb = np.linalg.norm(a, axis=1)[:, None], np.linalg.norm(b, axis=1)[None, :]
        th = np.arccos(np.clip(a @ b.T / (na * nb), -1, 1))
        return na * nb * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)

    pred = KernelRidge("arccos1", lam=1e-3).fit_predict(x_tr, y_tr, x_te).numpy()
    for b in range(2):
        a, t, y = x_tr[b].numpy(), x_te[b].numpy(), y_tr[b].numpy()
        ref = k1(t, a) @ np.linalg.solve(k1(a, a) + 1e-3 * np.eye(7), y)
        np.testing.assert_allclose(pred[b], ref, rtol=1e-8, atol=1e-10)


def test_kernel_ridge_accepts_callable_kernel(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 5, B=2, n=5, m=3)
    lin = KernelRidge(lambda a, b: a @ b.transpose(1, 2), lam=0.1).fit_predict(x_tr, y_tr, x_te)
    torch.testing.assert_close(lin, Ridge(0.1).fit_predict(x_tr, y_tr, x_te), rtol=1e-9, atol=1e-11)
    with pytest.raises(ConfigError):
        KernelRidge(lambda a, b: a @ b.transpose(1, 2), depth=2)


# ---------------------------------------------------------------- meta-gradients


def _fd_check(fn, y0: torch.Tensor, eps: float = 1e-6) -> float:
    """Relative error between the autograd gradient of a scalar fn at y0 and central differences."""
    y = y0.clone().requires_grad_(True)
    (g_ad,) = torch.autograd.grad(fn(y), y)
    g_fd = torch.zeros_like(y0)
    flat = g_fd.view(-1)
    for i in range(y0.numel()):
        e = torch.zeros_like(y0).view(-1)
        e[i] = eps
        e = e.view_as(y0)
        flat[i] = (fn(y0 + e) - fn(y0 - e)) / (2 * eps)
    return ((g_ad - g_fd).norm() / g_fd.norm()).item()


LEARNER_CASES = {
    "ridge": lambda: Ridge(1e-3),
    "ridge_bias": lambda: Ridge(1e-2, bias=True),
    "krr_rbf": lambda: KernelRidge("rbf", lengthscale=0.8),
    "krr_arccos0": lambda: KernelRidge("arccos0"),
    "krr_arccos1": lambda: KernelRidge("arccos1"),
    "krr_nngp": lambda: KernelRidge("nngp", depth=2, sigma_b2=0.1),
    "krr_ntk": lambda: KernelRidge("ntk", depth=2, sigma_b2=0.1),
    "rf_fixed_dual": lambda: RandomFeatureRidge(20, resample=False),  # K = 20 > n = 6
    "rf_fixed_primal": lambda: RandomFeatureRidge(4, resample=False),  # K = 4 <= n = 6
}


@pytest.mark.parametrize("case", sorted(LEARNER_CASES))
def test_meta_gradient_wrt_labels_matches_finite_differences(gen, case: str) -> None:
    """d(mean squared test error)/d y_train by autograd == central differences (float64, rel. err < 1e-4)."""
    learner = LEARNER_CASES[case]()
    x_tr, y_tr, x_te, y_te = _task(gen, 6, B=2, n=6, m=9)
    gen = gen(7)

    def loss(y: torch.Tensor) -> torch.Tensor:
        return ((learner.fit_predict(x_tr, y, x_te, generator=gen) - y_te) ** 2).mean()

    loss(y_tr)  # first call draws the fixed features of the random-feature learners
    assert _fd_check(loss, y_tr) < 1e-4


def test_meta_gradient_resampled_features_with_reseeded_generator(gen) -> None:
    """resample=True is deterministic when the generator state is the same at every call."""
    learner = RandomFeatureRidge(20, resample=True)
    x_tr, y_tr, x_te, y_te = _task(gen, 8, B=2, n=6, m=9)

    def loss(y: torch.Tensor) -> torch.Tensor:
        return ((learner.fit_predict(x_tr, y, x_te, generator=gen(9)) - y_te) ** 2).mean()

    assert _fd_check(loss, y_tr) < 1e-4


@pytest.mark.parametrize("kernel", ["rbf", "arccos0", "arccos1", "nngp", "ntk"])
def test_gradient_wrt_inputs_is_finite_and_matches_finite_differences(gen, kernel: str) -> None:
    """The Gram diagonal has θ = 0 (x·x); the gradient w.r.t. x_train must be finite and correct there."""
    learner = KernelRidge(kernel, lam=1e-2)
    x_tr, y_tr, x_te, y_te = _task(gen, 10, B=1, n=4, m=5)
    x_tr = 1.5 * x_tr  # off the unit sphere so the norms matter

    def loss(x: torch.Tensor) -> torch.Tensor:
        return ((learner.fit_predict(x, y_tr, x_te) - y_te) ** 2).mean()

    assert _fd_check(loss, x_tr) < 1e-4


# ---------------------------------------------------------------- random features


def test_random_features_converge_to_arccos1_kernel_ridge(gen) -> None:
    """normalise=True, J ~ N(0, I): F Fᵀ → k_1, so predictions → KernelRidge("arccos1") at rate ~1/√K.
    Measured relative RMS error (mean over 8 problems, 4 seeds): 7.5–9.9% (K=100), 2.8–3.4% (K=1000),
    0.7–0.9% (K=10000). Checked: each 10× in K cuts the error by > 2 (expected √10), largest-K error < 2%."""
    x_tr, y_tr, x_te, _ = _task(gen, 11, B=8, n=10, m=50)
    ref = KernelRidge("arccos1", lam=1e-3).fit_predict(x_tr, y_tr, x_te)
    errs = []
    for K in (100, 1000, 10000):
        pred = RandomFeatureRidge(K, lam=1e-3, normalise=True).fit_predict(
            x_tr, y_tr, x_te, generator=gen(12)
        )
        errs.append((((pred - ref) ** 2).mean(1).sqrt() / (ref**2).mean(1).sqrt()).mean().item())
    assert errs[0] > 2 * errs[1] > 4 * errs[2], errs
    assert errs[2] < 0.02, errs


def test_random_feature_gram_is_unbiased_for_arccos1(gen) -> None:
    """E[ReLU(w·x) ReLU(w·x')] = k_1(x, x'): the empirical F Fᵀ/K is within 5 standard errors of k_1."""
    learner, K = RandomFeatureRidge(200_000), 200_000
    x = torch.randn(1, 5, 3, generator=gen(13), dtype=F64)
    F = learner.features_of(x, learner.draw_weights(gen(14), 1, 3, F64))[0]  # (5, K)
    prod = F[:, None, :] * F[None, :, :]
    mean, se = prod.mean(-1), prod.std(-1) / math.sqrt(K)
    assert ((mean - arccos(x, x, 1)[0]).abs() <= 5 * se + 1e-12).all()


def test_variances_scale_feature_weight_rows(gen) -> None:
    J0 = RandomFeatureRidge(7).draw_weights(gen(15), 2, 3, F64)
    J = RandomFeatureRidge(7, variances=[1.0, 4.0, 0.25]).draw_weights(gen(15), 2, 3, F64)
    torch.testing.assert_close(J, J0 * torch.tensor([1.0, 2.0, 0.5], dtype=F64)[:, None], rtol=1e-14, atol=0)
    x_tr, y_tr, x_te, _ = _task(gen, 16, B=2, n=6, m=3, d=2)
    with pytest.raises(ConfigError, match="variances"):
        RandomFeatureRidge(7, variances=[1.0, 4.0, 0.25]).fit_predict(x_tr, y_tr, x_te, generator=gen(0))


def test_fixed_mode_reuses_features_and_resample_mode_redraws(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 17, B=2, n=6, m=4)
    g = gen(18)
    fixed = RandomFeatureRidge(20, resample=False)
    assert fixed.fixed_weights_ is None
    a = fixed.fit_predict(x_tr, y_tr, x_te, generator=g)
    J = fixed.fixed_weights_
    torch.testing.assert_close(J, RandomFeatureRidge(20).draw_weights(gen(18), 2, 3, F64), rtol=0, atol=0)
    # fitted state, not a parameter: the description (and a learner rebuilt from it) does not carry it
    assert fixed.describe() == RandomFeatureRidge(20, resample=False).describe()
    assert make_learner(fixed.describe()).fixed_weights_ is None
    torch.testing.assert_close(fixed.fit_predict(x_tr, y_tr, x_te, generator=g), a, rtol=0, atol=0)
    assert fixed.fixed_weights_ is J
    torch.testing.assert_close(fixed.fit_predict(x_tr, y_tr, x_te), a, rtol=0, atol=0)  # no generator needed
    resample = RandomFeatureRidge(20, resample=True)
    b1 = resample.fit_predict(x_tr, y_tr, x_te, generator=g)
    b2 = resample.fit_predict(x_tr, y_tr, x_te, generator=g)
    assert (b1 - b2).abs().max() > 1e-3
    # the batch elements get different features even with identical data
    same = resample.fit_predict(
        x_tr[:1].expand(2, -1, -1), y_tr[:1].expand(2, -1), x_te[:1].expand(2, -1, -1), generator=g
    )
    assert (same[0] - same[1]).abs().max() > 1e-3
    x3, y3, xt3, _ = _task(gen, 19, B=3, n=6, m=4)
    with pytest.raises(ConfigError, match="reset"):
        fixed.fit_predict(x3, y3, xt3, generator=g)
    fixed.reset()
    assert fixed.fixed_weights_ is None
    assert fixed.fit_predict(x3, y3, xt3, generator=g).shape == (3, 4)
    assert fixed.fixed_weights_.shape == (3, 3, 20)


@pytest.mark.parametrize("resample", [True, False])
def test_generator_list_gives_per_block_draws(gen, resample: bool) -> None:
    """Block 0 of a batch drawn with (g0, g1) == a one-block batch drawn with a fresh g0 of the same seed."""
    x_tr, y_tr, x_te, _ = _task(gen, 20, B=4, n=6, m=5)
    two = RandomFeatureRidge(20, resample=resample).fit_predict(
        x_tr, y_tr, x_te, generator=[gen(1), gen(2)]
    )
    one = RandomFeatureRidge(20, resample=resample).fit_predict(
        x_tr[:2], y_tr[:2], x_te[:2], generator=[gen(1)]
    )
    torch.testing.assert_close(two[:2], one, rtol=0, atol=0)
    other = RandomFeatureRidge(20, resample=resample).fit_predict(
        x_tr[2:], y_tr[2:], x_te[2:], generator=gen(2)
    )
    torch.testing.assert_close(two[2:], other, rtol=0, atol=0)


def test_draw_normal_blocks_and_errors(gen) -> None:
    z = draw_normal([gen(3), gen(4)], 6, (2,), F64)
    torch.testing.assert_close(z[:3], torch.randn(3, 2, generator=gen(3), dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(z[3:], torch.randn(3, 2, generator=gen(4), dtype=F64), rtol=0, atol=0)
    with pytest.raises(ShapeError, match="divisible"):
        draw_normal([gen(3), gen(4)], 5, (2,), F64)
    with pytest.raises(ConfigError, match="generator"):
        draw_normal(None, 2, (2,), F64)


@pytest.mark.parametrize("case", sorted(LEARNER_CASES))
def test_float32_in_float32_out(gen, case: str) -> None:
    learner = LEARNER_CASES[case]()
    x_tr, y_tr, x_te, _ = _task(gen, 21, B=2, n=6, m=4, dtype=torch.float32)
    pred = learner.fit_predict(x_tr, y_tr, x_te, generator=gen(0))
    assert pred.dtype == torch.float32 and pred.shape == (2, 4) and torch.isfinite(pred).all()


# ---------------------------------------------------------------- registry


def test_make_learner_from_name_dict_and_object() -> None:
    assert isinstance(make_learner("ridge"), Ridge)
    krr = make_learner({"name": "kernel_ridge", "kernel": "ntk", "depth": 3, "lam": 0.01})
    assert krr.kernel_params["depth"] == 3 and krr.lam == 0.01
    mine = KernelRidge("rbf")
    assert make_learner(mine) is mine
    with pytest.raises(ConfigError):
        make_learner(42)
    with pytest.raises(ConfigError, match="name"):
        make_learner({"lam": 0.1})


# One non-default value per constructor argument where that is cheap to state (d = 4 inputs). A learner missing
# here is still checked with its defaults; the table only makes the check stronger.
NON_DEFAULT = {
    "ridge": {"lam": 0.02, "bias": True},
    "kernel_ridge": {"kernel": "nngp", "lam": 0.02, "depth": 2, "sigma_w2": 1.5, "sigma_b2": 0.1},
    "random_features": {"features": 7, "lam": 0.02, "variances": [1.0, 2.0, 0.5, 1.0], "resample": False,
                        "normalise": True},
    "trained": {"circuit": {"circuit": "mlp", "hidden": [4]}, "rule": "fa", "steps": 2, "lr": 0.1, "batch_size": 3,
                "optimiser": "momentum"},
    "mushroom_body": {"n_inputs": 4, "n_hidden": 6, "fan_in": 3, "scheme": "overconnected", "positive": "abs",
                      "probs": [0.4, 0.3, 0.2, 0.1], "steps": 2, "lr": 0.1, "batch_size": 4, "rule": "kp"},
    "spiking": {"n_hidden": 3, "t_sim": 4, "steps": 2, "lr": 0.1, "batch_size": 3, "encoding": "rate",
                "max_rate": 200.0, "surrogate": "sigmoid", "slope": 4.0, "smooth": True, "input_gain": 0.3,
                "tau_syn": 4.0, "tau_mem": 8.0, "readout": "last", "detach_reset": True, "rule": "fa"},
    "small_cnn": {"in_shape": [1, 2, 2], "channels": 2, "kernel": 3, "steps": 2, "lr": 0.01, "batch_size": 3},
}


@pytest.mark.parametrize("non_default", [False, True], ids=["defaults", "non_defaults"])
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_registered_learner_is_rebuilt_from_its_description(gen, name: str, non_default: bool) -> None:
    """describe() names the learner's registry entry, lists every constructor argument as given, is strict JSON,
    and make_learner(describe()) rebuilds a learner with the same description, repr and predictions."""
    kwargs = NON_DEFAULT.get(name, {}) if non_default else {}
    learner = make_learner({"name": name, **kwargs})
    spec = learner.describe()
    assert spec["name"] == name and LEARNERS[name] is type(learner)
    assert set(type(learner).param_names()) <= set(spec)  # KernelRidge adds its kernel's parameters
    assert {k: spec[k] for k in kwargs} == kwargs
    assert json.loads(json.dumps(spec, allow_nan=False)) == spec
    rebuilt = make_learner(spec)
    assert type(rebuilt) is type(learner) and rebuilt.describe() == spec and repr(rebuilt) == repr(learner)
    x_tr, y_tr, x_te, _ = _task(gen, 24, B=2, n=6, m=3, d=4)
    torch.testing.assert_close(
        rebuilt.fit_predict(x_tr, y_tr, x_te, generator=gen(6)),
        learner.fit_predict(x_tr, y_tr, x_te, generator=gen(6)),
        rtol=0,
        atol=0,
    )


def test_repr_is_the_constructor_call() -> None:
    """repr lists every constructor argument as stored, so evaluating it rebuilds the learner."""
    classes = {cls.__name__: cls for cls in (Ridge, KernelRidge, RandomFeatureRidge)}
    learners = (Ridge(0.02, bias=True), KernelRidge("ntk", lam=0.5, depth=3), RandomFeatureRidge(5, variances=[1, 2]))
    for learner in learners:
        assert repr(learner).startswith(type(learner).__name__ + "(")
        assert eval(repr(learner), classes).describe() == learner.describe()
    assert repr(Ridge(0.01)) == "Ridge(lam=0.01, bias=False)"


@pytest.mark.parametrize("case", sorted(LEARNER_CASES))
def test_describe_round_trip_rebuilds_the_same_learner(gen, case: str) -> None:
    learner = LEARNER_CASES[case]()
    rebuilt = make_learner(learner.describe())
    assert rebuilt.describe() == learner.describe()
    x_tr, y_tr, x_te, _ = _task(gen, 22, B=2, n=6, m=4)
    torch.testing.assert_close(
        rebuilt.fit_predict(x_tr, y_tr, x_te, generator=gen(5)),
        learner.fit_predict(x_tr, y_tr, x_te, generator=gen(5)),
        rtol=0,
        atol=0,
    )


def test_make_learner_unknown_names_suggest_nearest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'ridge'"):
        make_learner("rigde")
    with pytest.raises(UnknownNameError, match="did you mean 'features'"):
        make_learner({"name": "random_features", "feature": 10})
    with pytest.raises(UnknownNameError, match="did you mean 'kernel_ridge'"):
        make_learner({"name": "kernel_rigde"})
    with pytest.raises(UnknownNameError, match="did you mean 'sigma_w2'"):
        make_learner({"name": "kernel_ridge", "kernel": "nngp", "sigma_w": 2.0})
    with pytest.raises(UnknownNameError, match="did you mean 'lam'"):
        make_learner({"name": "kernel_ridge", "lamb": 0.1})


# ---------------------------------------------------------------- input errors


def test_fit_input_errors_are_one_line_learnscope_errors(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 23, B=2, n=6, m=4)
    learner = Ridge()
    with pytest.raises(ShapeError, match=r"\(B, n, d\)"):
        learner.fit_predict(x_tr[0], y_tr, x_te)
    with pytest.raises(ShapeError, match=r"\(B, n\)"):
        learner.fit_predict(x_tr, y_tr[:1], x_te)
    with pytest.raises(ShapeError, match=r"\(B, n\)"):
        learner.fit_predict(x_tr, y_tr[:, :5], x_te)
    with pytest.raises(ShapeError, match=r"\(B, m, d\)"):
        learner.fit_predict(x_tr, y_tr, x_te[:1])
    with pytest.raises(ShapeError, match=r"\(B, m, d\)"):
        learner.fit_predict(x_tr, y_tr, x_te[..., :2])
    with pytest.raises(ShapeError):
        learner.fit_predict(x_tr[:, :0], y_tr[:, :0], x_te)
    bad = y_tr.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="y_train"):
        learner.fit_predict(x_tr, bad, x_te)
    bad = x_te.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="x_test"):
        learner.fit_predict(x_tr, y_tr, bad)
    with pytest.raises(ConfigError, match="dtype"):
        learner.fit_predict(x_tr, y_tr.float(), x_te)
    with pytest.raises(ConfigError, match="generator"):
        RandomFeatureRidge(5).fit_predict(x_tr, y_tr, x_te)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Ridge(lam=0.0),
        lambda: Ridge(lam=-1e-3),
        lambda: KernelRidge("arccos1", lam=float("inf")),
        lambda: RandomFeatureRidge(features=0),
        lambda: RandomFeatureRidge(features=2.5),
        lambda: RandomFeatureRidge(features=-3),
        lambda: RandomFeatureRidge(lam=float("nan")),
        lambda: RandomFeatureRidge(variances=[1.0, 0.0, 1.0]),
        lambda: RandomFeatureRidge(variances=[1.0, float("nan")]),
        lambda: RandomFeatureRidge(variances=3.0),
        lambda: KernelRidge("ntk", depth=0),
        lambda: KernelRidge("rbf", lengthscale=-1.0),
    ],
)
def test_bad_constructor_arguments_raise_config_error(build) -> None:
    with pytest.raises(ConfigError):
        build()
