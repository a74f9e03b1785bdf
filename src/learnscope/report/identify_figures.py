"""The figures of the identify report (:mod:`learnscope.report.identify_report`), one function per analysis.

Each function takes one analysis table of :mod:`learnscope.identify.tables`, draws one PNG into ``path``
(atomically, through :func:`learnscope.report.figures.save_figure`) and returns the path. Axes of checkpoints
label at most :data:`MAX_TICKS` integer ticks, so the labels never run together however many checkpoints a store has.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from learnscope.report.figures import save_figure as _save  # sets the Agg backend

if TYPE_CHECKING:
    from learnscope.identify.tables import (
        Best,
        Heldout,
        Importances,
        MainTable,
        NoiseCurves,
        PerformanceBaseline,
        SubsamplingCurve,
        TemporalCurves,
        UnitCountCurve,
    )

CLASS_COLOURS = {"weight": "tab:blue", "act": "tab:orange", "grad": "tab:green", "all": "tab:purple"}
MODE_COLOURS = {"first-k": "tab:red", "spread-k": "tab:green", "last-k": "tab:blue", "every-m": "tab:orange",
                "end-only": "black", "full": "tab:gray"}
LINESTYLES = ("-", "--", ":", "-.")
MAX_TICKS = 10
"""At most this many labelled ticks on an axis of checkpoints, so their labels never run together."""


def as_float(v: object) -> float:
    """A table's number as a float: ``None`` (an undefined number in the results) becomes NaN."""
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


def _chance_line(ax: plt.Axes, chance: float | None) -> None:
    if chance is not None:
        ax.axhline(chance, color="k", ls=":", lw=1, label="chance")


def _integer_axis(axis: Any) -> None:
    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, integer=True))


def main_bars(main: MainTable, path: Path) -> Path:
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
        means = [as_float(v["accuracy_mean"]) if v else np.nan for v in vals]
        sems = [as_float(v["accuracy_sem"]) if v else np.nan for v in vals]
        bars = ax.bar(x + (i - (len(clfs) - 1) / 2) * width, means, width=width, yerr=sems, capsize=3, label=clf)
        bars[-1].set_hatch("//")
    _chance_line(ax, main.get("chance"))
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"rule identification on {main['condition']!r} (network-grouped splits)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(best: Best, path: Path) -> Path:
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
    ax.set_xticks(range(n), labels, rotation=30 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted rule")
    ax.set_ylabel("actual rule")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the row")
    ax.set_title(f"{best['classifier']} on all observables", fontsize=9)
    return _save(fig, path)


def _curve_panel(ax: plt.Axes, curve: dict | None, xkey: str, chance: float | None) -> None:
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
            ax.errorbar([p[xkey] for p in pts], [as_float(p["accuracy_mean"]) for p in pts],
                        yerr=[as_float(p["accuracy_sem"]) for p in pts], color=CLASS_COLOURS[o],
                        ls=LINESTYLES[ci % len(LINESTYLES)], marker="o", ms=4, capsize=2,
                        label=f"{o} ({clf})" if len(clfs) > 1 else o)
    _chance_line(ax, chance)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)


def noise_figure(noise: NoiseCurves, path: Path, chance: float | None = None) -> Path:
    """Accuracy vs σ for weight / act / all: absolute noise (left) and relative noise (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), squeeze=False)
    for ax, kind in zip(axes[0], ("absolute", "relative"), strict=True):
        _curve_panel(ax, noise.get(kind), "sigma", chance)  # type: ignore[arg-type]
        ax.set_xlabel("σ (absolute units)" if kind == "absolute" else "σ (× the observed tensor's std)")
        ax.set_title(f"{kind} measurement noise", fontsize=10)
    return _save(fig, path)


def subsampling_figure(sub: SubsamplingCurve, path: Path, chance: float | None = None) -> Path:
    """Accuracy vs the fraction of units kept, for weight / act / all (clean = 1), ticks at the fractions run."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    _curve_panel(ax, sub, "frac", chance)  # type: ignore[arg-type]
    ax.set_xscale("log")
    fracs = sorted({float(p["frac"]) for p in sub["points"]})
    ax.xaxis.set_major_locator(FixedLocator(fracs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(fracs, [f"{f:g}" for f in fracs])
    ax.set_xlabel("fraction of units kept (log scale)")
    ax.set_title("unit subsampling", fontsize=10)
    return _save(fig, path)


def unit_count_figure(curve: UnitCountCurve, path: Path, chance: float | None = None) -> Path:
    """Accuracy of act and weight vs the number of recorded units (log scale, ticks at the counts run), one line
    style per classifier; a dashed line per class and classifier marks its full-layer (clean) accuracy."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    clfs = curve["classifiers"]
    full = {(f["classifier"], f["obs_class"]): f for f in curve["full"]}
    for ci, clf in enumerate(clfs):
        for o in curve["obs_classes"]:
            pts = sorted((p for p in curve["points"] if p["classifier"] == clf and p["obs_class"] == o),
                         key=lambda p: p["units"])
            name = f"{o} ({clf})" if len(clfs) > 1 else o
            if pts:
                ax.errorbar([p["units"] for p in pts], [as_float(p["accuracy_mean"]) for p in pts],
                            yerr=[as_float(p["accuracy_sem"]) for p in pts], color=CLASS_COLOURS[o],
                            ls=LINESTYLES[ci % len(LINESTYLES)], marker="o", ms=4, capsize=2, label=name)
            ref = full.get((clf, o))
            if ref is not None:
                ax.axhline(as_float(ref["accuracy_mean"]), color=CLASS_COLOURS[o], ls="--", lw=1, alpha=0.8,
                           label=f"{name}, full layer")
    _chance_line(ax, chance)
    ax.set_xscale("log")
    units = sorted(set(curve["units"]))
    ax.xaxis.set_major_locator(FixedLocator(units))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(units, [str(u) for u in units])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recorded units per layer (synapses for weights; log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("recorded-unit count (network-grouped splits)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def temporal_figure(temp: TemporalCurves, path: Path, chance: float | None = None) -> Path:
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
            ax.errorbar([p["n_kept"] for p in pts], [as_float(p["accuracy_mean"]) for p in pts],
                        yerr=[as_float(p["accuracy_sem"]) for p in pts], color=colour, marker="o", ms=4, capsize=2,
                        ls="-" if len(pts) > 1 else "none", label=mode)
        _chance_line(ax, chance)
        _integer_axis(ax.xaxis)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"checkpoints kept (of {temp['n_checkpoints']})")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"temporal subsampling, {clf} on all", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def heldout_figure(held: Heldout, path: Path) -> Path:
    """Accuracy per held-out architecture / task value and their mean, a bar per classifier; a dashed line per
    classifier marks its within-distribution (network-split) accuracy."""
    parts = [p for p in ("architecture", "task", "objective") if (held.get(p) or {}).get("available")]
    fig, axes = plt.subplots(1, max(len(parts), 1), figsize=(5.2 * max(len(parts), 1), 3.4), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=False):
        per = held[part]["per_classifier"]  # type: ignore[literal-required]
        values = [v["held_out"] for v in per[0]["values"]]
        labels = [*values, "mean"]
        x = np.arange(len(labels))
        width = 0.8 / len(per)
        for i, pc in enumerate(per):
            acc = {v["held_out"]: as_float(v["accuracy"]) for v in pc["values"]}
            heights = [acc.get(v, np.nan) for v in values] + [as_float(pc["mean_accuracy"])]
            bars = ax.bar(x + (i - (len(per) - 1) / 2) * width, heights, width=width, label=pc["classifier"])
            ax.axhline(as_float(pc["network_split_accuracy"]), color=bars[0].get_facecolor(), ls="--", lw=1)
        _chance_line(ax, held.get("chance"))
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"held-out {part}", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def importance_figure(imp: Importances, path: Path) -> Path:
    """Permutation importance summed per statistic (sorted, left) and per checkpoint (right), mean ± s.e.m. over
    splits; the checkpoint axis labels at most :data:`MAX_TICKS` checkpoints."""
    stats = imp["per_statistic"]
    ckpts = imp["per_checkpoint"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.8 + 0.24 * len(stats)), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    y = np.arange(len(stats))[::-1]
    colours = [CLASS_COLOURS["weight"] if s["name"].startswith("weight") else
               CLASS_COLOURS["act"] if s["name"].startswith("act") else CLASS_COLOURS["grad"] for s in stats]
    ax.barh(y, [as_float(s["importance_mean"]) for s in stats], xerr=[as_float(s["importance_sem"]) for s in stats],
            color=colours, capsize=2)
    ax.set_yticks(y, [s["name"] for s in stats], fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("accuracy drop (the statistic's whole trajectory shuffled)")
    ax.set_title(f"per statistic ({imp['classifier']})", fontsize=10)
    ax = axes[1]
    ax.bar([c["checkpoint"] for c in ckpts], [as_float(c["importance_mean"]) for c in ckpts],
           yerr=[as_float(c["importance_sem"]) for c in ckpts], color="tab:gray", capsize=2, width=0.8)
    _integer_axis(ax.xaxis)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("checkpoint index (0 = initialisation)")
    ax.set_ylabel("accuracy drop (all statistics shuffled)")
    ax.set_title("per checkpoint", fontsize=10)
    return _save(fig, path)


def performance_figure(perf: PerformanceBaseline, path: Path, chance: float | None = None) -> Path:
    """Performance-only baseline vs all observables, a pair of bars per classifier."""
    comp = perf["comparison"]
    cells = {c["classifier"]: c for c in perf["cells"]}
    obs = {c["classifier"]: c for c in perf["observables"]}
    x = np.arange(len(comp))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(comp), 3.2))
    ax.bar(x - 0.2, [as_float(cells[c["classifier"]]["accuracy_mean"]) for c in comp], width=0.4,
           yerr=[as_float(cells[c["classifier"]]["accuracy_sem"]) for c in comp], capsize=3,
           label="loss / accuracy curves only", color="tab:gray")
    ax.bar(x + 0.2, [as_float(obs[c["classifier"]]["accuracy_mean"]) for c in comp], width=0.4,
           yerr=[as_float(obs[c["classifier"]]["accuracy_sem"]) for c in comp], capsize=3,
           label="all observables", color=CLASS_COLOURS["all"])
    _chance_line(ax, chance)
    ax.set_xticks(x, [c["classifier"] for c in comp])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    return _save(fig, path)
