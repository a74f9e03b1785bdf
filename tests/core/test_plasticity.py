"""Plasticity rules: transported gradients vs hand computations, the IA / KP feedback updates, optimisers vs
torch.optim, meta-gradients vs central finite differences, ensemble batching, training sanity and B–Wᵀ angles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learnscope.circuits import MLP, ConvNet, MushroomBody, SpikingLIF
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.plasticity import (
    RULES,
    Optimiser,
    Rule,
    angle_between,
    cross_entropy_loss,
    ia_feedback_grad,
    ia_loss,
    make_rule,
    mse_loss,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _sgd_grads(rule: Rule, net, p, x, y, seed=0):
    """One step with optimiser sgd, lr 1: the applied gradients are ``old − new``; also returns the state."""
    rule = make_rule(rule, optimiser="sgd", lr=1.0)
    st = rule.init_state(net, p, _gen(seed))
    new, st2, info = rule.step(net, p, st, x, y, mse_loss)
    return [a - b for a, b in zip(p, new, strict=True)], st, st2, info


# ---------------------------------------------------------------- transports, hand computations in numpy


def _two_layer_setup(seed=0):
    net = MLP([4, 6, 3])
    p = net.init_params(_gen(seed), dtype=F64)
    x = torch.randn(5, 4, generator=_gen(seed + 1), dtype=F64)
    y = torch.randn(5, 3, generator=_gen(seed + 2), dtype=F64)
    W1, b1, W2, b2 = map(_np, p)
    xn, yn = _np(x), _np(y)
    a1 = xn @ W1 + b1
    h1 = np.maximum(a1, 0)
    out = h1 @ W2 + b2
    delta = 2 * (out - yn) / out.size  # ∂ mean((out − y)²) / ∂out
    return net, p, x, y, (xn, a1, h1, delta, W2)


def test_feedback_alignment_hidden_gradient_uses_B():
    net, p, x, y, (xn, a1, h1, delta, W2) = _two_layer_setup()
    g_fa, st, _, _ = _sgd_grads(RULES["fa"], net, p, x, y)
    g_bp, _, _, _ = _sgd_grads(RULES["sgd"], net, p, x, y)
    B2 = _np(st.feedback[1])
    assert B2.shape == (3, 6)  # spec layout (out, in)
    hand_fa = xn.T @ ((delta @ B2) * (a1 > 0))
    hand_bp = xn.T @ ((delta @ W2.T) * (a1 > 0))
    np.testing.assert_allclose(_np(g_fa[0]), hand_fa, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(g_bp[0]), hand_bp, rtol=1e-10, atol=1e-12)
    assert np.abs(hand_fa - hand_bp).max() > 1e-3  # FA really differs from backprop in the hidden layer
    np.testing.assert_allclose(_np(g_fa[1]), ((delta @ B2) * (a1 > 0)).sum(0), rtol=1e-10, atol=1e-12)
    # the output layer's gradient is backprop's
    np.testing.assert_allclose(_np(g_fa[2]), h1.T @ delta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(g_bp[2]), h1.T @ delta, rtol=1e-10, atol=1e-12)


def test_sign_symmetry_uses_sign_of_W():
    net, p, x, y, (xn, a1, h1, delta, W2) = _two_layer_setup(3)
    g, st, _, _ = _sgd_grads(RULES["ss"], net, p, x, y)
    np.testing.assert_allclose(_np(g[0]), xn.T @ ((delta @ np.sign(W2).T) * (a1 > 0)), rtol=1e-10, atol=1e-12)
    fb = make_rule("ss").feedback(st, p)
    np.testing.assert_array_equal(_np(fb[1]), np.sign(W2).T)
    assert make_rule("ss").feedback(st) == [None, None]


def test_dfa_hidden_deltas_are_output_error_through_B():
    net = MLP([3, 5, 4, 2])
    p = net.init_params(_gen(4), dtype=F64)
    x = torch.randn(6, 3, generator=_gen(5), dtype=F64)
    y = torch.randn(6, 2, generator=_gen(6), dtype=F64)
    g, st, _, _ = _sgd_grads(RULES["dfa"], net, p, x, y)
    B1, B2, last = st.feedback
    assert last is None and B1.shape == (2, 5) and B2.shape == (2, 4)
    W1, b1, W2, b2, W3, b3 = map(_np, p)
    xn = _np(x)
    a1 = xn @ W1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ W2 + b2
    h2 = np.maximum(a2, 0)
    e = 2 * (h2 @ W3 + b3 - _np(y)) / 12
    np.testing.assert_allclose(_np(g[0]), xn.T @ ((e @ _np(B1)) * (a1 > 0)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(g[2]), h1.T @ ((e @ _np(B2)) * (a2 > 0)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(g[4]), h2.T @ e, rtol=1e-10, atol=1e-12)


def test_conv_feedback_alignment_error_goes_through_conv_transpose_with_B():
    net = ConvNet((1, 6, 6), channels=(2, 3), kernel=3, hidden=4, n_out=2)
    p = net.init_params(_gen(7), dtype=F64)
    x = torch.randn(3, 1, 6, 6, generator=_gen(8), dtype=F64)
    y = torch.randn(3, 2, generator=_gen(9), dtype=F64)
    g, st, _, _ = _sgd_grads(RULES["fa"], net, p, x, y)
    B = st.feedback
    assert B[1].shape == p[2].shape and B[2].shape == (4, 3)
    # plain-torch reconstruction of the FA backward pass, layer by layer with autograd on local pieces
    a1 = F.conv2d(x, p[0], p[1], padding=1).requires_grad_()
    h1 = F.max_pool2d(torch.relu(a1), 2)
    h1d = h1.detach().requires_grad_()
    a2 = F.conv2d(h1d, p[2], p[3], padding=1).requires_grad_()
    h2 = F.max_pool2d(torch.relu(a2), 2)
    a3 = h2.detach().flatten(1) @ p[4] + p[5]
    h3 = torch.relu(a3)
    out = h3 @ p[6] + p[7]
    e = 2 * (out - y) / out.numel()
    d3 = (e @ B[3]) * (a3 > 0)
    (d2,) = torch.autograd.grad(h2, a2, (d3 @ B[2]).view(h2.shape))
    w2 = p[2].clone().requires_grad_()
    (gW2,) = torch.autograd.grad(F.conv2d(h1d.detach(), w2, padding=1), w2, d2)
    (d1,) = torch.autograd.grad(h1, a1, F.conv_transpose2d(d2, B[1], padding=1))
    torch.testing.assert_close(g[4], h2.flatten(1).T @ d3)
    torch.testing.assert_close(g[2], gW2)
    torch.testing.assert_close(g[3], d2.sum((0, 2, 3)))
    torch.testing.assert_close(g[1], d1.sum((0, 2, 3)))


# ---------------------------------------------------------------- information alignment


def _ia_c(normalise, r_sq_mean, W_sq):
    """The divisor c of the amplitude and null terms, from its definition (numpy or torch scalars)."""
    return {False: 1.0, True: r_sq_mean, "activity": r_sq_mean, "weight": r_sq_mean / W_sq}[normalise]


@pytest.mark.parametrize("normalise", [False, True, "weight"])
def test_ia_feedback_gradient_dense_matches_hand_formula_and_autograd(normalise):
    net = MLP([5, 3, 2])
    p = net.init_params(_gen(10), dtype=F64)
    x = torch.randn(7, 5, generator=_gen(11), dtype=F64)
    B = torch.randn(3, 5, generator=_gen(12), dtype=F64)
    W, b = p[0], p[1]
    al, be, ga = 0.3, 0.2, 0.1
    g = ia_feedback_grad(net, 0, x, W, b, B, al, be, ga, normalise=normalise)
    xn, Wn, bn, Bn = map(_np, (x, W, b, B))
    r = xn @ Wn + bn
    N = xn.shape[0]
    c = _ia_c(normalise, (r**2).sum() / N, (Wn**2).sum())
    hand = (al * (-r.T @ xn / N) + be * (2 * r.T @ r @ Bn / N)) / c + ga * 2 * Bn
    np.testing.assert_allclose(_np(g), hand, rtol=1e-10, atol=1e-12)
    # the loss itself, from its definition, and its autograd gradient
    s = xn @ Bn.T + bn
    xhat = r @ Bn
    R = (al * -(r * s).sum() / N + be * (xhat**2).sum() / N) / c + ga * ((Wn**2).sum() + (Bn**2).sum())
    Bt = B.clone().requires_grad_()
    loss = ia_loss(net, 0, x, W, b, Bt, al, be, ga, normalise=normalise)
    assert loss.item() == pytest.approx(R, rel=1e-12)
    (auto,) = torch.autograd.grad(loss, Bt)
    torch.testing.assert_close(auto, g)


def test_ia_feedback_gradient_conv_matches_autograd_of_loss():
    net = ConvNet((2, 6, 5), channels=(3, 4), kernel=3, hidden=4, n_out=2)
    p = net.init_params(_gen(13), ensemble=2, dtype=F64)
    x = torch.randn(2, 4, 2, 6, 5, generator=_gen(14), dtype=F64)
    B = torch.randn(2, 3, 2, 3, 3, generator=_gen(15), dtype=F64, requires_grad=True)
    for normalise in (False, True, "weight"):
        loss = ia_loss(net, 0, x, p[0], p[1], B, 0.3, 0.2, 0.1, normalise=normalise)
        # the loss from its definition with plain torch, member 1
        r = F.conv2d(x[1], p[0][1], p[1][1], padding=1)
        s = F.conv2d(x[1], B[1], p[1][1], padding=1)
        xhat = F.conv_transpose2d(r, B[1], padding=1)
        c = _ia_c(normalise, r.pow(2).sum() / 4, p[0][1].pow(2).sum())
        local = -0.3 * (r * s).sum() / 4 + 0.2 * xhat.pow(2).sum() / 4
        ref = local / c + 0.1 * (p[0][1].pow(2).sum() + B[1].pow(2).sum())
        torch.testing.assert_close(loss[1], ref)
        (auto,) = torch.autograd.grad(loss.sum(), B)
        torch.testing.assert_close(ia_feedback_grad(net, 0, x, p[0], p[1], B, 0.3, 0.2, 0.1, normalise), auto)


def test_ia_normalised_update_is_invariant_to_the_activity_scale():
    """With b = 0, scaling the layer input by k scales r by k: the normalised B update is unchanged, the original
    one (amp and null terms) scales by k²."""
    net = MLP([5, 3, 2])
    p = net.init_params(_gen(16), dtype=F64)
    x = torch.randn(6, 5, generator=_gen(17), dtype=F64)
    W, b = p[0], torch.zeros(3, dtype=F64)
    B = torch.randn(3, 5, generator=_gen(18), dtype=F64)
    k = 7.0
    for normalise, factor in ((True, 1.0), (False, k**2)):
        g1 = ia_feedback_grad(net, 0, x, W, b, B, 0.3, 0.2, 0.0, normalise=normalise)
        gk = ia_feedback_grad(net, 0, k * x, W, b, B, 0.3, 0.2, 0.0, normalise=normalise)
        torch.testing.assert_close(gk, factor * g1)


def test_ia_weight_normalisation_puts_the_fixed_point_at_W_transpose():
    """Layer input with second moment xᵀx/N = s²I and b = 0: r = xW, c = E‖r‖² = s²‖W‖², so with β = 0 the "weight"
    gradient −α Wᵀ + 2γB vanishes at B = (α/2γ) Wᵀ — at B = Wᵀ for α = 2γ, whatever the scales s and ‖W‖; the
    "activity" one vanishes at (α/2γ) Wᵀ/‖W‖² instead."""
    net = MLP([4, 3, 2])
    N, s = 8, 3.0
    q, _ = torch.linalg.qr(torch.randn(N, 4, generator=_gen(40), dtype=F64))
    x = s * math.sqrt(N) * q
    b = torch.zeros(3, dtype=F64)
    alpha, gamma = 0.2, 0.1
    for scale in (0.1, 5.0):
        W = scale * torch.randn(4, 3, generator=_gen(41), dtype=F64)
        g = ia_feedback_grad(net, 0, x, W, b, W.T, alpha, 0.0, gamma, normalise="weight")
        torch.testing.assert_close(g, torch.zeros_like(g))
        B_act = W.T / W.pow(2).sum()
        g = ia_feedback_grad(net, 0, x, W, b, B_act, alpha, 0.0, gamma, normalise="activity")
        torch.testing.assert_close(g, torch.zeros_like(g))


def test_ia_normalise_mode_rejects_unknown_names():
    with pytest.raises(UnknownNameError, match="weight"):
        make_rule("ia", ia_normalise="weights!")


def test_ia_normalisation_bounds_the_null_curvature():
    """One sgd step on the null term alone (N = 1) scales B's component along r by 1 − 2ηβ‖r‖² (original; < −1
    here, i.e. a growing oscillation) or by 1 − 2ηβ (normalised); the orthogonal part is unchanged."""
    net = MLP([4, 3, 2])
    p = net.init_params(_gen(19), dtype=F64)
    x = 20 * torch.randn(1, 4, generator=_gen(20), dtype=F64)
    W, b = p[0], torch.zeros(3, dtype=F64)
    B = torch.randn(3, 4, generator=_gen(21), dtype=F64)
    r = (x @ W)[0]
    rhat = r / r.norm()
    eta, beta = 0.1, 0.5
    original = 1 - 2 * eta * beta * r.dot(r).item()
    assert original < -1
    for normalise, factor in ((False, original), (True, 1 - 2 * eta * beta)):
        B1 = B - eta * ia_feedback_grad(net, 0, x, W, b, B, 0.0, beta, 0.0, normalise=normalise)
        torch.testing.assert_close(rhat @ B1, factor * (rhat @ B))
        P = torch.eye(3, dtype=F64) - torch.outer(rhat, rhat)
        torch.testing.assert_close(P @ B1, P @ B)


def test_ia_rule_step_moves_B_by_the_ia_gradient():
    net = MLP([4, 6, 3])
    p = net.init_params(_gen(19), dtype=F64)
    x = torch.randn(5, 4, generator=_gen(20), dtype=F64)
    y = torch.randn(5, 3, generator=_gen(21), dtype=F64)
    rule = make_rule("ia", optimiser="sgd", lr=0.1, ia_alpha=0.4, ia_beta=0.2, ia_gamma=0.1)
    st = rule.init_state(net, p, _gen(22))
    new, st2, _ = rule.step(net, p, st, x, y, mse_loss)
    h1 = torch.relu(x @ p[0] + p[1])
    for i, inp in ((0, x), (1, h1)):
        grad = ia_feedback_grad(net, i, inp, p[2 * i], p[2 * i + 1], st.feedback[i], 0.4, 0.2, 0.1, normalise=True)
        torch.testing.assert_close(st2.feedback[i], st.feedback[i] - 0.1 * grad)
    # the forward weights get FA's update (B before the step)
    g_fa, _, _, _ = _sgd_grads(RULES["fa"], net, p, x, y, seed=22)
    torch.testing.assert_close(new[0], p[0] - 0.1 * g_fa[0])


# ---------------------------------------------------------------- Kolen–Pollack


def test_kolen_pollack_B_update_is_W_update_transposed_up_to_decay():
    net = MLP([4, 6, 3])
    p = net.init_params(_gen(23), dtype=F64)
    x = torch.randn(5, 4, generator=_gen(24), dtype=F64)
    y = torch.randn(5, 3, generator=_gen(25), dtype=F64)
    eta, lam, wd = 0.1, 0.05, 0.01
    rule = make_rule("kp", optimiser="momentum", lr=eta, kp_decay=lam, weight_decay=wd)
    st = rule.init_state(net, p, _gen(26))
    new, st2, _ = rule.step(net, p, st, x, y, mse_loss)
    for i in range(2):
        dB = st2.feedback[i] - st.feedback[i]
        dW = new[2 * i] - p[2 * i]
        # ΔW = −η(g + (wd + λ)W), ΔB = −η(gᵀ + λB)  (first momentum step: v = g)
        torch.testing.assert_close(dB - dW.T, -eta * (lam * st.feedback[i] - (wd + lam) * p[2 * i].T))
    # with sgd and no weight decay, B − Wᵀ shrinks by exactly (1 − ηλ) per step
    rule = make_rule("kp", optimiser="sgd", lr=eta, kp_decay=lam)
    st = rule.init_state(net, p, _gen(27))
    d0 = (st.feedback[1] - p[2].T).norm()
    q = p
    for _ in range(5):
        q, st, _ = rule.step(net, q, st, x, y, mse_loss)
    assert (st.feedback[1] - q[2].T).norm().item() == pytest.approx((1 - eta * lam) ** 5 * d0.item(), rel=1e-10)


# ---------------------------------------------------------------- optimisers and torch.optim


def _random_grads(shapes, steps, seed):
    g = _gen(seed)
    return [[torch.randn(s, generator=g, dtype=F64) for s in shapes] for _ in range(steps)]


@pytest.mark.parametrize(
    ("name", "make_torch"),
    [
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.05)),
        ("momentum", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0)),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
    ],
)
def test_optimisers_equal_torch_optim_on_the_same_gradients(name, make_torch):
    shapes = [(3, 4), (4,)]
    params = [torch.randn(s, generator=_gen(28), dtype=F64) for s in shapes]
    opt = Optimiser(name, lr=0.05)
    ref = [t.clone().requires_grad_() for t in params]
    topt = make_torch(ref)
    state = opt.init_state(params)
    ours = params
    for t, grads in enumerate(_random_grads(shapes, 6, 29), start=1):
        ours, state = opt.update(ours, grads, state, t)
        for r, gr in zip(ref, grads, strict=True):
            r.grad = gr.clone()
        topt.step()
        for a, b in zip(ours, ref, strict=True):
            torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("rule_name", "make_torch"),
    [
        ("sgdm", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.01)),
    ],
)
def test_backprop_rules_train_like_torch_optim_on_nn_sequential(rule_name, make_torch):
    net = MLP([3, 5, 2])
    p = net.init_params(_gen(30), dtype=F64)
    seq = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).to(F64)
    with torch.no_grad():
        seq[0].weight.copy_(p[0].T), seq[0].bias.copy_(p[1]), seq[2].weight.copy_(p[2].T), seq[2].bias.copy_(p[3])
    topt = make_torch(seq.parameters())
    rule = make_rule(rule_name, lr=0.05, weight_decay=0.01)
    st = rule.init_state(net, p, _gen(31))
    for step in range(4):
        x = torch.randn(6, 3, generator=_gen(40 + step), dtype=F64)
        y = torch.randn(6, 2, generator=_gen(50 + step), dtype=F64)
        p, st, info = rule.step(net, p, st, x, y, mse_loss)
        topt.zero_grad()
        loss = F.mse_loss(seq(x), y)
        loss.backward()
        topt.step()
        assert info["loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(p[0], seq[0].weight.detach().T)
    torch.testing.assert_close(p[3], seq[2].bias.detach())


# ---------------------------------------------------------------- second order: meta-gradients vs finite differences


def _meta_case(net, rule, x_tr, y_tr, x_te, y_te, p0, steps=3):
    st0 = rule.init_state(net, p0, _gen(60))

    def test_loss(y):
        p, st = p0, st0
        for _ in range(steps):
            p, st, _ = rule.step(net, p, st, x_tr, y, mse_loss, create_graph=True)
        return mse_loss(net.forward(p, x_te), y_te)

    y = y_tr.clone().requires_grad_()
    (auto,) = torch.autograd.grad(test_loss(y), y)
    fd = torch.zeros_like(y_tr)
    h = 1e-6
    with torch.no_grad():
        for i in range(y_tr.numel()):
            e = torch.zeros_like(y_tr).view(-1)
            e[i] = h
            e = e.view_as(y_tr)
            fd.view(-1)[i] = (test_loss(y_tr + e) - test_loss(y_tr - e)) / (2 * h)
    return auto, fd


_META_OVERRIDES = {
    "ia_original": {"ia_alpha": 0.5, "ia_beta": 0.3, "ia_gamma": 0.1, "ia_normalise": False},
    "adam": {"lr": 0.01, "eps": 0.1},  # ε large enough that the update is a smooth function of g
    "ia": {"ia_alpha": 0.5, "ia_beta": 0.3, "ia_gamma": 0.1},  # B moves visibly within 3 steps
    "kp": {"kp_decay": 0.3, "weight_decay": 0.01},
}


@pytest.mark.parametrize("name", ["sgdm", "adam", "fa", "ia", "ia_original", "kp", "ss", "dfa", "sgd"])
def test_meta_gradient_through_three_steps_matches_finite_differences(name):
    net = MLP([3, 5, 4, 2])
    g = _gen(61)
    p0 = net.init_params(g, dtype=F64)
    x_tr, y_tr = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)
    x_te, y_te = torch.randn(7, 3, generator=g, dtype=F64), torch.randn(7, 2, generator=g, dtype=F64)
    rule = make_rule(name.removesuffix("_original"), **{"lr": 0.1, **_META_OVERRIDES.get(name, {})})
    auto, fd = _meta_case(net, rule, x_tr, y_tr, x_te, y_te, p0)
    assert fd.norm() > 1e-4
    assert ((auto - fd).norm() / fd.norm()).item() < 1e-4


def test_meta_gradient_sees_the_learned_feedback():
    """IA's and KP's meta-gradients differ from FA's: the B updates are part of the differentiated map."""
    net = MLP([3, 5, 4, 2])
    g = _gen(61)
    p0 = net.init_params(g, dtype=F64)
    data = [torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)]
    data += [torch.randn(7, 3, generator=g, dtype=F64), torch.randn(7, 2, generator=g, dtype=F64)]
    fa = _meta_case(net, make_rule("fa", lr=0.1), *data, p0)[0]
    for name in ("ia", "kp"):
        other = _meta_case(net, make_rule(name, **{"lr": 0.1, **_META_OVERRIDES[name]}), *data, p0)[0]
        assert (other - fa).norm() > 1e-3 * fa.norm()


@pytest.mark.parametrize("name", ["fa", "ia", "kp"])
def test_conv_meta_gradient_matches_finite_differences(name):
    net = ConvNet((1, 4, 4), channels=(2, 2), kernel=3, hidden=3, n_out=1)
    g = _gen(62)
    p0 = net.init_params(g, dtype=F64)
    x_tr, y_tr = torch.randn(4, 1, 4, 4, generator=g, dtype=F64), torch.randn(4, 1, generator=g, dtype=F64)
    x_te, y_te = torch.randn(5, 1, 4, 4, generator=g, dtype=F64), torch.randn(5, 1, generator=g, dtype=F64)
    rule = make_rule(name, **{"lr": 0.2, **_META_OVERRIDES.get(name, {})})
    auto, fd = _meta_case(net, rule, x_tr, y_tr, x_te, y_te, p0, steps=2)
    assert fd.norm() > 1e-5
    assert ((auto - fd).norm() / fd.norm()).item() < 1e-4


# ---------------------------------------------------------------- ensembles


@pytest.mark.parametrize("name", list(RULES))
def test_ensemble_step_equals_member_by_member_steps(name):
    net = MLP([3, 5, 4, 2])
    p = net.init_params(_gen(63), ensemble=3, dtype=F64)
    x = torch.randn(3, 6, 3, generator=_gen(64), dtype=F64)
    y = torch.randn(6, 2, generator=_gen(65), dtype=F64)
    rule = make_rule(name, ia_alpha=0.5, ia_beta=0.3, ia_gamma=0.1)
    st = rule.init_state(net, p, _gen(66))
    q, s = p, st
    for _ in range(2):
        q, s, info = rule.step(net, q, s, x, y, mse_loss)
    assert info["loss"].shape == (3,)
    for e in range(3):
        pe = [t[e] for t in p]
        se = type(st)(
            tuple(None if b is None else b[e] for b in st.feedback),
            {k: tuple(t[e] for t in v) for k, v in st.opt.items()},
            {k: tuple(None if t is None else t[e] for t in v) for k, v in st.feedback_opt.items()},
            0,
        )
        for _ in range(2):
            pe, se, ie = rule.step(net, pe, se, x[e], y, mse_loss)
        assert ie["loss"].shape == ()
        for a, b in zip(q, pe, strict=True):
            torch.testing.assert_close(a[e], b)


def test_conv_rules_run_on_an_ensemble():
    net = ConvNet((1, 8, 8), channels=(2, 3), kernel=3, hidden=4, n_out=3)
    p = net.init_params(_gen(67), ensemble=2)
    x = torch.randn(5, 1, 8, 8, generator=_gen(68))
    y = torch.randint(0, 3, (5,), generator=_gen(69))
    for name in ("sgdm", "adam", "fa", "ia", "ss", "kp"):
        rule = make_rule(name)
        st = rule.init_state(net, p, _gen(70))
        q, st, info = rule.step(net, p, st, x, y, cross_entropy_loss)
        assert info["loss"].shape == (2,) and all(torch.isfinite(t).all() for t in q)
        assert all(t.shape == u.shape for t, u in zip(q, p, strict=True))


# ---------------------------------------------------------------- training sanity and alignment angles


def _teacher_task(seed=0, d=16, N=128):
    g = _gen(seed)
    x = torch.randn(N, d, generator=g, dtype=F64)
    teacher = MLP([d, 20, 4], activation="tanh")
    tp = teacher.init_params(g, dtype=F64)
    tp[0] = 3 * tp[0]
    return g, x, teacher.forward(tp, x)


def _train(rule, net, p, x, y, g, steps=100):
    st = rule.init_state(net, p, g)
    for _ in range(steps):
        p, st, _ = rule.step(net, p, st, x, y, mse_loss)
    return p, st


def test_every_rule_lowers_the_training_loss():
    g, x, y = _teacher_task()
    net = MLP([16, 64, 4], activation="tanh")
    p0 = net.init_params(g, ensemble=4, dtype=F64)
    loss0 = mse_loss(net.forward(p0, x), y)
    for name in RULES:
        p, _ = _train(make_rule(name, lr=0.01 if name == "adam" else 0.05), net, p0, x, y, g)
        assert (mse_loss(net.forward(p, x), y) < 0.5 * loss0).all(), name


def test_fa_angle_stays_near_90_while_ia_aligns():
    """Acceptance point: FA's B–Wᵀ angle of the hidden→output layer stays in 90 ± 10°, IA's ends ≥ 20° lower.

    IA aligns B with Wᵀ Σ_x (its fixed point, identify-spec §2.3), so the reachable angle depends on the input
    second moment Σ_x of the layer; with tanh hidden units and (α, β, γ) = (0.05, 0.01, 0.025), lr 0.05, 100
    full-batch steps it reaches ≈ 55–60°.
    """
    g, x, y = _teacher_task()
    net = MLP([16, 64, 4], activation="tanh")
    p0 = net.init_params(g, ensemble=4, dtype=F64)
    p_fa, st_fa = _train(make_rule("fa", lr=0.05), net, p0, x, y, g)
    ia = make_rule("ia", lr=0.05, ia_alpha=0.05, ia_beta=0.01, ia_gamma=0.025)
    p_ia, st_ia = _train(ia, net, p0, x, y, g)
    fa_angle = angle_between(st_fa.feedback[1], p_fa[2])
    ia_angle = angle_between(st_ia.feedback[1], p_ia[2])
    assert ((fa_angle - 90).abs() <= 10).all(), fa_angle
    assert (ia_angle <= fa_angle - 20).all(), (ia_angle, fa_angle)


def test_angle_between_closed_forms():
    W = torch.randn(2, 4, 3, generator=_gen(71), dtype=F64)
    torch.testing.assert_close(angle_between(W.transpose(-1, -2), W), torch.zeros(2, dtype=F64), atol=1e-5, rtol=0)
    torch.testing.assert_close(angle_between(-3 * W.transpose(-1, -2), W), torch.full((2,), 180.0, dtype=F64))
    # B = Wᵀ + v with v ⟂ Wᵀ and ‖v‖ = ‖W‖ → 45°
    w = W[0].T.reshape(-1)
    v = torch.randn(12, generator=_gen(72), dtype=F64)
    v = v - v.dot(w) / w.dot(w) * w
    v = v / v.norm() * w.norm()
    assert angle_between((w + v).view(3, 4), W[0]).item() == pytest.approx(45.0, abs=1e-9)
    K = torch.randn(3, 2, 3, 3, generator=_gen(73), dtype=F64)
    assert angle_between(K, K).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ShapeError):
        angle_between(W[0], W[0])


# ---------------------------------------------------------------- losses


def test_losses_equal_torch_functional_per_member():
    out = torch.randn(3, 5, 4, generator=_gen(74), dtype=F64)
    y = torch.randn(5, 4, generator=_gen(75), dtype=F64)
    torch.testing.assert_close(mse_loss(out, y), torch.stack([F.mse_loss(o, y) for o in out]))
    torch.testing.assert_close(mse_loss(out[0], y), F.mse_loss(out[0], y))
    out1 = out[..., :1]
    torch.testing.assert_close(mse_loss(out1, y[:, 0]), torch.stack([F.mse_loss(o[:, 0], y[:, 0]) for o in out1]))
    labels = torch.randint(0, 4, (5,), generator=_gen(76))
    torch.testing.assert_close(cross_entropy_loss(out, labels), torch.stack([F.cross_entropy(o, labels) for o in out]))
    per_member = torch.randint(0, 4, (3, 5), generator=_gen(77))
    ref = torch.stack([F.cross_entropy(o, t) for o, t in zip(out, per_member, strict=True)])
    torch.testing.assert_close(cross_entropy_loss(out, per_member), ref)
    with pytest.raises(ShapeError):
        mse_loss(out, torch.zeros(6, 4))
    with pytest.raises(ShapeError):
        cross_entropy_loss(out, labels.double())


# ---------------------------------------------------------------- errors


def test_rule_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'sgdm'"):
        make_rule("sgdmm")
    with pytest.raises(UnknownNameError, match="did you mean 'ia_beta'"):
        make_rule({"name": "ia", "ia_betta": 0.1})
    with pytest.raises(UnknownNameError, match="rule option"):
        make_rule("fa", learning_rate=0.1)
    with pytest.raises(ConfigError, match="name"):
        make_rule({"lr": 0.1})
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ConfigError, match="lr"):
            make_rule("fa", lr=bad)
    with pytest.raises(ConfigError, match="momentum"):
        make_rule("sgdm", momentum=1.0)
    with pytest.raises(ConfigError, match="momentum"):
        make_rule("sgdm", momentum=-0.1)
    with pytest.raises(UnknownNameError, match="transport"):
        Rule("feedback_alignmnt", "momentum", 0.01)
    with pytest.raises(UnknownNameError, match="optimiser"):
        Rule("backprop", "adamw", 0.01)
    with pytest.raises(ConfigError, match="ia_beta"):
        make_rule("ia", ia_beta=-1.0)
    conv = ConvNet((1, 8, 8), channels=(2, 3), kernel=3, hidden=4, n_out=2)
    with pytest.raises(ConfigError, match="MLP only"):
        make_rule("dfa").init_state(conv, conv.init_params(_gen(78)), _gen(79))
    rule = make_rule({"name": "ia", "lr": 0.02}, ia_beta=5e-3)
    assert (rule.transport, rule.optimiser, rule.lr, rule.ia_beta, rule.name) == (
        "information_alignment",
        "momentum",
        0.02,
        5e-3,
        "ia",
    )
    net = MLP([3, 4, 2])
    p = net.init_params(_gen(80))
    st = rule.init_state(net, p, _gen(81))
    with pytest.raises(ShapeError, match="loss_fn"):
        rule.step(net, p, st, torch.zeros(5, 3), torch.zeros(5, 2), lambda o, y: (o - y).pow(2))


# ---------------------------------------------------------------- rules on the circuits without a backward pass


def test_rules_train_an_autograd_circuit_with_decay_and_learned_feedback():
    """On the mushroom body (circuit protocol, no explicit backward pass) one step is, from the circuit's own
    transported gradients g (``loss_grads`` with T = Bᵀ): θ ← θ − η(g + λθ + λ_KP θ·[weight]) and, for KP,
    B ← B − η(g_Wᵀ + λ_KP B) — the update the layered path applies."""
    mb = MushroomBody(4, 6, fan_in=2)
    members = mb.draw(_gen(90), 2, F64)
    x = torch.randn(2, 5, 4, generator=_gen(91), dtype=F64)
    y = torch.randn(2, 5, generator=_gen(92), dtype=F64)
    lr, wd, kp = 0.1, 0.01, 0.003
    rule = make_rule("kp", optimiser="sgd", lr=lr, weight_decay=wd, kp_decay=kp)
    st = rule.init_state(mb, members.params, _gen(93))
    B = st.feedback
    assert [tuple(b.shape) for b in B] == [(2, 6, 4), (2, 1, 6)]  # (out, in) per layer
    new, st2, info = rule.step(mb, members.params, st, x, y, mse_loss, fixed=members.fixed)
    g, loss = mb.loss_grads(members.params, x, y, members.fixed, transport=[b.transpose(1, 2) for b in B])
    for i, (p, gi, q) in enumerate(zip(members.params, g, new, strict=True)):
        torch.testing.assert_close(q, p - lr * (gi + wd * p + (kp * p if i % 2 == 0 else 0)))
    for layer, b, b2 in zip(mb.layers, B, st2.feedback, strict=True):
        torch.testing.assert_close(b2, b - lr * (g[2 * layer.index].transpose(1, 2) + kp * b))
    torch.testing.assert_close(info["loss"], loss)
    assert st2.step == 1


def test_records_based_rules_refuse_circuits_without_records():
    lif = SpikingLIF(3, 4, t_sim=4)
    params = lif.draw(_gen(94), 2, F64).params
    with pytest.raises(ConfigError, match="information alignment needs a layered circuit"):
        make_rule("ia").init_state(lif, params, _gen(95))
    with pytest.raises(ConfigError, match="MLP only"):
        make_rule("dfa").init_state(lif, params, _gen(95))
