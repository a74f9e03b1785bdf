"""MetaMLP: the batched forward equals per-seed torch.nn reference networks, weight tying, initialisation
(bounds of nn.Linear, the per-seed draws), independence of seeds, shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import skip_init

from learnscope.bias.metalearner import MetaMLP
from learnscope.errors import ConfigError, ShapeError

F64 = torch.float64


def _linear(W: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    """nn.Linear computing x @ W + b (W stored (in, out) as in MetaMLP; nn.Linear stores (out, in))."""
    lin = skip_init(nn.Linear, W.shape[0], W.shape[1], dtype=W.dtype)  # no draw from the global RNG
    with torch.no_grad():
        lin.weight.copy_(W.T)
        lin.bias.copy_(b)
    return lin


def _reference(meta: MetaMLP, s: int) -> nn.Sequential:
    """A plain nn.Sequential for seed s, built from that seed's slice of the parameters."""
    p = [t[s].detach() for t in meta.params]
    mods: list[nn.Module] = [_linear(p[0], p[1])]
    if meta.tied and meta.layers > 1:
        shared = _linear(p[2], p[3])  # the same module object re-applied
        for _ in range(meta.layers - 1):
            mods += [nn.ReLU(), shared]
    else:
        for i in range(meta.layers - 1):
            mods += [nn.ReLU(), _linear(p[2 + 2 * i], p[3 + 2 * i])]
    mods += [nn.ReLU(), _linear(p[-2], p[-1])]
    return nn.Sequential(*mods)


@pytest.mark.parametrize("layers, tied", [(1, True), (2, True), (4, True), (2, False), (4, False)])
@pytest.mark.parametrize("cos", [False, True])
def test_forward_equals_per_seed_sequential(gen, layers, tied, cos):
    meta = MetaMLP(3, hidden=7, layers=layers, cos=cos, tied=tied)
    meta.init([gen(0), gen(1), gen(2)], F64)
    x = torch.randn(3, 5, 4, 3, generator=gen(9), dtype=F64)  # (S, B, n, d)
    out = meta(x)
    assert out.shape == (3, 5, 4)
    for s in range(3):
        ref = _reference(meta, s)(x[s]).squeeze(-1)
        if cos:
            ref = ref.cos()
        torch.testing.assert_close(out[s], ref, rtol=1e-13, atol=1e-13)


def test_output_shapes(gen):
    meta = MetaMLP(2, hidden=5, layers=2)
    meta.init([gen(0), gen(1)])
    g = gen(3)
    assert meta(torch.randn(2, 6, 2, generator=g)).shape == (2, 6)
    assert meta(torch.randn(2, 4, 6, 2, generator=g)).shape == (2, 4, 6)
    assert meta(torch.randn(2, 2, generator=g)).shape == (2,)
    assert meta.n_seeds == 2


def test_hidden_maps_tied_vs_untied(gen):
    # parameters: input (W, b), hidden maps (W, b) each, output (W, b)
    tied = MetaMLP(3, hidden=6, layers=4, tied=True)
    untied = MetaMLP(3, hidden=6, layers=4, tied=False)
    assert tied.n_hidden_maps == 1 and untied.n_hidden_maps == 3
    assert len(tied.init([gen(0)])) == 2 + 2 * 1 + 2
    assert len(untied.init([gen(0)])) == 2 + 2 * 3 + 2
    one = MetaMLP(3, hidden=6, layers=1, tied=False)
    assert one.n_hidden_maps == 0 and len(one.init([gen(0)])) == 4
    assert [tuple(p.shape) for p in untied.params] == [
        (1, 3, 6), (1, 6), (1, 6, 6), (1, 6), (1, 6, 6), (1, 6), (1, 6, 6), (1, 6), (1, 6, 1), (1, 1)
    ]


def test_tied_network_applies_the_same_matrix_repeatedly(gen):
    """A tied layers=3 network equals the untied one whose two hidden maps are both set to the tied map."""
    tied = MetaMLP(2, hidden=5, layers=3, tied=True)
    tied.init([gen(4)], F64)
    untied = MetaMLP(2, hidden=5, layers=3, tied=False)
    pt = [p.detach() for p in tied.params]
    pu = [pt[0], pt[1], pt[2], pt[3], pt[2], pt[3], pt[4], pt[5]]
    x = torch.randn(1, 10, 2, generator=gen(5), dtype=F64)
    torch.testing.assert_close(tied(x), untied.forward(x, pu), rtol=0, atol=0)
    # and differs from applying the hidden map only once (layers=2): tying really re-applies it
    two = MetaMLP(2, hidden=5, layers=2, tied=True)
    assert not torch.allclose(tied(x), two.forward(x, pt))


def test_cos_output_in_unit_interval_and_is_cos_of_linear_output(gen):
    plain = MetaMLP(3, hidden=20, layers=2, cos=False)
    params = plain.init([gen(0), gen(1)], F64)
    with torch.no_grad():
        for p in params:
            p.mul_(30.0)  # large outputs, so the cos really wraps
    withcos = MetaMLP(3, hidden=20, layers=2, cos=True)
    x = torch.randn(2, 200, 3, generator=gen(2), dtype=F64)
    raw = plain.forward(x, params)
    out = withcos.forward(x, params)
    assert raw.abs().max() > 10
    assert out.abs().max() <= 1.0
    torch.testing.assert_close(out, raw.cos(), rtol=0, atol=0)


def test_init_matches_nn_linear_default_bounds(gen):
    """nn.Linear's default init is U(±1/sqrt(fan_in)) for weight and bias (kaiming_uniform with a=sqrt(5))."""
    d, h = 4, 300
    meta = MetaMLP(d, hidden=h, layers=2, tied=True)
    params = meta.init([gen(0), gen(1), gen(2), gen(3)], F64)
    fans = [d, d, h, h, h, h]
    for p, fan in zip(params, fans, strict=True):
        bound = 1 / math.sqrt(fan)
        v = p.detach().numpy().ravel()
        n = v.size
        assert np.abs(v).max() <= bound
        # U(-a, a): mean 0 (var a²/3), variance a²/3 (variance of the sample variance: a⁴(1/5 - 1/9)/n)
        assert abs(v.mean()) < 5 * bound / math.sqrt(3 * n)
        assert abs(v.var() - bound**2 / 3) < 5 * bound**2 * math.sqrt((1 / 5 - 1 / 9) / n)
        if n >= 1000:
            assert np.abs(v).max() > 0.99 * bound


@pytest.mark.parametrize("tied", [True, False])
def test_init_slices_are_each_generators_draws_in_parameter_order(gen, tied):
    """Seed s's slice is generator s drawing W1, b1, the hidden maps, W_out, b_out one after the other as
    (2u − 1)/√fan_in with fan_in the layer's input width — the formula MetaMLP used before the shared
    initialiser, written out here — so the values are exactly those of earlier runs."""
    d, h, layers = 3, 5, 3
    params = MetaMLP(d, hidden=h, layers=layers, tied=tied).init([gen(11), gen(12)], F64)
    hidden_maps = [((h, h), h), ((h,), h)] * (1 if tied else layers - 1)
    shapes = [((d, h), d), ((h,), d), *hidden_maps, ((h, 1), h), ((1,), h)]
    assert [tuple(p.shape) for p in params] == [(2, *s) for s, _ in shapes]
    for s, g in enumerate([gen(11), gen(12)]):
        old = [(torch.rand(shape, generator=g, dtype=F64) * 2 - 1) * (1 / math.sqrt(fan)) for shape, fan in shapes]
        for p, o in zip(params, old, strict=True):
            assert torch.equal(p[s].detach(), o)


def test_init_is_per_generator_and_reproducible(gen):
    meta = MetaMLP(3, hidden=8, layers=3, tied=False)
    a = [p.detach().clone() for p in meta.init([gen(5), gen(6)], F64)]
    b = [p.detach().clone() for p in meta.init([gen(6)], F64)]
    c = [p.detach().clone() for p in meta.init([gen(5), gen(6)], F64)]
    for pa, pb, pc in zip(a, b, c, strict=True):
        assert torch.equal(pa, pc)  # same generators -> same parameters
        assert torch.equal(pa[1], pb[0])  # seed 6's draw does not depend on what else is stacked
        assert not torch.equal(pa[0], pa[1])
    assert all(p.requires_grad and p.is_leaf for p in meta.params)
    assert a[0].dtype == F64


def test_seeds_are_independent_in_gradient(gen):
    meta = MetaMLP(3, hidden=6, layers=3, tied=False, cos=True)
    params = meta.init([gen(0), gen(1), gen(2)], F64)
    x = torch.randn(3, 2, 5, 3, generator=gen(8), dtype=F64)
    out = meta(x)
    grads = torch.autograd.grad(out[0].sum(), params)
    for g in grads:
        assert torch.count_nonzero(g[1:]) == 0
    assert sum(int(torch.count_nonzero(g[0])) for g in grads) > 0
    # and seed 0's output does not move when another seed's parameters change
    moved = [p.detach().clone() for p in params]
    for p in moved:
        p[1:] += 1.0
    torch.testing.assert_close(meta.forward(x, moved)[0], out[0].detach(), rtol=0, atol=0)


def test_gradient_matches_finite_differences(gen):
    meta = MetaMLP(2, hidden=5, layers=3, tied=True, cos=True)
    params = meta.init([gen(3)], F64)
    x = torch.randn(1, 9, 2, generator=gen(4), dtype=F64)

    def f(ps):
        return (meta.forward(x, ps) ** 2).sum()

    grads = torch.autograd.grad(f(params), params)
    eps = 1e-6
    for k, idx in [(0, (0, 1, 2)), (2, (0, 3, 4)), (3, (0, 1)), (4, (0, 2, 0)), (5, (0, 0))]:
        plus = [p.detach().clone() for p in params]
        minus = [p.detach().clone() for p in params]
        plus[k][idx] += eps
        minus[k][idx] -= eps
        fd = (f(plus) - f(minus)) / (2 * eps)
        assert abs(float(fd) - float(grads[k][idx])) < 1e-6 * max(1.0, abs(float(fd)))


def test_shape_errors(gen):
    meta = MetaMLP(3, hidden=4)
    meta.init([gen(0), gen(1)])
    with pytest.raises(ShapeError, match=r"\(2, \.\.\., 3\)"):
        meta(torch.zeros(3, 5, 3))  # wrong number of seeds
    with pytest.raises(ShapeError):
        meta(torch.zeros(2, 5, 4))  # wrong input dimension


@pytest.mark.parametrize("kw", [{"d_in": 0}, {"hidden": 0}, {"layers": 0}, {"hidden": 2.5}, {"layers": True}])
def test_bad_constructor_arguments(kw):
    args = {"d_in": 3, "hidden": 4, "layers": 2} | kw
    with pytest.raises(ConfigError, match="meta."):
        MetaMLP(**args)


def test_init_needs_a_generator():
    with pytest.raises(ConfigError):
        MetaMLP(3, hidden=4).init([])
