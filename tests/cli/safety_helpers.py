"""Shared machinery of the bad-input and fault suite (tests/cli/test_safety_*.py, tests/cli/test_reports_browser.py).

Every case of the suite checks the same four promises of issue 11, through :func:`assert_error`,
:func:`assert_result_failed`, :func:`assert_ok` and :func:`tree`:

* the exit status: 2 bad input, 1 environment failure (full disk, permissions, read-only filesystem), 3 the
  command ran but its result failed its checks, 130 interrupted, 0 success;
* exactly one ``error:`` line on stderr (or the ``warning:`` lines of a result that failed its checks);
* no ``Traceback`` anywhere (and, in process, no exception escaping the command);
* nothing the user had is deleted or changed and no partial output is left: a snapshot of the whole test
  directory (every path with the SHA-256 of every file) is equal before and after, apart from what the case
  expects to appear.

Commands run in process through :class:`typer.testing.CliRunner` (fast) or as real subprocesses of the console
script (:func:`run_subprocess`; truer for kill -9, Ctrl-C and concurrency).

Small runs are built once per test process and cached (:func:`fixture_store`, :func:`bias_run`, …): every test
copies what it mutates.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

EXIT_OK, EXIT_ENVIRONMENT, EXIT_BAD_INPUT, EXIT_RESULT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# ----------------------------------------------------------------------------------------------------------------
# tiny configs (each runs in about a second in process)

TINY_BIAS = """
[run]
kind = "{kind}"
seeds = {seeds}
title = "tiny"

[domain]
name = "disc"

[learner]
name = "ridge"
{learner_b}
[meta]
hidden = 16

[search]
steps = {steps}
lr = {lr}
n_train = 6
n_test = 12
learners_per_step = 2
{extra}
[analysis]
n_eval = 400
gen_draws = 10
{series}"""

#: 30 Adam steps at lr 0.05 end with labels near U[-1, 1] (W2 0.07 against 0.58 for all-zero labels; label std 0.52)
#: and a few-shot error 0.02 of that of predicting the mean (measured): a search that passes every result check.
HEALTHY = {"steps": 30, "lr": 0.05}


def bias_config(kind: str = "easiest", *, seeds: Sequence[int] = (0,), steps: int = HEALTHY["steps"],
                lr: float = HEALTHY["lr"], n_series: int = 3, extra: str = "") -> str:
    """The text of a tiny bias config (ridge learner on the disc) of ``kind`` (easiest, series or contrast)."""
    learner_b = '\n[learner_b]\nname = "kernel_ridge"\n' if kind == "contrast" else ""
    series = "".join("\n[[series]]\n" for _ in range(n_series)) if kind == "series" else ""
    return TINY_BIAS.format(kind=kind, seeds=list(seeds), steps=steps, lr=lr, learner_b=learner_b, series=series,
                            extra=extra)


#: 4 networks (2 rules × 2 seeds) of a 1×8 MLP on digits: 4 steps, 5 checkpoints, one clean condition.
TINY_GRID = """
[grid]
tasks = {tasks}
architectures = {architectures}
rules = {rules}
batch_sizes = [128]
seeds = {seeds}

[training]
epochs = {epochs}
checkpoints = {checkpoints}
n_train = 512
n_probe = 16
"""


def grid_config(*, tasks: Sequence = ("digits",), architectures: Sequence = ("mlp_1x8",),
                rules: Sequence = ("sgdm", "adam"), seeds: Sequence[int] = (0, 1), epochs: int = 1,
                checkpoints: int = 5, extra: str = "") -> str:
    def toml_list(values: Sequence) -> str:
        return "[" + ", ".join(toml_list(v) if isinstance(v, (list, tuple)) else
                               (f'"{v}"' if isinstance(v, str) else str(v)) for v in values) + "]"

    return TINY_GRID.format(tasks=toml_list(tasks), architectures=toml_list(architectures), rules=toml_list(rules),
                            seeds=toml_list(seeds), epochs=epochs, checkpoints=checkpoints) + extra


# ----------------------------------------------------------------------------------------------------------------
# running the CLI


@dataclass
class Outcome:
    """What a command did: exit status, the two streams, and (in process) the exception that escaped it."""

    code: int
    stdout: str
    stderr: str
    escaped: str = ""  # formatted traceback of an exception that escaped the command (CliRunner only)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest on a failed assertion
        return (f"exit {self.code}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
                + (f"\n--- escaped ---\n{self.escaped[-3000:]}" if self.escaped else ""))


def invoke(args: Sequence[str | os.PathLike], *, env: dict | None = None, input: str | None = None) -> Outcome:
    """Run ``learnscope ARGS`` in this process (typer's CliRunner, stderr kept apart)."""
    from typer.testing import CliRunner

    from learnscope.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)
    escaped = ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        escaped = "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, result.stdout, result.stderr, escaped)


def console_script() -> list[str]:
    """The installed ``learnscope`` command (beside this interpreter), else ``python -c 'app()'``."""
    script = Path(sys.executable).with_name("learnscope")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from learnscope.cli import app; app()"]


def subprocess_env(**extra: str) -> dict:
    return os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
                         "PYTHONUNBUFFERED": "1"} | extra


def run_subprocess(args: Sequence[str | os.PathLike], *, cwd: Path | None = None, env: dict | None = None,
                   timeout: float = 300) -> Outcome:
    """Run ``learnscope ARGS`` as a real process; a run past ``timeout`` is killed and fails the test."""
    try:
        proc = subprocess.run([*console_script(), *map(str, args)], cwd=cwd, env=env or subprocess_env(),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"`learnscope {' '.join(map(str, args))}` still ran after {timeout:.0f} s "
                    f"(it should have refused at once); stderr: {err.stderr!r}")
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def start_subprocess(args: Sequence[str | os.PathLike], *, cwd: Path | None = None, env: dict | None = None,
                     **kwargs) -> subprocess.Popen:
    """Start ``learnscope ARGS`` in its own process group (so a kill reaches its workers too)."""
    return subprocess.Popen([*console_script(), *map(str, args)], cwd=cwd, env=env or subprocess_env(),
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# the promises


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_no_traceback(out: Outcome) -> None:
    assert not out.escaped, f"an exception escaped the command:\n{out}"
    assert "Traceback" not in out.output, f"a traceback was printed:\n{out}"


def assert_error(out: Outcome, code: int, *fragments: str, notes: bool = False) -> str:
    """Exit ``code``, exactly one ``error:`` line and nothing else on stderr (``note:`` lines too if ``notes``),
    no traceback, no claim of success on stdout; each of ``fragments`` (case-insensitive) in the error line.
    Returns the error line."""
    assert_no_traceback(out)
    assert out.code == code, f"expected exit {code}:\n{out}"
    lines = _lines(out.stderr)
    if notes:
        lines = [ln for ln in lines if not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected exactly one error: line:\n{out}"
    assert "report:" not in out.stdout, f"an error must not print a report path:\n{out}"
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not in the error line:\n{out}"
    return lines[0]


def assert_result_failed(out: Outcome, *fragments: str) -> list[str]:
    """Exit 3 with at least one ``warning:`` line, no ``error:`` line, no traceback; ``fragments`` found in the
    warnings (case-insensitive). Returns the warning lines."""
    assert_no_traceback(out)
    assert out.code == EXIT_RESULT_FAILED, f"expected exit 3 (the result failed its checks):\n{out}"
    lines = _lines(out.stderr)
    warnings = [ln for ln in lines if ln.startswith("warning: ")]
    assert warnings, f"expected warning: lines:\n{out}"
    assert not [ln for ln in lines if ln.startswith("error:")], f"no error: line for a finished run:\n{out}"
    text = "\n".join(warnings).lower()
    for fragment in fragments:
        assert fragment.lower() in text, f"{fragment!r} not in the warnings:\n{out}"
    return warnings


def assert_ok(out: Outcome, *, warnings_allowed: bool = False) -> None:
    """Exit 0 (or 3 with warnings if ``warnings_allowed``: the run was written but its result was judged), no
    ``error:`` line, no traceback."""
    assert_no_traceback(out)
    allowed = {EXIT_OK, EXIT_RESULT_FAILED} if warnings_allowed else {EXIT_OK}
    assert out.code in allowed, f"expected success:\n{out}"
    assert not [ln for ln in _lines(out.stderr) if ln.startswith("error:")], str(out)
    if not warnings_allowed:
        assert not [ln for ln in _lines(out.stderr) if ln.startswith("warning:")], str(out)


# ----------------------------------------------------------------------------------------------------------------
# snapshots of a directory tree


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree(root: Path, *, skip: Sequence[Path] = ()) -> dict[str, str]:
    """Every path under ``root`` (hidden ones included) → ``"dir"``, ``"link:<target>"`` or the file's SHA-256.
    Paths under any of ``skip`` are left out (what a case expects to change)."""
    root = Path(root)
    skipped = [Path(s).absolute() for s in skip]
    snap: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = here / name
            if any(p.absolute() == s or s in p.absolute().parents for s in skipped):
                continue
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = f"link:{os.readlink(p)}"
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = _digest(p)
    return snap


def assert_same_tree(before: dict[str, str], after: dict[str, str], what: str = "") -> None:
    """Nothing deleted, changed or added (added: partial output, temp files, stray directories)."""
    lost = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    added = sorted(set(after) - set(before))
    assert not (lost or changed or added), f"{what}: lost {lost}, changed {changed}, added {added}"


def assert_same_tree_but_named_checkpoints(before: dict[str, str], after: dict[str, str], message: str,
                                           what: str = "") -> None:
    """As :func:`assert_same_tree`, except that a staging directory ``.NAME.partial`` holding checkpoints
    (``function_*.npz``, for the same command to resume) may be left — if ``message`` (what the command printed)
    names it. No ``*.tmp`` file may be left in it."""
    added = sorted(set(after) - set(before))
    kept = {p.split("/")[-2] for p in added if re.search(r"(^|/)\.[^/]+\.partial/function_\d+\.npz$", p)}
    allowed = set()
    for d in kept:
        assert d in message, f"checkpoints kept in {d}, but the message does not name it: {message!r}"
        allowed |= {p for p in added if p.split("/")[-1] == d or f"/{d}/" in f"/{p}"}
    assert not [p for p in allowed if PARTIAL_TMP.search(p)], f"temp files left in the kept checkpoints: {allowed}"
    assert_same_tree(before, {k: v for k, v in after.items() if k not in allowed}, what)


PARTIAL_TMP = re.compile(r"\.tmp(\.npz)?$")
PARTIAL = re.compile(r"(^|/)\.[^/]*\.partial(/|$)|\.tmp(\.npz)?$|(^|/)\.[^/]*\.old-[0-9a-f]+(/|$)")


def leftovers(root: Path) -> list[str]:
    """Partial output under ``root``: staging directories ``.*.partial``, ``*.tmp`` files, ``.*.old-*`` dirs."""
    return sorted(p for p in tree(root) if PARTIAL.search(p))


# ----------------------------------------------------------------------------------------------------------------
# filesystems that fail: a small tmpfs (full disk) and a read-only bind mount


def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _umount(path: Path) -> None:
    for attempt in (["umount", str(path)], ["umount", "-l", str(path)]):
        if subprocess.run(attempt, capture_output=True).returncode == 0:
            return


@contextlib.contextmanager
def small_filesystem(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted at ``path`` (a full disk once it is filled); skips the test where
    tmpfs cannot be mounted (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size_kib}k,mode=0777", "tmpfs", str(path)):
        pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN) to simulate a full disk")
    try:
        yield path
    finally:
        _umount(path)


def resize_filesystem(path: Path, size_kib: int) -> None:
    """Grow (or shrink) a tmpfs mounted by :func:`small_filesystem`: 'free some space'."""
    assert _mount("-o", f"remount,size={size_kib}k", str(path)), "cannot resize the tmpfs"


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` made unwritable: a read-only bind mount as root (chmod does not stop root), else chmod 0555.
    Skips the test where neither works."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,ro,bind", str(path))):
        _umount(path)
        pytest.skip("cannot make a read-only bind mount here (root without CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        _umount(path)


# ----------------------------------------------------------------------------------------------------------------
# stores: reading them without the Store class (which is under change), comparing them


DROP_COLUMNS = re.compile(r"wall_time|time_s$|_time$|host|pid|created|started|finished_at")


def store_frames(root: Path):
    """(networks, observations) of a store read straight from its Parquet files, sorted, timing columns
    dropped."""
    import pandas as pd
    import pyarrow.parquet as pq

    def read(folder: str):
        files = sorted((root / folder).glob("*.parquet"))
        if not files:
            return pd.DataFrame()
        df = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        df = df.drop(columns=[c for c in df.columns if DROP_COLUMNS.search(c)])
        keys = [k for k in ("network_id", "layer_index", "condition", "checkpoint") if k in df]
        return df.sort_values(keys).reset_index(drop=True)

    return read("networks"), read("observations")


def assert_stores_equal(a: Path, b: Path) -> None:
    """The two stores hold the same networks once each with identical rows (timings aside)."""
    import pandas as pd

    nets_a, obs_a = store_frames(a)
    nets_b, obs_b = store_frames(b)
    assert len(nets_a) == len(nets_b) and nets_a.network_id.is_unique, (len(nets_a), len(nets_b))
    for column in nets_a.columns:  # list-valued curves compare element-wise through their repr
        if nets_a[column].dtype == object:
            nets_a[column] = nets_a[column].map(repr)
            nets_b[column] = nets_b[column].map(repr)
    pd.testing.assert_frame_equal(nets_a, nets_b)
    pd.testing.assert_frame_equal(obs_a, obs_b)


def network_ids(store: Path) -> list[str]:
    return sorted(p.stem for p in (store / "networks").glob("*.parquet"))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------------------------------------------
# small runs, built once per test process


_CACHE: dict[str, Path] = {}
_ROOT: list[Path] = []


def _cache_root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="learnscope-safety-")))
        atexit.register(shutil.rmtree, _ROOT[0], ignore_errors=True)
    return _ROOT[0]


def scratch_dir(name: str) -> Path:
    """A directory outside every test's tmp_path that lives as long as this test process."""
    path = _cache_root() / "scratch" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(name: str, build) -> Path:
    """``build(target)`` once per test process; returns ``target`` (copy it before mutating it)."""
    if name not in _CACHE:
        target = _cache_root() / name
        if target.exists():
            shutil.rmtree(target)
        build(target)
        _CACHE[name] = target
    return _CACHE[name]


def copy_of(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest


def fixture_store(rules: Sequence[str] = ("sgdm", "adam")) -> Path:
    """A finished store of :func:`grid_config` (``rules`` × seeds 0, 1), simulated once; copy before mutating."""
    name = "store-" + "-".join(rules)

    def build(target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        cfg = target.parent / f"{name}.toml"
        cfg.write_text(grid_config(rules=rules))
        out = invoke(["identify", "simulate", cfg, "--out", target, "--backend", "sequential", "--no-progress"])
        assert_ok(out)

    return cached(name, build)


def fixture_grid_file(directory: Path, **kwargs) -> Path:
    path = directory / "grid.toml"
    path.write_text(grid_config(**kwargs))
    return path


def fixture_model() -> Path:
    """A model fitted (rf) on :func:`fixture_store`."""

    def build(target: Path) -> None:
        target.mkdir(parents=True)
        assert_ok(invoke(["identify", "fit", fixture_store(), "--out", target / "model.joblib"]))

    return cached("model", build) / "model.joblib"


def fixture_recordings() -> Path:
    """Recordings (CSV, documented schema) of one network of :func:`fixture_store`."""

    def build(target: Path) -> None:
        from learnscope.identify.predict import recordings_from_store

        target.mkdir(parents=True)
        store = fixture_store()
        recordings_from_store(store, network_ids(store)[:1]).to_csv(target / "rec.csv", index=False)

    return cached("recordings", build) / "rec.csv"


def bias_run(kind: str = "easiest") -> Path:
    """A finished tiny bias run directory of ``kind`` (easiest, series, contrast) that passes its checks."""

    def build(target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        cfg = target.parent / f"bias-{kind}.toml"
        cfg.write_text(bias_config(kind, steps=HEALTHY["steps"] if kind == "easiest" else 6))
        assert_ok(invoke(["bias", "run", cfg, "--out", target, "--no-progress"]), warnings_allowed=True)

    return cached(f"bias-{kind}", build)


FIG7_TINY = ["--seed", "0", "--set", "search.steps=3", "--set", "analysis.n_eval=500", "--set", "analysis.gen_draws=5",
             "--set", "learner.steps=5", "--set", "meta.hidden=16", "--no-progress"]


def fig7_run() -> Path:
    """The bundled Fig 7 over-connected config, shrunk to a few steps."""

    def build(target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = invoke(["bias", "run", "fig7_mushroom_overconnected", "--out", target, *FIG7_TINY])
        assert_ok(out, warnings_allowed=True)

    return cached("fig7", build)


CLASSIFY_TINY = ["--classifiers", "rf", "--grid", "none", "--n-splits", "2", "--no-progress"]


def classify_run() -> Path:
    """``identify classify`` of :func:`fixture_store` (rf, no hyper-parameter grid, 2 splits)."""

    def build(target: Path) -> None:
        store = fixture_store()
        with contextlib.chdir(store.parent):  # the store as a user types it: a relative path
            out = invoke(["identify", "classify", store.name, "--out", target, *CLASSIFY_TINY])
        assert_ok(out, warnings_allowed=True)
        (target.parent / "classify.stdout").write_text(out.stdout)

    return cached("classify", build)


def classify_stdout() -> str:
    """What the ``identify classify`` of :func:`classify_run` printed."""
    return (classify_run().parent / "classify.stdout").read_text()


def find_keys(obj, pattern: str) -> list[tuple[str, object]]:
    """(dotted key, value) of every key matching ``pattern`` (regex, case-insensitive) anywhere in ``obj``."""
    found = []
    rx = re.compile(pattern, re.IGNORECASE)

    def walk(o, prefix: str) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                if rx.search(str(k)):
                    found.append((key, v))
                walk(v, key)
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{prefix}[{i}]")

    walk(obj, "")
    return found
