"""The theory's ranking of a spectrum's eigenspaces and the assignment test of found functions (wave2 §2.3).

* :func:`eigenspace_table` — the non-constant eigenspaces, most learnable first, with each one's relative gap to the
  next and its tie group (eigenspaces chained by gaps below :data:`ILL_POSED_GAP`, or on a Nyström spectrum within
  :data:`NYSTROM_SE_TIE` standard errors of :func:`eigenvalue_errors`).
* :func:`assignment_slots` / :func:`assignment` — f_j should lie in the j-th most learnable non-constant eigenspace,
  counting multiplicity; the metric is the energy of f_j in that eigenspace, "ill-posed" where it is tied.

Pure functions of a :class:`~learnscope.theory.spectra.Spectrum` (and a
:class:`~learnscope.theory.eigenlearning.Prediction`); JSON-able dicts. Re-exported by
:mod:`learnscope.theory.overlay`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int, check_scalar

#: Two eigenspaces whose relative eigen-gap (λ_a − λ_b)/λ_a is below this are tied: which of them f_j lies in is
#: "ill-posed". Why 0.1: (1) a Nyström spectrum from M ≤ 2000 samples splits a degenerate eigenspace by a relative
#: amount of order √(2/M) ≈ 3–5 % per eigenvalue (more for the spread of a 3-fold space), so smaller gaps are not
#: resolved by the spectrum itself; (2) where λ ≫ κ the predicted MSE of a unit function is ≈ E₀ (κ/λ)², so a 10 %
#: gap changes it by ≲ 20 % — no more than the few-shot MSE's own spread over seeds and the noise of a meta-gradient
#: averaged over a handful of learners, i.e. a search cannot be expected to decide it.
ILL_POSED_GAP = 0.1
#: On a Nyström spectrum two eigenvalues within this many combined standard errors (:func:`eigenvalue_errors`) are
#: also tied: a degenerate eigenspace (the two axes of the disc under a linear kernel) is split by sampling by up to
#: ~2–3 standard errors of each eigenvalue, so 3 (se_a + se_b) keeps such a split from being read as a ranking.
NYSTROM_SE_TIE = 3.0
#: Eigenvalues at most this fraction of the largest are zero (and tied with each other): Nyström round-off, the
#: exact zeros of odd degrees ≥ 3 of the arc-cosine kernel.
ZERO_EIGENVALUE = 1e-10
#: The assignment bar of wave2 §2.3: f_j's energy in its predicted eigenspace ≥ 0.95 where the gap is large.
ENERGY_BAR = 0.95
#: The label of a slot past every eigenfunction a spectrum holds (a Nyström spectrum keeps only modes with λ > 0).
NULL_SPACE = "null space (λ = 0)"


def relative_gap(a: float, b: float, zero: float) -> float:
    """(λ_hi − λ_lo)/λ_hi of two eigenvalues (order-free, ≥ 0); 0 when both are at most ``zero`` (both zero)."""
    hi, lo = max(a, b), min(a, b)
    if hi <= zero:
        return 0.0
    return float((hi - max(lo, 0.0)) / hi)


def eigenvalue_errors(spectrum: Any) -> np.ndarray:
    """Standard error of each eigenvalue estimate, ``(K,)``: 0 for Funk–Hecke (exact); for Nyström the Monte Carlo
    error of λ_i = mean_x (k φ_i)(x) φ_i(x) over M samples, se_i = λ_i · std(φ_i²) / √M (φ_i of unit mean square at
    the samples), the first-order error of a simple eigenvalue."""
    lam = np.asarray(spectrum.eigenvalues, dtype=float)
    vec = getattr(spectrum, "eigenvectors", None)
    if spectrum.kind != "nystrom" or vec is None:
        return np.zeros_like(lam)
    vec = np.asarray(vec, dtype=float)
    return lam * (vec**2).std(axis=0) / math.sqrt(vec.shape[0])


def _ranked(spectrum: Any, errors: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """(ranked non-constant level indices, their eigenvalues, multiplicities, the zero threshold, standard errors);
    ``errors`` (K,) overrides :func:`eigenvalue_errors` (e.g. zeros for a Nyström spectrum on a quadrature set)."""
    order = np.asarray(spectrum.ranking(skip_constant=True), dtype=int)
    lam = np.asarray(spectrum.eigenvalues, dtype=float)
    mult = np.asarray(spectrum.multiplicity, dtype=int)
    if order.size == 0:
        raise ConfigError("the spectrum has no non-constant eigenspace; nothing to rank")
    zero = ZERO_EIGENVALUE * max(float(np.abs(lam).max()), 1e-300)
    se = eigenvalue_errors(spectrum) if errors is None else np.asarray(errors, dtype=float)
    return order, lam[order], mult[order], zero, se[order]


def _tied(a: float, b: float, se_a: float, se_b: float, zero: float, gap: float) -> bool:
    """Two eigenvalues are tied when their relative gap is below ``gap`` or the gap is within
    :data:`NYSTROM_SE_TIE` combined standard errors of the estimates (a Nyström spectrum's sampling noise)."""
    hi = max(a, b)
    return relative_gap(a, b, zero) < gap or abs(a - b) <= NYSTROM_SE_TIE * (se_a + se_b) and hi > zero


def _tie_groups(lam_ranked: np.ndarray, zero: float, gap: float, se: np.ndarray | None = None) -> np.ndarray:
    """Tie-group id per ranked eigenspace: consecutive eigenspaces share a group when they are :func:`_tied`."""
    se = np.zeros_like(lam_ranked) if se is None else se
    ids = np.zeros(len(lam_ranked), dtype=int)
    for r in range(1, len(lam_ranked)):
        tied = _tied(lam_ranked[r - 1], lam_ranked[r], se[r - 1], se[r], zero, gap)
        ids[r] = ids[r - 1] if tied else ids[r - 1] + 1
    return ids


def _label(spectrum: Any, level: int) -> str:
    labels = getattr(spectrum, "labels", None)
    return str(labels[level]) if labels is not None and level < len(labels) else f"level {level}"


def unit_mse(prediction: Any) -> np.ndarray:
    """E₀ (1 − L_i)² per level: the predicted MSE of a unit-norm function in level i, shape (K,)."""
    return float(prediction.e0) * (1.0 - np.asarray(prediction.learnability, dtype=float)) ** 2


def eigenspace_table(spectrum: Any, prediction: Any | None = None, *, top: int | None = 12,
                     gap: float = ILL_POSED_GAP, errors: np.ndarray | None = None) -> list[dict]:
    """The theory's ranking of the non-constant eigenspaces, most learnable first (the order of λ, which is the
    order of L_i = λ_i/(λ_i + κ) at any n and ridge).

    One dict per eigenspace: ``rank`` (1-based), ``level`` (index into the spectrum), ``label``, ``eigenvalue``,
    ``multiplicity``, ``gap_to_next`` = (λ_r − λ_{r+1})/λ_r (NaN for the last shown), ``tie_group`` (eigenspaces
    chained by ties share it: relative gap below ``gap``, or on a Nyström spectrum within :data:`NYSTROM_SE_TIE`
    combined standard errors), ``tied_with_next``, ``standard_error`` of λ (0 when exact), and with a
    ``prediction`` ``learnability`` L and ``unit_mse`` = E₀ (1 − L)². ``top`` limits the rows (None: all).
    """
    check_scalar("gap", gap, float, low=0.0, high=1.0)
    order, lam, mult, zero, se = _ranked(spectrum, errors)
    groups = _tie_groups(lam, zero, gap, se)
    unit = unit_mse(prediction) if prediction is not None else None
    rows = []
    shown = len(order) if top is None else min(int(top), len(order))
    for r in range(shown):
        level = int(order[r])
        row = {"rank": r + 1, "level": level, "label": _label(spectrum, level), "eigenvalue": float(lam[r]),
               "multiplicity": int(mult[r]),
               "gap_to_next": relative_gap(lam[r], lam[r + 1], zero) if r + 1 < len(order) else float("nan"),
               "tie_group": int(groups[r]), "tied_with_next": bool(r + 1 < len(order) and groups[r + 1] == groups[r]),
               "standard_error": float(se[r])}
        if prediction is not None:
            row["learnability"] = float(np.asarray(prediction.learnability)[level])
            row["unit_mse"] = float(unit[level])
        rows.append(row)
    return rows


def assignment_slots(spectrum: Any, count: int, *, gap: float = ILL_POSED_GAP,
                     errors: np.ndarray | None = None) -> list[dict]:
    """Where the theory puts f_1 … f_count: the j-th most learnable non-constant eigenspace, counting multiplicity
    (on S² with the order-1 arc-cosine kernel f1–f3 in degree 1, f4–f8 in degree 2, never in a zero eigenspace while
    a positive one is left). Slots past every eigenfunction the spectrum holds are the kernel's null space
    (``level`` None, label :data:`NULL_SPACE`).

    Per slot: ``index`` j, ``level``, ``label``, ``eigenvalue``, ``ill_posed`` (its eigenspace is tied, relative gap
    < ``gap``, with a neighbour in the ranking: the earlier functions may have filled either, so which one f_j lies in
    is not decided by the theory), ``tied_levels`` (the tie group's levels, the eigenspace's own first) and
    ``gap`` (the smallest relative gap to a neighbouring eigenspace; NaN if there is none).
    """
    count = check_positive_int("count", count)
    order, lam, mult, zero, se = _ranked(spectrum, errors)
    groups = _tie_groups(lam, zero, gap, se)
    ranks = np.repeat(np.arange(len(order)), mult)[:count]
    out = []
    for j in range(len(ranks), count):  # past every eigenfunction held: the kernel's null space (λ = 0)
        out.append({"index": j + 1, "level": None, "label": NULL_SPACE, "eigenvalue": 0.0, "ill_posed": False,
                    "tied_levels": [], "gap": float("nan")})
    for j, r in enumerate(ranks):
        near = [relative_gap(lam[r], lam[q], zero) for q in (r - 1, r + 1) if 0 <= q < len(order)]
        tied = [int(order[q]) for q in np.flatnonzero(groups == groups[r]) if q != r]
        out.append({"index": j + 1, "level": int(order[r]), "label": _label(spectrum, int(order[r])),
                    "eigenvalue": float(lam[r]), "ill_posed": bool(tied), "tied_levels": [int(order[r]), *tied],
                    "gap": float(min(near)) if near else float("nan")})
    return sorted(out, key=lambda slot: slot["index"])


def energy_fractions(coefficients_sq: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Energy fractions v_i²/‖f‖², (S, K) from (S, K) coefficients and (S,) mean squares."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(coefficients_sq, dtype=float) / np.asarray(total, dtype=float)[:, None]


def assignment(spectrum: Any, coefficients_sq: Sequence[np.ndarray], totals: Sequence[np.ndarray], *,
               gap: float = ILL_POSED_GAP, bar: float = ENERGY_BAR, errors: np.ndarray | None = None) -> list[dict]:
    """The assignment test: the energy of each found f_j in the eigenspace the theory assigns it.

    coefficients_sq[j] : (S, K) energy per level of f_{j+1} for each of S seeds (``Spectrum.coefficients_sq``);
    totals[j] : (S,) its mean square ‖f‖² on the same points (so the fractions count the energy above the top level).

    Per function, the slot of :func:`assignment_slots` plus ``energy`` (S,) = v²_level/‖f‖², ``energy_tied`` (S,) =
    the fraction in the slot's tie group, ``meets_bar`` (every seed ≥ ``bar``; None where the slot is ill-posed:
    the search cannot be judged on a question the theory leaves open) and ``meets_bar_tied`` (the same for the tie
    group, which is the claim the theory does make there).
    """
    if len(coefficients_sq) != len(totals):
        raise ShapeError(f"{len(coefficients_sq)} coefficient arrays but {len(totals)} totals")
    if not coefficients_sq:
        return []
    slots = assignment_slots(spectrum, len(coefficients_sq), gap=gap, errors=errors)
    out = []
    for slot, c, t in zip(slots, coefficients_sq, totals, strict=True):
        frac = energy_fractions(np.atleast_2d(c), np.atleast_1d(t))
        if slot["level"] is None:  # the null space: the energy outside every level held
            e = e_tied = np.clip(1.0 - frac.sum(axis=1), 0.0, 1.0)
        else:
            e = frac[:, slot["level"]]
            e_tied = frac[:, slot["tied_levels"]].sum(axis=1)
        ok = bool(np.all(e >= bar))
        out.append(slot | {"energy": e.tolist(), "energy_tied": e_tied.tolist(),
                           "meets_bar": None if slot["ill_posed"] else ok,
                           "meets_bar_tied": bool(np.all(e_tied >= bar))})
    return out
