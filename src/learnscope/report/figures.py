"""Figures for run reports (matplotlib, Agg backend, PNG files).

Importing this module selects the Agg backend (no display needed) and imports neither torch nor the domains (they
are imported where a function is drawn on its domain). Every figure is written through :func:`save_figure`, which
saves atomically (:func:`learnscope.fileio.atomic_path`) and closes the figure: the one save helper of ``report/``.

Figures are sized for the report page (about 1100 px wide at :data:`DPI`), so a figure at most
:data:`PAGE_WIDTH_IN` inches wide is shown at its natural size and its text at 8–10 pt stays readable.

Each function draws one figure into ``path`` and returns the path. Functions are drawn on their domain where a
map exists (:func:`has_map`): a heat map on the disc or square, a longitude/latitude map on S², a curve on the
circle. Elsewhere (e.g. S⁴, Fig 7) a function is shown by its dependence on each input: the linear-fit weight per
input (:func:`input_weights`) and f against each input (:func:`input_scatter`). Inputs are numbered from 0
(x₀, x₁, …) everywhere, as in the configs and ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from learnscope.fileio import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from learnscope.domains import Domain

CMAP = "RdBu_r"
DPI = 110
PAGE_WIDTH_IN = 10.0
"""Widest figure (inches) shown unscaled on the report page (max-width 1100 px at :data:`DPI`)."""
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10.5,
}
"""Font sizes of every report figure (points; 8 pt is about 12 px on the page)."""
SEED_COLOURS = plt.get_cmap("tab10").colors
FnOnPoints = Callable[[np.ndarray], np.ndarray]
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def input_name(i: int) -> str:
    """The name of input ``i`` (0-based, as in the configs and metrics): ``x₀``, ``x₁``, …"""
    return "x" + str(i).translate(_SUB)


def seed_colour(i: int) -> tuple[float, float, float]:
    """The colour of the ``i``-th seed of a run (the same in every figure of a report)."""
    return SEED_COLOURS[i % len(SEED_COLOURS)]


def save_figure(fig: plt.Figure, path: Path | str) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix, PNG by default) atomically, close it, return the path.

    The figure is closed even when saving fails, and a failed save leaves ``path`` as it was.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _styled(draw: Callable) -> Callable:
    """Run a figure function under :data:`STYLE` (without touching the global rcParams)."""

    def wrapped(*args, **kwargs):
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = draw.__name__, draw.__doc__, draw
    return wrapped


def has_map(domain: Domain) -> bool:
    """True if :func:`function_panels` can draw a function on ``domain`` as a map or a curve."""
    from learnscope.domains import Circle, Disc, Hypercube, Sphere  # here: save_figure users need no torch

    return (
        (isinstance(domain, Sphere) and domain.dim == 3)
        or (isinstance(domain, (Disc, Hypercube)) and domain.dim == 2)
        or isinstance(domain, Circle)
    )


LOSS_TITLES = {
    "loss": "total meta-loss",
    "generalisation": "test error of the learner (L_g)",
    "distribution": "distance of the labels to the target (L_d)",
    "orthogonality": "orthogonality penalty",
    "generalisation_b": "test error of learner B",
}
"""Panel titles of :func:`loss_curves` for the history terms of :func:`learnscope.bias.search.meta_train`."""


@_styled
def loss_curves(
    histories: Sequence[Mapping[str, np.ndarray]],
    seeds: Sequence[int],
    path: Path,
    titles: Mapping[str, str] | None = None,
) -> Path:
    """One panel per loss term that is not identically zero; a colour per seed (with a legend).

    histories[k][term] : (steps_k, S) for function k. The functions of a series are drawn one after the other
    along the x axis (cumulative meta-steps), separated by dotted lines labelled f1, f2, …
    titles : panel title per term (default :data:`LOSS_TITLES`; unknown terms are shown by name).
    """
    titles = {**LOSS_TITLES, **(titles or {})}
    order = list(titles) + sorted({t for h in histories for t in h} - set(titles))
    terms = [t for t in order if any(t in h and np.any(h[t] != 0) for h in histories)]
    cols = len(terms) if len(terms) <= 4 else 3
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(min(3.3 * cols, PAGE_WIDTH_IN), 2.6 * rows), squeeze=False, layout="constrained"
    )
    errors = [ax for ax, t in zip(axes.ravel(), terms, strict=False) if t in ("generalisation", "generalisation_b")]
    if len(errors) == 2:  # learner A's and B's test errors on one scale, to compare
        errors[1].sharey(errors[0])
    lengths = [max((len(h[t]) for t in h), default=0) for h in histories]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for ax, term in zip(axes.ravel(), terms, strict=False):
        for k, h in enumerate(histories):
            if term not in h:
                continue
            values = np.asarray(h[term], dtype=float)
            x = starts[k] + np.arange(len(values))
            for i in range(values.shape[1]):
                ax.plot(x, values[:, i], color=seed_colour(i), lw=0.9, alpha=0.85,
                        label=f"seed {seeds[i]}" if k == 0 and i < len(seeds) else None)
        if len(histories) > 1:
            for k in range(1, len(histories)):
                ax.axvline(starts[k] - 0.5, color="0.5", lw=0.7, ls=":")
            top = ax.secondary_xaxis("top")
            top.set_xticks((starts[:-1] + starts[1:] - 1) / 2, [f"f{k + 1}" for k in range(len(histories))])
            top.tick_params(length=0, labelsize=7.5, labelcolor="0.3", pad=1)
        ax.set_title(titles.get(term, term))
        ax.set_xlabel("meta-step" + (" (functions in turn)" if len(histories) > 1 else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if term != "loss" and all(_positive(h[term]) for h in histories if term in h):
            _log_y(ax)
    for ax in axes.ravel()[len(terms):]:
        ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 8), frameon=False)
    fig.suptitle(f"meta-training losses per meta-step ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    return save_figure(fig, path)


def _positive(values: np.ndarray) -> bool:
    """True if every finite value is > 0 and there is one (NaN marks the steps after a seed diverged)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.all(v > 0))


def _symmetric_limit(arrays: Sequence[np.ndarray]) -> float:
    """max |value| over the finite values of ``arrays`` (1.0 if there are none or all are 0)."""
    finite = [np.abs(a[np.isfinite(a)]) for a in map(np.asarray, arrays)]
    lim = max((float(a.max()) for a in finite if a.size), default=0.0)
    return lim if lim > 0 else 1.0


def _log_y(ax: plt.Axes) -> None:
    """A log y axis labelled at 1·10^k, or at 1, 2 and 5·10^k when it spans under two decades (matplotlib's
    default then labels either a single decade or every minor tick, and those run together)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if 0 < lo < hi and np.log10(hi / lo) < 2:
        subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) > 0.8 else (1.0, 2.0, 3.0, 5.0)
        ax.yaxis.set_major_locator(LogLocator(subs=subs, numticks=20))
        every = (np.inf, np.inf)  # label every located tick (by default the formatter drops some)
        ax.yaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=every))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _grid(domain: Domain, f: FnOnPoints) -> tuple[np.ndarray, tuple[float, float, float, float], str, str]:
    """f on a regular grid of the domain's map: (values, extent, xlabel, ylabel); NaN outside the disc."""
    from learnscope.domains import Disc, Sphere

    if isinstance(domain, Sphere):
        az, el = np.meshgrid(np.linspace(-np.pi, np.pi, 181), np.linspace(-np.pi / 2, np.pi / 2, 91))
        pts = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
        return f(pts).reshape(az.shape).astype(float), (-180, 180, -90, 90), "azimuth (deg)", "elevation (deg)"
    lo, hi = (-1.0, 1.0) if isinstance(domain, Disc) else (domain.low, domain.high)
    g = np.linspace(lo, hi, 161)
    xx, yy = np.meshgrid(g, g)
    z = f(np.stack([xx.ravel(), yy.ravel()], -1)).reshape(xx.shape).astype(float)
    if isinstance(domain, Disc):
        z[xx**2 + yy**2 > 1] = np.nan
    return z, (lo, hi, lo, hi), input_name(0), input_name(1)


@_styled
def function_panels(
    domain: Domain,
    functions: Sequence[tuple[str, FnOnPoints]],
    path: Path,
    columns: int | None = None,
    label: str = "f(x), the meta-learned label",
) -> Path:
    """Each (title, f) drawn on the domain's map (see :func:`has_map`), on one shared, labelled colour scale.

    columns : panels per row (default: as many as fit the page width, at most the number of functions).
    """
    from learnscope.domains import Circle, Sphere

    if not has_map(domain):
        raise ValueError(f"no map of domain {domain.name!r} (dim {domain.dim}); use input_weights/input_scatter")
    n = len(functions)
    if isinstance(domain, Circle):
        theta = np.linspace(0, 2 * np.pi, 721)
        curves = [(title, f(np.stack([np.cos(theta), np.sin(theta)], -1))) for title, f in functions]
        cols = min(columns or 3, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False, layout="constrained",
                                 sharey=True)
        for ax, (title, y) in zip(axes.ravel(), curves, strict=False):
            ax.plot(theta, y)
            ax.axhline(0, color="0.6", lw=0.6)
            ax.set_title(title)
            ax.set_xlabel("θ (rad)")
        for row in axes:
            row[0].set_ylabel(label)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        return save_figure(fig, path)
    grids = [(title, *_grid(domain, f)) for title, f in functions]
    lim = _symmetric_limit([z for _, z, *_ in grids])
    wide = isinstance(domain, Sphere)
    panel_w, aspect = (3.0, 0.58) if wide else (2.25, 0.78)
    cols = min(columns or int(PAGE_WIDTH_IN // panel_w), n)
    panel_w = min(panel_w, (PAGE_WIDTH_IN - 0.9) / cols)
    panel_h = panel_w * aspect + 0.5
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_w * cols + 0.9, panel_h * rows + 0.2), squeeze=False, layout="constrained"
    )
    im = None
    for ax, (title, z, extent, xlabel, ylabel) in zip(axes.ravel(), grids, strict=False):
        im = ax.imshow(z, origin="lower", extent=extent, cmap=CMAP, vmin=-lim, vmax=lim,
                       aspect="auto" if wide else "equal")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if wide:
            ax.set_xticks([-180, -90, 0, 90, 180])
            ax.set_yticks([-90, 0, 90])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if im is not None:
        bar = fig.colorbar(im, ax=axes, shrink=min(1.0, 0.5 + 0.25 * rows), aspect=25)
        bar.set_label(label)
    return save_figure(fig, path)


@_styled
def input_weights(
    weights: np.ndarray,
    path: Path,
    seeds: Sequence[int],
    titles: Sequence[str] | None = None,
    highlight: int | None = None,
    highlight_label: str = "",
) -> Path:
    """Linear-fit weight per input: one panel per function, one bar per seed at each input x₀, x₁, …

    weights : (k functions, S seeds, d inputs), the weights ``w`` of the least-squares fit f ≈ w·x + b.
    highlight : an input to shade (e.g. the over-connected input of a mushroom body), with ``highlight_label``.
    """
    k, S, d = weights.shape
    cols = min(k, 2)
    rows = -(-k // cols)
    panel_w = min(max(0.55 * d * max(S, 2) / 2.2 + 1.2, 3.2), PAGE_WIDTH_IN / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols + 1.2, 2.6 * rows), squeeze=False,
                             layout="constrained", sharey=True)
    width = 0.8 / S
    for j, ax in enumerate(axes.ravel()[:k]):
        if highlight is not None:
            ax.axvspan(highlight - 0.45, highlight + 0.45, color="#fff1c1", zorder=0,
                       label=(highlight_label or None) if j == 0 else None)
        for i in range(S):
            ax.bar(np.arange(d) + (i - (S - 1) / 2) * width, weights[j, i], width=width, color=seed_colour(i),
                   label=f"seed {seeds[i]}" if j == 0 else None, zorder=2)
        ax.axhline(0, color="0.3", lw=0.7, zorder=3)
        ax.set_xticks(np.arange(d), [input_name(i) for i in range(d)], fontsize=9.5)
        ax.set_xlabel("input")
        ax.set_title(titles[j] if titles else "")
    for row in axes:
        row[0].set_ylabel("linear-fit weight w")
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False)
    return save_figure(fig, path)


@_styled
def input_scatter(
    points: np.ndarray,
    values: np.ndarray,
    path: Path,
    row_titles: Sequence[str],
    seed_index: Sequence[int] | None = None,
    max_points: int = 1500,
    bins: int = 12,
) -> Path:
    """f against each input: a row per function/seed, a column per input x₀, x₁, …, with the binned mean of f.

    points : (n, d) evaluation points; values : (rows, n), f at those points. Each panel is annotated with the
    correlation r of f and that input. ``seed_index[r]``: the seed position of row r (its colour; default r).
    ``max_points`` evenly spaced points are drawn per panel.
    """
    rows, n = values.shape
    d = points.shape[1]
    shown = np.linspace(0, n - 1, min(n, max_points)).astype(int)
    panel = min(2.0, (PAGE_WIDTH_IN - 0.8) / d)
    fig, axes = plt.subplots(rows, d, figsize=(panel * d + 0.8, 1.7 * rows + 0.3), squeeze=False, sharex="col",
                             sharey=True, layout="constrained")
    for r in range(rows):
        v = values[r]
        for i in range(d):
            ax = axes[r][i]
            x = points[:, i]
            ok = np.isfinite(v)
            colour = seed_colour(seed_index[r] if seed_index else r)
            ax.scatter(x[shown], v[shown], s=2, alpha=0.3, color=colour, rasterized=True, linewidths=0)
            xs, vs = x[ok], v[ok]
            if xs.size > 1 and np.ptp(xs) > 0:
                edges = np.linspace(xs.min(), xs.max(), bins + 1)
                which = np.clip(np.digitize(xs, edges) - 1, 0, bins - 1)
                counts = np.bincount(which, minlength=bins)
                means = np.bincount(which, weights=vs, minlength=bins) / np.maximum(counts, 1)
                centres = (edges[:-1] + edges[1:]) / 2
                ax.plot(centres[counts > 0], means[counts > 0], color="k", lw=1.3)
            corr = float(np.corrcoef(xs, vs)[0, 1]) if xs.size > 1 and np.std(xs) > 0 and np.std(vs) > 0 else None
            ax.text(0.03, 0.95, f"r = {corr:+.2f}" if corr is not None else "r = –", transform=ax.transAxes,
                    va="top", fontsize=8, bbox={"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1})
            if r == rows - 1:
                ax.set_xlabel(input_name(i), fontsize=9.5)
            if r == 0:
                ax.set_title(f"f against {input_name(i)}")
        axes[r][0].set_ylabel(f"{row_titles[r]}\nf(x)")
    return save_figure(fig, path)


@_styled
def energy_bars(
    energies: np.ndarray,
    path: Path,
    xlabel: str = "harmonic degree",
    titles: Sequence[str] | None = None,
    seeds: Sequence[int] = (),
) -> Path:
    """Energy fraction per degree. energies: (k functions, S seeds, L + 2), the last entry the remainder."""
    k, S, L2 = energies.shape
    cols = min(k, 3)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(3.1 * cols, PAGE_WIDTH_IN) + 0.9, 2.4 * rows), squeeze=False,
                             layout="constrained", sharey=True)
    ticks = [str(i) for i in range(L2 - 1)] + [">"]
    width = 0.8 / S
    for j, ax in enumerate(axes.ravel()[:k]):
        for i in range(S):
            ax.bar(np.arange(L2) + (i - (S - 1) / 2) * width, energies[j, i], width=width, color=seed_colour(i),
                   label=f"seed {seeds[i]}" if seeds and j == 0 else None)
        ax.set_xticks(np.arange(L2), ticks)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(titles[j] if titles else "")
    for row in axes:
        row[0].set_ylabel("fraction of ‖f‖²")
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    if seeds and S > 1:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
    return save_figure(fig, path)


@_styled
def matrix_heatmaps(
    matrices: np.ndarray, labels: Sequence[str], titles: Sequence[str], path: Path, label: str = "overlap (cosine)"
) -> Path:
    """Annotated heat maps of values in [-1, 1] side by side with one colour bar (e.g. a series' overlap matrix
    per seed). matrices: (m, n, n)."""
    m, n = len(matrices), len(labels)
    size = 0.45 * n + 0.6
    if m * (0.38 * n + 0.5) <= PAGE_WIDTH_IN - 1.0:  # every matrix in one row, a little smaller if need be
        size, cols = min(size, (PAGE_WIDTH_IN - 1.0) / m), m
    else:
        cols = max(1, min(m, int((PAGE_WIDTH_IN - 1.0) / size)))
    rows = -(-m // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.0, (size + 0.3) * rows), squeeze=False,
                             layout="constrained")
    im = None
    for ax, matrix, title in zip(axes.ravel(), matrices, titles, strict=False):
        im = ax.imshow(matrix, cmap=CMAP, vmin=-1, vmax=1)
        ax.set_xticks(range(n), labels)
        ax.set_yticks(range(n), labels)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(matrix[i, j]) > 0.6 else "black")
        ax.set_title(title)
    for ax in axes.ravel()[m:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=min(1.0, 0.6 + 0.2 * rows)).set_label(label)
    return save_figure(fig, path)


@_styled
def paired_bars(
    values_a: Sequence[float],
    values_b: Sequence[float],
    labels: Sequence[str],
    names: tuple[str, str],
    path: Path,
    ylabel: str,
    log: bool = True,
) -> Path:
    """Two bars per label (e.g. generalisation error of learner A and B per seed); the legend sits above."""
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(min(2.2 + 0.9 * len(labels), PAGE_WIDTH_IN), 3.1), layout="constrained")
    ax.bar(x - 0.2, values_a, width=0.4, label=names[0], color="tab:blue")
    ax.bar(x + 0.2, values_b, width=0.4, label=names[1], color="tab:orange")
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    if log:
        _log_y(ax)
    fig.legend(loc="outside upper center", ncols=2, frameon=False)
    return save_figure(fig, path)


@_styled
def image_grid(
    images: np.ndarray,
    values: np.ndarray,
    path: Path,
    row_titles: Sequence[str],
    image_shape: Sequence[int] = (28, 28),
) -> Path:
    """Images with the meta-learned label above each. images: (n, H·W) shared by every row; values: (rows, n)."""
    rows, n = values.shape
    size = min(0.8, PAGE_WIDTH_IN / (n + 1))
    fig, axes = plt.subplots(rows, n, figsize=(size * n + 0.6, (size + 0.3) * rows + 0.2), squeeze=False)
    for r in range(rows):
        for j in range(n):
            ax = axes[r][j]
            ax.imshow(images[j].reshape(image_shape), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{values[r, j]:.2f}", fontsize=8, pad=2)
        axes[r][0].set_ylabel(row_titles[r], fontsize=8)
    return save_figure(fig, path)


@_styled
def class_histograms(
    values: np.ndarray, classes: np.ndarray, titles: Sequence[str], path: Path, bins: int = 30
) -> Path:
    """Histogram of the labels of each true class, one panel per row of values (rows, n); classes: (n,)."""
    rows = values.shape[0]
    cols = min(rows, 3)
    nrows = -(-rows // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(min(3.1 * cols, PAGE_WIDTH_IN) + 0.9, 2.4 * nrows),
                             squeeze=False, layout="constrained", sharey=True)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = np.linspace(min(0.0, lo), max(1.0, hi), bins + 1)
    for r, ax in enumerate(axes.ravel()[:rows]):
        for c in np.unique(classes):
            v = values[r, classes == c]
            ax.hist(v[np.isfinite(v)], bins=edges, alpha=0.6, label=f"digit {c}" if r == 0 else None)
        ax.set_yscale("log")
        ax.set_xlabel("meta-learned label")
        ax.set_title(titles[r])
    for row in axes:
        row[0].set_ylabel("images")
    for ax in axes.ravel()[rows:]:
        ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False)
    return save_figure(fig, path)
