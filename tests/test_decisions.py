"""igrt.core.decisions: the rules of CONTRACT §7 for approving and rejecting a correction, and
the decision message (hand-written cases)."""

from __future__ import annotations

from typing import Any

import pytest

from igrt.core.decisions import (
    DECISION_SCHEMA,
    Decision,
    DecisionRequest,
    Superseding,
    check_request,
    decision_message,
)
from igrt.core.errors import DecisionRefusedError

SIX = {"lateral_mm": 1.0, "longitudinal_mm": -2.0, "vertical_mm": 0.5, "pitch_deg": 0.1,
       "roll_deg": 0.0, "rotation_deg": -0.3}


def correction(status: str = "ok", reasons: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"schema": "igrt/correction/v1", "seq": 7, "room": "TB1", "status": status,
            "reasons": list(reasons), "patient_id": "PAT-1", "cbct": {"series_uid": "1.2.3"},
            "correction": None if status == "failed" else SIX,
            "measured": None if status == "failed" else SIX}


def approve(**kw: Any) -> DecisionRequest:
    return DecisionRequest(**{"seq": 7, "decision": Decision.APPROVED, "operator": "J. Smith",
                              **kw})


def reject(**kw: Any) -> DecisionRequest:
    return DecisionRequest(**{"seq": 7, "decision": Decision.REJECTED, "operator": "J. Smith",
                              "reason": "patient moved", **kw})


@pytest.mark.parametrize(
    ("request_", "message", "decided", "later", "error"),
    [
        pytest.param(approve(), None, None, None, "no correction has this seq", id="unknown"),
        pytest.param(approve(), correction("failed", ("no_plan: x",)), None, None,
                     r"it is failed, it holds no correction to apply \(reasons: no_plan: x\)",
                     id="failed"),
        pytest.param(approve(), correction(), {"decision": "approved", "operator": "A",
                                               "time": "T"}, None,
                     "it was already approved by A at T", id="already-decided"),
        pytest.param(approve(), correction(), None, Superseding(9, same_cbct=True),
                     "superseded by correction 9 for the same CBCT", id="superseded-cbct"),
        pytest.param(approve(), correction(), None, Superseding(8, same_cbct=False),
                     "superseded by correction 8 for the same patient", id="superseded-patient"),
        pytest.param(approve(), correction("review", ("unstable: a restart",)), None, None,
                     r'status is review \(unstable: a restart\); approving it needs '
                     r'"acknowledge": true', id="review-without-acknowledge"),
        pytest.param(approve(operator="  "), correction(), None, None,
                     "the operator must be named", id="no-operator"),
        pytest.param(approve(operator="x" * 65), correction(), None, None,
                     "the operator must be named", id="operator-too-long"),
        pytest.param(reject(reason=" "), correction(), None, None, "give the reason",
                     id="reject-without-reason"),
        pytest.param(reject(), correction("failed"), None, None, "cannot reject correction 7: it "
                     "is failed", id="reject-failed"),
        pytest.param(reject(), correction(), None, Superseding(9, same_cbct=True),
                     "cannot reject correction 7: it is superseded", id="reject-superseded"),
    ],
)
def test_refusals(request_: DecisionRequest, message: dict[str, Any] | None,
                  decided: dict[str, Any] | None, later: Superseding | None, error: str) -> None:
    with pytest.raises(DecisionRefusedError, match=error):
        check_request(request_, message, decided=decided, superseded_by=later)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param(approve(), correction(), id="ok"),
        pytest.param(approve(acknowledge=True), correction("review", ("at_bound: far",)),
                     id="review-acknowledged"),
        pytest.param(reject(), correction("review", ("at_bound: far",)), id="reject-review"),
        pytest.param(reject(), correction(), id="reject-ok"),
    ],
)
def test_allowed(request_: DecisionRequest, message: dict[str, Any]) -> None:
    check_request(request_, message, decided=None, superseded_by=None)


def test_approval_message_holds_the_six_numbers_approved() -> None:
    m = decision_message(approve(operator=" J. Smith "), correction(), time="2026-12-01T10:00:00Z")
    assert m == {"schema": DECISION_SCHEMA, "seq": 7, "decision": "approved",
                 "operator": "J. Smith", "time": "2026-12-01T10:00:00Z", "room": "TB1",
                 "patient_id": "PAT-1", "cbct": {"series_uid": "1.2.3"}, "correction": SIX,
                 "reason": None, "status": "ok", "acknowledged": False}


def test_rejection_message_has_no_numbers_and_the_reason() -> None:
    m = decision_message(reject(), correction(), time="t")
    assert (m["decision"], m["correction"], m["reason"]) == ("rejected", None, "patient moved")
