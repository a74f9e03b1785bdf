"""Issue 11, bias half: bad configs, faults (full disk, read-only, kill -9, Ctrl-C, truncated checkpoints) and
result checks (a diverged or collapsed search is not reported as an easiest function).

Items covered: 1, 8, 10 (full disk, read-only, truncated series checkpoint), 13 (one seed alone = that seed of a
batch), 15 (unknown config names), 16 (Fig 7 headline numbers in the command's own metrics), plus bad config
values and keys with "did you mean".
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from learnscope.fileio import staging_path
from safety_helpers import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    assert_error,
    assert_ok,
    assert_result_failed,
    assert_same_tree,
    assert_same_tree_but_named_checkpoints,
    bias_config,
    bias_run,
    cached,
    copy_of,
    fig7_run,
    invoke,
    leftovers,
    read_only,
    resize_filesystem,
    small_filesystem,
    start_subprocess,
    tree,
)


def _cfg(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# ----------------------------------------------------------------------------------------------------------------
# bad configs: one line with "did you mean", exit 2, nothing written

BASE = bias_config(steps=3)

BAD_CONFIGS = {
    "unknown table": (BASE.replace("[search]", "[serch]"), [], "did you mean 'search'"),
    "unknown kind": (BASE.replace('kind = "easiest"', 'kind = "easy"'), [], "did you mean 'easiest'"),
    "unknown optimiser": (BASE, ["--set", "search.optimiser=adamm"], "did you mean 'adam'"),
    "unknown distance": (BASE, ["--set", "search.distance=w3"], "did you mean 'w2'"),
    "unknown analysis key": (BASE.replace("n_eval = 400", "n_evals = 400"), [], "did you mean 'n_eval'"),
    "--set without =": (BASE, ["--set", "search.steps"], "search.steps"),
    "--set a string for a number": (BASE, ["--set", "search.steps=abc"], "search.steps"),
    "--set an unknown key": (BASE, ["--set", "search.stpes=3"], "did you mean 'steps'"),
    "empty seeds": (BASE.replace("seeds = [0]", "seeds = []"), [], "seeds"),
    "negative seed": (BASE.replace("seeds = [0]", "seeds = [-1]"), [], "seed"),
    "--seed -1": (BASE, ["--seed", "-1"], "seed"),
    "negative lambda": (BASE.replace('name = "ridge"', 'name = "ridge"\nlam = -1.0'), [], "lam"),
    "zero n_train": (BASE.replace("n_train = 6", "n_train = 0"), [], "n_train"),
    "contrast without learner_b": (BASE.replace('kind = "easiest"', 'kind = "contrast"'), [], "learner_b"),
    "empty file": ("", [], ""),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, case):
    text, extra, fragment = BAD_CONFIGS[case]
    cfg = _cfg(tmp_path, text)
    before = tree(tmp_path)
    result = invoke(["bias", "run", cfg, "--out", tmp_path / "run", "--no-progress", *extra])
    assert_error(result, EXIT_BAD_INPUT, fragment)
    assert_same_tree(before, tree(tmp_path), case)


def test_unknown_bundled_config_suggests_a_bias_config_only(tmp_path):
    """Item 15: the suggestion comes from the bias configs, not the identify grids."""
    before = tree(tmp_path)
    line = assert_error(invoke(["bias", "run", "fig2_kernel_sphre", "--out", tmp_path / "r"]), EXIT_BAD_INPUT,
                        "fig2_kernel_sphere")
    assert "identify_tier" not in line
    assert_same_tree(before, tree(tmp_path))


def test_config_that_is_a_folder_is_one_line(tmp_path):
    """Item 15 (as `predict` on a folder): a folder given as the config says so, not "does not exist"."""
    (tmp_path / "configs").mkdir()
    before = tree(tmp_path)
    line = assert_error(invoke(["bias", "run", tmp_path / "configs", "--out", tmp_path / "r"]), EXIT_BAD_INPUT)
    assert "does not exist" not in line and ("folder" in line or "directory" in line), line
    assert_same_tree(before, tree(tmp_path))


def test_easiest_with_an_unknown_domain(tmp_path):
    before = tree(tmp_path)
    assert_error(invoke(["bias", "easiest", "--domain", "sphre", "--out", tmp_path / "e"]), EXIT_BAD_INPUT,
                 "did you mean 'sphere'")
    assert_same_tree(before, tree(tmp_path))


# ----------------------------------------------------------------------------------------------------------------
# result checks (item 8): exit 3, a warning line, the verdict in metrics.json and at the top of the report


def _verdict_at_top(run: Path) -> None:
    page = (run / "report.html").read_text()
    box = page.find('class="warning"')
    first_image = page.find("<img")
    assert box != -1, "the report shows the failed checks in a warning box"
    assert first_image == -1 or box < first_image, "the warning comes before the figures"


def test_a_diverged_search_is_not_reported_as_a_result(tmp_path):
    """Item 8: `--set search.lr=1e6` on the Fig 2 config ends with labels of ±1 and a few-shot error far worse
    than predicting the mean (measured: 6.8× the mean predictor): exit 3, a warning, the verdict stored."""
    out = tmp_path / "run"
    result = invoke(["bias", "run", "fig2_kernel_sphere", "--seed", "0", "--out", out, "--no-progress",
                     "--set", "search.lr=1e6", "--set", "search.steps=5", "--set", "analysis.n_eval=400",
                     "--set", "analysis.gen_draws=5"])
    assert_result_failed(result)
    verdict = _metrics(out)["verdict"]
    assert verdict["status"] != "ok" and verdict["warnings"], verdict
    _verdict_at_top(out)
    assert not leftovers(tmp_path)


def test_a_collapsed_search_is_not_reported_as_a_result(tmp_path):
    """Item 8: without the distance term (alpha_d = 0) 30 steps drive every label to ~0 (measured label std
    0.006 against 0.577 for U[-1, 1]): exit 3, a warning, verdict "collapsed"."""
    cfg = _cfg(tmp_path, bias_config(extra="alpha_d = 0.0\n"))
    out = tmp_path / "run"
    result = invoke(["bias", "run", cfg, "--out", out, "--no-progress"])
    assert_result_failed(result)
    values = np.load(out / "arrays.npz")["f1_values"]
    assert values.std() < 0.1, "the case must really collapse for the test to mean anything"
    verdict = _metrics(out)["verdict"]
    assert verdict["status"] == "collapsed", verdict
    _verdict_at_top(out)


def test_a_healthy_search_passes_its_checks(tmp_path):
    """Item 8, the other side: a search whose labels end near U[-1, 1] (W2 0.07 vs 0.58 for zeros) with a
    few-shot error 2 % of the mean predictor's passes: exit 0, no warning, verdict "ok"."""
    cfg = _cfg(tmp_path, bias_config())
    out = tmp_path / "run"
    assert_ok(invoke(["bias", "run", cfg, "--out", out, "--no-progress"]))
    values = np.load(out / "arrays.npz")["f1_values"]
    q = -1 + 2 * (np.arange(values.shape[1]) + 0.5) / values.shape[1]
    w2 = math.sqrt(np.mean((np.sort(values[0]) - q) ** 2))
    assert w2 < 0.5 * math.sqrt(np.mean(q**2)), "the labels are near the target (the premise of this case)"
    assert _metrics(out)["verdict"]["status"] == "ok"


# ----------------------------------------------------------------------------------------------------------------
# item 13: a seed's result does not depend on the other seeds of the batch


def test_one_seed_alone_equals_that_seed_of_a_batch(tmp_path):
    cfg = _cfg(tmp_path, bias_config(seeds=(0, 1, 2), steps=5))
    assert_ok(invoke(["bias", "run", cfg, "--out", tmp_path / "batch", "--no-progress"]), warnings_allowed=True)
    assert_ok(invoke(["bias", "run", cfg, "--seed", "1", "--out", tmp_path / "alone", "--no-progress"]),
              warnings_allowed=True)
    batch = np.load(tmp_path / "batch" / "arrays.npz")["f1_values"][1]
    alone = np.load(tmp_path / "alone" / "arrays.npz")["f1_values"][0]
    np.testing.assert_allclose(alone, batch, rtol=1e-5, atol=1e-6)
    std_batch = _metrics(tmp_path / "batch")["functions"][0]["per_seed"][1]["label_std"]
    std_alone = _metrics(tmp_path / "alone")["functions"][0]["per_seed"][0]["label_std"]
    assert std_alone == pytest.approx(std_batch, rel=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# faults: full disk, read-only, truncated checkpoint, kill -9, Ctrl-C


def _tmpfs_size_kib(directory: Path, extra_kib: int) -> int:
    """What ``directory`` occupies on a tmpfs (whole 4 KiB pages per file), plus ``extra_kib``."""
    pages = sum(-(-p.stat().st_size // 4096) + 1 for p in directory.rglob("*"))
    return 4 * pages + extra_kib


def test_full_disk_during_a_run_is_one_line_and_leaves_nothing(tmp_path):
    """Item 10: the disk fills while the run is written (64 KiB: the figures do not fit): exit 1, one line
    saying so, the user's file on that disk intact, no staging directory or temp file left."""
    cfg = _cfg(tmp_path, bias_config(steps=3))
    with small_filesystem(tmp_path / "disk", 64) as disk:
        (disk / "notes.txt").write_text("mine\n")
        before = tree(tmp_path)
        result = invoke(["bias", "run", cfg, "--out", disk / "run", "--no-progress"])
        assert_error(result, EXIT_ENVIRONMENT, "space", notes=True)
        assert_same_tree_but_named_checkpoints(before, tree(tmp_path), result.stderr, "full disk")


def test_full_disk_while_replacing_a_run_keeps_the_old_run(tmp_path):
    """Item 3/10: --force onto an existing run on a disk with room for the old run only: the old run is kept
    whole (it is replaced only once the new one is complete)."""
    old = bias_run()
    cfg = _cfg(tmp_path, bias_config(steps=3))
    with small_filesystem(tmp_path / "disk", _tmpfs_size_kib(old, 48)) as disk:
        copy_of(old, disk / "run")
        before = tree(tmp_path)
        result = invoke(["bias", "run", cfg, "--out", disk / "run", "--no-progress", "--force"])
        assert_error(result, EXIT_ENVIRONMENT, notes=True)
        assert_same_tree_but_named_checkpoints(before, tree(tmp_path), result.stderr, "the old run")


def test_full_disk_in_a_series_keeps_its_checkpoints_and_resumes(tmp_path):
    """Item 10: a series whose report does not fit: exit 1, one error line plus a note naming the kept
    checkpoints; after freeing space the same command resumes them (no function trained again) and finishes."""
    cfg = _cfg(tmp_path, bias_config("series", steps=4, n_series=2))
    with small_filesystem(tmp_path / "disk", 96) as disk:
        out = disk / "run"
        result = invoke(["bias", "run", cfg, "--out", out, "--no-progress"])
        assert_error(result, EXIT_ENVIRONMENT, notes=True)
        stage = staging_path(out)
        kept = sorted(p.name for p in stage.glob("function_*.npz"))
        assert kept == ["function_1.npz", "function_2.npz"], kept
        assert stage.name in result.stderr, "the message names where the checkpoints are"
        assert not [p for p in tree(disk) if p.endswith(".tmp") or ".tmp." in p]
        resize_filesystem(disk, 20 * 1024)
        assert_ok(invoke(["bias", "run", cfg, "--out", out, "--no-progress"]), warnings_allowed=True)
        assert all(f["resumed"] for f in _metrics(out)["functions"])
        assert not leftovers(disk)


def test_read_only_output_location_is_one_line_before_any_work(tmp_path):
    """Item 10/15: --out inside a read-only directory: exit 1 (an environment failure), one line, at once."""
    cfg = _cfg(tmp_path, bias_config(steps=3))
    with read_only(tmp_path / "ro") as ro:
        before = tree(tmp_path)
        result = invoke(["bias", "run", cfg, "--out", ro / "run", "--no-progress"])
        assert_error(result, EXIT_ENVIRONMENT)
        assert result.stdout.strip() == "", "nothing runs before the output location is checked"
        assert_same_tree(before, tree(tmp_path))


SERIES = bias_config("series", steps=40, n_series=3)


def _clean_series() -> np.ndarray:
    """The arrays of an uninterrupted run of :data:`SERIES` (run once per test process)."""

    def build(target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        cfg = _cfg(target.parent, SERIES, "clean-series.toml")
        assert_ok(invoke(["bias", "run", cfg, "--out", target, "--no-progress"]), warnings_allowed=True)

    return np.load(cached("clean-series", build) / "arrays.npz")


def _assert_same_functions(a, b) -> None:
    for k in (1, 2, 3):
        np.testing.assert_allclose(a[f"f{k}_values"], b[f"f{k}_values"], rtol=1e-5, atol=1e-6)


def test_truncated_series_checkpoint_keeps_the_valid_ones(tmp_path):
    """Item 10: a truncated checkpoint of a series (as a crash in the middle of a copy leaves it) is one line
    naming it and the remedy (the valid checkpoints beside it kept), and the remedy gives the clean result — or
    it is recomputed silently to the clean result."""
    from learnscope.bias.config import load_config
    from learnscope.bias.experiment import run_experiment

    cfg = _cfg(tmp_path, SERIES)
    out = tmp_path / "run"
    stage = staging_path(out)
    stage.mkdir()
    run_experiment(load_config(str(cfg), [], None), progress=False, checkpoint_dir=stage)
    for leftover in stage.glob("*"):
        if not leftover.name.startswith("function_"):
            leftover.unlink()
    (stage / "function_2.npz").write_bytes((stage / "function_2.npz").read_bytes()[:300])
    valid = {n: tree(stage)[n] for n in ("function_1.npz", "function_3.npz")}
    result = invoke(["bias", "run", cfg, "--out", out, "--no-progress"])
    if result.code == EXIT_BAD_INPUT:
        assert_error(result, EXIT_BAD_INPUT, "function_2", notes=True)
        assert {n: tree(stage).get(n) for n in valid} == valid, "valid checkpoints are kept"
        assert "delete" in result.stderr, "the message gives the remedy"
        (stage / "function_2.npz").unlink()  # the remedy: delete it and rerun
        assert_ok(invoke(["bias", "run", cfg, "--out", out, "--no-progress"]), warnings_allowed=True)
        _assert_same_functions(np.load(out / "arrays.npz"), _clean_series())
        assert not leftovers(tmp_path)
    else:
        assert_ok(result, warnings_allowed=True)
        _assert_same_functions(np.load(out / "arrays.npz"), _clean_series())
        assert not leftovers(tmp_path)


def _wait_for(path: Path, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {path.name} appeared: {proc.communicate()}")
        time.sleep(0.01)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_series_resumes_to_the_clean_result(tmp_path, sig):
    """kill -9 or Ctrl-C once the first function of a series is checkpointed; rerunning the same command
    resumes and gives the functions of an uninterrupted run. Ctrl-C prints exactly one line, exit 130."""
    cfg = _cfg(tmp_path, SERIES)
    out = tmp_path / "run"
    proc = start_subprocess(["bias", "run", cfg, "--out", out, "--no-progress"])
    _wait_for(staging_path(out) / "function_1.npz", proc)
    os.killpg(proc.pid, sig)  # as a terminal does: the whole process group
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.fail("the run finished before the signal landed; make the series longer")
    if sig == signal.SIGINT:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, stderr)
        assert len(lines) == 1 and "Traceback" not in stdout + stderr, stderr
        assert staging_path(out).name in lines[0], "the line says where the checkpoints are kept"
    assert (staging_path(out) / "function_1.npz").is_file(), "the finished function is kept"
    result = invoke(["bias", "run", cfg, "--out", out, "--no-progress"])
    assert_ok(result, warnings_allowed=True)
    assert _metrics(out)["functions"][0]["resumed"]
    _assert_same_functions(np.load(out / "arrays.npz"), _clean_series())
    assert not leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# item 16: the Fig 7 headline numbers are in the command's own metrics


def test_fig7_metrics_hold_the_over_connected_headline_numbers():
    run = fig7_run()
    metrics = _metrics(run)
    fn = metrics["functions"][0]
    dep = fn["input_dependence"]
    assert dep["overconnected_input"] == 0, "the config over-connects x₀"
    weights = np.array([m["linear_weights"] for m in fn["per_seed"]], dtype=float)
    assert weights.shape[1] == 5, "one linear weight per input of S⁴"
    share = np.asarray(dep["share"], dtype=float)
    candidates = {  # the share of the weight norm on x₀, by any of its usual definitions
        "|w0| / ||w||_2": np.abs(weights[:, 0]) / np.linalg.norm(weights, axis=1),
        "w0² / ||w||²": weights[:, 0] ** 2 / (weights**2).sum(axis=1),
        "|w0| / ||w||_1": np.abs(weights[:, 0]) / np.abs(weights).sum(axis=1),
    }
    assert any(np.allclose(share, c, rtol=1e-6, atol=1e-9) for c in candidates.values()), (share, candidates)
    paired = dep["paired"]
    assert math.isfinite(float(paired["mean_difference"])) and int(paired["n"]) >= 1, paired
