"""The hand-written reverse pass of unrolled MLP gradient descent (learners/dense_reverse.py): its predictions are
today's dense path's (unroll + dense_gradient_descent), its gradients equal autograd through that path and central
finite differences, for full batch and minibatches, ReLU / tanh / sigmoid, one and several learners."""

from __future__ import annotations

import pytest
import torch

from learnscope.circuits.mlp import ACTIVATIONS, MLP
from learnscope.errors import ShapeError, UnknownNameError
from learnscope.learners.dense_reverse import unrolled_dense_gd, unrolled_dense_gd_params
from learnscope.learners.unroll import dense_gradient_descent, dense_mse_grads, gather_rows, unroll
from learnscope.plasticity.optimisers import Optimiser

F64 = torch.float64


def _task(gen, E: int, n: int = 6, m: int = 5, d: int = 3, seed: int = 0):
    g = gen(seed)
    x = torch.randn(E, n + m, d, generator=g, dtype=F64)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.randn(E, n, generator=g, dtype=F64)
    return x[:, :n].contiguous(), y, x[:, n:].contiguous()


def _draws(gen, mlp: MLP, E: int, n: int, steps: int, batch: int | None, seed: int = 7):
    """The members and minibatch indices unroll draws from gen(seed) (same order: draw, then randint)."""
    g = gen(seed)
    params = [p.unsqueeze(1) if i % 2 else p for i, p in enumerate(mlp.draw(g, E, F64).params)]
    idx = None if batch is None else torch.randint(n, (E, steps, batch), generator=g)
    return params, idx


def _today(gen, mlp, x, y, xt, steps, lr, batch, seed: int = 7):
    trainer = dense_gradient_descent(mlp, Optimiser("sgd", lr), graph=True)
    pred, fitted = unroll(mlp, trainer, mlp.draw, x, y, xt, gen(seed), steps, batch)
    return pred, fitted


CASES = [("relu", None, 1), ("relu", None, 3), ("relu", 4, 3), ("tanh", None, 1), ("tanh", 4, 3),
         ("sigmoid", 4, 2)]


@pytest.mark.parametrize("store", ["activations", "params"])
@pytest.mark.parametrize(("activation", "batch", "E"), CASES)
def test_predictions_and_label_gradient_equal_autograd_through_todays_path(gen, activation, batch, E, store):
    steps, lr = 12, 0.2
    mlp = MLP([3, 5, 4, 1], activation=activation)
    x, y, xt = _task(gen, E)
    w = torch.randn(E, xt.shape[1], generator=gen(11), dtype=F64)  # a random scalar loss of the predictions

    y_ref = y.clone().requires_grad_(True)
    pred_ref, fitted = _today(gen, mlp, x, y_ref, xt, steps, lr, batch)
    (g_ref,) = torch.autograd.grad((w * pred_ref).sum() + (pred_ref**2).sum(), y_ref)

    params, idx = _draws(gen, mlp, E, x.shape[1], steps, batch)
    y_new = y.clone().requires_grad_(True)
    pred, final = unrolled_dense_gd(params, x, y_new, xt, lr=lr, steps=steps, activation=activation, idx=idx,
                                    store=store)
    (g_new,) = torch.autograd.grad((w * pred).sum() + (pred**2).sum(), y_new)

    # the same operations in the same order as today's dense path: the training is bit-identical
    assert torch.equal(pred, pred_ref)
    for p, q in zip(final, fitted.params, strict=True):
        assert torch.equal(p.reshape(q.shape), q)
    assert g_ref.abs().max() > 1e-3  # the labels matter
    assert float((g_new - g_ref).norm() / g_ref.norm()) < 1e-10


def test_float32_fig8_sized_training_is_bit_identical_and_gradient_close(gen):
    steps, lr, E = 200, 0.025, 2
    mlp = MLP([3, 20, 20, 1])
    g = gen(3)
    x = torch.randn(E, 30, 3, generator=g)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.randn(E, 30, generator=g)
    xt = torch.randn(E, 40, 3, generator=g)
    y_ref = y.clone().requires_grad_(True)
    trainer = dense_gradient_descent(mlp, Optimiser("sgd", lr), graph=True)
    pred_ref, _ = unroll(mlp, trainer, mlp.draw, x, y_ref, xt, gen(7), steps, None)
    (g_ref,) = torch.autograd.grad((pred_ref**2).mean(), y_ref)
    gp = gen(7)
    params = [p.unsqueeze(1) if i % 2 else p for i, p in enumerate(mlp.draw(gp, E, torch.float32).params)]
    y_new = y.clone().requires_grad_(True)
    pred, _ = unrolled_dense_gd(params, x, y_new, xt, lr=lr, steps=steps, activation="relu")
    (g_new,) = torch.autograd.grad((pred**2).mean(), y_new)
    assert torch.equal(pred, pred_ref)
    assert float((g_new - g_ref).norm() / g_ref.norm()) < 1e-4  # float32 rounding of two summation orders


@pytest.mark.parametrize(("activation", "batch"), [("relu", None), ("tanh", 4)])
def test_gradients_in_inputs_and_initial_params_equal_autograd(gen, activation, batch):
    E, steps, lr = 2, 8, 0.2
    mlp = MLP([3, 4, 4, 1], activation=activation)
    x, y, xt = _task(gen, E)
    params, idx = _draws(gen, mlp, E, x.shape[1], steps, batch)

    def leaves():
        return [t.clone().requires_grad_(True) for t in (x, y, xt, *params)]

    # reference: autograd through the same GD loop written out with today's dense gradients
    f, df = ACTIVATIONS[activation]
    a = leaves()
    p = a[3:]
    xs, ys = (a[0], a[1]) if idx is None else (gather_rows(a[0], idx), gather_rows(a[1], idx))
    for t in range(steps):
        xb, yb = (xs, ys) if idx is None else (xs[:, t], ys[:, t])
        p = [q - lr * g for q, g in zip(p, dense_mse_grads(p, xb, yb, f, df, activation == "relu"), strict=True)]
    h = a[2]
    for i in range(len(p) // 2):
        h = torch.baddbmm(p[2 * i + 1], h, p[2 * i])
        h = h if i == len(p) // 2 - 1 else f(h)
    loss_ref = (h[..., 0] ** 3).sum() + (p[2] ** 2).sum()  # through the predictions and a final parameter
    g_ref = torch.autograd.grad(loss_ref, a)

    b = leaves()
    pred, final = unrolled_dense_gd(b[3:], b[0], b[1], b[2], lr=lr, steps=steps, activation=activation, idx=idx)
    g_new = torch.autograd.grad((pred**3).sum() + (final[2] ** 2).sum(), b)
    for name, u, v in zip(["x_train", "y_train", "x_test", "W1", "b1", "W2", "b2", "W3", "b3"], g_new, g_ref,
                          strict=True):
        assert v.norm() > 1e-8, name
        assert float((u - v).norm() / v.norm()) < 1e-10, name


@pytest.mark.parametrize("batch", [None, 3])
def test_label_gradient_matches_central_finite_differences(gen, batch):
    E, steps, lr = 2, 6, 0.3
    mlp = MLP([2, 3, 3, 1], activation="tanh")
    x, y, xt = _task(gen, E, n=4, m=3, d=2)
    params, idx = _draws(gen, mlp, E, 4, steps, batch)

    def loss(yy):
        pred, _ = unrolled_dense_gd(params, x, yy, xt, lr=lr, steps=steps, activation="tanh", idx=idx)
        return (pred.sin() * torch.arange(1.0, 4.0, dtype=F64)).sum()

    yg = y.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(yg), yg)
    fd = torch.zeros_like(y)
    h = 1e-6
    with torch.no_grad():
        for e in range(E):
            for i in range(y.shape[1]):
                dy = torch.zeros_like(y)
                dy[e, i] = h
                fd[e, i] = (loss(y + dy) - loss(y - dy)) / (2 * h)
    if batch is not None:  # points never drawn get no gradient
        drawn = torch.zeros_like(y, dtype=torch.bool).scatter_(1, idx.reshape(E, -1), True)
        assert torch.all(fd[~drawn] == 0) and torch.all(g[~drawn] == 0)
    assert fd.norm() > 1e-3
    assert float((g - fd).norm() / fd.norm()) < 1e-7


def test_gradcheck_all_inputs(gen):
    E, steps = 2, 4
    mlp = MLP([2, 3, 2, 1], activation="tanh")
    x, y, xt = _task(gen, E, n=3, m=2, d=2)
    params, idx = _draws(gen, mlp, E, 3, steps, 2)
    leaves = [t.clone().requires_grad_(True) for t in (x, y, xt, *params)]

    def fn(x, y, xt, *p):
        pred, final = unrolled_dense_gd(list(p), x, y, xt, lr=0.3, steps=steps, activation="tanh", idx=idx)
        return pred, final[0]

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_bad_inputs_raise_one_line_errors(gen):
    mlp = MLP([3, 4, 1])
    x, y, xt = _task(gen, 2)
    params, _ = _draws(gen, mlp, 2, x.shape[1], 3, None)
    with pytest.raises(UnknownNameError):
        unrolled_dense_gd(params, x, y, xt, lr=0.1, steps=3, activation="gelu")
    with pytest.raises(ShapeError):
        unrolled_dense_gd(params, x, y, xt, lr=0.1, steps=3, activation="relu",
                          idx=torch.zeros(2, 2, 3, dtype=torch.long))
    with pytest.raises(ShapeError):
        unrolled_dense_gd(params[:3], x, y, xt, lr=0.1, steps=3, activation="relu")


@pytest.mark.parametrize("batch", [None, 3])
def test_params_only_entry_with_autograd_readout_equals_todays_path(gen, batch):
    """``unrolled_dense_gd_params`` (the run_full of the "full" meta-gradient): the trained parameters, read out by
    the circuit under autograd, give today's predictions and label gradient."""
    E, steps, lr = 3, 10, 0.2
    mlp = MLP([3, 5, 4, 1])
    x, y, xt = _task(gen, E)
    y_ref = y.clone().requires_grad_(True)
    pred_ref, _ = _today(gen, mlp, x, y_ref, xt, steps, lr, batch)
    (g_ref,) = torch.autograd.grad((pred_ref.cos()).sum(), y_ref)
    params, idx = _draws(gen, mlp, E, x.shape[1], steps, batch)
    y_new = y.clone().requires_grad_(True)
    final = unrolled_dense_gd_params(params, x, y_new, lr=lr, steps=steps, activation="relu", idx=idx)
    pred = mlp.forward([p.squeeze(1) if i % 2 else p for i, p in enumerate(final)], xt)[..., 0]
    (g_new,) = torch.autograd.grad((pred.cos()).sum(), y_new)
    assert torch.equal(pred, pred_ref)
    assert float((g_new - g_ref).norm() / g_ref.norm()) < 1e-10


@pytest.mark.parametrize("sizes", [[3, 1], [3, 4, 1], [3, 4, 3, 5, 1]])
def test_other_depths_equal_todays_path(gen, sizes):
    E, steps, lr = 2, 7, 0.2
    mlp = MLP(sizes, activation="tanh")
    x, y, xt = _task(gen, E)
    y_ref = y.clone().requires_grad_(True)
    pred_ref, _ = _today(gen, mlp, x, y_ref, xt, steps, lr, None)
    (g_ref,) = torch.autograd.grad(pred_ref.sum(), y_ref)
    params, _ = _draws(gen, mlp, E, x.shape[1], steps, None)
    y_new = y.clone().requires_grad_(True)
    pred, _ = unrolled_dense_gd(params, x, y_new, xt, lr=lr, steps=steps, activation="tanh")
    (g_new,) = torch.autograd.grad(pred.sum(), y_new)
    assert torch.equal(pred, pred_ref)
    assert float((g_new - g_ref).norm() / g_ref.norm()) < 1e-10


def test_without_grad_it_trains_the_same(gen):
    """No input requires grad (or grad mode off): the training alone, bit-identical to today's."""
    mlp = MLP([3, 5, 4, 1])
    x, y, xt = _task(gen, 2)
    params, _ = _draws(gen, mlp, 2, x.shape[1], 9, None)
    pred_ref, _ = _today(gen, mlp, x, y, xt, 9, 0.2, None)
    pred, _ = unrolled_dense_gd(params, x, y, xt, lr=0.2, steps=9, activation="relu")
    assert not pred.requires_grad and torch.equal(pred, pred_ref)
    with torch.no_grad():
        pred, _ = unrolled_dense_gd(params, x, y.clone().requires_grad_(True), xt, lr=0.2, steps=9, activation="relu")
    assert torch.equal(pred, pred_ref)
