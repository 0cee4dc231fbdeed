"""The one place decisions and new registrations are carried out, for the command socket and
the review page alike: the rules are checked and the decision stored durably by the store (one
transaction, which also queues the approval's record for the record-and-verify system,
CONTRACT §8), then it is published on the ``decision`` topic. A decision that cannot be
published is still durable: ``decision`` returns it and consoles see it there."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from igrt.core.clock import iso_utc, utc_now
from igrt.core.decisions import Decision, DecisionRequest
from igrt.core.errors import CommandError, RecordError
from igrt.core.kinds import IMAGE_KINDS, Role
from igrt.core.reasons import ReasonCode, reason
from igrt.core.uids import uid_problem
from igrt.record import build_record
from igrt.store import Store
from igrt.store.records_queue import RecordObject, insert_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordDesk:
    """Where the record of an approval goes: the ``[[record.destinations]]`` AE titles, the
    room, and the sender to wake once it is queued."""

    destinations: Sequence[str]
    room: str
    sent: Callable[[], None] = lambda: None


class DecisionDesk:
    def __init__(self, store: Store, *, publish_decision: Callable[[str], None],
                 publish_error: Callable[[str, dict[str, Any]], None],
                 request_again: Callable[[str, str | None], None],
                 record: RecordDesk | None = None) -> None:
        self._store = store
        self._publish_decision = publish_decision
        self._publish_error = publish_error
        self._request_again = request_again
        self._record = record

    def decide(self, request: DecisionRequest) -> dict[str, Any]:
        """Store the decision (refusals raise ``DecisionRefusedError``) with the record of an
        approval queued in the same transaction, then publish it."""
        at = utc_now()
        on_decision = None
        record = self._build_record(request, at)
        if record is not None and self._record is not None:
            destinations = list(self._record.destinations)

            def on_decision(conn: sqlite3.Connection, _message: dict[str, Any]) -> None:
                insert_record(conn, record, destinations, iso_utc(at))

        message = self._store.decide(request, on_decision=on_decision, at=at)
        if record is not None and self._record is not None:
            self._record.sent()
        text = self._store.decision_json(request.seq)
        try:
            if text is None:
                raise RuntimeError("the stored decision could not be read back")
            self._publish_decision(text)
        except Exception as exc:  # noqa: BLE001 - durable; `decision` still serves it
            log.error("decision on seq %d stored but not published: %s", request.seq, exc)
            try:
                self._publish_error(reason(ReasonCode.PUBLISH, f"the decision on correction "
                                           f"{request.seq} could not be published: {exc}"),
                                    {"seq": request.seq})
            except Exception:  # noqa: BLE001 - the feed itself is down; the log has it
                log.exception("could not publish the error for decision %d", request.seq)
        return message

    def _build_record(self, request: DecisionRequest, at: datetime) -> RecordObject | None:
        """The record of an approval, when destinations are configured; a record that cannot be
        built does not block the approval (the therapist's decision stands): it is published as
        an ``error``, and the console and the log say the record-and-verify system lacks it."""
        if (self._record is None or not self._record.destinations
                or request.decision is not Decision.APPROVED):
            return None
        try:
            return build_record(self._store, request.seq, operator=request.operator.strip(),
                                approved_at=at, room=self._record.room)
        except RecordError as exc:
            correction = self._store.correction_by_seq(request.seq)
            if correction is None or correction.get("status") == "failed":
                return None  # the decision itself will be refused with the rule's sentence
            log.error("approval of seq %d: no record: %s", request.seq, exc.message)
            try:
                self._publish_error(exc.reason, {"seq": request.seq})
            except Exception:  # noqa: BLE001 - the log has it
                log.exception("could not publish the record error of seq %d", request.seq)
            return None

    def register_again(self, series_uid: str, plan_uid: str | None) -> None:
        """Check that ``series_uid`` is a CBCT held by the store (and ``plan_uid``, when given,
        a plan received for its patient), then queue it for registration."""
        problem = uid_problem(series_uid)
        if problem is not None:
            raise CommandError(f"register_again: series_uid {series_uid!r} is not a valid DICOM "
                               f"UID ({problem})")
        arrivals = self._store.series_arrivals(series_uid)
        if arrivals is None or arrivals.role is not Role.IMAGING \
                or arrivals.kind not in IMAGE_KINDS:
            raise CommandError(f"register_again: no CBCT series {series_uid} is stored "
                               "(only CT image series from an imaging peer can be registered)")
        if plan_uid is not None:
            plans = {r.sop_instance_uid for r in
                     self._store.plans_for_patient(arrivals.patient_id)}
            if plan_uid not in plans:
                raise CommandError(
                    f"register_again: plan {plan_uid} has not been received for this CBCT's "
                    f"patient; plans received: {', '.join(sorted(plans)) or 'none'}")
        self._request_again(series_uid, plan_uid)
        log.info("series %s queued for registration again (plan %s)", series_uid,
                 plan_uid or "as selected")
