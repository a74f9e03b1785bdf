"""Objectives of the identify grid: NT-Xent vs numpy, finite differences and closed forms; view augmentations
(exact shifts on impulses, noise std, seeding per member); the reconstruction loss; the linear probe vs
scikit-learn; and Rule.step with these losses vs autograd (backprop) and the rules' definitions (FA, IA)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify.augment import VIEWS, ViewSpec, shift, two_views
from learnscope.identify.objectives import (
    NTXent,
    autoencoder_mlp,
    contrastive_mlp,
    explained_variance,
    linear_probe_accuracy,
    nt_xent_loss,
    objective_loss,
    reconstruction_loss,
    regression_loss,
    view_retrieval_accuracy,
)
from learnscope.plasticity import ia_feedback_grad, make_rule, mse_loss

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- NT-Xent


def _nt_xent_numpy(z: np.ndarray, tau: float) -> float:
    """One member, written out anchor by anchor."""
    n = len(z)
    k = n // 2
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    total = 0.0
    for i in range(n):
        j = (i + k) % n
        sims = [u[i] @ u[m] / tau for m in range(n) if m != i]
        total += -(u[i] @ u[j]) / tau + math.log(sum(math.exp(s) for s in sims))
    return total / n


@pytest.mark.parametrize(("E", "k", "p", "tau"), [(1, 1, 3, 1.0), (2, 2, 4, 0.5), (3, 4, 2, 0.1), (2, 3, 7, 2.0)])
def test_nt_xent_matches_numpy(E, k, p, tau):
    z = torch.randn(E, 2 * k, p, generator=_gen(E * 100 + k), dtype=F64)
    got = nt_xent_loss(z, tau)
    assert got.shape == (E,)
    want = [_nt_xent_numpy(z[e].numpy(), tau) for e in range(E)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)  # k = 1: exactly 0
    # one member without the ensemble axis
    assert nt_xent_loss(z[0], tau).shape == ()
    np.testing.assert_allclose(nt_xent_loss(z[0], tau).item(), want[0], rtol=1e-12, atol=1e-14)


def test_nt_xent_gradient_matches_central_differences():
    z = torch.randn(2, 6, 4, generator=_gen(1), dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(nt_xent_loss(z, 0.5).sum(), z)
    h = 1e-6
    fd = torch.zeros_like(z)
    with torch.no_grad():
        for idx in np.ndindex(*z.shape):
            zp, zm = z.clone(), z.clone()
            zp[idx] += h
            zm[idx] -= h
            fd[idx] = (nt_xent_loss(zp, 0.5).sum() - nt_xent_loss(zm, 0.5).sum()) / (2 * h)
    np.testing.assert_allclose(g.numpy(), fd.numpy(), rtol=1e-7, atol=1e-9)


def test_nt_xent_is_invariant_to_scaling_each_row():
    z = torch.randn(3, 8, 5, generator=_gen(2), dtype=F64)
    scale = torch.rand(3, 8, 1, generator=_gen(3), dtype=F64) * 10 + 0.01
    torch.testing.assert_close(nt_xent_loss(z * scale, 0.3), nt_xent_loss(z, 0.3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_closed_forms(tau):
    # k inputs whose two views coincide and are orthogonal across inputs: anchor i sees the positive at 1/τ and
    # 2(k − 1) negatives at 0, so every term is −1/τ + log(e^{1/τ} + 2(k − 1)) = log(1 + 2(k − 1) e^{−1/τ})
    for k in (2, 3, 5):
        basis = torch.eye(k, dtype=F64)
        z = torch.cat([basis, basis])
        assert nt_xent_loss(z, tau).item() == pytest.approx(math.log(1 + 2 * (k - 1) * math.exp(-1 / tau)), rel=1e-12)
        # collapse (all rows equal): every similarity is 1/τ, the term is log(2k − 1)
        collapsed = torch.ones(2 * k, 3, dtype=F64)
        assert nt_xent_loss(collapsed, tau).item() == pytest.approx(math.log(2 * k - 1), rel=1e-12)
        # pairing the views wrongly (view 2 of input i is view 1 of input i+1) costs: positive at 0, one negative
        # at 1/τ, the other 2k − 3 at 0: term = log(e^{1/τ} + 2k − 2), above the matched value
        wrong = torch.cat([basis, basis.roll(1, 0)])
        assert nt_xent_loss(wrong, tau).item() == pytest.approx(math.log(math.exp(1 / tau) + 2 * k - 2), rel=1e-12)
        assert nt_xent_loss(wrong, tau).item() > nt_xent_loss(z, tau).item()
    # k = 2: each term is log(1 + Σ_neg e^{s_neg − s_pos}) with s_neg − s_pos ≥ −2/τ, so L ≥ log(1 + 2 e^{−2/τ}),
    # with equality iff the views coincide and the two inputs are antipodal
    bound = math.log(1 + 2 * math.exp(-2 / tau))
    u = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    antipodal = torch.cat([u, -u, u, -u])
    assert nt_xent_loss(antipodal, tau).item() == pytest.approx(bound, rel=1e-12)
    random = nt_xent_loss(torch.randn(2000, 4, 3, generator=_gen(4), dtype=F64), tau)
    assert random.min().item() > bound
    near = antipodal + 1e-3 * torch.randn(500, 4, 3, generator=_gen(5), dtype=F64)
    assert (nt_xent_loss(near, tau) >= bound - 1e-15).all()


def test_view_retrieval_accuracy_matches_numpy_and_closed_forms():
    z = torch.randn(3, 10, 4, generator=_gen(40), dtype=F64)
    u = z.numpy() / np.linalg.norm(z.numpy(), axis=-1, keepdims=True)
    want = []
    for e in range(3):
        s = u[e] @ u[e].T
        np.fill_diagonal(s, -np.inf)
        want.append(np.mean([s[i].argmax() == (i + 5) % 10 for i in range(10)]))
    np.testing.assert_allclose(view_retrieval_accuracy(z).numpy(), want)
    basis = torch.eye(4, dtype=F64)
    assert view_retrieval_accuracy(torch.cat([basis, basis])).item() == 1.0
    # partners swapped to the neighbouring input: every anchor's nearest view is a wrong one
    assert view_retrieval_accuracy(torch.cat([basis, basis.roll(1, 0)])).item() == 0.0
    # random directions: chance 1/(2k − 1) = 1/3; the 3000 members are independent and each member's accuracy
    # lies in [0, 1] (s.d. ≤ 1/2), so the mean is within 5 · 0.5/√3000 of 1/3
    acc = view_retrieval_accuracy(torch.randn(3000, 4, 5, generator=_gen(41), dtype=F64)).mean().item()
    assert abs(acc - 1 / 3) < 5 * 0.5 / math.sqrt(3000)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ShapeError):
        nt_xent_loss(torch.zeros(3, 2))
    with pytest.raises(ShapeError):
        nt_xent_loss(torch.zeros(2, 2, 2, 2))
    with pytest.raises(ConfigError):
        nt_xent_loss(torch.ones(4, 2), 0.0)
    with pytest.raises(ShapeError):
        NTXent(0.5)(torch.ones(4, 2), torch.zeros(4))
    with pytest.raises(ConfigError):
        NTXent(-1.0)


def test_objective_loss_registry():
    assert objective_loss("regression") is mse_loss is regression_loss
    assert objective_loss("contrastive", temperature=0.5) == NTXent(0.5)
    with pytest.raises(UnknownNameError):
        objective_loss("simclr")


# ---------------------------------------------------------------- augmentations


def _shift_numpy(x: np.ndarray, off: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for m in range(x.shape[0]):
        for idx in np.ndindex(*x.shape[2:]):
            src = tuple(i - d for i, d in zip(idx, off[m], strict=True))
            if all(0 <= s < n for s, n in zip(src, x.shape[2:], strict=True)):
                out[(m, slice(None), *idx)] = x[(m, slice(None), *src)]
    return out


@pytest.mark.parametrize("layout", [(5, 6), (9,)])
def test_shift_matches_a_loop(layout):
    x = torch.randn(7, 2, *layout, generator=_gen(6), dtype=F64)
    off = torch.randint(-3, 4, (7, len(layout)), generator=_gen(7))
    off[0] = 0
    off[1, 0] = 10  # everything shifted out
    np.testing.assert_array_equal(shift(x, off).numpy(), _shift_numpy(x.numpy(), off.numpy()))


@pytest.mark.parametrize("kind", ["digits", "mnist5k", "mnist1d"])
def test_views_move_an_impulse_by_the_drawn_offsets(kind):
    spec = VIEWS[kind]
    E, k = 3, 4
    centre = tuple(n // 2 for n in spec.layout)
    x = torch.zeros(E, k, 1, *spec.layout, dtype=F64)
    x[(slice(None), slice(None), 0, *centre)] = 1.0
    views = two_views(x, _gen(8), kind, noise_std=0.0)
    assert views.shape == (E, 2 * k, 1, *spec.layout)
    # the documented draws: offsets (E, 2k, n_axes) first
    off = torch.randint(-spec.max_shift, spec.max_shift + 1, (E, 2 * k, len(spec.layout)), generator=_gen(8))
    assert off.abs().max() == spec.max_shift > 0
    for e in range(E):
        for r in range(2 * k):
            expect = torch.zeros(spec.layout, dtype=F64)
            expect[tuple(c + int(d) for c, d in zip(centre, off[e, r], strict=True))] = 1.0
            torch.testing.assert_close(views[e, r, 0], expect, rtol=0, atol=0)
    # the two views of an input are drawn independently
    assert not torch.equal(views[:, :k], views[:, k:])


def test_views_without_shift_or_noise_are_the_inputs_and_flat_inputs_work():
    x = torch.randn(2, 3, 64, generator=_gen(9), dtype=F64)
    views = two_views(x, _gen(10), ViewSpec((8, 8), 0, 0.0))
    torch.testing.assert_close(views, torch.cat([x, x], 1), rtol=0, atol=0)
    # flat inputs get the same views as the image layout
    flat = two_views(x, _gen(11), "digits")
    image = two_views(x.reshape(2, 3, 1, 8, 8), _gen(11), "digits")
    torch.testing.assert_close(flat, image.reshape(2, 6, 64), rtol=0, atol=0)


def test_view_noise_has_the_stated_std():
    sigma, n = 0.3, 4 * 400 * 40
    noise = two_views(torch.zeros(4, 200, 40, dtype=F64), _gen(12), "mnist1d", max_shift=0, noise_std=sigma)
    assert noise.numel() == n
    # CLT: the sample mean has s.d. σ/√n, the sample variance s.d. σ²·√(2/n) (Gaussian); 5 s.d. bounds
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(n)
    assert abs(noise.var().item() - sigma**2) < 5 * sigma**2 * math.sqrt(2 / n)


def test_views_are_seeded_per_member_block():
    x = torch.randn(3, 5, 1, 8, 8, generator=_gen(13), dtype=F64)
    a = two_views(x, [_gen(20), _gen(21), _gen(22)], "digits")
    b = two_views(x, [_gen(20), _gen(21), _gen(22)], "digits")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # member 1 alone, with its own generator: the same views as inside the ensemble
    alone = two_views(x[1:2], [_gen(21)], "digits")
    torch.testing.assert_close(alone[0], a[1], rtol=0, atol=0)
    other = two_views(x, [_gen(20), _gen(99), _gen(22)], "digits")
    torch.testing.assert_close(other[[0, 2]], a[[0, 2]], rtol=0, atol=0)
    assert not torch.equal(other[1], a[1])
    with pytest.raises(ShapeError):
        two_views(x, [_gen(1), _gen(2)], "digits")  # 3 members, 2 generators


def test_views_reject_bad_input():
    with pytest.raises(ShapeError):
        two_views(torch.zeros(2, 3, 50), _gen(0), "digits")
    with pytest.raises(UnknownNameError):
        two_views(torch.zeros(2, 3, 64), _gen(0), "cifar")
    with pytest.raises(ConfigError):
        ViewSpec((8, 8), -1, 0.1)


# ---------------------------------------------------------------- autoencoding, probes, architectures


def test_reconstruction_loss_is_the_mean_squared_error():
    out = torch.randn(3, 5, 64, generator=_gen(14), dtype=F64)
    x = torch.randn(5, 1, 8, 8, generator=_gen(15), dtype=F64)
    hand = [((out[e].numpy() - x.numpy().reshape(5, 64)) ** 2).sum() / (5 * 64) for e in range(3)]
    np.testing.assert_allclose(reconstruction_loss(out, x).numpy(), hand, rtol=1e-12)
    xe = torch.randn(3, 5, 64, generator=_gen(16), dtype=F64)
    hand_e = [((out[e] - xe[e]) ** 2).mean().item() for e in range(3)]
    np.testing.assert_allclose(reconstruction_loss(out, xe).numpy(), hand_e, rtol=1e-12)
    assert reconstruction_loss(out[0], x).item() == pytest.approx(hand[0], rel=1e-12)
    with pytest.raises(ShapeError):
        reconstruction_loss(out, torch.zeros(5, 63))


def test_explained_variance_end_points():
    x = torch.randn(40, 6, generator=_gen(17), dtype=F64)
    perfect = x.expand(2, 40, 6)
    constant = x.mean(0).expand(2, 40, 6)
    np.testing.assert_allclose(explained_variance(perfect, x).numpy(), 1.0)
    np.testing.assert_allclose(explained_variance(constant, x).numpy(), 0.0, atol=1e-12)
    half = x.mean(0) + 0.5 * (x - x.mean(0))  # residual (x − x̄)/2: R² = 1 − 1/4
    np.testing.assert_allclose(explained_variance(half.unsqueeze(0), x).numpy(), 0.75)


def test_linear_probe_predicts_as_sklearn_ridge_classifier():
    from sklearn.linear_model import RidgeClassifier

    g = np.random.default_rng(18)
    f_tr, f_te = g.normal(size=(2, 120, 7)), g.normal(size=(2, 50, 7))
    w = g.normal(size=(7, 4))
    y_tr = (f_tr[0] @ w + 0.5 * g.normal(size=(120, 4))).argmax(1)
    y_te = (f_te[0] @ w).argmax(1)
    acc = linear_probe_accuracy(torch.tensor(f_tr), torch.tensor(y_tr), torch.tensor(f_te), torch.tensor(y_te),
                                ridge=3.0)
    for e in range(2):
        clf = RidgeClassifier(alpha=3.0).fit(f_tr[e], y_tr)
        assert acc[e].item() == pytest.approx((clf.predict(f_te[e]) == y_te).mean(), abs=1e-12)
    assert acc[0] > 0.8  # member 0's features carry the labels


def test_architectures_follow_the_spec_layout():
    net = contrastive_mlp(64, [32, 32, 32, 32])
    assert net.sizes == (64, 32, 32, 32, 32, 32, 128)  # head: nl_0 of the feature width, nl_1 of 128
    # the encoder is grouped on its own (4 layers: early, middle, deep, deep) and both head layers are deep
    assert [layer.group for layer in net.layers] == ["early", "middle", "deep", "deep", "deep", "deep"]
    ae = autoencoder_mlp(64, [32, 16], 8)
    assert ae.sizes == (64, 32, 16, 8, 16, 32, 64)
    assert [layer.group for layer in ae.layers] == ["early", "early", "middle", "middle", "deep", "deep"]
    with pytest.raises(ConfigError):
        contrastive_mlp(64, [])


# ---------------------------------------------------------------- Rule.step with these losses


def _forward(params, x):
    """The MLP by hand: ReLU hidden layers, linear output; returns the output and the layers' (input, pre)."""
    h, rec = x, []
    L = len(params) // 2
    for i in range(L):
        a = h @ params[2 * i] + params[2 * i + 1].unsqueeze(-2)
        rec.append((h, a))
        h = a if i == L - 1 else torch.relu(a)
    return h, rec


def _cases():
    base = torch.randn(2, 3, 1, 8, 8, generator=_gen(30), dtype=F64)
    x_con = two_views(base, [_gen(31), _gen(32)], "digits").reshape(2, 6, 64)
    x_ae = base.reshape(2, 3, 64)
    return {
        "contrastive": (contrastive_mlp(64, [6, 5], head_width=4, proj_dim=3), x_con, None, NTXent(0.5)),
        "autoencoding": (autoencoder_mlp(64, [6], 3), x_ae, x_ae, reconstruction_loss),
    }


@pytest.mark.parametrize("objective", ["contrastive", "autoencoding"])
def test_backprop_update_is_the_autograd_gradient(objective):
    net, x, y, loss_fn = _cases()[objective]
    rule = make_rule("sgd", lr=0.3)
    p = net.init_params(_gen(33), ensemble=2, dtype=F64)
    st = rule.init_state(net, p, _gen(34))
    for _ in range(3):
        new, st, info = rule.step(net, p, st, x, y, loss_fn)
        leaf = [t.clone().requires_grad_() for t in p]
        loss = loss_fn(_forward(leaf, x)[0], y)
        grads = torch.autograd.grad(loss.sum(), leaf)
        torch.testing.assert_close(info["loss"], loss.detach(), rtol=1e-12, atol=0)
        for a, b, g in zip(new, p, grads, strict=True):
            torch.testing.assert_close(a, b - 0.3 * g, rtol=1e-10, atol=1e-12)
        p = new


def _transported_grads(params, feedback, x, y, loss_fn):
    """FA's gradients by hand: e = ∂L/∂out from autograd; δ_L = e; δ_l = (δ_{l+1} B_{l+1}) ⊙ relu'(a_l) with B of
    layout (out, in); ∂W_l = h_{l−1}ᵀ δ_l, ∂b_l = Σ_n δ_l."""
    out, rec = _forward(params, x)
    o = out.detach().requires_grad_()
    (delta,) = torch.autograd.grad(loss_fn(o, y).sum(), o)
    grads = [None] * len(params)
    for i in reversed(range(len(rec))):
        h, a = rec[i]
        grads[2 * i] = h.transpose(-1, -2) @ delta
        grads[2 * i + 1] = delta.sum(-2)
        if i:
            delta = (delta @ feedback[i]) * (rec[i - 1][1] > 0)
    return grads


@pytest.mark.parametrize("objective", ["contrastive", "autoencoding"])
def test_feedback_alignment_update_is_the_output_error_through_B(objective):
    net, x, y, loss_fn = _cases()[objective]
    rule = make_rule("fa", optimiser="sgd", lr=0.3)
    p = net.init_params(_gen(35), ensemble=2, dtype=F64)
    st = rule.init_state(net, p, _gen(36))
    B = st.feedback
    bp = make_rule("sgd", lr=0.3)
    for _ in range(3):
        new, st, _ = rule.step(net, p, st, x, y, loss_fn)
        hand = _transported_grads(p, B, x, y, loss_fn)
        for a, b, g in zip(new, p, hand, strict=True):
            torch.testing.assert_close(a, b - 0.3 * g, rtol=1e-10, atol=1e-12)
        # FA differs from backprop below the output layer
        bp_new, _, _ = bp.step(net, p, bp.init_state(net, p, _gen(0)), x, y, loss_fn)
        assert (bp_new[0] - new[0]).abs().max() > 1e-6
        p = new
    for b0, b1 in zip(B, st.feedback, strict=True):
        torch.testing.assert_close(b0, b1, rtol=0, atol=0)  # FA's B is fixed


@pytest.mark.parametrize("objective", ["contrastive", "autoencoding"])
def test_information_alignment_update_follows_its_definition(objective):
    net, x, y, loss_fn = _cases()[objective]
    rule = make_rule("ia", optimiser="sgd", lr=0.2, ia_alpha=0.3, ia_beta=0.2, ia_gamma=0.1)
    p = net.init_params(_gen(37), ensemble=2, dtype=F64)
    st = rule.init_state(net, p, _gen(38))
    for _ in range(2):
        new, st2, _ = rule.step(net, p, st, x, y, loss_fn)
        # forward weights: FA's update with the current B
        hand = _transported_grads(p, st.feedback, x, y, loss_fn)
        for a, b, g in zip(new, p, hand, strict=True):
            torch.testing.assert_close(a, b - 0.2 * g, rtol=1e-10, atol=1e-12)
        # B: one step down R_IA, which depends on the layer's input, not on the loss
        _, rec = _forward(p, x)
        for i, B in enumerate(st.feedback):
            gB = ia_feedback_grad(net, i, rec[i][0], p[2 * i], p[2 * i + 1], B, 0.3, 0.2, 0.1, normalise=True)
            torch.testing.assert_close(st2.feedback[i], B - 0.2 * gB, rtol=1e-10, atol=1e-12)
        p, st = new, st2
