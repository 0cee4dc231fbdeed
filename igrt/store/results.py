"""Registration jobs and correction results.

:meth:`Results.append_correction` is the only place a ``seq`` is allocated: in one transaction
with the message it numbers, so a ``seq`` never repeats, also across restarts."""
from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from igrt.core.errors import StoreError
from igrt.core.json_text import to_json
from igrt.store.base import StoreBase
from igrt.store.records import JobState, require_uid

log = logging.getLogger(__name__)

def encode_correction(message: Mapping[str, Any]) -> str:
    """The exact JSON text stored and published for a correction message (UTF-8 safe, compact,
    key order kept). NaN/Infinity and non-JSON values are refused: they must never be published."""
    try:
        return to_json(message)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the correction message cannot be stored as JSON: {exc}") from exc


class Results(StoreBase):
    # --- registration jobs -----------------------------------------------------------------------
    def claim_series(self, series_uid: str) -> bool:
        """Atomically claim a CBCT series for registration. ``True`` for the first claim of a
        Series Instance UID, and again only when its last result was ``failed`` and the series
        has been delivered again since (a later association brought its latest instance: a
        series refused in part, or that failed for want of a plan, is registered again when it
        is sent again complete); ``False`` otherwise, also across restarts. So a series is
        registered successfully (``ok`` or ``review``) at most once."""
        require_uid(series_uid, "the Series Instance UID to register")
        with self._transaction(f"claiming series {series_uid}") as conn:
            now = self._now()
            delivery = _last_delivery(conn, series_uid)
            job = conn.execute("SELECT state, status, association_id FROM jobs WHERE "
                               "series_uid = ?", (series_uid,)).fetchone()
            if job is None:
                conn.execute(
                    "INSERT INTO jobs (series_uid, state, claimed_at, updated_at, "
                    "association_id) VALUES (?, ?, ?, ?, ?)",
                    (series_uid, JobState.CLAIMED.value, now, now, delivery),
                )
                claimed, again = True, False
            else:
                state, status, registered = job
                again = (state == JobState.DONE.value and status == "failed"
                         and delivery is not None and delivery != registered)
                if again:
                    conn.execute(
                        "UPDATE jobs SET state = ?, status = NULL, claimed_at = ?, "
                        "updated_at = ?, association_id = ? WHERE series_uid = ?",
                        (JobState.CLAIMED.value, now, now, delivery, series_uid),
                    )
                claimed = again
        if again:
            log.info("series %s claimed again: its last result failed and it was sent again "
                     "(association %s)", series_uid, delivery)
        else:
            log.info("series %s %s", series_uid, "claimed" if claimed else "was already claimed")
        return claimed

    def job_state(self, series_uid: str) -> JobState | None:
        """``None`` (never claimed), ``CLAIMED`` (no result yet) or ``DONE`` (result stored)."""
        with self._reading(f"reading the job of series {series_uid}") as conn:
            row = conn.execute(
                "SELECT state FROM jobs WHERE series_uid = ?", (series_uid,)
            ).fetchone()
        return None if row is None else JobState(row[0])

    def interrupted_series(self) -> list[str]:
        """Series claimed but without a stored result (a stop interrupted their registration);
        they are never claimed again, so the worker should publish a ``failed`` for them."""
        with self._reading("listing interrupted jobs") as conn:
            rows = conn.execute(
                "SELECT series_uid FROM jobs WHERE state = ? ORDER BY claimed_at, series_uid",
                (JobState.CLAIMED.value,),
            ).fetchall()
        return [row[0] for row in rows]

    # --- correction results ----------------------------------------------------------------------
    def append_correction(self, message: Mapping[str, Any], *,
                          review_url: Callable[[int], str] | None = None) -> dict[str, Any]:
        """Number and durably store a correction message; returns it exactly as stored.

        ``seq`` = last seq + 1, allocated in the same transaction as the row, the only place a
        seq is made. A ``seq`` key already in ``message`` keeps its position and gets the value;
        otherwise it is appended. ``cbct.series_uid`` (if present) indexes the result and marks
        the series' job ``DONE``. ``review_url`` gives the review page of a seq: it is added to a
        computed (``ok``/``review``) correction as ``review_url``, in the same transaction.
        Publish :meth:`latest_correction_json` (or :func:`encode_correction` of the returned
        dict, which is the same text).
        """
        with self._transaction("storing a correction message") as conn:
            seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM corrections").fetchone()[0])
            seq += 1
            numbered = dict(message)
            numbered["seq"] = seq
            if review_url is not None and numbered.get("status") in ("ok", "review"):
                numbered["review_url"] = review_url(seq)
            text = encode_correction(numbered)
            series_uid = _series_of(numbered)
            patient = numbered.get("patient_id")
            now = self._now()
            conn.execute(
                "INSERT INTO corrections (seq, series_uid, patient_id, message_json, stored_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (seq, series_uid, patient if isinstance(patient, str) else None, text, now),
            )
            if series_uid is not None:
                status = numbered.get("status")
                conn.execute(
                    "INSERT INTO jobs (series_uid, state, claimed_at, updated_at, status) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(series_uid) DO UPDATE SET "
                    "state = excluded.state, updated_at = excluded.updated_at, "
                    "status = excluded.status",
                    (series_uid, JobState.DONE.value, now, now,
                     status if isinstance(status, str) else None),
                )
        log.info("correction seq %d stored (series %s)", seq, series_uid)
        stored: dict[str, Any] = json.loads(text)
        return stored

    def last_seq(self) -> int:
        """The highest ``seq`` ever stored, 0 when none."""
        with self._reading("reading the last seq") as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM corrections").fetchone()[0])

    def latest_correction_json(self) -> str | None:
        """The JSON text of the last correction message, byte-identical to what was stored."""
        with self._reading("reading the latest correction") as conn:
            row = conn.execute(
                "SELECT message_json FROM corrections ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def latest_correction(self) -> dict[str, Any] | None:
        """The last correction message (parsed from the stored text), or ``None``."""
        text = self.latest_correction_json()
        return None if text is None else _parse(text)

    def correction_by_seq(self, seq: int) -> dict[str, Any] | None:
        """The correction message numbered ``seq``, or ``None``."""
        with self._reading(f"reading correction seq {seq}") as conn:
            row = conn.execute(
                "SELECT message_json FROM corrections WHERE seq = ?", (seq,)
            ).fetchone()
        return None if row is None else _parse(str(row[0]))

    def correction_for_series(self, series_uid: str) -> dict[str, Any] | None:
        """The (last) correction message for this CBCT series, or ``None``."""
        with self._reading(f"reading the result of series {series_uid}") as conn:
            row = conn.execute(
                "SELECT message_json FROM corrections WHERE series_uid = ? "
                "ORDER BY seq DESC LIMIT 1",
                (series_uid,),
            ).fetchone()
        return None if row is None else _parse(str(row[0]))


def _last_delivery(conn: sqlite3.Connection, series_uid: str) -> str | None:
    """The association that delivered the series' latest instance (as ``SeriesArrivals``
    orders them)."""
    row = conn.execute(
        "SELECT association_id FROM series_associations WHERE series_uid = ? "
        "ORDER BY last_arrival_at DESC, rowid DESC LIMIT 1", (series_uid,)).fetchone()
    return None if row is None else str(row[0])


def _parse(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _series_of(message: Mapping[str, Any]) -> str | None:
    cbct = message.get("cbct")
    uid = cbct.get("series_uid") if isinstance(cbct, Mapping) else None
    return uid if isinstance(uid, str) and uid else None
