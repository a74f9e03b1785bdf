"""Scale-out (issue 14 item 6): a grid on a dask LocalCluster survives a SIGKILL of a worker in the middle of a network.

The run goes through the CLI (``identify simulate --backend dask --scheduler ADDR``) in a subprocess, against a
``LocalCluster`` of 2 worker processes started here. Once a network is committed, the worker process that holds a
network's lock (the lock file names its pid) is killed with SIGKILL; its nanny restarts it and the scheduler
reschedules the lost job (one network, or one ensemble of networks). The run must exit 0, commit every network
exactly once (no network file is rewritten after its first commit, the killed job's networks included), leave no
lock behind, and write the same store as loky.

The worker killed is one that took a lock less than ``FRESH_S`` ago, in practice the one that has just committed a
job and claimed its next: the kill loses both the job in flight (its networks are retrained once, elsewhere) and,
often, the finished job's result not yet fetched from that worker, which the scheduler recomputes; that recompute
must find its networks committed (the stamp re-check after the claim) and report them ``elsewhere`` instead of
training and committing them a second time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from learnscope.identify.grid import expand, load_grid
from learnscope.identify.simulation import simulate
from learnscope.identify.store import Store

GRID_TOML = """
[grid]
tasks = ["digits"]
architectures = ["mlp_1x16"]
rules = ["sgdm", "fa", "adam"]
batch_sizes = [32, 64]
seeds = [0, 1]

[training]
epochs = 120
checkpoints = 3
n_train = 256
n_probe = 16
"""
"""12 networks in 6 jobs (an ensemble job per rule and batch size, of the 2 seeds; one job per network where
networks do not train as ensembles): ~0.5-1.5 s of training each, long enough for the kill to land inside one."""

N_NETWORKS = 12
DEADLINE_S = 240.0
FRESH_S = 0.15


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("network_id", "layer_index", "condition", "checkpoint") if k in df]
    return df.sort_values(keys).reset_index(drop=True)


def _assert_same_store(a_root: Path, b_root: Path) -> None:
    """Same networks (every column but the wall time) and the same observation values, row for row."""
    a, b = Store.open(a_root), Store.open(b_root)
    pd.testing.assert_frame_equal(_sorted(a.observations()), _sorted(b.observations()))
    drop = ["wall_time_s"]
    pd.testing.assert_frame_equal(_sorted(a.networks().drop(columns=drop)), _sorted(b.networks().drop(columns=drop)))


def _counts_line(stdout: str) -> dict[str, int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("total: "))
    return {k: int(v) for k, v in (part.split(": ") for part in line.split(", "))}


def _lock_holders(locks_dir: Path) -> dict[str, tuple[int, float]]:
    """``{network_id: (pid, seconds since the lock was taken)}`` of the lock files that name their holder (a file
    being (re)written reads empty and is left out)."""
    out = {}
    for lock in locks_dir.glob("*.lock"):
        try:
            text, age = lock.read_text().split(), time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if text and text[0].isdigit():
            out[lock.stem] = (int(text[0]), age)
    return out


def _commit_stamps(networks_dir: Path) -> dict[str, tuple[int, int]]:
    """``{network_id: (inode, mtime_ns)}`` of the committed network files: a rewrite (atomic rename) changes it."""
    out = {}
    for path in networks_dir.glob("*.parquet"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out[path.stem] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.slow
def test_a_worker_killed_mid_network_loses_and_duplicates_nothing_and_the_store_equals_loky(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the cluster's workers and the CLI
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GRID_TOML)
    grid = load_grid(cfg)
    ids = {s["network_id"] for s in expand(grid)}
    assert len(ids) == N_NETWORKS

    loky_root, dask_root = tmp_path / "loky", tmp_path / "dask"
    counts_loky = simulate(grid, loky_root, jobs=2, backend="loky", progress=False)
    assert counts_loky["ok"] == N_NETWORKS, counts_loky

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    proc = None
    try:
        client.wait_for_workers(2, timeout=DEADLINE_S)
        worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == 2 and os.getpid() not in worker_pids
        cmd = [sys.executable, "-c", "from learnscope.cli import app; app()", "identify", "simulate", str(cfg),
               "--out", str(dask_root), "--backend", "dask", "--scheduler", cluster.scheduler_address,
               "--no-progress"]
        out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(out_path, "w") as out_fh, open(err_path, "w") as err_fh:  # files: a full pipe cannot stall it
            proc = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh, text=True)
        networks_dir, locks_dir = dask_root / "networks", dask_root / "locks"

        # wait until one network is committed and a worker holds another network's lock, then kill that worker
        deadline = time.monotonic() + DEADLINE_S
        victim_pid = None
        while victim_pid is None:
            assert proc.poll() is None, (f"the run ended (exit {proc.returncode}) before a worker could be killed "
                                         f"mid-network: {err_path.read_text()[-2000:]}")
            assert time.monotonic() < deadline, f"no network committed within {DEADLINE_S:.0f} s"
            committed = _commit_stamps(networks_dir) if networks_dir.is_dir() else {}
            holders = _lock_holders(locks_dir) if locks_dir.is_dir() else {}
            # a network whose lock is younger than FRESH_S is far from its commit (~0.5 s of training): killing its
            # worker now lands inside the training, not in the instant between its commit and its next claim
            fresh = [pid for nid, (pid, age) in holders.items()
                     if pid in worker_pids and nid not in committed and age < FRESH_S]
            if committed and fresh:
                victim_pid = fresh[0]
            else:
                time.sleep(0.01)
        os.kill(victim_pid, signal.SIGKILL)
        committed_at_kill = _commit_stamps(networks_dir)
        # a dead process cannot remove its lock files: those naming it are the networks it was training
        in_flight = {nid for nid, (pid, _) in _lock_holders(locks_dir).items()
                     if pid == victim_pid and nid not in committed_at_kill}
        assert in_flight, "the kill must land inside a job: the killed worker held the lock of an uncommitted network"

        # watch every commit until the run ends: a network committed twice would change its file's stamp
        first_seen = dict(committed_at_kill)
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"the run did not finish within {DEADLINE_S:.0f} s after the kill"
            for nid, stamp in _commit_stamps(networks_dir).items():
                first_seen.setdefault(nid, stamp)
            time.sleep(0.02)
        stdout, stderr = out_path.read_text(), err_path.read_text()
        for nid, stamp in _commit_stamps(networks_dir).items():
            first_seen.setdefault(nid, stamp)
        final = _commit_stamps(networks_dir)
        assert proc.returncode == 0, (proc.returncode, stdout, stderr[-4000:])
        restarted = set(client.run(os.getpid).values())
        assert victim_pid not in restarted, "the killed worker is gone (its nanny started a new process)"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
        cluster.close()

    counts = _counts_line(stdout)
    assert counts["total"] == N_NETWORKS and counts["already_done"] == 0, counts
    assert counts["diverged"] == 0 and counts["failed"] == 0, counts
    # one result per network: 'elsewhere' only if the worker died between its commit and its reply
    assert counts["ok"] + counts.get("elsewhere", 0) == N_NETWORKS, counts
    assert f"store: {N_NETWORKS} ok, 0 failed, 0 diverged (of {N_NETWORKS})" in stdout, stdout

    assert set(final) == ids, "every network of the grid is committed, the killed one included"
    rewritten = sorted(nid for nid in final if final[nid] != first_seen[nid])
    assert not rewritten, f"network(s) committed twice: {rewritten}"
    assert not list(dask_root.rglob("*.lock")), "no lock file is left behind, not even the killed worker's"
    stray = [p.name for p in dask_root.rglob("*.tmp") if not any(p.name.startswith(f".{n}.") for n in in_flight)]
    assert not stray, f"temporary files of networks that were not killed mid-write: {stray}"

    store = Store.open(dask_root)
    assert store.scan().damages == []
    nets = store.networks()
    assert len(nets) == N_NETWORKS and nets.network_id.is_unique and set(nets.network_id) == ids
    _assert_same_store(loky_root, dask_root)
    print(f"killed worker {victim_pid} with {len(committed_at_kill)} of {N_NETWORKS} networks committed and "
          f"{len(in_flight)} in flight on it; run counts {counts}")  # shown with -s
