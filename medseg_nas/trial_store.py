"""The trials store: one sqlite row per trained genome, written before and after training.

A row is inserted as `running` before its trial starts and updated to `done` / `failed` when it
ends; every write is its own committed transaction in WAL mode with `synchronous=FULL`, so a
`kill -9` of the search at any moment loses nothing that had finished. A `running` row left
behind by a killed search is re-run (same id) when the search resumes.

Columns: id, key (Genome.key()), genome (JSON), status, f1, f2, history (JSON list, one dict
per epoch), error, seconds, seed, host, started, finished (ISO-8601 UTC), n_params, the
deployment costs macs, act_mem_mb and latency_ms (added to older stores on open; NULL for their
rows), plus `attempts` (how many times the trial was started) and `result` (the whole TrialResult as JSON,
weights excluded) for the later stages.

With successive halving (nas/halving.py) a trial is trained in rungs: the `rungs` table holds one
row per (trial, rung) — epochs trained by then, status, f1 and val Dice at that rung, seconds —
and the trial's own row carries the result of the highest rung it finished (`rung`, its index;
NULL without halving), so the front, the retrain pick and the report read one row per genome.
The `asks` table (ask_log.py) logs what the strategy asked and was told.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from medseg_nas.errors import StoreDamagedError
from medseg_nas.jsonio import json_default
from medseg_nas.results import COST_FIELDS, FINISHED, TrialStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    genome TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    f1 REAL,
    f2 REAL,
    history TEXT,
    error TEXT,
    seconds REAL,
    seed INTEGER,
    host TEXT,
    started TEXT,
    finished TEXT,
    n_params INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    result TEXT,
    macs INTEGER,
    act_mem_mb REAL,
    latency_ms REAL,
    rung INTEGER
);
CREATE INDEX IF NOT EXISTS trials_key ON trials (key);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
CREATE TABLE IF NOT EXISTS rungs (
    trial_id INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    f1 REAL,
    val_dice REAL,
    seconds REAL,
    error TEXT,
    started TEXT,
    finished TEXT,
    PRIMARY KEY (trial_id, rung)
);
"""
COST_COLUMNS = {"macs": "INTEGER", "act_mem_mb": "REAL", "latency_ms": "REAL"}  # added after the first stores
ADDED_COLUMNS = {**COST_COLUMNS, "rung": "INTEGER"}  # ALTER TABLE'd into stores written before them


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class RungRow:
    """One row of the `rungs` table: trial `trial_id` trained to `epochs` epochs at rung `rung`."""

    trial_id: int
    rung: int
    epochs: int
    status: str
    f1: float | None
    val_dice: float | None
    seconds: float | None
    error: str | None
    started: str | None
    finished: str | None


@dataclass
class TrialRow:
    """One row of the `trials` table, with JSON columns decoded."""

    id: int
    key: str
    genome: dict
    status: str
    f1: float | None
    f2: float | None
    history: list
    error: str | None
    seconds: float | None
    seed: int | None
    host: str | None
    started: str | None
    finished: str | None
    n_params: int | None
    attempts: int
    result: dict | None
    macs: int | None = None
    act_mem_mb: float | None = None
    latency_ms: float | None = None
    rung: int | None = None  # successive halving: index of the highest rung finished (None: no halving)

    def cost(self, kind: str) -> float | None:
        """Cost `kind` (results.COSTS) of a done trial; parameters fall back to exp(f2) for stores
        older than the n_params column, whose f2 was always log(parameters)."""
        if kind == "params":
            return float(self.n_params) if self.n_params else (None if self.f2 is None else float(round(math.exp(self.f2))))
        value = getattr(self, COST_FIELDS[kind])
        return None if value is None else float(value)

    @property
    def objectives(self) -> tuple[float, float] | None:
        """(f1, f2) of a done trial, None for a failed or running one."""
        if self.status != TrialStatus.DONE or self.f1 is None or self.f2 is None:
            return None
        return (self.f1, self.f2)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=json_default, allow_nan=True)


def _readable_rows(path: Path) -> tuple[list[int], int]:
    """(ids of the trial rows SQLite can still read, how many of them are done) in a damaged file.

    Read from a temporary copy whose header page count is cut to the pages actually present
    (a truncated file's header still counts the lost ones, which makes SQLite refuse every
    query), each id looked up on its own so that a lost page costs only its rows.
    """
    ids, done = [], 0
    with tempfile.TemporaryDirectory(prefix="medseg-store-") as tmp:
        copy = Path(tmp) / "copy.sqlite"
        try:
            raw = bytearray(path.read_bytes())
            page = int.from_bytes(raw[16:18], "big") if len(raw) >= 100 else 0
            page = 65536 if page == 1 else page
            if page >= 512:
                n_pages = len(raw) // page
                raw[28:32] = n_pages.to_bytes(4, "big")
                del raw[n_pages * page:]
            copy.write_bytes(bytes(raw))
            db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        except (OSError, sqlite3.Error):
            return ids, done
        try:
            trial_id, misses = 0, 0
            while misses < 500:  # ids are consecutive: 500 missing in a row is past the end
                trial_id += 1
                try:
                    row = db.execute("SELECT status FROM trials WHERE id=?", (trial_id,)).fetchone()
                except sqlite3.Error:
                    row = None
                if row is None:
                    misses += 1
                    continue
                misses = 0
                ids.append(trial_id)
                done += row[0] == TrialStatus.DONE
        finally:
            db.close()
    return ids, done


def check_integrity(path: Path) -> None:
    """StoreDamagedError naming `path` when SQLite finds it damaged, with what can be recovered.
    The file is only read: it is never repaired or replaced here."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = str(db.execute("PRAGMA quick_check").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        verdict = str(exc)
    if verdict == "ok":
        return
    ids, done = _readable_rows(path)
    run = path.parent
    logs = sorted((run / "tensorboard").glob("trial_*")) if (run / "tensorboard").is_dir() else []
    keep = [str(p.name) for p in (run / "front.json", run / "best" / "model.pt") if p.is_file()]
    rows = (f"{len(ids)} trial row(s) are still readable ({done} done, ids {ids[0]}-{ids[-1]})" if ids
            else "no trial row is readable")
    raise StoreDamagedError(
        f"trial store {path} is damaged ({verdict.splitlines()[0][:120]}); it was left as it is. {rows}; "
        f"{len(logs)} trial log folder(s) under {run / 'tensorboard'}"
        + (f" and {', '.join(keep)}" if keep else "")
        + f" are intact. Recover the readable rows with `sqlite3 {path} .recover | sqlite3 recovered.sqlite`, "
        "or search again into a new --run-dir"
    )


def add_missing_columns(write, have: set[str]) -> None:
    """ALTER TABLE the columns a store written before them lacks. Two processes can open one old
    store at once (a search and `status`, a test watching a run) and both see a column missing:
    the one that loses the race finds it added, which is the state it wanted."""
    for name, kind in ADDED_COLUMNS.items():
        if name in have:
            continue
        try:
            write(f"ALTER TABLE trials ADD COLUMN {name} {kind}", ())
        except sqlite3.OperationalError as exc:
            if "duplicate column name" not in str(exc):
                raise


class TrialStore:
    """`TrialStore(path)`: open (creating if needed) the sqlite trials table at `path`."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            check_integrity(self.path)  # before anything below writes to a damaged file
        # autocommit mode: each statement below is its own transaction, committed on return
        self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
        add_missing_columns(self._write, have)

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "TrialStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        for attempt in range(20):
            try:
                return self._db.execute(sql, args)
            except sqlite3.OperationalError as exc:  # another reader/writer holds the lock
                if "locked" not in str(exc) or attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """One committed statement (retried while another process holds the lock): for the tables
        kept beside `trials` (ask_log.py)."""
        return self._write(sql, args)

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        return [tuple(r) for r in self._db.execute(sql, args).fetchall()]

    # -- writes --------------------------------------------------------------------------------
    def start(self, key: str, genome_json: str, seed: int, host: str | None = None, trial_id: int | None = None) -> int:
        """Record a trial as `running` (a new row, or re-using `trial_id` on a rerun); its id."""
        if trial_id is not None:
            self._write(
                "UPDATE trials SET status='running', f1=NULL, f2=NULL, history=NULL, error=NULL, seconds=NULL,"
                " macs=NULL, act_mem_mb=NULL, latency_ms=NULL, rung=NULL, seed=?, host=?, started=?, finished=NULL, attempts=attempts+1, result=NULL WHERE id=?",
                (seed, host, utc_now(), trial_id),
            )
            return trial_id
        cur = self._write(
            "INSERT INTO trials (key, genome, status, seed, host, started) VALUES (?, ?, 'running', ?, ?, ?)",
            (key, genome_json, seed, host, utc_now()),
        )
        return int(cur.lastrowid)

    def finish(
        self,
        trial_id: int,
        status: str,
        f1: float | None = None,
        f2: float | None = None,
        history: list | None = None,
        error: str | None = None,
        seconds: float | None = None,
        host: str | None = None,
        n_params: int | None = None,
        result: dict | None = None,
        costs: dict | None = None,
    ) -> None:
        """Record the outcome of trial `trial_id` (`done` needs finite f1 and f2); `costs` holds
        any of macs, act_mem_mb, latency_ms."""
        if status not in FINISHED:
            raise ValueError(f"finish: status must be 'done' or 'failed', got {status!r}")
        f1, f2 = _finite_or_none(f1), _finite_or_none(f2)
        if status == TrialStatus.DONE and (f1 is None or f2 is None):
            raise ValueError(f"trial {trial_id}: a done trial needs finite f1 and f2, got {f1}, {f2}")
        self._write(
            "UPDATE trials SET status=?, f1=?, f2=?, history=?, error=?, seconds=?, host=COALESCE(?, host),"
            " finished=?, n_params=?, result=?, macs=?, act_mem_mb=?, latency_ms=? WHERE id=?",
            (
                status,
                f1,
                f2,
                dumps(history or []),
                error,
                seconds,
                host,
                utc_now(),
                None if n_params is None else int(n_params),
                None if result is None else dumps(result),
                *(_finite_or_none((costs or {}).get(name)) for name in COST_COLUMNS),
                trial_id,
            ),
        )

    # -- rungs (successive halving) --------------------------------------------------------------
    def start_rung(self, trial_id: int, rung: int, epochs: int) -> None:
        """Record that trial `trial_id` is being trained to `epochs` epochs (rung `rung`)."""
        self._write("INSERT OR REPLACE INTO rungs (trial_id, rung, epochs, status, started) VALUES (?, ?, ?, 'running', ?)",
                    (trial_id, rung, epochs, utc_now()))

    def finish_rung(self, trial_id: int, rung: int, status: str, f1: float | None = None, val_dice: float | None = None,
                    seconds: float | None = None, error: str | None = None) -> None:
        if status not in FINISHED:
            raise ValueError(f"finish_rung: status must be 'done' or 'failed', got {status!r}")
        self._write("UPDATE rungs SET status=?, f1=?, val_dice=?, seconds=?, error=?, finished=? WHERE trial_id=? AND rung=?",
                    (status, _finite_or_none(f1), _finite_or_none(val_dice), seconds, error, utc_now(), trial_id, rung))

    def set_rung(self, trial_id: int, rung: int, f1: float | None = None, history: list | None = None,
                 seconds: float | None = None, result: dict | None = None) -> None:
        """The trial's row takes rung `rung`'s result (f1, history, seconds summed over its rungs);
        f1 None only sets the rung index (the first rung's result was written by `finish`)."""
        if f1 is None:
            self._write("UPDATE trials SET rung=? WHERE id=?", (rung, trial_id))
            return
        self._write("UPDATE trials SET rung=?, f1=?, history=?, seconds=?, result=?, finished=? WHERE id=?",
                    (rung, _finite_or_none(f1), dumps(history or []), seconds, None if result is None else dumps(result),
                     utc_now(), trial_id))

    def rung_row(self, trial_id: int, rung: int) -> RungRow | None:
        r = self._db.execute("SELECT * FROM rungs WHERE trial_id=? AND rung=?", (trial_id, rung)).fetchone()
        return None if r is None else RungRow(**{k: r[k] for k in r.keys()})

    def rung_rows(self, status: str | None = None) -> list[RungRow]:
        """Every (trial, rung) row, or those with `status`, by trial then rung."""
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        cur = self._db.execute(f"SELECT * FROM rungs {where} ORDER BY trial_id, rung", args)
        return [RungRow(**{k: r[k] for k in r.keys()}) for r in cur.fetchall()]

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _row(r: sqlite3.Row) -> TrialRow:
        return TrialRow(
            id=r["id"],
            key=r["key"],
            genome=json.loads(r["genome"]),
            status=r["status"],
            f1=r["f1"],
            f2=r["f2"],
            history=json.loads(r["history"]) if r["history"] else [],
            error=r["error"],
            seconds=r["seconds"],
            seed=r["seed"],
            host=r["host"],
            started=r["started"],
            finished=r["finished"],
            n_params=r["n_params"],
            attempts=r["attempts"],
            result=json.loads(r["result"]) if r["result"] else None,
            macs=None if r["macs"] is None else int(r["macs"]),
            act_mem_mb=r["act_mem_mb"],
            latency_ms=r["latency_ms"],
            rung=r["rung"],
        )

    def get(self, trial_id: int) -> TrialRow | None:
        r = self._db.execute("SELECT * FROM trials WHERE id=?", (trial_id,)).fetchone()
        return None if r is None else self._row(r)

    def rows(self, status: str | tuple[str, ...] | None = None) -> list[TrialRow]:
        """All rows (or those with `status`), in id order."""
        if status is None:
            cur = self._db.execute("SELECT * FROM trials ORDER BY id")
        else:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            marks = ",".join("?" * len(wanted))
            cur = self._db.execute(f"SELECT * FROM trials WHERE status IN ({marks}) ORDER BY id", wanted)
        return [self._row(r) for r in cur.fetchall()]

    def __iter__(self) -> Iterator[TrialRow]:
        return iter(self.rows())

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def count(self, status: str | tuple[str, ...] | None = None) -> int:
        if status is None:
            return len(self)
        wanted = (status,) if isinstance(status, str) else tuple(status)
        marks = ",".join("?" * len(wanted))
        return int(self._db.execute(f"SELECT COUNT(*) FROM trials WHERE status IN ({marks})", wanted).fetchone()[0])

    def finished_by_key(self, key: str) -> TrialRow | None:
        """The finished (done, else failed) trial of genome `key`, if any: never trained twice."""
        r = self._db.execute(
            "SELECT * FROM trials WHERE key=? AND status IN ('done', 'failed')"
            " ORDER BY status='done' DESC, id LIMIT 1",
            (key,),
        ).fetchone()
        return None if r is None else self._row(r)

    def running_by_key(self, key: str) -> TrialRow | None:
        """A `running` row of genome `key` (left behind by a killed search), if any."""
        r = self._db.execute("SELECT * FROM trials WHERE key=? AND status='running' ORDER BY id LIMIT 1", (key,)).fetchone()
        return None if r is None else self._row(r)
