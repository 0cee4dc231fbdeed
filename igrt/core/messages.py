"""The ZeroMQ messages of CONTRACT §4, as plain JSON-ready dicts. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from igrt.core.clock import now_text
from igrt.core.geometry import CouchCorrection, PatientPosition, restrict_to_dof
from igrt.core.json_text import to_json_bytes
from igrt.core.reasons import ReasonCode, reason

if TYPE_CHECKING:  # the case imports PlanRef from here
    from igrt.core.case import Registered

CORRECTION_SCHEMA = "igrt/correction/v1"
HEARTBEAT_SCHEMA = "igrt/heartbeat/v1"
ERROR_SCHEMA = "igrt/error/v1"


class Status(StrEnum):
    OK = "ok"
    REVIEW = "review"
    FAILED = "failed"


class Topic(StrEnum):
    CORRECTION = "correction"
    HEARTBEAT = "heartbeat"
    ERROR = "error"
    DECISION = "decision"
    QA = "qa"


@dataclass(frozen=True)
class PlanRef:
    sop_instance_uid: str
    isocenter_mm: tuple[float, float, float]
    patient_position: PatientPosition
    label: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one registration request came to, before it becomes a message. ``details`` holds
    the keys the contract leaves to igrt (``registration``, ...); they may not reuse a contract
    key."""

    patient_id: str | None
    cbct_series_uid: str | None
    plan: PlanRef | None
    measured: CouchCorrection | None  # None: failed
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    patient_name: str | None = None  # DICOM PN as written (never logged)
    cbct_acquisition_datetime: str | None = None  # ISO 8601
    #: the images' raw material (volumes and transforms); not part of the message
    registered: Registered | None = field(default=None, compare=False, repr=False)


def correction_message(outcome: Outcome, *, room: str, dof: int, seq: int,
                       time: str | None = None) -> dict[str, Any]:
    """The ``correction`` message. ``status`` is derived: failed without a measurement, review
    with a measurement and reasons, ok otherwise."""
    if outcome.measured is None:
        status = Status.FAILED
    elif outcome.reasons:
        status = Status.REVIEW
    else:
        status = Status.OK
    measured = outcome.measured.rounded() if outcome.measured is not None else None
    applied = restrict_to_dof(measured, dof) if measured is not None else None
    plan = None
    if outcome.plan is not None:
        plan = {
            "sop_instance_uid": outcome.plan.sop_instance_uid,
            "label": outcome.plan.label,
            "isocenter_mm": [round(v, 2) + 0.0 for v in outcome.plan.isocenter_mm],
            "patient_position": str(outcome.plan.patient_position),
        }
    reasons = list(outcome.reasons)
    if status is Status.FAILED and not reasons:
        reasons = [reason(ReasonCode.FAILED, "no correction was computed")]
    message: dict[str, Any] = {
        "schema": CORRECTION_SCHEMA,
        "seq": seq,
        "time": time or now_text(),
        "room": room,
        "status": str(status),
        "reasons": reasons,
        "patient_id": outcome.patient_id,
        "patient_name": outcome.patient_name,
        "cbct": {"series_uid": outcome.cbct_series_uid,
                 "acquisition_datetime": outcome.cbct_acquisition_datetime},
        "plan": plan,
        "correction": applied.as_dict() if applied is not None else None,
        "measured": measured.as_dict() if measured is not None else None,
        "couch_dof": dof,
    }
    clash = sorted(set(outcome.details) & set(message))
    if clash:
        raise ValueError(f"details may not overwrite the contract keys {clash} of a correction")
    message.update(outcome.details)
    return message


def heartbeat_message(*, room: str, state: str, last_seq: int, time: str | None = None,
                      warnings: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``heartbeat``; ``warnings`` (reasons, e.g. ``low_disk_space: ...``) when given."""
    message: dict[str, Any] = {"schema": HEARTBEAT_SCHEMA, "time": time or now_text(),
                               "room": room, "state": state, "last_seq": last_seq}
    if warnings is not None:
        message["warnings"] = list(warnings)
    return message


def error_message(*, room: str, reason: str, context: dict[str, Any] | None = None,
                  time: str | None = None) -> dict[str, Any]:
    message = {"schema": ERROR_SCHEMA, "time": time or now_text(), "room": room,
               "reason": reason}
    clash = sorted(set(context or {}) & set(message))
    if clash:
        raise ValueError(f"the context may not overwrite the keys {clash} of an error message")
    return {**message, **(context or {})}


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, key order preserved (what is stored is what is published)."""
    return to_json_bytes(message)
