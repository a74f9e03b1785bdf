"""The figure of the eigenlearning overlay in a bias report (``metrics["theory"]``, :mod:`learnscope.theory.overlay`).

One figure, three panels side by side: the theory's ranking of the eigenspaces (learnability L at the run's n and
ridge), then either each found function's energy in the eigenspace the theory assigns it (a series or an easiest
function) or the predicted MSE ratio B/A per eigenspace (a contrast), and the predicted against the measured
few-shot MSE of the found functions and the random control functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from learnscope.report import figures

_CONTROL_COLOUR = "0.6"


def short_label(label: str) -> str:
    """``"degree 2"`` -> ``"2"``, ``"mode 3"`` -> ``"3"``; anything else unchanged."""
    head, _, tail = str(label).rpartition(" ")
    return tail if head in ("degree", "mode") else str(label)


def _axis_name(labels: Sequence[str]) -> str:
    if labels and all(str(x).startswith("degree") for x in labels):
        return "harmonic degree"
    if labels and all(str(x).startswith("mode") for x in labels):
        return "Nyström mode"
    return "eigenspace"


def _ranking_panel(ax: plt.Axes, theory: Mapping, rows: int) -> None:
    table = list(theory["eigenspaces"])[:rows]
    labels = [r["label"] for r in table]
    L = [r.get("learnability", np.nan) for r in table]
    x = np.arange(len(table))
    ax.bar(x, L, color="tab:green", width=0.7)
    for xi, r, li in zip(x, table, L, strict=True):
        ax.text(xi, min(li, 1.0) + 0.02, f"×{r['multiplicity']}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [short_label(s) for s in labels])
    ax.set_xlabel(f"{_axis_name(labels)}, most learnable first")
    ax.set_ylabel("learnability L = λ/(λ + κ)")
    ax.set_ylim(0, 1.15)
    ax.set_title(f"theory's ranking (n = {theory['n']})")


def _assignment_panel(ax: plt.Axes, theory: Mapping, seeds: Sequence[int], bar: float) -> None:
    rows = list(theory.get("assignment") or [])
    for j, a in enumerate(rows):
        tied = bool(a["ill_posed"])
        energy = a["energy_tied"] if tied else a["energy"]
        for i, e in enumerate(energy):
            colour = figures.seed_colour(i)
            ax.plot(j + (i - (len(energy) - 1) / 2) * 0.12, e, "o", ms=6, color=colour,
                    markerfacecolor="none" if tied else colour,
                    label=f"seed {seeds[i]}" if j == 0 and i < len(seeds) else None)
    ax.axhline(bar, color="0.4", ls="--", lw=1)
    ax.text(len(rows) - 0.5, bar - 0.01, f"bar {bar:g}", ha="right", va="top", fontsize=8, color="0.3")
    ticks = [f"f{a['index']}\n{short_label(a['label'])}" + ("*" if a["ill_posed"] else "") for a in rows]
    ax.set_xticks(np.arange(len(rows)), ticks)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    lows = [min(a["energy_tied"] if a["ill_posed"] else a["energy"]) for a in rows] or [1.0]
    finite = [v for v in lows if np.isfinite(v)]
    ax.set_ylim(min([*finite, bar]) - 0.06 if finite else 0, 1.02)
    ax.set_xlabel("function and its predicted eigenspace")
    ax.set_ylabel("fraction of ‖f‖² in it")
    ax.set_title("energy in the predicted eigenspace")
    if len(seeds) > 1 and rows:
        ax.legend(loc="lower left", frameon=False, fontsize=8)


def _contrast_panel(ax: plt.Axes, theory: Mapping, rows: int) -> None:
    c = theory["contrast"]
    table = list(c["per_eigenspace"])[:rows]
    x = np.arange(len(table))
    ratio = np.array([r["ratio_b_over_a"] for r in table], dtype=float)
    colours = ["0.75" if r["shared_easy"] else "tab:purple" for r in table]
    ax.bar(x, np.where(np.isfinite(ratio) & (ratio > 0), ratio, np.nan), color=colours, width=0.7)
    found = c.get("found") or {}
    measured = [v for v in found.get("measured_ratio", []) if np.isfinite(v) and v > 0]
    if measured:
        ax.axhline(float(np.median(measured)), color="k", ls="--", lw=1)
        ax.text(len(table) - 0.5, float(np.median(measured)), "found (measured)", ha="right", va="bottom",
                fontsize=8)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, [short_label(r["label"]) for r in table])
    ax.set_xlabel(f"{_axis_name([r['label'] for r in table])} (grey: both learn it well)")
    ax.set_ylabel("predicted MSE ratio B/A")
    ax.set_title("contrast per eigenspace, predicted")


def _mse_panel(ax: plt.Axes, theory: Mapping) -> None:
    mse = theory["mse"]
    ctrl = [(p["predicted"], p["measured"]) for p in mse.get("controls", [])]
    found = [(p["predicted"], p["measured"], p["function"]) for p in mse.get("found", [])]
    pts = [v for pair in ctrl for v in pair] + [v for p, m, _ in found for v in (p, m)]
    pts = [v for v in pts if np.isfinite(v) and v > 0]
    if ctrl:
        c = np.array(ctrl, dtype=float)
        ax.plot(c[:, 0], c[:, 1], "o", ms=4, color=_CONTROL_COLOUR, label=f"{len(ctrl)} controls")
    names = list(dict.fromkeys(name for *_, name in found))
    for k, name in enumerate(names):
        f = np.array([(p, m) for p, m, nm in found if nm == name], dtype=float)
        ax.plot(f[:, 0], f[:, 1], "D", ms=5, color=plt.get_cmap("tab10")(k % 10), label=name)
    if pts:
        lo, hi = min(pts) / 2, max(pts) * 2
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("predicted few-shot MSE")
    ax.set_ylabel("measured few-shot MSE")
    rho = mse.get("spearman")
    ax.set_title("predicted vs measured" + (f" (ρ = {rho:.2f})" if rho is not None and rho == rho else ""))
    ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=2 if len(names) > 4 else 1)


@figures._styled
def theory_overlay(theory: Mapping, path: Path, seeds: Sequence[int], rows: int = 8, bar: float = 0.95) -> Path:
    """Draw the overlay figure of ``theory`` (``metrics["theory"]``) into ``path``: ranking, assignment (or the
    contrast per eigenspace) and predicted vs measured MSE. Returns the path."""
    contrast = "contrast" in theory and theory["contrast"].get("available")
    middle = contrast or bool(theory.get("assignment"))
    cols = 3 if middle else 2
    fig, axes = plt.subplots(1, cols, figsize=(min(3.3 * cols, figures.PAGE_WIDTH_IN), 3.3), layout="constrained")
    _ranking_panel(axes[0], theory, rows)
    if contrast:
        _contrast_panel(axes[1], theory, rows)
    elif middle:
        _assignment_panel(axes[1], theory, seeds, bar)
    _mse_panel(axes[-1], theory)
    return figures.save_figure(fig, path)
