"""`identify export` and `identify predict` on NWB sessions through the CLI (issue 15): the sessions a command
writes are read back by the other to the store's own probabilities; bad input is one error line, exit 2."""

from __future__ import annotations

import pandas as pd
import pytest

from learnscope.identify.predict import predict, recordings_from_store
from safety_helpers import (
    EXIT_BAD_INPUT,
    assert_error,
    assert_ok,
    cached,
    fixture_store,
    invoke,
    network_ids,
    tree,
)

pytest.importorskip("pynwb")


def _act_model():
    def build(target):
        target.mkdir(parents=True)
        assert_ok(invoke(["identify", "fit", fixture_store(), "--out", target / "act.joblib", "--observables",
                          "act"]))

    return cached("act-model", build) / "act.joblib"


def test_export_then_predict_gives_the_stores_probabilities(tmp_path):
    store = fixture_store()
    network = network_ids(store)[0]
    out = tmp_path / "sessions"
    assert_ok(invoke(["identify", "export", store, network, "--out", out]))
    nwb = sorted(p.name for p in out.glob("*.nwb"))
    assert len(nwb) == 5 and (out / "mapping.toml").is_file()  # one session per checkpoint of the grid
    model = _act_model()
    r = invoke(["identify", "predict", model, out, "--out", tmp_path / "p.csv"])
    assert_ok(r)
    from_files = pd.read_csv(tmp_path / "p.csv")
    direct = predict(model, recordings_from_store(store, [network])).table
    rules = [c for c in direct.columns if c in ("sgdm", "adam")]
    assert rules
    pd.testing.assert_frame_equal(from_files[rules].reset_index(drop=True), direct[rules].reset_index(drop=True),
                                  check_dtype=False, rtol=1e-9, atol=1e-12)
    assert (tmp_path / "p.html").is_file()


def test_export_refuses_an_unknown_network_and_writes_nothing(tmp_path):
    before = tree(tmp_path)
    assert_error(invoke(["identify", "export", fixture_store(), "f" * 16, "--out", tmp_path / "s"]), EXIT_BAD_INPUT)
    assert tree(tmp_path) == before


def test_export_never_replaces_a_users_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    network = network_ids(fixture_store())[0]
    for force in ([], ["--force"]):
        assert_error(invoke(["identify", "export", fixture_store(), network, "--out", mine, *force]), EXIT_BAD_INPUT)
    assert (mine / "notes.txt").read_text() == "keep"


def test_predict_on_a_broken_mapping_is_one_error(tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "mapping.toml").write_text('network = "n"\nbogus = 1\n')
    before = tree(tmp_path)
    assert_error(invoke(["identify", "predict", _act_model(), folder]), EXIT_BAD_INPUT, "bogus")
    assert tree(tmp_path) == before
