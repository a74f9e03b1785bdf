"""The debiased Sinkhorn divergence between point clouds (the paper's L_d term; geomloss conventions).

:func:`sinkhorn_divergence` is the in-library solver (ε-scaling warm start, then over-relaxed and damped-Newton
Sinkhorn iterations at the final ε to a marginal tolerance, dual value, envelope gradient; NumPy on the CPU);
``refine=False`` runs geomloss' own tensorized algorithm in torch. :func:`geomloss_sinkhorn` computes the same
divergence with geomloss (optional extra). Both are batched over a leading axis N and return ``(N,)``; names are
re-exported by :mod:`learnscope.bias.distances`, whose :func:`~learnscope.bias.distances.make_distance` builds them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from learnscope.bias.inputs import check_clouds
from learnscope.errors import ConfigError
from learnscope.validation import check_positive, check_positive_int


def _ot_cost(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """C(x_i, y_j) = |x_i − y_j|^p / p for x (N, n, D), y (N, m, D): (N, n, m)."""
    diff = x[:, :, None, :] - y[:, None, :, :]
    sq = (diff * diff).sum(-1)
    if p == 2:
        return 0.5 * sq
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)) ** (0.5 * p), torch.zeros_like(sq)) / p


def _logsumexp(z: torch.Tensor, dim: int) -> torch.Tensor:
    """log Σ exp(z) along ``dim``, dropping terms below e^-80 of the largest (they cannot change the sum).

    ``torch.logsumexp`` is ~5x slower here because exp of the very negative entries of C/ε (small blur)
    leaves its fast path; clamping them first avoids that.
    """
    top = z.detach().amax(dim=dim, keepdim=True)
    if z.requires_grad:
        return (z - top).clamp(min=-80.0).exp().sum(dim).log() + top.squeeze(dim)
    return (z - top).clamp_(min=-80.0).exp_().sum(dim).log_() + top.squeeze(dim)


def _softmin(eps: float, cost: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """f_i = −ε log Σ_j exp(h_j − C_ij / ε): cost (N, n, m), h (N, m) → (N, n)."""
    return -eps * _logsumexp(h[:, None, :] - cost / eps, dim=2)


_OMEGA = 1.9  # over-relaxation at the final ε (Thibault et al. 2017: converges for 0 < ω < 2)
_ANNEAL = 0.5  # default ε-scaling ratio when refining: geomloss' default, the annealing is only a warm start
_GEOMLOSS_SCALING = 0.9  # default without refinement: geomloss' algorithm is only accurate at scaling >= 0.9
#: default stopping tolerance per floating type: the largest relative error of the plan's column marginal
_TOL = {np.dtype(np.float32): 1e-2, np.dtype(np.float64): 1e-6}
_ANNEAL_STEPS = 1  # Sinkhorn iterations per annealing level
_NEWTON_BELOW = 0.1  # switch to Newton steps once the column marginal is within 10 %
_CHECK_EVERY = 5  # refinement iterations between convergence checks
_DRIFT = 30.0  # rebuild the kernels when a scaling vector leaves [e^-30, e^30]
_EXP_FLOOR = 80.0  # exponents below -80 (relative to a row's largest) are clamped: e^-80 cannot change a sum


def _epsilon_schedule(diameter: float, blur: float, scaling: float, p: float, max_iter: int) -> list[float]:
    """ε-scaling: diameter^p, then × scaling^p per step down to blur^p (at most ``max_iter`` values;
    a longer schedule is re-spaced geometrically to fit)."""
    diameter = max(diameter, blur)
    start, stop, step = p * math.log(diameter), p * math.log(blur), p * math.log(scaling)
    logs = list(np.arange(start, stop, step)) if start > stop else []
    if len(logs) + 1 > max_iter:
        logs = list(np.linspace(start, stop, max_iter))[:-1]
    return [math.exp(e) for e in logs] + [blur**p]


# The refined solver runs in NumPy on the CPU: the problems are small (n, m ~ 10–300) and every iteration is a
# handful of operations on them, so the cost is per-operation overhead, which is 2–3× lower in NumPy than in torch.


def _np_cost(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """C_ij = |a_i − b_j|^p / p for a (N, n, D), b (N, m, D): (N, n, m)."""
    if a.shape[-1] == 1:
        d = a[:, :, None, 0] - b[:, None, :, 0]
        return 0.5 * d * d if p == 2 else np.abs(d) ** p / p
    sq = ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)
    return 0.5 * sq if p == 2 else sq ** (0.5 * p) / p


def _np_softmin(c: np.ndarray, h: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The soft c-transform and its weights: c (N, n, m), h (N, m) (log-weights included, times ε).

    Returns t (N, n), :math:`t_i = -\\varepsilon \\log \\sum_j e^{(h_j - c_{ij})/\\varepsilon}`, and w (N, n, m),
    :math:`w_{ij} = e^{(t_i + h_j - c_{ij})/\\varepsilon}` (each row sums to 1), computed with the row maximum
    factored out.
    """
    z = (h[:, None, :] - c) * (1.0 / eps)
    top = z.max(axis=2, keepdims=True)
    z -= top
    np.maximum(z, -_EXP_FLOOR, out=z)
    np.exp(z, out=z)
    s = z.sum(axis=2, keepdims=True)
    z /= s
    return -eps * (top + np.log(s))[..., 0], z


def _newton_direction(k: np.ndarray, u: np.ndarray, v: np.ndarray, ratio: float) -> np.ndarray:
    """Newton step δ on log v for the column marginal, rows kept exact (u = 1/(k v)).

    With the plan P = diag(u) k diag(v) (rows sum to 1) and column sums c = ratio · 1ᵀP (target 1, ratio = m/n),
    the Jacobian of c in log v is J = diag(c) − ratio · PᵀP (symmetric, null vector 1); solve
    (J + 11ᵀ/m + 1e-9 I) δ = 1 − c (1ᵀ(1 − c) = 0, so the 11ᵀ term only removes the null space).
    Shapes: k (N, n, m), u (N, n, 1), v (N, m, 1).
    """
    plan = u * k * v.transpose(0, 2, 1)
    c = ratio * plan.sum(axis=1)
    m = c.shape[1]
    jac = -ratio * (plan.transpose(0, 2, 1) @ plan) + 1.0 / m
    idx = np.arange(m)
    jac[:, idx, idx] += c + 1e-9  # the ridge keeps blocks of a plan that is numerically a permutation solvable
    return np.linalg.solve(jac, (1.0 - c)[..., None])


def _sinkhorn_level(
    costs: tuple[np.ndarray, np.ndarray, np.ndarray],
    pots: tuple[np.ndarray, np.ndarray, np.ndarray],
    eps: float,
    budget: int,
    tol: float | None,
) -> tuple[tuple[np.ndarray, ...], int, bool]:
    """Sinkhorn iterations at one ε in the scaling domain, around kernels built from the current potentials.

    ``pots`` = (g_ab, f_aa, g_bb) on entry; returns ((f_ba, g_ab, f_aa, g_bb), iterations, converged). With
    ``tol=None`` (an annealing level) one plain iteration; otherwise over-relaxed ones (ω = 1.9, back to 1 if
    they diverge) until the column marginal is within ``tol`` (relative) and the symmetric fixed points too,
    or the budget or the drift limit is reached.
    """
    cxy, cxx, cyy = costs
    g, fa, gb = pots
    n, m = cxy.shape[1], cxy.shape[2]
    la, lb = -math.log(n), -math.log(m)
    # f = T(g) exactly; k_ij = b_j e^{(f_i + g_j − C_ij)/ε}, so that f' = f + ε log u, g' = g + ε log v give
    # T(g')_i = f_i − ε log (k v)_i and T(f')_j = g_j − ε log (kt u)_j with kt_ji = a_i e^{(...)/ε}
    f, k = _np_softmin(cxy, g + eps * lb, eps)
    kt = np.ascontiguousarray(k.transpose(0, 2, 1)) * (m / n)
    # symmetric problems h ← ½(h + T(h)): with h' = h + ε log u, u ← (u c / (k_s u))^½, c = e^{(T(h) − h)/ε}
    ta, ka = _np_softmin(cxx, fa + eps * la, eps)
    tb, kb = _np_softmin(cyy, gb + eps * lb, eps)
    ca, cb = np.exp((ta - fa) / eps)[..., None], np.exp((tb - gb) / eps)[..., None]
    u, v = np.ones(f.shape + (1,), f.dtype), np.ones(g.shape + (1,), g.dtype)
    ua, ub = np.ones_like(u), np.ones_like(v)
    omega = 1.0 if tol is None else _OMEGA
    sym_done, converged, best, saved, newton = False, False, math.inf, (u, v), True
    steps = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while steps < budget:
            if newton and best < _NEWTON_BELOW:
                # damped Newton step on log v (quadratic convergence where over-relaxation crawls: plans that
                # split into nearly independent blocks), backtracking on the semi-dual <a, T(g)> + <b, g>
                u = 1.0 / (k @ v)  # rows exact (over-relaxation leaves them off): the semi-dual's point
                try:
                    step = _newton_direction(k, u, v, m / n)
                except np.linalg.LinAlgError:
                    newton = False
                    continue
                slope = ((1.0 - v * (kt @ u)) * step).sum(axis=(1, 2)) / m  # per row, > 0
                base = np.log(v).mean(axis=(1, 2)) - np.log(k @ v).mean(axis=(1, 2))
                tau = np.ones((len(slope), 1, 1))
                for _ in range(10):  # per-row backtracking (Armijo) on the semi-dual
                    v_new = v * np.exp(tau * step)
                    kv = k @ v_new
                    gain = np.log(v_new).mean(axis=(1, 2)) - np.log(kv).mean(axis=(1, 2)) - base
                    bad = ~(gain >= 1e-4 * tau[:, 0, 0] * slope)
                    if not bad.any():
                        break
                    tau[bad] *= 0.5
                accepted = not bad.any()
                steps += _CHECK_EVERY  # about the cost of the iterations it replaces
                if not accepted:
                    newton = False  # back to over-relaxed Sinkhorn for the rest of this level
                    continue
                v, u = v_new, 1.0 / kv
                err = float(np.abs(v * (kt @ u) - 1.0).max())
                best, saved = min(best, err), (u, v)
                for _ in range(_CHECK_EVERY if not sym_done else 0):
                    ua = np.sqrt(ua * ca / (ka @ ua))
                    ub = np.sqrt(ub * cb / (kb @ ub))
            else:
                v = v * (v * (kt @ u)) ** -omega  # v^(1−ω) (kt u)^(−ω)
                u = u * (u * (k @ v)) ** -omega
                if not sym_done:
                    ua = np.sqrt(ua * ca / (ka @ ua))
                    ub = np.sqrt(ub * cb / (kb @ ub))
                steps += 1
                if tol is None or (steps % _CHECK_EVERY and steps < budget):
                    continue
                err = float(np.abs(v * (kt @ u) - 1.0).max())
                if not math.isfinite(err) or err > 10 * best:  # over-relaxation diverging: plain Sinkhorn
                    u, v, omega = saved[0], saved[1], 1.0
                    continue
                best, saved = min(best, err), (u, v)
            if not sym_done:
                sym = max(float(np.abs(ua * (ka @ ua) / ca - 1.0).max()),
                          float(np.abs(ub * (kb @ ub) / cb - 1.0).max()))
                sym_done = sym < tol
            if err < tol and sym_done:
                converged = True
                break
            if max(float(np.abs(np.log(w)).max()) for w in (u, v, ua, ub)) > _DRIFT:
                break  # rebuild the kernels from the current potentials
    out = (f + eps * np.log(u[..., 0]), g + eps * np.log(v[..., 0]), fa + eps * np.log(ua[..., 0]),
           gb + eps * np.log(ub[..., 0]))
    return out, steps, converged


def _sinkhorn_refined(
    xs: np.ndarray, ys: np.ndarray, blur: float, scaling: float, p: float, max_iter: int, tol: float, need_grad: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The debiased divergence (N,) and its gradients in x (N, n, D) and y (N, m, D) (None unless ``need_grad``)."""
    n, m = xs.shape[1], ys.shape[1]
    la, lb = -math.log(n), -math.log(m)
    lo = np.minimum(xs.min(axis=(0, 1)), ys.min(axis=(0, 1)))
    hi = np.maximum(xs.max(axis=(0, 1)), ys.max(axis=(0, 1)))
    schedule = _epsilon_schedule(float(np.linalg.norm(hi - lo)), blur, scaling, p, max_iter)
    costs = (_np_cost(xs, ys, p), _np_cost(xs, xs, p), _np_cost(ys, ys, p))
    pots = (np.zeros(ys.shape[:2], xs.dtype), np.zeros(xs.shape[:2], xs.dtype), np.zeros(ys.shape[:2], xs.dtype))
    used = 0
    for eps in schedule[:-1]:
        (_, *pots), steps, _ = _sinkhorn_level(costs, pots, eps, _ANNEAL_STEPS, None)
        used += steps
    eps = schedule[-1]
    while True:
        (f, *pots), steps, converged = _sinkhorn_level(costs, pots, eps, max(max_iter - used, 1), tol)
        used += steps
        if converged or used >= max_iter:
            break
    g, fa, gb = pots
    # value: the dual objectives at the potentials, D(f, g) = <a, f> + <b, g> − ε(<a ⊗ b, e^{(f ⊕ g − C)/ε}> − 1)
    # (stationary at the optimum: the error is second order in the potentials'), with
    # <a ⊗ b, e^{(f ⊕ g − C)/ε}> = <a, e^{(f − T(g))/ε}>; the plans' rows w give the gradients
    cxy, cxx, cyy = costs
    t_ba, w_ba = _np_softmin(cxy, g + eps * lb, eps)
    t_ab, w_ab = _np_softmin(np.ascontiguousarray(cxy.transpose(0, 2, 1)), f + eps * la, eps)
    t_aa, w_aa = _np_softmin(cxx, fa + eps * la, eps)
    t_bb, w_bb = _np_softmin(cyy, gb + eps * lb, eps)

    def mass(h: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.exp((h - t) / eps).mean(axis=1) - 1.0

    value = (f.mean(axis=1) + g.mean(axis=1) - eps * mass(f, t_ba)
             - fa.mean(axis=1) + 0.5 * eps * mass(fa, t_aa) - gb.mean(axis=1) + 0.5 * eps * mass(gb, t_bb))
    if not need_grad:
        return value, None, None
    if p == 2:  # ∇_x ½|x − y|² = x − y and the rows of w sum to 1
        return value, (w_aa @ xs - w_ba @ ys) / n, (w_bb @ ys - w_ab @ xs) / m

    def row_grad(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a[:, :, None, :] - b[:, None, :, :]  # Σ_j w_ij |d_ij|^(p−2) d_ij, zero at coincident points
        r = np.sqrt((d * d).sum(-1, keepdims=True))
        scale = np.where(r > 0, np.where(r > 0, r, 1.0) ** (p - 2), 0.0)
        return (w[..., None] * scale * d).sum(axis=2)

    return (value, (row_grad(w_ba, xs, ys) - row_grad(w_aa, xs, xs)) / n,
            (row_grad(w_ab, ys, xs) - row_grad(w_bb, ys, ys)) / m)


class _SinkhornValue(torch.autograd.Function):
    """Attaches a value computed outside autograd to x and y, with its precomputed gradients (first order)."""

    @staticmethod
    def forward(ctx, x, y, value, grad_x, grad_y):  # type: ignore[override]
        ctx.save_for_backward(grad_x, grad_y)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        grad_x, grad_y = ctx.saved_tensors
        return grad_out[:, None, None] * grad_x, grad_out[:, None, None] * grad_y, None, None, None


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float = 0.05,
    scaling: float | None = None,
    p: int = 2,
    max_iter: int = 200,
    *,
    refine: bool = True,
    tol: float | None = None,
) -> torch.Tensor:
    r"""Debiased Sinkhorn divergence between uniform empirical measures, per row (geomloss conventions).

    Parameters
    ----------
    x : (N, n) 1-D values or (N, n, D) points (weights 1/n).
    y : (N, m) / (m,) for 1-D x, (N, m, D) / (m, D) otherwise (weights 1/m; a shared cloud is broadcast).
    blur : ε^{1/p}, the length scale below which the divergence stops resolving detail.
    scaling : ε-scaling ratio of successive blur values, in (0, 1). Default 0.5 when refining (the annealing
        only warm-starts the refinement; geomloss' default) and 0.9 without (geomloss' algorithm is accurate
        only for scaling ≥ 0.9, specs/stack.md §2).
    p : cost exponent, :math:`C(x, y) = |x - y|^p / p` (p = 2 gives ½|x − y|², so S_ε → W₂²/2 as blur → 0).
    max_iter : cap on the total number of Sinkhorn iterations (annealing + refinement at the final ε).
    refine : iterate at the final ε until converged (default). ``False`` stops after the annealing schedule,
        which is exactly geomloss' ``SamplesLoss("sinkhorn", backend="tensorized")`` algorithm; at small blur
        that is not converged (a few % low at scaling 0.9 and blur 0.05 in 1-D, up to 100 % at 0.5).
    tol : refinement stopping tolerance: the largest relative error of the plan's second marginal (and of the
        symmetric problems' fixed points). Default 1e-2 for float32 inputs, which puts the value within 1e-3
        (relative) of the converged one at blur 0.05 (tested), and 1e-6 for float64.

    Returns
    -------
    (N,) tensor:

    .. math::

        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
            - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
        \quad \mathrm{OT}_\varepsilon(\alpha, \beta) = \min_{\pi \in \Pi(\alpha, \beta)}
            \langle \pi, C \rangle + \varepsilon\,\mathrm{KL}(\pi \,|\, \alpha \otimes \beta),
        \quad \varepsilon = \mathrm{blur}^p.

    Algorithm (``refine=True``; weights a = 1/n, b = 1/m, soft c-transform
    :math:`T_\varepsilon(g)_i = -\varepsilon \log \sum_j b_j e^{(g_j - C_{ij})/\varepsilon}`):

    1. ε-scaling: one Sinkhorn iteration per ε from diameter^p down to blur^p, × scaling^p per step, for the
       pair (f, g) and the averaged updates :math:`h \leftarrow \tfrac12(h + T_\varepsilon(h))` of the two
       symmetric problems. Each level absorbs the potentials into stabilised kernels
       :math:`k_{ij} = b_j e^{(f_i + g_j - C_{ij})/\varepsilon}` (one exponential per cost matrix and level);
       the iterations themselves are matrix–vector products on scaling vectors u, v.
    2. At ε = blur^p: over-relaxed Sinkhorn :math:`v \leftarrow v^{1-\omega} (k^\top u)^{-\omega}`,
       :math:`u \leftarrow u^{1-\omega} (k v)^{-\omega}`, ω = 1.9 (back to 1 if it diverges), checked every 5
       iterations, until :math:`\max_j |v_j (k^\top u)_j - 1| <` ``tol`` and the symmetric fixed points are as
       close, or ``max_iter`` is reached; kernels are rebuilt when a scaling leaves [e^-30, e^30].
    3. One last soft c-transform of every potential (geomloss' last extrapolation):
       :math:`S_\varepsilon = \langle a, T(g_{ab}) - T(f_{aa}) \rangle + \langle b, T(f_{ba}) - T(g_{bb}) \rangle`,
       a dual objective at a point with one marginal exact, so its error is second order in the potentials'.
       Gradient by the envelope theorem (as geomloss): each cost differentiated in its row points,
       :math:`\partial S/\partial x_i = \tfrac1n\big[\sum_j w_{ij} \nabla_x C(x_i, y_j) - \sum_k w^{aa}_{ik}
       \nabla_x C(x_i, x_k)\big]` with the row-normalised plans w — exact at convergence; first order only
       (a second derivative raises).

    Steps 1–3 run in NumPy on the CPU (in float32 for float32 or lower-precision inputs, else float64); the
    result and its gradient come back on the inputs' device and dtype. A pure function of its inputs (no
    warm start is carried between calls).

    Cost: O(N n m) memory and time per iteration. At blur 0.05 with labels in [−1, 1]: ~8 annealing levels and
    ~20–70 refinement iterations; without refinement about 40–50 log-domain iterations at scaling 0.9.
    """
    x, y = check_clouds(x, y)
    blur = check_positive("blur", blur)
    if scaling is None:
        scaling = _ANNEAL if refine else _GEOMLOSS_SCALING
    scaling = check_positive("scaling", scaling)
    if not scaling < 1:
        raise ConfigError(f"sinkhorn scaling must be in (0, 1), got {scaling}")
    p = check_positive("p", p)
    max_iter = check_positive_int("max_iter", max_iter)
    if tol is not None:
        tol = check_positive("tol", tol)
    if refine:
        np_dtype = np.float64 if x.dtype == torch.float64 else np.float32
        xs = x.detach().cpu().numpy().astype(np_dtype, copy=False)
        ys = y.detach().cpu().numpy().astype(np_dtype, copy=False)
        need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
        value, grad_x, grad_y = _sinkhorn_refined(
            xs, ys, blur, scaling, p, max_iter, _TOL[np.dtype(np_dtype)] if tol is None else tol, need_grad
        )
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype=x.dtype, device=x.device)  # noqa: E731
        if not need_grad:
            return as_t(value)
        return _SinkhornValue.apply(x, y, as_t(value), as_t(grad_x), as_t(grad_y))
    return _sinkhorn_annealed(x, y, blur, scaling, p, max_iter)


def _sinkhorn_annealed(
    x: torch.Tensor, y: torch.Tensor, blur: float, scaling: float, p: float, max_iter: int
) -> torch.Tensor:
    """geomloss' tensorized algorithm in torch: the ε-scaling loop with averaged symmetric updates, then one last
    update taken with autograd (each cost differentiated in its row points only)."""
    n, m = x.shape[1], y.shape[1]
    a_log = torch.full((x.shape[0], n), -math.log(n), dtype=x.dtype, device=x.device)
    b_log = torch.full((x.shape[0], m), -math.log(m), dtype=x.dtype, device=x.device)
    xd, yd = x.detach(), y.detach()
    with torch.no_grad():
        lo = torch.minimum(xd.amin(dim=(0, 1)), yd.amin(dim=(0, 1)))
        hi = torch.maximum(xd.amax(dim=(0, 1)), yd.amax(dim=(0, 1)))
        schedule = _epsilon_schedule(float((hi - lo).norm()), blur, scaling, p, max_iter)
        c_xy, c_xx, c_yy = _ot_cost(xd, yd, p), _ot_cost(xd, xd, p), _ot_cost(yd, yd, p)
        c_yx = c_xy.transpose(1, 2).contiguous()
        e0 = schedule[0]
        f_ba, g_ab = _softmin(e0, c_xy, b_log), _softmin(e0, c_yx, a_log)
        f_aa, g_bb = _softmin(e0, c_xx, a_log), _softmin(e0, c_yy, b_log)
        for e in schedule:
            f_ba, g_ab = (
                0.5 * (f_ba + _softmin(e, c_xy, b_log + g_ab / e)),
                0.5 * (g_ab + _softmin(e, c_yx, a_log + f_ba / e)),
            )
            f_aa = 0.5 * (f_aa + _softmin(e, c_xx, a_log + f_aa / e))
            g_bb = 0.5 * (g_bb + _softmin(e, c_yy, b_log + g_bb / e))
    eps = schedule[-1]
    f_ba_new = _softmin(eps, _ot_cost(x, yd, p), b_log + g_ab / eps)
    g_ab_new = _softmin(eps, _ot_cost(y, xd, p), a_log + f_ba / eps)
    f_aa_new = _softmin(eps, _ot_cost(x, xd, p), a_log + f_aa / eps)
    g_bb_new = _softmin(eps, _ot_cost(y, yd, p), b_log + g_bb / eps)
    return (f_ba_new - f_aa_new).mean(dim=1) + (g_ab_new - g_bb_new).mean(dim=1)


# --------------------------------------------------------------------------------------------------------
# geomloss backend


def check_geomloss(scaling: float) -> object:
    """The geomloss module, after checking ``0.9 <= scaling < 1``; a one-line :class:`ConfigError` if it is
    missing (install hint) or the scaling is out of range."""
    scaling = check_positive("scaling", scaling)
    if scaling < 0.9 or scaling >= 1:
        raise ConfigError(
            f"geomloss_sinkhorn needs 0.9 <= scaling < 1, got {scaling}: with geomloss' default 0.5 the 1-D "
            "divergence comes out negative (-0.0024 vs the exact W2²/2 = 0.0109, see specs/stack.md §2)"
        )
    try:
        import geomloss
    except ImportError:
        raise ConfigError(
            "distance 'geomloss_sinkhorn' needs geomloss: pip install learnscope[sinkhorn] "
            "(or use the built-in 'sinkhorn')"
        ) from None
    return geomloss


def geomloss_sinkhorn(
    x: torch.Tensor, y: torch.Tensor, blur: float = 0.05, scaling: float = 0.9
) -> torch.Tensor:
    """Debiased Sinkhorn divergence by geomloss (``SamplesLoss("sinkhorn", p=2, debias=True,
    backend="tensorized")``): same definition and shapes as :func:`sinkhorn_divergence` with p = 2.

    Requires the optional ``sinkhorn`` extra; ``scaling < 0.9`` is refused because geomloss then returns
    inaccurate (even negative) values on 1-D labels (specs/stack.md §2).
    """
    geomloss = check_geomloss(scaling)
    blur = check_positive("blur", blur)
    x, y = check_clouds(x, y)
    loss = geomloss.SamplesLoss(
        "sinkhorn", p=2, blur=blur, scaling=scaling, debias=True, backend="tensorized"
    )
    return loss(x, y.contiguous())
