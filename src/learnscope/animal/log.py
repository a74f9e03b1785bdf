"""An experiment folder on disk: its config, its session log (Parquet), and the files a lab exchanges with it.

Layout of ``EXPERIMENT/``::

    config.toml        the experiment's config, copied at creation (the source of truth from then on)
    sessions.parquet   the session log: one row per training stimulus and per probe presentation
    .learnscope-run    the marker (kind "animal-experiment")

The next session is a pure function of the config and the log (the route's ``plan``), so ``plan`` writes only the
lab's sheet and ``record`` recomputes the plan to check the responses against it. The log is rewritten atomically
with every recorded session: a failed write leaves the earlier log intact.

The session sheet ``plan`` writes (CSV, one row per training stimulus and per probe): ``session, block (train |
probe), item, presentations, x0 … x{d−1}, label`` (label only on train rows). The response file a lab returns
(CSV): ``session, item, repeat, response`` — one row per probe presentation, ``repeat`` = 0 … presentations − 1,
``response`` a graded value or a 0/1 choice.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from learnscope.animal.config import AnimalConfig, parse_animal_config
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.errors import ConfigError, StoreError
from learnscope.fileio import atomic_save, atomic_write, shown

CONFIG = "config.toml"
LOG = "sessions.parquet"
KIND = "animal-experiment"
RESPONSE_COLUMNS = ("session", "item", "repeat", "response")


def _coordinates(d: int) -> list[str]:
    return [f"x{i}" for i in range(d)]


def create_experiment(stage: Path, cfg: AnimalConfig) -> None:
    """Write a new experiment's config into ``stage`` (the CLI stages the folder and writes its marker)."""
    atomic_write(stage / CONFIG, tomli_w.dumps(cfg.raw))


def load_experiment(folder: Path) -> tuple[AnimalConfig, list[SessionRecord]]:
    """The experiment's config and session log; one-line StoreError when the folder is not an experiment."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise StoreError(f"{shown(folder)} is not an animal experiment (no {CONFIG}); create one with "
                         "`learnscope animal new CONFIG --out FOLDER`")
    try:
        cfg = parse_animal_config(tomllib.loads((folder / CONFIG).read_text()))
    except tomllib.TOMLDecodeError as err:
        raise StoreError(f"{shown(folder / CONFIG)} is not valid TOML ({err})") from None
    return cfg, read_log(folder / LOG)


# ------------------------------------------------------------------ the log


def _session_rows(rec: SessionRecord) -> pd.DataFrame:
    p = rec.plan
    d = p.train_x.shape[1]
    n, m, R = p.train_x.shape[0], p.probe_x.shape[0], p.repeats
    common = {"session": p.index, "route": p.route, "generation": -1 if p.generation is None else p.generation,
              "readout": bool(p.extra.get("readout", False)), "naive": p.naive, "presentations": R}
    train = pd.DataFrame({**common, "block": "train", "item": np.arange(n), "repeat": 0,
                          **dict(zip(_coordinates(d), p.train_x.T, strict=True)), "value": p.train_y})
    item = np.repeat(np.arange(m), R)
    probe = pd.DataFrame({**common, "block": "probe", "item": item, "repeat": np.tile(np.arange(R), m),
                          **dict(zip(_coordinates(d), p.probe_x[item].T, strict=True)),
                          "value": rec.responses.reshape(-1)})
    return pd.concat([train, probe], ignore_index=True)


def _session_from_rows(rows: pd.DataFrame) -> SessionRecord:
    first = rows.iloc[0]
    coords = [c for c in rows.columns if c.startswith("x") and c[1:].isdigit()]
    coords.sort(key=lambda c: int(c[1:]))
    train = rows[rows["block"] == "train"].sort_values("item")
    probe = rows[rows["block"] == "probe"].sort_values(["item", "repeat"])
    R = int(first["presentations"])
    m = len(probe) // R
    plan = SessionPlan(index=int(first["session"]), route=str(first["route"]), train_x=train[coords].to_numpy(),
                       train_y=train["value"].to_numpy(), probe_x=probe[coords].to_numpy()[::R], repeats=R,
                       generation=None if int(first["generation"]) < 0 else int(first["generation"]),
                       naive=str(first["naive"]), extra={"readout": True} if bool(first["readout"]) else {})
    return SessionRecord(plan, probe["value"].to_numpy().reshape(m, R))


def read_log(path: Path) -> list[SessionRecord]:
    """The sessions recorded so far (empty when there is no log yet)."""
    if not path.exists():
        return []
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise StoreError(f"{shown(path)} is not a readable session log ({type(err).__name__}); restore it from a "
                         "backup — learnscope never rewrites it in place") from None
    sessions = [_session_from_rows(g) for _, g in table.groupby("session", sort=True)]
    if [s.plan.index for s in sessions] != list(range(len(sessions))):
        raise StoreError(f"{shown(path)}: sessions are not numbered 0, 1, 2, …")
    return sessions


def write_log(folder: Path, log: list[SessionRecord]) -> None:
    """Write the whole log atomically (a temporary file, fsynced and renamed: a crash or a full disk leaves the
    earlier log as it was)."""
    table = pd.concat([_session_rows(r) for r in log], ignore_index=True)
    atomic_save(Path(folder) / LOG, lambda tmp: table.to_parquet(tmp, index=False))


def append_session(folder: Path, log: list[SessionRecord], record: SessionRecord) -> list[SessionRecord]:
    """Append ``record`` to the on-disk log (:func:`write_log`); returns the new log."""
    new = [*log, record]
    write_log(folder, new)
    return new


# ------------------------------------------------------------------ the lab's files


def plan_sheet(plan: SessionPlan) -> pd.DataFrame:
    """The session sheet for the lab (see the module docstring)."""
    d = plan.train_x.shape[1]
    n, m = plan.train_x.shape[0], plan.probe_x.shape[0]
    train = pd.DataFrame({"session": plan.index, "block": "train", "item": np.arange(n), "presentations": 1,
                          **dict(zip(_coordinates(d), plan.train_x.T, strict=True)), "label": plan.train_y})
    probe = pd.DataFrame({"session": plan.index, "block": "probe", "item": np.arange(m),
                          "presentations": plan.repeats, **dict(zip(_coordinates(d), plan.probe_x.T, strict=True)),
                          "label": np.nan})
    return pd.concat([train, probe], ignore_index=True)


def write_plan_sheet(plan: SessionPlan, out: Path) -> Path:
    sheet = plan_sheet(plan)
    return atomic_write(out, sheet.to_csv(index=False, float_format="%.17g"))


def read_responses(path: Path, plan: SessionPlan, recorded: int, response_model) -> np.ndarray:
    """Validate a lab's response file against the planned session -> responses ``(m, repeats)``.

    Every problem is one ConfigError naming the file and what to fix: unreadable or not CSV, missing or unknown
    columns, a session number that is not the next one, missing or duplicated (item, repeat) rows, non-numeric or
    non-finite responses, choices other than 0/1 for a binary response model.
    """
    where = shown(path)
    if Path(path).is_dir():
        raise ConfigError(f"{where} is a folder; give the response file (CSV) of session {plan.index}")
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where} is not a readable CSV ({type(err).__name__})") from None
    missing = [c for c in RESPONSE_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{where} lacks the column(s) {', '.join(missing)} (needs {', '.join(RESPONSE_COLUMNS)})")
    extra = [c for c in df.columns if c not in RESPONSE_COLUMNS]
    if extra:
        raise ConfigError(f"{where} has unknown column(s) {', '.join(map(str, extra))} "
                          f"(a response file has exactly {', '.join(RESPONSE_COLUMNS)})")
    if df.empty:
        raise ConfigError(f"{where} has no rows")
    for col in ("session", "item", "repeat"):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.isna().any() or (values != values.round()).any():
            row = int(values.isna().idxmax() if values.isna().any() else (values != values.round()).idxmax())
            raise ConfigError(f"{where} row {row + 2}: {col} must be a whole number, got {df[col].iloc[row]!r}")
        df[col] = values.astype(int)
    sessions = sorted(set(df["session"]))
    if len(sessions) != 1:
        raise ConfigError(f"{where} holds sessions {', '.join(map(str, sessions))}; a response file is one session")
    s = sessions[0]
    if s < recorded:
        raise ConfigError(f"{where}: session {s} is already recorded (the log has sessions 0–{recorded - 1}); "
                          f"the next session is {recorded}")
    if s != plan.index:
        raise ConfigError(f"{where}: responses for session {s}, but the next planned session is {plan.index}")
    dup = df.duplicated(["item", "repeat"])
    if dup.any():
        r = df[dup].iloc[0]
        raise ConfigError(f"{where}: probe {r['item']} repeat {r['repeat']} appears more than once")
    m, R = plan.probe_x.shape[0], plan.repeats
    bad = df[(df["item"] < 0) | (df["item"] >= m) | (df["repeat"] < 0) | (df["repeat"] >= R)]
    if not bad.empty:
        r = bad.iloc[0]
        raise ConfigError(f"{where}: probe {r['item']} repeat {r['repeat']} is not in the plan (probes 0–{m - 1}, "
                          f"repeats 0–{R - 1})")
    if len(df) != m * R:
        raise ConfigError(f"{where} has {len(df)} responses; session {s} planned {m} probes × {R} repeats = {m * R}")
    values = pd.to_numeric(df["response"], errors="coerce")
    if values.isna().any() or not np.isfinite(values.to_numpy()).all():
        row = int((~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))).argmax())
        raise ConfigError(f"{where} row {row + 2}: response must be a finite number, got {df['response'].iloc[row]!r}")
    out = np.empty((m, R))
    out[df["item"].to_numpy(), df["repeat"].to_numpy()] = values.to_numpy(dtype=float)
    try:
        response_model.check(out)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return out
