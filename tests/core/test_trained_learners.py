"""Learners trained by unrolled plasticity: exact meta-gradients (finite differences) for every circuit under
backprop and the transport rules (the mushroom body and the LIF network by feedback alignment), three independent
implementations of feedback alignment agreeing, in-graph masking, connectivity statistics (closed-form
expectations), user modules, per-block random draws, the LIF layer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from learnscope.circuits import make_circuit
from learnscope.circuits.mlp import MLP
from learnscope.circuits.sparse import MushroomBody, connection_probabilities
from learnscope.circuits.spiking import SpikingLIF, spike
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners import trained as LEGACY
from learnscope.learners.module_learner import ModuleLearner
from learnscope.learners.trained import CircuitLearner, MushroomBodyLearner, SpikingLearner
from learnscope.plasticity import make_rule
from learnscope.plasticity.rules import mse_loss

F64 = torch.float64


def _task(gen, seed: int = 0, B: int = 2, n: int = 5, m: int = 7, d: int = 3):
    """Inputs on the unit sphere and random labels (float64): x_tr, y_tr, x_te, y_te."""
    g = gen(seed)
    x = torch.randn(B, n + m, d, generator=g, dtype=F64)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.randn(B, n + m, generator=g, dtype=F64)
    return x[:, :n], y[:, :n], x[:, n:], y[:, n:]


def _meta_loss(gen, learner, x_tr, y_tr, x_te, y_te, seed: int = 3) -> torch.Tensor:
    """Test MSE of a learner trained on (x_tr, y_tr); a fresh generator per call keeps the draws fixed."""
    pred = learner.fit_predict(x_tr, y_tr, x_te, generator=gen(seed))
    return ((pred - y_te) ** 2).mean()


def _fd_rel_error(gen, learner, seed: int = 0, h: float = 1e-6, **task) -> float:
    """‖autograd − central FD‖ / ‖FD‖ of d(test MSE)/d(y_train), every label entry perturbed."""
    x_tr, y_tr, x_te, y_te = _task(gen, seed, **task)
    y = y_tr.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_meta_loss(gen, learner, x_tr, y, x_te, y_te), y)
    fd = torch.zeros_like(y_tr)
    with torch.no_grad():
        for idx in np.ndindex(*y_tr.shape):
            e = torch.zeros_like(y_tr)
            e[idx] = h
            plus = _meta_loss(gen, learner, x_tr, y_tr + e, x_te, y_te)
            fd[idx] = (plus - _meta_loss(gen, learner, x_tr, y_tr - e, x_te, y_te)) / (2 * h)
    assert fd.norm() > 1e-6  # the labels do matter
    return float((grad - fd).norm() / fd.norm())


# ---------------------------------------------------------------- exact meta-gradients


def test_meta_gradient_mlp_gradient_descent_matches_finite_differences(gen) -> None:
    learner = CircuitLearner(MLP([3, 6, 6, 1]), rule="sgd", steps=4, lr=0.1)
    assert _fd_rel_error(gen, learner) < 1e-4


@pytest.mark.parametrize("positive", [False, "abs", "softplus"])
def test_meta_gradient_masked_mushroom_body_matches_finite_differences(gen, positive) -> None:
    learner = MushroomBodyLearner(n_inputs=3, n_hidden=8, fan_in=2, positive=positive, steps=4, lr=0.2, batch_size=3)
    assert _fd_rel_error(gen, learner) < 1e-4


def test_meta_gradient_smooth_spiking_learner_matches_finite_differences(gen) -> None:
    # smooth=True: the Heaviside forward is replaced by the sigmoid soft spike, so the training map is smooth and
    # finite differences are defined (bias-spec §3.1 check (i)); the backward code path is the same BPTT.
    learner = SpikingLearner(n_hidden=5, t_sim=8, steps=3, lr=0.2, surrogate="sigmoid", slope=2.0, smooth=True)
    assert _fd_rel_error(gen, learner) < 1e-4


@pytest.mark.parametrize("rule", ["fa", "kp", "dfa"])
def test_meta_gradient_feedback_rules_match_finite_differences(gen, rule: str) -> None:
    learner = CircuitLearner(MLP([3, 6, 5, 1], activation="tanh"), rule=rule, steps=4, lr=0.2)
    assert _fd_rel_error(gen, learner) < 1e-4


# ---------------------------------------------------------------- every circuit under every rule (one protocol)


@pytest.mark.parametrize("rule", ["fa", "ss", "kp"])
@pytest.mark.parametrize("positive", [False, "abs"])
def test_meta_gradient_mushroom_body_under_transport_rules_matches_finite_differences(gen, rule, positive) -> None:
    # the Fig 7 learner trained by feedback alignment (and sign symmetry, Kolen-Pollack): the readout error reaches
    # the Kenyon cells through B; the meta-gradient through the masked, transported training run is exact
    learner = MushroomBodyLearner(n_inputs=3, n_hidden=8, fan_in=2, positive=positive, steps=4, lr=0.2,
                                  batch_size=3, rule=rule)
    assert _fd_rel_error(gen, learner) < 1e-4


@pytest.mark.parametrize("encoding", ["current", "rate"])
def test_meta_gradient_spiking_learner_under_feedback_alignment_matches_finite_differences(gen, encoding) -> None:
    # smooth=True for a differentiable training map (see the BPTT test above); the readout error enters the LIF
    # layer through B and travels back in time by the surrogate derivative
    learner = SpikingLearner(n_hidden=5, t_sim=8, steps=3, lr=0.2, surrogate="sigmoid", slope=2.0, smooth=True,
                             encoding=encoding, max_rate=500.0, rule="fa")
    assert _fd_rel_error(gen, learner) < 1e-4


def test_meta_gradient_conv_pool_under_feedback_alignment_matches_finite_differences(gen) -> None:
    learner = CircuitLearner({"circuit": "conv_pool", "in_shape": [1, 4, 4], "channels": 2, "kernel": 3},
                             rule="fa", steps=3, lr=0.1, batch_size=3)
    assert _fd_rel_error(gen, learner, d=16) < 1e-4


def _fa_run(circuit, params, state, rule, x, y, steps: int, **kw):
    for _ in range(steps):
        params, state, _ = rule.step(circuit, params, state, x, y, mse_loss, create_graph=True, **kw)
    return params


def test_fully_connected_mushroom_body_under_fa_equals_the_mlp_under_fa(gen) -> None:
    """fan_in = n_inputs and no positivity make the mushroom body the MLP d → K → 1 with W1 = V. Three feedback-
    alignment steps from the same parameters and the same B then agree along three independent code paths — the
    MLP's explicit backward pass, the mushroom body's hand-written masked gradients, autograd through
    ``transported_affine`` (a loss that is not ``mse_loss``) — and so do their meta-gradients; backprop differs."""
    E, d, K = 2, 3, 6
    x_tr, y_tr, x_te, _ = _task(gen, 10, B=E, n=7, d=d)
    mb, mlp = MushroomBody(d, K, fan_in=d), MLP([d, K, 1])
    members = mb.draw(gen(1), E, F64)
    assert torch.equal(members.fixed["mask"], torch.ones(E, d, K, dtype=F64))
    fa = make_rule("fa", optimiser="sgd", lr=0.3)
    y = y_tr.clone().requires_grad_(True)
    other_loss = lambda out, t: ((out[..., 0] - t) ** 2).mean(-1)  # noqa: E731 - the same MSE, another object
    runs = {
        "mlp": _fa_run(mlp, members.params, fa.init_state(mlp, members.params, gen(2)), fa, x_tr, y, 3),
        "mb": _fa_run(mb, members.params, fa.init_state(mb, members.params, gen(2)), fa, x_tr, y, 3,
                      fixed=members.fixed),
    }
    state = fa.init_state(mb, members.params, gen(2))
    params = members.params
    for _ in range(3):
        params, state, _ = fa.step(mb, params, state, x_tr, y, other_loss, fixed=members.fixed, create_graph=True)
    runs["mb_autograd"] = params
    outs = {k: mlp.forward(p, x_te)[..., 0] for k, p in runs.items()}
    grads = {k: torch.autograd.grad(o.pow(2).sum(), y, retain_graph=True)[0] for k, o in outs.items()}
    for k in ("mb", "mb_autograd"):
        torch.testing.assert_close(outs[k], outs["mlp"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grads[k], grads["mlp"], rtol=1e-10, atol=1e-12)
    bp = make_rule("sgd", lr=0.3)
    backprop = _fa_run(mlp, members.params, bp.init_state(mlp, members.params, gen(2)), bp, x_tr, y, 3)
    assert (mlp.forward(backprop, x_te)[..., 0] - outs["mlp"]).abs().max() > 1e-3  # B, not W, carried the error


def test_lif_feedback_alignment_sends_the_readout_error_through_B(gen) -> None:
    """LIF under FA: g_W2, g_b2 are the true gradients ``hᵀe``, ``Σ_n e``; g_W1, g_b1 are the vector-Jacobian
    products of the hidden features with the error ``e Tᵀ`` (``T = Bᵀ``, W2's layout) instead of ``e W2ᵀ``."""
    lif = SpikingLIF(n_inputs=3, n_hidden=5, t_sim=6, surrogate="sigmoid", slope=2.0, smooth=True)
    E = 2
    x, y = _task(gen, 11, B=E, n=6)[:2]
    params, fixed = lif.draw(gen(3), E, F64)
    T = torch.randn(E, 5, 1, generator=gen(4), dtype=F64)
    grads, loss = lif.loss_grads(params, x, y, fixed, transport=[None, T])
    ps = [p.clone().requires_grad_(True) for p in params]
    feats, _ = lif.hidden_trace(ps, x)
    out = torch.baddbmm(ps[3].unsqueeze(1), feats, ps[2])
    e = 2 * (out - y.unsqueeze(-1)) / y.shape[1]  # ∂ Σ_e mean_n (out − y)² / ∂out
    torch.testing.assert_close(loss, ((out - y.unsqueeze(-1)) ** 2).mean((1, 2)).detach())
    torch.testing.assert_close(grads[2], feats.transpose(1, 2).detach() @ e.detach())
    torch.testing.assert_close(grads[3], e.sum(1).detach())
    ref = torch.autograd.grad(feats, ps[:2], grad_outputs=(e @ T.transpose(1, 2)).detach(), retain_graph=True)
    torch.testing.assert_close(grads[0], ref[0])
    torch.testing.assert_close(grads[1], ref[1])
    true = torch.autograd.grad(feats, ps[:2], grad_outputs=(e @ ps[2].transpose(1, 2)).detach())
    assert (grads[0] - true[0]).abs().max() > 1e-6  # the transport did change the hidden gradient


@pytest.mark.parametrize("name", ["mushroom_body", "spiking"])
def test_transport_rule_presets_keep_B_fixed_or_learned_as_their_rule_says(gen, name) -> None:
    kw = {"mushroom_body": {"n_hidden": 6, "steps": 3, "batch_size": 4}, "spiking": {"n_hidden": 4, "t_sim": 5,
                                                                                       "steps": 3}}[name]
    x_tr, y_tr, x_te, _ = _task(gen, 12, B=2, n=6, d=5)
    learner_cls = MushroomBodyLearner if name == "mushroom_body" else SpikingLearner
    for rule, moves in (("fa", False), ("kp", True)):
        learner = learner_cls(rule=rule, **kw)
        assert learner.describe()["rule"] == rule
        g = gen(0)
        _, fit = learner.fit_predict(x_tr, y_tr, x_te, generator=g, return_fitted=True)
        params0 = fit.circuit.draw(gen(0), 2, F64).params  # the same first draws from the same seed
        B0 = make_rule(rule).init_state(fit.circuit, params0, _after_members(fit.circuit, gen(0))).feedback
        B = fit.state.feedback
        assert [tuple(b.shape) for b in B] == [(2, *layer.feedback_shape) for layer in fit.circuit.layers]
        assert torch.equal(B[1], B0[1]) is not moves  # FA keeps its random B; Kolen-Pollack learns it


def _after_members(circuit, g):
    """The generator after the circuit's draw of 2 members (the rule's feedback matrices come next)."""
    circuit.draw(g, 2, F64)
    return g


def test_dense_fast_path_equals_plain_autograd_gradient_descent(gen) -> None:
    # same initial parameters (the circuit's init_params from the same generator) and the same minibatch indices
    # (drawn right after the parameters), trained by a textbook autograd loop per member
    B, n, steps, bs, lr = 3, 6, 5, 4, 0.1
    x_tr, y_tr, x_te, _ = _task(gen, 1, B=B, n=n)
    net = MLP([3, 7, 1])
    pred = CircuitLearner(net, steps=steps, lr=lr, batch_size=bs).fit_predict(x_tr, y_tr, x_te, generator=gen(5))
    g = gen(5)
    P = net.init_params(g, ensemble=B, dtype=F64)
    idx = torch.randint(n, (B, steps, bs), generator=g)
    for b in range(B):
        p = [t[b].clone().requires_grad_(True) for t in P]
        for t in range(steps):
            xb, yb = x_tr[b, idx[b, t]], y_tr[b, idx[b, t]]
            out = torch.relu(xb @ p[0] + p[1]) @ p[2] + p[3]
            grads = torch.autograd.grad(((out[:, 0] - yb) ** 2).mean(), p)
            p = [(q - lr * gq).detach().requires_grad_(True) for q, gq in zip(p, grads, strict=True)]
        ref = (torch.relu(x_te[b] @ p[0] + p[1]) @ p[2] + p[3])[:, 0]
        torch.testing.assert_close(pred[b], ref.detach(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- masking inside the graph


def _authors_masked_run(gen, mb: MushroomBody, x_tr, y_tr, x_te, seed: int, steps: int, lr: float, bs: int):
    """The authors' Fig 7 inner loop: W unmasked in the forward pass, updates zeroed in place under no_grad."""
    g = gen(seed)
    P, fixed = mb.draw(g, x_tr.shape[0], F64)
    mask = fixed["mask"]
    idx = torch.randint(x_tr.shape[1], (x_tr.shape[0], steps, bs), generator=g)
    params = [p.clone().requires_grad_(True) for p in P]
    ar = torch.arange(x_tr.shape[0])[:, None]
    for t in range(steps):
        xb, yb = x_tr[ar, idx[:, t]], y_tr[ar, idx[:, t]]
        V, b1, W2, b2 = params
        out = torch.baddbmm(b2.unsqueeze(1), torch.relu(torch.baddbmm(b1.unsqueeze(1), xb, V)), W2)[..., 0]
        updates = list(torch.autograd.grad(((out - yb) ** 2).mean(1).sum(), params, create_graph=True))
        with torch.no_grad():
            updates[0].mul_(mask)  # not recorded by autograd
        params = [p - lr * u for p, u in zip(params, updates, strict=True)]
    V, b1, W2, b2 = params
    return torch.baddbmm(b2.unsqueeze(1), torch.relu(torch.baddbmm(b1.unsqueeze(1), x_te, V)), W2)[..., 0]


def test_masked_weights_get_exactly_zero_update(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 2, B=3, n=8, d=5)
    learner = MushroomBodyLearner(n_inputs=5, n_hidden=12, steps=6, lr=0.2, batch_size=5)
    _, fit = learner.fit_predict(x_tr, y_tr.requires_grad_(True), x_te, generator=gen(0), return_fitted=True)
    mask = fit.fixed["mask"]
    V0, V1 = fit.initial[0], fit.params[0]
    assert torch.equal(mask.sum(1), torch.full((3, 12), 2.0, dtype=F64))
    assert torch.all(V0[mask == 0] == 0) and torch.all(V1[mask == 0] == 0)
    moved = (V1 - V0)[mask == 1] != 0
    assert moved.float().mean() > 0.5  # connected weights do learn (those of silent ReLU units cannot)


def test_in_graph_masking_fixes_the_authors_meta_gradient(gen) -> None:
    x_tr, y_tr, x_te, y_te = _task(gen, 4, B=2, n=8, m=10, d=5)
    steps, lr, bs, seed = 5, 0.3, 6, 7
    mb = MushroomBody(n_inputs=5, n_hidden=10, fan_in=2)
    learner = CircuitLearner(mb, steps=steps, lr=lr, batch_size=bs)

    def ours(y):
        return ((learner.fit_predict(x_tr, y, x_te, generator=gen(seed)) - y_te) ** 2).mean()

    def authors(y):
        return ((_authors_masked_run(gen, mb, x_tr, y, x_te, seed, steps, lr, bs) - y_te) ** 2).mean()

    y1, y2 = y_tr.clone().requires_grad_(True), y_tr.clone().requires_grad_(True)
    l1, l2 = ours(y1), authors(y2)
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-14)  # identical forward pass
    (g1,) = torch.autograd.grad(l1, y1)
    (g2,) = torch.autograd.grad(l2, y2)
    h = 1e-6
    fd = torch.zeros_like(y_tr)
    with torch.no_grad():
        for idx in np.ndindex(*y_tr.shape):
            e = torch.zeros_like(y_tr)
            e[idx] = h
            fd[idx] = (ours(y_tr + e) - ours(y_tr - e)) / (2 * h)
    assert float((g1 - fd).norm() / fd.norm()) < 1e-4  # in-graph mask: the true derivative
    assert float((g2 - fd).norm() / fd.norm()) > 1e-2  # no_grad masking: a different, wrong one


# ---------------------------------------------------------------- connectivity schemes


def _frequencies(gen, mb: MushroomBody, E: int = 400) -> torch.Tensor:
    M = mb.sample_mask(gen(11), E, F64)  # (E, d, K)
    return M.permute(0, 2, 1).reshape(-1, mb.n_inputs)  # one row per hidden unit


@pytest.mark.parametrize(
    ("scheme", "fan_in"), [("random", 1), ("random", 3), ("overconnected", 2), ("grouped", 2), ("grouped", 3)]
)
def test_every_hidden_unit_has_exactly_fan_in_inputs(gen, scheme: str, fan_in: int) -> None:
    rows = _frequencies(gen, MushroomBody(5, 50, fan_in=fan_in, scheme=scheme), E=20)
    assert torch.equal(rows.sum(1), torch.full((rows.shape[0],), float(fan_in), dtype=F64))
    assert set(rows.unique().tolist()) == {0.0, 1.0}


def test_overconnected_input_frequency_matches_sampling_without_replacement(gen) -> None:
    p = [0.6, 0.1, 0.1, 0.1, 0.1]
    # P(i ∈ {first, second}) = p_i + Σ_{j≠i} p_j · p_i / (1 − p_j)
    exact = [p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(5) if j != i) for i in range(5)]
    assert exact[0] == pytest.approx(0.6 + 4 * 0.1 * 0.6 / 0.9)
    torch.testing.assert_close(connection_probabilities(p, 2), torch.tensor(exact, dtype=F64))
    freq = _frequencies(gen, MushroomBody(5, 100, scheme="overconnected")).mean(0)  # 40 000 units, σ ≈ 0.002
    np.testing.assert_allclose(freq.numpy(), exact, atol=0.012)


def test_random_scheme_is_uniform(gen) -> None:
    freq = _frequencies(gen, MushroomBody(5, 100, scheme="random")).mean(0)
    np.testing.assert_allclose(freq.numpy(), 0.4, atol=0.012)


def test_grouped_scheme_co_connection_frequencies(gen) -> None:
    rows = _frequencies(gen, MushroomBody(5, 100, scheme="grouped"))
    co = lambda i, j: float((rows[:, i] * rows[:, j]).mean())  # noqa: E731
    # first input uniform (1/5), second from the conditional row: pair {i, j} = (P[i, j] + P[j, i]) / 5
    assert co(0, 1) == pytest.approx(2 * 0.85 / 5, abs=0.012)  # the G pair
    assert co(2, 3) == pytest.approx(2 * 0.4 / 5, abs=0.012)  # an N pair
    assert co(0, 2) == pytest.approx((0.05 + 0.1) / 5, abs=0.006)  # across groups


def test_incidence_matrix_sampler_respects_zero_probabilities(gen) -> None:
    d, K = 5, 30
    P = torch.rand(d, K, generator=gen(3), dtype=F64)
    zero = torch.rand(d, K, generator=gen(4)) < 0.35
    zero[:, :2] = False
    for k in range(K):  # keep at least 2 positive entries per column
        if (~zero[:, k]).sum() < 2:
            zero[:2, k] = False
    P[zero] = 0
    mb = MushroomBody(d, K, fan_in=2, scheme="incidence", probs=P)
    M = mb.sample_mask(gen(5), 200, F64)
    assert M[:, zero].sum() == 0
    assert torch.equal(M.sum(1), torch.full((200, K), 2.0, dtype=F64))
    assert torch.all(M.sum(0)[~zero] > 0)  # every allowed connection occurs
    P_bad = P.clone()
    P_bad[:, 0] = 0
    P_bad[0, 0] = 1
    with pytest.raises(ConfigError):
        MushroomBody(d, K, fan_in=2, scheme="incidence", probs=P_bad)


def test_mushroom_body_rejects_bad_configs() -> None:
    with pytest.raises(ConfigError):
        MushroomBody(5, 10, fan_in=6)
    with pytest.raises(UnknownNameError):
        MushroomBody(5, 10, scheme="grouped_")
    with pytest.raises(ConfigError):
        MushroomBody(6, 10, scheme="overconnected")  # no default weights for 6 inputs
    for rule in ("ia", "dfa"):  # they need a layered circuit's records / DFA support; fa, ss, kp train it
        with pytest.raises(ConfigError):
            CircuitLearner(MushroomBody(), rule=rule)


# ---------------------------------------------------------------- a user's own nn.Module


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 4)
        self.fc2 = torch.nn.Linear(4, 1)
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.fc2(torch.tanh(self.gain * self.fc1(x)))


def test_user_module_equals_hand_written_functional_gd(gen) -> None:
    B, steps, lr = 3, 6, 0.2
    x_tr, y_tr, x_te, _ = _task(gen, 5, B=B)
    module = _Tiny().double()
    rng = torch.get_rng_state()
    learner = ModuleLearner(module, steps=steps, lr=lr)
    pred = learner.fit_predict(x_tr, y_tr, x_te, generator=gen(9))
    assert torch.equal(torch.get_rng_state(), rng)  # global RNG untouched
    init = learner.init_params(gen(9), B, F64)
    bound = 1 / math.sqrt(3)  # fc1 weight and bias: fan_in 3; gain: shape (1,) → fan_in 1
    assert init["fc1.weight"].abs().max() <= bound and init["fc1.bias"].abs().max() <= bound
    assert init["fc2.bias"].abs().max() <= 0.5
    for b in range(B):
        p = {k: v[b].clone().requires_grad_(True) for k, v in init.items()}
        for _ in range(steps):
            loss = ((functional_call(module, p, (x_tr[b],))[:, 0] - y_tr[b]) ** 2).mean()
            grads = torch.autograd.grad(loss, list(p.values()))
            p = {k: (v - lr * gk).detach().requires_grad_(True) for (k, v), gk in zip(p.items(), grads, strict=True)}
        ref = functional_call(module, p, (x_te[b],))[:, 0]
        torch.testing.assert_close(pred[b], ref.detach(), rtol=1e-12, atol=1e-12)


def test_user_module_meta_gradient_matches_finite_differences(gen) -> None:
    assert _fd_rel_error(gen, ModuleLearner(_Tiny().double(), steps=3, lr=0.2, batch_size=3)) < 1e-4


def test_user_module_only_plain_gradient_descent() -> None:
    with pytest.raises(ConfigError):
        ModuleLearner(_Tiny(), rule="fa")


# ---------------------------------------------------------------- per-block generators


@pytest.mark.parametrize(
    "learner",
    [
        MushroomBodyLearner(n_hidden=10, steps=3, batch_size=4, scheme="grouped"),
        CircuitLearner(MLP([5, 6, 1]), rule="fa", steps=3, lr=0.1, batch_size=4),
        ModuleLearner(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double(),
                      steps=3),
        SpikingLearner(n_hidden=4, t_sim=5, steps=2, encoding="rate", max_rate=500.0),
    ],
    ids=["mushroom_body", "fa", "module", "spiking_rate"],
)
def test_block_zero_does_not_depend_on_other_blocks(gen, learner) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 6, B=4, n=6, m=5, d=5)
    both = learner.fit_predict(x_tr, y_tr, x_te, generator=[gen(1), gen(2)])
    alone = learner.fit_predict(x_tr[:2], y_tr[:2], x_te[:2], generator=[gen(1)])
    assert torch.equal(both[:2], alone)
    assert not torch.allclose(both[:2], both[2:])  # the other block did draw differently


# ---------------------------------------------------------------- the spiking layer


@pytest.mark.parametrize("kind", ["fast_sigmoid", "sigmoid"])
def test_spike_value_surrogate_and_second_derivative_under_vmap(kind: str) -> None:
    k = 4.0
    v = torch.tensor([-0.7, -0.2, 0.1, 0.3, 1.5], dtype=F64)

    def f(u):
        return spike(u, kind, k)

    assert torch.equal(f(v), (v > 0).to(F64))
    d1 = torch.func.vmap(torch.func.grad(f))(v)
    d2 = torch.func.vmap(torch.func.grad(torch.func.grad(f)))(v)
    if kind == "fast_sigmoid":  # sg' = 1/(1+k|v|)², sg'' = −2k sign(v)/(1+k|v|)³
        e1, e2 = (1 + k * v.abs()) ** -2, -2 * k * torch.sign(v) * (1 + k * v.abs()) ** -3
    else:  # sg' = 4σ(1−σ), sg'' = 4kσ(1−σ)(1−2σ), σ = σ(kv)
        s = torch.sigmoid(k * v)
        e1, e2 = 4 * s * (1 - s), 4 * k * s * (1 - s) * (1 - 2 * s)
    torch.testing.assert_close(d1, e1)
    torch.testing.assert_close(d2, e2)


def _lif_reference(c: SpikingLIF, params, x, noise=None) -> np.ndarray:
    """bias-spec §3.1 equations, one member at a time in numpy, readout U[t+1] = β_out U[t] + S[t] W2."""
    W1, b1, W2, b2 = (p.detach().numpy() for p in params)
    al, be, bo = math.exp(-c.dt / c.tau_syn), math.exp(-c.dt / c.tau_mem), math.exp(-c.dt / c.tau_out)
    out = []
    for e in range(W1.shape[0]):
        xe = x[e].numpy()
        I = np.zeros((xe.shape[0], c.n_hidden))
        V, U, Us = I.copy(), np.zeros((xe.shape[0], 1)), []
        for t in range(c.t_sim):
            if c.encoding == "current":
                cur = c.input_gain * (xe @ W1[e] + b1[e])
            else:
                p = np.clip(np.concatenate([xe, -xe], -1), 0, None) * c.max_rate * c.dt / 1000
                s_in = (noise[e, :, t].numpy() < p).astype(float)
                cur = c.input_gain * (s_in @ W1[e] + b1[e])
            S = (V > c.threshold).astype(float)
            I, V = al * I + cur, (be * V + I) * (1 - S)
            U = bo * U + S @ W2[e]
            Us.append(U)
        out.append(np.mean(Us, axis=0)[:, 0] + b2[e, 0])
    return np.stack(out)


@pytest.mark.parametrize("encoding", ["current", "rate"])
def test_lif_forward_matches_the_spec_equations(gen, encoding: str) -> None:
    c = SpikingLIF(n_inputs=3, n_hidden=6, t_sim=12, encoding=encoding, input_gain=1.0, max_rate=400.0)
    g = gen(2)
    params, _ = c.draw(g, 2, F64)
    x = _task(gen, 7, B=2, n=9)[0]
    fixed = c.draw_per_point(g, 2, 9, F64)
    assert list(fixed) == (["noise"] if encoding == "rate" else [])
    out = c.forward(params, x, fixed)[..., 0]
    ref = _lif_reference(c, params, x, fixed.get("noise"))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    _, counts = c.hidden_trace(params, x, fixed)
    assert 0 < float(counts.mean()) < c.t_sim / 2  # some spikes, not saturated (max one per two steps)


# ---------------------------------------------------------------- configuration


def test_describe_rebuilds_the_same_learner(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 8, d=5)
    for learner, cls in [
        (CircuitLearner({"circuit": "mlp", "hidden": [4]}, rule="kp", steps=2, batch_size=3), CircuitLearner),
        (MushroomBodyLearner(n_hidden=6, scheme="overconnected", positive=True, steps=2), MushroomBodyLearner),
        (SpikingLearner(n_hidden=3, t_sim=4, steps=2), SpikingLearner),
    ]:
        kw = {k: v for k, v in learner.describe().items() if k != "name"}
        rebuilt = cls(**kw)
        a = learner.fit_predict(x_tr, y_tr, x_te, generator=gen(0))
        b = rebuilt.fit_predict(x_tr, y_tr, x_te, generator=gen(0))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_descriptions_of_circuit_objects_rules_modules_and_custom_functions(gen) -> None:
    """Arguments that are objects are described by their own describe() (a circuit, a Rule), a module by its repr,
    a custom function as "custom"; everything else as given. The descriptions are strict JSON."""
    net = MLP([3, 4, 1], activation="tanh")
    learner = CircuitLearner(net, rule=make_rule("fa"), steps=2, lr=0.1)
    spec = learner.describe()
    assert spec["circuit"] == net.describe() and spec["rule"] == make_rule("fa").describe()
    x_tr, y_tr, x_te, _ = _task(gen, 9)
    rebuilt = CircuitLearner(**{k: v for k, v in spec.items() if k != "name"})
    torch.testing.assert_close(rebuilt.fit_predict(x_tr, y_tr, x_te, generator=gen(1)),
                               learner.fit_predict(x_tr, y_tr, x_te, generator=gen(1)), rtol=0, atol=0)
    assert CircuitLearner(net, init=net.init_params).describe()["init"] == "custom"
    assert CircuitLearner().describe()["rule"] == "sgd" == CircuitLearner(rule="backprop").describe()["rule"]
    module = _Tiny()
    plain = ModuleLearner(module, steps=3, batch_size=2).describe()
    assert plain["module"] == repr(module) and plain["init"] == "default" and plain["steps"] == 3
    assert plain["batch_size"] == 2 and plain["name"] == "trained_module"
    assert ModuleLearner(module, init=lambda name, shape, g, dtype: torch.zeros(shape)).describe()["init"] == "custom"
    for d in (spec, plain):
        assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert repr(learner).startswith("CircuitLearner(circuit=MLP([3, 4, 1], activation='tanh'), rule=Rule(")
    assert LEGACY.TrainedLearner is CircuitLearner and LEGACY.Trained is ModuleLearner  # deprecated aliases
    assert LEGACY.build_circuit is make_circuit


def test_bad_inputs_raise_learnscope_errors(gen) -> None:
    x_tr, y_tr, x_te, _ = _task(gen, 0)
    with pytest.raises(ConfigError):
        CircuitLearner().fit_predict(x_tr, y_tr, x_te)  # no generator
    with pytest.raises(ShapeError):
        CircuitLearner(MLP([4, 3, 1])).fit_predict(x_tr, y_tr, x_te, generator=gen(0))  # d = 3, not 4
    with pytest.raises(ConfigError):
        CircuitLearner(MLP([3, 3, 2]))  # two outputs
    with pytest.raises(UnknownNameError):
        CircuitLearner(rule="feedback")
    with pytest.raises(ConfigError):
        CircuitLearner(steps=0)
    with pytest.raises(UnknownNameError):
        SpikingLIF(surrogate="atan")
