r"""Statistics of recorded activity, with the same definitions as for simulated networks: the recordings table.

A simulated layer's ``act*`` statistics are :func:`learnscope.identify.observables.activity_statistics` ``(A)``
of its output ``A`` on the probe batch, shape ``(N probes, units)``, after the measurement model
(:func:`~learnscope.identify.observables.measure_layer`). A recording gives, per session and area, one response per
(stimulus, cell): this module puts those responses in the same ``(N stimuli, cells)`` layout and calls the same
function — one code path, so a recording of a simulated network gives the store's numbers to float precision.

From presentations to the ``(N, cells)`` tensor of one session (:func:`responses_by_stimulus`,
:func:`align_sessions`):

1. repeats of a stimulus within a session are averaged: :math:`A_{s,c} = \frac{1}{|P_s|}\sum_{p \in P_s} r_{p,c}`
   (the simulation shows each probe once);
2. only the stimuli shown in **every** session are kept, in ascending id order, so each checkpoint is measured on the
   same probe set, as in the simulation;
3. cells: with ids matched across sessions (a global cell-id column) only the cells found in every session are kept,
   in ascending id order — a chronic recording, like the simulation's fixed unit subset; without ids each session
   keeps all its cells (different cells per session: the unmatched case).

The ``act*`` statistics are population statistics of one session and need no matching; no statistic of
:data:`~learnscope.identify.observables.ALL_OBS` needs the cells matched across sessions from activity alone
(``gradavg*`` is the layer's input–output Jacobian, which a recording does not give), so the table holds the 21
``act*`` columns and a model for it must use ``act*`` statistics only (``identify fit --observables act``).
:func:`align_sessions` already returns the matched ``(sessions, stimuli, cells)`` block that statistics of activity
change across sessions would need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, NonFiniteError, ShapeError
from learnscope.identify import observables
from learnscope.identify.dataset import GROUPS
from learnscope.identify.observables import FUNCTIONS, STATISTICS, obs_name

ACT_OBS: tuple[str, ...] = tuple(obs_name("act", f, s) for f in FUNCTIONS for s in STATISTICS)
"""The 21 statistics a recording of activity gives, in :data:`~learnscope.identify.observables.ALL_OBS` order."""
TABLE_KEYS: tuple[str, ...] = ("network", "layer", "group", "checkpoint")


def activity_statistics(responses: np.ndarray) -> dict[str, float]:
    """The 21 ``act*`` statistics of one layer at one checkpoint from its ``(N stimuli, cells)`` responses.

    Exactly :func:`~learnscope.identify.observables.activity_statistics` (the simulator's own code path:
    :func:`~learnscope.identify.observables.tensor_statistics` ``(responses, "act")`` in float64): per stimulus
    over the cells (``norm`` = L2 norm, ``mean``, TF-nearest ``median`` and
    ``thirdquartile``, population ``var``, ``skew = 3 (mean − median)/std``, ``kurtosis``) of ``raw``, ``sq`` and
    ``abs`` responses, then the mean over stimuli. Keys in :data:`ACT_OBS` order.
    """
    a = np.asarray(responses, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ShapeError(f"responses must have shape (stimuli, cells) with both >= 1, got {a.shape}")
    if not np.isfinite(a).all():
        raise NonFiniteError("responses hold NaN/inf; remove or interpolate those cells or presentations")
    return observables.activity_statistics(np.ascontiguousarray(a))


def responses_by_stimulus(presentations: np.ndarray, stimulus: Sequence) -> tuple[np.ndarray, np.ndarray]:
    r"""Average the repeats of each stimulus: ``(ids ascending (S,), responses (S, cells))``.

    ``presentations`` has shape ``(P, cells)``, one response per presentation; ``stimulus`` ``(P,)`` the stimulus id of
    each presentation (any sortable values). :math:`A_{s,c} = \mathrm{mean}_{p:\,\mathrm{stim}(p)=s}\, r_{p,c}`.
    """
    r = np.asarray(presentations, dtype=np.float64)
    stim = np.asarray(stimulus)
    if r.ndim != 2 or stim.shape != (r.shape[0],):
        raise ShapeError(f"presentations (P, cells) and stimulus ids (P,) must agree, got {r.shape} and {stim.shape}")
    ids, inverse = np.unique(stim, return_inverse=True)
    if len(ids) == len(stim):
        order = np.argsort(stim, kind="stable")
        return ids, r[order]
    sums = np.zeros((len(ids), r.shape[1]))
    np.add.at(sums, inverse, r)
    return ids, sums / np.bincount(inverse)[:, None]


@dataclass(frozen=True)
class LayerSessions:
    """One recorded layer (area) over sessions, before alignment.

    Attributes:
        layer: the name in the recordings table.
        group: ``"early" | "middle" | "deep"``.
        responses: per session, ``(S_k stimuli, C_k cells)`` (repeats already averaged).
        stimulus_ids: per session, ``(S_k,)`` ascending.
        cell_ids: per session, ``(C_k,)`` global cell ids matched across sessions, or ``None`` (cells unmatched).
        sessions: per session, a label for messages (the file name).
    """

    layer: str
    group: str
    responses: tuple[np.ndarray, ...]
    stimulus_ids: tuple[np.ndarray, ...]
    cell_ids: tuple[np.ndarray, ...] | None
    sessions: tuple[str, ...]


@dataclass(frozen=True)
class AlignedLayer:
    """A layer after :func:`align_sessions`: the same stimuli in every session, and (matched) the same cells.

    ``responses`` is a list of ``(S, C_k)`` arrays (``C_k`` = C for all k when ``cell_ids`` is not None, and then
    ``np.stack(responses)`` is the ``(sessions, S, C)`` block); ``stimulus_ids`` ``(S,)``; ``cell_ids`` ``(C,)`` or
    None; ``dropped_stimuli`` and ``dropped_cells`` count what was not in every session (summed over sessions)."""

    layer: str
    group: str
    responses: tuple[np.ndarray, ...]
    stimulus_ids: np.ndarray
    cell_ids: np.ndarray | None
    dropped_stimuli: int
    dropped_cells: int


def _common(id_lists: Sequence[np.ndarray]) -> np.ndarray:
    common = id_lists[0]
    for ids in id_lists[1:]:
        common = np.intersect1d(common, ids)
    return np.sort(common)


def align_sessions(layer: LayerSessions) -> AlignedLayer:
    """Keep the stimuli shown in every session and, when cells are matched, the cells found in every session.

    Raises one-line errors when no stimulus (or, matched, no cell) is common to all sessions, or when a session's
    cell ids repeat.
    """
    if layer.group not in GROUPS:
        raise ConfigError(f"layer {layer.layer}: group must be one of {', '.join(GROUPS)}, got {layer.group!r}")
    n = len(layer.responses)
    if n == 0 or len(layer.stimulus_ids) != n or (layer.cell_ids is not None and len(layer.cell_ids) != n):
        raise ShapeError(f"layer {layer.layer}: responses, stimulus ids and cell ids need one entry per session")
    stim = _common(layer.stimulus_ids)
    if stim.size == 0:
        raise ShapeError(f"layer {layer.layer}: no stimulus is shown in every session; the statistics compare "
                         "sessions on the same probe stimuli")
    dropped_stim = sum(len(s) - len(stim) for s in layer.stimulus_ids)
    rows = [np.searchsorted(s, stim) for s in layer.stimulus_ids]
    out = [r[i] for r, i in zip(layer.responses, rows, strict=True)]
    if layer.cell_ids is None:
        return AlignedLayer(layer.layer, layer.group, tuple(out), stim, None, dropped_stim, 0)
    for ids, name in zip(layer.cell_ids, layer.sessions, strict=True):
        if len(np.unique(ids)) != len(ids):
            raise ShapeError(f"layer {layer.layer}, session {name}: the cell-id column repeats ids; each cell of a "
                             "session needs its own global id")
    cells = _common(layer.cell_ids)
    if cells.size == 0:
        raise ShapeError(f"layer {layer.layer}: no cell id is found in every session, although the mapping says "
                         "cells are matched (cell_id_column); fix the ids or remove cell_id_column")
    dropped_cells = sum(len(c) - len(cells) for c in layer.cell_ids)
    cols = [np.argsort(c, kind="stable")[np.searchsorted(np.sort(c), cells)] for c in layer.cell_ids]
    out = [r[:, j] for r, j in zip(out, cols, strict=True)]
    return AlignedLayer(layer.layer, layer.group, tuple(out), stim, cells, dropped_stim, dropped_cells)


def recordings_table(network: str, layers: Sequence[AlignedLayer], checkpoints: Sequence[int]) -> pd.DataFrame:
    """The recordings table of :mod:`learnscope.identify.predict`: one row per (layer, session).

    Columns ``network, layer, group, checkpoint`` then :data:`ACT_OBS`; session ``k`` of every layer gets
    ``checkpoints[k]`` (0 … T−1 of the model, or 0 … k−1 read as evenly spaced; see
    :func:`learnscope.identify.predict.model_checkpoints`).
    """
    rows = []
    for lay in layers:
        if len(lay.responses) != len(checkpoints):
            raise ShapeError(f"layer {lay.layer} has {len(lay.responses)} sessions but {len(checkpoints)} "
                             "checkpoints were given")
        for ckpt, resp in zip(checkpoints, lay.responses, strict=True):
            rows.append({"network": network, "layer": lay.layer, "group": lay.group, "checkpoint": int(ckpt)}
                        | activity_statistics(resp))
    return pd.DataFrame(rows, columns=[*TABLE_KEYS, *ACT_OBS])


def table_from_activities(network: str, layers: Sequence[str], groups: Sequence[str],
                          activities: Sequence[np.ndarray]) -> pd.DataFrame:
    """The recordings table of activities ``(T, N, units)`` per layer (e.g. a
    :class:`~learnscope.identify.replay.ReplayedNetwork`): checkpoint ``t`` is row block ``t``."""
    aligned = []
    for name, group, a in zip(layers, groups, activities, strict=True):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 3:
            raise ShapeError(f"layer {name}: activities must have shape (checkpoints, stimuli, units), got {a.shape}")
        aligned.append(AlignedLayer(name, group, tuple(a), np.arange(a.shape[1]), np.arange(a.shape[2]), 0, 0))
    n_ckpt = {len(a.responses) for a in aligned}
    if len(n_ckpt) != 1:
        raise ShapeError("every layer needs the same number of checkpoints")
    return recordings_table(network, aligned, range(n_ckpt.pop()))
