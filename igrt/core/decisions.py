"""The operator's decision on a correction (CONTRACT §7): the rules an approval or a rejection
must pass, and the ``decision`` message. Pure: the store applies the rules inside the
transaction that records the decision, so two operators can never both decide one seq."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from igrt.core.errors import DecisionRefusedError

DECISION_SCHEMA = "igrt/decision/v1"
OPERATOR_MAX_CHARS = 64
REASON_MAX_CHARS = 1024


class Decision(StrEnum):
    """What the operator decided about a correction (CONTRACT §7)."""

    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class DecisionRequest:
    """What an operator asks for (a command, or the review page after the PIN check)."""

    seq: int
    decision: Decision
    operator: str
    acknowledge: bool = False  # the reasons of a ``review`` correction were looked at
    reason: str | None = None  # why a correction is rejected


@dataclass(frozen=True)
class Superseding:
    """A later correction that supersedes the one decided on, and why (same CBCT or patient)."""

    seq: int
    same_cbct: bool


def check_request(request: DecisionRequest, correction: Mapping[str, Any] | None, *,
                  decided: Mapping[str, Any] | None, superseded_by: Superseding | None) -> None:
    """Refuse (:class:`DecisionRefusedError`, a sentence naming the rule) a decision that the
    contract forbids: unknown seq, a ``failed`` correction, one already decided, one superseded
    by a later correction for the same CBCT or patient, a ``review`` approved without
    ``acknowledge``; an operator name is needed, and a reason for a rejection."""
    seq = request.seq
    verb = "approve" if request.decision is Decision.APPROVED else "reject"
    operator = request.operator.strip()
    if not operator or len(operator) > OPERATOR_MAX_CHARS or not operator.isprintable():
        raise DecisionRefusedError(
            f"cannot {verb} correction {seq}: the operator must be named (1 to "
            f"{OPERATOR_MAX_CHARS} printable characters)")
    if correction is None:
        raise DecisionRefusedError(f"cannot {verb} correction {seq}: no correction has this seq")
    status = correction.get("status")
    if status == "failed":
        raise DecisionRefusedError(
            f"cannot {verb} correction {seq}: it is failed, it holds no correction to apply "
            "(reasons: " + "; ".join(correction.get("reasons") or []) + ")")
    if decided is not None:
        raise DecisionRefusedError(
            f"cannot {verb} correction {seq}: it was already {decided.get('decision')} by "
            f"{decided.get('operator')} at {decided.get('time')}")
    if superseded_by is not None:
        what = "CBCT" if superseded_by.same_cbct else "patient"
        raise DecisionRefusedError(
            f"cannot {verb} correction {seq}: it is superseded by correction "
            f"{superseded_by.seq} for the same {what}; decide on that one")
    if request.decision is Decision.APPROVED and status == "review" and not request.acknowledge:
        raise DecisionRefusedError(
            f"cannot approve correction {seq}: its status is review ("
            + "; ".join(correction.get("reasons") or []) + '); approving it needs '
            '"acknowledge": true, once the reasons were looked at')
    if request.decision is Decision.REJECTED:
        text = (request.reason or "").strip()
        if not text or len(text) > REASON_MAX_CHARS:
            raise DecisionRefusedError(
                f"cannot reject correction {seq}: give the reason (1 to {REASON_MAX_CHARS} "
                "characters)")


def decision_message(request: DecisionRequest, correction: Mapping[str, Any], *,
                     time: str) -> dict[str, Any]:
    """The ``decision`` message; ``correction`` holds the six numbers approved (null for a
    rejection, which gives the ``reason``)."""
    cbct = correction.get("cbct") or {}
    approved = request.decision is Decision.APPROVED
    return {
        "schema": DECISION_SCHEMA,
        "seq": request.seq,
        "decision": request.decision.value,
        "operator": request.operator.strip(),
        "time": time,
        "room": correction.get("room"),
        "patient_id": correction.get("patient_id"),
        "cbct": {"series_uid": cbct.get("series_uid")},
        "correction": dict(correction["correction"]) if approved else None,
        "reason": None if approved else (request.reason or "").strip(),
        "status": correction.get("status"),
        "acknowledged": bool(request.acknowledge) if approved else False,
    }
