"""The two ways igrt's sqlite databases are used (the store, the QA history): one write
transaction, durably committed or rolled back, and a read; both under the owner's lock, with a
database error turned into the owner's own error."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

ErrorOf = Callable[[sqlite3.Error], Exception]


@contextlib.contextmanager
def transaction(lock: AbstractContextManager[object], conn_of: Callable[[], sqlite3.Connection],
                error_of: ErrorOf) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
    with lock:
        conn = conn_of()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise error_of(exc) from exc


@contextlib.contextmanager
def reading(lock: AbstractContextManager[object], conn_of: Callable[[], sqlite3.Connection],
            error_of: ErrorOf) -> Iterator[sqlite3.Connection]:
    with lock:
        conn = conn_of()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise error_of(exc) from exc
