"""Distribution distances between a batch of label sets and a target distribution (the term L_d).

Every function is batched over a leading axis N (one label set per row), returns shape ``(N,)`` and is
differentiable in the labels with autograd. Labels are 1-D values ``(N, n)``; :func:`energy_distance` and
:func:`sinkhorn_divergence` also take point clouds ``(N, n, D)``.

* ``"w2"`` — exact squared 2-Wasserstein distance in 1-D by sorting (the default: exact and O(n log n)),
  against a continuous :class:`~learnscope.targets.Target` (:func:`w2_to_target`) or against samples
  (:func:`w2_between_samples`).
* ``"sinkhorn"`` — debiased Sinkhorn divergence (the paper's term; geomloss conventions), in-library.
* ``"energy"`` — energy distance (the paper's Fig. 8 term).
* ``"geomloss_sinkhorn"`` — the same Sinkhorn divergence computed by geomloss (optional extra).

:func:`make_distance` turns a name into ``dist(labels, target) -> (N,)``. Not a distance but used in its place:
:func:`neg_std`, minus the label spread (Fig 6's term, no target distribution).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.targets import Target, make_target, unit_interval_rule
from learnscope.validation import check_finite, check_positive, check_positive_int

DISTANCES = ("w2", "sinkhorn", "energy", "geomloss_sinkhorn")
#: Spread terms: L_d from the labels alone, with no target distribution (:func:`neg_std`, Fig 6).
SPREADS = ("neg_std",)

# --------------------------------------------------------------------------------------------------------
# input checks


def _as_float_tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        try:
            t = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ShapeError(f"{name} must be a numeric tensor, got {type(t).__name__} ({err})") from None
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def _check_labels(name: str, t: object) -> torch.Tensor:
    """A finite ``(N, n)`` floating tensor with N, n >= 1."""
    t = _as_float_tensor(name, t)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ShapeError(
            f"{name} must have shape (N, n) with N, n >= 1 (one label set per row), got {tuple(t.shape)}"
        )
    return check_finite(name, t)


def _check_samples(name: str, s: object, labels: torch.Tensor) -> torch.Tensor:
    """Samples ``(m,)`` or ``(N, m)`` for 1-D labels ``(N, n)``, returned as ``(N or 1, m)``."""
    s = _as_float_tensor(name, s)
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] < 1:
        raise ShapeError(f"{name} must have shape (m,) or (N, m) with m >= 1, got {tuple(s.shape)}")
    if s.shape[0] not in (1, labels.shape[0]):
        raise ShapeError(
            f"{name} has {s.shape[0]} rows but the labels have N={labels.shape[0]}; "
            "pass (m,) to share one sample"
        )
    return check_finite(name, s).to(dtype=labels.dtype, device=labels.device)


def _check_clouds(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (N, n) or (N, n, D); ``y`` (N, m) / (m,) for 1-D or (N, m, D) / (m, D): both as (N, ·, D)."""
    x = _as_float_tensor("x", x)
    y = _as_float_tensor("y", y)
    if x.ndim == 2:
        x = x[..., None]
        if y.ndim not in (1, 2):
            raise ShapeError(
                f"y must have shape (m,) or (N, m) for 1-D x of shape (N, n), got {tuple(y.shape)}"
            )
        y = y[..., None]
    elif x.ndim == 3:
        if y.ndim not in (2, 3):
            raise ShapeError(
                f"y must have shape (m, D) or (N, m, D) for x of shape (N, n, D), got {tuple(y.shape)}"
            )
    else:
        raise ShapeError(f"x must have shape (N, n) or (N, n, D), got {tuple(x.shape)}")
    if y.ndim == 2:
        y = y[None]
    if x.shape[0] < 1 or x.shape[1] < 1 or y.shape[1] < 1:
        raise ShapeError(f"x and y need N, n, m >= 1, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if y.shape[0] not in (1, x.shape[0]):
        raise ShapeError(
            f"y has batch size {y.shape[0]} but x has N={x.shape[0]}; pass one shared cloud instead"
        )
    if y.shape[2] != x.shape[2]:
        raise ShapeError(f"x and y must have the same point dimension D, got {x.shape[2]} and {y.shape[2]}")
    check_finite("x", x)
    check_finite("y", y)
    y = y.to(dtype=x.dtype, device=x.device).expand(x.shape[0], -1, -1)
    return x, y


# --------------------------------------------------------------------------------------------------------
# exact 1-D Wasserstein

# Per-target caches of (bin means, within-bin variance) and midpoint quantiles, keyed by (n, dtype, device).
_TARGET_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _target_cache(target: Target) -> dict:
    try:
        return _TARGET_CACHE.setdefault(target, {})
    except TypeError:  # unhashable user subclass: no caching
        return {}


def _bin_terms(
    target: Target, n: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, float]:
    """Bin means m_i (shape (n,)) and the target's within-bin variance E[Y²] − mean_i m_i² (a float ≥ 0)."""
    cache = _target_cache(target)
    key = ("bins", n, dtype, device)
    if key not in cache:
        m64 = target.bin_means(n, torch.float64)
        within = max(float(target.second_moment()) - float((m64 * m64).mean()), 0.0)
        cache[key] = (m64.to(dtype=dtype, device=device), within)
    return cache[key]


def _midpoint_quantiles(target: Target, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``target.quantile((i + 1/2) / n)`` for i = 0..n-1: shape (n,)."""
    cache = _target_cache(target)
    key = ("mid", n, dtype, device)
    if key not in cache:
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        cache[key] = target.quantile(u).to(dtype=dtype, device=device)
    return cache[key]


def w2_to_target(labels: torch.Tensor, target: Target | str | dict) -> torch.Tensor:
    r"""Exact squared 2-Wasserstein distance between each row's empirical distribution and a target.

    Parameters
    ----------
    labels : (N, n) tensor, each row a label set y_1..y_n (weights 1/n).
    target : a :class:`~learnscope.targets.Target` (or a spec accepted by ``make_target``).

    Returns
    -------
    (N,) tensor, in squared label units. With sorted labels :math:`y_{(1)} \le \dots \le y_{(n)}` and the
    target's bin means :math:`m_i = n\int_{(i-1)/n}^{i/n} Q(u)\,du`,

    .. math::

        W_2^2 = \int_0^1 \big(F_y^{-1}(u) - Q(u)\big)^2 du
              = \frac{1}{n}\sum_i y_{(i)}^2 - \frac{2}{n}\sum_i y_{(i)} m_i + \mathbb{E}[Y^2]
              = \frac{1}{n}\sum_i \big(y_{(i)} - m_i\big)^2
                + \Big(\mathbb{E}[Y^2] - \frac{1}{n}\sum_i m_i^2\Big).

    The last form is evaluated (a non-negative sum plus the target's within-bin variance, precomputed in
    float64 and cached per (n, dtype)), so there is no cancellation. The gradient is
    :math:`\partial W_2^2/\partial y_{(i)} = 2(y_{(i)} - m_i)/n`.
    """
    labels = _check_labels("labels", labels)
    target = make_target(target)
    n = labels.shape[1]
    m, within = _bin_terms(target, n, labels.dtype, labels.device)
    y = torch.sort(labels, dim=1).values
    return (((y - m) ** 2).mean(dim=1) + within).clamp(min=0.0)


@lru_cache(maxsize=64)
def _merged_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the quantile grids {i/n} and {j/m}: for each piece of (0, 1) on which both empirical quantile
    functions are constant, the index into the sorted x, the index into the sorted y, and the piece length."""
    big = math.lcm(n, m)  # breakpoints as exact integers k/big
    edges = np.union1d(np.arange(n, dtype=np.int64) * (big // n), np.arange(m, dtype=np.int64) * (big // m))
    edges = np.append(edges, big)
    lo = edges[:-1]
    return lo * n // big, lo * m // big, np.diff(edges) / big


def w2_between_samples(labels: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    r"""Exact squared 2-Wasserstein distance between two 1-D empirical distributions per row.

    Parameters
    ----------
    labels : (N, n) tensor; each row has weights 1/n.
    samples : (N, m) tensor, or (m,) / (1, m) shared by every row; weights 1/m.

    Returns
    -------
    (N,) tensor. The quantile functions are step functions with breaks at i/n and j/m; on the merged grid
    :math:`0 = t_0 < t_1 < \dots < t_K = 1` both are constant, so

    .. math::

        W_2^2 = \int_0^1 \big(F_x^{-1}(u) - F_s^{-1}(u)\big)^2 du
              = \sum_{k} (t_{k+1} - t_k)\,
                \big(x_{(\lfloor n t_k \rfloor)} - s_{(\lfloor m t_k \rfloor)}\big)^2

    (0-based order statistics); for n = m this is :math:`\frac1n\sum_i (x_{(i)} - s_{(i)})^2`.
    Differentiable in both arguments.
    """
    labels = _check_labels("labels", labels)
    samples = _check_samples("samples", samples, labels)
    n, m = labels.shape[1], samples.shape[1]
    x = torch.sort(labels, dim=1).values
    s = torch.sort(samples, dim=1).values
    if n == m:
        return ((x - s) ** 2).mean(dim=1)
    ix, iy, w = _merged_grid(n, m)
    dev = labels.device
    ix_t, iy_t = torch.from_numpy(ix).to(dev), torch.from_numpy(iy).to(dev)
    w_t = torch.from_numpy(w).to(dtype=labels.dtype, device=dev)
    return (((x[:, ix_t] - s[:, iy_t]) ** 2) * w_t).sum(dim=1)


def w2_between_targets(p: Target | str | dict, q: Target | str | dict, nodes: int = 2000) -> float:
    r"""Squared 2-Wasserstein distance between two 1-D target distributions (for tests and docs).

    .. math:: W_2^2(p, q) = \int_0^1 \big(Q_p(u) - Q_q(u)\big)^2 du,

    by composite 16-point Gauss–Legendre quadrature in u on ``nodes // 16`` equal panels, the two end
    panels refined geometrically toward u = 0 and 1 (so about ``nodes + 480`` evaluations).
    """
    nodes = check_positive_int("nodes", nodes)
    p, q = make_target(p), make_target(q)
    u, w = unit_interval_rule(max(1, nodes // 16))
    ut = torch.from_numpy(u)
    d = (p.quantile(ut) - q.quantile(ut)).numpy()
    return float((d * d) @ w)


# --------------------------------------------------------------------------------------------------------
# energy distance


def _safe_pairwise_norm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x_i − y_j| for x (N, n, D), y (N, m, D): (N, n, m); zero (not NaN) gradient at coincident points."""
    diff = x[:, :, None, :] - y[:, None, :, :]
    if diff.shape[-1] == 1:
        return diff[..., 0].abs()  # d|t|/dt at 0 is 0 in torch
    sq = (diff * diff).sum(-1)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Energy distance between the uniform empirical measures of x and y, per row.

    Parameters
    ----------
    x : (N, n) 1-D values or (N, n, D) points.
    y : (N, m) / (m,) for 1-D x, (N, m, D) / (m, D) otherwise (a shared cloud is broadcast).

    Returns
    -------
    (N,) tensor, in label units. With V-statistics (all pairs, including i = j), as geomloss'
    ``SamplesLoss("energy")``:

    .. math::

        \mathrm{E}(x, y) = \frac{1}{nm}\sum_{i,j}|x_i - y_j| - \frac{1}{2n^2}\sum_{i,i'}|x_i - x_{i'}|
                           - \frac{1}{2m^2}\sum_{j,j'}|y_j - y_{j'}|.

    In 1-D this equals :math:`\int (F_x - F_y)^2\,dt` (half of Székely's :math:`2E|X-Y| - E|X-X'| -
    E|Y-Y'|`). The gradient of |·| at coincident points is taken as 0 (no NaN).
    """
    x, y = _check_clouds(x, y)
    xy = _safe_pairwise_norm(x, y).mean(dim=(1, 2))
    xx = _safe_pairwise_norm(x, x).mean(dim=(1, 2))
    yy = _safe_pairwise_norm(y, y).mean(dim=(1, 2))
    return xy - 0.5 * xx - 0.5 * yy


# --------------------------------------------------------------------------------------------------------
# Sinkhorn divergence


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


def _softmin_k(eps: float, k: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """:func:`_softmin` with the scaled cost k = C / ε precomputed."""
    return -eps * _logsumexp(h[:, None, :] - k, dim=2)


_OMEGA = 1.9  # over-relaxation of the refinement iterations (Thibault et al. 2017: converges for 0 < ω < 2)
_REFINE_TOL = 1e-3  # stop when potentials move by < 1e-3 ε: the plan then changes by ~0.1 %


def _epsilon_schedule(diameter: float, blur: float, scaling: float, p: float, max_iter: int) -> list[float]:
    """ε-scaling: diameter^p, then × scaling^p per step down to blur^p (at most ``max_iter`` values;
    a longer schedule is re-spaced geometrically to fit)."""
    diameter = max(diameter, blur)
    start, stop, step = p * math.log(diameter), p * math.log(blur), p * math.log(scaling)
    logs = list(np.arange(start, stop, step)) if start > stop else []
    if len(logs) + 1 > max_iter:
        logs = list(np.linspace(start, stop, max_iter))[:-1]
    return [math.exp(e) for e in logs] + [blur**p]


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float = 0.05,
    scaling: float = 0.9,
    p: int = 2,
    max_iter: int = 200,
    *,
    refine: bool = True,
) -> torch.Tensor:
    r"""Debiased Sinkhorn divergence between uniform empirical measures, per row (geomloss conventions).

    Parameters
    ----------
    x : (N, n) 1-D values or (N, n, D) points (weights 1/n).
    y : (N, m) / (m,) for 1-D x, (N, m, D) / (m, D) otherwise (weights 1/m; a shared cloud is broadcast).
    blur : ε^{1/p}, the length scale below which the divergence stops resolving detail.
    scaling : ε-scaling ratio of successive blur values, in (0, 1); closer to 1 is slower and more accurate.
    p : cost exponent, :math:`C(x, y) = |x - y|^p / p` (p = 2 gives ½|x − y|², so S_ε → W₂²/2 as blur → 0).
    max_iter : cap on the total number of Sinkhorn iterations (annealing + refinement at the final ε).
    refine : iterate at the final ε until the potentials converge (default). ``False`` stops after the
        annealing schedule, which is exactly geomloss' ``SamplesLoss("sinkhorn", backend="tensorized")``
        algorithm; at small blur that is not converged (a few % low at scaling 0.9, blur 0.05 in 1-D).

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

    Algorithm (log domain, weights a = 1/n, b = 1/m):

    1. ε-scaling as geomloss: ε runs from diameter^p down to blur^p, × scaling^p per iteration, with the
       symmetric averaged updates :math:`f \leftarrow \tfrac12\big(f + T_\varepsilon(g)\big)`,
       :math:`T_\varepsilon(g)_i = -\varepsilon \log \sum_j b_j e^{(g_j - C_{ij})/\varepsilon}`
       (likewise for g and for the two symmetric problems).
    2. Refinement at ε = blur^p (``refine=True``): over-relaxed alternating updates
       :math:`f \leftarrow (1-\omega)f + \omega T_\varepsilon(g)`, :math:`g \leftarrow (1-\omega)g + \omega
       T_\varepsilon(f)` with ω = 1.9 (dropped to 1 if the iterates blow up; the symmetric problems keep
       the averaged update, which converges in a few steps), until every potential moves by less than
       1e-3·ε, so that the plan :math:`\pi_{ij} = a_i b_j e^{(f_i + g_j - C_{ij})/\varepsilon}` changes by
       ~0.1 % (a float32 rounding floor applies), or ``max_iter`` is reached.
    3. :math:`S_\varepsilon = \langle a, f_{ba} - f_{aa} \rangle + \langle b, g_{ab} - g_{bb} \rangle`
       after one last update taken with autograd, each cost matrix differentiated in its row points only
       (envelope theorem, as geomloss): the exact gradient at convergence, e.g. for p = 2
       :math:`\partial S/\partial x_i = \sum_j \pi_{ij}(x_i - y_j) - \sum_k \pi^{aa}_{ik}(x_i - x_k)`.

    Cost: O(N n m) memory and time per iteration; at blur 0.05 about 40–50 annealing iterations plus up to
    ``max_iter`` minus those for the refinement.
    """
    x, y = _check_clouds(x, y)
    blur = check_positive("blur", blur)
    scaling = check_positive("scaling", scaling)
    if not scaling < 1:
        raise ConfigError(f"sinkhorn scaling must be in (0, 1), got {scaling}")
    p = check_positive("p", p)
    max_iter = check_positive_int("max_iter", max_iter)
    n, m = x.shape[1], y.shape[1]
    a_log = torch.full((x.shape[0], n), -math.log(n), dtype=x.dtype, device=x.device)
    b_log = torch.full((x.shape[0], m), -math.log(m), dtype=x.dtype, device=x.device)

    xd, yd = x.detach(), y.detach()
    with torch.no_grad():
        lo = torch.minimum(xd.amin(dim=(0, 1)), yd.amin(dim=(0, 1)))
        hi = torch.maximum(xd.amax(dim=(0, 1)), yd.amax(dim=(0, 1)))
        diameter = float((hi - lo).norm())
        schedule = _epsilon_schedule(diameter, blur, scaling, p, max_iter)
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
        if refine:
            # the floor keeps float32 from chasing its own rounding noise (potentials are O(max cost))
            tol = max(_REFINE_TOL * eps, 32 * torch.finfo(x.dtype).eps * max(diameter**p / p, eps))
            omega, smallest = _OMEGA, math.inf
            k_xy, k_yx, k_xx, k_yy = (c.div_(eps) for c in (c_xy, c_yx, c_xx, c_yy))  # in place: saves memory
            for _ in range(max_iter - len(schedule)):
                f_new = (1 - omega) * f_ba + omega * _softmin_k(eps, k_xy, b_log + g_ab / eps)
                g_new = (1 - omega) * g_ab + omega * _softmin_k(eps, k_yx, a_log + f_new / eps)
                fa_new = 0.5 * (f_aa + _softmin_k(eps, k_xx, a_log + f_aa / eps))
                gb_new = 0.5 * (g_bb + _softmin_k(eps, k_yy, b_log + g_bb / eps))
                move = max(
                    float(v.abs().max()) for v in (f_new - f_ba, g_new - g_ab, fa_new - f_aa, gb_new - g_bb)
                )
                f_ba, g_ab, f_aa, g_bb = f_new, g_new, fa_new, gb_new
                if move < tol:
                    break
                if move > 10 * smallest:  # over-relaxation diverging: fall back to plain Sinkhorn
                    omega = 1.0
                smallest = min(smallest, move)

    # Last update with autograd: cost rows carry the gradient, potentials and cost columns are constants.
    f_ba_new = _softmin(eps, _ot_cost(x, yd, p), b_log + g_ab / eps)
    g_ab_new = _softmin(eps, _ot_cost(y, xd, p), a_log + f_ba / eps)
    f_aa_new = _softmin(eps, _ot_cost(x, xd, p), a_log + f_aa / eps)
    g_bb_new = _softmin(eps, _ot_cost(y, yd, p), b_log + g_bb / eps)
    return (f_ba_new - f_aa_new).mean(dim=1) + (g_ab_new - g_bb_new).mean(dim=1)


# --------------------------------------------------------------------------------------------------------
# geomloss backend


def _check_geomloss(scaling: float) -> object:
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
    geomloss = _check_geomloss(scaling)
    blur = check_positive("blur", blur)
    x, y = _check_clouds(x, y)
    loss = geomloss.SamplesLoss(
        "sinkhorn", p=2, blur=blur, scaling=scaling, debias=True, backend="tensorized"
    )
    return loss(x, y.contiguous())


def neg_std(labels: torch.Tensor) -> torch.Tensor:
    """The Fig 6 spread term: minus the standard deviation of each row of labels ``(N, n)`` → ``(N,)``.

    .. math:: L_d = -\\sqrt{\\tfrac1n \\textstyle\\sum_i (y_i - \\bar y)^2}

    Population std (ddof = 0; the authors' ``torch.std`` uses n − 1, a factor √(n/(n−1)) ≈ 1.0005 at n = 1000).
    With labels bounded in [0, 1] it is smallest, −½, for a half-and-half labelling by 0 and 1.
    """
    labels = _check_labels("labels", labels)
    return -labels.std(dim=1, unbiased=False)


# --------------------------------------------------------------------------------------------------------
# factory

_PARAMS: dict[str, tuple[str, ...]] = {
    "w2": (),
    "sinkhorn": ("blur", "scaling", "p", "max_iter", "refine"),
    "energy": (),
    "geomloss_sinkhorn": ("blur", "scaling"),
}


def make_distance(
    name: str, **params: object
) -> Callable[[torch.Tensor, Target | torch.Tensor], torch.Tensor]:
    """A distance ``dist(labels, target) -> (N,)`` for labels ``(N, n)`` (or a spread term of :data:`SPREADS`, which
    ignores the target).

    ``target`` is a :class:`~learnscope.targets.Target` or a tensor of target samples ``(m,)`` / ``(N, m)``.
    For ``"w2"`` a Target uses the exact :func:`w2_to_target` and samples :func:`w2_between_samples`. The
    other distances compare with samples directly, and replace a Target by its n midpoint quantiles
    :math:`Q((i + 1/2)/n)`, i = 0..n-1 (n = number of labels per row). ``params`` go to the distance
    (``blur``, ``scaling``, ``p``, ``max_iter``, ``refine`` for ``"sinkhorn"``; ``blur``, ``scaling`` for
    ``"geomloss_sinkhorn"``).
    """
    if name in SPREADS:
        if params:
            raise UnknownNameError(f"parameter of {name!r}", str(next(iter(params))), ["(none)"])

        def spread(labels: torch.Tensor, _target: object = None) -> torch.Tensor:
            return neg_std(labels)

        return spread
    if name not in DISTANCES:
        raise UnknownNameError("distance", str(name), DISTANCES + SPREADS)
    for key in params:
        if key not in _PARAMS[name]:
            raise UnknownNameError(f"parameter of distance {name!r}", str(key), _PARAMS[name] or ["(none)"])
    if name == "geomloss_sinkhorn":
        _check_geomloss(params.get("scaling", 0.9))
    if name == "sinkhorn":
        # validate eagerly on a trivial problem, so bad values fail at construction, not mid-training
        sinkhorn_divergence(torch.zeros(1, 1), torch.zeros(1), **params)

    if name == "w2":

        def w2(labels: torch.Tensor, target: Target | torch.Tensor) -> torch.Tensor:
            if isinstance(target, (Target, str, dict)):
                return w2_to_target(labels, target)
            return w2_between_samples(labels, target)

        return w2

    fn: Callable[..., torch.Tensor] = {
        "sinkhorn": sinkhorn_divergence,
        "energy": energy_distance,
        "geomloss_sinkhorn": geomloss_sinkhorn,
    }[name]

    def dist(labels: torch.Tensor, target: Target | torch.Tensor) -> torch.Tensor:
        labels = _check_labels("labels", labels)
        if isinstance(target, (Target, str, dict)):
            target = make_target(target)
            target = _midpoint_quantiles(target, labels.shape[1], labels.dtype, labels.device)
        else:
            target = _check_samples("target samples", target, labels)
        return fn(labels, target, **params)

    dist.__name__ = name
    return dist
