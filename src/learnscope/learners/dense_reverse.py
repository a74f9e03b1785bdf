"""Unrolled full-batch / minibatch gradient descent of an MLP with a hand-written reverse pass (the Fig 8 learner).

The bias search differentiates the learner's test predictions w.r.t. its training labels through the whole
unrolled training (bias-spec §1.2). Recording that unroll with autograd costs ~5,600 graph nodes and ~21,000 aten
calls per meta-step for ~1 ms of arithmetic (per-op-overhead bound). :func:`unrolled_dense_gd` instead runs the
training loop in inference mode, keeps of each step what autograd would have saved (hidden outputs, δ's, the
weights W_2 … W_L), and walks the steps backwards applying the exact vector-Jacobian product of one step
(~10,000 aten calls in all):

.. math::

    \\theta_{t+1} = \\theta_t - \\eta\\, \\nabla_\\theta \\ell_t(\\theta_t), \\qquad
    \\ell_t(\\theta) = \\frac1k \\sum_{i \\in I_t} (g_\\theta(x_i) - y_i)^2,

    \\bar\\theta_t = \\bar\\theta_{t+1} - \\eta\\, H_t \\bar\\theta_{t+1}, \\qquad
    \\bar y_{I_t} \\mathrel{+}= \\eta\\, \\tfrac{2}{k}\\, J_t \\bar\\theta_{t+1}, \\qquad
    \\bar x_{I_t} \\mathrel{-}= \\eta\\, \\partial_\\theta(\\nabla_x \\ell_t)\\, \\bar\\theta_{t+1},

with H_t the Hessian of ℓ_t (symmetric, so the Hessian-vector product is the forward-mode linearisation of the
gradient, :func:`_step_vjp`) and J_t the Jacobian of the training outputs. The training runs the same operations
in the same order as :func:`learnscope.learners.unroll.dense_mse_grads` (bit-identical predictions); only the
gradients are summed in another order. Only plain SGD (``θ ← θ − ηg``); momentum and Adam keep the autograd path
of :mod:`learnscope.learners.unroll`. Measured speed and memory: ``benchmarks/bias_unroll_speed.py``.

Layout as the dense path of :mod:`learnscope.learners.unroll`: ``[W1 (E, in, h1), b1 (E, 1, h1), …, WL (E, h, 1),
bL (E, 1, 1)]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from learnscope.errors import ShapeError, UnknownNameError

Params = list[Tensor]


@dataclass(frozen=True)
class _Act:
    """A hidden activation: ``f(a)``, ``s(h) = f'(a)`` and ``r(h) = ds/dh``, both written in the output h = f(a)
    (``r`` None: f'' = 0; ``s`` None: f' = 1). For ReLU s is the 0/1 mask ``sign(h)``."""

    f: Callable[[Tensor], Tensor]
    s: Callable[[Tensor], Tensor] | None
    r: Callable[[Tensor], Tensor] | None
    f_out: Callable[[Tensor, Tensor], Tensor]  # f(a) written into out (the same kernel as f: same numbers)


# f' as in learnscope.circuits.mlp.ACTIVATIONS (the same expressions: the forward pass gives the same numbers);
# torch.relu is ATen's clamp_min(a, 0)
_ACTS: dict[str, _Act] = {
    "relu": _Act(torch.relu, torch.sign, None, lambda a, out: torch.clamp_min(a, 0, out=out)),
    "tanh": _Act(torch.tanh, lambda h: 1 - h * h, lambda h: -2 * h, lambda a, out: torch.tanh(a, out=out)),
    "sigmoid": _Act(torch.sigmoid, lambda h: h * (1 - h), lambda h: 1 - 2 * h,
                    lambda a, out: torch.sigmoid(a, out=out)),
    "identity": _Act(lambda a: a, None, None, lambda a, out: out.copy_(a)),
}
ACTIVATIONS = tuple(_ACTS)
_RELU = _ACTS["relu"]
_THR = torch.ops.aten.threshold_backward.default
_THR_OUT = torch.ops.aten.threshold_backward.grad_input


class _Step(NamedTuple):
    """What the reverse pass needs of one step: its weights W_2 … W_L (params with None for the biases, and for
    W_1 unless x̄ is wanted), hidden outputs h_l (E, k, h_l) with their transposes, the weights' transposes,
    e = c (out − y) (E, k, 1), δ_l = ∂ℓ/∂a_l for l ≥ 2 (δ_1 too when x̄ is wanted) and the pre-activation
    cotangents ``back_l = δ_{l+1} W_{l+1}ᵀ`` (kept only when f'' ≠ 0) — what autograd would save, no more."""

    params: Params
    hs: Params
    hTs: Params
    WTs: Params
    e: Tensor
    deltas: Params
    backs: list


# ---------------------------------------------------------------- one step, forward


class _Dst(NamedTuple):
    """Where one step writes what the reverse pass keeps (views into the run's buffers): h_l and h_lᵀ
    (l = 1 … L−1), e, δ_l (index l − 1; None: not kept), back_l (None: not kept) and W_lᵀ (index l − 1, l ≥ 2) of the
    step's weights, already copied into their buffer."""

    hs: Params
    hTs: Params
    e: Tensor
    deltas: list
    backs: list
    WTs: Params


def _forward_step(params: Params, x: Tensor, xT: Tensor, y: Tensor, c: float, lr: float, act: _Act,
                  update: bool = True, dst: _Dst | None = None):
    """One GD step on ``(x (E, k, in), y (E, k, 1))`` (xT = xᵀ): ``(new params, _Step)``.

    The δ recursion of :func:`learnscope.learners.unroll.dense_mse_grads`: e = c (out − y), c = 2/k,
    g_{W_l} = h_{l−1}ᵀ δ_l, g_{b_l} = Σ_k δ_l, δ_{l−1} = (δ_l W_lᵀ) ⊙ f'(a_{l−1}); then θ − η g — the same
    kernels in the same order (bit-identical). ``update`` False: the δ's only, new params None (the
    recomputation of ``store="params"``). ``dst``: write the kept tensors there (``out=``) instead of allocating.
    """
    L = len(params) // 2
    hs: Params = []
    hTs: Params = [xT]
    h = x
    for i in range(L - 1):
        a = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if dst is None:
            h = act.f(a)
            hTs.append(h.mT)
        else:
            h = act.f_out(a, dst.hs[i])
            hTs.append(dst.hTs[i])
        hs.append(h)
    e = (torch.baddbmm(params[-1], h, params[-2]) if dst is None
         else torch.baddbmm(params[-1], h, params[-2], out=dst.e)).sub_(y).mul_(c)
    grads: Params = [None] * len(params)  # type: ignore[list-item]
    deltas: Params = [None] * L  # type: ignore[list-item]
    WTs: Params = [None] * L  # type: ignore[list-item]
    backs: list = [None] * L
    delta = e
    deltas[L - 1] = e
    for i in range(L - 1, -1, -1):
        if update:
            grads[2 * i] = torch.bmm(hTs[i], delta)
            grads[2 * i + 1] = delta.sum(1, keepdim=True)
        if i:
            WT = params[2 * i].mT if dst is None else dst.WTs[i - 1]
            WTs[i] = WT
            out_b = None if dst is None else dst.backs[i - 1]
            if delta.shape[-1] == 1:  # a one-unit layer: δ W_lᵀ is an outer product (one multiplication per entry)
                back = delta * WT if out_b is None else torch.mul(delta, WT, out=out_b)
            else:
                back = torch.bmm(delta, WT) if out_b is None else torch.bmm(delta, WT, out=out_b)
            h = hs[i - 1]
            out_d = None if dst is None else dst.deltas[i - 1]
            # f'(a) from h = f(a); ReLU: one threshold_backward as in dense_mse_grads (bit-identical)
            if act is _RELU:
                delta = _THR(back, h, 0.0) if out_d is None else _THR_OUT(back, h, 0.0, grad_input=out_d)
            elif act.s is None:
                delta = back if out_d is None else out_d.copy_(back)
            else:
                delta = back * act.s(h) if out_d is None else torch.mul(back, act.s(h), out=out_d)
            deltas[i - 1] = delta
            backs[i - 1] = back if act.r is not None else None
    new = torch._foreach_add(params, grads, alpha=-lr) if update else None
    return new, _Step(params, hs, hTs, WTs, e, deltas, backs)


# ---------------------------------------------------------------- one step, reverse


def _step_vjp(st: _Step, V: Params, x: Tensor, c: float, lr: float, act: _Act, need_x: bool):
    """Vector-Jacobian product of one GD step with the cotangent ``V`` of its new parameters.

    Forward tangent of the network in the direction V (da_l, dh_l = s_l ⊙ da_l, dout = J V), then the tangent
    of the δ recursion: dδ_L = c·dout, dg_{W_l} = h_{l−1}ᵀ dδ_l + dh_{l−1}ᵀ δ_l, dg_{b_l} = Σ_k dδ_l,
    dback = dδ_l W_lᵀ + δ_l V_{W_l}ᵀ, dδ_{l−1} = s ⊙ dback + r ⊙ back ⊙ dh_{l−1} — so dg = H V (H: the Hessian
    of the step's loss). Returns ``(V − η H V, c·dout (E, k, 1), x̄ (E, k, in) or None)``: the label cotangent
    is η·c·dout and x̄ = −η ∂_θ(∇_x ℓ)·V = −η (dδ_1 W_1ᵀ + δ_1 V_{W_1}ᵀ).
    """
    P, hs, hTs, WTs = st.params, st.hs, st.hTs, st.WTs
    # f'(a_l) recomputed from h_l (measured as fast as keeping it at 1 learner, faster at 8 and 64: less traffic)
    ss = [None if act.s is None else act.s(h) for h in hs]
    L = len(P) // 2
    # forward tangent
    da = torch.baddbmm(V[1], x, V[0]) if L > 1 else torch.baddbmm(V[1], x, V[0], beta=c, alpha=c)
    dhs: Params = []
    for i in range(1, L):
        s = ss[i - 1]
        dh = da if s is None else da * s
        dhs.append(dh)
        da = torch.baddbmm(V[2 * i + 1], hs[i - 1], V[2 * i]).baddbmm_(dh, P[2 * i], beta=c if i == L - 1 else 1.0,
                                                                        alpha=c if i == L - 1 else 1.0)
    dd = da  # c·dout, the tangent of e
    dg: Params = [None] * len(P)  # type: ignore[list-item]
    for i in range(L - 1, -1, -1):
        if i:
            dg[2 * i] = torch.bmm(hTs[i], dd).baddbmm_(dhs[i - 1].mT, st.deltas[i])
        else:
            dg[0] = torch.bmm(hTs[0], dd)
        dg[2 * i + 1] = dd.sum(1, keepdim=True)
        if i:
            if dd.shape[-1] == 1:
                dback = torch.addcmul(dd * WTs[i], st.deltas[i], V[2 * i].mT)
            else:
                dback = torch.bmm(dd, WTs[i]).baddbmm_(st.deltas[i], V[2 * i].mT)
            s = ss[i - 1]
            dd = dback if s is None else dback * s
            if act.r is not None:
                dd = dd + st.backs[i - 1] * act.r(hs[i - 1]) * dhs[i - 1]
    xbar = None
    if need_x:
        xbar = torch.bmm(dd, P[0].mT).baddbmm_(st.deltas[0], V[0].mT, beta=-lr, alpha=-lr)
    torch._foreach_add_(V, dg, alpha=-lr)  # V is the reverse pass's own buffer
    return V, da, xbar


# ---------------------------------------------------------------- prediction and its pullback


def _predict(params: Params, x: Tensor, act: _Act) -> tuple[Tensor, Params]:
    """Network output ``(E, m, 1)`` on ``x (E, m, in)`` and the hidden outputs ``[h1, …]``."""
    L = len(params) // 2
    hs: Params = []
    h = x
    for i in range(L - 1):
        h = act.f(torch.baddbmm(params[2 * i + 1], h, params[2 * i]))
        hs.append(h)
    return torch.baddbmm(params[-1], h, params[-2]), hs


def _predict_vjp(params: Params, hs: Params, ss: list, x: Tensor, pbar: Tensor, need_x: bool):
    """Pullback of :func:`_predict` with ``pbar (E, m, 1)``: ``(θ̄ list, x̄ or None)``."""
    L = len(params) // 2
    g: Params = [None] * len(params)  # type: ignore[list-item]
    delta = pbar
    for i in range(L - 1, -1, -1):
        g[2 * i] = torch.bmm((x if i == 0 else hs[i - 1]).mT, delta)
        g[2 * i + 1] = delta.sum(1, keepdim=True)
        if i:
            back = torch.bmm(delta, params[2 * i].mT)
            delta = back if ss[i - 1] is None else back * ss[i - 1]
    xbar = torch.bmm(delta, params[0].mT) if need_x else None
    return g, xbar


# ---------------------------------------------------------------- the autograd Function


@dataclass
class _Spec:
    lr: float
    steps: int
    act: _Act
    store: str


def _normal(t: Tensor | None) -> Tensor | None:
    """An inference-mode result as an ordinary tensor (autograd may record or accumulate into it)."""
    return None if t is None else t.clone()


def _per_step(columns: list, T: int) -> list[tuple]:
    """Per-step tuples from per-buffer sequences of T views (None: a column of Nones), built once in C (zip)."""
    return list(zip(*((None,) * T if c is None else c for c in columns), strict=True)) if columns else [()] * T


class _UnrolledGD(torch.autograd.Function):
    """The whole unroll as one autograd node. What the reverse pass keeps lives in a few preallocated buffers
    ``(steps, E, …)`` passed to ``save_for_backward`` — so ``saved_tensors_hooks`` (the memory meter of
    :mod:`learnscope.learners.memory`) sees every byte — and written by the steps through ``out=`` views while the
    loop itself runs in inference mode (lower per-op overhead)."""

    @staticmethod
    def forward(ctx: Any, spec: _Spec, x_train: Tensor, y_train: Tensor, x_test: Tensor | None, idx: Tensor | None,
                *params0: Tensor):
        ctx.set_materialize_grads(False)
        E, n = y_train.shape
        T, L, act = spec.steps, len(params0) // 2, spec.act
        keep = spec.store == "activations"
        record = any(ctx.needs_input_grad)  # False (no input requires grad): train only, keep nothing
        need_x = ctx.needs_input_grad[1]
        second = act.r is not None
        batches: tuple = ()
        if idx is None:
            k = n
            x, xT, y = x_train, x_train.mT, y_train.unsqueeze(-1)
        else:
            k = idx.shape[2]
            flat_idx = idx.reshape(E, -1)
            ar = torch.arange(E, device=idx.device).unsqueeze(1)
            xs = x_train.detach()[ar, flat_idx].reshape(E, T, k, x_train.shape[2])
            ys = y_train.detach().gather(1, flat_idx).reshape(E, T, k, 1)
            batches = (xs, ys)
            xv, xTv, yv = xs.unbind(1), xs.mT.unbind(1), ys.unbind(1)
        c, lr = 2.0 / k, spec.lr
        hidden = [params0[2 * i].shape[-1] for i in range(L - 1)]

        def buf(*shape: int) -> Tensor:
            return torch.empty(T, *shape, dtype=x_train.dtype, device=x_train.device)

        if not record:
            buffers = []
        elif keep:
            hb = [buf(E, k, h) for h in hidden]
            eb = buf(E, k, 1)
            db = [buf(E, k, h) if (i or need_x) else None for i, h in enumerate(hidden)]
            bb = [buf(E, k, h) for h in hidden] if second else [None] * (L - 1)
            wb = [buf(*params0[2 * i].shape) if (i or need_x) else None for i in range(L)]
            buffers = [*hb, eb, *db, *bb, *wb]
            hv, hTv = [b.unbind(0) for b in hb], [b.mT.unbind(0) for b in hb]
            ev = eb.unbind(0)
            dv = [None if b is None else b.unbind(0) for b in db]
            bv = [None if b is None else b.unbind(0) for b in bb]
            wv = [None if b is None else b.unbind(0) for b in wb]
            wTv = [b.mT.unbind(0) for b in wb[1:]]
            kept = [i for i in range(L) if wb[i] is not None]
            HS, HTS, DS, BS, WTS, WS = (_per_step(cols, T) for cols in (hv, hTv, dv, bv, wTv, [wv[i] for i in kept]))
        else:
            buffers = [buf(*p.shape) for p in params0]
            pv = [b.unbind(0) for b in buffers]
        params = list(params0)
        with torch.inference_mode():
            for t in range(T):
                if idx is not None:
                    x, xT, y = xv[t], xTv[t], yv[t]
                if not record:
                    params = _forward_step(params, x, xT, y, c, lr, act)[0]
                elif keep:
                    if kept:
                        torch._foreach_copy_(WS[t], [params[2 * i] for i in kept])
                    params = _forward_step(params, x, xT, y, c, lr, act, True,
                                           _Dst(HS[t], HTS[t], ev[t], DS[t], BS[t], WTS[t]))[0]
                else:
                    torch._foreach_copy_([v[t] for v in pv], params)
                    params = _forward_step(params, x, xT, y, c, lr, act)[0]
        final = [p.clone() for p in params]  # ordinary tensors: the outputs, saved as such
        test: list = []
        if x_test is not None:
            out, test = _predict(final, x_test, act)  # f'(a) of the test points: recomputed when needed
        ctx.spec, ctx.k, ctx.L, ctx.need_x = spec, k, L, need_x
        ctx.y_shape, ctx.x_shape = (E, n), tuple(x_train.shape)
        ctx.p_meta = [(p.shape, p.dtype, p.device) for p in final]
        # the per-step views of the saved buffers, for the reverse pass (views: no memory of their own; making them
        # again there would cost one select per view and step)
        ctx.views = None
        if record and keep:
            cols: list = []
            for w in wv:
                cols += [w, None]
            ctx.views = (_per_step(cols, T), HS, HTS, DS, BS, WTS, ev)
        # only what the reverse pass reads (the memory meter counts exactly this): the inputs of the steps (y only
        # to recompute them), the minibatch indices, the test inputs, parameters and hidden outputs, the buffers
        named: dict[str, Any] = {}
        if idx is None:
            named["x"] = x_train
            if not keep:
                named["y"] = y_train
        else:
            named["idx"], named["xs"] = idx, batches[0]
            if not keep:
                named["ys"] = batches[1]
        if x_test is not None:
            named |= {"x_test": x_test, "final": len(final), "test": len(test)}
        named["buffers"] = len(buffers)
        flat: list = []
        for key, v in named.items():
            if key == "final":
                flat += final
            elif key == "test":
                flat += test
            elif key == "buffers":
                flat += buffers
            else:
                flat.append(v)
        ctx.named = named
        ctx.save_for_backward(*flat)
        return tuple(final) if x_test is None else (out[..., 0], *final)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: Tensor | None):
        spec: _Spec = ctx.spec
        saved, got, pos = ctx.saved_tensors, {}, 0
        for key, v in ctx.named.items():
            width = v if isinstance(v, int) else 1
            got[key] = saved[pos : pos + width] if isinstance(v, int) else saved[pos]
            pos += width
        x_test, idx = got.get("x_test"), got.get("idx")
        T, L, act = spec.steps, ctx.L, spec.act
        P = 2 * L
        params_T = list(got.get("final", ()))
        hs_test = list(got.get("test", ()))
        pbar, tbar = (None, grads) if x_test is None else (grads[0], grads[1:])
        need_xtr, need_y, need_xte = ctx.needs_input_grad[1:4]  # need_xte is False when x_test is None
        need_p0 = any(ctx.needs_input_grad[5:])
        E, n = ctx.y_shape
        c, lr = 2.0 / ctx.k, spec.lr
        keep = spec.store == "activations"
        with torch.inference_mode():
            V = [torch.zeros(shape, dtype=dt, device=dev) if g is None else g.clone()
                 for (shape, dt, dev), g in zip(ctx.p_meta, tbar, strict=True)]
            xte_bar = None
            if pbar is not None:
                ss_test = [None if act.s is None else act.s(h) for h in hs_test]
                gp, xte_bar = _predict_vjp(params_T, hs_test, ss_test, x_test, pbar.unsqueeze(-1), need_xte)
                torch._foreach_add_(V, gp)
            y = None  # the labels enter the reverse pass only through a recomputed step (store="params")
            if idx is None:
                x = got["x"]
                xT = x.mT
                if "y" in got:
                    y = got["y"].unsqueeze(-1)
            else:
                xs = got["xs"]
                xv, xTv = xs.unbind(1), xs.mT.unbind(1)
                yv = got["ys"].unbind(1) if "ys" in got else (None,) * T
            if keep:
                PS, HS, HTS, DS, BS, WTS, ev = ctx.views
            else:
                pv = [b.unbind(0) for b in got["buffers"]]
            douts: list = [None] * T
            xbars: list = [None] * T
            for t in range(T - 1, -1, -1):
                if idx is not None:
                    x, xT, y = xv[t], xTv[t], yv[t]
                if keep:
                    e = ev[t]
                    st = _Step(PS[t], HS[t], (xT, *HTS[t]), (None, *WTS[t]), e, (*DS[t], e), (*BS[t], None))
                else:
                    st = _forward_step([v[t] for v in pv], x, xT, y, c, lr, act, False)[1]
                V, douts[t], xbars[t] = _step_vjp(st, V, x, c, lr, act, need_xtr)
            y_bar = x_bar = None
            if need_y:
                d = torch.stack(douts, 1)  # (E, steps, k, 1): c·dout_t
                if idx is None:
                    y_bar = d.sum(1)[..., 0] * lr
                else:
                    y_bar = torch.zeros(E, n, dtype=d.dtype, device=d.device).scatter_add_(
                        1, idx.reshape(E, -1), d.reshape(E, -1) * lr)
            if need_xtr:
                d = torch.stack(xbars, 1)  # (E, steps, k, in)
                if idx is None:
                    x_bar = d.sum(1)
                else:
                    D = ctx.x_shape[2]
                    where = idx.reshape(E, -1, 1).expand(-1, -1, D)
                    x_bar = torch.zeros(ctx.x_shape, dtype=d.dtype, device=d.device).scatter_add_(
                        1, where, d.reshape(E, -1, D))
        p0 = [_normal(v) for v in V] if need_p0 else [None] * P
        return (None, _normal(x_bar), _normal(y_bar), _normal(xte_bar) if need_xte else None, None, *p0)


# ---------------------------------------------------------------- public entry point

def unrolled_dense_gd(
    params0: list[Tensor],
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    *,
    lr: float,
    steps: int,
    activation: str,
    idx: Tensor | None = None,
    store: str = "activations",
) -> tuple[Tensor, list[Tensor]]:
    """Train an MLP ensemble by ``steps`` plain GD steps on the mean squared error and predict ``x_test``.

    params0 : ``[W1 (E, in, h1), b1 (E, 1, h1), …, WL (E, h, 1), bL (E, 1, 1)]`` (the dense path's layout).
    x_train (E, n, in), y_train (E, n), x_test (E, m, in); idx (E, steps, k) minibatch indices (with
    replacement) or None (full batch). lr : η; activation : the hidden non-linearity (relu, tanh, sigmoid,
    identity). store : ``"activations"`` (keep of each step what autograd would save: hidden outputs, δ's, W_2 …
    W_L — the same memory as today's path, fastest) or ``"params"`` (keep only the parameters and recompute the
    step's activations in the reverse pass: ~3.5× less memory, somewhat slower).
    The steps run eagerly: ``torch.compile`` of the step functions was measured 1.4–2× slower at 1 learner, 1.2×
    slower at 8 and within ±7 % at 64, after 10–120 s of compilation per shape (``benchmarks/bias_unroll_speed.py
    --compile``) — not worth it for a run of a few hundred meta-steps.

    Returns ``(predictions (E, m), final params)``, equal to :func:`learnscope.learners.unroll.unroll` with
    :func:`~learnscope.learners.unroll.dense_gradient_descent` (sgd); the predictions and final params are
    differentiable (first order, exact) in y_train, x_train, x_test and params0 through the hand-written reverse
    pass (θ̄_t = θ̄_{t+1} − η H_t θ̄_{t+1}, ȳ += η (2/k) J_t θ̄_{t+1}). The training is bit-identical to today's
    path; the gradients agree to rounding (another summation order). First order only (``once_differentiable``:
    no gradient of the meta-gradient).
    """
    spec = _check(params0, x_train, y_train, x_test, lr, steps, activation, idx, store)
    out = _UnrolledGD.apply(spec, x_train, y_train, x_test, idx, *params0)
    return out[0], list(out[1:])


def unrolled_dense_gd_params(
    params0: list[Tensor],
    x_train: Tensor,
    y_train: Tensor,
    *,
    lr: float,
    steps: int,
    activation: str,
    idx: Tensor | None = None,
    store: str = "activations",
) -> list[Tensor]:
    """The trained parameters of :func:`unrolled_dense_gd` alone (no test prediction), differentiable in
    params0, x_train and y_train by the same reverse pass: the ``Unrolled.run_full`` of the ``"full"``
    meta-gradient (the readout then runs under autograd)."""
    spec = _check(params0, x_train, y_train, None, lr, steps, activation, idx, store)
    return list(_UnrolledGD.apply(spec, x_train, y_train, None, idx, *params0))


def _check(params0, x_train, y_train, x_test, lr, steps, activation, idx, store) -> _Spec:
    """Validate the arguments of the entry points (one-line errors) and bundle the static ones."""
    if activation not in _ACTS:
        raise UnknownNameError("activation", activation, ACTIVATIONS)
    if store not in ("activations", "params"):
        raise UnknownNameError("store", store, ("activations", "params"))
    if len(params0) < 2 or len(params0) % 2:
        raise ShapeError(f"params0 must be [W1, b1, …, WL, bL], got {len(params0)} tensors")
    bad_test = x_test is not None and x_test.ndim != 3
    if y_train.ndim != 2 or x_train.ndim != 3 or bad_test or params0[-1].shape[-1] != 1:
        raise ShapeError(f"need x_train (E, n, in), y_train (E, n), x_test (E, m, in) and one output, got "
                         f"{tuple(x_train.shape)}, {tuple(y_train.shape)}, "
                         f"{None if x_test is None else tuple(x_test.shape)}")
    if idx is not None and (idx.ndim != 3 or idx.shape[:2] != (y_train.shape[0], steps)):
        raise ShapeError(f"idx must be (E, steps, k) = ({y_train.shape[0]}, {steps}, k), got {tuple(idx.shape)}")
    return _Spec(float(lr), int(steps), _ACTS[activation], store)
