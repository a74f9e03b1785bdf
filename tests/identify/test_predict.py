"""Naming the rule behind recordings written in the documented schema, and refusing malformed ones."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.identify.grid import parse_grid
from learnscope.identify.predict import fit_model, predict, predict_recordings, recordings_from_store
from learnscope.identify.simulation import simulate
from learnscope.identify.store import Store

runner = CliRunner()


def _grid(seeds):
    return parse_grid({
        "grid": {"tasks": ["digits"], "architectures": ["mlp_2x32"], "rules": ["sgdm", "adam"], "batch_sizes": [64],
                 "seeds": seeds},
        "training": {"epochs": 4, "checkpoints": 6, "n_train": 512, "n_probe": 32},
    })


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    simulate(_grid([0, 1, 2, 3, 4, 5]), root / "train", backend="sequential", progress=False)
    simulate(_grid([7]), root / "heldout", backend="sequential", progress=False)
    info = fit_model(root / "train", root / "model.joblib", classifier="rf")
    held = Store.open(root / "heldout").networks()
    recordings = recordings_from_store(root / "heldout", held.network_id.tolist())
    path = root / "rec.csv"
    recordings.to_csv(path, index=False)
    return root, info, held, recordings, path


def test_heldout_networks_are_named_by_their_true_rule(fitted):
    root, info, held, recordings, path = fitted
    assert info["classes"] == ["adam", "sgdm"] and info["n_checkpoints"] == 6
    per_layer, per_network, _ = predict_recordings(root / "model.joblib", path)
    truth = dict(zip(held.network_id, held.rule, strict=True))
    assert len(per_network) == 2 and (per_network.layers == 3).all()
    np.testing.assert_allclose(per_network[["adam", "sgdm"]].sum(axis=1), 1.0)
    for _, r in per_network.iterrows():
        assert r[truth[r.network]] > 0.5, (r.network, truth[r.network], r.to_dict())
    # per-network probability is the mean over that network's layers
    mean = per_layer.groupby("network")[["adam", "sgdm"]].mean().reset_index()
    np.testing.assert_allclose(mean[["adam", "sgdm"]].to_numpy(), per_network[["adam", "sgdm"]].to_numpy())


def test_subset_auto_refits_on_the_statistics_and_checkpoints_present(fitted):
    root, _, _, recordings, _ = fitted
    fewer = recordings[recordings.checkpoint.isin([0, 5])].drop(columns=["actabs_mean", "gradavgsq_id"]).copy()
    fewer["checkpoint"] = fewer.checkpoint // 5
    with pytest.raises(Exception, match="checkpoints"):
        predict_recordings(root / "model.joblib", fewer)
    _, per_network, info = predict_recordings(root / "model.joblib", fewer, subset="auto")
    assert info["refitted"] and info["training_checkpoints_used"] == [0, 5]
    assert info["statistics_missing"] == ["actabs_mean", "gradavgsq_id"]
    np.testing.assert_allclose(per_network[["adam", "sgdm"]].sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda d: d.rename(columns={"layer": "area"}), "lack the column(s) layer"),
        (lambda d: d.rename(columns={"actabs_mean": "actabs_avg"}), "unknown column(s) actabs_avg"),
        (lambda d: d.assign(actraw_norm=np.where(d.index == 3, np.nan, d.actraw_norm)), "NaN/inf in actraw_norm"),
        (lambda d: d[d.checkpoint < 5], "5 checkpoints per layer; the model was trained on 6"),
        (lambda d: d[~((d.checkpoint == 2) & (d.index < 10))], "each checkpoint 0..5 exactly once"),
        (lambda d: d.assign(group="top"), "group must be one of early, middle, deep"),
        (lambda d: d.drop(columns=["weightsq_median"]), "lack 1 statistic(s) the model uses: weightsq_median"),
        (lambda d: d.iloc[:0], "has no rows"),
    ],
)
def test_malformed_recordings_exit_2_with_one_line(fitted, tmp_path, corrupt, fragment):
    root, _, _, recordings, _ = fitted
    path = tmp_path / "bad.csv"
    corrupt(recordings).to_csv(path, index=False)
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(path)])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_empty_file_and_missing_model_exit_2(fitted, tmp_path):
    root, *_ = fitted
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(empty)])
    assert r.exit_code == 2 and "is empty" in r.stderr
    r = runner.invoke(app, ["identify", "predict", str(tmp_path / "none.joblib"), str(empty)])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_parquet_recordings_give_the_same_answer_as_csv(fitted, tmp_path):
    root, _, _, recordings, path = fitted
    pq = tmp_path / "rec.parquet"
    recordings.to_parquet(pq)
    a = predict_recordings(root / "model.joblib", path)[1]
    b = predict_recordings(root / "model.joblib", pq)[1]
    pd.testing.assert_frame_equal(a, b)


def test_the_shipped_example_follows_the_documented_schema():
    from pathlib import Path

    from learnscope.identify.observables import ADMISSIBLE_OBS
    from learnscope.identify.predict import read_recordings, recordings_to_arrays

    example = Path(__file__).resolve().parents[2] / "examples" / "recordings_example.csv"
    X, X_cat, keys, missing = recordings_to_arrays(read_recordings(example), list(ADMISSIBLE_OBS), 21)
    assert missing == [] and X.shape == (4, 21, 24)
    assert keys.group.tolist() == ["early", "middle", "deep", "deep"] and (X_cat.sum(axis=1) == 1).all()


# ---------------------------------------------------------------------------------------------------------------
# issue 11: fit/predict never lose a file, refuse what they cannot answer, and say so in one line

import errno  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402

import learnscope.identify.predict as predict_module  # noqa: E402
from learnscope.identify.predict import load_model, support_text, unbalanced_warning  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recordings_example.csv"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _one_error(r, code: int) -> str:
    """The single `error:` line of a failed command (asserting the exit code and that nothing else went wrong)."""
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _fit(store: Path, out: str, *extra: str):
    return runner.invoke(app, ["identify", "fit", str(store), "--out", out, *extra])


def _expected_support(store: Path) -> dict[str, dict[str, int]]:
    """Networks and (network, layer) rows per rule, read straight from the store's own tables."""
    s = Store.open(store)
    nets = s.networks()
    nets = nets[nets.status == "ok"]
    obs = s.observations(columns=["network_id", "layer_index", "rule", "condition"])
    layers = obs[obs.condition == "clean"].drop_duplicates(["network_id", "layer_index"]).groupby("rule").size()
    return {r: {"networks": int((nets.rule == r).sum()), "layers": int(layers[r])} for r in sorted(nets.rule.unique())}


def test_fit_reports_per_class_support_and_refuses_to_overwrite_without_force(fitted, tmp_path, monkeypatch):
    root, info, *_ = fitted
    expected = _expected_support(root / "train")
    assert expected == {"adam": {"networks": 6, "layers": 18}, "sgdm": {"networks": 6, "layers": 18}}
    assert info["support"] == expected and load_model(root / "model.joblib")["support"] == expected
    monkeypatch.chdir(tmp_path)
    r = _fit(root / "train", "model.joblib")
    assert r.exit_code == 0, r.output
    assert f"support: {support_text(expected)}" in r.stdout
    assert "support: adam 6 networks / 18 layers, sgdm 6 networks / 18 layers" in r.stdout
    assert "-> model.joblib" in r.stdout and str(tmp_path) not in r.stdout
    before = Path("model.joblib").read_bytes()
    line = _one_error(_fit(root / "train", "model.joblib", "--seed", "1"), 2)
    assert "--out model.joblib already exists; pass --force" in line and str(tmp_path) not in line
    assert Path("model.joblib").read_bytes() == before
    r = _fit(root / "train", "model.joblib", "--seed", "1", "--force")
    assert r.exit_code == 0, r.output
    assert load_model("model.joblib")["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib"]  # no temporary file left beside it


@pytest.mark.parametrize("kind", ["text", "text_named_joblib", "other_joblib", "directory"])
def test_force_replaces_only_a_model_file(fitted, tmp_path, monkeypatch, kind):
    root, *_ = fitted
    monkeypatch.chdir(tmp_path)
    if kind.startswith("text"):
        target = Path("notes.txt" if kind == "text" else "notes.joblib")
        target.write_text("my notes\n")
    elif kind == "other_joblib":
        target = Path("weights.joblib")
        joblib.dump({"weights": [1, 2, 3]}, target)
    else:
        target = Path("models")
        target.mkdir()
        (target / "keep.txt").write_text("keep")
    before = _listing(target) if target.is_dir() else target.read_bytes()
    line = _one_error(_fit(root / "train", str(target), "--force"), 2)
    assert f"--out {target}" in line and str(tmp_path) not in line
    assert (_listing(target) if target.is_dir() else target.read_bytes()) == before


def test_force_replaces_a_truncated_model(fitted, tmp_path, monkeypatch):
    root, *_ = fitted
    monkeypatch.chdir(tmp_path)
    data = (root / "model.joblib").read_bytes()
    Path("model.joblib").write_bytes(data[: len(data) // 2])
    r = _fit(root / "train", "model.joblib", "--force")
    assert r.exit_code == 0, r.output
    assert load_model("model.joblib")["classes"] == ["adam", "sgdm"]


def test_a_full_disk_while_saving_keeps_the_old_model(fitted, tmp_path, monkeypatch):
    root, *_ = fitted
    monkeypatch.chdir(tmp_path)
    Path("model.joblib").write_bytes((root / "model.joblib").read_bytes())
    before = _listing(tmp_path)

    def full_disk(obj, path, *args, **kwargs):  # writes part of the file, then the disk is full
        Path(path).write_bytes(b"\x80\x04partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(predict_module.joblib, "dump", full_disk)
    line = _one_error(_fit(root / "train", "model.joblib", "--force", "--seed", "2"), 1)
    assert os.strerror(errno.ENOSPC) in line and "(model.joblib)" in line and ".tmp" not in line
    assert _listing(tmp_path) == before  # old model byte-identical, no temporary file left


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_fit_into_a_read_only_directory_is_one_line_exit_1(fitted, tmp_path, monkeypatch, code):
    root, *_ = fitted
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "other.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    if IS_ROOT:  # chmod does not stop root: the writer fails as the filesystem would
        def refuse(obj, path, *args, **kwargs):
            raise OSError(code, os.strerror(code), str(path))

        monkeypatch.setattr(predict_module.joblib, "dump", refuse)
    ro.chmod(0o500)
    try:
        line = _one_error(_fit(root / "train", "ro/model.joblib"), 1)
    finally:
        ro.chmod(0o700)
    assert "ro" in line and str(tmp_path) not in line
    assert _listing(ro) == {"other.txt": b"x"}


def test_an_unwritable_out_is_refused_before_any_work(fitted, tmp_path, monkeypatch):
    root, *_ = fitted
    monkeypatch.chdir(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **k: not mode & os.W_OK and real_access(path, mode, **k))

    def must_not_load(*a, **k):
        raise AssertionError("the store was read before --out was checked")

    monkeypatch.setattr(predict_module.TrajectoryDataset, "from_store", must_not_load)
    line = _one_error(_fit(root / "train", "model.joblib"), 1)
    assert os.strerror(errno.EACCES) in line and "choose another --out" in line
    assert not Path("model.joblib").exists()


def test_fit_on_a_store_with_one_rule_is_refused(tmp_path):
    grid = parse_grid({
        "grid": {"tasks": ["digits"], "architectures": ["mlp_2x32"], "rules": ["adam"], "batch_sizes": [64],
                 "seeds": [0]},
        "training": {"epochs": 4, "checkpoints": 6, "n_train": 512, "n_probe": 32},
    })
    simulate(grid, tmp_path / "one", backend="sequential", progress=False)
    line = _one_error(_fit(tmp_path / "one", str(tmp_path / "m.joblib")), 2)
    assert "one rule only (adam, 1 network)" in line and "at least two" in line
    assert not (tmp_path / "m.joblib").exists()


def test_unbalanced_classes_are_flagged():
    # threshold UNBALANCED_RATIO = 3: 9 vs 3 layers warns, 8 vs 3 does not
    msg = unbalanced_warning({"adam": {"networks": 3, "layers": 9}, "sgdm": {"networks": 1, "layers": 3}})
    assert msg is not None and "adam 9 layers, sgdm 3" in msg
    assert unbalanced_warning({"adam": {"networks": 3, "layers": 8}, "sgdm": {"networks": 1, "layers": 3}}) is None


def test_predict_shows_the_support_and_warns_on_unbalanced_models(fitted, tmp_path):
    root, info, _, _, path = fitted
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(path)])
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert f"model: rf trained on {support_text(info['support'])}" in r.stdout
    model = load_model(root / "model.joblib")
    model["support"] = {"adam": {"networks": 6, "layers": 18}, "sgdm": {"networks": 1, "layers": 3}}
    joblib.dump(model, tmp_path / "skewed.joblib")
    r = runner.invoke(app, ["identify", "predict", str(tmp_path / "skewed.joblib"), str(path)])
    assert r.exit_code == 0, r.output
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "unbalanced" in warnings[0]


# --- item 12: fewer checkpoints that keep their original numbers ------------------------------------------------


@pytest.fixture(scope="module")
def fitted21(tmp_path_factory):
    """A 21-checkpoint model (the tier grids' count) and the shipped example keeping every other checkpoint."""
    root = tmp_path_factory.mktemp("predict21")
    grid = parse_grid({
        "grid": {"tasks": ["digits"], "architectures": ["mlp_2x32"], "rules": ["sgdm", "adam"], "batch_sizes": [64],
                 "seeds": [0]},
        "training": {"epochs": 3, "checkpoints": 21, "n_train": 512, "n_probe": 32},
    })
    simulate(grid, root / "train", backend="sequential", progress=False)
    fit_model(root / "train", root / "model.joblib", classifier="rf", seed=3)
    even = pd.read_csv(EXAMPLE)
    even = even[even.checkpoint % 2 == 0].reset_index(drop=True)  # 0, 2, …, 20: original numbers kept
    even.to_csv(root / "even.csv", index=False)
    return root, even


def _refit_by_hand(model: dict, cols: list[int], recordings: pd.DataFrame) -> np.ndarray:
    """Per-layer probabilities of the model's classifier refitted on training checkpoints ``cols`` (numpy only)."""
    from learnscope.identify.classifiers import make_classifier

    def features(X, X_cat):  # observable-major 2-D layout with the one-hot prepended (spec §4.6)
        return np.concatenate([X_cat, X.transpose(0, 2, 1).reshape(len(X), -1)], axis=1)

    train = model["train"]
    pipe, _ = make_classifier(model["classifier"], grid="none", random_state=model["seed"])
    pipe.fit(features(train["X"][:, cols], train["X_cat"]), train["y"])
    rec = recordings.sort_values(["network", "layer", "checkpoint"])
    layers = rec.groupby(["network", "layer"], sort=False).first().reset_index()
    X = rec[model["obs_names"]].to_numpy(float).reshape(len(layers), -1, len(model["obs_names"]))
    X_cat = np.stack([(layers.group == g).to_numpy(float) for g in ("early", "middle", "deep")], axis=1)
    return pipe.predict_proba(features(X, X_cat))


def test_subset_auto_maps_original_checkpoint_numbers_to_the_model(fitted21):
    root, even = fitted21
    model = load_model(root / "model.joblib")
    assert model["n_checkpoints"] == 21 and sorted(even.checkpoint.unique()) == list(range(0, 21, 2))
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(root / "even.csv"),
                            "--subset", "auto"])
    assert r.exit_code == 0, r.output
    assert "11 checkpoints (model checkpoints 0, 2, …, 20, matched by number)" in r.stderr
    per_layer, per_network, info = predict_recordings(root / "model.joblib", even, subset="auto")
    assert info["refitted"] and info["training_checkpoints_used"] == list(range(0, 21, 2))
    np.testing.assert_allclose(per_layer[["adam", "sgdm"]].to_numpy(),
                               _refit_by_hand(model, list(range(0, 21, 2)), even))
    # renumbered 0..10 (evenly spaced over learning) is the same data: the same answer
    renumbered = even.assign(checkpoint=even.checkpoint // 2)
    _, per_network_renumbered, info_r = predict_recordings(root / "model.joblib", renumbered, subset="auto")
    assert info_r["training_checkpoints_used"] == list(range(0, 21, 2))
    pd.testing.assert_frame_equal(per_network, per_network_renumbered)


def test_irregular_original_numbers_are_matched_by_number(fitted):
    root, _, _, recordings, _ = fitted
    model = load_model(root / "model.joblib")
    some = recordings[recordings.checkpoint.isin([0, 1, 3, 5])].reset_index(drop=True)
    per_layer, _, info = predict_recordings(root / "model.joblib", some, subset="auto")
    assert info["training_checkpoints_used"] == [0, 1, 3, 5] and info["checkpoints_matched"] == "by number"
    np.testing.assert_allclose(per_layer[["adam", "sgdm"]].to_numpy(), _refit_by_hand(model, [0, 1, 3, 5], some))


def test_strict_names_the_checkpoints_and_numbers_beyond_the_model_say_how_to_renumber(fitted21, tmp_path):
    root, even = fitted21
    line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(root / "even.csv")]),
                      2)
    assert "checkpoints 0, 2, …, 20 (11 of the model's 0..20); use --subset auto" in line
    spread = even.assign(checkpoint=even.checkpoint * 5 // 2)  # 0, 5, …, 50: beyond the model's 0..20
    spread.to_csv(tmp_path / "spread.csv", index=False)
    line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"),
                                          str(tmp_path / "spread.csv"), "--subset", "auto"]), 2)
    assert "0, 5, …, 50, beyond the model's 0..20: renumber them 0..10 in order" in line


# --- items 10 and 15: bad files and bad places, one line each ---------------------------------------------------


def _text_at(df: pd.DataFrame, column: str, pos: int, value) -> pd.DataFrame:
    df = df.astype({column: object}).copy()
    df.loc[pos, column] = value
    return df


@pytest.mark.parametrize(
    "column, value, fragment",
    [
        ("actraw_norm", "abc", "column actraw_norm must hold numbers, but row 4 "),
        ("weightabs_mean", "0,5", "(write decimals with a dot)"),
        ("checkpoint", "end", "column checkpoint must hold numbers, but row 4 "),
        ("checkpoint", 2.5, "checkpoint must be a whole number"),
        ("network", None, "column network is empty in row 4"),
    ],
)
def test_text_in_a_numeric_column_names_the_column_and_the_first_bad_row(fitted, tmp_path, column, value,
                                                                         fragment):
    root, _, _, recordings, _ = fitted
    bad = _text_at(recordings, column, 3, value)
    bad = _text_at(bad, column, 7, value)  # a later bad row is not the one named
    bad.to_csv(tmp_path / "bad.csv", index=False)
    line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"),
                                          str(tmp_path / "bad.csv")]), 2)
    row = recordings.iloc[3]
    assert fragment in line, line
    keys = ", ".join(f"{k} {row[k]}" for k in ("network", "layer", "checkpoint") if k != column)
    assert f"row 4 ({keys})" in line, line


def test_predict_on_a_folder_says_what_it_expects(fitted, tmp_path, monkeypatch):
    root, *_ = fitted
    monkeypatch.chdir(tmp_path)
    Path("recs").mkdir()
    line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), "recs"]), 2)
    assert "recs is a directory without mapping.toml" in line  # a folder is read as NWB sessions
    line = _one_error(runner.invoke(app, ["identify", "predict", "recs", str(root / "rec.csv")]), 2)
    assert "model recs is a directory" in line


@pytest.mark.parametrize("kind", ["truncated", "empty", "other_object", "swapped"])
def test_a_file_that_is_not_a_model_is_one_line(fitted, tmp_path, monkeypatch, kind):
    root, _, _, _, rec = fitted
    monkeypatch.chdir(tmp_path)
    data = (root / "model.joblib").read_bytes()
    name = "model.joblib"
    if kind == "truncated":
        Path(name).write_bytes(data[: len(data) // 3])
    elif kind == "empty":
        Path(name).write_bytes(b"")
    elif kind == "other_object":
        joblib.dump(load_model(root / "model.joblib")["pipeline"], name)  # a bare sklearn pipeline
    else:
        name = "rec.csv"
        Path(name).write_bytes(rec.read_bytes())
    line = _one_error(runner.invoke(app, ["identify", "predict", name, str(rec)]), 2)
    expected = {"truncated": "model.joblib is not a readable learnscope model (truncated",
                "empty": "model file model.joblib is empty",
                "other_object": "model.joblib is not a learnscope model file of format 1",
                "swapped": "it looks like recordings: the model comes first"}[kind]
    assert expected in line and str(tmp_path) not in line


@pytest.mark.parametrize("out, fragment", [
    ("nodir/p.csv", "--out nodir/p.csv: the directory nodir does not exist"),
    ("afile/p.csv", "afile is a file, not a directory"),
    ("outdir", "--out outdir is a directory"),
    ("rec.csv", "--out rec.csv is the recordings file"),
])
def test_predict_out_that_cannot_be_written_is_refused_before_any_work(fitted, tmp_path, monkeypatch, out, fragment):
    root, _, _, _, rec = fitted
    monkeypatch.chdir(tmp_path)
    Path("rec.csv").write_bytes(rec.read_bytes())
    Path("afile").write_text("a file")
    Path("outdir").mkdir()
    before = _listing(tmp_path)
    r = runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), "rec.csv", "--out", out])
    assert fragment in _one_error(r, 2) and r.stdout == ""
    assert _listing(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile", "outdir", "rec.csv"]


def test_predict_out_is_written_whole_or_not_at_all(fitted, tmp_path, monkeypatch):
    root, _, _, _, rec = fitted
    monkeypatch.chdir(tmp_path)
    args = ["identify", "predict", str(root / "model.joblib"), str(rec), "--out", "p.csv"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "probabilities: p.csv; report: p.html" in r.stdout, r.output
    expected = predict(root / "model.joblib", rec).table
    as_read = pd.read_csv(io.StringIO(expected.to_csv(index=False)))  # the same round trip through CSV
    pd.testing.assert_frame_equal(pd.read_csv("p.csv"), as_read, check_dtype=False)
    assert "<html" in Path("p.html").read_text()
    Path("p.html").unlink()
    Path("p.csv").write_text("my old table\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    line = _one_error(runner.invoke(app, args), 1)
    assert os.strerror(errno.ENOSPC) in line and "(p.csv)" in line
    assert _listing(tmp_path) == {"p.csv": b"my old table\n"}


def test_predict_out_into_a_read_only_directory_is_exit_1(fitted, tmp_path, monkeypatch):
    root, _, _, _, rec = fitted
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.chdir(tmp_path)
    if IS_ROOT:
        def refuse(self, data):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

        monkeypatch.setattr(Path, "write_bytes", refuse)
    ro.chmod(0o500)
    try:
        line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"), str(rec),
                                              "--out", "ro/p.csv"]), 1)
    finally:
        ro.chmod(0o700)
    assert "(ro" in line and str(tmp_path) not in line and list(ro.iterdir()) == []


# --- issue 15: activity-only models, calibrated answers per network, what cannot be told apart, the report -------

import html as _html  # noqa: E402

from learnscope.errors import UnknownNameError  # noqa: E402
from learnscope.identify.observables import OBS_CLASSES  # noqa: E402
from learnscope.report.predict_report import write_predict_report  # noqa: E402

KEYS = ["network", "layer", "group", "checkpoint"]


def _geometric_pool(p: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Normalised geometric mean of layer probability rows raised to β (numpy reference)."""
    g = np.prod(np.clip(p, 1e-6, 1.0), axis=0) ** (beta / len(p))
    return g / g.sum()


def test_predict_gives_calibrated_layer_and_network_rows_and_a_report(fitted, tmp_path):
    root, info, held, recordings, path = fitted
    model = load_model(root / "model.joblib")
    cal = model["calibration"]
    assert cal["available"] and info["calibration"]["method"] == cal["method"]
    assert cal["n_networks"] == 12 and cal["n_layers"] == 36  # every training network is scored once
    assert sum(cal["reliability_layer"]["count"]) == 36 and 0 <= cal["ece_layer"] <= 1
    res = predict(root / "model.joblib", path)
    t = res.table
    assert res.classes == ["adam", "sgdm"] and list(t.level.unique()) == ["layer", "network"]
    np.testing.assert_allclose(t[res.classes].sum(axis=1), 1.0)
    raw_layers, _, _ = predict_recordings(root / "model.joblib", path)
    layers = t[t.level == "layer"]
    np.testing.assert_allclose(layers[res.classes].to_numpy(),
                               model["calibrator"].transform(raw_layers[res.classes].to_numpy()))
    nets = res.networks
    assert sorted(nets.network) == sorted(held.network_id) and (nets.layers == 3).all()
    for _, r in nets.iterrows():
        mine = layers[layers.network == r.network][res.classes].to_numpy()
        beta = cal["network_exponent"]
        np.testing.assert_allclose(r[res.classes].to_numpy(dtype=float), _geometric_pool(mine, beta))
        assert r.predicted_rule == res.classes[int(np.argmax(_geometric_pool(mine, beta)))]
        # a network's row comes right after its layers
        pos = t.index[(t.network == r.network)].tolist()
        assert t.level[pos[-1]] == "network" and (t.level[pos[:-1]] == "layer").all()
    out = write_predict_report(res, tmp_path / "predict.html")
    page = out.read_text()
    assert out == tmp_path / "predict.html" and sorted(p.name for p in tmp_path.iterdir()) == ["predict.html"]
    assert "data:image/png;base64," in page and "weight and gradient statistics are usually not observable" in page
    assert f"{cal['ece_layer']:.3f}" in page and all(str(n) in page for n in held.network_id)
    assert all(_html.escape(s) in page for s in res.indistinguishable)
    assert any(line.startswith("calibration: ") for line in res.summary_lines())


def test_an_activity_only_model_predicts_from_activity_and_the_full_model_names_what_is_missing(fitted, tmp_path):
    root, _, _, recordings, _ = fitted
    info = fit_model(root / "train", tmp_path / "act.joblib", obs_class="act")
    assert info["obs_class"] == "act" and info["obs_names"] == list(OBS_CLASSES["act"])
    assert info["calibration"]["available"]
    assert all("with activity from one layer" in p["statement"] for p in info["calibration"]["indistinguishable"])
    activity = recordings[KEYS + list(OBS_CLASSES["act"])]
    activity.to_csv(tmp_path / "act.csv", index=False)
    res = predict(tmp_path / "act.joblib", tmp_path / "act.csv")
    np.testing.assert_allclose(res.table[res.classes].sum(axis=1), 1.0)
    assert res.model["obs_names"] == list(OBS_CLASSES["act"]) and res.model["observables_in_words"] == "activity"
    line = _one_error(runner.invoke(app, ["identify", "predict", str(root / "model.joblib"),
                                          str(tmp_path / "act.csv")]), 2)
    assert "recordings lack 16 statistic(s) the model uses: weightabs_mean" in line and "gradavgsq_id" in line
    assert "'all'" in line
    with pytest.raises(UnknownNameError, match="unknown observable class 'actt'; did you mean 'act'"):
        fit_model(root / "train", tmp_path / "bad.joblib", obs_class="actt,grad")
    assert not (tmp_path / "bad.joblib").exists()


def test_subset_auto_recalibrates_on_exactly_the_statistics_recorded(fitted):
    root, _, _, recordings, _ = fitted
    no_grad = recordings.drop(columns=list(OBS_CLASSES["grad"]))
    res = predict(root / "model.joblib", no_grad, subset="auto")
    assert res.info["refitted"] and res.calibration["available"]
    assert res.calibration["observables_in_words"] == "weights and activity"
    assert len(res.model["obs_names"]) == 21 and res.calibration["n_layers"] == 36
    np.testing.assert_allclose(res.table[res.classes].sum(axis=1), 1.0)


def test_a_model_without_calibration_says_so_and_keeps_its_own_probabilities(fitted, tmp_path):
    root, _, _, _, path = fitted
    model = load_model(root / "model.joblib")
    for key in ("calibrator", "calibration"):
        model.pop(key)
    model["train"].pop("networks")
    joblib.dump(model, tmp_path / "old.joblib")
    res = predict(tmp_path / "old.joblib", path)
    raw, _, _ = predict_recordings(tmp_path / "old.joblib", path)
    layers = res.table[res.table.level == "layer"]
    np.testing.assert_allclose(layers[res.classes].to_numpy(), raw[res.classes].to_numpy())
    assert not res.calibration["available"] and res.summary_lines()[0].startswith("calibration: none — ")
    page = write_predict_report(res, tmp_path / "old.html").read_text()
    assert "not calibrated" in page
