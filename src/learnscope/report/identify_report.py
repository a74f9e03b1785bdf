"""The ``report.html`` of ``learnscope identify classify``.

:func:`write_report` takes the tables of :func:`learnscope.identify.classify.run_all` (a
:class:`~learnscope.identify.tables.ClassifyResults`, the same dict ``metrics.json`` holds), draws one PNG per
analysis into ``out_dir`` (``identify_*.png``, :mod:`learnscope.report.identify_figures`) and writes a
self-contained ``out_dir/report.html`` (figures inlined); every file is written atomically. The page is built
from :data:`SECTIONS`, one :class:`Section` per heading, each naming the results key it shows. Any analysis
missing from the dict, or marked ``{"skipped": reason}``, gets its section with the reason instead of a figure,
so a partial results dict still gives a report.

In tables, ``–`` marks a number that is not defined: the s.e.m. of a single outer split, or a recall of a rule
that was never tested. Paths are shown as the user named them (:func:`learnscope.fileio.shown`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learnscope.fileio import atomic_write, shown
from learnscope.report import html as H
from learnscope.report.identify_figures import (
    as_float,
    confusion,
    heldout_figure,
    importance_figure,
    main_bars,
    noise_figure,
    performance_figure,
    subsampling_figure,
    temporal_figure,
    unit_count_figure,
)

if TYPE_CHECKING:
    from learnscope.identify.tables import ClassifyResults, NoiseCurves, Skipped

DASH = "–"
TITLE = "learnscope identify: which learning rule?"
SUBTITLE = ("Which learning rule trained these networks, told from what can be recorded of them (weight, activation "
            "and gradient statistics over training). Every accuracy uses network-grouped splits (all layers of a "
            "network on one side of a split) unless marked otherwise and is the mean ± s.e.m. over outer splits; "
            f"{DASH} marks a number that is not defined (an s.e.m. needs at least two splits).")


def _f(v: object, signed: bool = False) -> str:
    """``v`` with 3 decimals (a sign when ``signed``), or ``–`` when undefined."""
    x = as_float(v)
    if np.isnan(x):
        return DASH
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _pm(mean: object, sem: object, signed: bool = False) -> str:
    """``mean ± sem`` with 3 decimals; ``–`` for an undefined part."""
    if np.isnan(as_float(mean)):
        return DASH
    return f"{_f(mean, signed)} ± {_f(sem)}"


def _checkpoints(ckpts: Sequence[int]) -> str:
    """Checkpoint indices, runs of three or more consecutive ones shortened to ``a–b``: ``0–3 7 9``."""
    out: list[str] = []
    i = 0
    while i < len(ckpts):
        j = i
        while j + 1 < len(ckpts) and ckpts[j + 1] == ckpts[j] + 1:
            j += 1
        out += [f"{ckpts[i]}{DASH}{ckpts[j]}"] if j - i >= 2 else [str(c) for c in ckpts[i:j + 1]]
        i = j + 1
    return " ".join(out)


def _selection(mode: str, k: int | None, n_kept: int) -> str:
    """A temporal selection in words: ``first 3``, ``3 spread evenly``, ``every 2nd``, ``last only``, ``all 21``."""
    if mode == "every-m":
        return f"every {k}{'nd' if k == 2 else 'rd' if k == 3 else 'th'}"
    return {"first-k": f"first {k}", "last-k": f"last {k}", "spread-k": f"{k} spread evenly",
            "end-only": "last only", "full": f"all {n_kept}"}.get(mode, mode)


def _unavailable(res: object) -> str | None:
    """The reason a section has nothing to show, or None."""
    if res is None:
        return "not run (missing from the results)"
    if isinstance(res, dict) and "skipped" in res:
        return f"skipped: {res['skipped']}"
    return None


# --------------------------------------------------------------------------------------------------------------
# text


_PHRASES = {
    "holds": "holds (activations are more robust than weights)",
    "reversed": "is reversed (weights are more robust than activations)",
    "no difference": "is not visible: act and weight accuracies differ by less than the margin",
    "mixed": "is mixed across noise levels",
    "untested": "cannot be judged (no noisy condition)",
}


def ordering_sentences(noise: NoiseCurves | Skipped | None) -> list[str]:
    """One sentence per (noise kind, classifier) on the act-vs-weight robustness ordering, from the verdicts and
    differences in ``noise`` (see :func:`learnscope.identify.analyses.ordering_verdict`), plus a closing remark
    when the ordering holds under absolute noise but not under relative noise."""
    if noise is None or "skipped" in noise:
        return ["The act-vs-weight robustness ordering could not be tested: the store has no noise conditions."]
    out, verdicts = [], {}
    for kind in ("absolute", "relative"):
        curve: Any = noise.get(kind) or {}
        if not curve.get("available"):
            out.append(f"Under {kind} noise the ordering cannot be tested: {curve.get('reason', 'no conditions')}.")
            continue
        for clf, o in curve["ordering"].items():
            verdicts[(kind, clf)] = o["verdict"]
            pairs = ", ".join(f"{d:+.3f} at σ = {s:g}" for s, d in zip(o["sigmas"], o["differences"], strict=True)
                              if d is not None)
            out.append(f"Under {kind} noise ({clf}), accuracy(act) − accuracy(weight) is {pairs}: the "
                       f"act-over-weight robustness ordering {_PHRASES[o['verdict']]} (margin ±{o['margin']:g}).")
    for (kind, clf), v in verdicts.items():
        if kind == "absolute" and v == "holds" and verdicts.get(("relative", clf)) in ("reversed", "no difference",
                                                                                       "mixed"):
            out.append(f"With {clf}, activations win under absolute noise but not under noise relative to each "
                       "tensor's spread: the absolute-noise advantage is (at least partly) a scale effect, since "
                       "weights are much smaller than activations.")
    return out


def _acc_table(records: Sequence[dict], xkey: str) -> str:
    rows = [[r["classifier"], f"{r[xkey]:g}", r["condition"], r["obs_class"],
             _pm(r["accuracy_mean"], r["accuracy_sem"]), _pm(r["balanced_accuracy_mean"], r["balanced_accuracy_sem"])]
            for r in records]
    return H.table(["classifier", xkey, "condition", "observables", "accuracy", "balanced accuracy"], rows)


def _diff_table(diffs: Sequence[dict], xkey: str) -> str:
    return H.table(["classifier", xkey, "condition", "acc(act) − acc(weight)"],
                   [[d["classifier"], f"{d[xkey]:g}", d["condition"], _pm(d["difference"], d["difference_sem"], True)]
                    for d in diffs])


def _describe_condition(c: dict) -> str:
    parts = []
    if float(c.get("sigma") or 0) > 0:
        parts.append(f"σ {c['sigma']:g} {c.get('noise_mode', 'absolute')}")
    if c.get("frac") is not None:
        parts.append(f"{100 * float(c['frac']):g}% of units")
    if c.get("units") is not None:
        parts.append(f"{int(c['units'])} units")
    for key, default in (("gradavg_mode", "forward"), ("weight_norm_mode", "rows")):
        if c.get(key, default) != default:
            parts.append(f"{key} {c[key]}")
    return f"{c['name']} ({', '.join(parts)})" if parts else c["name"]


# --------------------------------------------------------------------------------------------------------------
# sections: each takes the whole results dict and the output directory


def _chance(results: ClassifyResults) -> float | None:
    main = results.get("main_table")
    return main.get("chance") if isinstance(main, dict) else None


def _data_section(results: ClassifyResults, out: Path) -> list[str]:
    d = results.get("dataset")
    if not d:
        return [H.paragraph("No dataset summary in the results.", note=True)]
    source = shown(d["source"]) if d.get("source") else "(tables passed in directly, not a store directory)"
    rows = [["store", source], ["clean condition", d["clean_condition"]],
            ["networks by status", ", ".join(f"{k} {v}" for k, v in d["status_counts"].items())],
            ["examples (network × layer, status ok)", d["n_rows"]], ["checkpoints per example", d["n_checkpoints"]],
            ["networks per rule", ", ".join(f"{k} {v}" for k, v in d["networks_per_rule"].items())],
            ["tasks", ", ".join(d["tasks"])], ["objectives", ", ".join(d.get("objectives") or []) or DASH],
            ["architectures", ", ".join(d["architectures"])],
            ["measurement conditions", "; ".join(_describe_condition(c) for c in d["conditions"])]]
    if d.get("unspecified_conditions"):
        rows.append(["conditions without parameters (unused)", ", ".join(d["unspecified_conditions"])])
    return [H.table(["property", "value"], rows), *_task_performance_parts(d.get("task_performance") or [])]


def _task_performance_parts(rows: list[dict]) -> list[str]:
    """Each rule's task performance per objective, and a warning box naming the pairs where it did not learn."""
    from learnscope.identify.task_performance import LEARN_MARGIN, not_learned

    if not rows:
        return []
    verdict = {True: "yes", False: "no", None: DASH}
    table = H.table(["objective", "rule", "measure", "start (median)", "end (median)", "chance",
                     "median improvement", "learns", "networks ok / diverged / failed"],
                    [[r["objective"], r["rule"], r["measure"], _f(r["initial"]), _f(r["final"]), _f(r["chance"]),
                      _f(r["improvement"], signed=True), verdict[r["learns"]],
                      f"{r['n_ok']} / {r['n_diverged']} / {r['n_failed']}"] for r in rows])
    parts = [H.paragraph("Task performance of each rule per objective: test performance at the first and the last "
                         "checkpoint, median over the status-ok networks. A rule learns an objective when its median "
                         "paired improvement and its median final performance above chance both exceed "
                         f"{LEARN_MARGIN:g}."), table]
    missed = not_learned(rows)
    if missed:
        parts.insert(0, H.warning_box("Some rules do not learn some objectives; their networks are in the dataset "
                                      "all the same (a finding about the grid, not a failed run)", missed))
    return parts


def _main_section(results: ClassifyResults, out: Path) -> list[str]:
    main = results.get("main_table")
    why = _unavailable(main)
    if why:
        return [H.paragraph(why, note=True)]
    cells = {(c["obs_class"], c["classifier"]): c for c in main["cells"]}
    rows = [[o] + [f"{_pm(cells[(o, c)]['accuracy_mean'], cells[(o, c)]['accuracy_sem'])} "
                   f"(bal. {_f(cells[(o, c)]['balanced_accuracy_mean'])})" for c in main["classifiers"]]
            for o in main["obs_classes"]]
    gap_rows = [[g["classifier"], _pm(g["row"]["accuracy_mean"], g["row"]["accuracy_sem"]),
                 _pm(g["network"]["accuracy_mean"], g["network"]["accuracy_sem"]), _f(g["gap"], signed=True)]
                for g in main["row_vs_network"]]
    png = main_bars(main, out / "identify_main_table.png")
    return [
        H.figure(png, "Test accuracy, mean ± s.e.m. over network-grouped splits; hatched: 'all' with the original "
                      "row-level splits; dotted: chance."),
        H.table(["observables"] + list(main["classifiers"]), rows),
        H.paragraph(f"Chance is {main['chance']:.3f} ({len(main['labels'])} rules). 'bal.' is balanced accuracy "
                    "(the mean of the per-rule recalls)."),
        H.paragraph("Leakage check: row-level splits (the original protocol) put layers of one network on both "
                    "sides of a split; the gap below is row − network accuracy."),
        H.table(["classifier", "row-level splits", "network-grouped splits", "gap"], gap_rows),
    ]


def _confusion_section(results: ClassifyResults, out: Path) -> list[str]:
    main = results.get("main_table")
    why = _unavailable(main)
    if why:
        return [H.paragraph(why, note=True)]
    best = main["best"]
    png = confusion(best, out / "identify_confusion.png")
    recall = ", ".join(f"{k} {_f(v)}" for k, v in best["per_class_recall"].items())
    return [H.figure(png, f"Confusion matrix of the best classifier on all observables ({best['classifier']}, "
                          f"accuracy {_pm(best['accuracy_mean'], best['accuracy_sem'])}), summed over splits; "
                          "rows are the actual rule, each cell shows the count and the fraction of its row."),
            H.paragraph(f"Per-rule recall: {recall}.")]


def _noise_section(results: ClassifyResults, out: Path) -> list[str]:
    noise = results.get("noise_curves")
    why = _unavailable(noise)
    parts = [H.paragraph(s, note=True) for s in ordering_sentences(noise)]
    if why:
        return [H.paragraph(why, note=True)] + parts
    png = noise_figure(noise, out / "identify_noise.png", _chance(results))
    parts.insert(0, H.figure(png, "Accuracy vs measurement-noise σ (σ = 0 is the clean condition), network-grouped "
                                  "splits; left absolute σ (the original), right σ relative to each tensor's std."))
    for kind in ("absolute", "relative"):
        curve: Any = noise.get(kind) or {}
        if curve.get("available"):
            parts += [H.paragraph(f"{kind.capitalize()} noise: accuracy(act) − accuracy(weight) per σ "
                                  "(paired over splits, mean ± s.e.m.)."),
                      _diff_table(curve["act_minus_weight"], "sigma")]
    return parts


def _subsampling_section(results: ClassifyResults, out: Path) -> list[str]:
    sub = results.get("subsampling_curve")
    why = _unavailable(sub)
    if why:
        return [H.paragraph(why, note=True)]
    png = subsampling_figure(sub, out / "identify_subsampling.png", _chance(results))
    return [H.figure(png, "Accuracy vs the fraction of units (synapses for weights) kept; 1 is the clean "
                          "condition."),
            H.paragraph("With a fraction of units kept, the weight norm is the L2 norm of the kept synapses, not the "
                        "mean row norm, so the weight curve mixes subsampling with a change of definition.",
                        note=True),
            _acc_table(sub["points"], "frac"),
            _diff_table(sub["act_minus_weight"], "frac")]


def _temporal_section(results: ClassifyResults, out: Path) -> list[str]:
    temp = results.get("temporal_curves")
    why = _unavailable(temp)
    if why:
        return [H.paragraph(why, note=True)]
    png = temporal_figure(temp, out / "identify_temporal.png", _chance(results))
    rows = [[p["classifier"], _selection(p["mode"], p["k"], p["n_kept"]), _checkpoints(p["checkpoints"]),
             _pm(p["accuracy_mean"], p["accuracy_sem"])] for p in temp["points"]]
    sentences = []
    for clf, a in temp["acceptance"].items():
        if a.get("spread3_ge_first3") is None:
            sentences.append(f"{clf}: 3 spread-out checkpoints vs the first 3 not compared ({a.get('reason')}).")
        else:
            word = "≥" if a["spread3_ge_first3"] else "<"
            verdict = "as expected" if a["spread3_ge_first3"] else "against expectation"
            sentences.append(f"{clf}: 3 checkpoints spread over training give accuracy {_f(a['spread3'])} {word} "
                             f"{_f(a['first3'])} from the first 3 (paired difference "
                             f"{_pm(a['difference'], a['difference_sem'], True)}), {verdict}: a view spread over "
                             "learning should tell rules apart at least as well as an early window.")
    return [H.figure(png, "Accuracy of all observables when only some checkpoints are available: an early window "
                          "(first-k), evenly spread (spread-k), a late window (last-k), every m-th, the last one."),
            *[H.paragraph(s, note=True) for s in sentences],
            H.table(["classifier", "checkpoints kept", "checkpoint indices", "accuracy"], rows)]


def _heldout_section(results: ClassifyResults, out: Path) -> list[str]:
    held = results.get("heldout")
    why = _unavailable(held)
    if why:
        return [H.paragraph(why, note=True)]
    parts = []
    rows = []
    for part in ("architecture", "task", "objective"):
        p: Any = held.get(part) or {}
        if not p.get("available"):
            parts.append(H.paragraph(f"Held-out {part}: {p.get('reason', 'not run')}.", note=True))
            continue
        for pc in p["per_classifier"]:
            for v in pc["values"]:
                rows.append([part, pc["classifier"], v["held_out"], _f(v["accuracy"]), _f(v["balanced_accuracy"]),
                             v["n_test"]])
            rows.append([part, pc["classifier"], "mean over values", _f(pc["mean_accuracy"]),
                         _f(pc["mean_balanced_accuracy"]), sum(v["n_test"] for v in pc["values"])])
    if rows:
        png = heldout_figure(held, out / "identify_heldout.png")
        parts.insert(0, H.figure(png, "Accuracy on a held-out architecture / task / objective (train on the others), "
                                      "per value and mean; dashed: the same classifier with network-grouped "
                                      "splits."))
        parts.append(H.muted("A task is the dataset (the task name before ':'), so held-out task and held-out "
                             "objective are different questions; an objective is what the network was trained for."))
        parts.append(H.table(["held out", "classifier", "value", "accuracy", "balanced accuracy", "test rows"], rows))
    return parts


def _importance_section(results: ClassifyResults, out: Path) -> list[str]:
    imp = results.get("importances")
    why = _unavailable(imp)
    if why:
        return [H.paragraph(why, note=True)]
    png = importance_figure(imp, out / "identify_importance.png")
    top = imp["per_statistic"][:5]
    cls = imp["per_class"]
    note = imp["note"]
    return [H.figure(png, f"Permutation importance of {imp['classifier']} on network-grouped test sets "
                          f"({imp['n_splits']} splits × {imp['n_repeats']} repeats); colours: weight / act / grad."),
            H.paragraph("Most important statistics: " + ", ".join(
                f"{s['name']} ({_pm(s['importance_mean'], s['importance_sem'])})" for s in top)
                + ". Per class: " + ", ".join(f"{k} {_f(v['importance_mean'])}" for k, v in cls.items())
                + f"; layer position {_f(imp['layer_position']['importance_mean'])}."),
            H.paragraph(note[:1].upper() + note[1:] + ".")]


def _performance_section(results: ClassifyResults, out: Path) -> list[str]:
    perf = results.get("performance_baseline")
    why = _unavailable(perf)
    if why:
        return [H.paragraph(why, note=True)]
    png = performance_figure(perf, out / "identify_performance.png", _chance(results))
    rows = [[c["classifier"], _f(c["performance"]), _f(c["observables"]),
             _pm(c["difference"], c["difference_sem"], True), "yes" if c["observables_beat_performance"] else "no"]
            for c in perf["comparison"]]
    return [H.figure(png, "A classifier that sees only the loss / train-accuracy / test-accuracy curves at the same "
                          "checkpoints, against the same classifier on all observables."),
            H.table(["classifier", "curves only", "observables", "observables − curves", "observables better"],
                    rows)]


def _objective_section(results: ClassifyResults, out: Path) -> list[str]:
    res = results.get("objective_tables")
    why = _unavailable(res)
    if why:
        return [H.paragraph(why, note=True)]
    clfs, classes = res["classifiers"], res["obs_classes"]
    cells = {(s["objective"], s["classifier"], s["obs_class"]): s for s in res["summary"]}
    names = ["pooled", *[o for o in res["objectives"] if "cells" in res["per_objective"][o]]]
    header = ["objective", "networks", "chance"] + [f"{o} ({c})" if len(clfs) > 1 else o for c in clfs
                                                   for o in classes]
    rows = []
    for name in names:
        first = next(s for s in res["summary"] if s["objective"] == name)
        rows.append([name, first["n_networks"], _f(first["chance"])]
                    + [_pm(cells[(name, c, o)]["accuracy_mean"], cells[(name, c, o)]["accuracy_sem"])
                       for c in clfs for o in classes])
    notes = [H.paragraph(f"Objective {o}: {t['reason']}.", note=True) for o, t in res["per_objective"].items()
             if "cells" not in t]
    return [H.paragraph("The main table on every network (pooled) and on the networks of each objective alone: "
                        "accuracy, mean ± s.e.m. over network-grouped splits within that set of networks."),
            H.table(header, rows), *notes]


def _unit_count_section(results: ClassifyResults, out: Path) -> list[str]:
    res = results.get("unit_count_curve")
    why = _unavailable(res)
    if why:
        return [H.paragraph(why, note=True)]
    png = unit_count_figure(res, out / "identify_unit_count.png", _chance(results))
    by = {(p["classifier"], p["obs_class"], p["units"]): p for p in res["points"]}
    full = {(f["classifier"], f["obs_class"]): f for f in res["full"]}
    rows = []
    for clf in res["classifiers"]:
        for units in res["units"]:
            rows.append([clf, units] + [_pm(by[(clf, o, units)]["accuracy_mean"], by[(clf, o, units)]["accuracy_sem"])
                                        if (clf, o, units) in by else "not recorded" for o in res["obs_classes"]])
        rows.append([clf, "full layer"] + [_pm(full[(clf, o)]["accuracy_mean"], full[(clf, o)]["accuracy_sem"])
                                           for o in res["obs_classes"]])
    sentences = []
    for r in res["reach"]:
        what = "Activations" if r["obs_class"] == "act" else "Weights"
        if r["units_within_margin"] is None:
            tail = "at none of the counts tested"
        else:
            tail = f"from {r['units_within_margin']} recorded units on"
        sentences.append(f"{what} ({r['classifier']}) come within {r['margin']:g} of their full-layer accuracy "
                         f"({_f(r['full_accuracy'])}) {tail}.")
    parts = [H.figure(png, "Accuracy vs the number of recorded units per layer (the same units at every "
                           "checkpoint); dashed: the full layer (clean condition); dotted: chance."),
             *[H.paragraph(s, note=True) for s in sentences],
             H.table(["classifier", "recorded units", *res["obs_classes"]], rows),
             H.muted(res["note"][:1].upper() + res["note"][1:] + ".")]
    if res["small_layers_all"]:
        parts.append(H.muted("Layers with fewer units than the count record all of their units in: "
                             + ", ".join(res["small_layers_all"]) + "."))
    return parts


def _range_text(r: Sequence[float]) -> str:
    if not r:
        return DASH
    return f"{r[0]:.3g}" if r[0] == r[1] else f"{r[0]:.3g}–{r[1]:.3g}"


_HP_NAMES = {"batch_size": "batch size", "lr": "learning rate (× the rule's base lr)"}
_HP_SHORT = {"batch_size": "batch size", "lr": "learning rate"}


def _hyperparameter_section(results: ClassifyResults, out: Path) -> list[str]:
    res = results.get("heldout_hyperparameters")
    why = _unavailable(res)
    if why:
        return [H.paragraph(why, note=True)]
    rows, notes = [], []
    for parameter in ("batch_size", "lr"):
        p: Any = res.get(parameter) or {}
        name = _HP_NAMES[parameter]
        if not p.get("available"):
            notes.append(H.paragraph(f"Held-out {name}: {p.get('reason', 'not run')}.", note=True))
            continue
        for pc in p["per_classifier"]:
            for e in pc["ends"]:
                rows.append([name, pc["classifier"], f"{_range_text(p['middle_range'])} → {e['end']} end "
                             f"{_range_text(e['range'])}", e["n_test_networks"], _f(e["accuracy"]),
                             _f(e["reverse_accuracy"])])
            rows.append([name, pc["classifier"], "both ends", sum(e["n_test_networks"] for e in pc["ends"]),
                         _f(pc["accuracy"]), DASH])
    parts = [*notes]
    if rows:
        means = "; ".join(f"{m['classifier']} {_f(m['accuracy'])} (over {', '.join(_HP_SHORT[p] for p in m['parts'])})"
                          for m in res["mean"] if m["accuracy"] is not None)
        parts = [H.table(["hyperparameter", "classifier", "train on the middle → test on", "test networks",
                          "accuracy", "reverse (train on the end)"], rows),
                 H.paragraph(f"Mean over the hyperparameters: {means}; chance {_f(res['chance'])}."), *notes]
    parts.append(H.muted(res["definition"][:1].upper() + res["definition"][1:] + "."))
    return parts


def _matched_section(results: ClassifyResults, out: Path) -> list[str]:
    res = results.get("performance_matched")
    why = _unavailable(res)
    if why:
        return [H.paragraph(why, note=True)]
    rows = [[c["classifier"], c["obs_class"], _pm(c["unmatched"]["accuracy_mean"], c["unmatched"]["accuracy_sem"]),
             _pm(c["matched"]["accuracy_mean"], c["matched"]["accuracy_sem"]),
             _pm(c["difference"], c["difference_sem"], True), _f(res["chance"])] for c in res["comparison"]]
    obj_rows = []
    for o in res["objectives"]:
        if o["available"]:
            obj_rows.append([o["objective"], o["measure"], ", ".join(f"{v:.3g}" for v in o["levels"]),
                             ", ".join(f"{v:.1f}" for v in o["fixed_positions"]),
                             f"{o['n_kept']} of {o['n_networks']}"])
        else:
            obj_rows.append([o["objective"], o["measure"], f"not matched: {o['reason']}", DASH,
                             f"0 of {o['n_networks']}"])
    return [H.paragraph(f"Rules compared at equal task performance ({res['n_levels']} levels per objective) "
                        "against the same networks at fixed points of training: if the matched accuracy falls to "
                        "chance, the classifier named the rules by how fast they learn."),
            H.table(["classifier", "observables", "unmatched (fixed positions)", "performance-matched",
                     "matched − unmatched", "chance"], rows),
            H.table(["objective", "performance measure", "matched levels", "fixed positions (checkpoint index)",
                     "networks kept"], obj_rows),
            H.muted(f"Curves: {res['curve_source']}. " + res["definition"][:1].upper() + res["definition"][1:]
                    + ".")]


def _skipped_section(results: ClassifyResults, out: Path) -> list[str]:
    skipped = results.get("skipped") or {}
    if not skipped:
        return [H.paragraph("Nothing was skipped: the store supports every analysis.")]
    return [H.table(["analysis", "reason"], [[k, v] for k, v in skipped.items()])]


_SETTING_NAMES = {
    "classifiers": "classifiers (main and per-objective tables, held-out, baseline)",
    "curve_classifiers": "classifiers for the curves and the performance-matched control",
    "importance_classifier": "classifier for the importances", "grid": "hyper-parameter grid",
    "n_splits": "outer splits", "split_mode": "outer split mode", "test_size": "test fraction of each rule",
    "n_repeats": "permutation repeats",
}


def _settings_section(results: ClassifyResults, out: Path) -> list[str]:
    settings: dict = dict(results.get("settings") or {})
    timing: Any = results.get("timing") or {}
    rows = [[_SETTING_NAMES.get(k, k), ", ".join(map(str, v)) if isinstance(v, list) else str(v)]
            for k, v in settings.items()]
    per_analysis = timing.get("per_analysis_s") or {}
    jobs = int(timing.get("jobs") or 1)
    if jobs > 1:  # the fits ran first, in parallel: what each analysis cost is its fits' time
        rows += [[f"fit time: {k.replace('_', ' ')}", f"{as_float(v):.1f} s"]
                 for k, v in (timing.get("fit_s_per_analysis") or {}).items()]
        rows += [[f"time: parallel fits ({jobs} processes)", f"{as_float(per_analysis.get('parallel_fits')):.1f} s"]]
    else:
        rows += [[f"time: {k.replace('_', ' ')}", f"{as_float(v):.1f} s"] for k, v in per_analysis.items()]
    if timing:
        rows += [["time: total", f"{as_float(timing['total_s']):.1f} s"], ["outer-split fits", timing.get("n_fits")]]
    return [H.table(["setting", "value"], rows)]


@dataclass(frozen=True)
class Section:
    """One heading of the report: ``title``, the results key it shows, and ``build(results, out_dir)`` → HTML
    fragments (drawing its figures into ``out_dir``)."""

    title: str
    key: str
    build: Callable[[Any, Path], list[str]]


SECTIONS: tuple[Section, ...] = (
    Section("Data", "dataset", _data_section),
    Section("Main table", "main_table", _main_section),
    Section("Confusion matrix", "main_table", _confusion_section),
    Section("Per-objective main tables", "objective_tables", _objective_section),
    Section("Measurement noise", "noise_curves", _noise_section),
    Section("Unit subsampling", "subsampling_curve", _subsampling_section),
    Section("Recorded-unit count", "unit_count_curve", _unit_count_section),
    Section("Temporal subsampling", "temporal_curves", _temporal_section),
    Section("Held-out generalisation", "heldout", _heldout_section),
    Section("Held-out hyperparameters", "heldout_hyperparameters", _hyperparameter_section),
    Section("Permutation importance", "importances", _importance_section),
    Section("Performance-only baseline", "performance_baseline", _performance_section),
    Section("Performance-matched control", "performance_matched", _matched_section),
    Section("Skipped analyses", "skipped", _skipped_section),
    Section("Settings and timing", "settings", _settings_section),
)
"""The report, in order: each section's title and builder, declared once."""


def write_report(results: ClassifyResults | dict, out_dir: str | Path) -> Path:
    """Draw the figures of ``results`` (:func:`~learnscope.identify.classify.run_all`'s tables, or the same dict
    read back from ``metrics.json``) into ``out_dir`` and write ``out_dir/report.html``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = [(s.title, s.build(results, out)) for s in SECTIONS]
    return atomic_write(out / "report.html", H.page(TITLE, sections, subtitle=SUBTITLE))
