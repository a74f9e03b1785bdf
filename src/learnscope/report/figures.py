"""Figures for run reports (matplotlib, Agg backend, PNG files).

Each function draws one figure into ``path`` and returns the path. Functions are drawn on their domain:
a heat map on the disc or square, a longitude/latitude map on S², a curve on the circle, and a
coloured scatter of the first two coordinates elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from learnscope.domains import Circle, Disc, Domain, Hypercube, Sphere  # noqa: E402

CMAP = "RdBu_r"
FnOnPoints = Callable[[np.ndarray], np.ndarray]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def loss_curves(
    histories: Sequence[dict[str, np.ndarray]],
    seeds: Sequence[int],
    path: Path,
    names: Sequence[str] = ("loss", "generalisation", "distribution", "orthogonality", "generalisation_b"),
) -> Path:
    """One panel per loss term; a colour per function, a thin line per seed. histories[k][term]: (steps, S)."""
    terms = [t for t in names if any(t in h and np.any(h[t] != 0) for h in histories)]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.85, max(len(histories), 1)))
    for ax, term in zip(axes[0], terms, strict=True):
        for k, h in enumerate(histories):
            if term not in h:
                continue
            for i in range(h[term].shape[1]):
                label = f"f{k + 1}" if i == 0 and len(histories) > 1 else None
                ax.plot(h[term][:, i], color=colours[k], lw=0.8, alpha=0.8, label=label)
        ax.set_title(term)
        ax.set_xlabel("meta-step")
        if term != "loss" and np.all([np.all(h[term] > 0) for h in histories if term in h]):
            ax.set_yscale("log")
    if len(histories) > 1:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"meta-training losses ({len(seeds)} seed{'s' * (len(seeds) > 1)})", fontsize=10)
    return _save(fig, path)


def _draw(
    ax: plt.Axes, domain: Domain, f: FnOnPoints, scatter_points: np.ndarray | None
) -> plt.cm.ScalarMappable:
    if isinstance(domain, Sphere) and domain.dim == 3:
        az, el = np.meshgrid(np.linspace(-np.pi, np.pi, 181), np.linspace(-np.pi / 2, np.pi / 2, 91))
        pts = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
        z = f(pts).reshape(az.shape)
        lim = float(np.abs(z).max()) or 1.0
        im = ax.imshow(z, origin="lower", extent=(-180, 180, -90, 90), cmap=CMAP, vmin=-lim, vmax=lim)
        ax.set_xlabel("azimuth (deg)")
        ax.set_ylabel("elevation (deg)")
        return im
    if isinstance(domain, (Disc, Hypercube)) and domain.dim == 2:
        lo, hi = (-1.0, 1.0) if isinstance(domain, Disc) else (domain.low, domain.high)
        g = np.linspace(lo, hi, 161)
        xx, yy = np.meshgrid(g, g)
        pts = np.stack([xx.ravel(), yy.ravel()], -1)
        z = f(pts).reshape(xx.shape).astype(float)
        if isinstance(domain, Disc):
            z[xx**2 + yy**2 > 1] = np.nan
        lim = float(np.nanmax(np.abs(z))) or 1.0
        im = ax.imshow(z, origin="lower", extent=(lo, hi, lo, hi), cmap=CMAP, vmin=-lim, vmax=lim)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        return im
    if isinstance(domain, Circle):
        theta = np.linspace(0, 2 * np.pi, 721)
        ax.plot(theta, f(np.stack([np.cos(theta), np.sin(theta)], -1)))
        ax.set_xlabel("θ (rad)")
        ax.set_ylabel("f(θ)")
        return plt.cm.ScalarMappable(cmap=CMAP)
    pts = scatter_points[:3000]
    z = f(pts)
    lim = float(np.abs(z).max()) or 1.0
    im = ax.scatter(pts[:, 0], pts[:, 1], c=z, s=4, cmap=CMAP, vmin=-lim, vmax=lim)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_aspect("equal")
    return im


def function_panels(
    domain: Domain,
    functions: Sequence[tuple[str, FnOnPoints]],
    path: Path,
    scatter_points: np.ndarray | None = None,
    columns: int = 3,
) -> Path:
    """Each (title, f) drawn on the domain, in a grid of panels with a colour bar each."""
    n = len(functions)
    cols = min(columns, n)
    rows = -(-n // cols)
    wide = isinstance(domain, Sphere) and domain.dim == 3
    fig, axes = plt.subplots(
        rows, cols, figsize=((5.2 if wide else 4.0) * cols, 3.3 * rows), squeeze=False, layout="constrained"
    )
    for ax, (title, f) in zip(axes.ravel(), functions, strict=False):
        im = _draw(ax, domain, f, scatter_points)
        ax.set_title(title, fontsize=9)
        if not isinstance(domain, Circle):
            fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return _save(fig, path)


def energy_bars(
    energies: np.ndarray,
    path: Path,
    xlabel: str = "harmonic degree",
    titles: Sequence[str] | None = None,
    seeds: Sequence[int] = (),
) -> Path:
    """Energy fraction per degree. energies: (k functions, S seeds, L + 2), the last entry the remainder."""
    k, S, L2 = energies.shape
    fig, axes = plt.subplots(1, k, figsize=(min(3.4 * k, 17), 2.8), squeeze=False)
    ticks = [str(i) for i in range(L2 - 1)] + [">"]
    width = 0.8 / S
    for j, ax in enumerate(axes[0]):
        for i in range(S):
            ax.bar(
                np.arange(L2) + (i - (S - 1) / 2) * width,
                energies[j, i],
                width=width,
                label=f"seed {seeds[i]}" if seeds else None,
            )
        ax.set_xticks(np.arange(L2), ticks)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(titles[j] if titles else "", fontsize=9)
    axes[0][0].set_ylabel("fraction of ‖f‖²")
    if seeds and S > 1:
        axes[0][-1].legend(fontsize=6)
    return _save(fig, path)


def matrix_heatmap(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "") -> Path:
    """A small annotated heat map (e.g. the overlap matrix of a series)."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1 + 0.7 * n, 0.8 + 0.6 * n))
    im = ax.imshow(matrix, cmap=CMAP, vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def paired_bars(
    values_a: Sequence[float],
    values_b: Sequence[float],
    labels: Sequence[str],
    names: tuple[str, str],
    path: Path,
    ylabel: str,
    log: bool = True,
) -> Path:
    """Two bars per label (e.g. generalisation error of learner A and B per seed)."""
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(labels), 3))
    ax.bar(x - 0.2, values_a, width=0.4, label=names[0])
    ax.bar(x + 0.2, values_b, width=0.4, label=names[1])
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return _save(fig, path)


def image_grid(
    images: np.ndarray,
    values: np.ndarray,
    path: Path,
    row_titles: Sequence[str],
    image_shape: Sequence[int] = (28, 28),
) -> Path:
    """Images with the meta-learned label above each. images: (n, H·W) shared by every row; values: (rows, n)."""
    rows, n = values.shape
    fig, axes = plt.subplots(rows, n, figsize=(0.9 * n, 1.05 * rows + 0.3), squeeze=False)
    for r in range(rows):
        for j in range(n):
            ax = axes[r][j]
            ax.imshow(images[j].reshape(image_shape), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{values[r, j]:.2f}", fontsize=7, pad=2)
        axes[r][0].set_ylabel(row_titles[r], fontsize=7)
    return _save(fig, path)


def class_histograms(
    values: np.ndarray, classes: np.ndarray, titles: Sequence[str], path: Path, bins: int = 30
) -> Path:
    """Histogram of the labels of each true class, one panel per row of values (rows, n); classes: (n,)."""
    rows = values.shape[0]
    fig, axes = plt.subplots(1, rows, figsize=(3.4 * rows, 2.6), squeeze=False)
    edges = np.linspace(min(0.0, values.min()), max(1.0, values.max()), bins + 1)
    for r, ax in enumerate(axes[0]):
        for c in np.unique(classes):
            ax.hist(values[r, classes == c], bins=edges, alpha=0.6, label=f"digit {c}")
        ax.set_yscale("log")
        ax.set_xlabel("meta-learned label")
        ax.set_title(titles[r], fontsize=9)
    axes[0][0].set_ylabel("images")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)
