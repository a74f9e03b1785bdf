"""The eigenlearning overlay of a kernel-type bias run: what theory predicts beside what the search found (wave2 §2.3).

:func:`run_overlay` is the hook of a kernel-type run: it takes the learner's spectrum, the found functions and the
measured few-shot MSEs (no learner is trained here; the run measures and passes the measured numbers in) and
returns one JSON-able dict built from the pure overlay computations, which live in their own modules and are all
re-exported here (import them from here):

* :mod:`~learnscope.theory.ranking` — :func:`eigenspace_table`, the theory's ranking of the non-constant
  eigenspaces, with each one's relative gap to the next and its tie group (eigenspaces chained by gaps below
  :data:`ILL_POSED_GAP`); :func:`assignment_slots` / :func:`assignment`, f_j should lie in the j-th most learnable
  non-constant eigenspace, counting multiplicity; the metric is the energy of f_j in that eigenspace, "ill-posed"
  where it is tied.
* :mod:`~learnscope.theory.mse` — :func:`predicted_mse` and :func:`compare_mse`, E₀ (Σ (1 − L_i)² v_i² + r) from a
  function's measured coefficients (r: the energy above the spectrum's top level, counted as unlearnt), against the
  measured few-shot MSE: Spearman ρ and the median of |pred/meas − 1|; :func:`control_functions`, random smooth
  functions rank-transformed to a given marginal (the MSE test's controls).
* :mod:`~learnscope.theory.contrast` — :func:`optimality`, measured MSE of f1 over the theory's minimum
  E₀ (1 − L_top)² ‖f1‖²; :func:`contrast_overlay`, per-eigenspace predicted MSE ratio of learner B over learner A,
  the predicted best contrast (outside the eigenspaces both learn well), the found function's composition, the
  admixture note.
* here — :func:`coefficients_many` (a spectrum's coefficients of many functions at once), :func:`theory_summary` /
  :func:`format_theory_summary`, the same without a search, for ``learnscope bias theory``.

Ridge convention: δ is what the learner adds to its Gram matrix, (K + δI) with δ not scaled by n (learnscope's
KernelRidge, RandomFeatureRidge and Ridge all use their ``lam`` so), and n is the number of training points of the
few-shot tasks (``search.n_train``, or ``analysis.gen_n_train`` where set); ``distance_on`` does not change n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from learnscope import rng
from learnscope.errors import ConfigError
from learnscope.theory.contrast import ADMIXTURE_SHARE, SHARED_EASY_MSE, contrast_overlay, min_unit_mse, optimality
from learnscope.theory.mse import (
    CONTROL_COUNT,
    CONTROL_STREAM,
    MarginalControl,
    compare_mse,
    control_functions,
    predicted_mse,
)
from learnscope.theory.ranking import (
    ENERGY_BAR,
    ILL_POSED_GAP,
    NULL_SPACE,
    NYSTROM_SE_TIE,
    ZERO_EIGENVALUE,
    assignment,
    assignment_slots,
    eigenspace_table,
    eigenvalue_errors,
    relative_gap,
)
from learnscope.validation import check_positive_int

__all__ = [
    "ADMIXTURE_SHARE",
    "CONTROL_COUNT",
    "CONTROL_STREAM",
    "ENERGY_BAR",
    "ILL_POSED_GAP",
    "NULL_SPACE",
    "NYSTROM_SE_TIE",
    "SHARED_EASY_MSE",
    "ZERO_EIGENVALUE",
    "MarginalControl",
    "assignment",
    "assignment_slots",
    "compare_mse",
    "coefficients_many",
    "contrast_overlay",
    "control_functions",
    "eigenspace_table",
    "eigenvalue_errors",
    "format_theory_summary",
    "min_unit_mse",
    "optimality",
    "predicted_mse",
    "relative_gap",
    "run_overlay",
    "theory_summary",
]


def coefficients_many(spectrum: Any, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``Spectrum.coefficients_sq`` of F functions at once: values ``(F, N)`` at ``points`` ``(N, d)`` -> ``(F, K)``.

    The same numbers as F calls of ``spectrum.coefficients_sq(values[i], points)``, with the basis built once:
    Funk–Hecke, the least-squares fit on the zonal basis of :func:`learnscope.spherical.harmonic_power` (same
    centres) with F right-hand sides; Nyström, v = values φ / N with φ the eigenvectors on the spectrum's own points,
    else their Nyström extension. Other cases fall back to one call per function.
    """
    from learnscope.spherical import harmonic_dimension, zonal_basis

    f = np.atleast_2d(np.asarray(values, dtype=float))
    x = np.asarray(points, dtype=float)
    n = x.shape[0]
    k = len(np.asarray(spectrum.eigenvalues))
    if spectrum.kind == "nystrom" and getattr(spectrum, "eigenvectors", None) is not None:
        same = spectrum.points is not None and x.shape == spectrum.points.shape and np.array_equal(x, spectrum.points)
        phi = spectrum.eigenvectors if same else spectrum.eigenfunctions(x)
        return (f @ phi / n) ** 2
    dims = [harmonic_dimension(x.shape[1], l) for l in range(k)] if spectrum.kind == "funk_hecke" else None
    if dims is None or sum(dims) > min(n // 2, 3000):
        return np.stack([np.asarray(spectrum.coefficients_sq(fi, x), dtype=float)[:k] for fi in f])
    centres = np.random.default_rng([0, 1])  # harmonic_power's default stream: the same basis
    blocks = [zonal_basis(x, l, centres) for l in range(k)]
    design = np.concatenate([q for q, _ in blocks], axis=1)
    coef, *_ = np.linalg.lstsq(design, f.T, rcond=None)  # (P, F)
    out, start = np.empty((f.shape[0], k)), 0
    for l, (q, m) in enumerate(blocks):
        c = coef[start : start + q.shape[1]]
        out[:, l] = np.maximum(np.einsum("pf,pq,qf->f", c, m, c), 0.0)
        start += q.shape[1]
    return out


def _overlay_spectrum(learner: Any, domain: Any, max_degree: int, samples: int, seed: int, quadrature: bool
                      ) -> tuple[Any, np.ndarray | None]:
    """The learner's spectrum and the standard errors to use (None: :func:`eigenvalue_errors`). With ``quadrature``
    a Nyström spectrum is retaken on ``samples`` points of ``domain.spread_sample`` (its kernel is the one
    :func:`~learnscope.theory.spectra.learner_spectrum` builds), with zero errors."""
    import torch

    from learnscope.theory.spectra import learner_spectrum, nystrom_spectrum

    spec = learner_spectrum(learner, domain, max_degree=max_degree, samples=2 if quadrature else samples, seed=seed)
    if spec.kind != "nystrom" or not quadrature:
        return spec, None
    gen = rng.torch_generator(int(seed), "theory_nystrom_quadrature")
    x = domain.spread_sample(samples, gen, dtype=torch.float64).reshape(samples, -1).numpy()
    spec = nystrom_spectrum(spec.kernel, x)
    return spec, np.zeros(len(spec.eigenvalues))


def run_overlay(
    learner: Any,
    domain: Any,
    functions: Sequence[Sequence[Callable]],
    n_train: Sequence[int],
    measured: Sequence[Sequence[float]],
    *,
    kind: str,
    measure: Callable[[Callable], float],
    quantile: Callable[[np.ndarray], np.ndarray],
    learner_b: Any | None = None,
    measured_b: Sequence[Sequence[float]] | None = None,
    measure_b: Callable[[Callable], float] | None = None,
    seed: int = 0,
    controls: int = CONTROL_COUNT,
    max_degree: int = 10,
    samples: int = 1000,
    points: int = 2000,
    gap: float = ILL_POSED_GAP,
    quadrature: bool = False,
) -> dict:
    """The eigenlearning overlay of one kernel-type run (wave2 §2.3), as a JSON-able dict.

    functions[j][i] : f_{j+1} of seed i (numpy (N, d) -> (N,)); n_train[j] : its few-shot training points;
    measured[j][i] : its measured few-shot MSE (the run's ``gen_mse``); kind : "easiest" | "series" | "contrast";
    measure(g) : the learner's measured few-shot MSE of a control function g at n_train[0] (the run's protocol);
    quantile : the marginal of the controls (u -> value, e.g. the target's quantile function).
    For a contrast also learner_b, measured_b (``gen_mse_b``) and measure_b.

    Returns ``{"spectrum", "n", "ridge", "kappa", "e0", "eigenspaces", "assignment" (not for a contrast), "mse"
    (found + ``controls`` control functions: per point predicted/measured, ``spearman``, ``median_relative_error``),
    "optimality" (not for a contrast), "thresholds"}`` plus, for a contrast, ``"learner_b"`` (κ, E₀, its MSE test
    on the found function and the controls) and ``"contrast"`` (:func:`contrast_overlay`). The spectrum is
    :func:`~learnscope.theory.spectra.learner_spectrum` (Funk–Hecke for dot-product kernels on the sphere, else
    Nyström from ``samples`` points); coefficients are taken on its Nyström points, else on ``points`` spread points.
    ``quadrature``: the domain's ``spread_sample`` is a low-discrepancy set (S², the disc, the circle); the Nyström
    spectrum is then taken on ``samples`` of its points (a far better quadrature than as many random points: the
    disc's two linear eigenvalues come out within 0.5 % instead of ~10 % at 800 points) and its eigenvalues are not
    given i.i.d. standard errors.
    """
    import torch

    from learnscope.theory.eigenlearning import eigenlearning

    spec, errors = _overlay_spectrum(learner, domain, max_degree, samples, seed, quadrature)
    at = getattr(spec, "points", None)
    if at is None:
        gen = rng.torch_generator(int(seed), "theory_points")
        at = domain.spread_sample(points, gen, dtype=torch.float64).reshape(points, -1).numpy()
    at = np.asarray(at, dtype=float)
    preds = {n: eigenlearning(spec, int(n), _ridge_of(learner)) for n in sorted(set(int(n) for n in n_train))}
    p0 = preds[int(n_train[0])]
    ctrl = control_functions(domain, quantile, controls, seed=seed) if controls else []
    callables = [f for per in functions for f in per] + list(ctrl)
    values = np.stack([np.asarray(f(at), dtype=float).reshape(len(at)) for f in callables])  # (F, N)
    v2 = coefficients_many(spec, values, at)
    pairs = list(zip(v2, (values**2).mean(axis=1), strict=True))  # (v² per level, ‖f‖²) per callable
    sizes = [len(per) for per in functions]
    starts = np.cumsum([0, *sizes])
    coef = [pairs[starts[j] : starts[j + 1]] for j in range(len(functions))]
    ctrl_coef = pairs[starts[-1] :]

    def mse_block(pred_of: Callable[[int], Any], meas: Sequence[Sequence[float]], measure_fn: Callable | None,
                  pred0: Any) -> dict:
        found = [{"function": f"f{j + 1}", "seed_index": i, "predicted": predicted_mse(pred_of(j), c, t),
                  "measured": float(meas[j][i])}
                 for j, per in enumerate(coef) for i, (c, t) in enumerate(per)]
        cont = [{"bandwidth": g.bandwidth, "predicted": predicted_mse(pred0, c, t), "measured": float(measure_fn(g))}
                for g, (c, t) in zip(ctrl, ctrl_coef, strict=True)] if measure_fn is not None else []
        both = found + cont
        return {"found": found, "controls": cont,
                **compare_mse([p["predicted"] for p in both], [p["measured"] for p in both]),
                "found_only": compare_mse([p["predicted"] for p in found], [p["measured"] for p in found])}

    out: dict = {
        "learner": learner.describe() if callable(getattr(learner, "describe", None)) else type(learner).__name__,
        "spectrum": {"kind": spec.kind, "levels": len(np.asarray(spec.eigenvalues)), "max_degree": max_degree,
                     "samples": samples if spec.kind != "funk_hecke" else None,
                     "quadrature": bool(quadrature and spec.kind == "nystrom")},
        "n": int(n_train[0]), "ridge": _ridge_of(learner), "kappa": float(p0.kappa), "e0": float(p0.e0),
        "eigenspaces": eigenspace_table(spec, p0, gap=gap, errors=errors),
        "mse": mse_block(lambda j: preds[int(n_train[j])], measured, measure, p0),
        "thresholds": {"ill_posed_gap": gap, "energy_bar": ENERGY_BAR, "zero_eigenvalue": ZERO_EIGENVALUE},
    }
    if kind != "contrast":  # f1 of a contrast is not meant to be the easiest function: no optimality, no slots
        out["optimality"] = optimality(p0, spec, measured[0], [t for _, t in coef[0]],
                                       [predicted_mse(p0, c, t) for c, t in coef[0]])
        out["assignment"] = assignment(spec, [np.array([c for c, _ in per]) for per in coef],
                                       [np.array([t for _, t in per]) for per in coef], gap=gap, errors=errors)
        return out
    if learner_b is None or measured_b is None:
        raise ConfigError("a contrast overlay needs learner_b and its measured MSEs")
    spec_b, errors_b = _overlay_spectrum(learner_b, domain, max_degree, samples, seed, quadrature)
    pb = eigenlearning(spec_b, int(n_train[0]), _ridge_of(learner_b))
    same = list(getattr(spec_b, "labels", []) or []) == list(getattr(spec, "labels", []) or [])
    b: dict = {"learner": learner_b.describe() if callable(getattr(learner_b, "describe", None)) else "custom",
               "spectrum": spec_b.kind, "ridge": _ridge_of(learner_b), "kappa": float(pb.kappa), "e0": float(pb.e0),
               "eigenspaces": eigenspace_table(spec_b, pb, gap=gap, errors=errors_b)}
    if same:  # the found function's coefficients are valid for B's spectrum too
        b["mse"] = mse_block(lambda j: pb, measured_b, measure_b, pb)
    out["learner_b"] = b
    c0 = np.array([c for c, _ in coef[0]])
    t0 = np.array([t for _, t in coef[0]])
    out["contrast"] = contrast_overlay(spec, p0, spec_b, pb, c0, t0)
    if out["contrast"].get("found") is not None:
        meas_ratio = np.asarray(measured_b[0], dtype=float) / np.maximum(np.asarray(measured[0], dtype=float), 1e-300)
        out["contrast"]["found"]["measured_ratio"] = meas_ratio.tolist()
    return out


# ------------------------------------------------------------------------------------------ quick summary (CLI)
def theory_summary(config_path_or_name: Any, n: int | None = None, ridge: float | None = None, *,
                   max_degree: int = 10, samples: int = 1000) -> dict:
    """What the theory predicts for a bias config, without running a search (``learnscope bias theory CONFIG``).

    n : training points (default: the first function's ``search.n_train``, or ``analysis.gen_n_train``);
    ridge : δ in the learner's convention (default: the learner's ``lam``). Returns ``{"config", "learner", "domain",
    "n", "ridge", "kappa", "e0", "eigenspaces" (:func:`eigenspace_table`), "slots" (:func:`assignment_slots` for the
    config's functions, at least 8), "min_unit_mse"}`` and, for a contrast, ``"learner_b"`` and ``"contrast"``
    (:func:`contrast_overlay`). Raises a one-line LearnscopeError for a learner the theory does not cover.
    """
    from learnscope.bias.config import load_config
    from learnscope.domains import make_domain
    from learnscope.learners.registry import make_learner
    from learnscope.theory.eigenlearning import eigenlearning
    from learnscope.theory.spectra import learner_spectrum

    cfg = load_config(config_path_or_name)
    domain = make_domain(cfg.domain)
    settings = cfg.function_settings()
    n = check_positive_int("n", n if n is not None else (cfg.analysis.gen_n_train or settings[0].n_train))
    learners = [make_learner(cfg.learner)] + ([make_learner(cfg.learner_b)] if cfg.learner_b is not None else [])
    out: dict = {"config": str(config_path_or_name), "title": cfg.title, "kind": cfg.kind,
                 "domain": domain.describe(), "n": n}
    preds = []
    for key, learner in zip(("learner", "learner_b"), learners, strict=False):
        delta = float(ridge) if ridge is not None else _ridge_of(learner)
        spec = learner_spectrum(learner, domain, max_degree=max_degree, samples=samples, seed=0)
        pred = eigenlearning(spec, n, delta)
        preds.append((spec, pred))
        entry = {"spec": learner.describe(), "ridge": delta, "spectrum": spec.kind, "kappa": float(pred.kappa),
                 "e0": float(pred.e0), "min_unit_mse": min_unit_mse(pred, spec),
                 "eigenspaces": eigenspace_table(spec, pred)}
        if key == "learner":
            entry["slots"] = assignment_slots(spec, max(len(settings), 8) if cfg.kind == "series" else 1)
        out[key] = entry
    if len(preds) == 2:
        out["contrast"] = contrast_overlay(preds[0][0], preds[0][1], preds[1][0], preds[1][1])
    return out


def _ridge_of(learner: Any) -> float:
    lam = getattr(learner, "lam", None)
    if lam is None:
        raise ConfigError(f"{type(learner).__name__} has no ridge `lam`; pass ridge= explicitly")
    return float(lam)


def _g(v: float) -> str:
    return "–" if v is None or v != v else f"{v:.3g}"


def format_theory_summary(summary: dict, rows: int = 8) -> str:
    """:func:`theory_summary` as plain text for the terminal: per learner κ, E₀ and the ranked eigenspaces (λ,
    multiplicity, L, predicted MSE of a unit function, gap to the next, ties), then where f1, f2, … should lie, and
    for a contrast the predicted ratio per eigenspace and the predicted best contrast."""
    lines = [f"{summary.get('title') or summary['config']}  (n = {summary['n']})"]
    for key, name in (("learner", "learner"), ("learner_b", "learner B")):
        e = summary.get(key)
        if not e:
            continue
        lines.append(f"{name}: {e['spec'].get('name')}  ridge {e['ridge']:g}  spectrum {e['spectrum']}  "
                     f"κ = {_g(e['kappa'])}  E₀ = {_g(e['e0'])}  min MSE of a unit function {_g(e['min_unit_mse'])}")
        lines.append(f"  {'rank':>4}  {'eigenspace':<16}{'λ':>10} {'mult':>5} {'L':>9} {'unit MSE':>9} {'gap':>6}")
        for r in e["eigenspaces"][:rows]:
            tied = " tied" if r.get("tied_with_next") else ""
            lines.append(f"  {r['rank']:>4}  {r['label']:<16}{_g(r['eigenvalue']):>10} {r['multiplicity']:>5} "
                         f"{_g(r['learnability']):>9} {_g(r['unit_mse']):>9} {_g(r['gap_to_next']):>6}{tied}")
        slots = e.get("slots")
        if slots:
            parts = [f"f{s['index']} {s['label']}" + (" (ill-posed: tied)" if s["ill_posed"] else "") for s in slots]
            lines.append("  expected functions: " + ", ".join(parts))
    c = summary.get("contrast")
    if c and c.get("available"):
        lines.append("contrast, predicted MSE ratio B/A of a unit function per eigenspace:")
        lines.append("  " + ", ".join(f"{r['label']} {_g(r['ratio_b_over_a'])}" + ("*" if r["shared_easy"] else "")
                                      for r in c["per_eigenspace"][:rows]))
        b = c.get("best")
        lines.append("  predicted best contrast: " + (f"{b['label']} (ratio {_g(b['ratio'])})" if b else "none")
                     + ("; * = both learn it well, excluded" if c["shared_easy"] else ""))
    elif c:
        lines.append(f"contrast: {c['reason']}")
    return "\n".join(lines)
