"""Circuits: layer grouping (identify-spec §3.3), initialisation (torch's own defaults in distribution, the old
hand-written initialisers exactly), ensemble forward vs plain torch, records, backprop gradients vs
``nn.Sequential`` autograd, transported input gradients, input validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import ks_2samp
from torch import nn
from torch.nn.utils import skip_init

from learnscope.bias.metalearner import MetaCNN
from learnscope.circuits import MLP, ConvNet, group_layers, make_circuit
from learnscope.circuits.base import default_uniform_init, uniform
from learnscope.circuits.pool import ConvPool
from learnscope.circuits.sparse import MushroomBody
from learnscope.circuits.spiking import SpikingLIF
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners.module_learner import ModuleLearner

F64 = torch.float64


# ---------------------------------------------------------------- grouping


@pytest.mark.parametrize(
    ("n", "counts"),
    [(4, (1, 1, 2)), (5, (1, 1, 3)), (8, (2, 2, 4)), (22, (7, 7, 8)), (38, (12, 12, 14)), (1, (0, 0, 1))],
)
def test_group_layers_reproduces_spec_table(n, counts):
    groups = group_layers(n)
    assert len(groups) == n
    assert tuple(groups.count(g) for g in ("early", "middle", "deep")) == counts
    # contiguous blocks in order early → middle → deep
    order = {"early": 0, "middle": 1, "deep": 2}
    assert [order[g] for g in groups] == sorted(order[g] for g in groups)


def test_group_layers_knet_names():
    assert group_layers(4) == ["early", "middle", "deep", "deep"]
    assert [layer.group for layer in ConvNet((1, 8, 8)).layers] == ["early", "middle", "deep", "deep"]
    with pytest.raises(ConfigError):
        group_layers(0)


# ---------------------------------------------------------------- init


def test_init_bounds_shapes_and_independent_members(gen):
    net = MLP([50, 200, 3])
    p = net.init_params(gen(0), ensemble=4)
    assert [tuple(t.shape) for t in p] == [(4, 50, 200), (4, 200), (4, 200, 3), (4, 3)]
    for t, fan_in in zip(p, (50, 50, 200, 200), strict=True):
        bound = 1 / math.sqrt(fan_in)
        assert t.abs().max() <= bound
        assert t.abs().max() > 0.9 * bound  # the whole interval is used
    # U(±a) has variance a²/3
    assert p[0].var().item() == pytest.approx(1 / 50 / 3, rel=0.05)
    assert not torch.equal(p[0][0], p[0][1])  # independent members
    # ensemble=1 reproduces the single-network draw of the same generator state
    single = net.init_params(gen(0))
    one = net.init_params(gen(0), ensemble=1)
    assert all(torch.equal(a, b[0]) for a, b in zip(single, one, strict=True))
    assert p[0].dtype == torch.float32 and net.init_params(gen(0), dtype=F64)[0].dtype == F64


def test_conv_init_uses_kernel_fan_in(gen):
    net = ConvNet((3, 8, 8), channels=(4, 6), kernel=3, hidden=5, n_out=2)
    p = net.init_params(gen(1), ensemble=2)
    assert tuple(p[0].shape) == (2, 4, 3, 3, 3) and tuple(p[4].shape) == (2, 6 * 2 * 2, 5)
    assert p[0].abs().max() <= 1 / math.sqrt(27) and p[2].abs().max() <= 1 / math.sqrt(36)
    assert p[0].abs().max() > 0.8 / math.sqrt(27)


def _ks_2samp_pvalue(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(ks_2samp(a.detach().flatten().numpy(), b.detach().flatten().numpy()).pvalue)


def test_default_uniform_init_is_torchs_linear_and_conv_default_in_distribution(gen):
    """The reference is torch itself: nn.Linear / nn.Conv2d built by their own reset_parameters (kaiming_uniform_
    with a = √5 for the weight, U(±1/√fan_in) for the bias). They draw from the global RNG, so they are built
    inside fork_rng (seeded there for a deterministic test; the global state is restored on exit)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lin = nn.Linear(7, 3000, dtype=F64)
        conv = nn.Conv2d(3, 500, 3, dtype=F64)
    ours = default_uniform_init([((7, 3000), 7), ((3000,), 7), ((500, 3, 3, 3), 27), ((500,), 27)], gen(0), dtype=F64)
    refs = [(lin.weight, 7), (lin.bias, 7), (conv.weight, 27), (conv.bias, 27)]
    for mine, (ref, fan) in zip(ours, refs, strict=True):
        bound = 1 / math.sqrt(fan)
        assert mine.abs().max() <= bound and ref.abs().max() <= bound * (1 + 1e-12)
        assert mine.abs().max() > 0.99 * bound and ref.abs().max() > 0.99 * bound
        assert _ks_2samp_pvalue(mine, ref) > 1e-3  # the same law
    # the comparison has power: with ≥ 13 500 draws a 10 % wider interval is rejected
    for mine, ref in ((ours[0], lin.weight), (ours[2], conv.weight)):
        assert _ks_2samp_pvalue(1.1 * mine, ref) < 1e-3


def test_default_uniform_init_draw_order_ensemble_and_fan_in_zero(gen):
    shapes = [((2, 3), 2), ((3,), 2), ((0, 4), 0), ((4,), 0)]
    one = default_uniform_init(shapes, gen(1), dtype=F64)
    ens = default_uniform_init(shapes, gen(1), ensemble=1, dtype=F64)
    assert [tuple(t.shape) for t in one] == [(2, 3), (3,), (0, 4), (4,)]
    assert all(torch.equal(a, b[0]) for a, b in zip(one, ens, strict=True))
    assert torch.equal(one[3], torch.zeros(4, dtype=F64))  # fan_in 0: bound 0, as torch's reset_parameters
    g = gen(1)  # one uniform() draw per tensor, in the order given (the empty tensor draws nothing)
    expected = [uniform(shape, 1 / math.sqrt(fan) if fan else 0.0, g, F64) for shape, fan in shapes]
    assert all(torch.equal(a, b) for a, b in zip(one, expected, strict=True))
    assert not torch.equal(one[0][0], one[0][1])
    with pytest.raises(ConfigError, match="generator"):
        default_uniform_init(shapes, None)
    with pytest.raises(ConfigError, match="ensemble"):
        default_uniform_init(shapes, gen(1), ensemble=0)


def _old_formula(g: torch.Generator, shapes, lead=(), divide=False) -> list[torch.Tensor]:
    """What the six hand-written initialisers computed: (2u − 1)·(1/√fan_in), one torch.rand per tensor in order
    (``divide``: ConvPool's variant (2u − 1)/√fan_in)."""
    out = []
    for shape, fan in shapes:
        u = torch.rand((*lead, *shape), generator=g, dtype=F64) * 2 - 1
        out.append(u / math.sqrt(fan) if divide else u * (1 / math.sqrt(fan)))
    return out


def test_every_initialiser_reproduces_its_old_copy_for_a_fixed_generator(gen):
    def same(new, old):
        assert len(new) == len(old) and all(torch.equal(a, b) for a, b in zip(new, old, strict=True))

    mlp = MLP([5, 4, 3])  # Circuit.init_params
    same(mlp.init_params(gen(0), ensemble=3, dtype=F64),
         _old_formula(gen(0), [((5, 4), 5), ((4,), 5), ((4, 3), 4), ((3,), 4)], lead=(3,)))
    conv = ConvNet((2, 4, 4), channels=(3, 2), kernel=3, hidden=4, n_out=1)
    same(conv.init_params(gen(1), dtype=F64),
         _old_formula(gen(1), [(layer.weight_shape, layer.fan_in) if i % 2 == 0 else (layer.bias_shape, layer.fan_in)
                               for layer in conv.layers for i in (0, 1)]))
    lif = SpikingLIF(n_inputs=3, n_hidden=5, encoding="rate")  # d_in = 6
    same(lif.draw(gen(2), 2, F64).params, _old_formula(gen(2), [((6, 5), 6), ((5,), 6), ((5, 1), 5), ((1,), 5)], (2,)))
    mb = MushroomBody(n_inputs=4, n_hidden=6, fan_in=2)
    mask = mb.sample_mask(gen(3), 2, F64)
    V, b1, W2, b2 = _old_formula(gen(4), [((4, 6), 4), ((6,), 4), ((6, 1), 6), ((1,), 6)], (2,))
    same(mb.params_for_mask(gen(4), mask, F64), [V * mask, b1, W2, b2])
    members = mb.draw(gen(3), 2, F64)  # the protocol's draw: the mask, then the parameters, from one generator
    g = gen(3)
    mask = mb.sample_mask(g, 2, F64)
    V, b1, W2, b2 = _old_formula(g, [((4, 6), 4), ((6,), 4), ((6, 1), 6), ((1,), 6)], (2,))
    same(members.params, [V * mask, b1, W2, b2])
    assert list(members.fixed) == ["mask"] and torch.equal(members.fixed["mask"], mask)
    cnn = MetaCNN(in_shape=(1, 4, 4), channels=(2, 3), kernel=3)  # one full draw per seed generator, stacked
    stacked = [p.detach() for p in cnn.init([gen(5), gen(6)], F64)]
    for s, seed in enumerate((5, 6)):
        same([p[s] for p in stacked], _old_formula(gen(seed), cnn.param_shapes()))
    module = nn.Sequential(_linear(3, 4), nn.Tanh(), _linear(4, 1))
    # named_parameters() order; a bias takes its weight's fan-in
    drawn = ModuleLearner(module).init_params(gen(7), 2, F64)
    same(list(drawn.values()), _old_formula(gen(7), [((4, 3), 3), ((4,), 3), ((1, 4), 4), ((1,), 4)], (2,)))
    # ConvPool divided by √fan_in where every other copy multiplies by 1/√fan_in; the shared initialiser
    # multiplies, so ConvPool's values now differ from before by at most an ulp (rounding), never more
    pool = ConvPool((1, 4, 4), channels=2, kernel=3)
    old = _old_formula(gen(8), [((2, 1, 3, 3), 9), ((2,), 9), ((8, 1), 8), ((1,), 8)], (2,), divide=True)
    for a, b in zip(pool.draw(gen(8), 2, F64).params, old, strict=True):
        torch.testing.assert_close(a, b, rtol=4e-16, atol=0)


# ---------------------------------------------------------------- forward vs plain torch


def _mlp_reference(p, x, e, act=torch.relu):
    h = x
    L = len(p) // 2
    outs = []
    for i in range(L):
        h = F.linear(h, p[2 * i][e].T, p[2 * i + 1][e])
        if i < L - 1:
            h = act(h)
        outs.append(h)
    return outs


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
def test_mlp_ensemble_forward_equals_member_loop(gen, activation):
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda a: a}[activation]
    net = MLP([3, 7, 5, 2], activation=activation)
    p = net.init_params(gen(2), ensemble=3, dtype=F64)
    x_shared = torch.randn(4, 3, generator=gen(3), dtype=F64)
    x_each = torch.randn(3, 4, 3, generator=gen(4), dtype=F64)
    out_shared, rec = net.forward(p, x_shared, record=True)
    out_each = net.forward(p, x_each)
    for e in range(3):
        ref = _mlp_reference(p, x_shared, e, act)
        torch.testing.assert_close(out_shared[e], ref[-1])
        torch.testing.assert_close(out_each[e], _mlp_reference(p, x_each[e], e, act)[-1])
        for i in range(3):
            torch.testing.assert_close(rec[i]["output"][e], ref[i])
            torch.testing.assert_close(rec[i]["input"][e], x_shared if i == 0 else ref[i - 1])


def test_mlp_without_ensemble_axis(gen):
    net = MLP([3, 6, 2])
    p = net.init_params(gen(5), dtype=F64)
    x = torch.randn(5, 3, generator=gen(6), dtype=F64)
    out, rec = net.forward(p, x, record=True)
    assert out.shape == (5, 2) and rec[0]["output"].shape == (5, 6)
    ref = F.linear(torch.relu(F.linear(x, p[0].T, p[1])), p[2].T, p[3])
    torch.testing.assert_close(out, ref)


def _conv_reference(p, x, e, pad, pool):
    h1 = F.max_pool2d(torch.relu(F.conv2d(x, p[0][e], p[1][e], padding=pad)), pool)
    h2 = F.max_pool2d(torch.relu(F.conv2d(h1, p[2][e], p[3][e], padding=pad)), pool)
    h3 = torch.relu(F.linear(h2.flatten(1), p[4][e].T, p[5][e]))
    return [h1, h2, h3, F.linear(h3, p[6][e].T, p[7][e])]


@pytest.mark.parametrize(
    ("in_shape", "kernel", "pad", "pool"),
    [((1, 8, 8), 3, (1, 1), (2, 2)), ((2, 7, 9), 5, (2, 2), (2, 2)), ((1, 1, 40), 5, (0, 2), (1, 2))],
)
def test_convnet_ensemble_forward_equals_member_loop(gen, in_shape, kernel, pad, pool):
    net = ConvNet(in_shape, channels=(3, 4), kernel=kernel, hidden=6, n_out=3)
    p = net.init_params(gen(7), ensemble=2, dtype=F64)
    x = torch.randn(5, *in_shape, generator=gen(8), dtype=F64)
    out, rec = net.forward(p, x, record=True)
    assert out.shape == (2, 5, 3)
    for e in range(2):
        ref = _conv_reference(p, x, e, pad, pool)
        torch.testing.assert_close(out[e], ref[-1])
        for i in range(4):
            torch.testing.assert_close(rec[i]["output"][e], ref[i])
        torch.testing.assert_close(rec[2]["input"][e], ref[1].flatten(1))
    # per-member inputs
    xe = torch.randn(2, 5, *in_shape, generator=gen(9), dtype=F64)
    oe = net.forward(p, xe)
    for e in range(2):
        torch.testing.assert_close(oe[e], _conv_reference(p, xe[e], e, pad, pool)[-1])


def test_layer_forward_maps_recorded_input_to_recorded_output(gen):
    for net, x in (
        (MLP([4, 6, 5, 2]), torch.randn(3, 4, generator=gen(10), dtype=F64)),
        (ConvNet((1, 8, 8), channels=(2, 3), kernel=3, hidden=4, n_out=2), torch.randn(3, 1, 8, 8, dtype=F64)),
    ):
        p = net.init_params(gen(11), ensemble=2, dtype=F64)
        _, rec = net.forward(p, x, record=True)
        for i in range(net.n_layers):
            torch.testing.assert_close(net.layer_forward(p, i, rec[i]["input"]), rec[i]["output"])


# ---------------------------------------------------------------- backprop gradients vs nn.Sequential


def _copy_into(seq: nn.Sequential, p, e: int) -> None:
    mods = [m for m in seq if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, m in enumerate(mods):
            W = p[2 * i][e]
            m.weight.copy_(W.T if isinstance(m, nn.Linear) else W)
            m.bias.copy_(p[2 * i + 1][e])


def _seq_grads(seq: nn.Sequential, x, y):
    loss = F.mse_loss(seq(x), y)
    mods = [m for m in seq if isinstance(m, (nn.Linear, nn.Conv2d))]
    params = [t for m in mods for t in (m.weight, m.bias)]
    g = torch.autograd.grad(loss, params)
    return [g[i].T if (i % 2 == 0 and isinstance(mods[i // 2], nn.Linear)) else g[i] for i in range(len(g))]


def _circuit_grads(net, p, x, y):
    """Parameter gradients of the per-member MSE, by the explicit backward and by autograd through forward."""
    pp = [t.clone().requires_grad_() for t in p]
    out, rec = net.forward(pp, x, record=True)
    o = out.detach().requires_grad_()
    loss = (o - y).pow(2).mean((-2, -1)).sum()
    (delta,) = torch.autograd.grad(loss, o)
    explicit = net.backward(pp, rec, delta)
    auto = torch.autograd.grad((out - y).pow(2).mean((-2, -1)).sum(), pp)
    return explicit, auto


def _linear(n_in: int, n_out: int) -> nn.Linear:
    return skip_init(nn.Linear, n_in, n_out, dtype=F64)  # values come from the circuit: no draw from the global RNG


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return skip_init(nn.Conv2d, c_in, c_out, 3, padding=1, dtype=F64)


# the circuit, the same network as nn modules, the input batch shape, the output size and the first seed
BACKPROP_CASES = {
    "mlp": {
        "circuit": lambda: MLP([4, 8, 6, 3]),
        "modules": lambda: [_linear(4, 8), nn.ReLU(), _linear(8, 6), nn.ReLU(), _linear(6, 3)],
        "x_shape": (7, 4), "n_out": 3, "seed": 12,
    },
    "convnet": {
        "circuit": lambda: ConvNet((2, 9, 7), channels=(3, 4), kernel=3, hidden=5, n_out=2),
        "modules": lambda: [_conv(2, 3), nn.ReLU(), nn.MaxPool2d(2), _conv(3, 4), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), _linear(4 * 2 * 1, 5), nn.ReLU(), _linear(5, 2)],
        "x_shape": (4, 2, 9, 7), "n_out": 2, "seed": 15,
    },
}


@pytest.mark.parametrize("case", sorted(BACKPROP_CASES))
def test_backprop_gradients_match_nn_sequential(gen, case):
    c = BACKPROP_CASES[case]
    net = c["circuit"]()
    p = net.init_params(gen(c["seed"]), ensemble=2, dtype=F64)
    x = torch.randn(*c["x_shape"], generator=gen(c["seed"] + 1), dtype=F64)
    y = torch.randn(c["x_shape"][0], c["n_out"], generator=gen(c["seed"] + 2), dtype=F64)
    explicit, auto = _circuit_grads(net, p, x, y)
    seq = nn.Sequential(*c["modules"]())
    for e in range(2):
        _copy_into(seq, p, e)
        ref = _seq_grads(seq, x, y)
        for a, b, r in zip(explicit, auto, ref, strict=True):
            torch.testing.assert_close(a[e], r)
            torch.testing.assert_close(b[e], r)


# ---------------------------------------------------------------- transports inside the circuit


def test_dense_transport_input_gradient_uses_T_and_keeps_values(gen):
    net = MLP([3, 4, 2])
    p = net.init_params(gen(18), dtype=F64)
    T = [None, torch.randn(4, 2, generator=gen(19), dtype=F64)]
    x = torch.randn(5, 3, generator=gen(20), dtype=F64)
    out_plain, rec = net.forward(p, x, record=True)
    out_t = net.forward(p, x, transport=T)
    assert torch.equal(out_plain, out_t)  # the detach trick leaves values bit-identical
    h = rec[0]["output"].detach().requires_grad_()
    v = torch.randn(5, 2, generator=gen(21), dtype=F64)
    (gx,) = torch.autograd.grad((net.layer_forward(p, 1, h, transport=T) * v).sum(), h)
    torch.testing.assert_close(gx, v @ T[1].T)  # δ_x = δ Tᵀ (last layer is linear)


def test_conv_transport_input_gradient_is_conv_transpose_with_B(gen):
    net = ConvNet((2, 8, 8), channels=(3, 4), kernel=3, hidden=5, n_out=2)
    p = net.init_params(gen(22), dtype=F64)
    B = torch.randn(3, 2, 3, 3, generator=gen(23), dtype=F64)
    x = torch.randn(4, 2, 8, 8, generator=gen(24), dtype=F64, requires_grad=True)
    y = net.layer_forward(p, 0, x, transport=[B, None, None, None])
    torch.testing.assert_close(y, net.layer_forward(p, 0, x))
    v = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * v).sum(), x)
    # expected: error at the pre-activation (through pool and ReLU, plain autograd), then conv_transpose2d with B
    a = F.conv2d(x.detach(), p[0], p[1], padding=1).requires_grad_()
    (da,) = torch.autograd.grad((F.max_pool2d(torch.relu(a), 2) * v).sum(), a)
    torch.testing.assert_close(gx, F.conv_transpose2d(da, B, padding=1))
    # and the explicit backward primitive agrees
    torch.testing.assert_close(net.linear_adjoint(0, da.unsqueeze(0), B.unsqueeze(0))[0], gx)


def test_explicit_backward_equals_autograd_through_transport_forward(gen):
    """Two independent mechanisms (δ recursion vs detach trick + autograd) give the same FA gradients."""
    for net, x in (
        (MLP([3, 6, 5, 2]), torch.randn(4, 3, generator=gen(25), dtype=F64)),
        (ConvNet((1, 8, 8), channels=(2, 3), kernel=3, hidden=4, n_out=2), torch.randn(4, 1, 8, 8, dtype=F64)),
    ):
        p = [t.requires_grad_() for t in net.init_params(gen(26), ensemble=2, dtype=F64)]
        T = [torch.randn(p[2 * i].shape, generator=gen(30 + i), dtype=F64) for i in range(net.n_layers)]
        out, rec = net.forward(p, x, transport=T, record=True)
        v = torch.randn(out.shape, generator=gen(40), dtype=F64)
        auto = torch.autograd.grad((out * v).sum(), p)
        explicit = net.backward(p, rec, v, transport=T)
        for a, b in zip(auto, explicit, strict=True):
            torch.testing.assert_close(a, b)


def test_dfa_forward_sends_output_error_through_B(gen):
    net = MLP([3, 5, 4, 2])
    p = net.init_params(gen(27), dtype=F64)
    C = [torch.randn(2, 5, generator=gen(28), dtype=F64), torch.randn(2, 4, generator=gen(29), dtype=F64)]
    x = torch.randn(6, 3, generator=gen(30), dtype=F64)
    pp = [t.clone().requires_grad_() for t in p]
    out, rec = net.forward(pp, x, feedback=C, record=True)
    torch.testing.assert_close(out, net.forward(p, x))
    e = torch.randn(6, 2, generator=gen(31), dtype=F64)
    g = torch.autograd.grad((out * e).sum(), pp)
    # hand computation: δ_l = (e B_l) ⊙ relu'(a_l), g_W1 = xᵀ δ_1, g_W2 = h1ᵀ δ_2, g_W3 = h2ᵀ e
    h1, h2 = rec[0]["output"].detach(), rec[1]["output"].detach()
    d1 = (e @ C[0]) * (h1 > 0)
    d2 = (e @ C[1]) * (h2 > 0)
    torch.testing.assert_close(g[0], x.T @ d1)
    torch.testing.assert_close(g[2], h1.T @ d2)
    torch.testing.assert_close(g[4], h2.T @ e)
    torch.testing.assert_close(g[1], d1.sum(0))
    explicit = net.backward(p, [{k: v.detach() for k, v in r.items()} for r in rec], e, feedback=C)
    for a, b in zip(g, explicit, strict=True):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- the one protocol: draw, forward, loss_grads

# every circuit of the library, with one output, on inputs of dimension 4 (ConvNet: 1×4×4 images, ConvPool:
# 1×2×2); the LIF network with soft spikes so that its loss is a smooth function of its parameters
PROTOCOL_CASES = {
    "mlp": lambda: MLP([4, 5, 3, 1], activation="tanh"),
    "conv": lambda: ConvNet((1, 4, 4), channels=(2, 2), kernel=3, hidden=3, n_out=1),
    "mushroom_body": lambda: MushroomBody(4, 6, fan_in=2, positive="softplus"),
    "lif_current": lambda: SpikingLIF(4, 5, t_sim=6, smooth=True, surrogate="sigmoid", slope=2.0),
    "lif_rate": lambda: SpikingLIF(4, 5, t_sim=6, smooth=True, surrogate="sigmoid", slope=2.0, encoding="rate",
                                   max_rate=500.0),
    "conv_pool": lambda: ConvPool((1, 2, 2), channels=3, kernel=3),
}


def _protocol_batch(circuit, gen, E: int = 3, N: int = 7):
    """Members, per-point randomness for N rows, inputs (E, N, *in_shape) and labels (E, N), all float64."""
    g = gen(40)
    members = circuit.draw(g, E, F64)
    points = circuit.draw_per_point(g, E, N, F64)
    x = torch.randn(E, N, *circuit.in_shape, generator=gen(41), dtype=F64)
    y = torch.randn(E, N, generator=gen(42), dtype=F64)
    return members, {**members.fixed, **points}, x, y


@pytest.mark.parametrize("name", sorted(PROTOCOL_CASES))
def test_draw_is_a_pure_function_of_the_generator(gen, name):
    circuit = PROTOCOL_CASES[name]()
    a, b = circuit.draw(gen(5), 3, F64), circuit.draw(gen(5), 3, F64)
    assert [tuple(p.shape) for p in a.params] == [(3, *s) for s in circuit.param_shapes()]
    assert all(torch.equal(u, v) for u, v in zip(a.params, b.params, strict=True))
    assert a.fixed.keys() == b.fixed.keys() and all(torch.equal(a.fixed[k], b.fixed[k]) for k in a.fixed)
    assert not torch.equal(a.params[0][0], a.params[0][1])  # independent members
    points = circuit.draw_per_point(gen(6), 3, 4, F64)
    assert all(v.shape[:2] == (3, 4) for v in points.values())
    assert (name == "lif_rate") == bool(points)  # only the rate code has per-point randomness


@pytest.mark.parametrize("name", sorted(PROTOCOL_CASES))
def test_loss_grads_are_autograd_of_the_forward_pass(gen, name):
    """Without a transport the protocol's gradients (explicit backward, hand-written or autograd) are the plain
    torch.autograd gradients of Σ_e mean_n (forward − y)², and the loss is that per-member MSE."""
    circuit = PROTOCOL_CASES[name]()
    members, fixed, x, y = _protocol_batch(circuit, gen)
    grads, loss = circuit.loss_grads(members.params, x, y, fixed)
    ps = [p.clone().requires_grad_(True) for p in members.params]
    out = circuit.forward(ps, x, fixed)
    assert out.shape == (3, 7, 1)
    ref_loss = ((out[..., 0] - y) ** 2).mean(1)
    ref = torch.autograd.grad(ref_loss.sum(), ps)
    torch.testing.assert_close(loss, ref_loss.detach())
    for a, b in zip(grads, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PROTOCOL_CASES))
def test_transport_through_the_weights_themselves_is_backprop(gen, name):
    """Feedback alignment with B = Wᵀ (a transport T = W per layer) is backprop: the same gradients; a random T
    leaves the readout's own gradients unchanged and moves the hidden ones."""
    circuit = PROTOCOL_CASES[name]()
    members, fixed, x, y = _protocol_batch(circuit, gen)
    P = members.params
    weights = [P[2 * layer.index] for layer in circuit.layers]
    plain, _ = circuit.loss_grads(P, x, y, fixed)
    same, _ = circuit.loss_grads(P, x, y, fixed, transport=weights)
    for a, b in zip(same, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    g = gen(43)
    random = [torch.randn(w.shape, generator=g, dtype=F64) for w in weights]
    moved, _ = circuit.loss_grads(P, x, y, fixed, transport=random)
    torch.testing.assert_close(moved[-2:], plain[-2:])  # the readout's weight and bias: the true gradients
    assert (moved[0] - plain[0]).abs().max() > 1e-8


@pytest.mark.parametrize("name", sorted(PROTOCOL_CASES))
def test_make_circuit_rebuilds_every_circuit_from_its_description(gen, name):
    circuit = PROTOCOL_CASES[name]()
    rebuilt = make_circuit(circuit.describe())
    assert type(rebuilt) is type(circuit) and rebuilt.describe() == circuit.describe()
    members, fixed, x, _ = _protocol_batch(circuit, gen)
    torch.testing.assert_close(rebuilt.forward(members.params, x, fixed), circuit.forward(members.params, x, fixed),
                               rtol=0, atol=0)


def test_make_circuit_fills_open_sizes_and_rejects_unknown_specs():
    assert make_circuit({"circuit": "mlp", "hidden": [8]}, d=3).sizes == (3, 8, 1)
    assert make_circuit({"circuit": "mlp", "hidden": [8]}, d=3, n_out=4).sizes == (3, 8, 4)
    assert make_circuit({"circuit": "lif"}, d=6).n_inputs == 6
    assert make_circuit({"circuit": "mushroom_body", "n_hidden": 7}, d=4).in_shape == (4,)
    assert make_circuit({"circuit": "conv_pool"}, d=36).in_shape == (1, 6, 6)
    assert make_circuit({"circuit": "conv", "in_shape": [1, 8, 8]}, n_out=1).n_out == 1
    net = MLP([2, 1])
    assert make_circuit(net) is net and make_circuit([2, 3, 1]).sizes == (2, 3, 1)
    with pytest.raises(UnknownNameError, match="did you mean 'lif'"):
        make_circuit({"circuit": "lifs"}, d=3)
    with pytest.raises(ShapeError, match="square"):
        make_circuit({"circuit": "conv_pool"}, d=10)
    with pytest.raises(ConfigError, match="needs d"):
        make_circuit({"circuit": "lif"})
    with pytest.raises(ConfigError, match="cannot make a circuit"):
        make_circuit(42)


def test_fixed_randomness_is_checked(gen):
    mb = MushroomBody(4, 6)
    members = mb.draw(gen(0), 2, F64)
    x = torch.zeros(2, 3, 4, dtype=F64)
    with pytest.raises(ConfigError, match="mask"):
        mb.forward(members.params, x)
    with pytest.raises(ShapeError, match="mask"):
        mb.forward(members.params, x, {"mask": members.fixed["mask"][:, :3]})
    lif = SpikingLIF(4, 5, encoding="rate")
    with pytest.raises(ConfigError, match="noise"):
        lif.forward(lif.draw(gen(1), 2, F64).params, x)
    net = MLP([4, 1])
    with pytest.raises(ConfigError, match="no fixed randomness"):
        net.forward(net.init_params(gen(2), 2, F64), x, {"mask": members.fixed["mask"]})


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_learnscope_errors(gen):
    net = MLP([3, 4, 2])
    p = net.init_params(gen(32), ensemble=2)
    with pytest.raises(ShapeError, match="x must have shape"):
        net.forward(p, torch.zeros(5, 4))
    with pytest.raises(ShapeError, match="x must have shape"):
        net.forward(p, torch.zeros(3, 5, 3))  # E = 3 ≠ 2
    with pytest.raises(ShapeError, match="params"):
        net.forward(p[:3], torch.zeros(5, 3))
    with pytest.raises(ShapeError, match="params\\[2\\]"):
        net.forward([p[0], p[1], p[2][0], p[3]], torch.zeros(5, 3))
    with pytest.raises(ShapeError, match="transport"):
        net.forward(p, torch.zeros(5, 3), transport=[None, torch.zeros(2, 4)])
    with pytest.raises(UnknownNameError, match="did you mean 'relu'"):
        MLP([3, 2], activation="rellu")
    with pytest.raises(ConfigError):
        MLP([3])
    with pytest.raises(ConfigError):
        MLP([3, 0, 2])
    with pytest.raises(ConfigError, match="odd"):
        ConvNet((1, 8, 8), kernel=4)
    with pytest.raises(ConfigError, match="too small"):
        ConvNet((1, 3, 3))
    conv = ConvNet((1, 8, 8), channels=(2, 3), kernel=3, hidden=4, n_out=2)
    with pytest.raises(ConfigError, match="direct feedback alignment"):
        conv.forward(conv.init_params(gen(33)), torch.zeros(2, 1, 8, 8), feedback=[None, None, None])
    with pytest.raises(ConfigError, match="generator"):
        net.init_params(0)  # type: ignore[arg-type]
