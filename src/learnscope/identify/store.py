"""The Parquet store of a simulated grid: one file pair per network, written atomically.

Layout of a store directory::

    STORE/store.json                          schema version, the resolved grid config
    STORE/observations/<network_id>.parquet   one row per (layer, condition, checkpoint): metadata + 45 observables
    STORE/networks/<network_id>.parquet       one row: metadata, status (ok / diverged / failed), reason,
                                              loss and accuracy curves, B–Wᵀ angles per layer

A network's observations are renamed into place first and its network row last, so the network file is the
commit marker: a network is finished exactly when ``networks/<id>.parquet`` exists. A crash loses at most the
networks in flight; rerunning skips finished ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from learnscope.errors import StoreError

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "failed")


def _write_table(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    os.replace(tmp, path)


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

    @classmethod
    def create(cls, root: Path, grid: dict) -> Store:
        """Create a store for ``grid`` or reopen one written for the same grid (to resume)."""
        root = Path(root)
        if (root / "store.json").exists():
            store = cls.open(root)
            if store.meta.get("grid") != grid:
                raise StoreError(
                    f"{root} holds a store of a different grid; use another --out or delete it to start over"
                )
            for stale in [*store.networks_dir.glob(".*.tmp"), *store.observations_dir.glob(".*.tmp")]:
                stale.unlink(missing_ok=True)  # a write cut off by a crash; its network is rerun
            return store
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise StoreError(f"{root} exists and is not an empty directory or a learnscope store")
        try:
            (root / "networks").mkdir(parents=True, exist_ok=True)
            (root / "observations").mkdir(exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the store at {root}: {err.strerror}") from None
        meta = {"schema_version": SCHEMA_VERSION, "kind": "learnscope-identify-store", "grid": grid}
        tmp = root / ".store.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, root / "store.json")
        return cls(root, meta)

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open an existing store, checking its schema version."""
        root = Path(root)
        path = root / "store.json"
        if not path.is_file():
            raise StoreError(f"{root} is not a learnscope store (no store.json)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise StoreError(f"{path} is corrupt (not JSON)") from None
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{root} was written with store schema {version!r}; this learnscope reads schema {SCHEMA_VERSION}"
            )
        return cls(root, meta)

    def finished_ids(self) -> set[str]:
        return {p.stem for p in self.networks_dir.glob("*.parquet")}

    def write_network(self, network_id: str, network_row: dict, observations: pd.DataFrame | None) -> None:
        """Atomically add one network: observations first, then its network row (the commit marker)."""
        if observations is not None and len(observations):
            _write_table(observations, self.observations_dir / f"{network_id}.parquet")
        _write_table(pd.DataFrame([network_row]), self.networks_dir / f"{network_id}.parquet")

    def networks(self) -> pd.DataFrame:
        """The network table: one row per finished network (any status)."""
        files = sorted(self.networks_dir.glob("*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)

    def observations(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All observation rows of finished networks (an observations file without a network row is ignored)."""
        done = self.finished_ids()
        files = sorted(f for f in self.observations_dir.glob("*.parquet") if f.stem in done)
        if not files:
            return pd.DataFrame()
        return pd.concat([pq.read_table(f, columns=columns).to_pandas() for f in files], ignore_index=True)
