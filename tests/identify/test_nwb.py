"""NWB sessions in and out: a simulated network exported and read back predicts like the store; bad input is refused.

Every NWB file is generated here (nothing downloaded). The reader's numbers are checked against plain numpy
(window means, spike counts in half-open windows, the statistics' definitions) and, for the round trip, against the
statistics the store computed while simulating.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pynwb = pytest.importorskip("pynwb")
import h5py  # noqa: E402  (a dependency of pynwb)
from pynwb.ophys import (  # noqa: E402
    DfOverF,
    Fluorescence,
    ImageSegmentation,
    OpticalChannel,
    PlaneSegmentation,
    RoiResponseSeries,
)

from learnscope.errors import EnvironmentFailure, LearnscopeError, NonFiniteError, UnknownNameError  # noqa: E402
from learnscope.identify import nwb  # noqa: E402
from learnscope.identify.grid import parse_grid  # noqa: E402
from learnscope.identify.observables import OBS_CLASSES  # noqa: E402
from learnscope.identify.predict import fit_model, predict_recordings, recordings_from_store  # noqa: E402
from learnscope.identify.recording_stats import ACT_OBS, table_from_activities  # noqa: E402
from learnscope.identify.replay import replay_network  # noqa: E402
from learnscope.identify.simulation import simulate  # noqa: E402
from learnscope.identify.store import Store  # noqa: E402

GRID = {
    "grid": {"tasks": ["digits"], "architectures": ["mlp_2x16"], "rules": ["sgdm", "adam"], "batch_sizes": [64],
             "seeds": [0, 1, 2]},
    "training": {"epochs": 1, "checkpoints": 4, "n_train": 256, "n_probe": 16},
    "conditions": [{"name": "clean"}, {"name": "half", "frac": 0.5, "seed": 3},
                   {"name": "invivo", "activity_model": "poisson", "units": 6, "matched": False, "probes": 12,
                    "seed": 5}],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("nwb")
    simulate(parse_grid(GRID), root / "store", backend="sequential", progress=False)
    fit_model(root / "store", root / "act.joblib", obs_class="act", classifier="rf")
    nets = Store.open(root / "store").networks()
    assert (nets.status == "ok").all()
    return root, nets.sort_values("network_id").network_id.tolist()


def _store_act(root: Path, nid: str, condition: str = "clean") -> pd.DataFrame:
    return recordings_from_store(root / "store", [nid], condition=condition, obs_class=list(ACT_OBS))


# --------------------------------------------------------------------------------------------------------------
# replay and round trip


def test_replay_gives_the_activities_the_store_measured(sim):
    root, ids = sim
    for nid in ids[:2]:
        r = replay_network(root / "store", nid)
        assert r.n_checkpoints == 4 and [a.shape for a in r.activities] == [(4, 16, 16), (4, 16, 16), (4, 16, 10)]
        table = table_from_activities(nid, r.layers, r.groups, r.activities)
        ref = _store_act(root, nid)
        assert table[["layer", "group", "checkpoint"]].equals(ref[["layer", "group", "checkpoint"]])
        np.testing.assert_allclose(table[list(ACT_OBS)].to_numpy(), ref[list(ACT_OBS)].to_numpy(), rtol=1e-12,
                                   atol=1e-15)
        # a second replay is bit-identical (deterministic training)
        again = replay_network(root / "store", nid)
        assert all(np.array_equal(a, b) for a, b in zip(r.activities, again.activities, strict=True))


def test_replay_refuses_a_network_the_store_does_not_have(sim):
    root, _ = sim
    with pytest.raises(LearnscopeError, match="not in the grid"):
        replay_network(root / "store", "0123456789abcdef")


def test_round_trip_store_to_nwb_to_prediction_equals_prediction_from_the_store(sim, tmp_path):
    root, ids = sim
    nid = ids[1]
    files = nwb.export_network(root / "store", nid, tmp_path / "sessions")
    assert [f.name for f in files] == [f"session-0{k}.nwb" for k in range(4)] + ["mapping.toml"]
    assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == sorted(f.name for f in files)  # no temp left
    table, info = nwb.recordings_from_nwb(tmp_path / "sessions", n_checkpoints=4)
    ref = _store_act(root, nid)
    assert info["matched"] and info["checkpoints"] == [0, 1, 2, 3]
    np.testing.assert_allclose(table[list(ACT_OBS)].to_numpy(), ref[list(ACT_OBS)].to_numpy(), rtol=1e-12,
                               atol=1e-15)
    per_layer, per_network, pinfo = nwb.predict_nwb(root / "act.joblib", tmp_path / "sessions")
    want_layer, want_network, _ = predict_recordings(root / "act.joblib", ref)
    classes = ["adam", "sgdm"]
    np.testing.assert_allclose(per_layer[classes].to_numpy(), want_layer[classes].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(per_network[classes].to_numpy(), want_network[classes].to_numpy(), atol=1e-12)
    assert pinfo["nwb"]["sessions"] == [f.name for f in files[:-1]]


def test_export_of_a_unit_fraction_condition_reads_back_as_the_store_measured_it(sim, tmp_path):
    root, ids = sim
    nid = ids[0]
    nwb.export_network(root / "store", nid, tmp_path / "half", condition="half")
    table, info = nwb.recordings_from_nwb(tmp_path / "half", n_checkpoints=4)
    assert [v["cells"][0] for v in info["layers"].values()] == [8, 8, 5]  # ceil(0.5 U)
    ref = _store_act(root, nid, condition="half")
    np.testing.assert_allclose(table[list(ACT_OBS)].to_numpy(), ref[list(ACT_OBS)].to_numpy(), rtol=1e-12,
                               atol=1e-15)
    with pytest.raises(UnknownNameError, match="condition 'nosuch'"):
        nwb.export_network(root / "store", nid, tmp_path / "x", condition="nosuch")
    assert not (tmp_path / "x").exists()


def test_export_of_an_activity_only_condition_reads_back_as_the_store_measured_it(sim, tmp_path):
    """Poisson spike counts of 6 units drawn anew per session (unmatched) on 12 of the 16 probes."""
    root, ids = sim
    nid = ids[2]
    nwb.export_network(root / "store", nid, tmp_path / "invivo", condition="invivo")
    mapping = nwb.load_mapping(tmp_path / "invivo")
    assert not mapping.matched  # different units in every session: no global id
    table, info = nwb.recordings_from_nwb(mapping, n_checkpoints=4)
    assert info["layers"]["fc1"] == {"stimuli": 12, "cells": [6] * 4, "dropped_stimuli": 0, "dropped_cells": 0}
    # skew and kurtosis are NaN where a probe evokes no spike in any of the 6 units (zero variance), and the store's
    # dataset refuses NaN: compare the 8 admissible act statistics
    names = list(OBS_CLASSES["act"])
    ref = recordings_from_store(root / "store", [nid], condition="invivo", obs_class="act")
    np.testing.assert_allclose(table[names].to_numpy(), ref[names].to_numpy(), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------------------------
# hand-made sessions: the reader against plain numpy


T0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _new_file(label: str) -> pynwb.NWBFile:
    return pynwb.NWBFile(session_description=label, identifier=label, session_start_time=T0)


def _add_trials(f, start, stop, stim):
    f.add_trial_column(name="stimulus_id", description="probe")
    for a, b, s in zip(start, stop, stim, strict=True):
        f.add_trial(start_time=float(a), stop_time=float(b), stimulus_id=int(s))


def _write(f, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(f)
    return path


def _roi_file(path, times, data, start, stop, stim, cell_ids=None, *, container="DfOverF", series="plane0",
              trials=True):
    """A session with one RoiResponseSeries (time, ROIs) and, optionally, a global-id column on its ROI table."""
    f = _new_file(path.stem)
    if trials:
        _add_trials(f, start, stop, stim)
    device = f.create_device(name="scope")
    plane = f.create_imaging_plane(name="plane", optical_channel=OpticalChannel(name="c", description="c",
                                   emission_lambda=510.0), device=device, description="p", excitation_lambda=920.0,
                                   indicator="GCaMP6f", location="V1")
    seg = PlaneSegmentation(name="rois", description="r", imaging_plane=plane)
    if cell_ids is not None:
        seg.add_column(name="global_id", description="matched across sessions")
    for u in range(data.shape[1]):
        seg.add_roi(pixel_mask=[(u, 0, 1.0)], **({} if cell_ids is None else {"global_id": int(cell_ids[u])}))
    mod = f.create_processing_module(name="ophys", description="o")
    iseg = ImageSegmentation(name="ImageSegmentation")
    iseg.add_plane_segmentation(seg)
    mod.add(iseg)
    holder = (DfOverF if container == "DfOverF" else Fluorescence)(name=container)
    mod.add(holder)
    holder.add_roi_response_series(RoiResponseSeries(
        name=series, data=data, timestamps=times, unit="n.a.",
        rois=seg.create_roi_table_region(region=list(range(data.shape[1])), description="all")))
    return _write(f, path)


def _mapping(path: Path, files, layers, *, fractions=None, extra: str = "") -> Path:
    lines = [extra, 'network = "m1"']
    for i, name in enumerate(files):
        lines += ["[[sessions]]", f'file = "{name}"'] + ([f"fraction = {fractions[i]}"] if fractions else [])
    for lay in layers:
        lines.append("[[layers]]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in lay.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


OPHYS_LAYER = {"name": "V1", "group": "early", "source": "ophys", "series": "plane0"}


def _act(A: np.ndarray) -> dict[str, float]:
    """Plain-numpy reference of five act statistics of a (stimuli, cells) block (identify-spec §4.2)."""
    mean = A.mean(axis=1)
    var = ((A - mean[:, None]) ** 2).mean(axis=1)
    return {"actraw_mean": mean.mean(), "actraw_norm": np.sqrt((A ** 2).sum(axis=1)).mean(), "actraw_var": var.mean(),
            "actabs_mean": np.abs(A).mean(axis=1).mean(), "actsq_mean": (A ** 2).mean(axis=1).mean()}


def _roi_sessions(tmp_path, n_sessions=3, *, matched=True, gen=None):
    """Three sessions of 6 ROIs, 4 stimuli shown twice each (repeats in shuffled order), 10 Hz traces; session k's
    ROI u has global id perm_k[u] (different ROI order per session, one cell lost in the last session).
    Returns the files and the true per-session (stimulus, global id) responses."""
    gen = gen or np.random.default_rng(0)
    files, truth = [], []
    for k in range(n_sessions):
        n_cells = 6 if k < n_sessions - 1 else 5
        gids = gen.permutation(6)[:n_cells]
        stim = gen.permutation(np.repeat(np.arange(4), 2))
        start = np.arange(8) * 2.0 + 0.5
        stop = start + 1.0
        times = np.arange(0, 17, 0.1)
        data = gen.normal(size=(times.size, n_cells))
        files.append(_roi_file(tmp_path / f"s{k}.nwb", times, data, start, stop, stim, gids if matched else None))
        # reference: mean of samples with start <= t < stop, then mean over the two repeats
        resp = np.full((4, 6), np.nan)
        for s in range(4):
            win = [data[(times >= a) & (times < b)].mean(axis=0)
                   for a, b, q in zip(start, stop, stim, strict=True) if q == s]
            resp[s, gids] = np.mean(win, axis=0)
        truth.append(resp)
    return files, truth


def test_roi_windows_repeats_and_matched_cells_follow_their_definitions(tmp_path):
    files, truth = _roi_sessions(tmp_path)
    m = _mapping(tmp_path / "map.toml", [f.name for f in files], [OPHYS_LAYER], extra='cell_id_column = "global_id"')
    table, info = nwb.recordings_from_nwb(m)
    assert info["layers"]["V1"]["cells"] == [5, 5, 5] and info["layers"]["V1"]["dropped_cells"] == 2
    common = np.flatnonzero(np.isfinite(truth[-1][0]))  # the cells found in every session
    assert table.checkpoint.tolist() == [0, 1, 2] and (table.group == "early").all()
    for k in range(3):
        for name, want in _act(truth[k][:, common]).items():
            assert table[name].iloc[k] == pytest.approx(want, rel=1e-12), (k, name)


def test_unmatched_sessions_keep_all_their_cells(tmp_path):
    files, truth = _roi_sessions(tmp_path, matched=False)
    m = _mapping(tmp_path / "map.toml", [f.name for f in files], [OPHYS_LAYER])
    table, info = nwb.recordings_from_nwb(m)
    assert not info["matched"] and info["layers"]["V1"]["cells"] == [6, 6, 5]
    for k in range(3):
        block = truth[k][:, np.isfinite(truth[k][0])]
        assert table["actraw_norm"].iloc[k] == pytest.approx(_act(block)["actraw_norm"], rel=1e-12)


def test_fractions_place_sessions_on_model_checkpoints(tmp_path):
    files, _ = _roi_sessions(tmp_path)
    m = _mapping(tmp_path / "map.toml", [f.name for f in files], [OPHYS_LAYER], fractions=[0.0, 0.52, 1.0])
    table, _ = nwb.recordings_from_nwb(m, n_checkpoints=21)
    assert table.checkpoint.tolist() == [0, 10, 20]  # round(f (T - 1))
    with pytest.raises(LearnscopeError, match="needs the model's number of checkpoints"):
        nwb.recordings_from_nwb(m)
    with pytest.raises(LearnscopeError, match=r"s1.nwb and s2.nwb .* same model checkpoint 1 of 0..1"):
        nwb.recordings_from_nwb(m, n_checkpoints=2)  # round(0.52) = round(1.0) = 1


def _units_file(path, spikes, start, stop, stim, location):
    f = _new_file(path.stem)
    _add_trials(f, start, stop, stim)
    f.add_unit_column(name="location", description="area")
    f.add_unit_column(name="global_id", description="matched")
    for u, (t, loc) in enumerate(zip(spikes, location, strict=True)):
        f.add_unit(spike_times=t, location=loc, global_id=u)
    return _write(f, path)


def test_units_are_binned_into_half_open_presentation_windows(tmp_path):
    gen = np.random.default_rng(4)
    start = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    stop = start + np.array([0.5, 0.5, 0.25, 0.5, 0.5, 0.25])
    stim = np.array([0, 1, 2, 0, 1, 2])
    files = []
    for k in range(2):
        spikes = [np.sort(gen.uniform(0, 6, size=n)) for n in (30, 50, 10, 40)]
        spikes[0] = np.concatenate([spikes[0], [1.5, 2.0]])  # exactly on a stop and on a start: counted in [2, 2.25)
        files.append((_units_file(tmp_path / f"u{k}.nwb", spikes, start, stop, stim, ["V1", "V1", "LM", "V1"]),
                      spikes))
    layers = [{"name": "V1", "group": "early", "source": "units", "units_column": "location", "units_value": "V1"},
              {"name": "LM", "group": "middle", "source": "units", "units_column": "location", "units_value": "LM"}]
    m = _mapping(tmp_path / "map.toml", [f.name for f, _ in files], layers)
    table, info = nwb.recordings_from_nwb(m)
    assert info["layers"]["V1"]["cells"] == [3, 3] and info["layers"]["LM"]["cells"] == [1, 1]
    for k, (_, spikes) in enumerate(files):
        rate = np.array([[np.sum((t >= a) & (t < b)) / (b - a) for t in spikes] for a, b in zip(start, stop,
                                                                                                 strict=True)])
        by_stim = np.stack([rate[stim == s].mean(axis=0) for s in range(3)])
        for layer, cols in (("V1", [0, 1, 3]), ("LM", [2])):
            row = table[(table.layer == layer) & (table.checkpoint == k)].iloc[0]
            for name, want in _act(by_stim[:, cols]).items():
                assert row[name] == pytest.approx(want, rel=1e-12), (k, layer, name)


# --------------------------------------------------------------------------------------------------------------
# bad input: one line, a LearnscopeError (exit 2), nothing written


def _good_pair(tmp_path, **kw):
    gen = np.random.default_rng(1)
    start = np.arange(4) * 1.0
    stop = start + 0.5
    times = np.arange(0, 4, 0.05)
    files = [_roi_file(tmp_path / f"g{k}.nwb", times, gen.normal(size=(times.size, 3)), start, stop, np.arange(4),
                       np.arange(3) + (10 * k if kw.get("disjoint") else 0), **kw.get("roi", {}))
             for k in range(2)]
    return files


def _case_missing_series(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER | {"series": "plane9"}])


def _case_missing_module(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER | {"module": "imaging"}])


def _case_missing_units(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [{"name": "V1", "group": "early",
                                                                    "source": "units"}])


def _case_missing_session_file(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [files[0].name, "absent.nwb"], [OPHYS_LAYER])


def _case_no_trials(tmp_path):
    gen = np.random.default_rng(2)
    times = np.arange(0, 4, 0.05)
    f = _roi_file(tmp_path / "nt.nwb", times, gen.normal(size=(times.size, 3)), None, None, None, np.arange(3),
                  trials=False)
    good = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [good[0].name, f.name], [OPHYS_LAYER], extra='cell_id_column = "global_id"')


def _case_no_stimulus_column(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER], extra='stimulus_column = "odour"')


def _case_mismatched_cells(tmp_path):
    files = _good_pair(tmp_path, disjoint=True)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER], extra='cell_id_column = "global_id"')


def _case_no_cell_id_column(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER], extra='cell_id_column = "cell"')


def _case_nan_trace(tmp_path):
    gen = np.random.default_rng(3)
    start, times = np.arange(4) * 1.0, np.arange(0, 4, 0.05)
    data = gen.normal(size=(times.size, 3))
    data[25, 1] = np.nan  # t = 1.25, inside presentation 1
    f = _roi_file(tmp_path / "nan.nwb", times, data, start, start + 0.5, np.arange(4), np.arange(3))
    good = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [good[0].name, f.name], [OPHYS_LAYER])


def _case_text_file(tmp_path):
    good = _good_pair(tmp_path)
    (tmp_path / "notes.nwb").write_text("not an nwb file\n")
    return _mapping(tmp_path / "m.toml", [good[0].name, "notes.nwb"], [OPHYS_LAYER])


def _case_plain_hdf5(tmp_path):
    good = _good_pair(tmp_path)
    with h5py.File(tmp_path / "plain.nwb", "w") as fh:
        fh["x"] = np.arange(3)
    return _mapping(tmp_path / "m.toml", [good[0].name, "plain.nwb"], [OPHYS_LAYER])


def _case_unknown_mapping_key(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER], extra='stimulus_colum = "x"')


def _case_unknown_layer_key(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER | {"seris": "plane0"}])


def _case_bad_group(tmp_path):
    files = _good_pair(tmp_path)
    return _mapping(tmp_path / "m.toml", [f.name for f in files], [OPHYS_LAYER | {"group": "top"}])


@pytest.mark.parametrize("case, fragment", [
    (_case_missing_series, "g0.nwb has no RoiResponseSeries 'plane9' for layer V1 in ophys/DfOverF (DfOverF: plane0)"),
    (_case_missing_module, "no processing module 'imaging' for layer V1 (its modules: ophys)"),
    (_case_missing_units, "has no Units table for layer V1"),
    (_case_missing_session_file, "session file absent.nwb does not exist"),
    (_case_no_trials, "nt.nwb has no trials table with presentations"),
    (_case_no_stimulus_column, "has no column 'odour'"),
    (_case_mismatched_cells, "no cell id is found in every session"),
    (_case_no_cell_id_column, "has no column 'cell'"),
    (_case_nan_trace, "NaN/inf samples in 1 presentation window"),
    (_case_text_file, "notes.nwb is not an NWB file (not HDF5)"),
    (_case_plain_hdf5, "plain.nwb is an HDF5 file but not NWB"),
    (_case_unknown_mapping_key, "unknown key in mapping m.toml 'stimulus_colum'; did you mean 'stimulus_column'"),
    (_case_unknown_layer_key, "'seris'; did you mean 'series'"),
    (_case_bad_group, "unknown group of layer 'V1'"),
])
def test_bad_nwb_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, case, fragment):
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the working directory
    mapping = case(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(LearnscopeError) as err:
        nwb.recordings_from_nwb(mapping, n_checkpoints=4)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg, msg
    assert not isinstance(err.value, EnvironmentFailure)  # bad input: exit 2, not 1
    assert sorted(os.listdir(tmp_path)) == before


def test_nan_trace_is_a_non_finite_error(tmp_path):
    with pytest.raises(NonFiniteError):
        nwb.recordings_from_nwb(_case_nan_trace(tmp_path))


def test_missing_nwb_extra_is_one_line_environment_failure(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynwb", None)  # `import pynwb` now raises ImportError
    mapping = _mapping(tmp_path / "m.toml", ["a.nwb", "b.nwb"], [OPHYS_LAYER])
    want = r"^NWB input needs the nwb extra: pip install 'learnscope\[nwb\]'$"
    for call in (lambda: nwb.recordings_from_nwb(mapping),
                 lambda: nwb.export_network(tmp_path / "nostore", "x", tmp_path / "out")):
        with pytest.raises(EnvironmentFailure, match=want):
            call()
    assert not (tmp_path / "out").exists()


def test_the_bundled_mapping_template_is_valid_and_a_directory_means_its_mapping_toml(tmp_path):
    template = Path(__file__).resolve().parents[2] / "examples" / "nwb" / "mapping_template.toml"
    m = nwb.load_mapping(template)
    assert [lay.source for lay in m.layers] == ["ophys", "units"] and m.matched
    assert [s.fraction for s in m.sessions] == [0.0, 0.4, 1.0]
    assert m.sessions[0].path == template.parent / "sub-07_ses-01_ophys.nwb"
    (tmp_path / "mapping.toml").write_text(template.read_text())
    assert nwb.resolve_mapping(tmp_path) == tmp_path / "mapping.toml"
    assert nwb.is_nwb_input(tmp_path) and nwb.is_nwb_input("x.toml") and not nwb.is_nwb_input("rec.csv")
    with pytest.raises(LearnscopeError, match="directory without mapping.toml"):
        nwb.resolve_mapping(tmp_path / "..")


def test_the_core_modules_do_not_import_the_nwb_extra_at_import_time():
    """pynwb, hdmf and h5py may be imported only inside functions (the core must import without the extra)."""
    import ast

    import learnscope.identify.nwb as mod
    import learnscope.identify.recording_stats as stats
    import learnscope.identify.replay as replay

    for m in (mod, stats, replay):
        tree = ast.parse(Path(m.__file__).read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
        assert not [x for x in names if x.split(".")[0] in ("pynwb", "hdmf", "h5py")], (m.__name__, names)
