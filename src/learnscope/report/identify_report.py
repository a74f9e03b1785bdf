"""The figures and ``report.html`` of :func:`learnscope.identify.analyses.run_all`.

:func:`write_report` takes the results dict (as written to ``metrics.json``) and draws one PNG per analysis into
``out_dir`` (``identify_*.png``), then writes a self-contained ``out_dir/report.html`` (figures inlined). Any
analysis missing from the dict, or marked ``{"skipped": reason}``, gets its section with the reason instead of a
figure, so a partial results dict still gives a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnscope.report import html as H  # noqa: E402

CLASS_COLOURS = {"weight": "tab:blue", "act": "tab:orange", "grad": "tab:green", "all": "tab:purple"}
MODE_COLOURS = {"first-k": "tab:red", "spread-k": "tab:green", "last-k": "tab:blue", "every-m": "tab:orange",
                "end-only": "black", "full": "tab:gray"}
LINESTYLES = ("-", "--", ":", "-.")
SECTIONS = ("Data", "Main table", "Confusion matrix", "Measurement noise", "Unit subsampling",
            "Temporal subsampling", "Held-out generalisation", "Permutation importance", "Performance-only baseline",
            "Skipped analyses", "Settings and timing")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _num(v: object) -> float:
    return float("nan") if v is None else float(v)


def _pm(mean: object, sem: object) -> str:
    m, s = _num(mean), _num(sem)
    if np.isnan(m):
        return "n/a"
    return f"{m:.3f} ± {s:.3f}" if not np.isnan(s) else f"{m:.3f}"


def _chance_line(ax: plt.Axes, chance: float | None) -> None:
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")


def _unavailable(res: object) -> str | None:
    """The reason a section has nothing to show, or None."""
    if res is None:
        return "not run (missing from the results)"
    if isinstance(res, dict) and "skipped" in res:
        return f"skipped: {res['skipped']}"
    return None


# --------------------------------------------------------------------------------------------------------------
# figures


def main_bars(main: dict, path: Path) -> Path:
    """Bars of accuracy ± s.e.m. per observable class (network splits), one bar per classifier, plus ``all`` with
    row-level splits (hatched)."""
    classes, clfs = main["obs_classes"], main["classifiers"]
    cells = {(c["obs_class"], c["classifier"]): c for c in main["cells"]}
    rows = {c["classifier"]: c for c in main.get("row_cells", [])}
    labels = [*classes, "all\n(row split)"]
    x = np.arange(len(labels))
    width = 0.8 / len(clfs)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(labels), 3.4))
    for i, clf in enumerate(clfs):
        vals = [cells[(o, clf)] for o in classes] + [rows.get(clf)]
        means = [_num(v["accuracy_mean"]) if v else np.nan for v in vals]
        sems = [_num(v["accuracy_sem"]) if v else np.nan for v in vals]
        bars = ax.bar(x + (i - (len(clfs) - 1) / 2) * width, means, width=width, yerr=sems, capsize=3, label=clf)
        bars[-1].set_hatch("//")
    _chance_line(ax, main.get("chance"))
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"rule identification on {main['condition']!r} (network-grouped splits)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(best: dict, path: Path) -> Path:
    """Confusion matrix summed over splits (rows actual, columns predicted), coloured by row fraction."""
    cm = np.asarray(best["confusion_matrix"], dtype=np.float64)
    labels = best["labels"]
    frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * n, 1.2 + 0.7 * n))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}\n{frac[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted rule")
    ax.set_ylabel("actual rule")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the row")
    ax.set_title(f"{best['classifier']} on all observables", fontsize=9)
    return _save(fig, path)


def _curve_panel(ax: plt.Axes, curve: dict, xkey: str, chance: float | None) -> None:
    if not curve or not curve.get("available"):
        ax.text(0.5, 0.5, (curve or {}).get("reason", "no conditions"), ha="center", va="center", fontsize=8,
                wrap=True, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    clfs = list(dict.fromkeys(p["classifier"] for p in curve["points"]))
    for ci, clf in enumerate(clfs):
        for o in CLASS_COLOURS:
            pts = sorted((p for p in curve["points"] if p["classifier"] == clf and p["obs_class"] == o),
                         key=lambda p: p[xkey])
            if not pts:
                continue
            ax.errorbar([p[xkey] for p in pts], [_num(p["accuracy_mean"]) for p in pts],
                        yerr=[_num(p["accuracy_sem"]) for p in pts], color=CLASS_COLOURS[o],
                        ls=LINESTYLES[ci % len(LINESTYLES)], marker="o", ms=4, capsize=2,
                        label=f"{o} ({clf})" if len(clfs) > 1 else o)
    _chance_line(ax, chance)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)


def noise_figure(noise: dict, path: Path, chance: float | None = None) -> Path:
    """Accuracy vs σ for weight / act / all: absolute noise (left) and relative noise (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), squeeze=False)
    for ax, kind in zip(axes[0], ("absolute", "relative"), strict=True):
        _curve_panel(ax, noise.get(kind), "sigma", chance)
        ax.set_xlabel("σ (absolute units)" if kind == "absolute" else "σ (× the observed tensor's std)")
        ax.set_title(f"{kind} measurement noise", fontsize=10)
    return _save(fig, path)


def subsampling_figure(sub: dict, path: Path, chance: float | None = None) -> Path:
    """Accuracy vs the fraction of units kept, for weight / act / all (clean = 1)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    _curve_panel(ax, sub, "frac", chance)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of units kept")
    ax.set_title("unit subsampling", fontsize=10)
    return _save(fig, path)


def temporal_figure(temp: dict, path: Path, chance: float | None = None) -> Path:
    """Accuracy of ``all`` vs the number of checkpoints kept, one line per selection mode, a panel per
    classifier."""
    clfs = temp["classifiers"]
    fig, axes = plt.subplots(1, len(clfs), figsize=(5 * len(clfs), 3.4), squeeze=False)
    for ax, clf in zip(axes[0], clfs, strict=True):
        for mode, colour in MODE_COLOURS.items():
            pts = sorted((p for p in temp["points"] if p["classifier"] == clf and p["mode"] == mode),
                         key=lambda p: p["n_kept"])
            if not pts:
                continue
            ax.errorbar([p["n_kept"] for p in pts], [_num(p["accuracy_mean"]) for p in pts],
                        yerr=[_num(p["accuracy_sem"]) for p in pts], color=colour, marker="o", ms=4, capsize=2,
                        ls="-" if len(pts) > 1 else "none", label=mode)
        _chance_line(ax, chance)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"checkpoints kept (of {temp['n_checkpoints']})")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"temporal subsampling, {clf} on all", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def heldout_figure(held: dict, path: Path) -> Path:
    """Accuracy per held-out architecture / task value and their mean, a bar per classifier; a dashed line per
    classifier marks its within-distribution (network-split) accuracy."""
    parts = [p for p in ("architecture", "task") if (held.get(p) or {}).get("available")]
    fig, axes = plt.subplots(1, max(len(parts), 1), figsize=(5.2 * max(len(parts), 1), 3.4), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=False):
        per = held[part]["per_classifier"]
        values = [v["held_out"] for v in per[0]["values"]]
        labels = [*values, "mean"]
        x = np.arange(len(labels))
        width = 0.8 / len(per)
        for i, pc in enumerate(per):
            acc = {v["held_out"]: _num(v["accuracy"]) for v in pc["values"]}
            heights = [acc.get(v, np.nan) for v in values] + [_num(pc["mean_accuracy"])]
            bars = ax.bar(x + (i - (len(per) - 1) / 2) * width, heights, width=width, label=pc["classifier"])
            ax.axhline(_num(pc["network_split_accuracy"]), color=bars[0].get_facecolor(), ls="--", lw=1)
        _chance_line(ax, held.get("chance"))
        ax.set_xticks(x, labels, rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"held-out {part}", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def importance_figure(imp: dict, path: Path) -> Path:
    """Permutation importance summed per statistic (sorted, left) and per checkpoint (right), mean ± s.e.m. over
    splits."""
    stats = imp["per_statistic"]
    ckpts = imp["per_checkpoint"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.8 + 0.24 * len(stats)), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    y = np.arange(len(stats))[::-1]
    colours = [CLASS_COLOURS["weight"] if s["name"].startswith("weight") else
               CLASS_COLOURS["act"] if s["name"].startswith("act") else CLASS_COLOURS["grad"] for s in stats]
    ax.barh(y, [_num(s["importance_mean"]) for s in stats], xerr=[_num(s["importance_sem"]) for s in stats],
            color=colours, capsize=2)
    ax.set_yticks(y, [s["name"] for s in stats], fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("accuracy drop (summed over checkpoints)")
    ax.set_title(f"per statistic ({imp['classifier']})", fontsize=10)
    ax = axes[1]
    ax.bar([str(c["checkpoint"]) for c in ckpts], [_num(c["importance_mean"]) for c in ckpts],
           yerr=[_num(c["importance_sem"]) for c in ckpts], color="tab:gray", capsize=2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("checkpoint index")
    ax.set_ylabel("accuracy drop (summed over statistics)")
    ax.set_title("per checkpoint", fontsize=10)
    return _save(fig, path)


def performance_figure(perf: dict, path: Path, chance: float | None = None) -> Path:
    """Performance-only baseline vs all observables, a pair of bars per classifier."""
    comp = perf["comparison"]
    cells = {c["classifier"]: c for c in perf["cells"]}
    obs = {c["classifier"]: c for c in perf["observables"]}
    x = np.arange(len(comp))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(comp), 3.2))
    ax.bar(x - 0.2, [_num(cells[c["classifier"]]["accuracy_mean"]) for c in comp], width=0.4,
           yerr=[_num(cells[c["classifier"]]["accuracy_sem"]) for c in comp], capsize=3,
           label="loss / accuracy curves only", color="tab:gray")
    ax.bar(x + 0.2, [_num(obs[c["classifier"]]["accuracy_mean"]) for c in comp], width=0.4,
           yerr=[_num(obs[c["classifier"]]["accuracy_sem"]) for c in comp], capsize=3,
           label="all observables", color=CLASS_COLOURS["all"])
    _chance_line(ax, chance)
    ax.set_xticks(x, [c["classifier"] for c in comp])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------------------
# text


_PHRASES = {
    "holds": "holds (activations are more robust than weights)",
    "reversed": "is reversed (weights are more robust than activations)",
    "no difference": "is not visible: act and weight accuracies differ by less than the margin",
    "mixed": "is mixed across noise levels",
    "untested": "cannot be judged (no noisy condition)",
}


def ordering_sentences(noise: dict | None) -> list[str]:
    """One sentence per (noise kind, classifier) on the act-vs-weight robustness ordering, from the verdicts and
    differences in ``noise`` (see :func:`learnscope.identify.analyses.ordering_verdict`), plus a closing remark
    when the ordering holds under absolute noise but not under relative noise."""
    if noise is None or "skipped" in noise:
        return ["The act-vs-weight robustness ordering could not be tested: the store has no noise conditions."]
    out, verdicts = [], {}
    for kind in ("absolute", "relative"):
        curve = noise.get(kind) or {}
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
                       "weights are much smaller than activations (identify-spec §8 item 4).")
    return out


def _acc_table(records: Sequence[dict], xkey: str) -> str:
    rows = [[r["classifier"], r[xkey], r["condition"], r["obs_class"], _pm(r["accuracy_mean"], r["accuracy_sem"]),
             _pm(r["balanced_accuracy_mean"], r["balanced_accuracy_sem"])] for r in records]
    return H.table(["classifier", xkey, "condition", "observables", "accuracy", "balanced accuracy"], rows)


def _diff_table(diffs: Sequence[dict], xkey: str) -> str:
    return H.table(["classifier", xkey, "condition", "acc(act) − acc(weight)"],
                   [[d["classifier"], d[xkey], d["condition"], _pm(d["difference"], d["difference_sem"])]
                    for d in diffs])


# --------------------------------------------------------------------------------------------------------------
# sections


def _data_section(results: dict) -> list[str]:
    d = results.get("dataset")
    if not d:
        return [H.paragraph("No dataset summary in the results.")]
    rows = [["source", d.get("source") or "(frames)"], ["clean condition", d["clean_condition"]],
            ["networks (by status)", ", ".join(f"{k} {v}" for k, v in d["status_counts"].items())],
            ["rows (network × layer)", d["n_rows"]], ["checkpoints", d["n_checkpoints"]],
            ["networks per rule", ", ".join(f"{k} {v}" for k, v in d["networks_per_rule"].items())],
            ["tasks", ", ".join(d["tasks"])], ["architectures", ", ".join(d["architectures"])],
            ["conditions", ", ".join(c["name"] for c in d["conditions"])]]
    if d.get("unspecified_conditions"):
        rows.append(["conditions without parameters (unused)", ", ".join(d["unspecified_conditions"])])
    return [H.table(["", ""], rows)]


def _main_section(main: dict | None, out: Path) -> list[str]:
    why = _unavailable(main)
    if why:
        return [H.paragraph(why, note=True)]
    cells = {(c["obs_class"], c["classifier"]): c for c in main["cells"]}
    rows = [[o] + [f"{_pm(cells[(o, c)]['accuracy_mean'], cells[(o, c)]['accuracy_sem'])} "
                   f"(bal. {_num(cells[(o, c)]['balanced_accuracy_mean']):.3f})" for c in main["classifiers"]]
            for o in main["obs_classes"]]
    gap_rows = [[g["classifier"], _pm(g["row"]["accuracy_mean"], g["row"]["accuracy_sem"]),
                 _pm(g["network"]["accuracy_mean"], g["network"]["accuracy_sem"]), g["gap"]]
                for g in main["row_vs_network"]]
    png = main_bars(main, out / "identify_main_table.png")
    return [
        H.figure(png, "Test accuracy, mean ± s.e.m. over network-grouped splits; hatched: 'all' with the original "
                      "row-level splits; dotted: chance."),
        H.table(["observables"] + list(main["classifiers"]), rows),
        H.paragraph(f"Chance is {main['chance']:.3f} ({len(main['labels'])} rules). Numbers are mean ± s.e.m. "
                    "over network-grouped splits (all layers of a network on one side); 'bal.' is balanced "
                    "accuracy."),
        H.paragraph("Leakage check: row-level splits (the original protocol) put layers of one network on both "
                    "sides of a split; the gap below is row − network accuracy."),
        H.table(["classifier", "row-level splits", "network-grouped splits", "gap"], gap_rows),
    ]


def _confusion_section(main: dict | None, out: Path) -> list[str]:
    why = _unavailable(main)
    if why:
        return [H.paragraph(why, note=True)]
    best = main["best"]
    png = confusion(best, out / "identify_confusion.png")
    recall = ", ".join(f"{k} {_num(v):.2f}" for k, v in best["per_class_recall"].items())
    return [H.figure(png, f"Confusion matrix of the best classifier on all observables ({best['classifier']}, "
                          f"accuracy {_pm(best['accuracy_mean'], best['accuracy_sem'])}), summed over splits; "
                          "rows are the actual rule."),
            H.paragraph(f"Per-rule recall: {recall}.")]


def _noise_section(noise: dict | None, out: Path, chance: float | None) -> list[str]:
    why = _unavailable(noise)
    parts = [H.paragraph(s, note=True) for s in ordering_sentences(noise)]
    if why:
        return [H.paragraph(why, note=True)] + parts
    png = noise_figure(noise, out / "identify_noise.png", chance)
    parts.insert(0, H.figure(png, "Accuracy vs measurement-noise σ (σ = 0 is the clean condition), network-grouped "
                                  "splits; left absolute σ (the original), right σ relative to each tensor's std."))
    for kind in ("absolute", "relative"):
        curve = noise.get(kind) or {}
        if curve.get("available"):
            parts += [H.paragraph(f"{kind.capitalize()} noise: accuracy(act) − accuracy(weight) per σ "
                                  "(paired over splits, mean ± s.e.m.)."),
                      _diff_table(curve["act_minus_weight"], "sigma")]
    return parts


def _subsampling_section(sub: dict | None, out: Path, chance: float | None) -> list[str]:
    why = _unavailable(sub)
    if why:
        return [H.paragraph(why, note=True)]
    png = subsampling_figure(sub, out / "identify_subsampling.png", chance)
    return [H.figure(png, "Accuracy vs the fraction of units (synapses for weights) kept; 1.0 is the clean "
                          "condition."),
            H.paragraph(sub["note"], note=True),
            _acc_table(sub["points"], "frac"),
            _diff_table(sub["act_minus_weight"], "frac")]


def _temporal_section(temp: dict | None, out: Path, chance: float | None) -> list[str]:
    why = _unavailable(temp)
    if why:
        return [H.paragraph(why, note=True)]
    png = temporal_figure(temp, out / "identify_temporal.png", chance)
    rows = [[p["classifier"], p["mode"], p["k"], " ".join(map(str, p["checkpoints"])),
             _pm(p["accuracy_mean"], p["accuracy_sem"])] for p in temp["points"]]
    sentences = []
    for clf, a in temp["acceptance"].items():
        if a.get("spread3_ge_first3") is None:
            sentences.append(f"{clf}: spread-3 vs first-3 not tested ({a.get('reason')}).")
        else:
            word = "≥" if a["spread3_ge_first3"] else "<"
            sentences.append(f"{clf}: spread-3 accuracy {_num(a['spread3']):.3f} {word} first-3 accuracy "
                             f"{_num(a['first3']):.3f} (paired difference {_pm(a['difference'], a['difference_sem'])})"
                             f"; the spec's check (spread ≥ early window) "
                             f"{'passes' if a['spread3_ge_first3'] else 'fails'}.")
    return [H.figure(png, "Accuracy of all observables when only some checkpoints are available: an early window "
                          "(first-k), evenly spread (spread-k), a late window (last-k), every m-th, the last one."),
            *[H.paragraph(s, note=True) for s in sentences],
            H.table(["classifier", "mode", "k / m", "checkpoints", "accuracy"], rows)]


def _heldout_section(held: dict | None, out: Path) -> list[str]:
    why = _unavailable(held)
    if why:
        return [H.paragraph(why, note=True)]
    parts = []
    rows = []
    for part in ("architecture", "task"):
        p = held.get(part) or {}
        if not p.get("available"):
            parts.append(H.paragraph(f"Held-out {part}: {p.get('reason', 'not run')}.", note=True))
            continue
        for pc in p["per_classifier"]:
            for v in pc["values"]:
                rows.append([part, pc["classifier"], v["held_out"], _num(v["accuracy"]),
                             _num(v["balanced_accuracy"]), v["n_test"]])
            rows.append([part, pc["classifier"], "mean", _num(pc["mean_accuracy"]),
                         _num(pc["mean_balanced_accuracy"]), ""])
    if rows:
        png = heldout_figure(held, out / "identify_heldout.png")
        parts.insert(0, H.figure(png, "Accuracy on a held-out architecture / task (train on the others), per value "
                                      "and mean; dashed: the same classifier with network-grouped splits."))
        parts.append(H.table(["held out", "classifier", "value", "accuracy", "balanced accuracy", "test rows"], rows))
    return parts


def _importance_section(imp: dict | None, out: Path) -> list[str]:
    why = _unavailable(imp)
    if why:
        return [H.paragraph(why, note=True)]
    png = importance_figure(imp, out / "identify_importance.png")
    top = imp["per_statistic"][:5]
    cls = imp["per_class"]
    return [H.figure(png, f"Permutation importance of {imp['classifier']} on network-grouped test sets "
                          f"({imp['n_splits']} splits × {imp['n_repeats']} repeats); colours: weight / act / grad."),
            H.paragraph("Most important statistics: " + ", ".join(
                f"{s['name']} ({_pm(s['importance_mean'], s['importance_sem'])})" for s in top)
                + ". Per class: " + ", ".join(f"{k} {_num(v['importance_mean']):.3f}" for k, v in cls.items())
                + f"; layer position {_num(imp['layer_position']['importance_mean']):.3f}."),
            H.paragraph(imp["note"])]


def _performance_section(perf: dict | None, out: Path, chance: float | None) -> list[str]:
    why = _unavailable(perf)
    if why:
        return [H.paragraph(why, note=True)]
    png = performance_figure(perf, out / "identify_performance.png", chance)
    rows = [[c["classifier"], _num(c["performance"]), _num(c["observables"]),
             _pm(c["difference"], c["difference_sem"]), "yes" if c["observables_beat_performance"] else "no"]
            for c in perf["comparison"]]
    return [H.figure(png, "A classifier that sees only the loss / train-accuracy / test-accuracy curves at the same "
                          "checkpoints, against the same classifier on all observables."),
            H.table(["classifier", "curves only", "observables", "observables − curves", "observables better"],
                    rows)]


def write_report(results: dict, out_dir: str | Path) -> Path:
    """Draw the figures of ``results`` (the dict of :func:`~learnscope.identify.analyses.run_all`) into
    ``out_dir`` and write ``out_dir/report.html``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = results.get("main_table")
    chance = main.get("chance") if isinstance(main, dict) else None
    skipped = results.get("skipped") or {}
    settings = results.get("settings") or {}
    timing = results.get("timing") or {}
    sections = [
        ("Data", _data_section(results)),
        ("Main table", _main_section(main, out)),
        ("Confusion matrix", _confusion_section(main, out)),
        ("Measurement noise", _noise_section(results.get("noise_curves"), out, chance)),
        ("Unit subsampling", _subsampling_section(results.get("subsampling_curve"), out, chance)),
        ("Temporal subsampling", _temporal_section(results.get("temporal_curves"), out, chance)),
        ("Held-out generalisation", _heldout_section(results.get("heldout"), out)),
        ("Permutation importance", _importance_section(results.get("importances"), out)),
        ("Performance-only baseline", _performance_section(results.get("performance_baseline"), out, chance)),
        ("Skipped analyses", [H.table(["analysis", "reason"], [[k, v] for k, v in skipped.items()])] if skipped
         else [H.paragraph("None: the store supports every analysis.")]),
        ("Settings and timing", [H.table(["setting", "value"], [[k, str(v)] for k, v in settings.items()]
                                          + [[f"time: {k}", f"{_num(v):.1f} s"]
                                             for k, v in (timing.get("per_analysis_s") or {}).items()]
                                          + ([["time: total", f"{_num(timing['total_s']):.1f} s"],
                                              ["outer-split fits", timing.get("n_fits")]] if timing else []))]),
    ]
    path = out / "report.html"
    path.write_text(H.page("learnscope identify: which learning rule?", sections,
                           subtitle="Rule identification from network observables (identify-spec §6–§7); every "
                                    "accuracy uses network-grouped splits unless marked otherwise."))
    return path
