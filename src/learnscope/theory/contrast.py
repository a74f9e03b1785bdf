"""What is best possible by the theory: a search's optimality ratio and the predicted contrast of two learners.

* :func:`optimality` — measured MSE of f1 over the theory's minimum E₀ (1 − L_top)² ‖f1‖² (:func:`min_unit_mse`).
* :func:`contrast_overlay` — per-eigenspace predicted MSE ratio of learner B over learner A, the predicted best
  contrast (outside the eigenspaces both learn well), the found function's composition, the admixture note.

Pure functions of spectra and predictions; re-exported by :mod:`learnscope.theory.overlay`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from learnscope.theory.mse import predicted_mse
from learnscope.theory.ranking import energy_fractions, unit_mse

#: A learner "learns an eigenspace well" when the predicted MSE of a unit-norm function in it, E₀ (1 − L)², is at
#: most this (10 % of the function's variance left as error).
SHARED_EASY_MSE = 0.1
#: A found contrast whose energy lies at least this much in eigenspaces both learners learn well is "a small
#: admixture on a shared easy function": its ratio comes from the minority part, not a finding.
ADMIXTURE_SHARE = 0.5


def min_unit_mse(prediction: Any, spectrum: Any) -> float:
    """The theory's minimum MSE over unit-norm non-constant functions: E₀ (1 − L_top)², L_top the learnability of the
    most learnable non-constant eigenspace."""
    top = int(np.asarray(spectrum.ranking(skip_constant=True))[0])
    return float(unit_mse(prediction)[top])


def optimality(prediction: Any, spectrum: Any, measured_mse: Sequence[float], mean_square: Sequence[float],
               predicted_mse: Sequence[float] | None = None) -> dict:
    """The search's optimality ratio per seed: measured few-shot MSE of f1 over the theory's minimum for a function
    of f1's norm, E₀ (1 − L_top)² ‖f1‖² (1 = the search reached what theory says is possible; ≫ 1: stuck, or the
    theory's asymptotics are off at this n). ``predicted_mse``: the theory's MSE of f1 from its own coefficients,
    reported beside it (``predicted_ratio`` = predicted / minimum: how far f1 is from the optimum by the theory
    itself — large when a little of f1's energy sits in poorly learnt eigenspaces while the minimum is ≈ 0)."""
    floor = min_unit_mse(prediction, spectrum)
    meas, ms = np.asarray(measured_mse, dtype=float), np.asarray(mean_square, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = meas / (floor * ms)
        out = {"min_unit_mse": floor, "min_mse": (floor * ms).tolist(), "measured": meas.tolist(),
               "ratio": ratio.tolist()}
        if predicted_mse is not None:
            pred = np.asarray(predicted_mse, dtype=float)
            out |= {"predicted": pred.tolist(), "predicted_ratio": (pred / (floor * ms)).tolist()}
    return out


def contrast_overlay(spectrum_a: Any, prediction_a: Any, spectrum_b: Any, prediction_b: Any,
                     found_coefficients_sq: np.ndarray | None = None, found_totals: np.ndarray | None = None, *,
                     easy: float = SHARED_EASY_MSE, admixture: float = ADMIXTURE_SHARE) -> dict:
    """The contrast, predicted: for every eigenspace the predicted MSE ratio B/A of a unit-norm function in it,

    .. math:: r_i = \\frac{E_0^B (1 - L^B_i)^2}{E_0^A (1 - L^A_i)^2},

    which needs both spectra on the same eigenspaces (the same labels: e.g. two rotation-invariant kernels on the
    sphere, degree by degree; else ``{"available": False, "reason"}``). For two learners diagonal in one basis the
    ratio of the two quadratic forms Σ b_i v_i² / Σ a_i v_i² is largest on a single eigenspace, so the predicted best
    contrast is the eigenspace of largest r_i. ``shared_easy``: the non-constant eigenspaces both learn well
    (unit MSE ≤ ``easy`` for both); ``best`` is taken outside them (the orthogonal complement of the functions both
    learn well), ``best_unrestricted`` over all non-constant eigenspaces.

    found_coefficients_sq (S, K) and found_totals (S,): the found function per seed; adds ``found``: its composition
    (energy fraction per eigenspace, S rows), its predicted MSE under A and B and their ratio, its energy share in
    ``shared_easy`` and, where that share is ≥ ``admixture`` on some seed, a ``note`` (the ratio comes from a small
    admixture on a function both learn well: not a finding).
    """
    la, lb = list(getattr(spectrum_a, "labels", []) or []), list(getattr(spectrum_b, "labels", []) or [])
    if not la or la != lb:
        return {"available": False,
                "reason": "the two learners' spectra are not on the same eigenspaces (e.g. a Nyström spectrum), so "
                          "there is no per-eigenspace ratio"}
    ua, ub = unit_mse(prediction_a), unit_mse(prediction_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ub / ua
    order = [int(i) for i in spectrum_a.ranking(skip_constant=True)]
    shared = [i for i in order if ua[i] <= easy and ub[i] <= easy]
    rest = [i for i in order if i not in shared]

    def best_of(levels: list[int]) -> dict | None:
        finite = [i for i in levels if np.isfinite(ratio[i])]
        if not finite:
            return None
        i = max(finite, key=lambda k: ratio[k])
        return {"level": i, "label": la[i], "ratio": float(ratio[i]), "unit_mse_a": float(ua[i]),
                "unit_mse_b": float(ub[i])}

    out: dict = {
        "available": True,
        "per_eigenspace": [{"level": i, "label": la[i], "unit_mse_a": float(ua[i]), "unit_mse_b": float(ub[i]),
                            "ratio_b_over_a": float(ratio[i]), "shared_easy": i in shared} for i in order],
        "shared_easy": [la[i] for i in shared],
        "best": best_of(rest),
        "best_unrestricted": best_of(order),
        "thresholds": {"shared_easy_unit_mse": easy, "admixture_share": admixture},
    }
    if found_coefficients_sq is not None and found_totals is not None:
        c = np.atleast_2d(np.asarray(found_coefficients_sq, dtype=float))
        t = np.atleast_1d(np.asarray(found_totals, dtype=float))
        frac = energy_fractions(c, t)
        pa = np.array([predicted_mse(prediction_a, ci, ti) for ci, ti in zip(c, t, strict=True)])
        pb = np.array([predicted_mse(prediction_b, ci, ti) for ci, ti in zip(c, t, strict=True)])
        share = frac[:, shared].sum(axis=1) if shared else np.zeros(len(t))
        found = {"composition": [{la[i]: float(f[i]) for i in range(len(la)) if f[i] >= 1e-3} for f in frac],
                 "predicted_mse_a": pa.tolist(), "predicted_mse_b": pb.tolist(),
                 "predicted_ratio": (pb / pa).tolist(), "shared_easy_share": share.tolist()}
        flagged = [i for i, sh in enumerate(share) if shared and sh >= admixture]
        found["admixture_seed_indices"] = flagged
        if flagged:
            which = ", ".join(f"{share[i]:.0%}" for i in flagged)
            found["note"] = (f"on {len(flagged)} of {len(share)} seeds the found function has {which} of its energy "
                             f"in eigenspaces both learners learn well ({', '.join(la[i] for i in shared)}); there its "
                             "contrast ratio comes from a small admixture on top of a shared easy function, which is "
                             "not a finding")
        out["found"] = found
    return out
