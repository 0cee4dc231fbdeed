"""How igrt's sqlite databases (the store, the QA history) are opened and used: made durable
and migrated once, then one write transaction, durably committed or rolled back, and a read;
both under the owner's lock, with a database error turned into the owner's own error."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

ErrorOf = Callable[[sqlite3.Error], Exception]


def make_durable(conn: sqlite3.Connection, migrate: Callable[[sqlite3.Connection], None],
                 not_wal: Callable[[str], Exception], error_of: ErrorOf) -> None:
    """WAL journal, ``synchronous=FULL``, foreign keys on, the schema migrated. On any failure
    the connection is closed and the error raised: ``not_wal(mode)`` when the file system
    refuses WAL, ``error_of(exc)`` for a database error, anything else as it is."""
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise not_wal(str(mode))
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise error_of(exc) from exc
    except BaseException:
        conn.close()
        raise


@contextlib.contextmanager
def transaction(lock: AbstractContextManager[object], conn_of: Callable[[], sqlite3.Connection],
                error_of: ErrorOf) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
    with reading(lock, conn_of, error_of) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


@contextlib.contextmanager
def reading(lock: AbstractContextManager[object], conn_of: Callable[[], sqlite3.Connection],
            error_of: ErrorOf) -> Iterator[sqlite3.Connection]:
    """The connection, under the owner's lock; a database error as the owner's error."""
    with lock:
        conn = conn_of()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise error_of(exc) from exc
