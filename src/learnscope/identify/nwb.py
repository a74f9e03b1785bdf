"""NWB in and out: recorded sessions to the recordings table, and a simulated network to NWB sessions.

Needs the ``nwb`` extra (``pip install 'learnscope[nwb]'``: pynwb, hdmf, h5py); pynwb is imported inside the
functions, so the rest of learnscope imports without it.

**In** (:func:`recordings_from_nwb`, :func:`predict_nwb`): one NWB file per session and a mapping file (TOML) that
says which object of a session is which layer. Activity per stimulus presentation (the rows of the ``trials`` table,
or of another ``TimeIntervals`` table, one window ``[start_time, stop_time)`` each):

* ``source = "ophys"``: a ``RoiResponseSeries`` inside ``Fluorescence`` or ``DfOverF`` in a processing module
  (default ``ophys``); the response of ROI c to presentation p is the mean of its samples with timestamps in the
  window, :math:`r_{p,c} = \\mathrm{mean}\\{x_c(t) : t_p^0 \\le t < t_p^1\\}`;
* ``source = "units"``: the ``Units`` table (sorted spikes); the response is the rate
  :math:`r_{p,c} = \\#\\{\\text{spikes of } c \\text{ in } [t_p^0, t_p^1)\\} / (t_p^1 - t_p^0)` in Hz, optionally for
  the units whose column ``units_column`` equals ``units_value`` (e.g. ``location = "VISp"``).

The responses then go through :mod:`learnscope.identify.recording_stats` (repeats averaged per stimulus, stimuli
common to all sessions, matched cells when a global id column is named) and give the 21 ``act*`` statistics per
(layer, session), with the definitions used for simulated networks.

Mapping schema (unknown keys are one-line errors naming the valid ones; paths relative to the mapping file)::

    network = "mouse-07"              # the network name in the tables (default: the mapping file's stem)
    stimulus_column = "stimulus_id"   # column of the interval table naming each presentation's probe stimulus
    intervals = "trials"              # "trials", "epochs", or the name of a TimeIntervals table in the file
    cell_id_column = "global_id"      # optional: column (PlaneSegmentation / Units) with cell ids matched across
                                      # sessions; without it cells are unmatched (each session keeps all its cells)

    [[sessions]]                      # one per NWB file, in the order of learning
    file = "ses-01.nwb"
    fraction = 0.0                    # optional, in [0, 1]: where the session sits in learning; give it for every
                                      # session or for none (then sessions are evenly spaced: checkpoint = index)

    [[layers]]                        # one per recorded layer / area
    name = "V1"
    group = "early"                   # early | middle | deep
    source = "ophys"                  # ophys | units
    series = "V1_dff"                 # ophys: the RoiResponseSeries' name
    container = "DfOverF"             # ophys, optional: Fluorescence | DfOverF (default: whichever holds `series`)
    module = "ophys"                  # ophys, optional: the processing module
    units_column = "location"         # units, optional (with units_value): which rows of Units are this layer
    units_value = "VISp"

With fractions, session k is the model checkpoint ``round(fraction_k (T − 1))`` (T = the model's checkpoints; two
sessions on one checkpoint are refused); without, checkpoint k (0 … K−1, read by ``predict`` as evenly spaced).

**Out** (:func:`export_network`): a stored network replayed (:mod:`learnscope.identify.replay`), its probe activities
under a measurement condition written as one NWB file per checkpoint (``session-00.nwb`` …): a trials table
(one presentation per probe, ``stimulus_id`` = probe index) and per layer a ``RoiResponseSeries`` in
``ophys/Fluorescence`` whose samples in each presentation window equal that presentation's activity (0 between
presentations), with ROI ids in a ``global_id`` column; and ``mapping.toml`` beside them. Reading that directory
back gives the store's ``act*`` statistics.
"""

from __future__ import annotations

import datetime as dt
import importlib
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from learnscope.errors import ConfigError, EnvironmentFailure, NonFiniteError, ShapeError, StoreError, UnknownNameError
from learnscope.fileio import atomic_save, atomic_write, shown
from learnscope.identify.dataset import GROUPS
from learnscope.identify.recording_stats import LayerSessions, align_sessions, recordings_table, responses_by_stimulus
from learnscope.validation import check_keys, check_scalar

MAPPING_KEYS = ("network", "stimulus_column", "intervals", "cell_id_column", "sessions", "layers")
SESSION_KEYS = ("file", "fraction")
LAYER_KEYS = ("name", "group", "source", "series", "container", "module", "units_column", "units_value")
SOURCES = ("ophys", "units")
CONTAINERS = ("Fluorescence", "DfOverF")
MAPPING_NAME = "mapping.toml"
EXPORT_CELL_ID = "global_id"
NWB_EXTRA = "NWB input needs the nwb extra: pip install 'learnscope[nwb]'"


def _pynwb():
    """pynwb, or a one-line :class:`EnvironmentFailure` when the ``nwb`` extra is missing."""
    try:
        return importlib.import_module("pynwb")
    except ImportError:
        raise EnvironmentFailure(NWB_EXTRA) from None


# ----------------------------------------------------------------------------------------------------------------
# the mapping file


@dataclass(frozen=True)
class SessionSpec:
    """One session: its NWB file and, optionally, where it sits in learning (fraction of training in [0, 1])."""

    path: Path
    fraction: float | None


@dataclass(frozen=True)
class LayerSpec:
    """One recorded layer of the mapping (see the module docstring for the keys)."""

    name: str
    group: str
    source: str
    series: str | None = None
    container: str | None = None
    module: str = "ophys"
    units_column: str | None = None
    units_value: object = None


@dataclass(frozen=True)
class NWBMapping:
    """A parsed mapping file: which NWB object is which layer, and the sessions in learning order."""

    path: Path
    network: str
    sessions: tuple[SessionSpec, ...]
    layers: tuple[LayerSpec, ...]
    stimulus_column: str = "stimulus_id"
    intervals: str = "trials"
    cell_id_column: str | None = None

    @property
    def matched(self) -> bool:
        """Cells matched across sessions (a global cell-id column is named)."""
        return self.cell_id_column is not None


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _table_list(raw: dict, key: str, where: str) -> list[dict]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: needs at least one [[{key}]] table")
    return value


def parse_mapping(raw: dict, path: str | Path) -> NWBMapping:
    """Validate a mapping (a TOML document already parsed to a dict; ``path`` = where it lives, for relative session
    files and messages). Raises :class:`~learnscope.errors.UnknownNameError` for an unknown key and
    :class:`ConfigError` for a bad value, before any NWB file is opened."""
    path = Path(path)
    where = shown(path)
    check_keys(raw, MAPPING_KEYS, f"key in mapping {where}")
    network = _text(f"{where}: network", raw.get("network", path.stem))
    stim_col = _text(f"{where}: stimulus_column", raw.get("stimulus_column", "stimulus_id"))
    intervals = _text(f"{where}: intervals", raw.get("intervals", "trials"))
    cell_col = raw.get("cell_id_column")
    if cell_col is not None:
        cell_col = _text(f"{where}: cell_id_column", cell_col)
    sessions = []
    for i, s in enumerate(_table_list(raw, "sessions", where)):
        w = f"{where} [[sessions]] {i + 1}"
        check_keys(s, SESSION_KEYS, f"key in {w}")
        file = Path(_text(f"{w}: file", s.get("file")))
        fraction = s.get("fraction")
        if fraction is not None:
            fraction = check_scalar(f"{w}: fraction", fraction, float, 0.0, 1.0, note="a fraction of training")
        sessions.append(SessionSpec(file if file.is_absolute() else path.parent / file, fraction))
    given = [s.fraction is not None for s in sessions]
    if any(given) and not all(given):
        raise ConfigError(f"{where}: give fraction for every session or for none (none: sessions evenly spaced); "
                          f"{given.count(False)} of {len(sessions)} lack it")
    if all(given) and any(b.fraction < a.fraction for a, b in zip(sessions, sessions[1:], strict=False)):
        raise ConfigError(f"{where}: sessions must be listed in the order of learning (fractions non-decreasing)")
    files = [s.path.resolve() for s in sessions]
    if len(set(files)) != len(files):
        raise ConfigError(f"{where}: a session file is listed twice")
    layers = []
    for i, lay in enumerate(_table_list(raw, "layers", where)):
        w = f"{where} [[layers]] {i + 1}"
        check_keys(lay, LAYER_KEYS, f"key in {w}")
        name = _text(f"{w}: name", lay.get("name"))
        group = lay.get("group")
        if group not in GROUPS:
            raise UnknownNameError(f"group of layer {name!r} in {where}", str(group), GROUPS)
        source = lay.get("source", "ophys")
        if source not in SOURCES:
            raise UnknownNameError(f"source of layer {name!r} in {where}", str(source), SOURCES)
        if source == "ophys":
            for k in ("units_column", "units_value"):
                if k in lay:
                    raise ConfigError(f"{w}: {k} is for source = 'units'; an ophys layer names its series")
            series = _text(f"{w}: series (the RoiResponseSeries' name)", lay.get("series"))
            container = lay.get("container")
            if container is not None and container not in CONTAINERS:
                raise UnknownNameError(f"container of layer {name!r} in {where}", str(container), CONTAINERS)
            module = _text(f"{w}: module", lay.get("module", "ophys"))
            layers.append(LayerSpec(name, group, source, series=series, container=container, module=module))
        else:
            for k in ("series", "container", "module"):
                if k in lay:
                    raise ConfigError(f"{w}: {k} is for source = 'ophys'; a units layer reads the Units table")
            col, value = lay.get("units_column"), lay.get("units_value")
            if (col is None) != (value is None):
                raise ConfigError(f"{w}: give units_column and units_value together (or neither: all units)")
            if col is not None:
                col = _text(f"{w}: units_column", col)
            layers.append(LayerSpec(name, group, source, units_column=col, units_value=value))
    names = [lay.name for lay in layers]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: layer names must be unique, got {names}")
    return NWBMapping(path, network, tuple(sessions), tuple(layers), stim_col, intervals, cell_col)


def resolve_mapping(path: str | Path) -> Path:
    """The mapping file of ``path``: the file itself, or ``path/mapping.toml`` for a directory (what
    :func:`export_network` writes)."""
    path = Path(path)
    if path.is_dir():
        found = path / MAPPING_NAME
        if not found.is_file():
            raise ConfigError(f"{shown(path)} is a directory without {MAPPING_NAME}; give a CSV or Parquet "
                              "recordings file, or NWB sessions with the mapping file that names them and their "
                              "layers (see learnscope.identify.nwb)")
        return found
    if not path.is_file():
        raise ConfigError(f"mapping file {shown(path)} does not exist")
    return path


def is_nwb_input(path: str | Path) -> bool:
    """True when ``identify predict`` should read ``path`` as NWB sessions: a directory or a ``.toml`` mapping."""
    path = Path(path)
    return path.is_dir() or path.suffix.lower() == ".toml"


def load_mapping(path: str | Path) -> NWBMapping:
    """Read and validate a mapping file (or a directory holding ``mapping.toml``)."""
    path = resolve_mapping(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{shown(path)} is not a text file; give the TOML mapping of the NWB sessions") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{shown(path)}: not valid TOML ({err})") from None
    return parse_mapping(raw, path)


# ----------------------------------------------------------------------------------------------------------------
# reading sessions


def _check_is_nwb(path: Path) -> None:
    import h5py

    if not path.is_file():
        raise ConfigError(f"session file {shown(path)} does not exist")
    if not h5py.is_hdf5(path):
        raise ConfigError(f"{shown(path)} is not an NWB file (not HDF5); sessions must be NWB 2 files (.nwb)")
    try:
        with h5py.File(path, "r") as fh:
            kind = fh.attrs.get("neurodata_type")
    except OSError as err:
        raise ConfigError(f"{shown(path)} is not a readable HDF5 file ({err})") from None
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind != "NWBFile":
        raise ConfigError(f"{shown(path)} is an HDF5 file but not NWB (no NWBFile root); sessions must be NWB 2 files")


def _ids(values: np.ndarray) -> np.ndarray:
    """Stimulus / cell ids as int64 when they are whole numbers, else as text."""
    v = np.asarray(values)
    if v.dtype.kind in "iu":
        return v.astype(np.int64)
    if v.dtype.kind == "f" and np.isfinite(v).all() and (v == np.round(v)).all():
        return v.astype(np.int64)
    return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in v.tolist()])


def _windows(nwb, mapping: NWBMapping, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start (P,), stop (P,), stimulus ids (P,)) of the session's presentations."""
    name = mapping.intervals
    if name == "trials":
        table = nwb.trials
    elif name == "epochs":
        table = nwb.epochs
    else:
        table = nwb.intervals.get(name) if nwb.intervals is not None else None
    if table is None or len(table) == 0:
        have = sorted(nwb.intervals) if nwb.intervals is not None else []
        have_txt = f" (its interval tables: {', '.join(have)})" if have else " (it has no interval table)"
        raise ShapeError(f"session {label} has no {name} table with presentations{have_txt}; each session needs one "
                         f"row per stimulus presentation (start_time, stop_time, {mapping.stimulus_column}) — set "
                         "intervals in the mapping")
    if mapping.stimulus_column not in table.colnames:
        raise ConfigError(f"session {label}: the {name} table has no column {mapping.stimulus_column!r} (its "
                          f"columns: {', '.join(table.colnames)}); set stimulus_column in the mapping")
    start = np.asarray(table["start_time"].data[:], dtype=np.float64)
    stop = np.asarray(table["stop_time"].data[:], dtype=np.float64)
    if not (np.isfinite(start).all() and np.isfinite(stop).all()):
        raise NonFiniteError(f"session {label}: the {name} table has NaN/inf start or stop times")
    if (stop <= start).any():
        i = int(np.flatnonzero(stop <= start)[0])
        raise ShapeError(f"session {label}: presentation {i} of the {name} table ends before it starts "
                         f"({start[i]} .. {stop[i]} s)")
    return start, stop, _ids(table[mapping.stimulus_column].data[:])


def _ophys_responses(nwb, lay: LayerSpec, mapping: NWBMapping, label: str, start: np.ndarray, stop: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    modules = nwb.processing
    if lay.module not in modules:
        raise ConfigError(f"session {label} has no processing module {lay.module!r} for layer {lay.name} (its "
                          f"modules: {', '.join(sorted(modules)) or 'none'})")
    mod = modules[lay.module]
    candidates = [lay.container] if lay.container else [c for c in CONTAINERS if c in mod.data_interfaces]
    holders = [c for c in candidates if c in mod.data_interfaces
               and lay.series in mod.data_interfaces[c].roi_response_series]
    if not holders:
        found = {c: sorted(mod.data_interfaces[c].roi_response_series) for c in CONTAINERS if c in mod.data_interfaces}
        listing = "; ".join(f"{c}: {', '.join(s) or 'none'}" for c, s in found.items()) or "no Fluorescence or DfOverF"
        raise ConfigError(f"session {label} has no RoiResponseSeries {lay.series!r} for layer {lay.name} in "
                          f"{lay.module}/{'|'.join(candidates) or 'Fluorescence|DfOverF'} ({listing})")
    if len(holders) > 1:
        raise ConfigError(f"session {label}: RoiResponseSeries {lay.series!r} is in both Fluorescence and DfOverF; "
                          f"set container for layer {lay.name}")
    series = mod.data_interfaces[holders[0]].roi_response_series[lay.series]
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    times = np.asarray(series.get_timestamps(), dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != times.shape[0]:
        raise ShapeError(f"session {label}: RoiResponseSeries {lay.series!r} has data {data.shape} for "
                         f"{times.shape[0]} time points; expected (time, ROIs)")
    if data.shape[1] == 0:
        raise ShapeError(f"session {label}: RoiResponseSeries {lay.series!r} has no ROI")
    if np.any(np.diff(times) < 0):
        raise ShapeError(f"session {label}: RoiResponseSeries {lay.series!r} has decreasing timestamps")
    lo = np.searchsorted(times, start, side="left")
    hi = np.searchsorted(times, stop, side="left")
    empty = hi <= lo
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ShapeError(f"session {label}: RoiResponseSeries {lay.series!r} has no sample in presentation {i} "
                         f"({start[i]} .. {stop[i]} s); {int(empty.sum())} window(s) are empty")
    resp = np.stack([data[a:b].mean(axis=0) for a, b in zip(lo, hi, strict=True)])
    if not np.isfinite(resp).all():
        bad_p, bad_c = np.nonzero(~np.isfinite(resp))
        raise NonFiniteError(f"session {label}: RoiResponseSeries {lay.series!r} (layer {lay.name}) has NaN/inf "
                             f"samples in {len(np.unique(bad_p))} presentation window(s) of {len(np.unique(bad_c))} "
                             f"ROI(s) (first: ROI {int(bad_c[0])}); drop those ROIs or interpolate the trace")
    ids = None
    if mapping.cell_id_column is not None:
        table = series.rois.table
        if mapping.cell_id_column not in table.colnames:
            raise ConfigError(f"session {label}: the ROI table {table.name!r} of {lay.series!r} has no column "
                              f"{mapping.cell_id_column!r} (its columns: {', '.join(table.colnames)}); the mapping "
                              "says cells are matched — add the column or remove cell_id_column")
        rows = np.asarray(series.rois.data[:], dtype=np.int64)
        ids = _ids(np.asarray(table[mapping.cell_id_column].data[:])[rows])
        if len(ids) != data.shape[1]:
            raise ShapeError(f"session {label}: {lay.series!r} has {data.shape[1]} ROIs but {len(ids)} ROI-table rows")
    return resp, ids


def _units_responses(nwb, lay: LayerSpec, mapping: NWBMapping, label: str, start: np.ndarray, stop: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    units = nwb.units
    if units is None or len(units) == 0:
        raise ConfigError(f"session {label} has no Units table for layer {lay.name} (source = 'units')")
    if "spike_times" not in units.colnames:
        raise ConfigError(f"session {label}: the Units table has no spike_times column")
    rows = np.arange(len(units))
    if lay.units_column is not None:
        if lay.units_column not in units.colnames:
            raise ConfigError(f"session {label}: the Units table has no column {lay.units_column!r} (its columns: "
                              f"{', '.join(units.colnames)}) for layer {lay.name}")
        col = _ids(np.asarray(units[lay.units_column].data[:]))
        rows = np.flatnonzero(col.astype(str) == str(lay.units_value))
        if rows.size == 0:
            raise ConfigError(f"session {label}: no unit has {lay.units_column} = {lay.units_value!r} (layer "
                              f"{lay.name}; values there: {', '.join(sorted(set(col.astype(str).tolist()))[:8])})")
    index = units["spike_times"]
    ends = np.asarray(index.data[:], dtype=np.int64)
    flat = np.asarray(index.target.data[:], dtype=np.float64)
    begins = np.concatenate([[0], ends[:-1]])
    width = stop - start
    counts = np.empty((start.shape[0], rows.size))
    for j, u in enumerate(rows):
        t = flat[begins[u]:ends[u]]
        if not np.isfinite(t).all():
            raise NonFiniteError(f"session {label}: unit {int(units.id[u])} (layer {lay.name}) has NaN/inf spike times")
        t = np.sort(t)
        counts[:, j] = np.searchsorted(t, stop, side="left") - np.searchsorted(t, start, side="left")
    ids = None
    if mapping.cell_id_column is not None:
        if mapping.cell_id_column not in units.colnames:
            raise ConfigError(f"session {label}: the Units table has no column {mapping.cell_id_column!r} (its "
                              f"columns: {', '.join(units.colnames)}); the mapping says cells are matched — add the "
                              "column or remove cell_id_column")
        ids = _ids(np.asarray(units[mapping.cell_id_column].data[:])[rows])
    return counts / width[:, None], ids


def _read_session(spec: SessionSpec, mapping: NWBMapping) -> dict[str, tuple[np.ndarray, np.ndarray,
                                                                              np.ndarray | None]]:
    """``{layer: (stimulus ids (S,), responses (S, cells), cell ids (cells,) | None)}`` of one session."""
    pynwb = _pynwb()
    path = spec.path
    label = shown(path)
    _check_is_nwb(path)
    try:
        io = pynwb.NWBHDF5IO(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ConfigError(f"cannot read {label} as NWB ({type(err).__name__}: {_short(err)})") from None
    with io:
        try:
            nwb = io.read()
        except Exception as err:  # noqa: BLE001
            raise ConfigError(f"cannot read {label} as NWB ({type(err).__name__}: {_short(err)})") from None
        start, stop, stim = _windows(nwb, mapping, label)
        out = {}
        for lay in mapping.layers:
            read = _ophys_responses if lay.source == "ophys" else _units_responses
            resp, cells = read(nwb, lay, mapping, label, start, stop)
            ids, by_stim = responses_by_stimulus(resp, stim)
            out[lay.name] = (ids, by_stim, cells)
    return out


def _short(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 100 else text[:97] + "..."


def session_checkpoints(mapping: NWBMapping, n_checkpoints: int | None) -> np.ndarray:
    """Checkpoint number of each session: ``round(fraction (T−1))`` with fractions (needs ``n_checkpoints`` = T, the
    model's), else the session index ``0 … K−1`` (read by ``predict`` as evenly spaced)."""
    fractions = [s.fraction for s in mapping.sessions]
    if fractions[0] is None:
        return np.arange(len(fractions))
    if n_checkpoints is None:
        raise ConfigError(f"{shown(mapping.path)} places sessions by fraction of training; that needs the model's "
                          "number of checkpoints (predict passes it), or drop the fractions to space them evenly")
    n_checkpoints = check_scalar("n_checkpoints", n_checkpoints, int, low=2)
    ckpt = np.round(np.asarray(fractions, dtype=np.float64) * (n_checkpoints - 1)).astype(int)
    same = np.flatnonzero(np.diff(ckpt) == 0)
    if same.size:
        a, b = mapping.sessions[same[0]], mapping.sessions[same[0] + 1]
        raise ConfigError(f"sessions {a.path.name} and {b.path.name} (fractions {a.fraction}, {b.fraction}) fall on "
                          f"the same model checkpoint {ckpt[same[0]]} of 0..{n_checkpoints - 1}; keep one of them")
    return ckpt


def recordings_from_nwb(mapping: str | Path | NWBMapping, *, n_checkpoints: int | None = None
                        ) -> tuple[pd.DataFrame, dict]:
    """Read the NWB sessions of a mapping into the recordings table of :mod:`learnscope.identify.predict`.

    Args:
        mapping: a mapping file, a directory holding ``mapping.toml``, or a parsed :class:`NWBMapping`.
        n_checkpoints: the model's checkpoints T, needed when sessions are placed by fraction of training.

    Returns:
        ``(table, info)``: ``table`` has one row per (layer, session) with ``network, layer, group, checkpoint`` and
        the 21 ``act*`` statistics; ``info`` = ``{"network", "sessions": [file names], "checkpoints": [...],
        "matched": bool, "layers": {layer: {"stimuli": S, "cells": [per session], "dropped_stimuli",
        "dropped_cells"}}}``.

    Every problem is a one-line :class:`~learnscope.errors.LearnscopeError` (exit 2) naming the session, raised
    before anything is written: a missing file, a file that is not NWB, a missing module / series / Units table /
    column the mapping names, a session without presentations, NaN in a trace or spike train, no stimulus (or, when
    matched, no cell) common to all sessions.
    """
    m = mapping if isinstance(mapping, NWBMapping) else load_mapping(mapping)
    checkpoints = session_checkpoints(m, n_checkpoints)
    _pynwb()
    per_session = [_read_session(s, m) for s in m.sessions]
    aligned, layer_info = [], {}
    for lay in m.layers:
        got = [ps[lay.name] for ps in per_session]
        a = align_sessions(LayerSessions(
            layer=lay.name, group=lay.group, responses=tuple(g[1] for g in got),
            stimulus_ids=tuple(g[0] for g in got), cell_ids=tuple(g[2] for g in got) if m.matched else None,
            sessions=tuple(s.path.name for s in m.sessions)))
        aligned.append(a)
        layer_info[lay.name] = {"stimuli": int(a.stimulus_ids.size), "cells": [int(r.shape[1]) for r in a.responses],
                                "dropped_stimuli": a.dropped_stimuli, "dropped_cells": a.dropped_cells}
    table = recordings_table(m.network, aligned, checkpoints)
    info = {"network": m.network, "sessions": [s.path.name for s in m.sessions],
            "checkpoints": checkpoints.tolist(), "matched": m.matched, "layers": layer_info}
    return table, info


def predict_nwb(model_path: str | Path, mapping: str | Path | NWBMapping, *, subset: str = "strict"
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """:func:`learnscope.identify.predict.predict_recordings` on NWB sessions (see :func:`recordings_from_nwb`).

    The model must use only ``act*`` statistics (fit with ``obs_class="act"``), or ``subset="auto"`` refits it on
    those. Returns ``(per_layer, per_network, info)`` with ``info["nwb"]`` = the reader's info.
    """
    from learnscope.identify.predict import load_model, predict_recordings

    model = load_model(model_path)
    table, nwb_info = recordings_from_nwb(mapping, n_checkpoints=int(model["n_checkpoints"]))
    per_layer, per_network, info = predict_recordings(model_path, table, subset=subset)
    return per_layer, per_network, info | {"nwb": nwb_info}


# ----------------------------------------------------------------------------------------------------------------
# writing a simulated network


PRESENTATION_S = 0.5
"""Length of one exported presentation window (s); presentations start every :data:`PERIOD_S` s."""
PERIOD_S = 1.0
_SAMPLE_OFFSETS = (0.125, 0.375, 0.75)
"""Exported samples per presentation, in periods after its start: two inside the window (= the activity), one in the
gap (= 0), so the window mean is the activity exactly ((a + a) / 2 = a in floating point)."""


def _condition(spec: dict, name: str):
    from learnscope.identify.observables import Condition

    conditions = {c["name"]: c for c in spec["conditions"]}
    if name not in conditions:
        raise UnknownNameError("condition", name, conditions)
    cond = Condition(**conditions[name])
    if getattr(cond, "jitter", 0.0):
        raise ConfigError(f"condition {name!r} jitters where sessions fall in learning; export writes the nominal "
                          "checkpoints — export a condition without jitter")
    if not getattr(cond, "activity_only", False) and cond.sigma > 0:
        raise ConfigError(f"condition {name!r} adds Gaussian noise to weights and activity (sigma {cond.sigma}); "
                          "export writes activity-only conditions, or clean / unit-subset ones")
    return cond


def measured_sessions(replay, cond) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]], list[np.ndarray], bool]:
    """What condition ``cond`` records of a replayed network, as the simulator measured it.

    Returns ``(blocks, cell_ids, stimuli, matched)``: ``blocks[k][l]`` ``(P', k_l)`` the recorded responses of layer
    l in session (checkpoint) k — :func:`~learnscope.identify.observables.recorded_activity` for activity-only
    conditions (probe subset, unit subsets, Poisson / calcium), else the kept columns of
    :func:`~learnscope.identify.observables.unit_subset`; ``cell_ids[k][l]`` the unit indices (matched) or
    ``0 … k_l−1`` (unmatched: a different random subset per session); ``stimuli[k]`` the probe indices shown.
    """
    from learnscope import rng
    from learnscope.identify import observables as obs

    T = replay.n_checkpoints
    n_probe = replay.activities[0].shape[1]
    matched = bool(getattr(cond, "matched", True))
    probes = getattr(cond, "probes", None)
    if probes is not None:
        from learnscope.identify.measurement import probe_subset

        stim = probe_subset(n_probe, probes, rng.numpy_rng(cond.seed, "identify.probes"))
    else:
        stim = np.arange(n_probe)
    key = int(replay.network_id, 16)
    blocks: list[list[np.ndarray]] = [[] for _ in range(T)]
    ids: list[list[np.ndarray]] = [[] for _ in range(T)]
    for li, a in enumerate(replay.activities):  # (T, P, U)
        n_units = a.shape[2]
        if getattr(cond, "activity_only", False):
            for k in range(T):
                block = obs.recorded_activity(a[k], cond, network_key=key, layer_index=li, session=k)
                blocks[k].append(block)
        else:
            cols = obs.unit_subset(n_units, cond.frac, cond.seed, units=getattr(cond, "units", None),
                                   small_layers=getattr(cond, "small_layers", "error"))
            cols = np.arange(n_units) if cols is None else np.asarray(cols)
            for k in range(T):
                blocks[k].append(a[k][:, cols])
        for k in range(T):
            width = blocks[k][-1].shape[1]
            if matched:
                cols = obs.unit_subset(n_units, cond.frac, cond.seed, units=getattr(cond, "units", None),
                                       small_layers=getattr(cond, "small_layers", "error"))
                ids[k].append(np.arange(n_units) if cols is None else np.asarray(cols).copy())
            else:
                ids[k].append(np.arange(width))
    return blocks, ids, [stim] * T, matched


def _plane_segmentation(name: str, plane, ids: np.ndarray):
    """ROI table of one layer: ROI u is unit ``ids[u]`` (column ``global_id``), a one-pixel mask at (u, 0), built in
    bulk (``add_roi`` one by one costs ~1 ms per ROI)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.ophys import PlaneSegmentation

    n = len(ids)
    mask = np.zeros(n, dtype=[("x", "uint32"), ("y", "uint32"), ("weight", "float32")])
    mask["x"], mask["weight"] = np.arange(n), 1.0
    pixel = VectorData(name="pixel_mask", description="one pixel per simulated unit", data=mask)
    index = VectorIndex(name="pixel_mask_index", data=np.arange(1, n + 1), target=pixel)
    gid = VectorData(name=EXPORT_CELL_ID, description="unit index in the layer (the same unit in every session)",
                     data=np.asarray(ids, dtype=np.int64))
    return PlaneSegmentation(name=f"rois_{name}", description=f"units of layer {name}", imaging_plane=plane,
                             id=list(range(n)), columns=[pixel, index, gid], colnames=["pixel_mask", EXPORT_CELL_ID])


def _session_file(nwb_module, replay, k: int, layer_acts: list[np.ndarray], layer_ids: list[np.ndarray],
                  stimuli: np.ndarray, condition: str, container: str, path: Path) -> None:
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    spec = replay.spec
    T = replay.n_checkpoints
    truth = (f"rule {spec['rule']}, task {spec['task']}, architecture {spec['architecture']}, lr {spec['lr']:.6g}, "
             f"batch size {spec['batch_size']}, seed {spec['seed']}")
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=k)
    nwb = nwb_module.NWBFile(
        session_description=(f"learnscope simulated network {replay.network_id}, checkpoint {k} of 0..{T - 1} "
                             f"(step {int(replay.steps[k])}, training fraction {replay.training_fraction[k]:.6g})"),
        identifier=f"learnscope-{replay.network_id}-{condition}-checkpoint-{k:03d}",
        session_start_time=start, session_id=f"checkpoint-{k:03d}",
        experiment_description=f"probe activities of a network trained by learnscope ({truth}); condition {condition}",
        source_script="learnscope identify export", source_script_file_name="learnscope/identify/nwb.py",
    )
    n_probe = layer_acts[0].shape[0]
    nwb.add_trial_column(name="stimulus_id", description="index of the probe input shown (0 … P−1)")
    onsets = np.arange(n_probe) * PERIOD_S
    for p in range(n_probe):
        nwb.add_trial(start_time=float(onsets[p]), stop_time=float(onsets[p] + PRESENTATION_S),
                      stimulus_id=int(stimuli[p]))
    times = (onsets[:, None] + np.asarray(_SAMPLE_OFFSETS)[None, :] * PERIOD_S).reshape(-1)
    device = nwb.create_device(name="learnscope", description="a simulated recording of every probe activity")
    channel = OpticalChannel(name="channel", description="simulated", emission_lambda=500.0)
    module = nwb.create_processing_module(name="ophys", description="probe activities of the simulated layers")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    module.add(segmentation)
    holder = (Fluorescence if container == "Fluorescence" else DfOverF)(name=container)
    module.add(holder)
    for name, group, acts, ids in zip(replay.layers, replay.groups, layer_acts, layer_ids, strict=True):
        plane = nwb.create_imaging_plane(name=f"plane_{name}", optical_channel=channel, device=device,
                                         description=f"layer {name} ({group})", excitation_lambda=900.0,
                                         indicator="none (simulated activity)", location=name, imaging_rate=3.0)
        segmentation.add_plane_segmentation(_plane_segmentation(name, plane, ids))
        seg = segmentation.plane_segmentations[f"rois_{name}"]
        data = np.zeros((n_probe, len(_SAMPLE_OFFSETS), acts.shape[1]))
        data[:, 0] = data[:, 1] = acts
        holder.add_roi_response_series(RoiResponseSeries(
            name=name, data=data.reshape(-1, acts.shape[1]), timestamps=times, unit="a.u.",
            rois=seg.create_roi_table_region(region=list(range(acts.shape[1])), description=f"units of {name}"),
            description=f"activity of layer {name} ({group}); samples inside a presentation window equal the response"))
    with warnings.catch_warnings():  # the temporary name of the atomic write does not end in .nwb
        warnings.filterwarnings("ignore", message="The file path provided", category=UserWarning)
        with nwb_module.NWBHDF5IO(str(path), mode="w") as io:
            io.write(nwb)


def export_network(store, network_id: str, out_dir: str | Path, *, condition: str = "clean",
                   container: str = "Fluorescence") -> list[Path]:
    """Write a stored network's probe activities as NWB sessions, one per checkpoint, and their ``mapping.toml``.

    The network is replayed (:func:`learnscope.identify.replay.replay_network`: one training, deterministic) and each
    layer's output on the P probe inputs, shape ``(P, U)``, is measured under ``condition`` exactly as the simulator
    measured it (:func:`measured_sessions`: a unit fraction / count keeps the same units at every checkpoint;
    activity-only conditions — Poisson, calcium, probe subsets, unmatched units — go through
    :func:`~learnscope.identify.observables.recorded_activity` with the simulator's generators; the original
    model's Gaussian noise on weights and activity, and jitter, are refused). Unmatched conditions write no
    ``cell_id_column`` into the mapping. Files: ``out_dir/session-<k>.nwb`` for k = 0 … T−1 (k zero-padded to two
    digits, or more when T > 100) and ``out_dir/mapping.toml`` (sessions placed by their training fraction, cells
    matched by ``global_id``). Each file is written to a temporary name beside it and renamed (atomic); ``out_dir``
    is created if missing, and same-named files in it are replaced (the CLI writes into a fresh staging directory).

    Args:
        store: a :class:`~learnscope.identify.store.Store` or its directory.
        network_id: a network of the store with status ``ok``.
        condition: a measurement condition of the store's grid (default ``"clean"``).
        container: ``"Fluorescence"`` or ``"DfOverF"``, the container of the written RoiResponseSeries.

    Returns:
        the written paths: the T session files in order, then the mapping file.
    """
    from learnscope.identify.replay import replay_network

    nwb_module = _pynwb()
    if container not in CONTAINERS:
        raise UnknownNameError("container", container, CONTAINERS)
    from learnscope.identify.replay import network_spec
    from learnscope.identify.store import Store

    store = store if isinstance(store, Store) else Store.open(Path(store))
    cond = _condition(network_spec(store, network_id), condition)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise StoreError(f"--out {shown(out_dir)} is a file; name a directory for the NWB sessions")
    replay = replay_network(store, network_id)
    T = replay.n_checkpoints
    width = max(2, len(str(T - 1)))
    blocks, ids, stimuli, matched = measured_sessions(replay, cond)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(T):
        path = out_dir / f"session-{k:0{width}d}.nwb"
        atomic_save(path, lambda tmp, k=k: _session_file(nwb_module, replay, k, blocks[k], ids[k], stimuli[k],
                                                         condition, container, tmp))
        written.append(path)
    written.append(write_export_mapping(out_dir / MAPPING_NAME, replay, written, condition, matched))
    return written


def write_export_mapping(path: Path, replay, sessions: Sequence[Path], condition: str, matched: bool = True) -> Path:
    """The ``mapping.toml`` of an export (atomic), with the network's true rule in a comment."""
    import tomli_w

    spec = replay.spec
    doc = {
        "network": replay.network_id,
        "stimulus_column": "stimulus_id",
        "intervals": "trials",
        "sessions": [{"file": p.name, "fraction": float(f)}
                     for p, f in zip(sessions, replay.training_fraction, strict=True)],
        "layers": [{"name": n, "group": g, "source": "ophys", "module": "ophys", "series": n}
                   for n, g in zip(replay.layers, replay.groups, strict=True)],
    }
    if matched:
        doc = {**dict(list(doc.items())[:3]), "cell_id_column": EXPORT_CELL_ID, **dict(list(doc.items())[3:])}
    header = (f"# written by learnscope identify export: network {replay.network_id}, condition {condition}\n"
              f"# truth: rule {spec['rule']}, task {spec['task']}, architecture {spec['architecture']}, "
              f"lr {spec['lr']:.6g}, seed {spec['seed']}\n"
              "# predict its rule: learnscope identify predict MODEL THIS_DIRECTORY\n\n")
    return atomic_write(path, header + tomli_w.dumps(doc))
