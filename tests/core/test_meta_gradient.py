"""Bounded-memory meta-gradients (learners/meta_gradient.py) and their memory estimate (learners/memory.py).

Checkpointed gradients are compared with full autograd (exact, float64), truncated ones with a hand-built loop whose
early steps are detached, implicit ones with the closed-form ridge Jacobian and central finite differences, the
memory estimate with the saved-tensor bytes measured by hooks.
"""

from __future__ import annotations

import pytest
import torch

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.learners.memory import (
    SavedTensorMeter,
    check_memory,
    estimate_peak_memory,
    format_bytes,
    measure_meta_gradient,
    parse_bytes,
)
from learnscope.learners.meta_gradient import batched_cg, default_segment
from learnscope.learners.module_learner import ModuleLearner
from learnscope.learners.trained import CircuitLearner, MushroomBodyLearner, SpikingLearner

D64 = torch.float64


def _data(B=2, n=7, m=4, d=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=g, dtype=D64)
    y = torch.randn(B, n, generator=g, dtype=D64)
    xt = torch.randn(B, m, d, generator=g, dtype=D64)
    w = torch.randn(B, m, generator=g, dtype=D64)
    return x, y, xt, w


def _meta_grads(learner, data, seed=0):
    """Predictions and the gradients of Σ w·pred w.r.t. (x_train, y_train, x_test)."""
    x, y, xt, w = (t.clone() for t in data)
    x.requires_grad_(), y.requires_grad_(), xt.requires_grad_()
    pred = learner.fit_predict(x, y, xt, generator=torch.Generator().manual_seed(seed))
    return (pred.detach(), *torch.autograd.grad((pred * w).sum(), [x, y, xt]))


def _module() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()


CASES = {
    "mlp_sgd": lambda **k: CircuitLearner({"circuit": "mlp", "hidden": [5, 4]}, steps=11, lr=0.1, **k),
    "mlp_fa": lambda **k: CircuitLearner({"circuit": "mlp", "hidden": [5, 4]}, rule="fa", steps=11, lr=0.1, **k),
    "mlp_minibatch": lambda **k: CircuitLearner({"circuit": "mlp", "hidden": [5]}, steps=11, lr=0.1, batch_size=3,
                                                **k),
    "mushroom_body": lambda **k: MushroomBodyLearner(n_hidden=8, steps=9, lr=0.1, batch_size=4, **k),
    "lif": lambda **k: SpikingLearner(n_hidden=4, t_sim=5, steps=7, lr=0.1, **k),
    "module_minibatch": lambda **k: ModuleLearner(_module(), steps=9, lr=0.1, batch_size=3, **k),
}


def _assert_rel(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-6) -> None:
    assert float((a - b).abs().max()) <= rel * float(b.abs().max()), (a, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpointed_equals_full(case: str) -> None:
    """Exact: same predictions and the same gradients w.r.t. x_train, y_train and x_test (1e-6 relative, float64)
    for the default ⌈√T⌉, a segment that does not divide T, one step per segment and a segment longer than T."""
    data = _data()
    full = _meta_grads(CASES[case](), data)
    assert all(float(g.abs().max()) > 0 for g in full[1:])
    for segment in (None, 4, 1, 50):
        ck = _meta_grads(CASES[case](meta_gradient="checkpointed", segment=segment), data)
        torch.testing.assert_close(ck[0], full[0], rtol=0, atol=0)
        for a, b in zip(ck[1:], full[1:], strict=True):
            _assert_rel(a, b)


@pytest.mark.parametrize("case", ["mlp_fa", "mlp_minibatch", "lif"])
def test_truncated_over_all_steps_equals_full(case: str) -> None:
    data = _data()
    full = _meta_grads(CASES[case](), data)
    steps = CASES[case]().steps
    tr = _meta_grads(CASES[case](meta_gradient="truncated", truncate=steps), data)
    for a, b in zip(tr, full, strict=True):
        _assert_rel(a, b, 1e-12)


def test_truncated_equals_a_hand_built_partially_detached_loop() -> None:
    """K < T: the gradient of plain GD on a tanh MLP written out by hand, the first T − K updates without a graph
    (their end point a constant), the last K with one; biased: it differs from the full gradient."""
    T, K, lr = 9, 3, 0.2
    x, y, xt, w = _data()
    def make(**k):
        return CircuitLearner({"circuit": "mlp", "hidden": [4], "activation": "tanh"}, steps=T, lr=lr, **k)

    learner = make(meta_gradient="truncated", truncate=K)
    _, fitted = make().fit_predict(x, y, xt, generator=torch.Generator().manual_seed(0), return_fitted=True)

    def net(p, inp):
        return (torch.tanh(inp @ p[0] + p[1].unsqueeze(1)) @ p[2] + p[3].unsqueeze(1))[..., 0]

    yy = y.clone().requires_grad_()
    p = [t.detach().clone() for t in fitted.initial]
    for t in range(T):
        graph = t >= T - K
        p = [q.detach().requires_grad_() for q in p] if t == T - K else p
        with torch.enable_grad():
            q = [v if v.requires_grad else v.detach().requires_grad_() for v in p]
            loss = ((net(q, x) - (yy if graph else y)) ** 2).mean(1).sum()
            g = torch.autograd.grad(loss, q, create_graph=graph)
        p = [a - lr * b for a, b in zip(q, g, strict=True)]
        p = p if graph else [v.detach() for v in p]
    (want,) = torch.autograd.grad((net(p, xt) * w).sum(), yy)
    got = _meta_grads(learner, (x, y, xt, w))[2]
    _assert_rel(got, want, 1e-10)
    full = _meta_grads(make(), (x, y, xt, w))[2]
    assert float((got - full).abs().max()) > 1e-3 * float(full.abs().max())


def _ridge_jacobian(x, xt, lam):
    """Closed form of the converged linear model w·x + b under MSE + λ‖θ‖²/2: θ* = (2/n XᵀX + λI)⁻¹ 2/n Xᵀy with
    X = [x, 1]; ∂pred/∂y = X_te (2/n XᵀX + λI)⁻¹ 2/n Xᵀ, shape (B, m, n)."""
    B, n, d = x.shape
    Xa = torch.cat([x, torch.ones(B, n, 1, dtype=D64)], -1)
    Xt = torch.cat([xt, torch.ones(B, xt.shape[1], 1, dtype=D64)], -1)
    A = 2 / n * Xa.transpose(1, 2) @ Xa + lam * torch.eye(d + 1, dtype=D64)
    return Xt @ torch.linalg.solve(A, 2 / n * Xa.transpose(1, 2))


def test_implicit_equals_the_closed_form_ridge_jacobian() -> None:
    x, y, xt, w = _data()
    lam = 1.0
    learner = CircuitLearner({"circuit": "mlp", "hidden": []}, rule={"name": "sgd", "weight_decay": lam}, steps=150,
                             lr=0.2, meta_gradient="implicit", tol=1e-9)
    _, _, gy, _ = _meta_grads(learner, (x, y, xt, w))
    want = (w.unsqueeze(1) @ _ridge_jacobian(x, xt, lam)).squeeze(1)
    _assert_rel(gy, want, 1e-7)


@pytest.mark.parametrize("case", ["tanh_mlp", "mushroom_body"])
def test_implicit_matches_finite_differences_of_the_converged_prediction(case: str) -> None:
    """Nonlinear learners trained to their fixed point (weight decay 2, 300 full-batch steps, final gradient norm
    < 1e-9): directional derivatives w.r.t. the labels and the training inputs against central differences
    (ε = 1e-5); and the full unroll's gradient, which tends to the implicit one as training converges."""
    x, y, xt, w = _data()
    rule = {"name": "sgd", "weight_decay": 2.0}

    def make(**k):
        if case == "tanh_mlp":
            return CircuitLearner({"circuit": "mlp", "hidden": [5], "activation": "tanh"}, rule=rule, steps=300,
                                  lr=0.2, **k)
        return MushroomBodyLearner(n_inputs=3, n_hidden=10, steps=300, lr=0.2, batch_size=None, rule=rule, **k)

    _, gx, gy, gxt = _meta_grads(make(meta_gradient="implicit"), (x, y, xt, w))
    _, fx, fy, fxt = _meta_grads(make(), (x, y, xt, w))
    _assert_rel(gy, fy, 1e-4)
    _assert_rel(gxt, fxt, 1e-4)
    plain = make()

    def value(yv, xv=x):
        with torch.no_grad():
            return float((plain.fit_predict(xv, yv, xt, generator=torch.Generator().manual_seed(0)) * w).sum())

    g = torch.Generator().manual_seed(5)
    eps = 1e-5
    for _ in range(2):
        v = torch.randn(y.shape, generator=g, dtype=D64)
        fd = (value(y + eps * v) - value(y - eps * v)) / (2 * eps)
        assert abs(float((gy * v).sum()) - fd) <= 1e-6 * max(1.0, abs(fd))
        u = torch.randn(x.shape, generator=g, dtype=D64)
        fdx = (value(y, x + eps * u) - value(y, x - eps * u)) / (2 * eps)
        assert abs(float((gx * u).sum()) - fdx) <= 1e-6 * max(1.0, abs(fdx))


def test_implicit_refuses_a_run_that_has_not_converged() -> None:
    learner = CircuitLearner({"circuit": "mlp", "hidden": [5]}, rule={"name": "sgd", "weight_decay": 0.1}, steps=5,
                             meta_gradient="implicit")
    with pytest.raises(ConfigError, match="fixed point") as err:
        _meta_grads(learner, _data())
    assert "\n" not in str(err.value)


def test_batched_cg_solves_each_member_system() -> None:
    """Two SPD blocks solved at once; the answer is numpy's solve of each."""
    g = torch.Generator().manual_seed(0)
    M = torch.randn(2, 4, 4, generator=g, dtype=D64)
    H = M @ M.transpose(1, 2) + 0.5 * torch.eye(4, dtype=D64)
    b = torch.randn(2, 4, generator=g, dtype=D64)
    (u,), resid = batched_cg(lambda v: [(H @ v[0].unsqueeze(-1)).squeeze(-1)], [b], 50, 1e-12)
    torch.testing.assert_close(u, torch.linalg.solve(H, b), rtol=1e-9, atol=1e-10)
    assert float(resid.max()) <= 1e-12


# ---------------------------------------------------------------- memory


def test_saved_tensor_meter_counts_storages_once() -> None:
    """exp saves its output (n·8 bytes in float64); a second op saving the same tensor adds nothing; freeing the
    graph releases it."""
    x = torch.randn(1000, dtype=D64, requires_grad=True)
    with SavedTensorMeter() as meter:
        e = x.exp()  # saves its result
        z = e * 2.0  # mul by a scalar saves nothing
        assert meter.live == 1000 * 8
        s = (e * e).sum()  # saves e twice (the same storage)
        assert meter.live == 1000 * 8
        del z
        s.backward()
    assert meter.peak == 8000 and meter.live == 0


@pytest.mark.parametrize("estimator", ["full", "checkpointed", "truncated"])
def test_memory_estimate_against_measured_saved_bytes(estimator: str) -> None:
    """Exact to 1 % for full and truncated; checkpointed an overestimate by at most 1.6× (memory.py's module doc);
    and checkpointed needs far less than full at T = 60."""
    kw = {"truncated": {"truncate": 10}}.get(estimator, {})
    for learner in (CircuitLearner({"circuit": "mlp", "hidden": [6, 6]}, steps=60, meta_gradient=estimator, **kw),
                    MushroomBodyLearner(n_inputs=3, n_hidden=8, steps=60, meta_gradient=estimator, **kw)):
        est = estimate_peak_memory(learner, 30, 20, 2, D64, dim=3)
        measured = measure_meta_gradient(learner, 30, 20, 2, D64, 3)
        ratio = est / measured
        assert (0.99 <= ratio <= 1.01) if estimator != "checkpointed" else (1.0 <= ratio <= 1.6), ratio
        assert est.estimator == estimator and est.steps == 60
    if estimator == "checkpointed":
        assert est.by_estimator["checkpointed"] < est.by_estimator["full"] / 3


def test_check_memory_refuses_in_one_line_and_format_parse_bytes() -> None:
    learner = CircuitLearner(steps=3200)
    est = estimate_peak_memory(learner, 30, 300, 1, torch.float32, dim=3)
    check_memory(est, 10 * int(est))  # fits: no error
    with pytest.raises(ConfigError, match="estimator full, 3,200 inner steps.*checkpointed") as err:
        check_memory(est, "1MiB")
    assert "\n" not in str(err.value) and "1 MiB" in str(err.value)
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**30) == "3 GiB"
    assert parse_bytes("4GiB") == 4 * 2**30 and parse_bytes("512MB") == 512 * 10**6 and parse_bytes(2048) == 2048
    with pytest.raises(ConfigError):
        parse_bytes("lots")


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: CircuitLearner(meta_gradient="backwards"), UnknownNameError, "meta_gradient"),
        (lambda: CircuitLearner(segment=5), ConfigError, "segment applies"),
        (lambda: CircuitLearner(meta_gradient="checkpointed", segment=0), ConfigError, "segment"),
        (lambda: CircuitLearner(meta_gradient="truncated"), ConfigError, "needs truncate"),
        (lambda: CircuitLearner(steps=10, meta_gradient="truncated", truncate=11), ConfigError, "at most steps"),
        (lambda: CircuitLearner(truncate=3), ConfigError, "truncate applies"),
        (lambda: CircuitLearner(rule="fa", meta_gradient="implicit"), ConfigError, "transport backprop"),
        (lambda: CircuitLearner(meta_gradient="implicit"), ConfigError, "weight decay"),
        (lambda: CircuitLearner(rule={"name": "sgd", "weight_decay": 0.1}, batch_size=5, meta_gradient="implicit"),
         ConfigError, "full-batch"),
        (lambda: CircuitLearner(meta_gradient="implicit", rule={"name": "sgd", "weight_decay": 0.1}, cg_iters=0),
         ConfigError, "cg_iters"),
        (lambda: SpikingLearner(meta_gradient="implicit"), ConfigError, "LIF"),
        (lambda: ModuleLearner(_module(), meta_gradient="implicit"), ConfigError, "fixed point"),
    ],
)
def test_bad_estimator_arguments_are_one_line_errors(make, exc, match) -> None:
    with pytest.raises(exc, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def test_estimator_settings_are_described_and_rebuilt() -> None:
    learner = CircuitLearner({"circuit": "mlp", "hidden": [3]}, steps=10, meta_gradient="checkpointed", segment=3)
    spec = learner.describe()
    assert spec["meta_gradient"] == "checkpointed" and spec["segment"] == 3 and spec["truncate"] is None
    rebuilt = CircuitLearner(**{k: v for k, v in spec.items() if k != "name"})
    assert rebuilt.describe() == spec and rebuilt._mg.segment == 3
    assert CircuitLearner(steps=200, meta_gradient="checkpointed")._mg.segment == default_segment(200) == 15
    mb = MushroomBodyLearner(meta_gradient="truncated", truncate=7).describe()
    assert mb["truncate"] == 7 and mb["meta_gradient"] == "truncated" and mb["n_hidden"] == 100
