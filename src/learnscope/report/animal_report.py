"""The report of an animal experiment: what the route knows, how it got there, and what it cost."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from learnscope.fileio import atomic_write
from learnscope.report.figures import PAGE_WIDTH_IN, save_figure
from learnscope.report.html import figure, ok_note, page, paragraph, table, warning_box

MAX_DEGREE = 4


def _energies(domain, fn) -> np.ndarray | None:
    """Energy per harmonic degree (0 … MAX_DEGREE, then the rest) of ``fn`` on a sphere domain, else None."""
    from learnscope.bias.measures import harmonic_energy
    from learnscope.domains import Sphere

    if not isinstance(domain, Sphere):
        return None
    return harmonic_energy(fn, domain.dim, max_degree=MAX_DEGREE, n_points=2000)


def _progress_figure(st, route, path: Path) -> Path | None:
    e = st.estimate
    if not e.history:
        return None
    trials = [t for t, _ in e.history]
    energies = [_energies(route.domain, fn) for _, fn in e.history]
    has_energy = energies[0] is not None
    fig, axes = plt.subplots(1, 2 if has_energy else 1, figsize=(PAGE_WIDTH_IN, 2.8), layout="constrained",
                             squeeze=False)
    ax = axes[0, 0]
    if len(trials) > 1:
        ax.plot(trials[1:], np.abs(e.successive), "o-", label="|corr| with the previous generation")
    ax.axhline(route.settings.threshold, color="0.5", ls="--", lw=1, label=f"criterion {route.settings.threshold}")
    ax.set_xlabel("trials used")
    ax.set_ylabel("correlation")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("convergence of the chain", fontsize=9)
    if has_energy:
        ax = axes[0, 1]
        en = np.array(energies)
        for k in range(1, MAX_DEGREE + 1):
            ax.plot(trials, en[:, k], "o-", ms=3, label=f"degree {k}")
        ax.plot(trials, en[:, -1], "o-", ms=3, color="0.6", label=f"> {MAX_DEGREE}")
        ax.set_xlabel("trials used")
        ax.set_ylabel("share of the labelling's energy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, ncols=2)
        ax.set_title("harmonic degree of each generation", fontsize=9)
    return save_figure(fig, path)


def write_animal_report(st, folder: Path) -> Path:
    """``folder/report.html`` (and its figures) for an experiment :class:`~learnscope.animal.status.Status`."""
    folder = Path(folder)
    cfg, e = st.cfg, st.estimate
    route = cfg.make_route()
    top = []
    if e.warnings:
        top.append(warning_box("The estimate of f1 is not trustworthy yet", list(e.warnings)))
    elif e.converged:
        top.append(ok_note(f"Converged after {e.generations} generations ({e.trials} trials)."))
    summary = [
        ["route", cfg.route], ["sessions", len(st.log)], ["trials used", f"{e.trials} of {cfg.budget}"],
        ["generations", e.generations], ["converged", "yes" if e.converged else "no"],
        ["noise amplification E0 (echo probes)", "–" if e.noise_amplification is None else
         f"{e.noise_amplification:.2f}"],
        ["response model", repr(cfg.response)],
        ["next session", "none" if st.next is None else f"{st.next.index} ({st.next.trials} trials)"],
    ]
    sections = [("Where the experiment stands", [table(["quantity", "value"], summary)])]
    fig = _progress_figure(st, route, folder / "progress.png")
    if fig is not None:
        sections.append(("How the chain got there", [figure(fig,
            "Left: correlation of each generation's smoothed responses with the previous generation's, on fixed "
            "reference stimuli (the stopping criterion). Right: the share of each generation's labelling in each "
            "harmonic degree — iterated learning is a power iteration, so the most learnable degree should take "
            "over.")]))
    rows = [[r.plan.index, "read-out" if r.plan.extra.get("readout") else r.plan.generation, r.plan.train_x.shape[0],
             r.plan.probe_x.shape[0], r.plan.repeats, r.trials] for r in st.log]
    sections.append(("Trial budget", [table(["session", "generation", "training stimuli", "probes", "repeats",
                                             "trials"], rows)]))
    sections.append(("What is ours", [paragraph(
        "The first paper claims an animal application but its method could not be read; iterated learning as a "
        "power iteration on the learning operator, the echo-probe estimate of noise amplification and the stopping "
        "rule are learnscope's design, built on Kalish, Griffiths & Lewandowsky (2007).", note=True)]))
    html = page(cfg.title or "Animal experiment", sections, top=top)
    return atomic_write(folder / "report.html", html)
