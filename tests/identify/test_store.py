"""The grid store: every read checks the files, damage is named by network id with its remedy, per-network locks."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from learnscope.cli import app
from learnscope.errors import StoreError
from learnscope.identify.grid import expand, load_grid
from learnscope.identify.simulation import simulate
from learnscope.identify.store import INTEGRITY_KEY, Damage, Store

runner = CliRunner()

TINY_TOML = """
[grid]
tasks = ["digits"]
architectures = ["mlp_1x8"]
rules = ["sgdm", "fa"]
batch_sizes = [64]
seeds = [0, 1]

[training]
epochs = 1
checkpoints = 3
n_train = 256
n_probe = 16
"""
N_NETWORKS = 4
ROWS_PER_NETWORK = 2 * 1 * 3  # 2 weight layers × 1 condition × 3 checkpoints


@contextmanager
def unprivileged():
    """Run the block without root's right to write anywhere (as nobody when the tests run as root)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A finished tiny store and its config (4 networks, 6 observation rows each)."""
    root = tmp_path_factory.mktemp("clean")
    cfg = root / "tiny.toml"
    cfg.write_text(TINY_TOML)
    counts = simulate(load_grid(cfg), root / "store", backend="sequential", progress=False)
    assert counts["ok"] == N_NETWORKS
    return cfg, root / "store"


@pytest.fixture
def store_copy(clean, tmp_path):
    cfg, src = clean
    dst = tmp_path / "store"
    shutil.copytree(src, dst)
    return cfg, dst


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("network_id", "layer_index", "condition", "checkpoint") if k in df]
    return df.sort_values(keys).reset_index(drop=True)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def _first_ok(root: Path) -> str:
    return sorted(p.stem for p in (root / "observations").glob("*.parquet"))[0]


# --------------------------------------------------------------------------------------------------------------
# what a commit records


def test_each_network_file_records_the_row_count_and_sha256_of_its_observations(clean):
    _, root = clean
    for net in sorted((root / "networks").glob("*.parquet")):
        integrity = json.loads(pq.read_schema(net).metadata[INTEGRITY_KEY])
        obs = root / "observations" / net.name
        assert integrity["observations_rows"] == pq.read_metadata(obs).num_rows == ROWS_PER_NETWORK
        assert integrity["observations_sha256"] == hashlib.sha256(obs.read_bytes()).hexdigest()
    store = Store.open(root)
    assert len(store.observations()) == N_NETWORKS * ROWS_PER_NETWORK
    assert store.scan().damages == [] and len(store.scan().networks) == N_NETWORKS


# --------------------------------------------------------------------------------------------------------------
# damaged files: named by id, never read as data, --repair retrains exactly them


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_middle_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


DAMAGE = {
    "truncated observations": ("observations", _truncate),
    "zero-length observations": ("observations", lambda p: p.write_bytes(b"")),
    "missing observations": ("observations", lambda p: p.unlink()),
    "altered observations": ("observations", _flip_middle_byte),
    "truncated network file": ("networks", _truncate),
    "zero-length network file": ("networks", lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_network_is_named_by_every_reader_and_never_counted_as_data(store_copy, case):
    _, root = store_copy
    victim = _first_ok(root)
    folder, damage = DAMAGE[case]
    damage(root / folder / f"{victim}.parquet")
    store = Store.open(root)
    scan = store.scan()
    assert [d.network_id for d in scan.damages] == [victim]
    assert victim not in set(scan.networks.network_id) and len(scan.networks) == N_NETWORKS - 1
    with pytest.raises(StoreError) as err:
        store.observations()
    assert victim in str(err.value) and "--repair" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(StoreError, match=victim):
        store.observations(columns=["network_id", "checkpoint"])
    if folder == "networks":
        with pytest.raises(StoreError, match=victim):
            store.networks()
    line = _one_error_line(runner.invoke(app, ["identify", "info", str(root)]))
    assert victim in line and "--repair" in line


@pytest.mark.parametrize("case", ["truncated observations", "missing observations", "zero-length network file"])
def test_simulate_refuses_a_damaged_store_untouched_and_repair_retrains_exactly_the_damaged_network(
        store_copy, clean, case):
    cfg, root = store_copy
    victim = _first_ok(root)
    folder, damage = DAMAGE[case]
    damage(root / folder / f"{victim}.parquet")
    before = _snapshot(root)
    result = runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(root), "--backend", "sequential",
                                 "--no-progress"])
    line = _one_error_line(result)
    assert victim in line and "--repair" in line and result.stdout == ""
    assert _snapshot(root) == before, "a refused rerun changes nothing"

    others = {k: v for k, v in before.items() if victim not in k and k.endswith(".parquet")}
    result = runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(root), "--backend", "sequential",
                                 "--no-progress", "--repair"])
    assert result.exit_code == 0, result.stderr
    assert "repair: removed the broken files of 1 network(s)" in result.stderr
    assert "1 to train, 3 already done" in result.stdout and "ok: 1" in result.stdout
    after = _snapshot(root)
    assert {k: after[k] for k in others} == others, "the sound networks are not rewritten"
    a, b = Store.open(root), Store.open(clean[1])
    pd.testing.assert_frame_equal(_sorted(a.observations()), _sorted(b.observations()))
    drop = ["wall_time_s"]
    pd.testing.assert_frame_equal(_sorted(a.networks().drop(columns=drop)), _sorted(b.networks().drop(columns=drop)))
    assert a.scan().damages == []


def test_an_observations_file_without_its_network_row_is_a_write_in_flight_and_ignored(store_copy):
    _, root = store_copy
    obs = root / "observations"
    shutil.copy(obs / f"{_first_ok(root)}.parquet", obs / "0123456789abcdef.parquet")
    store = Store.open(root)
    assert store.scan().damages == [] and len(store.observations()) == N_NETWORKS * ROWS_PER_NETWORK


def test_the_damage_message_is_one_line_with_at_most_five_ids(tmp_path):
    store = Store.create(tmp_path / "s", {"name": "test"})
    damages = [Damage(f"id{i}", "observations file is missing", (store.network_path(f"id{i}"),)) for i in range(7)]
    msg = store.damage_message(damages)
    assert "\n" not in msg and "7 networks" in msg and "and 2 more" in msg
    assert all(f"id{i}" in msg for i in range(5)) and "id5" not in msg


# --------------------------------------------------------------------------------------------------------------
# stores written before the checksums (same schema): still read and resumed, still checked as far as possible


def _strip_integrity(root: Path) -> None:
    for net in (root / "networks").glob("*.parquet"):
        table = pq.read_table(net)
        meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != INTEGRITY_KEY}
        pq.write_table(table.replace_schema_metadata(meta), net)


def test_a_store_without_checksums_is_read_resumed_and_still_checked(store_copy, clean):
    cfg, root = store_copy
    _strip_integrity(root)
    store = Store.open(root)
    assert store.scan().damages == []
    pd.testing.assert_frame_equal(_sorted(store.observations()), _sorted(Store.open(clean[1]).observations()))
    result = runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(root), "--backend", "sequential",
                                 "--no-progress"])
    assert result.exit_code == 0 and "0 to train, 4 already done" in result.stdout, result.stderr
    ids = sorted(p.stem for p in (root / "observations").glob("*.parquet"))
    _truncate(root / "observations" / f"{ids[0]}.parquet")
    (root / "observations" / f"{ids[1]}.parquet").unlink()
    assert sorted(d.network_id for d in Store.open(root).scan().damages) == ids[:2]
    with pytest.raises(StoreError, match="2 networks"):
        Store.open(root).observations()


# --------------------------------------------------------------------------------------------------------------
# locks


def test_a_network_lock_excludes_a_second_holder_and_disappears_on_release(tmp_path):
    store = Store.create(tmp_path / "s", {"name": "test"})
    lock = store.locks_dir / "abc.lock"
    with store.claim("abc") as first:
        assert first and lock.read_text().split()[0] == str(os.getpid())
        with store.claim("abc") as second:
            assert second is False
        with store.claim("other") as third:
            assert third
    assert not lock.exists()
    with store.claim("abc") as again:
        assert again


_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
print("releasing", flush=True)
os.close(fd)
time.sleep(0.5)
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_lock_held_by_a_process_that_is_killed_is_reclaimed(tmp_path):
    store = Store.create(tmp_path / "s", {"name": "test"})
    proc = _holder(store.locks_dir / "abc.lock", 60)
    try:
        with store.claim("abc") as mine:
            assert mine is False
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with store.claim("abc") as mine:
        assert mine, "the kernel released the dead process's lock"


def test_waiting_for_a_lock_returns_once_the_holder_has_finished(tmp_path):
    store = Store.create(tmp_path / "s", {"name": "test"})
    proc = _holder(store.locks_dir / "abc.lock", 1.0)
    with store.claim("abc", wait=True) as mine:
        ready, _, _ = select.select([proc.stdout], [], [], 0)
        assert mine and ready, "the lock was granted before its holder released it"
        assert proc.stdout.readline().strip() == "releasing"
    proc.wait()


def test_reopening_removes_only_the_temp_files_and_locks_no_live_process_holds(tmp_path):
    root = tmp_path / "s"
    store = Store.create(root, {"name": "test"})
    held_tmp = store.networks_dir / ".aaaa.parquet.1234abcd.tmp"
    stale_tmp = store.observations_dir / ".bbbb.parquet.5678ef01.tmp"
    held_tmp.write_bytes(b"partial")
    stale_tmp.write_bytes(b"partial")
    (store.locks_dir / "cccc.lock").write_text("99999999 gone\n")  # a killed process's lock file
    proc = _holder(store.locks_dir / "aaaa.lock", 60)
    try:
        Store.create(root, {"name": "test"})
        assert held_tmp.exists() and not stale_tmp.exists()
        assert not (store.locks_dir / "cccc.lock").exists() and (store.locks_dir / "aaaa.lock").exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    Store.create(root, {"name": "test"})
    assert not held_tmp.exists()


# --------------------------------------------------------------------------------------------------------------
# where a store may go


def test_unusable_store_locations_are_refused_and_left_untouched(tmp_path):
    grid = {"name": "test"}
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(StoreError, match="is a file"):
        Store.create(afile, grid)
    with pytest.raises(StoreError, match="afile is a file, not a directory"):
        Store.create(afile / "run", grid)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not an empty directory or a learnscope store"):
        Store.create(foreign, grid)
    assert afile.read_text() == "mine" and [p.name for p in foreign.iterdir()] == ["notes.txt"]
    Store.create(tmp_path / "s", grid)
    with pytest.raises(StoreError, match="different grid"):
        Store.create(tmp_path / "s", {"name": "other"})


def test_a_store_skeleton_being_created_by_another_process_is_completed(tmp_path):
    root = tmp_path / "s"
    for sub in ("networks", "observations"):
        (root / sub).mkdir(parents=True)
    store = Store.create(root, {"name": "test"})
    assert Store.open(root).meta["grid"] == {"name": "test"} and store.locks_dir.is_dir()


@pytest.fixture
def open_dir():
    base = Path(tempfile.mkdtemp(prefix="learnscope-ro-"))
    base.chmod(0o755)
    yield base
    for p in [base, *base.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(base)


def test_a_read_only_store_or_parent_is_one_error_before_any_work(open_dir, clean):
    cfg = open_dir / "tiny.toml"
    cfg.write_text(TINY_TOML)
    cfg.chmod(0o644)
    store = open_dir / "store"
    shutil.copytree(clean[1], store)
    (store / "networks" / f"{_first_ok(store)}.parquet").unlink()  # one network left to train
    for p in [store, *store.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = _snapshot(store)
    ro_parent = open_dir / "ro"
    ro_parent.mkdir(mode=0o555)
    with unprivileged():
        r1 = runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(store), "--backend", "sequential"])
        r2 = runner.invoke(app, ["identify", "simulate", str(cfg), "--out", str(ro_parent / "s"), "--backend",
                                 "sequential"])
    line = _one_error_line(r1, code=1)  # an environment failure (permissions), not bad input
    assert "cannot write to" in line and "permission denied" in line and r1.stdout == ""
    assert _snapshot(store) == before
    line = _one_error_line(r2, code=1)
    assert "cannot write to" in line and r2.stdout == "" and not (ro_parent / "s").exists()


def test_expand_of_a_store_grid_gives_the_networks_it_holds(clean):
    cfg, root = clean
    assert {j["network_id"] for j in expand(Store.open(root).meta["grid"])} == Store.open(root).finished_ids()
    assert Store.open(root).meta["grid"] == load_grid(cfg)
