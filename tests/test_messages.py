"""igrt.core.messages: the correction message of CONTRACT §4."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from igrt.core.clock import iso_utc as format_time
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.messages import Outcome, PlanRef, correction_message, encode

PLAN = PlanRef("1.2.4", (0.0, -110.0, -785.5), PatientPosition.HFS, "PELVIS")
MEASURED = CouchCorrection(2.314, -1.716, 3.081, 0.6, -0.49, 1.18)


def message(measured: CouchCorrection | None, reasons: tuple[str, ...] = (),
            dof: int = 6) -> dict:
    outcome = Outcome(patient_id="PAT-001", cbct_series_uid="1.2.3", plan=PLAN,
                      measured=measured, reasons=reasons, patient_name="DOE^JANE",
                      cbct_acquisition_datetime="2026-11-21T18:25:41")
    return correction_message(outcome, room="TB1", dof=dof, seq=17,
                              time="2026-11-21T18:30:00.123Z")


def test_ok_message_has_the_contract_fields() -> None:
    m = message(MEASURED)
    assert m["schema"] == "igrt/correction/v1"
    assert m["seq"] == 17 and m["room"] == "TB1" and m["patient_id"] == "PAT-001"
    assert m["status"] == "ok" and m["reasons"] == []
    assert m["cbct"] == {"series_uid": "1.2.3", "acquisition_datetime": "2026-11-21T18:25:41"}
    assert m["patient_name"] == "DOE^JANE"
    assert m["plan"]["sop_instance_uid"] == "1.2.4"
    assert m["plan"]["isocenter_mm"] == [0.0, -110.0, -785.5]
    assert m["plan"]["patient_position"] == "HFS"
    assert m["measured"] == {"lateral_mm": 2.31, "longitudinal_mm": -1.72, "vertical_mm": 3.08,
                             "pitch_deg": 0.6, "roll_deg": -0.49, "rotation_deg": 1.18}
    assert m["correction"] == m["measured"]


@pytest.mark.parametrize(
    ("dof", "expected"),
    [
        pytest.param(6, (0.6, -0.49, 1.18), id="6"),
        pytest.param(4, (0.0, 0.0, 1.18), id="4"),
        pytest.param(3, (0.0, 0.0, 0.0), id="3"),
    ],
)
def test_correction_holds_what_the_couch_applies(dof: int,
                                                 expected: tuple[float, ...]) -> None:
    m = message(MEASURED, dof=dof)
    c = m["correction"]
    assert (c["pitch_deg"], c["roll_deg"], c["rotation_deg"]) == expected
    assert (c["lateral_mm"], c["longitudinal_mm"], c["vertical_mm"]) == (2.31, -1.72, 3.08)
    assert m["measured"]["pitch_deg"] == 0.6  # measured stays 6-DoF
    assert m["couch_dof"] == dof


def test_review_when_reasons() -> None:
    m = message(MEASURED, reasons=("translation_limit: too far",))
    assert m["status"] == "review" and m["reasons"] == ["translation_limit: too far"]
    assert m["correction"] is not None


def test_failed_has_null_correction_and_a_reason() -> None:
    m = message(None)
    assert m["status"] == "failed"
    assert m["correction"] is None and m["measured"] is None
    assert m["reasons"]


def test_encode_is_compact_utf8_json() -> None:
    data = encode(message(MEASURED))
    assert json.loads(data.decode("utf-8"))["seq"] == 17
    assert b": " not in data


def test_time_format_has_milliseconds_and_z() -> None:
    t = datetime(2026, 11, 21, 18, 30, 0, 123456, tzinfo=UTC)
    assert format_time(t) == "2026-11-21T18:30:00.123Z"


def test_details_cannot_overwrite_a_contract_key() -> None:
    outcome = Outcome(patient_id="PAT-001", cbct_series_uid="1.2.3", plan=PLAN,
                      measured=MEASURED, details={"status": "ok", "registration": {}})
    with pytest.raises(ValueError, match=r"contract keys \['status'\]"):
        correction_message(outcome, room="TB1", dof=6, seq=1)
