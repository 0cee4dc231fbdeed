"""The record queue (CONTRACT §8): the DICOM record of each approved correction and its delivery
to every ``[[record.destinations]]`` AE, durable across restarts.

One ``records`` row per approved seq holds the encoded Spatial Registration object, built once:
every retry sends the very same SOP instance, so a destination that received it twice (the
service stopped between its answer and our note of it) sees a re-send, never a second record.
One ``record_deliveries`` row per (seq, destination AE title) holds the attempts, the next
attempt, the last error, whether the alarm was raised and the acknowledgement.

The approval calls :func:`insert_record` inside its own transaction, the one that stores the
decision, so a decision is never stored without its record nor a record without its decision;
:meth:`RecordsQueue.queue_record` is the same in a transaction of its own. Deliveries are keyed
by AE title: the host and port are those configured when a delivery is attempted, so a record
queued before the OIS moved reaches it at its new address.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from igrt.core.errors import RecordError
from igrt.store.base import StoreBase

log = logging.getLogger(__name__)

ERROR_TEXT_MAX = 500


@dataclass(frozen=True)
class RecordObject:
    """The record of one approved correction: the encoded object (Part-10 bytes) and what it
    is about. ``approved_at``: ISO 8601 UTC text."""

    seq: int
    sop_instance_uid: str
    cbct_series_uid: str
    planning_series_uid: str
    operator: str
    approved_at: str
    data: bytes


@dataclass(frozen=True)
class Delivery:
    """The delivery of one record to one destination AE title (times: ISO 8601 UTC text)."""

    seq: int
    ae_title: str
    sop_instance_uid: str
    attempts: int
    next_attempt_at: str
    queued_at: str
    last_error: str | None
    alarmed_at: str | None
    acknowledged_at: str | None
    status: int | None

    @property
    def pending(self) -> bool:
        return self.acknowledged_at is None


_DELIVERY_COLUMNS = (
    "d.seq, d.ae_title, r.sop_instance_uid, d.attempts, d.next_attempt_at, r.queued_at, "
    "d.last_error, d.alarmed_at, d.acknowledged_at, d.status"
)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        seq=int(row[0]),
        ae_title=str(row[1]),
        sop_instance_uid=str(row[2]),
        attempts=int(row[3]),
        next_attempt_at=str(row[4]),
        queued_at=str(row[5]),
        last_error=None if row[6] is None else str(row[6]),
        alarmed_at=None if row[7] is None else str(row[7]),
        acknowledged_at=None if row[8] is None else str(row[8]),
        status=None if row[9] is None else int(row[9]),
    )


def insert_record(conn: sqlite3.Connection, record: RecordObject, destinations: Sequence[str],
                  now: str) -> None:
    """Queue ``record`` for every destination AE title, on a connection inside the caller's
    transaction (the approval's). Refuses (:class:`RecordError`) a seq that is not a stored
    correction or whose record is already queued; nothing is written then."""
    if conn.execute("SELECT 1 FROM corrections WHERE seq = ?", (record.seq,)).fetchone() is None:
        raise RecordError(f"seq {record.seq} is not a stored correction; no record is queued")
    if conn.execute("SELECT 1 FROM records WHERE seq = ?", (record.seq,)).fetchone() is not None:
        raise RecordError(f"the record of seq {record.seq} is already queued")
    conn.execute(
        "INSERT INTO records (seq, sop_instance_uid, cbct_series_uid, planning_series_uid, "
        "operator, approved_at, queued_at, object) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (record.seq, record.sop_instance_uid, record.cbct_series_uid,
         record.planning_series_uid, record.operator, record.approved_at, now, record.data),
    )
    conn.executemany(
        "INSERT INTO record_deliveries (seq, ae_title, next_attempt_at) VALUES (?, ?, ?)",
        [(record.seq, ae_title, now) for ae_title in dict.fromkeys(destinations)],
    )


class RecordsQueue(StoreBase):
    # --- queueing --------------------------------------------------------------------------------
    def queue_record(self, record: RecordObject, destinations: Sequence[str]) -> None:
        """Durably queue ``record`` for every destination AE title (its own transaction; the
        approval uses :func:`insert_record` inside the decision's)."""
        with self._transaction(f"queueing the record of seq {record.seq}") as conn:
            insert_record(conn, record, destinations, self._now())
        log.info("record %s of seq %d queued for %s", record.sop_instance_uid, record.seq,
                 ", ".join(destinations) or "no destination")

    # --- reading ---------------------------------------------------------------------------------
    def record_object(self, seq: int) -> RecordObject | None:
        with self._reading(f"reading the record of seq {seq}") as conn:
            row = conn.execute(
                "SELECT seq, sop_instance_uid, cbct_series_uid, planning_series_uid, operator, "
                "approved_at, object FROM records WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            return None
        return RecordObject(seq=int(row[0]), sop_instance_uid=row[1], cbct_series_uid=row[2],
                            planning_series_uid=row[3], operator=row[4], approved_at=row[5],
                            data=bytes(row[6]))

    def deliveries(self, *, pending_only: bool = False) -> list[Delivery]:
        """Every delivery (or the unacknowledged ones), oldest record first."""
        where = "WHERE d.acknowledged_at IS NULL " if pending_only else ""
        with self._reading("listing record deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM record_deliveries d JOIN records r USING (seq) "
                f"{where}ORDER BY d.seq, d.ae_title").fetchall()
        return [_delivery(row) for row in rows]

    def due_deliveries(self, now: str) -> list[Delivery]:
        """Unacknowledged deliveries whose next attempt is due at ``now`` (ISO text)."""
        with self._reading("listing due record deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM record_deliveries d JOIN records r USING (seq) "
                "WHERE d.acknowledged_at IS NULL AND d.next_attempt_at <= ? "
                "ORDER BY d.next_attempt_at, d.seq, d.ae_title", (now,)).fetchall()
        return [_delivery(row) for row in rows]

    def record_pending(self) -> int:
        """How many (record, destination) deliveries are not acknowledged yet."""
        with self._reading("counting pending records") as conn:
            return int(conn.execute(
                "SELECT COUNT(*) FROM record_deliveries WHERE acknowledged_at IS NULL"
            ).fetchone()[0])

    # --- delivery outcomes -----------------------------------------------------------------------
    def delivery_acknowledged(self, seq: int, ae_title: str, status: int) -> None:
        """The destination answered the C-STORE with a success or warning ``status``."""
        with self._transaction(f"recording the delivery of seq {seq} to {ae_title}") as conn:
            conn.execute(
                "UPDATE record_deliveries SET attempts = attempts + 1, acknowledged_at = ?, "
                "status = ?, last_error = NULL WHERE seq = ? AND ae_title = ?",
                (self._now(), status, seq, ae_title))
        log.info("record of seq %d acknowledged by %s (status 0x%04X)", seq, ae_title, status)

    def delivery_failed(self, seq: int, ae_title: str, error: str, next_attempt_at: str) -> None:
        """One attempt failed with ``error``; try again at ``next_attempt_at`` (ISO text)."""
        with self._transaction(f"recording a failed delivery of seq {seq}") as conn:
            conn.execute(
                "UPDATE record_deliveries SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE seq = ? AND ae_title = ?",
                (error[:ERROR_TEXT_MAX], next_attempt_at, seq, ae_title))

    def delivery_alarmed(self, seq: int, ae_title: str) -> None:
        """The overdue alarm of this delivery was raised (it is raised once)."""
        with self._transaction(f"recording the alarm of seq {seq}") as conn:
            conn.execute(
                "UPDATE record_deliveries SET alarmed_at = ? WHERE seq = ? AND ae_title = ?",
                (self._now(), seq, ae_title))
