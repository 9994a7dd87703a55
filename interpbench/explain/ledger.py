"""The job ledger: one SQLite database (WAL mode) per labelling job under ``cache/labels/JOB/``.

Tables:

- ``meta(key, value)``: ``config`` (JSON of :class:`~.config.LabelConfig`), ``config_hash``,
  ``schema_version``, ``harvest`` (set once the harvest file is written);
- ``features(feature, status, attempts, error, updated)``: status is ``pending``, ``done``,
  ``failed`` (``attempts >= max_attempts``, with the last error), ``dead`` (never activates)
  or ``skipped`` (too few activating or non-activating windows; the reason is kept);
- ``stages(feature, stage, result, pid, created)``: one row per finished stage
  (``examples``, ``explanation``, ``score:<name>``), primary key ``(feature, stage)``.

Every write is one transaction (``with conn``), so a process killed at any moment leaves
each stage either fully recorded or absent: a resumed job redoes only unfinished stages.
A stage is inserted with plain ``INSERT`` — recording a finished stage twice is an error.
Opening a ledger whose config differs from the requested one raises
:class:`LedgerMismatch` naming the differing fields.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Optional

from ..errors import ConfigError, InterpbenchError
from .config import LabelConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS features (feature INTEGER PRIMARY KEY, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS stages (feature INTEGER NOT NULL, stage TEXT NOT NULL, result TEXT NOT NULL,
    pid INTEGER, created REAL, PRIMARY KEY (feature, stage));
"""


class LedgerMismatch(ConfigError):
    """A ledger written with a different config."""


class LedgerMissing(InterpbenchError):
    """No ledger for the named job."""


class Ledger:
    """A connection to one job's ledger (one per thread or process)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=60000")
        for stmt in SCHEMA.strip().split(";"):
            if stmt.strip():
                self.conn.execute(stmt)

    # -- transactions -----------------------------------------------------------
    def _tx(self):
        class _T:
            def __enter__(s):
                self.conn.execute("BEGIN IMMEDIATE")
                return self.conn

            def __exit__(s, et, ev, tb):
                self.conn.execute("COMMIT" if et is None else "ROLLBACK")
                return False
        return _T()

    # -- meta -------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def config(self) -> Optional[LabelConfig]:
        raw = self.get_meta("config")
        return LabelConfig.from_dict(json.loads(raw)) if raw else None

    def init(self, cfg: LabelConfig, features: Iterable[int]) -> None:
        """Write the config and the pending features, or check them against what is there."""
        with self._tx() as c:
            row = c.execute("SELECT value FROM meta WHERE key='config'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(cfg.to_dict(), sort_keys=True),))
                c.execute("INSERT INTO meta VALUES ('config_hash', ?)", (cfg.config_hash(),))
                c.execute("INSERT INTO meta VALUES ('schema_version', '1')")
                c.executemany("INSERT OR IGNORE INTO features (feature, status, attempts) VALUES (?, 'pending', 0)",
                              [(int(f),) for f in features])
                return
        old = LabelConfig.from_dict(json.loads(row[0]))
        if old.config_hash() != cfg.config_hash():
            raise LedgerMismatch(f"ledger {self.path} was written with a different config (ledger != requested: "
                                 + "; ".join(old.diff(cfg)) + "); use the same settings or another --job name")

    # -- stages -----------------------------------------------------------------
    def stages(self, feature: int) -> dict[str, dict]:
        rows = self.conn.execute("SELECT stage, result FROM stages WHERE feature=?", (feature,)).fetchall()
        return {s: json.loads(r) for s, r in rows}

    def put_stage(self, feature: int, stage: str, result: dict) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO stages VALUES (?, ?, ?, ?, ?)",
                      (feature, stage, json.dumps(result, sort_keys=True), os.getpid(), time.time()))

    def set_status(self, feature: int, status: str, error: Optional[str] = None) -> None:
        with self._tx() as c:
            c.execute("UPDATE features SET status=?, error=?, updated=? WHERE feature=?",
                      (status, error, time.time(), feature))

    def record_failure(self, feature: int, error: str, max_attempts: int) -> str:
        """Count a failed attempt; returns the new status (``pending`` or ``failed``)."""
        with self._tx() as c:
            (attempts,) = c.execute("SELECT attempts FROM features WHERE feature=?", (feature,)).fetchone()
            status = "failed" if attempts + 1 >= max_attempts else "pending"
            c.execute("UPDATE features SET attempts=?, status=?, error=?, updated=? WHERE feature=?",
                      (attempts + 1, status, error[:2000], time.time(), feature))
        return status

    # -- queries ----------------------------------------------------------------
    def pending(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT feature FROM features WHERE status='pending' ORDER BY feature")]

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "dead": 0, "skipped": 0, "pending": 0}
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM features GROUP BY status"):
            out[status] = n
        return out

    def rows(self) -> list[tuple]:
        return self.conn.execute("SELECT feature, status, attempts, error FROM features ORDER BY feature").fetchall()

    def all_stages(self) -> dict[int, dict[str, dict]]:
        out: dict = {}
        for f, s, r in self.conn.execute("SELECT feature, stage, result FROM stages ORDER BY feature, stage"):
            out.setdefault(f, {})[s] = json.loads(r)
        return out

    def close(self) -> None:
        self.conn.close()


def jobs_root() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "labels"


def job_dir(job: str) -> Path:
    if not job or "/" in job or job.startswith("."):
        raise ConfigError(f"job name {job!r} must be a plain name (no '/')")
    return jobs_root() / job


def open_existing(job: str) -> Ledger:
    path = Path(job) if job.endswith(".sqlite") else job_dir(job) / "ledger.sqlite"
    if not path.exists():
        known = sorted(p.name for p in jobs_root().glob("*") if (p / "ledger.sqlite").exists()) \
            if jobs_root().exists() else []
        raise LedgerMissing(f"no labelling job {job!r} under {jobs_root()}; known jobs: {known or 'none'}")
    return Ledger(path)
