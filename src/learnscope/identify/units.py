"""Which units a measurement records: how many (:func:`unit_count`) and which ones (:func:`unit_subset`).

A fixed random subset, the same at every checkpoint (a chronic recording); the per-session subsets of unmatched
conditions are :func:`learnscope.identify.measurement.session_unit_subset`. Re-exported by
:mod:`learnscope.identify.observables`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.conditions import SMALL_LAYER_POLICIES, check_frac, check_seed
from learnscope.validation import check_positive_int, check_scalar


def unit_count(n_units: int, frac: float | None = None, units: int | None = None,
               small_layers: str = "error") -> int:
    r"""The number of units recorded from a tensor of ``n_units`` units.

    ``units`` set: ``units``, or with ``units > n_units`` every unit (``small_layers="all"``) or a
    :class:`ConfigError` (``"error"``). Else ``frac`` set: :math:`\max(1, \lceil \mathrm{frac}\cdot U\rceil)`
    (``frac·U`` rounded to 9 decimals first, see :func:`unit_subset`). Else ``n_units``."""
    n_units = check_positive_int("n_units", n_units)
    if units is not None:
        units = check_scalar("units", units, int, low=1)
        if units > n_units:
            if small_layers == "error":
                raise ConfigError(f"units = {units} is more than the {n_units} units of the recorded tensor; lower "
                                  "units or set small_layers = \"all\" to record every unit of smaller layers")
            if small_layers not in SMALL_LAYER_POLICIES:
                raise UnknownNameError("small_layers", str(small_layers), SMALL_LAYER_POLICIES)
            return n_units
        return units
    if frac is not None:
        check_frac(frac)
        return max(1, math.ceil(round(float(frac) * n_units, 9)))
    return n_units


def unit_subset(n_units: int, frac: float | None, seed: int, *, units: int | None = None,
                small_layers: str = "error") -> np.ndarray | None:
    r"""Indices of the units kept when recording a fraction ``frac`` (or an absolute count ``units``) of
    ``n_units`` units.

    .. math:: S = \mathrm{RandomState(seed).permutation}(U)[:k],\qquad k = \max(1, \lceil \mathrm{frac}\cdot U\rceil)

    or :math:`k` = ``units`` (see :func:`unit_count`), so ``units = k`` keeps exactly the units of a ``frac``
    with :math:`\lceil \mathrm{frac}\cdot U\rceil = k`. The subset depends only on ``(n_units, k, seed)``, so the
    same units are kept at every checkpoint (a chronic recording). ``frac·U`` is rounded to 9 decimals before the
    ceiling so that float noise does not add a unit (``0.07 * 100`` is ``7.000000000000001`` in floating point;
    this keeps 7 units, not 8).

    Returns:
        ``int64`` array of shape ``(k,)`` in permutation order (read-only, cached), or ``None`` if neither
        ``frac`` nor ``units`` is set, or ``units >= n_units`` (every unit, exactly as without subsampling).
    """
    n_units = check_positive_int("n_units", n_units)
    check_frac(frac)
    check_seed(seed)
    if frac is None and units is None:
        return None
    k = unit_count(n_units, frac, units, small_layers)
    if units is not None and k >= n_units:
        return None
    return _unit_subset(n_units, k, int(seed))


@functools.lru_cache(maxsize=256)
def _unit_subset(n_units: int, k: int, seed: int) -> np.ndarray:
    idx = np.random.RandomState(seed).permutation(n_units)[:k].astype(np.int64)
    idx.setflags(write=False)
    return idx
