"""The figures and ``report.html`` of a ``learnscope bias run`` directory.

The page starts with the run's verdict (``metrics["verdict"]``: a red box with the warnings when the result failed
its checks against simple baselines, a one-line note when it passed), then the headline numbers, the meta-training
losses and the found functions: on their domain's map where one exists (S², the disc, the circle), else by their
dependence on each input x₀, x₁, … (linear-fit weight per input, and f against each input; Fig 7 on S⁴). Kernel-type
runs (``metrics["theory"]``) get a "Theory (eigenlearning)" section: the theory's ranking of eigenspaces, each found
function's energy in its predicted eigenspace, predicted vs measured few-shot MSE with random controls, the search's
optimality ratio and, for a contrast, the predicted ratio per eigenspace and best contrast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tomli_w

from learnscope.bias.experiment import ExperimentResult
from learnscope.domains import Circle, Disc, Sphere, SplitDataset
from learnscope.fileio import atomic_write
from learnscope.report import figures
from learnscope.report import html as H
from learnscope.report.figures import input_name

_DISTANCE_NAMES = {"w2": "W₂ distance", "sinkhorn": "Sinkhorn div.", "geomloss_sinkhorn": "Sinkhorn div.",
                   "energy": "energy distance"}
_STATUS_HEADLINES = {
    "diverged": "Warning: this search diverged. The functions and numbers below are not an easiest function.",
    "collapsed": "Warning: the labels collapsed away from the target distribution. The functions and numbers below "
    "are not an easiest function.",
}


def _learner_label(spec: dict) -> str:
    """A learner's name, with its learning rule when it is a trained network (``trained, rule fa``)."""
    rule = spec.get("rule")
    if isinstance(rule, dict):
        rule = rule.get("name")
    return f"{spec['name']}, rule {rule}" if isinstance(rule, str) else str(spec["name"])


def _fmt(v: object) -> str:
    """A value of a verdict check, briefly (floats to 4 significant digits, dicts as ``key value`` pairs)."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "–"}[v]
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{str(k).replace('_', ' ')} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


_CHECK_COLUMNS = {
    "status": "status",
    "label_std": "label std",
    "target_std": "target std",
    "w2_to_target": "W₂ to the target",
    "w2_zero_labels": "W₂ of all-zero labels",
    "roughness": "nearest-neighbour roughness",
    "gen_mse": "few-shot MSE",
    "gen_sem": "s.e.m.",
    "mse_predict_mean": "MSE of predicting the mean",
    "diverged_at_step": "diverged at step",
}
"""Columns of the checks table (the numbers of :func:`learnscope.bias.verdict.check_labelling`), in order."""


def _checks_details(verdict: Mapping) -> str:
    """The numbers behind the verdict: a row per function and seed (``checks[f"f{k}"][seed]``), or a row per check
    for a flat ``checks``; then the thresholds."""
    checks = verdict.get("checks")
    parts = []
    if isinstance(checks, Mapping) and checks:
        nested = all(isinstance(c, Mapping) and all(isinstance(x, Mapping) for x in c.values())
                     for c in checks.values())
        if nested:
            rows = [(fn, seed, nums) for fn, per in checks.items() for seed, nums in per.items()]
            keys = [k for k in _CHECK_COLUMNS if any(k in nums for *_, nums in rows)]
            keys += sorted({k for *_, nums in rows for k in nums} - set(keys) - {"diverged_what", "label_mean",
                                                                               "target_mean"})
            parts.append(H.table(["function", "seed", *(_CHECK_COLUMNS.get(k, k.replace("_", " ")) for k in keys)],
                                 [[fn, seed, *(_fmt(nums.get(k)) for k in keys)] for fn, seed, nums in rows]))
        else:
            parts.append(H.table(["check", "values"], [[str(k).replace("_", " "), _fmt(v)] for k, v in checks.items()]))
    thresholds = verdict.get("thresholds")
    if isinstance(thresholds, Mapping) and thresholds:
        parts.append(H.muted("Thresholds: " + _fmt(thresholds) + "."))
    return "".join(parts)


def _verdict_block(verdict: object) -> list[str]:
    """The top of the page: a red box unless ``verdict["status"] == "ok"``; for "ok", an amber box if there are
    warnings, else a one-line note. Each with the numbers behind it, collapsed.

    ``verdict`` is ``metrics["verdict"]`` (``{"status": "ok" | "diverged" | "collapsed", "warnings": [str],
    "checks": {...}}``); runs written before the checks existed have none, and say so in one muted line.
    """
    if not isinstance(verdict, Mapping) or "status" not in verdict:
        return [H.muted("This run has no result checks (metrics.json has no verdict; written by an older version "
                        "of learnscope).")]
    status = str(verdict["status"])
    details = _checks_details(verdict)
    warnings = [str(w) for w in verdict.get("warnings") or []]
    if status == "ok" and not warnings:
        return [H.ok_note("Result checks passed: the result beats the simple baselines it was checked "
                          "against (see details).", details)]
    if status == "ok":
        return [H.warning_box("The result passed its checks, with warnings:", warnings, details, level="caution")]
    headline = _STATUS_HEADLINES.get(status, f"Warning: this result failed its checks ({status}).")
    return [H.warning_box(headline, warnings or [f"verdict: {status}"], details)]


def _split_rows(result: ExperimentResult) -> tuple[list[str], list[list]]:
    """Headline table on a split dataset (MNIST 0/1): agreement with the true class instead of linear fits."""
    header = ["function", "seed", "agreement (held-out)", "class labelled 1", "agreement (train pool)", "label mean",
              "label std", "gen. MSE", "gen. MSE / E f²"]
    rows = [
        [f"f{fn['index']}", m["seed"], m.get("agreement", float("nan")), m.get("class_labelled_1", "–"),
         m.get("agreement_train_pool", float("nan")), m["label_mean"], m["label_std"], m["gen_mse"], m["gen_relative"]]
        for fn in result.metrics["functions"]
        for m in fn["per_seed"]
    ]
    return header, rows


def _control_table(result: ExperimentResult) -> list[str]:
    """Few-shot error of the learner on each found labelling beside its true-class and random balanced labellings
    (``control`` of :func:`~learnscope.bias.experiment.measure_functions`), with standard errors over the draws."""
    rows = []
    for fn in result.metrics["functions"]:
        control = fn.get("control")
        if not control:
            continue
        f = f"f{fn['index']}"
        rows += [[f, f"found, seed {m['seed']}", m["gen_mse"], m["gen_sem"], m["gen_relative"]] for m in fn["per_seed"]]
        rows += [[f, name, c["mse"], c["sem"], c["relative"]] for name, c in
                 (("true classes (digit identity)", control["class_labelling"]),
                  ("random balanced 0/1 (fresh per draw)", control["random_balanced"]))]
    if not rows:
        return []
    draws = result.config.analysis.gen_draws
    note = (f"The learner trained on the training pool and scored on the held-out set, {draws} draws per row (fresh "
            "learner initialisation and minibatches; a fresh random labelling per draw in the last row). A labelling "
            "the learner prefers has a clearly smaller error than the random balanced one; predicting ½ everywhere "
            "scores 0.25 on a balanced 0/1 labelling.")
    return [H.table(["function", "labelling", "gen. MSE", "s.e.m.", "gen. MSE / E f²"], rows), H.paragraph(note)]


def _split_sections(result: ExperimentResult, out: Path) -> list[str]:
    """Held-out images with their labels, and the labels' histogram per true class (one per seed)."""
    domain, arrays, seeds = result.components.domain, result.arrays, result.config.seeds
    test = arrays["eval_is_test"]
    parts = []
    for k in range(len(result.functions)):
        values = arrays[f"f{k + 1}_values"]
        shown = np.flatnonzero(test)[:12]
        shape = getattr(domain, "image_shape", None)
        if shape is not None and shape[0] == 1:
            png = figures.image_grid(
                arrays["eval_points"][shown], values[:, shown], out / f"f{k + 1}_images.png",
                [f"seed {s}" for s in seeds], image_shape=shape[1:],
            )
            parts.append(H.figure(png, f"f{k + 1}: the first 12 held-out images and their meta-learned labels "
                                       "(one row per seed)"))
        if "eval_labels" in arrays:
            png = figures.class_histograms(
                values[:, test], arrays["eval_labels"][test], [f"f{k + 1}, seed {s}" for s in seeds],
                out / f"f{k + 1}_histograms.png",
            )
            parts.append(H.figure(png, f"f{k + 1}: labels of the {int(test.sum())} held-out images, by true class"))
    return parts


def _largest_input(weights: Sequence[float]) -> str:
    """``x₀ (+0.810)``: the input with the largest |linear weight|, and that weight ("–" if any is not finite)."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0 or not np.isfinite(w).all():
        return "–"
    i = int(np.argmax(np.abs(w)))
    return f"{input_name(i)} ({weights[i]:+.3f})"


def _headline_rows(result: ExperimentResult) -> tuple[list[str], list[list]]:
    domain = result.components.domain
    if isinstance(domain, SplitDataset):
        return _split_rows(result)
    contrast = result.config.kind == "contrast"
    by_input = not figures.has_map(domain)
    header = ["function", "seed", "label std", "affine R²", "no-bias R²"]
    if by_input:
        header += ["largest |linear weight|"]
    if isinstance(domain, Sphere):
        header += ["deg-0 energy", "deg-1 energy", "deg-2 energy"]
    header += ["gen. MSE", "gen. MSE / E f²"]
    if contrast:
        header += ["gen. MSE (B)", "ratio B/A"]
    compared = list(result.metrics["functions"][0]["per_seed"][0].get("compare", {}))
    header += [f"gen. MSE ({label})" for label in compared]
    rows = []
    for fn in result.metrics["functions"]:
        for m in fn["per_seed"]:
            row = [f"f{fn['index']}", m["seed"], m["label_std"], m["affine_r2"], m["linear_r2_no_bias"]]
            if by_input:
                row.append(_largest_input(m.get("linear_weights") or []))
            if isinstance(domain, Sphere):
                row += m["degree_energy"][:3]
            row += [m["gen_mse"], m["gen_relative"]]
            if contrast:
                row += [m["gen_mse_b"], m["gen_ratio_b_over_a"]]
            row += [m["compare"][label] for label in compared]
            rows.append(row)
    return header, rows


def _columns_note(result: ExperimentResult) -> str:
    """What the columns of the headline table mean."""
    an = result.config.analysis
    if isinstance(result.components.domain, SplitDataset):
        return (f"gen. MSE: few-shot error of the learner on the found labelling, mean of {an.gen_draws} draws; "
                "gen. MSE / E f²: the same relative to the mean square of the labels.")
    parts = [f"Measured on {an.n_eval} evaluation points. label std: standard deviation of f",
             "affine R² / no-bias R²: R² of the least-squares fit f ≈ w·x + b / f ≈ w·x"]
    if not figures.has_map(result.components.domain):
        parts.append("largest |linear weight|: the input whose weight w_i in the affine fit is largest in magnitude")
    if isinstance(result.components.domain, Sphere):
        parts.append("deg-l energy: fraction of ‖f‖² in spherical harmonics of degree l")
    parts.append(f"gen. MSE: few-shot error of the learner on f (mean of {an.gen_draws} draws of fresh training and "
                 "test points); gen. MSE / E f²: the same relative to the mean square of f (1 = no better than "
                 "predicting 0)")
    if result.config.kind == "contrast":
        parts.append("gen. MSE (B): the same for learner B; ratio B/A: how much harder f is for B than for A")
    return "; ".join(parts) + "."


def _series_note(result: ExperimentResult) -> str | None:
    """What happens past the linear functions of a ridge learner on the disc (there are only d of them)."""
    comp, cfg = result.components, result.config
    spec = comp.learner_specs()[0]
    if cfg.kind != "series" or spec.get("name") != "ridge" or spec.get("bias"):
        return None
    d = comp.domain.dim
    fns = result.metrics["functions"]
    if len(fns) <= d:
        return None
    later = fns[d:]
    r2 = ", ".join(
        f"f{f['index']}: R² {f['summary']['linear_r2_no_bias']['median']:.3f}, relative gen. error "
        f"{f['summary']['gen_relative']['median']:.3f}"
        for f in later
    )
    return (
        f"A no-bias ridge learner in {d}-D can only represent {d} mutually orthogonal linear functions, so "
        f"function {d + 1} onwards cannot be linear: the learner cannot fit them and their few-shot error is "
        f"close to their whole variance (medians over seeds — {r2})."
    )


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{float(v):.3f}" for v in values)


def _input_dependence_notes(metrics: dict) -> list[str]:
    """The over-connected headline numbers of ``functions[k]["input_dependence"]``, one paragraph per function."""
    parts = []
    for fn in metrics["functions"]:
        dep = fn.get("input_dependence")
        i = dep.get("overconnected_input") if isinstance(dep, Mapping) else None
        if not isinstance(i, (int, np.integer)):  # no over-connected input (e.g. random wiring): nothing to claim
            continue
        name = input_name(int(i))
        text = [f"f{fn['index']}, over-connected input {name}:"]
        share = dep.get("share")
        if share:
            text.append(f"share of the linear-fit weight norm on {name}, per seed: {_numbers(share)} "
                        f"(median {float(np.median(share)):.3f}).")
        paired = dep.get("paired")
        if isinstance(paired, Mapping) and "mean_difference" in paired:
            what = paired.get("description") or paired.get("quantity")
            text.append(
                "Over-connected vs random-connectivity learner, paired over seeds"
                + (f" ({what})" if what else "")
                + f": mean difference {float(paired['mean_difference']):+.3f} ± {float(paired.get('sem', np.nan)):.3f}"
                f" (s.e.m., n = {paired.get('n', '?')})."
            )
        parts.append(H.paragraph(" ".join(text), note=True))
        rows = paired.get("per_seed") if isinstance(paired, Mapping) else None
        if rows and all(isinstance(r, Mapping) for r in rows):
            parts.append(H.table(
                ["seed", "few-shot MSE, over-connected", "few-shot MSE, random wiring", "difference (random − over)",
                 "s.e.m.", "tasks"],
                [[r.get("seed"), r.get("mse_overconnected"), r.get("mse_random"), r.get("mean_difference"),
                  r.get("sem"), r.get("n")] for r in rows]))
    return parts


def _loss_titles(result: ExperimentResult) -> dict[str, str]:
    s = result.config.search
    contrast = result.config.kind == "contrast"
    distance = (
        "minus the std of the labels (L_d)"
        if s.distance == "neg_std"
        else f"{_DISTANCE_NAMES.get(s.distance, s.distance)} to the target (L_d)"
    )
    return {
        "generalisation": "test error of learner A (L_g)" if contrast else "test error of the learner (L_g)",
        "distribution": distance,
        "generalisation_b": "test error of learner B",
    }


def _function_sections(result: ExperimentResult, out: Path) -> list[str]:
    """The found functions on the domain's map, or (no map, e.g. S⁴) their dependence on each input."""
    domain, seeds, funcs, metrics = result.components.domain, result.config.seeds, result.functions, result.metrics
    if figures.has_map(domain):
        panels = [(f"f{k + 1}, seed {s}", r.function.for_seed(i)) for k, r in enumerate(funcs)
                  for i, s in enumerate(seeds)]
        per_row = 4 if isinstance(domain, Sphere) else 6  # most seeds in one row that keep a map readable
        by_seed = len(seeds) <= per_row or (len(funcs) > 1 and len(seeds) <= 6)  # a row per function
        png = figures.function_panels(domain, panels, out / "functions.png",
                                      columns=len(seeds) if by_seed else None)
        where = {
            Sphere: "on a longitude/latitude map of the sphere S²",
            Disc: "on the unit disc",
            Circle: "along the circle",
        }.get(type(domain), "on the square")
        scale = "" if isinstance(domain, Circle) else ", one colour scale for all panels"
        return [H.figure(png, f"The meta-learned labelling f {where}, per seed{scale}.")]
    weights = np.array([[m["linear_weights"] for m in f["per_seed"]] for f in metrics["functions"]], dtype=float)
    dep = metrics["functions"][0].get("input_dependence") or {}
    over = dep.get("overconnected_input") if isinstance(dep, Mapping) else None
    over = int(over) if isinstance(over, (int, np.integer)) else None
    png = figures.input_weights(
        weights, out / "input_weights.png", seeds, titles=[f"f{k + 1}" for k in range(len(funcs))],
        highlight=over, highlight_label=f"over-connected input {input_name(over)}" if over is not None else "",
    )
    d = weights.shape[2]
    parts = [H.figure(png, f"Which inputs f depends on: the weight w_i of each input x_i (i = 0…{d - 1}) in the "
                           f"least-squares fit f ≈ w·x + b on the {len(result.eval_points)} evaluation points, one bar "
                           "per seed. The sign of f is arbitrary under a symmetric target, so compare magnitudes.")]
    points = np.asarray(result.eval_points)
    for k in range(len(funcs)):
        values = np.asarray(result.arrays[f"f{k + 1}_values"], dtype=float)
        png = figures.input_scatter(points, values, out / f"f{k + 1}_inputs.png",
                                    [f"f{k + 1}, seed {s}" for s in seeds])
        parts.append(H.figure(png, f"f{k + 1} against each input x_i, one row per seed (points: up to 1500 of the "
                                   "evaluation points; black line: mean of f in bins of x_i; r: correlation of f with "
                                   "x_i). A function of x_i alone is a curve in column i and flat elsewhere."))
    return parts


def _f3(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def _pct(v: float) -> str:
    return "–" if v is None or v != v else f"{100 * v:.1f} %"


def _range(values: Sequence[float]) -> str:
    """``0.981–0.995`` (min–max over seeds), or the one value."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "–"
    lo, hi = float(a.min()), float(a.max())
    return f"{lo:.3g}" if np.isclose(lo, hi, rtol=1e-3) else f"{lo:.3g}–{hi:.3g}"


def _assignment_rows(theory: Mapping, names: Mapping[int, str]) -> list[list]:
    rows = []
    for a in theory.get("assignment") or []:
        if a["ill_posed"]:
            tied = ", ".join(names.get(level, str(level)) for level in a["tied_levels"])
            verdict = (f"ill-posed: tied with a neighbour (gap {_pct(a['gap'])}); the theory only says “in {tied}”, "
                       f"energy there {_range(a['energy_tied'])}")
        else:
            verdict = "yes" if a["meets_bar"] else "no"
        rows.append([f"f{a['index']}", a["label"], _range(a["energy"]), verdict])
    return rows


def _theory_section(result: ExperimentResult, out: Path) -> list[str]:
    """The eigenlearning overlay (``metrics["theory"]``): what theory predicts for this learner beside what the search
    found. Empty for learners the theory does not cover."""
    from learnscope.report import theory_figures

    theory = result.metrics.get("theory")
    if not isinstance(theory, Mapping):
        return []
    if not theory.get("available"):
        return [H.muted(f"No theory overlay for this run: {theory.get('reason', 'not available')}.")]
    cfg = result.config
    contrast = "contrast" in theory
    spectrum = theory["spectrum"]
    how = ("the Funk–Hecke formula, exact for a rotation-invariant kernel on the sphere" if spectrum["kind"] ==
           "funk_hecke" else f"a Nyström estimate from {spectrum.get('samples')} "
           + ("evenly spread domain points" if spectrum.get("quadrature") else "random domain samples"))
    parts = [H.paragraph(
        "Eigenlearning (Simon et al. 2021/2023) predicts a kernel learner's few-shot behaviour in closed form from its "
        f"kernel's eigenvalues (here by {how}). With n = {theory['n']} training points and ridge δ = "
        f"{theory['ridge']:g} (added to the Gram matrix, not scaled by n) it gives the effective regularisation "
        f"κ = {theory['kappa']:.3g}, the learnability L = λ/(λ + κ) of each eigenspace and the overfitting factor "
        f"E₀ = {theory['e0']:.3g}; a function's predicted test MSE is E₀ Σ (1 − L)² v², v² its energy per "
        "eigenspace." + (" For learner A." if contrast else ""))]
    png = theory_figures.theory_overlay(theory, out / "theory.png", cfg.seeds, bar=theory["thresholds"]["energy_bar"])
    middle = ("middle: the predicted MSE ratio B/A of a unit-variance function in each eigenspace, grey where both "
              "learners learn it well, the dashed line the found function's measured ratio (median over seeds)"
              if contrast else "middle: each found function's energy in the eigenspace the theory assigns it, one "
                               "dot per seed (hollow, and * on the axis: ill-posed, the energy in the tied "
                               "eigenspaces), dashed: the bar")
    parts.append(H.figure(png, "Left: the theory's ranking of the non-constant eigenspaces (×: their dimension); "
                               f"{middle}; right: predicted against measured few-shot MSE of the found functions and "
                               "of the random control functions (black line: equal)."))
    rows = [[r["rank"], r["label"], r["eigenvalue"], r["multiplicity"], r.get("learnability"), r.get("unit_mse"),
             _pct(r["gap_to_next"]) + (" (tied)" if r.get("tied_with_next") else "")]
            for r in theory["eigenspaces"][:8]]
    parts.append(H.table(["rank", "eigenspace", "eigenvalue λ", "dimension", "learnability L",
                          "predicted MSE of a unit function", "gap to the next"], rows))
    gap = theory["thresholds"]["ill_posed_gap"]
    names = {r["level"]: r["label"] for r in theory["eigenspaces"]}
    if theory.get("assignment"):
        parts.append(H.table(["function", "predicted eigenspace", "energy in it (over seeds)",
                              f"≥ {theory['thresholds']['energy_bar']:g}?"], _assignment_rows(theory, names)))
        parts.append(H.muted(
            "The theory puts fⱼ in the j-th most learnable non-constant eigenspace, counting dimensions (constants "
            f"are excluded by the target distribution). Two eigenspaces whose eigenvalues differ by less than "
            f"{gap:.0%} (or, estimated by Nyström, by less than three combined standard errors) are tied: which of "
            "them fⱼ lies in is then ill-posed, and only the energy in the tied eigenspaces together tests the "
            "theory."))
    mse = theory["mse"]
    n_ctrl = len(mse.get("controls", []))
    parts.append(H.paragraph(
        f"Predicted against measured few-shot MSE, {len(mse['found'])} found functions (all seeds) and {n_ctrl} random "
        "control functions with the same marginal (random smooth functions mapped to the target distribution by "
        f"their ranks): Spearman ρ = {_f3(mse['spearman'])}, median |predicted / measured − 1| = "
        f"{_f3(mse['median_relative_error'])} (the theory is asymptotic in n; expect the magnitudes to be off by "
        "tens of percent at a few training points, the order to hold)."))
    if isinstance(theory.get("learner"), Mapping) and theory["learner"].get("name") == "random_features":
        k = theory["learner"].get("features")
        parts.append(H.paragraph(
            f"The spectrum is that of the random features' K → ∞ kernel: the prediction leaves out the fluctuation "
            f"of the K = {k} features actually drawn, which matters most where n is not small against K (here n = "
            f"{theory['n']}).", note=True))
    opt = theory.get("optimality")
    if opt:
        parts.append(H.paragraph(
            f"Optimality ratio of the search (measured few-shot MSE of f1 over the theory's least MSE for a function "
            f"of its variance, E₀ (1 − L_top)² = {opt['min_unit_mse']:.3g} per unit variance), per seed: "
            f"{', '.join(f'{v:.3g}' for v in opt['ratio'])}"
            + (f" (the theory's own prediction for f1 over that minimum: "
               f"{', '.join(f'{v:.3g}' for v in opt['predicted_ratio'])})" if opt.get("predicted_ratio") else "")
            + ". A ratio near 1 means the search reached the most learnable eigenspace; well above 1, f1 has some "
            "energy in less learnable eigenspaces (the theory's own ratio is then large too), or the theory's "
            "magnitudes are off at this n."))
    if contrast:
        parts += _theory_contrast(theory)
    return parts


def _theory_contrast(theory: Mapping) -> list[str]:
    c = theory["contrast"]
    if not c.get("available"):
        return [H.muted(f"No predicted contrast: {c.get('reason')}.")]
    b = theory.get("learner_b", {})
    rows = [[r["label"], r["unit_mse_a"], r["unit_mse_b"], r["ratio_b_over_a"], "yes" if r["shared_easy"] else ""]
            for r in c["per_eigenspace"][:8]]
    parts = [H.table(["eigenspace", "predicted MSE, A", "predicted MSE, B", "ratio B/A", "both learn it well"], rows)]
    best, found = c.get("best"), c.get("found") or {}
    text = [f"Learner B: κ = {_fmt(b.get('kappa'))}, E₀ = {_fmt(b.get('e0'))}."]
    easy = c["thresholds"]["shared_easy_unit_mse"]
    text.append("Predicted best contrast (outside the eigenspaces both learn well, predicted MSE ≤ "
                f"{easy:g} per unit variance): " + (f"{best['label']}, ratio B/A {best['ratio']:.3g}." if best else
                                                    "none."))
    if found:
        comp = found["composition"][0] if found["composition"] else {}
        top = [kv for kv in sorted(comp.items(), key=lambda kv: -kv[1])[:3] if kv[1] >= 0.005]
        text.append("The found function (first seed) is " + ", ".join(f"{k} {v:.0%}" for k, v in top)
                    + f"; predicted ratio B/A {_range(found['predicted_ratio'])}, measured "
                    f"{_range(found.get('measured_ratio', []))} over seeds.")
    parts.append(H.paragraph(" ".join(text)))
    if found.get("note"):
        parts.append(H.paragraph("Caution: " + found["note"] + ".", note=True))
    return parts


def write_report(result: ExperimentResult, out: Path) -> Path:
    """Draw every figure of the run into ``out`` and write ``out/report.html``; returns its path."""
    cfg, comp, metrics = result.config, result.components, result.metrics
    out = Path(out)
    domain = comp.domain
    seeds = cfg.seeds
    funcs = result.functions
    sections: list[tuple[str, list[str]]] = []
    top = _verdict_block(metrics.get("verdict"))

    header, rows = _headline_rows(result)
    summary = [*_input_dependence_notes(metrics), H.table(header, rows),
               H.muted(_columns_note(result))]
    if isinstance(domain, SplitDataset):
        summary += _control_table(result)
    note = _series_note(result)
    if note:
        summary.append(H.paragraph(note, note=True))
    if "overlap" in metrics:
        summary.append(
            H.paragraph(
                f"Largest |overlap| between two functions of the series (cosine of the un-centred inner product on "
                f"{cfg.analysis.n_eval} evaluation points, any seed): {metrics['overlap']['max_abs_off_diagonal']:.4f}."
            )
        )
    timing = [
        [f"f{f['index']}", f["steps"], f["ms_per_step_median"], f["loop_s"], "yes" if f["resumed"] else "no"]
        for f in metrics["functions"]
    ]
    summary.append(
        H.table(
            ["function", "meta-steps", "median ms / step (all seeds)", "loop (s)", "from checkpoint"], timing
        )
    )
    sections.append(("Results", summary))

    png = figures.loss_curves([r.history for r in funcs], seeds, out / "losses.png", titles=_loss_titles(result))
    weights = f"α_g = {cfg.search.alpha_g:g}, α_d = {cfg.search.alpha_d:g}"
    sections.append(("Meta-training", [H.figure(png, f"Loss terms per meta-step, one colour per seed; the total is "
                                                     f"α_g·L_g + α_d·L_d ({weights}) plus any orthogonality term.")]))

    if isinstance(domain, SplitDataset):
        sections.append(("Found functions", _split_sections(result, out)))
        sections.append(("Resolved config", [H.preformatted(tomli_w.dumps(result.resolved_config()))]))
        return _write_page(cfg, sections, out, top)

    sections.append(("Found functions", _function_sections(result, out)))

    if isinstance(domain, (Sphere, Circle)):
        key = "degree_energy" if isinstance(domain, Sphere) else "frequency_energy"
        energies = np.array([[m[key] for m in f["per_seed"]] for f in metrics["functions"]])
        png = figures.energy_bars(
            energies,
            out / "energy.png",
            xlabel="harmonic degree" if isinstance(domain, Sphere) else "frequency",
            titles=[f"f{k + 1}" for k in range(len(funcs))],
            seeds=seeds,
        )
        what = "degree" if isinstance(domain, Sphere) else "frequency"
        sections.append(
            ("Spectrum", [H.figure(png, f"Fraction of ‖f‖² per {what}, one bar per seed (last bar, “>”: all higher "
                                        f"{what}s).")])
        )

    theory = _theory_section(result, out)
    if theory:
        sections.append(("Theory (eigenlearning)", theory))

    if "overlap" in result.arrays:
        labels = [f"f{k + 1}" for k in range(len(funcs))]
        png = figures.matrix_heatmaps(result.arrays["overlap"], labels, [f"seed {s}" for s in seeds],
                                      out / "overlaps.png")
        sections.append(("Overlaps", [H.figure(png, "Overlap of every pair of functions of the series, per seed: "
                                                    "cosine of their un-centred inner product on the evaluation "
                                                    "points (0: orthogonal).")]))

    if cfg.kind == "contrast":
        per = metrics["functions"][0]["per_seed"]
        names = (_learner_label(comp.learner_specs()[0]) + " (A)", _learner_label(comp.learner_specs()[1]) + " (B)")
        png = figures.paired_bars(
            [m["gen_mse"] for m in per],
            [m["gen_mse_b"] for m in per],
            [f"seed {m['seed']}" for m in per],
            names,
            out / "contrast.png",
            "few-shot generalisation MSE",
        )
        sections.append(
            (
                "Contrast",
                [
                    H.figure(png, "Held-out error of learner A and of learner B on the found function, per seed "
                                  "(log scale)."),
                    H.paragraph(f"Objective: {cfg.search.contrast_objective.replace('_', ' ')} of the test errors "
                                "of A and B."),
                ],
            )
        )

    sections.append(("Resolved config", [H.preformatted(tomli_w.dumps(result.resolved_config()))]))
    return _write_page(cfg, sections, out, top)


def _write_page(cfg, sections: list[tuple[str, list[str]]], out: Path, top: list[str]) -> Path:
    title = cfg.title or f"learnscope bias: {cfg.kind}"
    path = out / "report.html"
    atomic_write(path, H.page(title, sections, subtitle=cfg.description, top=top))
    return path
