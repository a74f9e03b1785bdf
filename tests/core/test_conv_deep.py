"""ConvNet with any number of conv layers (the knetc4-like ``cnn_deep``: 3 conv + 2 dense): layer names, groups and
shapes from the pooling arithmetic, the default network unchanged, forward vs plain torch, and every rule's
parameter (and feedback) update on the deep net vs a plain-torch reference of the rule's definition, layer by
layer (local autograd only through ReLU + max-pool and through ``conv2d`` w.r.t. its weight)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from learnscope.circuits import ConvNet, make_circuit
from learnscope.circuits.base import LayerInfo
from learnscope.errors import ConfigError
from learnscope.plasticity import RULES, cross_entropy_loss, make_rule

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("in_shape", "kernel", "flat"),
    [((1, 8, 8), 3, 6 * 1 * 1), ((1, 28, 28), 5, 6 * 3 * 3), ((1, 1, 40), 3, 6 * 1 * 5), ((2, 9, 12), 3, 6 * 1 * 1)],
)
def test_three_conv_layers_pool_8_4_2_1_and_group_like_knetc4(in_shape, kernel, flat):
    net = ConvNet(in_shape, channels=(4, 5, 6), kernel=kernel, hidden=7, n_out=3)
    C = in_shape[0]
    kh, kw = (1, kernel) if in_shape[1] == 1 else (kernel, kernel)
    assert [layer.name for layer in net.layers] == ["conv1", "conv2", "conv3", "fc4", "fc5"]
    assert [layer.kind for layer in net.layers] == ["conv", "conv", "conv", "dense", "dense"]
    # identify-spec §3.3 table, knetc4: conv1 early, conv2 middle, the rest deep
    assert [layer.group for layer in net.layers] == ["early", "middle", "deep", "deep", "deep"]
    assert [layer.weight_shape for layer in net.layers] == [
        (4, C, kh, kw), (5, 4, kh, kw), (6, 5, kh, kw), (flat, 7), (7, 3)]
    # recorded units: pooled maps, e.g. 8×8 → 4×4 → 2×2 → 1×1
    H, W = in_shape[1:]
    ph = 2 if H >= 2 else 1
    maps = [(c, H // ph**j, W // 2**j) for j, c in zip((1, 2, 3), (4, 5, 6), strict=True)]
    assert [net.output_units(i) for i in range(5)] == [*(math.prod(m) for m in maps), 7, 3]
    assert net.describe()["channels"] == [4, 5, 6]
    assert make_circuit(net.describe()).layers == net.layers  # the describe() dict rebuilds the same net


def test_any_number_of_conv_layers_groups_by_the_spec_rule():
    one = ConvNet((1, 8, 8), channels=(3,), kernel=3, hidden=4, n_out=2)
    assert [(layer.name, layer.group) for layer in one.layers] == [
        ("conv1", "early"), ("fc2", "middle"), ("fc3", "deep")]
    assert one.layers[1].weight_shape == (3 * 4 * 4, 4)
    four = ConvNet((1, 16, 16), channels=(2, 2, 2, 2), kernel=3, hidden=4, n_out=2)
    assert [layer.group for layer in four.layers] == ["early", "early", "middle", "middle", "deep", "deep"]
    assert four.layers[4].weight_shape == (2 * 1 * 1, 4)
    with pytest.raises(ConfigError, match="too small for 3"):
        ConvNet((1, 4, 4), channels=(2, 2, 2))
    with pytest.raises(ConfigError, match="channels"):
        ConvNet((1, 8, 8), channels=())
    with pytest.raises(ConfigError, match="channels"):
        ConvNet((1, 8, 8), channels=(2, 0, 2))


def test_default_convnet_is_the_knet_like_4_layer_net_of_before():
    """Names, kinds, groups and shapes of the original 2 conv + 2 dense net (so existing stores keep their values:
    the initialisation draws U(±1/√fan_in) for W1, b1, …, W4, b4 in that order from these layers alone)."""
    for in_shape, k, flat in (((1, 8, 8), (5, 5), 32 * 2 * 2), ((1, 28, 28), (5, 5), 32 * 7 * 7),
                              ((1, 1, 40), (1, 5), 32 * 1 * 10)):
        net = ConvNet(in_shape, n_out=10)
        assert net.layers == [
            LayerInfo("conv1", "conv", 0, "early", (16, 1, *k)),
            LayerInfo("conv2", "conv", 1, "middle", (32, 16, *k)),
            LayerInfo("fc3", "dense", 2, "deep", (flat, 64)),
            LayerInfo("fc4", "dense", 3, "deep", (64, 10)),
        ]
        p = net.init_params(_gen(0))
        g = _gen(0)
        for t, layer in zip(p, [la for la in net.layers for _ in range(2)], strict=True):
            bound = 1 / math.sqrt(layer.fan_in)
            torch.testing.assert_close(t, (torch.rand(t.shape, generator=g) * 2 - 1) * bound, rtol=0, atol=1e-7)


# ---------------------------------------------------------------- forward vs plain torch

SMALL = {"in_shape": (1, 8, 8), "channels": (2, 3, 4), "kernel": 3, "hidden": 5, "n_out": 3}


def _small(**edit) -> ConvNet:
    return ConvNet(**(SMALL | edit))


def _plain_forward(net: ConvNet, p, x):
    """Plain torch forward of one member: per layer (input, pre-activation, output)."""
    k = net.n_conv
    h, out = x, []
    for j in range(k):
        a = F.conv2d(h, p[2 * j], p[2 * j + 1], padding=net.padding)
        out.append((h, a, F.max_pool2d(torch.relu(a), net.pool)))
        h = out[-1][2]
    h = h.flatten(1)
    a = h @ p[2 * k] + p[2 * k + 1]
    out.append((h, a, torch.relu(a)))
    a = out[-1][2] @ p[2 * k + 2] + p[2 * k + 3]
    out.append((out[-1][2], a, a))
    return out


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (2, 9, 12), (1, 1, 40)])
def test_deep_ensemble_forward_and_records_equal_plain_torch(in_shape):
    net = _small(in_shape=in_shape)
    p = net.init_params(_gen(1), ensemble=2, dtype=F64)
    x = torch.randn(4, *in_shape, generator=_gen(2), dtype=F64)
    out, rec = net.forward(p, x, record=True)
    for e in range(2):
        ref = _plain_forward(net, [t[e] for t in p], x)
        torch.testing.assert_close(out[e], ref[-1][2])
        for i, (inp, a, o) in enumerate(ref):
            torch.testing.assert_close(rec[i]["input"][e], inp)
            torch.testing.assert_close(rec[i]["pre"][e], a)
            torch.testing.assert_close(rec[i]["output"][e], o)
            torch.testing.assert_close(net.layer_forward(p, i, rec[i]["input"])[e], o)


# ---------------------------------------------------------------- the rules' updates vs their definitions


def _reference_grads(net: ConvNet, p, x, y, T):
    """Gradients of the mean cross-entropy with the error sent back through ``T[i]`` (W's layout) at every layer,
    written from the definition (module doc of learnscope.circuits.base) for one network:
    ``δ_pre`` = ReLU′ (and the max-pool's routing, by autograd on that piece alone), ``g_W = xᵀδ`` / the conv
    weight gradient, ``g_b = Σ δ``, ``δ_x = δ Tᵀ`` (dense) / ``conv_transpose2d(δ, T)`` (conv)."""
    fwd = _plain_forward(net, p, x)
    o = fwd[-1][2].detach().requires_grad_()
    (delta_h,) = torch.autograd.grad(F.cross_entropy(o, y), o)
    k, grads = net.n_conv, [None] * len(p)
    for i in reversed(range(net.n_layers)):
        inp, a, _ = fwd[i]
        if i == net.n_layers - 1:
            d = delta_h
        elif i >= k:
            d = delta_h * (a > 0)
        else:
            al = a.detach().requires_grad_()
            (d,) = torch.autograd.grad(F.max_pool2d(torch.relu(al), net.pool), al, delta_h)
        if i >= k:
            grads[2 * i], grads[2 * i + 1] = inp.T @ d, d.sum(0)
            delta_h = d @ T[i].T
            if i == k:
                delta_h = delta_h.view(fwd[k - 1][2].shape)
        else:
            w = p[2 * i].detach().clone().requires_grad_()
            (grads[2 * i],) = torch.autograd.grad(F.conv2d(inp, w, padding=net.padding), w, d)
            grads[2 * i + 1] = d.sum((0, 2, 3))
            delta_h = F.conv_transpose2d(d, T[i], padding=net.padding)
    return grads


def _ia_grad_reference(net: ConvNet, i, x, W, b, B, al, be, ga):
    """``∂R_IA/∂B`` by autograd of R_IA written out (identify-spec §2.3), weight normalisation ``c = E‖r‖²/‖W‖²``:
    ``R = (−α⟨r, s⟩ + β‖x̂‖²)/(N c) + γ(‖W‖² + ‖B‖²)``, ``r = lin(x, W) + b``, ``s = lin(x, Bᵀ) + b``,
    ``x̂`` = r sent back through B."""
    B = B.detach().clone().requires_grad_()
    N = x.shape[0]
    if i < net.n_conv:
        r = F.conv2d(x, W, b, padding=net.padding)
        s = F.conv2d(x, B, b, padding=net.padding)
        xhat = F.conv_transpose2d(r, B, padding=net.padding)
    else:
        r, s = x @ W + b, x @ B.T + b
        xhat = r @ B
    c = (r.pow(2).sum() / N) / W.pow(2).sum()
    R = (-al * (r * s).sum() / N + be * xhat.pow(2).sum() / N) / c + ga * (W.pow(2).sum() + B.pow(2).sum())
    (g,) = torch.autograd.grad(R, B)
    return g


CONV_RULES = [name for name in RULES if name != "dfa"]


@pytest.mark.parametrize("name", CONV_RULES)
def test_every_rule_updates_the_deep_convnet_by_its_definition(name):
    """One step with the rule's transport and plain SGD at lr 1: the applied change is the transported gradient
    (plus the Kolen–Pollack decay), and the learned feedback moves by its own rule (IA: ∂R_IA/∂B; KP: ΔWᵀ + decay)."""
    net = _small()
    p = net.init_params(_gen(3), dtype=F64)
    x = torch.randn(6, 1, 8, 8, generator=_gen(4), dtype=F64)
    y = torch.randint(0, 3, (6,), generator=_gen(5))
    extra = {"ia_alpha": 0.3, "ia_beta": 0.2, "ia_gamma": 0.1, "ia_normalise": "weight"} if name == "ia" else {}
    rule = make_rule(name, optimiser="sgd", lr=1.0, weight_decay=0.0, **extra)
    st = rule.init_state(net, p, _gen(6))
    new, st2, info = rule.step(net, p, st, x, y, cross_entropy_loss)
    assert info["loss"].item() == pytest.approx(F.cross_entropy(_plain_forward(net, p, x)[-1][2], y).item(), rel=1e-12)
    Ws = p[::2]
    if rule.transport == "backprop":
        T = list(Ws)
    elif rule.transport == "sign_symmetry":
        T = [torch.sign(W) for W in Ws]
    else:  # B in spec layout: (out, in) dense -> T = Bᵀ, conv -> T = B
        T = [B.T if B.ndim == 2 else B for B in st.feedback]
        assert all(B.shape == layer.feedback_shape for B, layer in zip(st.feedback, net.layers, strict=True))
    ref = _reference_grads(net, p, x, y, T)
    if rule.transport == "kolen_pollack":
        ref = [g + rule.kp_decay * t if j % 2 == 0 else g for j, (g, t) in enumerate(zip(ref, p, strict=True))]
    for j, (a, b, g) in enumerate(zip(p, new, ref, strict=True)):
        torch.testing.assert_close(a - b, g, msg=f"params[{j}] ({net.layers[j // 2].name})")
    if rule.transport == "backprop":  # the reference itself: T = W is plain autograd of the whole loss
        pp = [t.clone().requires_grad_() for t in p]
        auto = torch.autograd.grad(F.cross_entropy(_plain_forward(net, pp, x)[-1][2], y), pp)
        for a, g in zip(auto, ref, strict=True):
            torch.testing.assert_close(a, g)
    fwd = _plain_forward(net, p, x)
    for i, layer in enumerate(net.layers):
        B_old, B_new = st.feedback[i], st2.feedback[i]
        if rule.transport == "kolen_pollack":
            gW = ref[2 * i] - rule.kp_decay * p[2 * i]  # the transported gradient without the decay
            want = (gW.T if layer.kind == "dense" else gW) + rule.kp_decay * B_old  # ΔB = ΔWᵀ + λ_KP B
            torch.testing.assert_close(B_old - B_new, want)
        elif rule.transport == "information_alignment":
            want = _ia_grad_reference(net, i, fwd[i][0], p[2 * i], p[2 * i + 1], B_old, 0.3, 0.2, 0.1)
            torch.testing.assert_close(B_old - B_new, want)
        elif B_old is not None:
            assert torch.equal(B_old, B_new), "feedback alignment keeps B fixed"


def _linear(n_in: int, n_out: int) -> nn.Linear:
    return skip_init(nn.Linear, n_in, n_out, dtype=F64)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return skip_init(nn.Conv2d, c_in, c_out, 3, padding=1, dtype=F64)


@pytest.mark.parametrize(
    ("rule_name", "make_torch"),
    [
        ("sgdm", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01)),
    ],
)
def test_backprop_rules_train_the_deep_convnet_like_torch_optim_on_nn_sequential(rule_name, make_torch):
    net = _small()
    p = net.init_params(_gen(7), dtype=F64)
    seq = nn.Sequential(_conv(1, 2), nn.ReLU(), nn.MaxPool2d(2), _conv(2, 3), nn.ReLU(), nn.MaxPool2d(2),
                        _conv(3, 4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), _linear(4, 5), nn.ReLU(), _linear(5, 3))
    mods = [m for m in seq if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, m in enumerate(mods):
            m.weight.copy_(p[2 * i].T if isinstance(m, nn.Linear) else p[2 * i])
            m.bias.copy_(p[2 * i + 1])
    topt = make_torch(seq.parameters())
    rule = make_rule(rule_name, lr=topt.defaults["lr"], weight_decay=0.01)
    st = rule.init_state(net, p, _gen(8))
    for step in range(3):
        x = torch.randn(5, 1, 8, 8, generator=_gen(40 + step), dtype=F64)
        y = torch.randint(0, 3, (5,), generator=_gen(50 + step))
        p, st, info = rule.step(net, p, st, x, y, cross_entropy_loss)
        topt.zero_grad()
        loss = F.cross_entropy(seq(x), y)
        loss.backward()
        topt.step()
        assert info["loss"].item() == pytest.approx(loss.item(), rel=1e-10)
    for i, m in enumerate(mods):
        torch.testing.assert_close(p[2 * i], m.weight.detach().T if isinstance(m, nn.Linear) else m.weight.detach())
        torch.testing.assert_close(p[2 * i + 1], m.bias.detach())


@pytest.mark.parametrize("name", CONV_RULES)
def test_deep_convnet_ensemble_step_equals_member_by_member_steps(name):
    net = ConvNet((1, 8, 8), channels=(2, 2, 3), kernel=3, hidden=4, n_out=3)
    p = net.init_params(_gen(9), ensemble=2, dtype=F64)
    x = torch.randn(2, 5, 1, 8, 8, generator=_gen(10), dtype=F64)
    y = torch.randint(0, 3, (5,), generator=_gen(11))
    rule = make_rule(name, ia_alpha=0.5, ia_beta=0.3, ia_gamma=0.1)
    st = rule.init_state(net, p, _gen(12))
    q, s = p, st
    for _ in range(2):
        q, s, _ = rule.step(net, q, s, x, y, cross_entropy_loss)
    for e in range(2):
        pe = [t[e] for t in p]
        se = type(st)(
            tuple(None if b is None else b[e] for b in st.feedback),
            {k: tuple(t[e] for t in v) for k, v in st.opt.items()},
            {k: tuple(None if t is None else t[e] for t in v) for k, v in st.feedback_opt.items()},
            0,
        )
        for _ in range(2):
            pe, se, _ = rule.step(net, pe, se, x[e], y, cross_entropy_loss)
        for a, b in zip(q, pe, strict=True):
            torch.testing.assert_close(a[e], b)


def test_direct_feedback_alignment_is_refused_on_the_deep_convnet():
    net = _small()
    with pytest.raises(ConfigError, match="MLP only"):
        make_rule("dfa").init_state(net, net.init_params(_gen(13)), _gen(14))
