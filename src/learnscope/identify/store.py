"""The Parquet store of a simulated grid: one file pair per network, written atomically and checked on every read.

Layout of a store directory::

    STORE/store.json                          schema version, the resolved grid config
    STORE/observations/<network_id>.parquet   one row per (layer, condition, checkpoint): metadata + 45 observables
    STORE/networks/<network_id>.parquet       one row: metadata, status (ok / diverged / failed), reason,
                                              loss and accuracy curves, B–Wᵀ angles per layer
    STORE/locks/<network_id>.lock             while a process trains that network (flock; removed after)

A network's observations are written first and its network row last, each through
:func:`learnscope.fileio.atomic_write` (temporary file, fsync, rename), so the network file is the commit marker: a
network is finished exactly when ``networks/<id>.parquet`` exists. A crash loses at most the networks in flight;
rerunning skips finished ones.

Integrity: the network file records, in its Parquet key-value metadata (key ``learnscope-integrity``), the row
count and the SHA-256 of its observations file, and both files carry Parquet page checksums. Every read checks
them (:meth:`Store.scan`, :meth:`Store.networks`, :meth:`Store.observations`): a zero-length, truncated or altered
file, or an observations file missing for a network that has one, raises :class:`StoreError` naming the network
ids and the remedy (``identify simulate … --repair`` removes their files so they are retrained). Stores written
before the checksums existed (same schema 1) are checked as far as they allow: each file must open as Parquet,
and an ``ok`` network must have its observations file.

Concurrency: a process trains a network only while it holds that network's lock (``fcntl.flock`` on
``locks/<id>.lock``, released by the kernel if the process dies), and re-checks after taking it that no one
committed the network meanwhile — so concurrent ``identify simulate`` runs on one store split the work and never
train a network twice. (Without ``fcntl``, i.e. on Windows, there is no locking: run one process per store.)
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from learnscope.errors import EnvironmentFailure, StoreError
from learnscope.fileio import atomic_write, check_writable, existing_ancestor, shown

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed")
STORE_KIND = "learnscope-identify-store"
INTEGRITY_KEY = b"learnscope-integrity"
"""Parquet metadata key of a network file: ``{"observations_rows": n, "observations_sha256": hex}``."""
_SUBDIRS = ("networks", "observations", "locks")


@dataclass(frozen=True)
class Damage:
    """A committed network whose files are broken: its id, what is wrong, and the files to remove to retrain it."""

    network_id: str
    problem: str
    files: tuple[Path, ...]


@dataclass
class Scan:
    """What :meth:`Store.scan` found: the network table of the networks whose files are sound, and the damage."""

    networks: pd.DataFrame
    damages: list[Damage]

    @property
    def statuses(self) -> dict[str, str]:
        if self.networks.empty:
            return {}
        return dict(zip(self.networks.network_id, self.networks.status, strict=True))


class _Broken(Exception):
    """A file of one network is unusable (internal; surfaces as a Damage or a StoreError)."""


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, write_page_checksum=True)
    return sink.getvalue().to_pybytes()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _writable(directory: Path) -> bool:
    try:
        check_writable(directory)
    except OSError:
        return False
    return True


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class Store:
    """A grid store on disk (see the module docstring). Create with :meth:`create` or open with :meth:`open`."""

    def __init__(self, root: Path, meta: dict):
        self.root = Path(root)
        self.meta = meta

    @property
    def networks_dir(self) -> Path:
        return self.root / "networks"

    @property
    def observations_dir(self) -> Path:
        return self.root / "observations"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    def network_path(self, network_id: str) -> Path:
        return self.networks_dir / f"{network_id}.parquet"

    def observations_path(self, network_id: str) -> Path:
        return self.observations_dir / f"{network_id}.parquet"

    # ----------------------------------------------------------------------------------------------------------
    # creating and opening

    @staticmethod
    def _is_skeleton(root: Path) -> bool:
        """True if ``root`` holds nothing but the empty folders of a store being created (by another process)."""
        for entry in root.iterdir():
            if entry.name in _SUBDIRS and entry.is_dir() and not any(entry.iterdir()):
                continue
            if entry.name.startswith(".store.json.") and entry.name.endswith(".tmp"):
                continue
            return False
        return True

    @classmethod
    def check_target(cls, root: Path, grid: dict) -> None:
        """Raise (one line, nothing touched) unless ``root`` can hold the store of ``grid``: a new or empty
        directory in a writable place, or a writable store of the same grid. :class:`StoreError` for a wrong
        place (a file, a foreign directory, another grid's store), :class:`EnvironmentFailure` (exit 1) for
        missing write permission."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"--out {shown(root)} is a file; name a store directory")
        parent = existing_ancestor(root.absolute())
        if not parent.is_dir():
            raise StoreError(f"--out {shown(root)}: {shown(parent)} is a file, not a directory")
        if (root / "store.json").exists():
            store = cls.open(root)
            if store.meta.get("grid") != grid:
                raise StoreError(f"{shown(root)} holds a store of a different grid; use another --out, or delete it "
                                 "to start over")
            for d in (root, *(root / s for s in _SUBDIRS)):
                if d.exists() and not _writable(d):
                    raise EnvironmentFailure(f"cannot write to {shown(d)} (permission denied); fix the permissions "
                                             "of the store or choose another --out")
            return
        if root.exists() and any(root.iterdir()) and not cls._is_skeleton(root):
            raise StoreError(f"--out {shown(root)} exists and is not an empty directory or a learnscope store; "
                             "choose another --out")
        probe = root.absolute() if root.exists() else parent
        if not _writable(probe):
            raise EnvironmentFailure(f"cannot write to {shown(probe)} (permission denied; needed for --out "
                                     f"{shown(root)})")

    @classmethod
    def create(cls, root: Path, grid: dict) -> Store:
        """Create a store for ``grid`` or reopen one written for the same grid (to resume).

        Reopening removes what crashed runs left behind: temporary files of unfinished writes and the lock files
        of dead processes (both only for networks no live process holds)."""
        root = Path(root)
        cls.check_target(root, grid)
        if (root / "store.json").exists():
            store = cls.open(root)
            store.locks_dir.mkdir(exist_ok=True)
            store._clean_stale()
            return store
        try:
            for sub in _SUBDIRS:
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the store at {shown(root)}: {err.strerror}") from None
        meta = {"schema_version": SCHEMA_VERSION, "kind": STORE_KIND, "grid": grid}
        if not (root / "store.json").exists():  # another process may have just created the same store
            atomic_write(root / "store.json", json.dumps(meta, indent=2))
        store = cls.open(root)
        if store.meta.get("grid") != grid:
            raise StoreError(f"{shown(root)} holds a store of a different grid; use another --out, or delete it to "
                             "start over")
        return store

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing store, checking its schema version."""
        root = Path(root)
        path = root / "store.json"
        if not path.is_file():
            raise StoreError(f"{shown(root)} is not a learnscope store (no store.json)")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StoreError(f"{shown(path)} is corrupt (not JSON); delete the store and simulate it again") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{shown(path)} is corrupt (not a JSON object)")
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{shown(root)} was written with store schema {version!r}; this learnscope reads schema "
                             f"{SCHEMA_VERSION}")
        return cls(root, meta)

    # ----------------------------------------------------------------------------------------------------------
    # locks

    @contextmanager
    def claim(self, network_id: str, wait: bool = False) -> Iterator[bool]:
        """Hold the lock of one network for the block; yields False (at once) if another process holds it, unless
        ``wait``, which blocks until it is free. The lock file is removed on release."""
        if fcntl is None:  # pragma: no cover - Windows: no locking
            yield True
            return
        self.locks_dir.mkdir(exist_ok=True)
        path = self.locks_dir / f"{network_id}.lock"
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                yield False
                return
            try:  # the previous holder may have removed the file between our open and our lock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            yield True
        finally:
            try:
                path.unlink(missing_ok=True)  # while still holding it, so no one else can lock this inode
            finally:
                os.close(fd)

    def _clean_stale(self) -> None:
        for d in (self.networks_dir, self.observations_dir):
            for tmp in d.glob(".*.tmp"):
                network_id = tmp.name[1:].split(".parquet.")[0]
                with self.claim(network_id) as free:
                    if free:
                        tmp.unlink(missing_ok=True)  # a write cut off by a crash; its network is rerun
        for lock in self.locks_dir.glob("*.lock"):
            with self.claim(lock.stem):
                pass  # a free lock file (left by a killed process) is removed on release

    def stamp(self, network_id: str) -> tuple[int, int, int] | None:
        """Identity of the committed network file (inode, mtime, size), or None: changes whenever it is rewritten."""
        try:
            st = os.stat(self.network_path(network_id))
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    # ----------------------------------------------------------------------------------------------------------
    # writing

    def finished_ids(self) -> set[str]:
        """Ids of the committed networks (any status; their files are not checked — see :meth:`scan`)."""
        return {p.stem for p in self.networks_dir.glob("*.parquet")}

    def write_network(self, network_id: str, network_row: dict, observations: pd.DataFrame | None) -> None:
        """Atomically add one network: observations first, then its network row (the commit marker), which
        records the observations' row count and checksum."""
        n_rows, digest = 0, ""
        if observations is not None and len(observations):
            data = _parquet_bytes(pa.Table.from_pandas(observations, preserve_index=False))
            n_rows, digest = len(observations), _sha256(data)
            atomic_write(self.observations_path(network_id), data)
        table = pa.Table.from_pandas(pd.DataFrame([network_row]), preserve_index=False)
        integrity = json.dumps({"observations_rows": n_rows, "observations_sha256": digest}).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), INTEGRITY_KEY: integrity})
        atomic_write(self.network_path(network_id), _parquet_bytes(table))
        if n_rows == 0:
            self.observations_path(network_id).unlink(missing_ok=True)  # a stale one from an earlier attempt

    def remove(self, damages: list[Damage]) -> list[Damage]:
        """Delete the files of damaged networks (network file first, so the network is no longer committed) unless
        another process holds the network; returns the damages removed."""
        removed = []
        for d in damages:
            with self.claim(d.network_id) as mine:
                if not mine:
                    continue
                self.network_path(d.network_id).unlink(missing_ok=True)
                self.observations_path(d.network_id).unlink(missing_ok=True)
                removed.append(d)
        return removed

    # ----------------------------------------------------------------------------------------------------------
    # reading (every read checks the files)

    def _read_network(self, path: Path) -> tuple[pd.DataFrame, dict | None]:
        data = path.read_bytes()
        if not data:
            raise _Broken("network file is empty (zero bytes)")
        try:
            table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
            row = table.to_pandas()
            raw = (table.schema.metadata or {}).get(INTEGRITY_KEY)
            integrity = json.loads(raw) if raw is not None else None
        except Exception as err:  # noqa: BLE001 - the bytes are in memory: any failure means they are corrupt
            raise _Broken(f"network file is not readable Parquet, truncated or corrupt ({_short(err)})") from None
        if len(row) != 1 or not {"network_id", "status"} <= set(row.columns):
            raise _Broken(f"network file holds {len(row)} rows with columns {list(row.columns)[:4]}…, not one "
                          "network row")
        if row.network_id.iloc[0] != path.stem:
            raise _Broken(f"network file holds network {row.network_id.iloc[0]!r}, not {path.stem!r}")
        if row.status.iloc[0] not in STATUSES:
            raise _Broken(f"network file has status {row.status.iloc[0]!r}, not one of {', '.join(STATUSES)}")
        if integrity is not None and (not isinstance(integrity, dict) or
                                      not isinstance(integrity.get("observations_rows"), int)):
            raise _Broken("network file has corrupt integrity metadata")
        return row, integrity

    def _observations_file(self, network_id: str, status: str, integrity: dict | None) -> pq.ParquetFile | None:
        """The checked observations file of one committed network, or None if it has none (diverged / failed)."""
        path = self.observations_path(network_id)
        expected = None if integrity is None else int(integrity.get("observations_rows", 0))
        if expected == 0:
            return None
        if not path.exists():
            if expected is None and status != "ok":
                return None
            raise _Broken("observations file is missing")
        data = path.read_bytes()
        if not data:
            raise _Broken("observations file is empty (zero bytes)")
        if integrity is not None and _sha256(data) != integrity.get("observations_sha256"):
            raise _Broken("observations file does not match the checksum recorded when it was written (truncated or "
                          "changed since)")
        try:
            pf = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
            n = pf.metadata.num_rows
        except Exception as err:  # noqa: BLE001 - the bytes are in memory: any failure means they are corrupt
            raise _Broken(f"observations file is not readable Parquet, truncated or corrupt ({_short(err)})") from None
        if expected is not None and n != expected:
            raise _Broken(f"observations file has {n} rows, {expected} were written")
        if n == 0 and status == "ok":
            raise _Broken("observations file has no rows")
        return pf

    def _committed(self) -> tuple[list[tuple[pd.DataFrame, dict | None]], list[Damage]]:
        rows, damages = [], []
        for path in sorted(self.networks_dir.glob("*.parquet")):
            try:
                rows.append(self._read_network(path))
            except _Broken as err:
                damages.append(Damage(path.stem, str(err), (path, self.observations_path(path.stem))))
            except FileNotFoundError:
                continue  # removed by a --repair running meanwhile
        return rows, damages

    def scan(self) -> Scan:
        """Check every committed network's files (network row, then its observations' checksum and row count);
        returns the sound networks' table and the list of damaged ones. Never raises for damage."""
        rows, damages = self._committed()
        sound = []
        for row, integrity in rows:
            nid, status = row.network_id.iloc[0], row.status.iloc[0]
            try:
                self._observations_file(nid, status, integrity)
            except _Broken as err:
                damages.append(Damage(nid, str(err), (self.network_path(nid), self.observations_path(nid))))
                continue
            sound.append(row)
        networks = pd.concat(sound, ignore_index=True) if sound else pd.DataFrame()
        return Scan(networks, sorted(damages, key=lambda d: d.network_id))

    def damage_message(self, damages: list[Damage]) -> str:
        """One line naming the damaged networks (at most five) and the remedy."""
        shown_ids = "; ".join(f"{d.network_id} ({d.problem})" for d in damages[:5])
        more = f"; and {len(damages) - 5} more" if len(damages) > 5 else ""
        if len(damages) == 1:
            files = " and ".join(shown(f) for f in damages[0].files if f.exists()) or shown(damages[0].files[0])
        else:
            files = (f"their files (<id>.parquet) in {shown(self.networks_dir)} and {shown(self.observations_dir)}")
        return (f"store {shown(self.root)}: {_plural(len(damages), 'network')} with broken files: {shown_ids}{more}; "
                f"rerun `learnscope identify simulate <grid config> --out {shown(self.root)} --repair` to retrain "
                f"{'it' if len(damages) == 1 else 'them'} (--repair removes the broken files first), or delete "
                f"{files} and rerun")

    def _raise_if_damaged(self, damages: list[Damage]) -> None:
        if damages:
            raise StoreError(self.damage_message(sorted(damages, key=lambda d: d.network_id)))

    def statuses(self) -> dict[str, str]:
        """Status of every committed network, from checked network files (raises :class:`StoreError` on damage)."""
        nets = self.networks()
        return {} if nets.empty else dict(zip(nets.network_id, nets.status, strict=True))

    def networks(self) -> pd.DataFrame:
        """The network table: one row per finished network (any status).

        Raises :class:`StoreError` naming every network whose network file is empty, truncated or corrupt."""
        rows, damages = self._committed()
        self._raise_if_damaged(damages)
        if not rows:
            return pd.DataFrame()
        return pd.concat([r for r, _ in rows], ignore_index=True)

    def observations(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All observation rows of finished networks (an observations file without a network row is ignored: it is
        a write in flight or cut off by a crash). ``columns`` selects columns.

        Never drops rows silently: raises :class:`StoreError` naming every committed network whose observations
        file is missing, empty, truncated, altered or has the wrong row count (and every corrupt network file),
        and for a requested column that a file lacks."""
        rows, damages = self._committed()
        frames = []
        for row, integrity in rows:
            nid, status = row.network_id.iloc[0], row.status.iloc[0]
            try:
                pf = self._observations_file(nid, status, integrity)
                if pf is None:
                    continue
                if columns is not None:
                    missing = [c for c in columns if c not in pf.schema_arrow.names]
                    if missing:
                        raise StoreError(f"store {shown(self.root)}: the observations of network {nid} lack column(s) "
                                         f"{missing}; it was written by another version of learnscope")
                try:
                    frames.append(pf.read(columns=columns).to_pandas())
                except Exception as err:  # noqa: BLE001 - checked bytes in memory that still do not decode
                    raise _Broken(f"observations file does not decode ({_short(err)})") from None
            except _Broken as err:
                damages.append(Damage(nid, str(err), (self.network_path(nid), self.observations_path(nid))))
        self._raise_if_damaged(damages)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)


def _short(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 80 else text[:77] + "..."
