"""Operators' decisions on corrections (CONTRACT §7), and the corrections a review page lists.

:meth:`Decisions.decide` checks the rules (``igrt.core.decisions``) and records the decision
message in one transaction, so a decision is durable before it is published and two operators
can never both decide one seq."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from igrt.core.clock import iso_utc
from igrt.core.decisions import DecisionRequest, Superseding, check_request, decision_message
from igrt.core.json_text import to_json
from igrt.store.base import StoreBase

log = logging.getLogger(__name__)

#: Called inside the decision's transaction with the connection and the decision message (the
#: record of an approval is queued there, so that it cannot be lost between the two).
OnDecision = Callable[[sqlite3.Connection, dict[str, Any]], None]


class Decisions(StoreBase):
    def decide(self, request: DecisionRequest, *, on_decision: OnDecision | None = None,
               at: datetime | None = None) -> dict[str, Any]:
        """Record an approval or rejection (made ``at``, default now); returns the decision
        message as stored. Refusals: :class:`~igrt.core.errors.DecisionRefusedError` with the
        rule's sentence."""
        with self._transaction(f"deciding correction {request.seq}") as conn:
            correction = _message(conn, "SELECT message_json FROM corrections WHERE seq = ?",
                                  request.seq)
            decided = _message(conn, "SELECT message_json FROM decisions WHERE seq = ?",
                               request.seq)
            later = _superseding(conn, request.seq, correction)
            check_request(request, correction, decided=decided, superseded_by=later)
            assert correction is not None  # check_request refuses an unknown seq
            message = decision_message(request, correction,
                                       time=iso_utc(at) if at is not None else self._now())
            conn.execute(
                "INSERT INTO decisions (seq, decision, operator, decided_at, message_json) "
                "VALUES (?, ?, ?, ?, ?)",
                (request.seq, request.decision.value, message["operator"], message["time"],
                 to_json(message)))
            if on_decision is not None:
                on_decision(conn, message)
        log.info("correction seq %d %s", request.seq, request.decision.value)
        return message

    def decision_json(self, seq: int) -> str | None:
        """The stored text of the decision on ``seq`` (what was published), or None."""
        with self._reading(f"reading the decision on seq {seq}") as conn:
            row = conn.execute("SELECT message_json FROM decisions WHERE seq = ?",
                               (seq,)).fetchone()
        return None if row is None else str(row[0])

    def decision(self, seq: int) -> dict[str, Any] | None:
        text = self.decision_json(seq)
        return None if text is None else _loads(text)

    def superseded_by(self, seq: int) -> Superseding | None:
        """The later correction for the same CBCT or patient that supersedes ``seq``."""
        with self._reading(f"reading what supersedes correction {seq}") as conn:
            correction = _message(conn, "SELECT message_json FROM corrections WHERE seq = ?",
                                  seq)
            return _superseding(conn, seq, correction)

    def corrections_since(self, since: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """Correction messages stored at or after ``since`` (ISO UTC), newest first."""
        with self._reading("listing recent corrections") as conn:
            rows = conn.execute(
                "SELECT message_json FROM corrections WHERE stored_at >= ? ORDER BY seq DESC "
                "LIMIT ?", (since, limit)).fetchall()
        return [_loads(str(r[0])) for r in rows]


def _message(conn: sqlite3.Connection, sql: str, seq: int) -> dict[str, Any] | None:
    row = conn.execute(sql, (seq,)).fetchone()
    return None if row is None else _loads(str(row[0]))


def _superseding(conn: sqlite3.Connection, seq: int,
                 correction: dict[str, Any] | None) -> Superseding | None:
    if correction is None:
        return None
    series = (correction.get("cbct") or {}).get("series_uid")
    patient = correction.get("patient_id")
    row = conn.execute(
        "SELECT seq, series_uid FROM corrections WHERE seq > ? AND ((series_uid IS NOT NULL "
        "AND series_uid = ?) OR (patient_id IS NOT NULL AND patient_id = ?)) "
        "ORDER BY seq DESC LIMIT 1", (seq, series, patient)).fetchone()
    if row is None:
        return None
    return Superseding(seq=int(row[0]), same_cbct=row[1] is not None and row[1] == series)


def _loads(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed
