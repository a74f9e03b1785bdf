r"""The statistics of one observed tensor (identify-spec §4.2), computed in float64 on ``U = f(T)``.

* weights reduce over **all** axes; activations ``(N, units…)`` reduce over all but the batch axis, giving one
  value per example, and the stored number is the **mean over the probe batch** (the original's aggregation is
  not released; the spec presumes this mean);
* ``mean`` and ``var`` are population moments (``tf.nn.moments``);
* ``median`` / ``thirdquartile`` are the 50th / 75th percentiles with TF's ``interpolation="nearest"`` rule,
  see :func:`percentile_nearest`;
* ``norm`` is the L2 norm of ``reshape(U, [-1, prod(shape[1:])])`` along axis 1: for activations the per-example
  norm over all units (then batch-averaged); for weights with ``weight_norm_mode="rows"`` a vector of norms of
  the first-axis slices, stored as their **mean** (for a subsampled weight, which is flattened to ``(1, k)``,
  this is the L2 norm of the kept synapses, as in the original, §8 item 3); with ``"frobenius"`` always the
  full L2 norm of the observed tensor;
* ``skew = 3 (mean − median) / std`` (Pearson's second coefficient), ``kurtosis = E[(U − mean)⁴] / var²`` (not
  excess). A zero std gives NaN (or ±inf) for these two, never an exception; non-finite values are passed
  through, not raised, because diverging networks are part of the data (that is why the spec's admissible set
  excludes them).

:func:`activity_statistics` is the one code path from an activity array to the ``act*`` statistics, for simulated
and recorded activity alike. All re-exported by :mod:`learnscope.identify.observables`.
"""

from __future__ import annotations

import numpy as np
import torch

from learnscope.errors import ShapeError, UnknownNameError
from learnscope.identify.obs_names import FUNCTIONS, MEASURES, STATISTICS, obs_name

WEIGHT_NORM_MODES: tuple[str, ...] = ("rows", "frobenius")


def percentile_index(n: int, q: float) -> int:
    r"""Ascending sort index of TF's ``percentile(x, q, interpolation="nearest")`` for ``n`` values.

    TF (``tf.contrib.distributions.percentile``) sorts **descending** (``top_k``) and takes index
    :math:`\mathrm{round}((n-1)(1 - q/100))` with round-half-to-even, computed in float64. In ascending order:

    .. math:: i(n, q) = (n - 1) - \mathrm{round\_half\_even}\big((n-1)(1 - q/100)\big)

    This equals numpy's ``method="nearest"`` (:math:`\mathrm{round\_half\_even}((n-1)q/100)`) except when
    :math:`(n-1)q/100` is a half-integer and ``n`` is even, where the two pick opposite neighbours: e.g. the
    median of ``[1, 2, 3, 4]`` is 2 here and 3 in numpy.
    """
    idx_desc = round((n - 1) * (1.0 - q / 100.0))  # Python's round is round-half-to-even, like tf.round
    return (n - 1) - min(max(idx_desc, 0), n - 1)


def percentile_nearest(x: torch.Tensor, q: float) -> torch.Tensor:
    """TF-``nearest`` percentile of ``x`` along its last axis (see :func:`percentile_index`); shape ``x.shape[:-1]``."""
    n = x.shape[-1]
    return torch.kthvalue(x, percentile_index(n, q) + 1, dim=-1).values


def tensor_statistics(T: torch.Tensor, measure: str, weight_norm_mode: str = "rows") -> dict[str, float]:
    """The 21 statistics (3 functions × 7 statistics) of one observed tensor, keyed by observable name.

    Args:
        T: the observed tensor. ``measure="weight"``: any shape with ``ndim >= 1`` (its first axis defines the
            rows of ``norm`` under ``weight_norm_mode="rows"``). ``measure="act"``: shape ``(N, units...)``.
        measure: ``"weight"`` or ``"act"``.
        weight_norm_mode: ``"rows"`` (mean of first-axis slice norms, the original) or ``"frobenius"`` (full L2
            norm); ignored for activations.

    Returns:
        ``{f"{measure}{function}_{statistic}": value}`` for the 21 names, in :data:`ALL_OBS` order. Values are
        Python floats computed in float64 (see the module docstring for the exact definitions).
    """
    if measure not in MEASURES:
        raise UnknownNameError("measure", measure, MEASURES)
    if weight_norm_mode not in WEIGHT_NORM_MODES:
        raise UnknownNameError("weight_norm_mode", weight_norm_mode, WEIGHT_NORM_MODES)
    min_ndim = 1 if measure == "weight" else 2
    if T.ndim < min_ndim or T.numel() == 0:
        layout = "(at least one axis, non-empty)" if measure == "weight" else "(N, units...) non-empty"
        raise ShapeError(f"{measure} tensor must have shape {layout}, got {tuple(T.shape)}")
    return member_statistics(T[None], measure, weight_norm_mode)[0]


def member_statistics(T: torch.Tensor, measure: str, weight_norm_mode: str = "rows") -> list[dict[str, float]]:
    """:func:`tensor_statistics` of each ``T[e]`` of a stack ``(E, …)`` in one pass: ``[stats of T[0], …]``.

    The same definitions (module docstring of :mod:`~learnscope.identify.obs_stats`) with every reduction over the
    member's own axes; the values equal ``tensor_statistics(T[e], measure, weight_norm_mode)`` up to the float64
    rounding of batched reductions.
    """
    if measure not in MEASURES:
        raise UnknownNameError("measure", measure, MEASURES)
    if weight_norm_mode not in WEIGHT_NORM_MODES:
        raise UnknownNameError("weight_norm_mode", weight_norm_mode, WEIGHT_NORM_MODES)
    min_ndim = 2 if measure == "weight" else 3
    if T.ndim < min_ndim or T.numel() == 0:
        raise ShapeError(f"a stack (E, …) of {measure} tensors is needed, got {tuple(T.shape)}")
    T = T.detach().to(torch.float64)
    E = T.shape[0]
    flat_raw = T.reshape(E, 1, -1) if measure == "weight" else T.reshape(E, T.shape[1], -1)
    n = flat_raw.shape[-1]
    k50, k75 = percentile_index(n, 50.0) + 1, percentile_index(n, 75.0) + 1
    quantiles = {}
    for function, V in (("raw", flat_raw), ("abs", flat_raw.abs())):
        # one introselect pass for both order statistics (~1.5-2x faster than two torch.kthvalue calls)
        part = torch.from_numpy(np.partition(V.numpy(), [k50 - 1, k75 - 1], axis=-1))
        quantiles[function] = (part[..., k50 - 1], part[..., k75 - 1])
    # x*x == |x|*|x| exactly and squaring is monotone on |x|, so the order statistics of x² are those of |x|, squared
    quantiles["sq"] = (quantiles["abs"][0].square(), quantiles["abs"][1].square())
    columns: dict[str, list[float]] = {}
    for function in FUNCTIONS:
        U = T if function == "raw" else (T.abs() if function == "abs" else T * T)
        flat = U.reshape(flat_raw.shape)
        if measure == "act":
            norm = flat.norm(dim=-1)
        elif weight_norm_mode == "rows":
            norm = U.reshape(E, U.shape[1], -1).norm(dim=-1)
        else:
            norm = U.reshape(E, -1).norm(dim=-1).reshape(E, 1)
        mean = flat.mean(dim=-1)
        centred = flat - mean[..., None]
        var = centred.square().mean(dim=-1)
        median, third = quantiles[function]
        values = {"mean": mean, "median": median, "thirdquartile": third, "var": var,
                  "skew": 3.0 * (mean - median) / var.sqrt(),
                  "kurtosis": centred.square().square().mean(dim=-1) / var.square()}
        # one batch mean for the statistics of one shape ((E, N) or (E, 1)); the rows' norms may have another
        names = [st for st in STATISTICS if st != "norm"]
        per_member = dict(zip(names, torch.stack([values[st] for st in names]).mean(dim=-1).tolist(), strict=True))
        per_member["norm"] = norm.mean(dim=-1).tolist()
        for statistic in STATISTICS:
            columns[f"{measure}{function}_{statistic}"] = per_member[statistic]
    return [{name: col[e] for name, col in columns.items()} for e in range(E)]


def activity_statistics(act: np.ndarray | torch.Tensor) -> dict[str, float] | dict[str, np.ndarray]:
    """The 21 ``act*`` statistics (3 functions × 7 statistics, :func:`tensor_statistics` with ``measure="act"``)
    of recorded activity: the one code path for simulated networks and for recordings.

    Args:
        act: ``(probes, units)``, one session: row ``p`` is the response of every recorded unit to probe
            stimulus ``p`` (rates, spike counts / window, ΔF/F, … as the caller measured them); or
            ``(checkpoints, probes, units)``, several sessions with the same number of probes and units (sessions
            with different unit counts: call once per session). numpy or torch, any real dtype (computed in
            float64). Non-finite values pass through to the statistics.

    Returns:
        ``{name: value}`` for the 21 ``act*`` names in :data:`ALL_OBS` order: Python floats for a 2-D input,
        float64 arrays of shape ``(checkpoints,)`` for a 3-D one. Each statistic is computed per probe over
        the units and then averaged over the probes (module docstring).
    """
    T = act.detach() if isinstance(act, torch.Tensor) else torch.from_numpy(np.asarray(act, dtype=np.float64))
    if T.ndim not in (2, 3) or T.shape[-1] == 0 or T.shape[-2] == 0:
        raise ShapeError(f"act must have shape (probes, units) or (checkpoints, probes, units) with probes, units "
                         f">= 1, got {tuple(T.shape)}")
    T = T.to(torch.float64)
    if T.ndim == 2:
        return tensor_statistics(T, "act")
    per_session = [tensor_statistics(T[c], "act") for c in range(T.shape[0])]
    names = [obs_name("act", f, s) for f in FUNCTIONS for s in STATISTICS]
    return {n: np.array([d[n] for d in per_session], dtype=np.float64) for n in names}
