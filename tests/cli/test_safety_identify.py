"""Issue 11, identify half: bad grids, corrupt stores, faults (full disk, read-only, kill -9, Ctrl-C, two
concurrent runs) and the fit / predict / classify commands on bad input.

Items covered: 3 (fit --out), 4 (a grid that cannot train; failed or diverged networks exit non-zero), 5
(--retry-failed, info counts), 6 (truncated / zero-length / missing store files), 7 (one-rule store), 9 (two
concurrent simulate runs), 10 (full disk, read-only, predict --out, a string in a numeric column, truncated
files), 11 (explicit hidden sizes, cnn without images, the unknown-architecture message), 12 (--subset auto with
0, 2, 4 of 5 checkpoints), 15 (header before rejection, unknown grid names, predict on a folder, Ctrl-C).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from learnscope.fileio import MARKER
from safety_helpers import (
    CLASSIFY_TINY,
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    assert_error,
    assert_ok,
    assert_result_failed,
    assert_same_tree,
    assert_stores_equal,
    classify_run,
    classify_stdout,
    copy_of,
    fixture_model,
    fixture_recordings,
    fixture_store,
    grid_config,
    invoke,
    leftovers,
    network_ids,
    read_only,
    resize_filesystem,
    small_filesystem,
    start_subprocess,
    store_frames,
    tree,
    truncate,
)

SIM = ["--backend", "sequential", "--no-progress"]


def _grid(tmp_path: Path, text: str | None = None, name: str = "grid.toml", **kwargs) -> Path:
    path = tmp_path / name
    path.write_text(grid_config(**kwargs) if text is None else text)
    return path


def _simulate(grid: Path, out: Path, *extra: str):
    return invoke(["identify", "simulate", grid, "--out", out, *SIM, *extra])


def _counts(stdout: str) -> dict[str, int]:
    """The counts line of `identify simulate`: ``total: 4, already_done: 0, ok: 4, …``."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("total:"))
    return {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", line)}


# ----------------------------------------------------------------------------------------------------------------
# bad grids: one line before any work — no store, no header (item 15)

BASE = grid_config()
BAD_GRIDS = {
    "steps fewer than checkpoints": (grid_config(checkpoints=21), "checkpoints"),
    "unknown grid key": (BASE.replace("tasks =", "task ="), "did you mean 'tasks'"),
    "unknown training key": (BASE.replace("epochs =", "epoch ="), "did you mean 'epochs'"),
    "unknown rule": (grid_config(rules=("sgdm", "adamm")), "did you mean 'adam'"),
    "unknown task": (grid_config(tasks=("digit",)), "did you mean 'digits'"),
    "zero batch size": (BASE.replace("batch_sizes = [128]", "batch_sizes = [0]"), "batch_sizes"),
    "one checkpoint": (grid_config(checkpoints=1), "checkpoints"),
    "unknown condition key": (BASE + '\n[[conditions]]\nname = "clean"\nsigmaa = 0.1\n', "did you mean 'sigma'"),
    "negative learning rate": (BASE + "\n[rules.sgdm]\nlr = -0.1\n", "lr"),
    "not TOML": (BASE.replace("[training]", "[training"), "toml"),
    "empty file": ("", ""),
    "cnn on a task without images": (grid_config(tasks=("teacher_classification",), architectures=("cnn",)),
                                     "image"),
    "cnn in a grid with a task without images": (
        grid_config(tasks=("digits", "teacher_classification"), architectures=("mlp_1x8", "cnn")), "image"),
}


@pytest.mark.parametrize("case", list(BAD_GRIDS))
def test_bad_grid_is_one_line_before_any_work(tmp_path, case):
    """Items 4, 11, 15: the whole grid is checked before any network is trained or the header printed."""
    text, fragment = BAD_GRIDS[case]
    grid = _grid(tmp_path, text)
    before = tree(tmp_path)
    result = _simulate(grid, tmp_path / "store")
    assert_error(result, EXIT_BAD_INPUT, fragment)
    assert result.stdout.strip() == "", "nothing is printed before the grid is rejected"
    assert_same_tree(before, tree(tmp_path), case)


def test_unknown_architecture_says_any_mlp_shape_works(tmp_path):
    """Item 11: the message describes the pattern, not five fixed names."""
    grid = _grid(tmp_path, architectures=("mlp3x64",))
    line = assert_error(_simulate(grid, tmp_path / "s"), EXIT_BAD_INPUT, "mlp3x64")
    assert re.search(r"mlp_[A-Z<{]", line), f"the message should say that any mlp_LxW works: {line}"
    assert not (tmp_path / "s").exists()


def test_unknown_grid_name_suggests_identify_grids_only(tmp_path):
    """Item 15: an unknown grid name lists the identify grids, not the bias configs."""
    line = assert_error(invoke(["identify", "simulate", "identify_tier9", "--out", tmp_path / "s", *SIM]),
                        EXIT_BAD_INPUT, "identify_tier0")
    assert "fig2" not in line, line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("extra, fragment", [(["--backend", "lokky"], "did you mean 'loky'"),
                                             (["--jobs", "0"], "--jobs")])
def test_bad_simulate_options_before_the_header(tmp_path, extra, fragment):
    grid = _grid(tmp_path)
    before = tree(tmp_path)
    result = invoke(["identify", "simulate", grid, "--out", tmp_path / "s", "--no-progress", *extra])
    assert_error(result, EXIT_BAD_INPUT, fragment)
    assert result.stdout.strip() == ""
    assert_same_tree(before, tree(tmp_path))


def test_grid_path_that_is_a_folder(tmp_path):
    (tmp_path / "grids").mkdir()
    line = assert_error(_simulate(tmp_path / "grids", tmp_path / "s"), EXIT_BAD_INPUT)
    assert "does not exist" not in line and ("folder" in line or "directory" in line), line


@pytest.mark.parametrize("what", ["another grid's store", "a bias run"])
def test_foreign_store_is_refused_untouched(tmp_path, what):
    """Item 15: a store of another grid, or a directory that is no store, is refused before the header."""
    if what == "a bias run":
        from safety_helpers import bias_run

        out = copy_of(bias_run(), tmp_path / "target")
    else:
        out = copy_of(fixture_store(), tmp_path / "target")
    grid = _grid(tmp_path, epochs=2)
    before = tree(tmp_path)
    result = _simulate(grid, out)
    assert_error(result, EXIT_BAD_INPUT)
    assert result.stdout.strip() == ""
    assert_same_tree(before, tree(tmp_path), what)


# ----------------------------------------------------------------------------------------------------------------
# grids that train


def test_explicit_hidden_sizes_are_an_architecture(tmp_path):
    """Item 11: `architectures = [[8, 4]]` trains an MLP with hidden layers of 8 and 4 units."""
    grid = _grid(tmp_path, architectures=([8, 4],), rules=("sgdm",), seeds=(0,))
    store = tmp_path / "s"
    assert_ok(_simulate(grid, store))
    nets, obs = store_frames(store)
    assert len(nets) == 1 and (nets.status == "ok").all()
    assert sorted(obs.layer_index.unique()) == [0, 1, 2], "two hidden layers and the readout"
    assert {"8", "4"} <= set(re.findall(r"\d+", str(nets.architecture.iloc[0]))), nets.architecture.iloc[0]


def test_diverged_networks_exit_3_with_counts_and_reason(tmp_path):
    """Item 4: sgdm at lr 1e6 diverges for both seeds: exit 3, a warning counting them with their reason; the
    two adam networks are kept; `info` counts 2 ok, 0 failed, 2 diverged."""
    grid = _grid(tmp_path, grid_config() + "\n[rules.sgdm]\nlr = 1e6\n")
    store = tmp_path / "s"
    warnings = assert_result_failed(_simulate(grid, store), "diverged")
    assert any(re.search(r"\b2\b", w) for w in warnings), warnings
    nets, _ = store_frames(store)
    assert sorted(nets.status) == ["diverged", "diverged", "ok", "ok"]
    info = invoke(["identify", "info", store])
    assert info.code in (0, 3) and "Traceback" not in info.output, str(info)
    assert "2 ok, 0 failed, 2 diverged" in info.stdout, str(info)


def _failing_first_network(monkeypatch) -> None:
    """Make the first network trained in this process fail with an unexpected error (as a bug would)."""
    import learnscope.identify.simulation as sim

    real, calls = sim.training_task, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, "training_task", flaky)


def test_a_failed_network_is_reported_counted_and_retried(tmp_path, monkeypatch):
    """Items 4, 5: one network fails: exit 3 with a warning naming the reason; `info` says 3 ok, 1 failed and
    never "finished" for it; a plain rerun leaves it; `--retry-failed` retrains it to the clean store."""
    grid = _grid(tmp_path)
    store = tmp_path / "s"
    with monkeypatch.context() as m:
        _failing_first_network(m)
        assert_result_failed(_simulate(grid, store), "failed", "injected failure")
    info = invoke(["identify", "info", store])
    assert "3 ok, 1 failed, 0 diverged" in info.stdout, str(info)
    assert "finished" not in info.stdout, str(info)
    assert_result_failed(_simulate(grid, store), "failed")  # still failed: not retried without the flag
    assert_ok(_simulate(grid, store, "--retry-failed"))
    assert_stores_equal(store, fixture_store())


# ----------------------------------------------------------------------------------------------------------------
# corrupt stores (item 6): every reader names the broken network and the remedy


def _damage(store: Path, how: str) -> str:
    """Damage the first network of ``store`` and return its id."""
    nid = network_ids(store)[0]
    obs, net = store / "observations" / f"{nid}.parquet", store / "networks" / f"{nid}.parquet"
    {"truncated observations": lambda: truncate(obs),
     "zero-length observations": lambda: obs.write_bytes(b""),
     "missing observations": obs.unlink,
     "truncated network file": lambda: truncate(net),
     "zero-length network file": lambda: net.write_bytes(b"")}[how]()
    return nid


DAMAGES = ["truncated observations", "zero-length observations", "missing observations", "truncated network file",
           "zero-length network file"]


def _names_network_and_remedy(line: str, nid: str) -> None:
    assert nid in line, f"the message names the broken network {nid}: {line}"
    assert "--repair" in line or "delete" in line, f"the message gives the remedy: {line}"


@pytest.mark.parametrize("how", DAMAGES)
def test_info_on_a_damaged_store(tmp_path, how):
    store = copy_of(fixture_store(), tmp_path / "s")
    nid = _damage(store, how)
    before = tree(tmp_path)
    result = invoke(["identify", "info", store])
    _names_network_and_remedy(assert_error(result, EXIT_BAD_INPUT), nid)
    assert "4 of 4" not in result.stdout
    assert_same_tree(before, tree(tmp_path), how)


@pytest.mark.parametrize("how", ["truncated observations", "missing observations"])
@pytest.mark.parametrize("command", ["fit", "classify"])
def test_fit_and_classify_on_a_damaged_store(tmp_path, command, how):
    """Item 6: fit and classify name the broken network (not "a needed column") and never drop its rows."""
    store = copy_of(fixture_store(), tmp_path / "s")
    nid = _damage(store, how)
    before = tree(tmp_path)
    if command == "fit":
        result = invoke(["identify", "fit", store, "--out", tmp_path / "m.joblib"])
    else:
        result = invoke(["identify", "classify", store, "--out", tmp_path / "cl", *CLASSIFY_TINY])
    _names_network_and_remedy(assert_error(result, EXIT_BAD_INPUT), nid)
    assert_same_tree(before, tree(tmp_path), f"{command}, {how}")


@pytest.mark.parametrize("how", ["truncated observations", "missing observations"])
def test_rerun_on_a_damaged_store_follows_its_remedy_to_the_clean_store(tmp_path, how):
    """Item 6: a rerun does not count the broken network as done: it refuses naming it (nothing touched), and
    the remedy it names (`--repair`) retrains exactly that network, giving the clean store."""
    store = copy_of(fixture_store(), tmp_path / "s")
    nid = _damage(store, how)
    grid = _grid(tmp_path)
    before = tree(tmp_path)
    result = _simulate(grid, store)
    _names_network_and_remedy(assert_error(result, EXIT_BAD_INPUT), nid)
    assert_same_tree(before, tree(tmp_path), "a refused rerun")
    repaired = _simulate(grid, store, "--repair")
    assert_ok(repaired)
    assert _counts(repaired.stdout)["ok"] == 1, "only the broken network is retrained"
    assert_stores_equal(store, fixture_store())


@pytest.mark.parametrize("content", [b"", b'{"schema_version": 1, "gri'])
def test_damaged_store_json(tmp_path, content):
    store = copy_of(fixture_store(), tmp_path / "s")
    (store / "store.json").write_bytes(content)
    before = tree(tmp_path)
    assert_error(invoke(["identify", "info", store]), EXIT_BAD_INPUT, "store.json")
    assert_same_tree(before, tree(tmp_path))


def test_info_on_a_folder_that_is_no_store(tmp_path):
    (tmp_path / "x").mkdir()
    assert_error(invoke(["identify", "info", tmp_path / "x"]), EXIT_BAD_INPUT, "not a learnscope store")


# ----------------------------------------------------------------------------------------------------------------
# faults during simulate


def test_full_disk_during_simulate_keeps_finished_networks_and_resumes(tmp_path):
    """Item 10: the store's disk fills after two networks (each about 48 KiB): exit 1, one line; the networks
    already written are whole; after freeing space the same command finishes to the clean store."""
    grid = _grid(tmp_path)
    with small_filesystem(tmp_path / "disk", 128) as disk:
        store = disk / "s"
        result = _simulate(grid, store)
        assert_error(result, EXIT_ENVIRONMENT, "space")
        done = network_ids(store)
        assert 1 <= len(done) < 4, done
        assert not [p for p in tree(disk) if p.endswith(".tmp")], "no temp file is left"
        info = invoke(["identify", "info", store])
        assert info.code == 0 and f"{len(done)} ok, 0 failed, 0 diverged" in info.stdout, str(info)
        resize_filesystem(disk, 20 * 1024)
        assert_ok(_simulate(grid, store))
        assert_stores_equal(store, fixture_store())


def test_read_only_store_is_one_line_before_the_header(tmp_path):
    """Items 10, 15: a half-finished store in a read-only place: exit 1 (environment), one line, untouched."""
    grid = _grid(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    store = copy_of(fixture_store(), ro / "s")
    for nid in network_ids(store)[:2]:
        (store / "networks" / f"{nid}.parquet").unlink()
        (store / "observations" / f"{nid}.parquet").unlink()
    with read_only(ro):
        before = tree(tmp_path)
        result = _simulate(grid, store)
        assert_error(result, EXIT_ENVIRONMENT)
        assert result.stdout.strip() == ""
        assert_same_tree(before, tree(tmp_path))


def test_ctrl_c_during_simulate_is_one_line_and_the_rerun_finishes(tmp_path, monkeypatch):
    """Item 15: Ctrl-C after the first network: exit 130, exactly one line; finished work is kept and the rerun
    gives the clean store."""
    from learnscope.identify.store import Store

    real, calls = Store.write_network, []

    def interrupted(self, *args, **kwargs):  # Ctrl-C while the second network is committed (either path)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    grid = _grid(tmp_path)
    store = tmp_path / "s"
    with monkeypatch.context() as m:
        m.setattr(Store, "write_network", interrupted)
        result = _simulate(grid, store)
    assert result.code == EXIT_INTERRUPTED and not result.escaped, str(result)
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, str(result)
    assert len(network_ids(store)) == 1 and not leftovers(tmp_path)
    assert_ok(_simulate(grid, store))
    assert_stores_equal(store, fixture_store())


@pytest.mark.slow  # tests/test_simulate.py has a fast kill -9 case; this one also checks the counts and leftovers
def test_kill_9_during_simulate_then_rerun_equals_a_clean_run(tmp_path):
    grid = _grid(tmp_path)
    store = tmp_path / "s"
    proc = start_subprocess(["identify", "simulate", grid, "--out", store, *SIM])
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not network_ids(store):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    done = len(network_ids(store))
    if done == 4:
        pytest.fail("the grid finished before the kill landed")
    result = _simulate(grid, store)
    assert_ok(result)
    assert _counts(result.stdout)["ok"] == 4 - done
    assert_stores_equal(store, fixture_store())
    assert not leftovers(tmp_path)


def test_two_concurrent_simulate_runs_train_each_network_once(tmp_path):
    """Item 9: two processes on one store split the grid (their trained counts add up to 4, none twice) and
    the store equals a clean run's."""
    grid = _grid(tmp_path)
    store = tmp_path / "s"
    procs = [start_subprocess(["identify", "simulate", grid, "--out", store, *SIM]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "Traceback" not in stdout + stderr, (p.returncode, stdout, stderr)
    trained = [_counts(stdout)["ok"] for stdout, _ in outs]
    assert sum(trained) == 4, f"each network trained exactly once: {trained}"
    assert_stores_equal(store, fixture_store())
    assert not leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# fit (items 3, 7)


def test_fit_refuses_a_store_with_one_rule(tmp_path):
    before = tree(tmp_path)
    line = assert_error(invoke(["identify", "fit", fixture_store(("sgdm",)), "--out", tmp_path / "m.joblib"]),
                        EXIT_BAD_INPUT)
    assert "two" in line or "2" in line, line
    assert_same_tree(before, tree(tmp_path))


def test_classify_refuses_a_store_with_one_rule(tmp_path):
    """Own case (as item 7 for fit): one rule is nothing to classify."""
    before = tree(tmp_path)
    assert_error(invoke(["identify", "classify", fixture_store(("sgdm",)), "--out", tmp_path / "cl",
                         *CLASSIFY_TINY]), EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path))


def test_fit_reports_per_class_support(tmp_path):
    """Item 7: the fit says how many networks (or layers) of each rule it learned from."""
    result = invoke(["identify", "fit", fixture_store(), "--out", tmp_path / "m.joblib"])
    assert_ok(result, warnings_allowed=True)
    assert re.search(r"adam\D{0,12}\d", result.stdout) and re.search(r"sgdm\D{0,12}\d", result.stdout), result.stdout


def test_fit_does_not_overwrite_a_model_without_force(tmp_path):
    """Item 3: an existing model is kept without --force; with --force it is replaced atomically."""
    model = tmp_path / "m.joblib"
    model.write_bytes(fixture_model().read_bytes())
    before = tree(tmp_path)
    assert_error(invoke(["identify", "fit", fixture_store(), "--out", model]), EXIT_BAD_INPUT, "--force")
    assert_same_tree(before, tree(tmp_path))
    assert_ok(invoke(["identify", "fit", fixture_store(), "--out", model, "--force", "--seed", "1"]),
              warnings_allowed=True)
    assert sorted(tree(tmp_path)) == ["m.joblib"], "replaced in place, no temp file"


@pytest.mark.parametrize("target", ["a user file", "a folder", "below a file"])
def test_fit_out_that_is_not_a_model_path(tmp_path, target):
    """Items 2, 3, 10: --out (even with --force) never replaces a user's file or a folder; afile/m.joblib is one
    line."""
    (tmp_path / "notes.joblib").write_text("my notes")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x.txt").write_text("x")
    out = {"a user file": "notes.joblib", "a folder": "folder", "below a file": "notes.joblib/m.joblib"}[target]
    before = tree(tmp_path)
    assert_error(invoke(["identify", "fit", fixture_store(), "--out", tmp_path / out, "--force"]), EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path), target)


@pytest.mark.parametrize("option, value, fragment", [("--classifier", "rff", "did you mean 'rf'"),
                                                     ("--obs-class", "wieght", "did you mean 'weight'"),
                                                     ("--condition", "noisy", "clean")])
def test_fit_bad_options(tmp_path, option, value, fragment):
    before = tree(tmp_path)
    assert_error(invoke(["identify", "fit", fixture_store(), "--out", tmp_path / "m.joblib", option, value]),
                 EXIT_BAD_INPUT, fragment)
    assert_same_tree(before, tree(tmp_path))


def test_fit_on_a_full_disk(tmp_path):
    """Items 3, 10: a full disk while the model is written: exit 1, one line, no truncated model, no temp."""
    with small_filesystem(tmp_path / "disk", 16) as disk:
        (disk / "notes.txt").write_text("mine")
        before = tree(tmp_path)
        assert_error(invoke(["identify", "fit", fixture_store(), "--out", disk / "m.joblib"]), EXIT_ENVIRONMENT,
                     "space")
        assert_same_tree(before, tree(tmp_path))


def test_fit_on_a_read_only_filesystem(tmp_path):
    """Item 10: `fit --out` on a read-only filesystem: exit 1, one line, nothing written."""
    with read_only(tmp_path / "ro") as ro:
        before = tree(tmp_path)
        assert_error(invoke(["identify", "fit", fixture_store(), "--out", ro / "m.joblib"]), EXIT_ENVIRONMENT)
        assert_same_tree(before, tree(tmp_path))


# ----------------------------------------------------------------------------------------------------------------
# predict (items 10, 12, 15)


def _recordings(tmp_path: Path, edit=None, name: str = "rec.csv") -> Path:
    df = pd.read_csv(fixture_recordings())
    if edit is not None:
        df = edit(df)
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def _a_statistic(df: pd.DataFrame) -> str:
    from learnscope.identify.observables import ADMISSIBLE_OBS

    return next(c for c in df.columns if c in ADMISSIBLE_OBS)


def test_predict_with_a_string_in_a_numeric_column(tmp_path):
    def edit(df):
        col = _a_statistic(df)
        df[col] = df[col].astype(object)
        df.loc[2, col] = "n/a"
        return df

    rec = _recordings(tmp_path, edit)
    col = _a_statistic(pd.read_csv(fixture_recordings()))
    before = tree(tmp_path)
    assert_error(invoke(["identify", "predict", fixture_model(), rec]), EXIT_BAD_INPUT, col)
    assert_same_tree(before, tree(tmp_path))


def test_predict_on_a_folder_says_it_is_a_folder(tmp_path):
    (tmp_path / "recs").mkdir()
    line = assert_error(invoke(["identify", "predict", fixture_model(), tmp_path / "recs"]), EXIT_BAD_INPUT)
    assert "does not exist" not in line and ("folder" in line or "directory" in line), line


@pytest.mark.parametrize("out", ["nodir/p.csv", "afile/p.csv", "adir"])
def test_predict_out_that_cannot_be_written(tmp_path, out):
    """Item 10: `predict --out nodir/p.csv` (and below a file, or a folder) is one line, nothing written."""
    rec = _recordings(tmp_path)
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "adir").mkdir()
    before = tree(tmp_path)
    assert_error(invoke(["identify", "predict", fixture_model(), rec, "--out", tmp_path / out]), EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path), out)


@pytest.mark.parametrize("damage", ["truncated", "zero-length", "not a model"])
def test_predict_with_a_broken_model_file(tmp_path, damage):
    model = tmp_path / "m.joblib"
    data = fixture_model().read_bytes()
    model.write_bytes({"truncated": data[: len(data) // 2], "zero-length": b"", "not a model": b"hello"}[damage])
    rec = _recordings(tmp_path)
    before = tree(tmp_path)
    assert_error(invoke(["identify", "predict", model, rec]), EXIT_BAD_INPUT, "m.joblib")
    assert_same_tree(before, tree(tmp_path))


def test_predict_with_an_empty_recordings_file(tmp_path):
    (tmp_path / "rec.csv").write_text("")
    assert_error(invoke(["identify", "predict", fixture_model(), tmp_path / "rec.csv"]), EXIT_BAD_INPUT, "rec.csv")


def test_predict_unknown_subset_mode(tmp_path):
    rec = _recordings(tmp_path)
    assert_error(invoke(["identify", "predict", fixture_model(), rec, "--subset", "auot"]), EXIT_BAD_INPUT, "auto")


def test_subset_auto_accepts_evenly_spaced_checkpoints_with_their_numbers(tmp_path):
    """Item 12: recordings at checkpoints 0, 2, 4 of the model's 0…4, keeping their numbers, are accepted by
    --subset auto (mapped to the model's checkpoints); the per-network probabilities sum to 1."""
    rec = _recordings(tmp_path, lambda df: df[df.checkpoint.isin([0, 2, 4])])
    out = tmp_path / "p.csv"
    result = invoke(["identify", "predict", fixture_model(), rec, "--subset", "auto", "--out", out])
    assert_ok(result)
    probs = pd.read_csv(out)
    rules = [c for c in probs.columns if c in ("adam", "sgdm")]
    assert rules == ["adam", "sgdm"] or sorted(rules) == ["adam", "sgdm"], probs.columns
    assert ((probs[rules].sum(axis=1) - 1).abs() < 1e-9).all()
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------------------------------------------
# classify


@pytest.mark.parametrize("extra, fragment", [(["--classifiers", "rff"], "did you mean 'rf'"),
                                             (["--grid", "reducd"], "did you mean 'reduced'"),
                                             (["--n-splits", "0"], "n_splits")])
def test_classify_bad_options_before_any_work(tmp_path, extra, fragment):
    before = tree(tmp_path)
    args = ["identify", "classify", fixture_store(), "--out", tmp_path / "cl", "--no-progress",
            "--classifiers", "rf", "--grid", "none", *extra]
    assert_error(invoke(args), EXIT_BAD_INPUT, fragment.replace("n_splits", "split"))
    assert_same_tree(before, tree(tmp_path))


def test_classify_on_a_folder_that_is_no_store(tmp_path):
    (tmp_path / "x").mkdir()
    before = tree(tmp_path)
    assert_error(invoke(["identify", "classify", tmp_path / "x", "--out", tmp_path / "cl", *CLASSIFY_TINY]),
                 EXIT_BAD_INPUT, "store")
    assert_same_tree(before, tree(tmp_path))


def test_ctrl_c_during_classify_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """Item 15: Ctrl-C while classify plans its fits: exit 130, one line, no partial run directory (classify has
    nothing to resume from)."""
    import learnscope.identify.classify as classify

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify, "plan_all", interrupted)  # the command's first step inside its staged output
    before = tree(tmp_path)
    result = invoke(["identify", "classify", fixture_store(), "--out", tmp_path / "cl", *CLASSIFY_TINY])
    assert result.code == EXIT_INTERRUPTED and not result.escaped, str(result)
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, str(result)
    assert_same_tree(before, tree(tmp_path))


def test_classify_run_carries_the_marker():
    """Item 2: a classify run directory is marked as learnscope's, so --force may later replace it."""
    assert (classify_run() / MARKER).is_file()


def test_classify_says_what_it_will_do_and_how_long_first():
    """Item 18: a long command prints its plan and a time estimate before the results."""
    lines = classify_stdout().splitlines()
    estimate = next((i for i, ln in enumerate(lines) if re.search(r"estimat", ln, re.IGNORECASE)), None)
    first_result = next((i for i, ln in enumerate(lines) if "accuracy" in ln), len(lines))
    assert estimate is not None and estimate < first_result, lines


def test_simulate_out_that_is_a_file(tmp_path):
    grid = _grid(tmp_path)
    (tmp_path / "afile").write_text("mine")
    before = tree(tmp_path)
    result = _simulate(grid, tmp_path / "afile")
    assert_error(result, EXIT_BAD_INPUT, "afile")
    assert result.stdout.strip() == ""
    assert_same_tree(before, tree(tmp_path))


@pytest.mark.slow
def test_classify_force_replaces_its_own_run(tmp_path):
    out = copy_of(classify_run(), tmp_path / "cl")
    assert_ok(invoke(["identify", "classify", fixture_store(), "--out", out, *CLASSIFY_TINY, "--force"]),
              warnings_allowed=True)
    assert (out / MARKER).is_file() and not leftovers(tmp_path)


def test_info_prints_each_rules_task_performance_and_a_note_for_a_rule_that_does_not_learn():
    """Issue 14 item 1: not a silent row. The table is the store's task_performance, one line per (objective,
    rule); a rule without a learning verdict gets a note: line (stdout), never a warning: line or another exit."""
    from learnscope.identify.store import Store
    from learnscope.identify.task_performance import not_learned, task_performance

    store = fixture_store()
    rows = task_performance(Store.open(store).networks())
    assert [(r["objective"], r["rule"]) for r in rows] == [("classification", "adam"), ("classification", "sgdm")]
    out = invoke(["identify", "info", store])
    assert_ok(out)
    lines = out.stdout.splitlines()
    start = lines.index("task performance (median over ok networks, first -> last checkpoint):")
    for line, r in zip(lines[start + 1:start + 3], rows, strict=True):
        assert line.split()[:3] == [r["objective"], r["rule"], r["measure"]], line
        assert f"{r['initial']:.3f} -> {r['final']:.3f}" in line and f"{r['n_ok']} ok" in line, line
        assert line.endswith("does not learn") == (r["learns"] is False), line
    notes = [ln.removeprefix("note: ") for ln in lines if ln.startswith("note: ")]
    assert notes == not_learned(rows)
