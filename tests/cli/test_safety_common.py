"""Issue 11, both halves: ``--out`` and ``--force`` never destroy what the user had; ``--help`` is quick.

Items covered: 1 (``--out . --force`` and its kin in every command that writes a run directory), 2 (``--force``
only replaces a learnscope run; demo onto an existing directory), 10 (``--out afile/run``), 14 (``--help`` does
not import torch; its timings are measured by ``benchmarks/cli_help.py``, never asserted).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from learnscope.fileio import MARKER
from safety_helpers import (
    CLASSIFY_TINY,
    EXIT_BAD_INPUT,
    assert_error,
    assert_ok,
    assert_same_tree,
    bias_config,
    bias_run,
    copy_of,
    fixture_store,
    grid_config,
    invoke,
    leftovers,
    run_subprocess,
    scratch_dir,
    subprocess_env,
    tree,
)

EASIEST_TINY = ["--learner", "ridge", "--domain", "disc", "--steps", "3", "--set", "analysis.n_eval=300",
                "--set", "analysis.gen_draws=5"]
COMMANDS = ("bias run", "bias easiest", "identify classify", "identify simulate", "demo")
FORCE_COMMANDS = ("bias run", "bias easiest", "identify classify", "demo")  # the ones with --force


def _user_files(directory: Path) -> None:
    """Files a user might have: a note, a data folder, a hidden file."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "notes.txt").write_text("three weeks of notes\n")
    (directory / "data" / "recording.csv").write_text("t,v\n0,1.5\n")
    (directory / ".hidden").write_text("x")


def _inputs(tmp_path: Path) -> dict[str, Path]:
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    cfg = inputs / "tiny.toml"
    cfg.write_text(bias_config(steps=3))
    grid = inputs / "grid.toml"
    grid.write_text(grid_config())
    return {"cfg": cfg, "grid": grid}


def _args(command: str, out: str | Path, inputs: dict[str, Path], force: bool) -> list[str]:
    flag = ["--force"] if force else []
    args = {
        "bias run": ["bias", "run", inputs["cfg"], "--out", out, "--no-progress", *flag],
        "bias easiest": ["bias", "easiest", *EASIEST_TINY, "--out", out, *flag],
        "identify classify": ["identify", "classify", fixture_store(), "--out", out, *CLASSIFY_TINY, *flag],
        "identify simulate": ["identify", "simulate", inputs["grid"], "--out", out, "--backend", "sequential",
                              "--no-progress"],
        "demo": ["demo", "--out", out, "--no-progress"],  # no --force: demo replaces only an earlier demo
    }[command]
    return [str(a) for a in args]


def _run(command: str, args: list[str], cwd: Path | None = None, env: dict | None = None, monkeypatch=None):
    """demo runs as a subprocess with a timeout (an unfixed demo would run for minutes, then replace the
    directory); everything else in process."""
    if command == "demo":
        return run_subprocess(args, cwd=cwd, env=subprocess_env(**(env or {})), timeout=60)
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return invoke(args, env=env)


@pytest.mark.parametrize("where", [".", "home", "parent"])
@pytest.mark.parametrize("command", COMMANDS)
def test_out_refuses_cwd_home_and_parents_of_cwd(tmp_path, monkeypatch, command, where):
    """Item 1/2: `--out . --force` (and ~, ..) is refused with one line, exit 2, and every user file is kept."""
    inputs = _inputs(tmp_path)
    home = tmp_path / "home"
    _user_files(home)
    if where == ".":
        cwd, out = home, "."
    elif where == "home":
        cwd, out = tmp_path / "elsewhere", str(home)
        cwd.mkdir()
    else:
        cwd, out = home / "project", ".."
        _user_files(cwd)
    before = tree(tmp_path)
    # matplotlib keeps its font cache under $HOME unless told otherwise: that is not learnscope writing there
    env = {"HOME": str(home), "MPLCONFIGDIR": str(scratch_dir("matplotlib"))}
    result = _run(command, _args(command, out, inputs, force=True), cwd=cwd, env=env, monkeypatch=monkeypatch)
    assert_error(result, EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path), f"{command} --out {out}")
    if command == "identify simulate":
        assert result.stdout.strip() == "", "simulate rejects --out before printing its header (item 15)"


@pytest.mark.parametrize("command", FORCE_COMMANDS)
def test_force_refuses_a_directory_learnscope_did_not_write(tmp_path, monkeypatch, command):
    """Item 2: --force on a non-empty directory without the marker: exit 2, one line, nothing touched."""
    inputs = _inputs(tmp_path)
    mine = tmp_path / "mine"
    _user_files(mine)
    before = tree(tmp_path)
    result = _run(command, _args(command, mine, inputs, force=True), cwd=tmp_path, monkeypatch=monkeypatch)
    assert_error(result, EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path), command)


@pytest.mark.parametrize("command", FORCE_COMMANDS)
def test_existing_directory_is_refused_without_force(tmp_path, monkeypatch, command):
    """Items 2, 3: an existing non-empty --out without --force — including `demo`, which used to default to
    --force — is refused: exit 2, one line naming --force or another --out, nothing touched."""
    inputs = _inputs(tmp_path)
    mine = tmp_path / "mine"
    _user_files(mine)
    before = tree(tmp_path)
    result = _run(command, _args(command, mine, inputs, force=False), cwd=tmp_path, monkeypatch=monkeypatch)
    assert_error(result, EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path), command)


@pytest.mark.parametrize("command", COMMANDS)
def test_out_below_a_file_is_one_line(tmp_path, monkeypatch, command):
    """Item 10: `--out afile/run` where afile is a file: exit 2, one line, the file unchanged."""
    inputs = _inputs(tmp_path)
    (tmp_path / "afile").write_text("precious")
    before = tree(tmp_path)
    result = _run(command, _args(command, "afile/run", inputs, force=False), cwd=tmp_path, monkeypatch=monkeypatch)
    assert_error(result, EXIT_BAD_INPUT, "afile")
    assert_same_tree(before, tree(tmp_path), command)


@pytest.mark.parametrize("command", ("bias run", "identify classify", "demo"))
def test_force_onto_a_file_is_refused(tmp_path, monkeypatch, command):
    """Item 2: --force never replaces a file."""
    inputs = _inputs(tmp_path)
    (tmp_path / "results.txt").write_text("precious")
    before = tree(tmp_path)
    result = _run(command, _args(command, "results.txt", inputs, force=True), cwd=tmp_path, monkeypatch=monkeypatch)
    assert_error(result, EXIT_BAD_INPUT, "results.txt")
    assert_same_tree(before, tree(tmp_path), command)


def test_force_through_a_symlink_to_a_user_directory_is_refused(tmp_path):
    """Own case: --out is a symlink to a user directory; --force removes neither the link nor its target."""
    inputs = _inputs(tmp_path)
    mine = tmp_path / "mine"
    _user_files(mine)
    (tmp_path / "link").symlink_to(mine, target_is_directory=True)
    before = tree(tmp_path)
    assert_error(invoke(_args("bias run", tmp_path / "link", inputs, force=True)), EXIT_BAD_INPUT)
    assert_same_tree(before, tree(tmp_path))


def test_force_replaces_a_learnscope_run_whole(tmp_path):
    """Item 2: --force on a directory learnscope wrote replaces it (exit 0): the new config is recorded, no
    file of the old run survives, nothing partial is left beside it."""
    out = copy_of(bias_run(), tmp_path / "run")
    (out / "stale.png").write_bytes((out / "losses.png").read_bytes())  # a file only the old run had
    others = tree(tmp_path, skip=[out])
    cfg = tmp_path / "new.toml"
    cfg.write_text(bias_config(steps=5))
    result = invoke(["bias", "run", cfg, "--out", out, "--no-progress", "--force"])
    assert_ok(result, warnings_allowed=True)
    assert "steps = 5" in (out / "config.toml").read_text()
    assert not (out / "stale.png").exists(), "the old run is replaced as a whole, not merged"
    assert (out / MARKER).is_file()
    assert not leftovers(tmp_path), leftovers(tmp_path)
    others[cfg.name] = tree(tmp_path)[cfg.name]
    assert_same_tree(others, tree(tmp_path, skip=[out]), "files beside the run")


def test_force_on_an_empty_directory_is_fine(tmp_path):
    """Own case: an existing empty directory is a valid --out, with or without --force."""
    inputs = _inputs(tmp_path)
    (tmp_path / "empty").mkdir()
    assert_ok(invoke(_args("bias run", tmp_path / "empty", inputs, force=False)), warnings_allowed=True)
    assert (tmp_path / "empty" / "report.html").is_file() and not leftovers(tmp_path)


@pytest.mark.parametrize("extra, replaced", [(None, True), ("notes.txt", False)])
def test_force_and_a_run_from_before_the_marker(tmp_path, extra, replaced):
    """Own case: a run directory from before the marker (config.toml, metrics.json, report.html, figures) is
    recognised by its layout and replaced; the same layout plus a user's own file is not."""
    out = copy_of(bias_run(), tmp_path / "old")
    (out / MARKER).unlink()
    if extra:
        (out / extra).write_text("mine")
    inputs = _inputs(tmp_path)
    before = tree(tmp_path)
    result = invoke(_args("bias run", out, inputs, force=True))
    if replaced:
        assert_ok(result, warnings_allowed=True)
        assert (out / MARKER).is_file() and not leftovers(tmp_path)
    else:
        assert_error(result, EXIT_BAD_INPUT)
        assert_same_tree(before, tree(tmp_path))


PATH_CASES = {
    "bias run --out afile/run": ["bias", "run", "inputs/tiny.toml", "--out", "afile/run", "--no-progress"],
    "simulate --out afile/s": ["identify", "simulate", "inputs/grid.toml", "--out", "afile/s", "--backend",
                               "sequential", "--no-progress"],
    "fit --out afile/m.joblib": ["identify", "fit", "store", "--out", "afile/m.joblib"],
    "info on a missing store": ["identify", "info", "afile/store"],
    "classify --out afile/cl": ["identify", "classify", "store", "--out", "afile/cl", *CLASSIFY_TINY],
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_messages_show_paths_as_the_user_typed_them(tmp_path, monkeypatch, case):
    """Item 15: a relative path in a message stays relative (no absolute path where the user typed a relative
    one)."""
    _inputs(tmp_path)
    copy_of(fixture_store(), tmp_path / "store")
    (tmp_path / "afile").write_text("mine")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    line = assert_error(invoke(PATH_CASES[case]), EXIT_BAD_INPUT, "afile")
    assert str(tmp_path) not in line and str(tmp_path.resolve()) not in line, line
    assert_same_tree(before, tree(tmp_path), case)


def test_readme_names_the_statistics_fit_uses():
    """Item 15: fit/predict use the 24 admissible statistics: no README paragraph about them says "45 statistics"
    (simulate does record all 45)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    about_fit = [p for p in re.split(r"\n\s*\n", readme) if re.search(r"identify (fit|predict)", p)]
    assert about_fit, "the README describes identify fit / predict"
    assert not [p for p in about_fit if re.search(r"\b45 (statistics|observables)", p)], about_fit


# ----------------------------------------------------------------------------------------------------------------
# --help (item 14)

HELP = [[], ["bias"], ["bias", "run"], ["bias", "easiest"], ["bias", "configs"], ["identify"],
        ["identify", "simulate"], ["identify", "info"], ["identify", "fit"], ["identify", "predict"],
        ["identify", "classify"], ["identify", "configs"], ["demo"]]


@pytest.mark.parametrize("words", HELP, ids=lambda w: " ".join(w) or "learnscope")
def test_help_of_every_command(words):
    result = invoke([*words, "--help"])
    assert_ok(result)
    assert "Usage" in result.stdout and "--help" in result.stdout


def test_import_and_help_never_import_torch():
    """Item 14: `import learnscope.cli` and every --help run without importing torch (what made --help take
    2.5–3.5 s)."""
    probe = subprocess.run([sys.executable, "-c", "import sys, learnscope.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip() == "False", probe.stdout + probe.stderr
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from learnscope.cli import app\n"
        f"for words in {HELP!r}:\n"
        "    r = CliRunner().invoke(app, [*words, '--help'])\n"
        "    assert r.exit_code == 0, (words, r.output)\n"
        "    if 'torch' in sys.modules:\n"
        "        print(' '.join(words) or 'learnscope'); break\n"
        "else:\n"
        "    print('none')\n"
    )
    probe = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env(),
                           timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "none", f"`{probe.stdout.strip()} --help` imports torch"


@pytest.mark.slow
def test_demo_answers_both_questions(tmp_path):
    """Item 18: `learnscope demo` runs both halves (a kernel search and a small rule-identification grid,
    classified) and prints both report paths, each of which exists."""
    result = run_subprocess(["demo", "--out", "demo"], cwd=tmp_path, timeout=600)
    assert_ok(result, warnings_allowed=True)
    paths = {Path(p) for p in re.findall(r"(\S*report\.html)", result.stdout)}
    reports = {(tmp_path / p).resolve() for p in paths if (tmp_path / p).is_file()}
    assert len(reports) >= 2, f"two existing report paths printed: {result.stdout}"
    assert not leftovers(tmp_path)
