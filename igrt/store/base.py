"""The store's foundation: the state directory, its lock, the sqlite connection and one
transaction at a time. The store's capabilities are mixins on this base, one module each
(``instances``, ``planning_index``, ``results``); :class:`igrt.store.store.Store` combines them.

Threads: one sqlite connection (``check_same_thread=False``) guarded by one lock; every database
access holds the lock for one short transaction. File writes and their fsyncs run outside the
lock, so pynetdicom's association threads write in parallel and the worker is not blocked by
them. All timestamps are wall-clock UTC ISO-8601 with ``Z``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Self

from igrt.core.clock import iso_utc, utc_now
from igrt.core.errors import OutOfSpaceError, StoreError
from igrt.store import sqlite_tx
from igrt.store.files import Fsync, StoreLock, clear_tmp, fsync_dir, os_error
from igrt.store.index import OBJECT_COLUMNS, read_object
from igrt.store.records import ObjectRecord
from igrt.store.schema import SCHEMA_VERSION, migrate

log = logging.getLogger(__name__)

SQLITE_FULL = 13  # primary result code "database or disk is full"


def _db_error(exc: sqlite3.Error, action: str) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return OutOfSpaceError(f"out of disk space while {action} (sqlite: {exc}); not recorded")
    return StoreError(f"the store database failed while {action}: {exc}")


class StoreBase:
    """The durable store under one state directory. Open with :meth:`open`; close when done."""

    def __init__(
        self,
        root: Path,
        conn: sqlite3.Connection,
        lock_file: StoreLock,
        *,
        clock: Callable[[], datetime],
        fsync: Fsync,
    ) -> None:
        self.root = root
        self._conn: sqlite3.Connection | None = conn
        self._lock_file = lock_file
        self._lock = threading.RLock()
        self._clock = clock
        self._fsync = fsync
        self._last_seq_known: int | None = None  # Results.last_seq, once read

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls: type[Self],
        root: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        fsync: Fsync = os.fsync,
    ) -> Self:
        """Open (creating if needed) the store at ``root``.

        ``clock`` returns an aware ``datetime`` (wall-clock arrival times); ``fsync`` is the
        durability call (``os.fsync``; a test may pass a wrapper that calls it and records).
        Raises :class:`StoreInUseError` if another open store holds ``root``.
        """
        root = Path(root).absolute()
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock_file = StoreLock(root / "igrt.lock")
        except OSError as exc:
            raise os_error(exc, f"creating the store directory {root}") from exc
        try:
            for sub in ("instances", "tmp"):
                (root / sub).mkdir(exist_ok=True)
            clear_tmp(root / "tmp")
            fsync_dir(root, fsync)
            conn = sqlite3.connect(
                root / "igrt.sqlite", isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except OSError as exc:
            lock_file.release()
            raise os_error(exc, f"opening the store in {root}") from exc
        except BaseException:
            lock_file.release()
            raise
        try:
            sqlite_tx.make_durable(
                conn, lambda c: migrate(c, root),
                lambda mode: StoreError(f"the store database in {root} cannot use WAL mode "
                                        f"(got {mode})"),
                lambda exc: _db_error(exc, f"opening the store database in {root}"))
        except BaseException:
            lock_file.release()
            raise
        log.info("store opened at %s (schema version %d)", root, SCHEMA_VERSION)
        return cls(root, conn, lock_file, clock=clock, fsync=fsync)

    def close(self) -> None:
        """Close the database and release the directory lock. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._lock_file.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- database plumbing -----------------------------------------------------------------------
    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store at {self.root} is closed")
        return self._conn

    def _transaction(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed durably or rolled back."""
        return sqlite_tx.transaction(self._lock, self._require_open,
                                     lambda exc: _db_error(exc, action))

    def _reading(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_tx.reading(self._lock, self._require_open,
                                 lambda exc: _db_error(exc, action))

    def _now(self) -> str:
        return iso_utc(self._clock())

    def _objects(self, where: str, params: Sequence[object]) -> list[ObjectRecord]:
        with self._reading("querying the instance index") as conn:
            rows = conn.execute(
                f"SELECT {OBJECT_COLUMNS} FROM instances i WHERE {where} "
                "ORDER BY i.received_at, i.sop_instance_uid",
                tuple(params),
            ).fetchall()
            return [read_object(conn, self.root, row) for row in rows]
