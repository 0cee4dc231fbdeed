"""The room's physics QA history (CONTRACT §9) and the QA offsets declared to the service.

Its own sqlite database, ``<state>/qa/history.sqlite`` (WAL, ``synchronous=FULL``), beside the
store and outside the store's exclusive lock: ``igrt serve`` holds that lock, and ``igrt qa run``
must append to the same history while the service runs. sqlite's own locking serialises the two
processes (one short ``BEGIN IMMEDIATE`` transaction per write, a 30 s busy timeout). The fused
images of a run are PNG files under ``<state>/qa/images/<token>/``, written atomically *before*
the run's row, so a run in the history always has its images (an interrupted write leaves at
most an unreferenced folder, never a run without its images).

Tables: ``runs`` (one row per QA run, the ``igrt/qa/v1`` message as stored), ``run_images``,
``expectations`` (the offset a physicist declared for a phantom's Patient ID; taken, once, by
the next CBCT of that patient the service registers).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from igrt.core.clock import iso_utc, utc_now
from igrt.core.errors import QaHistoryError
from igrt.core.json_text import to_json
from igrt.store import sqlite_tx
from igrt.store.files import Fsync, ensure_dir, fsync_dir, write_atomically

log = logging.getLogger(__name__)

_MIGRATIONS: tuple[str, ...] = ("""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    room TEXT NOT NULL,
    source TEXT NOT NULL,
    phantom TEXT,
    patient_id TEXT,
    passed INTEGER NOT NULL,
    level TEXT NOT NULL,
    seq INTEGER UNIQUE,
    message_json TEXT NOT NULL
);
CREATE TABLE run_images (
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    name TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE expectations (
    patient_id TEXT PRIMARY KEY,
    declared_at TEXT NOT NULL,
    message_json TEXT NOT NULL
);
""",)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True)
class QaRun:
    """One run as stored: its message (with ``run_id``) and its images by name."""

    run_id: int
    message: dict[str, Any]
    images: dict[str, Path]


class QaHistory:
    """Open with :meth:`open` (creates ``<root>/qa``); thread-safe; close when done."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, *,
                 clock: Callable[[], datetime], fsync: Fsync) -> None:
        self.directory = directory
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._clock = clock
        self._fsync = fsync

    @classmethod
    def open(cls, state_dir: Path, *, clock: Callable[[], datetime] = utc_now,
             fsync: Fsync = os.fsync) -> Self:
        directory = Path(state_dir).absolute() / "qa"
        try:
            for sub in (directory, directory / "images", directory / "tmp"):
                sub.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(directory / "history.sqlite", isolation_level=None,
                                   check_same_thread=False, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise QaHistoryError(f"the QA history in {directory} cannot be opened: {exc}") from exc
        sqlite_tx.make_durable(
            conn, lambda c: _migrate(c, directory),
            lambda mode: QaHistoryError(f"the QA history in {directory} cannot use WAL ({mode})"),
            lambda exc: QaHistoryError(f"the QA history in {directory} cannot be opened: {exc}"))
        return cls(directory, conn, clock=clock, fsync=fsync)

    def close(self) -> None:
        """Close the history's database. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> str:
        return iso_utc(self._clock())

    # --- runs ------------------------------------------------------------------------------------
    def append_run(self, message: Mapping[str, Any], images: Mapping[str, bytes]
                   ) -> dict[str, Any]:
        """Store one run (its images first, then its row, with ``run_id`` added to the
        message); returns the message as stored. A correction ``seq`` is scored once."""
        rel_paths = self._write_images(images)
        with self._transaction("recording a QA run") as conn:
            seq = message.get("seq")
            if isinstance(seq, int) and conn.execute(
                    "SELECT 1 FROM runs WHERE seq = ?", (seq,)).fetchone() is not None:
                raise QaHistoryError(f"correction seq {seq} is already scored in the QA history")
            cur = conn.execute(
                "INSERT INTO runs (time, room, source, phantom, patient_id, passed, level, seq, "
                "message_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}')",
                (message["time"], message["room"], message["source"], message.get("phantom"),
                 message.get("patient_id"), int(bool(message["passed"])), message["level"],
                 seq if isinstance(seq, int) else None))
            run_id = int(cur.lastrowid or 0)
            stored = {"run_id": run_id, **message}
            conn.execute("UPDATE runs SET message_json = ? WHERE run_id = ?",
                         (_encode(stored), run_id))
            conn.executemany("INSERT INTO run_images (run_id, name, rel_path) VALUES (?, ?, ?)",
                             [(run_id, name, rel) for name, rel in rel_paths.items()])
        log.info("QA run %d recorded (%s)", run_id, message["level"])
        return stored

    def runs(self, *, limit: int | None = None) -> list[QaRun]:
        """The runs, oldest first (the last ``limit`` when given)."""
        with self._reading("reading the QA history") as conn:
            rows = conn.execute(
                "SELECT run_id, message_json FROM runs ORDER BY time DESC, run_id DESC LIMIT ?",
                (-1 if limit is None else int(limit),)).fetchall()
            images = conn.execute("SELECT run_id, name, rel_path FROM run_images "
                                  "ORDER BY run_id, name").fetchall()
        by_run: dict[int, dict[str, Path]] = {}
        for run_id, name, rel in images:
            by_run.setdefault(int(run_id), {})[str(name)] = self.directory / str(rel)
        return [QaRun(int(r), _decode(str(m)), by_run.get(int(r), {})) for r, m in reversed(rows)]

    def run_for_seq(self, seq: int) -> dict[str, Any] | None:
        with self._reading(f"reading the QA run of seq {seq}") as conn:
            row = conn.execute("SELECT message_json FROM runs WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _decode(str(row[0]))

    # --- declared offsets (the service) ----------------------------------------------------------
    def declare(self, patient_id: str, declaration: Mapping[str, Any], *,
                valid_s: float | None = None) -> dict[str, Any]:
        """Durably record (or replace) the offset declared for ``patient_id``; with ``valid_s``
        it carries ``expires_at``, after which :meth:`take_expectation` no longer gives it."""
        now = self._clock()
        stored = {**declaration, "patient_id": patient_id, "declared_at": iso_utc(now)}
        if valid_s is not None:
            stored["expires_at"] = iso_utc(now + timedelta(seconds=valid_s))
        with self._transaction(f"declaring a QA offset for {patient_id!r}") as conn:
            conn.execute(
                "INSERT INTO expectations (patient_id, declared_at, message_json) VALUES (?, ?, ?)"
                " ON CONFLICT(patient_id) DO UPDATE SET declared_at = excluded.declared_at, "
                "message_json = excluded.message_json",
                (patient_id, stored["declared_at"], _encode(stored)))
        return stored

    def take_expectation(self, patient_id: str) -> dict[str, Any] | None:
        """The offset declared for ``patient_id``, removed in the same transaction: a
        declaration is used by one CBCT only (None when there is none)."""
        with self._transaction("taking a declared QA offset") as conn:
            row = conn.execute("SELECT message_json FROM expectations WHERE patient_id = ?",
                               (patient_id,)).fetchone()
            if row is not None:
                conn.execute("DELETE FROM expectations WHERE patient_id = ?", (patient_id,))
        if row is None:
            return None
        declaration = _decode(str(row[0]))
        expires = declaration.get("expires_at")
        if isinstance(expires, str) and iso_utc(self._clock()) > expires:
            log.warning("the QA offset declared for %r at %s expired at %s unused: this CBCT is "
                        "not scored as QA", patient_id, declaration.get("declared_at"), expires)
            return None
        return declaration

    def expectation(self, patient_id: str) -> dict[str, Any] | None:
        with self._reading("reading a declared QA offset") as conn:
            row = conn.execute("SELECT message_json FROM expectations WHERE patient_id = ?",
                               (patient_id,)).fetchone()
        return None if row is None else _decode(str(row[0]))

    # --- plumbing --------------------------------------------------------------------------------
    def _write_images(self, images: Mapping[str, bytes]) -> dict[str, str]:
        if not images:
            return {}
        token = secrets.token_hex(8)
        folder = self.directory / "images" / token
        try:
            ensure_dir(folder, root=self.directory, fsync=self._fsync)
            out = {}
            for name, png in images.items():
                if not name.replace("_", "").isalnum() or len(name) > 64:
                    raise ValueError(f"QA image name {name!r} is not [a-z0-9_]{{1,64}}")
                write_atomically(folder / f"{name}.png", png, tmp_dir=self.directory / "tmp",
                                 fsync=self._fsync)
                out[name] = f"images/{token}/{name}.png"
            fsync_dir(folder.parent, self._fsync)
        except OSError as exc:
            raise QaHistoryError(f"the QA images cannot be written in {folder}: "
                                 f"{exc.strerror or exc}") from exc
        return out

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise QaHistoryError(f"the QA history in {self.directory} is closed")
        return self._conn

    def _transaction(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_tx.transaction(self._lock, self._require, lambda exc: _failed(exc, action))

    def _reading(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_tx.reading(self._lock, self._require, lambda exc: _failed(exc, action))


def _failed(exc: sqlite3.Error, action: str) -> QaHistoryError:
    return QaHistoryError(f"the QA history failed while {action}: {exc}")

def _migrate(conn: sqlite3.Connection, directory: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'meta'").fetchone()
        version = 0
        if has_meta is not None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row is not None else 0
        if version > SCHEMA_VERSION:
            raise QaHistoryError(f"the QA history in {directory} has schema version {version}; "
                                 f"this igrt reads version {SCHEMA_VERSION}")
        for step in _MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _encode(message: Mapping[str, Any]) -> str:
    try:
        return to_json(message)
    except (TypeError, ValueError) as exc:
        raise QaHistoryError(f"the QA record cannot be stored as JSON: {exc}") from exc


def _decode(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed
