"""The figures and ``report.html`` of a ``learnscope bias run`` directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tomli_w

from learnscope.bias.experiment import ExperimentResult
from learnscope.domains import Circle, Disc, Sphere, SplitDataset
from learnscope.fileio import atomic_write
from learnscope.report import figures
from learnscope.report import html as H


def _learner_label(spec: dict) -> str:
    """A learner's name, with its learning rule when it is a trained network (``trained, rule fa``)."""
    rule = spec.get("rule")
    if isinstance(rule, dict):
        rule = rule.get("name")
    return f"{spec['name']}, rule {rule}" if isinstance(rule, str) else str(spec["name"])

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
    (``control`` of :func:`~learnscope.bias.experiment.evaluate`), with standard errors over the draws."""
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
            parts.append(H.figure(png, f"f{k + 1}: the first 12 held-out images and their meta-learned labels"))
        if "eval_labels" in arrays:
            png = figures.class_histograms(
                values[:, test], arrays["eval_labels"][test], [f"f{k + 1}, seed {s}" for s in seeds],
                out / f"f{k + 1}_histograms.png",
            )
            parts.append(H.figure(png, f"f{k + 1}: labels of the {int(test.sum())} held-out images, by true class"))
    return parts


def _headline_rows(result: ExperimentResult) -> tuple[list[str], list[list]]:
    domain = result.components.domain
    if isinstance(domain, SplitDataset):
        return _split_rows(result)
    contrast = result.config.kind == "contrast"
    header = ["function", "seed", "label std", "affine R²", "no-bias R²"]
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
            if isinstance(domain, Sphere):
                row += m["degree_energy"][:3]
            row += [m["gen_mse"], m["gen_relative"]]
            if contrast:
                row += [m["gen_mse_b"], m["gen_ratio_b_over_a"]]
            row += [m["compare"][label] for label in compared]
            rows.append(row)
    return header, rows


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


def write_report(result: ExperimentResult, out: Path) -> Path:
    """Draw every figure of the run into ``out`` and write ``out/report.html``; returns its path."""
    cfg, comp, metrics = result.config, result.components, result.metrics
    domain = comp.domain
    seeds = cfg.seeds
    funcs = result.functions
    sections: list[tuple[str, list[str]]] = []

    header, rows = _headline_rows(result)
    summary = [H.table(header, rows)]
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

    png = figures.loss_curves([r.history for r in funcs], seeds, out / "losses.png")
    sections.append(("Meta-training", [H.figure(png, "loss terms per meta-step (one line per seed)")]))

    if isinstance(domain, SplitDataset):
        sections.append(("Found functions", _split_sections(result, out)))
        sections.append(("Resolved config", [H.preformatted(tomli_w.dumps(result.resolved_config()))]))
        return _write_page(cfg, sections, out)

    panels = [
        (f"f{k + 1}, seed {s}", r.function.for_seed(i))
        for k, r in enumerate(funcs)
        for i, s in enumerate(seeds)
    ]
    png = figures.function_panels(
        domain,
        panels,
        out / "functions.png",
        scatter_points=result.eval_points,
        columns=len(seeds) if len(seeds) <= 5 else 3,
    )
    where = {
        Sphere: "longitude/latitude map of the sphere",
        Disc: "heat map on the unit disc",
        Circle: "value along the circle",
    }.get(type(domain), "value on the domain")
    sections.append(("Found functions", [H.figure(png, f"the meta-learned labelling ({where})")]))

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
        sections.append(
            ("Spectrum", [H.figure(png, "fraction of ‖f‖² per degree (last bar: higher degrees)")])
        )

    if "overlap" in result.arrays:
        labels = [f"f{k + 1}" for k in range(len(funcs))]
        figs = [
            H.figure(
                figures.matrix_heatmap(
                    result.arrays["overlap"][i], labels, out / f"overlap_seed{s}.png", f"overlap, seed {s}"
                ),
                f"overlap matrix, seed {s}",
            )
            for i, s in enumerate(seeds)
        ]
        sections.append(("Overlaps", figs))

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
                    H.figure(png, "held-out error of each learner on the found function"),
                    H.paragraph(f"objective: {cfg.search.contrast_objective}"),
                ],
            )
        )

    sections.append(("Resolved config", [H.preformatted(tomli_w.dumps(result.resolved_config()))]))
    return _write_page(cfg, sections, out)


def _write_page(cfg, sections: list[tuple[str, list[str]]], out: Path) -> Path:
    title = cfg.title or f"learnscope bias: {cfg.kind}"
    path = out / "report.html"
    atomic_write(path, H.page(title, sections, subtitle=cfg.description))
    return path
