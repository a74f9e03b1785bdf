"""The report of an animal experiment: what each route knows, how it got there, and what it cost."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from learnscope.fileio import atomic_write
from learnscope.report.figures import PAGE_WIDTH_IN, save_figure
from learnscope.report.html import figure, ok_note, page, paragraph, table, warning_box

MAX_DEGREE = 4
ROUTE_NAMES = {"iterated": "iterated learning", "surrogate": "surrogate", "es": "evolution strategies"}


def route_curves(name: str, estimate, max_points: int = 40) -> list[tuple[int, object]]:
    """(trials so far, f1 estimate as a callable) along a route's history, at most ``max_points`` of them."""
    if name == "es":
        pts = [(t, estimate.labelling(theta)) for t, theta in estimate.history]
    elif name == "iterated":
        pts = list(estimate.history)
        if estimate.f1 is not None and (not pts or estimate.trials > pts[-1][0]):  # the read-out, after the chain
            pts.append((estimate.trials, estimate.f1))
    else:
        pts = [] if estimate.f1 is None else [(estimate.trials, estimate.f1)]
    if len(pts) > max_points:
        keep = np.unique(np.linspace(0, len(pts) - 1, max_points).round().astype(int))
        pts = [pts[i] for i in keep]
    return pts


def _energies(domain, fn) -> np.ndarray | None:
    from learnscope.bias.measures import harmonic_energy
    from learnscope.domains import Sphere

    if not isinstance(domain, Sphere) or domain.dim > 5:
        return None
    return harmonic_energy(fn, domain.dim, max_degree=MAX_DEGREE if domain.dim == 3 else 2, n_points=3000)


def _progress_figure(st, route, truth, path: Path) -> Path | None:
    from learnscope.animal.whitebox import agreement

    e = st.estimate
    curves = {name: route_curves(name, est) for name, est in e.stages.items()}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    energies = {k: [(t, _energies(route.domain, f)) for t, f in v] for k, v in curves.items()}
    has_energy = any(en is not None for v in energies.values() for _, en in v)
    ncols = 1 + (len(curves) if has_energy else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(PAGE_WIDTH_IN, 2.9), layout="constrained", squeeze=False)
    ax = axes[0, 0]
    if truth is not None:
        refs = route.references
        for name, pts in curves.items():
            a = [agreement(f(refs), truth["values"], refs, route.domain, truth["rotation_invariant"]) for _, f in pts]
            ax.plot([t for t, _ in pts], a, "o-", ms=3, label=ROUTE_NAMES[name])
        ax.axhline(0.9, color="0.5", ls="--", lw=1)
        ax.set_ylabel("|corr| with the white-box f1")
        ax.set_title("agreement with the truth (simulated animal)", fontsize=9)
    elif "iterated" in e.stages and e.stages["iterated"].successive:
        it = e.stages["iterated"]
        trials = [t for t, _ in it.history][1:]
        ax.plot(trials, np.abs(it.successive), "o-", label="|corr| with the previous generation")
        ax.axhline(route.stages[0].settings.threshold, color="0.5", ls="--", lw=1, label="criterion")
        ax.set_ylabel("correlation")
        ax.set_title("convergence of the chain", fontsize=9)
    ax.set_xlabel("trials used")
    ax.set_ylim(0, 1.02)
    if any(name == "es" for name in curves) and max(t for v in curves.values() for t, _ in v) > 5000:
        ax.set_xscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "needs two generations", transform=ax.transAxes, ha="center", va="center", color="0.4")
    if has_energy:
        for j, (name, pts) in enumerate(energies.items(), start=1):
            ax = axes[0, j]
            ts = [t for t, en in pts if en is not None]
            en = np.array([en for _, en in pts if en is not None])
            for k in range(1, en.shape[1] - 1):
                ax.plot(ts, en[:, k], "o-", ms=3, label=f"degree {k}")
            ax.plot(ts, en[:, -1], "o-", ms=3, color="0.6", label="higher")
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("trials used")
            ax.set_title(f"{ROUTE_NAMES[name]}: harmonic degree of f1", fontsize=9)
            if name == "es" and len(ts) > 1 and ts[-1] > 5000:
                ax.set_xscale("log")
            if j == 1:
                ax.set_ylabel("share of f1's energy")
                ax.legend(fontsize=7, ncols=2)
    return save_figure(fig, path)


def _stage_rows(st) -> list[list]:
    rows = []
    for name, e in st.estimate.stages.items():
        if name == "iterated":
            detail = (f"{e.generations} generation{'s' if e.generations != 1 else ''}; E0 ≈ "
                      f"{e.noise_amplification:.2f}" if e.generations else "–")
        elif name == "surrogate":
            agree = "–" if e.ensemble_agreement is None else f"{e.ensemble_agreement:.2f}"
            detail = f"{e.sessions} sessions; ensemble agreement on f1 {agree}"
        else:
            detail = f"{e.iterations} iterations"
        rows.append([ROUTE_NAMES[name], e.trials, "yes" if e.converged else "no", detail])
    return rows


def write_animal_report(st, folder: Path, truth: dict | None = None) -> Path:
    """``folder/report.html`` for an experiment :class:`~learnscope.animal.status.Status`; ``truth``
    (``{"values": f1 on the route's reference stimuli, "rotation_invariant": bool}``) when the animal is simulated."""
    folder = Path(folder)
    cfg, e = st.cfg, st.estimate
    route = st.route if st.route is not None else cfg.make_route()
    top = []
    if e.warnings:
        top.append(warning_box("The estimate of f1 is not trustworthy yet", list(e.warnings)))
    elif e.converged:
        top.append(ok_note(f"Converged ({e.trials} trials)."))
    summary = [["routes", cfg.route], ["sessions", len(st.log)], ["trials used", f"{e.trials} of {cfg.budget}"],
               ["response model", repr(cfg.response)],
               ["next session", "none" if st.next is None else f"{st.next.index} ({st.next.trials} trials)"]]
    sections = [("Where the experiment stands", [table(["quantity", "value"], summary),
                                                  table(["route", "trials", "converged", "details"],
                                                        _stage_rows(st))])]
    fig = _progress_figure(st, route, truth, folder / "progress.png")
    if fig is not None:
        caption = ("Left: " + ("|corr| of each route's f1 with Algorithm 1's f1 on the hidden learner (for a "
                               "rotation-invariant learner, with that f1's eigenspace); dashed: 0.9. "
                               if truth is not None else
                               "correlation of each generation with the previous one on fixed reference stimuli "
                               "(the stopping criterion). ")
                   + "Right: the share of each route's f1 in each harmonic degree against the trials used.")
        sections.append(("How the routes got there", [figure(fig, caption)]))
    if e.validation is not None and e.validation.ratio is not None:
        v = e.validation
        verdict = "easier than" if v.ci[1] < 1 else ("harder than" if v.ci[0] > 1 else "not distinguishable from")
        sections.append(("Validation on the animal", [table(
            ["pairs", "MSE, f1", "MSE, control", "ratio f1 / control", "95 % CI", "trials"],
            [[v.pairs, f"{v.mse_f1:.4f}", f"{v.mse_control:.4f}", f"{v.ratio:.3f}",
              f"{v.ci[0]:.3f}–{v.ci[1]:.3f}", v.trials]]),
            paragraph(f"On this evidence f1 is {verdict} a control labelling with the same marginal.")]))
    rows = [[r.plan.index, ROUTE_NAMES.get(r.plan.route, r.plan.route),
             "read-out" if r.plan.extra.get("readout") else ("–" if r.plan.generation is None else r.plan.generation),
             r.plan.train_x.shape[0], r.plan.probe_x.shape[0], r.plan.repeats, r.trials] for r in st.log]
    if len(rows) > 40:
        rows = rows[:20] + [["…"] * 7] + rows[-19:]
    sections.append(("Trial budget", [table(["session", "route", "generation", "training stimuli", "probes",
                                             "repeats", "trials"], rows)]))
    sections.append(("What is from the paper, and what is ours", [paragraph(
        "Dorrell et al. claim that meta-learning can extract animals' inductive biases, but their animal method "
        "could not be read. The routes here are learnscope's design on related work: iterated learning "
        "(Kalish, Griffiths & Lewandowsky 2007) read as a power iteration on the learning operator, a "
        "behavioural surrogate fitted by maximum likelihood (as Ashwood et al. 2020 and Mehta et al. 2024 fit "
        "learning rules to behaviour) with query-by-committee sessions, and antithetic evolution strategies "
        "(Salimans et al. 2017).", note=True)]))
    html = page(cfg.title or "Animal experiment", sections, top=top)
    return atomic_write(folder / "report.html", html)
