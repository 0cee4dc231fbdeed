"""services.listen_pretty: the human view of the feed (hand-written expected text)."""

from __future__ import annotations

from services.listen_pretty import Pretty, correction_block, decision_line

SIX = {"lateral_mm": 2.31, "longitudinal_mm": -1.72, "vertical_mm": 3.08, "pitch_deg": 0.6,
       "roll_deg": -0.49, "rotation_deg": 1.18}


def test_a_correction_block_aligns_the_six_numbers() -> None:
    m = {"seq": 17, "status": "review", "time": "2026-11-21T18:30:00.123Z", "room": "TB1",
         "patient_id": "PAT-001", "patient_name": "DOE^JANE", "reasons": ["at_bound: far"],
         "plan": {"label": "PELVIS", "sop_instance_uid": "1.2.4", "patient_position": "HFS"},
         "cbct": {"series_uid": "1.2.3", "acquisition_datetime": "2026-11-21T18:25:00"},
         "correction": {**SIX, "pitch_deg": 0.0, "roll_deg": 0.0}, "measured": SIX,
         "review_url": "http://127.0.0.1:8765/review/17"}
    lines = correction_block(m).splitlines()
    assert lines[1] == "correction 17  REVIEW  2026-11-21T18:30:00.123Z  room TB1"
    assert lines[2] == "  patient   PAT-001  DOE^JANE"
    assert lines[3] == "  plan      PELVIS 1.2.4 HFS"
    assert lines[4] == "  CBCT      1.2.3 acquired 2026-11-21T18:25:00"
    assert lines[5] == "  reason    at_bound: far"
    assert lines[7] == "  lateral (mm)       +2.31     +2.31"
    assert lines[10] == "  pitch (°)          +0.00     +0.60"
    assert lines[-1] == "  review    http://127.0.0.1:8765/review/17"


def test_a_failed_correction_has_no_numbers() -> None:
    text = correction_block({"seq": 3, "status": "failed", "reasons": ["no_plan: none"],
                             "correction": None, "measured": None, "cbct": {}})
    assert "FAILED" in text and "no_plan: none" in text and "lateral" not in text


def test_decisions_and_heartbeat_changes() -> None:
    p = Pretty()
    assert decision_line({"seq": 4, "decision": "rejected", "operator": "A", "time": "t",
                          "patient_id": "P", "reason": "moved"}) == \
        "REJECTED correction 4 by A at t (patient P): moved"
    beat = {"room": "TB1", "state": "idle", "last_seq": 4}
    assert p.format("heartbeat", beat) == "service TB1: idle (last seq 4)"
    assert p.format("heartbeat", beat) is None  # unchanged: not shown again
    assert p.format("heartbeat", {**beat, "state": "registering"}) is not None
    assert p.format("error", {"time": "t", "reason": "worker: full"}) == "ERROR t  worker: full"


def test_qa_lines() -> None:
    diff = {"lateral_mm": 0.05, "longitudinal_mm": -1.2, "vertical_mm": 0.0, "pitch_deg": 0.0,
            "roll_deg": 0.1, "rotation_deg": -0.2}
    text = Pretty().format("qa", {"seq": 9, "level": "fail", "phantom": "sphere_cube",
                                  "difference": diff, "vector_error_mm": 1.2,
                                  "findings": ["longitudinal off by -1.20 mm"]})
    assert text == ("QA FAIL correction 9 (sphere_cube): lat +0.05 long -1.20 vert +0.00 mm, "
                    "vector 1.2 mm, pitch +0.00 roll +0.10 rot -0.20°\n"
                    "  longitudinal off by -1.20 mm")
    failed = Pretty().format("qa", {"seq": 3, "level": "fail", "phantom": "P",
                                    "difference": None})
    assert failed == "QA FAIL correction 3 (P): no measurement"
