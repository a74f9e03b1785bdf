"""The tier-2 grid on a dask ``LocalCluster`` of 2 workers with a SIGKILL of a worker mid-run (issue 14 item 6),
and its wall time on 2 cores (issue 14's tier-2 bar).

The run goes through the CLI (``identify simulate identify_tier2 --backend dask --scheduler ADDR``) in a subprocess
against a cluster started here (2 worker processes with nannies, 1 thread each). ``--kill-after`` seconds in, the
worker that holds the lock of an uncommitted network is killed with SIGKILL; its nanny starts a new worker and the
scheduler reschedules the lost ensemble. Recorded: the wall time, the run's counts, the networks in flight on the
killed worker, every commit's file stamp (a network committed twice changes its stamp), lock and temporary files
left behind and the store's damage scan. Then a cheap part of the grid (``--check-archs`` at
``--check-batch-sizes``, every objective, rule and seed) is simulated again with loky into a fresh store, and its
networks and observations are compared with the dask store's rows of the same network ids, which must be identical.

Writes ``benchmarks/results/identify_tier2_dask.json``. ``python -m benchmarks.identify_tier2_dask [--out DIR]
[--kill-after S] [--check-archs mlp_3x64 cnn]``. The store at ``--out`` (default ``runs/tier2``) must not exist
(a resumed run would not time the grid); it is kept for ``identify classify``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import machine_info
from learnscope.identify.grid import expand, load_grid
from learnscope.identify.simulation import simulate
from learnscope.identify.store import Store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "identify_tier2.toml"


def lock_holders(locks_dir: Path) -> dict[str, tuple[int, float]]:
    """``{network_id: (pid, age s)}`` of the lock files that name their holder."""
    out = {}
    for lock in locks_dir.glob("*.lock"):
        try:
            text, age = lock.read_text().split(), time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if text and text[0].isdigit():
            out[lock.stem] = (int(text[0]), age)
    return out


def commit_stamps(networks_dir: Path) -> dict[str, tuple[int, int]]:
    """``{network_id: (inode, mtime_ns)}`` of the committed network files (an atomic rewrite changes it)."""
    out = {}
    for path in networks_dir.glob("*.parquet") if networks_dir.is_dir() else []:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out[path.stem] = (st.st_ino, st.st_mtime_ns)
    return out


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("network_id", "layer_index", "condition", "checkpoint") if k in df]
    return df.sort_values(keys).reset_index(drop=True)


def compare_with_loky(dask_root: Path, archs: list, batch_sizes: list[int], jobs: int) -> dict:
    """Simulate the grid restricted to ``archs`` and ``batch_sizes`` with loky; compare its rows with the dask store's
    rows of the same network ids."""
    grid = load_grid(CONFIG)
    grid["grid"] = dict(grid["grid"], architectures=archs, batch_sizes=batch_sizes)
    grid["grid"]["exclude"] = [e for e in grid["grid"].get("exclude", []) if e["architecture"] in archs]
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
        loky_root = Path(tmp) / "loky"
        t0 = time.perf_counter()
        counts = simulate(grid, loky_root, jobs=jobs, backend="loky", progress=False)
        wall = time.perf_counter() - t0
        loky, dask = Store.open(loky_root), Store.open(dask_root)
        ids = set(loky.networks().network_id)
        missing = sorted(ids - set(dask.networks().network_id))
        nets = [_sorted(s.networks().pipe(lambda d: d[d.network_id.isin(ids)]).drop(columns=["wall_time_s"]))
                for s in (loky, dask)]
        obs = [_sorted(s.observations().pipe(lambda d: d[d.network_id.isin(ids)])) for s in (loky, dask)]
        same_nets = nets[0].equals(nets[1])
        same_obs = obs[0].equals(obs[1])
    return {"architectures": archs, "batch_sizes": batch_sizes, "networks": len(ids),
            "missing_in_dask_store": missing, "loky_counts": counts,
            "loky_wall_s": wall, "networks_identical": bool(same_nets), "observations_identical": bool(same_obs),
            "observation_rows": len(obs[0])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "tier2")
    ap.add_argument("--kill-after", type=float, default=900.0)
    ap.add_argument("--check-archs", nargs="+", default=["mlp_3x64", "cnn"])
    ap.add_argument("--check-batch-sizes", nargs="+", type=int, default=[128])
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} exists; this benchmark times the whole grid into a new store")
    import distributed

    os.environ["OMP_NUM_THREADS"] = "1"
    ids = {s["network_id"] for s in expand(load_grid(CONFIG))}
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    client.wait_for_workers(2, timeout=120)
    worker_pids = set(client.run(os.getpid).values())
    cmd = [sys.executable, "-c", "from learnscope.cli import app; app()", "identify", "simulate", str(CONFIG),
           "--out", str(args.out), "--backend", "dask", "--scheduler", cluster.scheduler_address, "--no-progress"]
    log_dir = args.out.parent
    out_path, err_path = log_dir / "tier2_dask.stdout", log_dir / "tier2_dask.stderr"
    networks_dir, locks_dir = args.out / "networks", args.out / "locks"
    t0 = time.perf_counter()
    with open(out_path, "w") as out_fh, open(err_path, "w") as err_fh:
        proc = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh, text=True)
    kill: dict = {}
    first_seen: dict[str, tuple[int, int]] = {}
    try:
        while proc.poll() is None:
            for nid, stamp in commit_stamps(networks_dir).items():
                first_seen.setdefault(nid, stamp)
            if not kill and time.perf_counter() - t0 > args.kill_after:
                committed = commit_stamps(networks_dir)
                holders = {nid: h for nid, h in lock_holders(locks_dir).items()
                           if h[0] in worker_pids and nid not in committed and h[1] > 2.0}
                if holders:
                    victim = next(iter(holders.values()))[0]
                    os.kill(victim, signal.SIGKILL)
                    kill = {"at_s": time.perf_counter() - t0, "pid": victim, "committed_at_kill": len(committed),
                            "in_flight": sorted(n for n, (pid, _) in holders.items() if pid == victim)}
                    print(f"killed worker {victim} at {kill['at_s']:.0f} s with {len(committed)} networks "
                          f"committed and {len(kill['in_flight'])} in flight on it", flush=True)
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        for nid, stamp in commit_stamps(networks_dir).items():
            first_seen.setdefault(nid, stamp)
        restarted = set(client.run(os.getpid).values())
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
        cluster.close()
    final = commit_stamps(networks_dir)
    stdout = out_path.read_text()
    store = Store.open(args.out)
    nets = store.networks()
    result = {
        "machine": machine_info(),
        "grid": "identify_tier2",
        "networks_in_grid": len(ids),
        "wall_s": wall,
        "exit_code": proc.returncode,
        "summary_lines": [ln for ln in stdout.splitlines() if ln.startswith(("total:", "store:", "warning:"))],
        "kill": kill,
        "killed_worker_replaced": bool(kill) and kill["pid"] not in restarted,
        "committed": len(final),
        "all_committed": set(final) == ids,
        "committed_twice": sorted(n for n in final if final[n] != first_seen[n]),
        "locks_left": len(list(args.out.rglob("*.lock"))),
        "damages": [str(d) for d in store.scan().damages],
        "status_counts": nets.status.value_counts().to_dict(),
        "network_ids_unique": bool(nets.network_id.is_unique),
    }
    print(json.dumps(result, indent=1), flush=True)
    result["loky_check"] = compare_with_loky(args.out, args.check_archs, args.check_batch_sizes, jobs=2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "identify_tier2_dask.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["loky_check"], indent=1))


if __name__ == "__main__":
    main()
