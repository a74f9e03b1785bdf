r"""How well each rule learned each objective: one row per (objective, rule), and a verdict where it did not.

A grid that pools objectives only means something if every rule trains every objective; where one does not, that
is a finding to report, not a silent row of the dataset (issue 14). From the networks table of a store (one row
per network with ``objective``, ``rule``, ``status`` and the ``performance_curve`` of
:mod:`learnscope.identify.training_task`), for each group of networks:

* ``initial`` / ``final``: the median over its status-ok networks of the test performance at the first and the
  last checkpoint (accuracy, R², view retrieval or explained variance: ``measure``), beside ``chance``;
* ``improvement``: the median over networks of ``final − initial`` (paired per network);
* ``learns``: whether the median improvement exceeds :data:`LEARN_MARGIN` **and** the median final performance
  exceeds chance by that margin. Every measure here is on a scale whose perfect value is 1, so the margin is
  one percentage point of that scale;
* ``n_ok`` / ``n_diverged`` / ``n_failed``: the group's networks by status.

:func:`not_learned` turns the rows whose verdict is no into one sentence each, for a ``note:`` line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from learnscope.identify.frames import curve_array, objective_of

LEARN_MARGIN = 0.01
"""A rule learns an objective when its median paired improvement and its median final performance above chance
both exceed this (performance measures are on a scale whose perfect value is 1)."""
GROUP_KEYS: tuple[str, ...] = ("objective", "rule")


def task_performance(networks: pd.DataFrame, by: Sequence[str] = GROUP_KEYS) -> list[dict]:
    """One dict per group of ``networks`` (grouped by the columns ``by``, default objective × rule), in sorted
    order: the group's keys, ``measure``, ``chance``, ``initial``, ``final``, ``improvement`` (medians over its
    status-ok networks with a performance curve; NaN if none), ``learns`` (see the module doc; ``None`` without
    such networks) and ``n_ok`` / ``n_diverged`` / ``n_failed``. A store written before the ``objective``
    column gets the objective of each network's task entry. Returns ``[]`` for a table without performance
    curves."""
    if networks.empty or "performance_curve" not in networks:
        return []
    nets = networks.drop_duplicates("network_id").copy()
    stored = nets["objective"] if "objective" in nets else [None] * len(nets)
    nets["objective"] = [o if isinstance(o, str) and o else objective_of(t)
                         for o, t in zip(stored, nets["task"], strict=True)]
    rows = []
    for key, group in nets.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ok = group[group["status"] == "ok"]
        curves = [c for c in map(curve_array, ok["performance_curve"]) if c is not None]
        first = np.array([c[0] for c in curves])
        last = np.array([c[-1] for c in curves])
        measures = ok["performance_measure"].dropna().unique() if "performance_measure" in ok else []
        chances = ok["chance_performance"].dropna().to_numpy(float) if "chance_performance" in ok else np.zeros(0)
        chance = float(np.median(chances)) if chances.size else float("nan")
        row = dict(zip(by, (str(k) for k in key), strict=True)) | {
            "measure": str(measures[0]) if len(measures) else "performance",
            "chance": chance,
            "initial": float(np.median(first)) if curves else float("nan"),
            "final": float(np.median(last)) if curves else float("nan"),
            "improvement": float(np.median(last - first)) if curves else float("nan"),
            "n_ok": int(len(ok)), "n_diverged": int((group["status"] == "diverged").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
        }
        if not curves:
            row["learns"] = None
        else:
            above_chance = np.isnan(chance) or row["final"] - chance > LEARN_MARGIN
            row["learns"] = bool(row["improvement"] > LEARN_MARGIN and above_chance)
        rows.append(row)
    return rows


def not_learned(rows: Sequence[dict]) -> list[str]:
    """A sentence for each row of :func:`task_performance` whose verdict is that the rule did not learn."""
    out = []
    for r in rows:
        if r.get("learns") is False:
            where = ", ".join(f"{k} {r[k]}" for k in r if k in ("architecture", "task", "batch_size"))
            out.append(f"rule {r['rule']} does not learn the {r['objective']} objective{f' ({where})' if where else ''}"
                       f": median {r['measure']} {r['initial']:.3f} at the start, {r['final']:.3f} at the end "
                       f"(chance {r['chance']:.3g}; {r['n_ok']} networks)")
    return out


__all__ = ["GROUP_KEYS", "LEARN_MARGIN", "not_learned", "task_performance"]
