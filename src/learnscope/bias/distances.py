"""Distribution distances between a batch of label sets and a target distribution (the term L_d).

Every function is batched over a leading axis N (one label set per row), returns shape ``(N,)`` and is
differentiable in the labels with autograd. Labels are 1-D values ``(N, n)``; :func:`energy_distance` and
:func:`sinkhorn_divergence` also take point clouds ``(N, n, D)``.

* ``"w2"`` — exact squared 2-Wasserstein distance in 1-D by sorting (the default: exact and O(n log n)),
  against a continuous :class:`~learnscope.targets.Target` (:func:`w2_to_target`) or against samples
  (:func:`w2_between_samples`).
* ``"sinkhorn"`` — debiased Sinkhorn divergence (the paper's term; geomloss conventions), in-library
  (:mod:`learnscope.bias.sinkhorn`, re-exported here).
* ``"energy"`` — energy distance (the paper's Fig. 8 term).
* ``"geomloss_sinkhorn"`` — the same Sinkhorn divergence computed by geomloss (optional extra; also in
  :mod:`learnscope.bias.sinkhorn`).

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

from learnscope.bias.inputs import check_clouds, check_labels, check_samples
from learnscope.bias.sinkhorn import check_geomloss, geomloss_sinkhorn, sinkhorn_divergence
from learnscope.errors import UnknownNameError
from learnscope.targets import Target, make_target, unit_interval_rule
from learnscope.validation import check_positive_int

DISTANCES = ("w2", "sinkhorn", "energy", "geomloss_sinkhorn")
#: Spread terms: L_d from the labels alone, with no target distribution (:func:`neg_std`, Fig 6).
SPREADS = ("neg_std",)

__all__ = ["DISTANCES", "SPREADS", "energy_distance", "geomloss_sinkhorn", "make_distance", "neg_std",
           "sinkhorn_divergence", "w2_between_samples", "w2_between_targets", "w2_to_target"]

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
    labels = check_labels("labels", labels)
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
    labels = check_labels("labels", labels)
    samples = check_samples("samples", samples, labels)
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
    x, y = check_clouds(x, y)
    if x.shape[-1] == 1:
        return _energy_1d(x[..., 0], y[..., 0])
    xy = _safe_pairwise_norm(x, y).mean(dim=(1, 2))
    xx = _safe_pairwise_norm(x, x).mean(dim=(1, 2))
    yy = _safe_pairwise_norm(y, y).mean(dim=(1, 2))
    return xy - 0.5 * xx - 0.5 * yy


def _energy_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The 1-D energy distance as :math:`\int (F_x - F_y)^2\,dt` in O((n + m) log(n + m)) instead of the O(nm)
    pairwise sums: sort the merged sample z, accumulate the weights +1/n (x) and −1/m (y) to get F_x − F_y on each
    gap, and sum :math:`c_k^2 (z_{k+1} - z_k)`. x (N, n), y (N, m) (broadcast to N); differentiable in both
    (through the sort's values), and equal to the pairwise form (tests)."""
    N, n = x.shape
    m = y.shape[-1]
    z = torch.cat([x, y.expand(N, m)], dim=1)
    w = torch.cat([x.new_full((n,), 1.0 / n), x.new_full((m,), -1.0 / m)])
    zs, order = torch.sort(z, dim=1)
    c = torch.cumsum(w[order], dim=1)[:, :-1]
    return (c * c * (zs[:, 1:] - zs[:, :-1])).sum(dim=1)


def neg_std(labels: torch.Tensor) -> torch.Tensor:
    """The Fig 6 spread term: minus the standard deviation of each row of labels ``(N, n)`` → ``(N,)``.

    .. math:: L_d = -\\sqrt{\\tfrac1n \\textstyle\\sum_i (y_i - \\bar y)^2}

    Population std (ddof = 0; the authors' ``torch.std`` uses n − 1, a factor √(n/(n−1)) ≈ 1.0005 at n = 1000).
    With labels bounded in [0, 1] it is smallest, −½, for a half-and-half labelling by 0 and 1.
    """
    labels = check_labels("labels", labels)
    return -labels.std(dim=1, unbiased=False)


# --------------------------------------------------------------------------------------------------------
# factory

_PARAMS: dict[str, tuple[str, ...]] = {
    "w2": (),
    "sinkhorn": ("blur", "scaling", "p", "max_iter", "refine", "tol"),
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
    (``blur``, ``scaling``, ``p``, ``max_iter``, ``refine``, ``tol`` for ``"sinkhorn"``; ``blur``, ``scaling`` for
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
        check_geomloss(params.get("scaling", 0.9))
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
        labels = check_labels("labels", labels)
        if isinstance(target, (Target, str, dict)):
            target = make_target(target)
            target = _midpoint_quantiles(target, labels.shape[1], labels.dtype, labels.device)
        else:
            target = check_samples("target samples", target, labels)
        return fn(labels, target, **params)

    dist.__name__ = name
    return dist
