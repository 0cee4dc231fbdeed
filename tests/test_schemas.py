"""schemas/: the JSON Schemas integrators code against. Each is a valid draft 2020-12 schema
whose $id names the message's ``schema`` value; every command the service accepts has a
request and a reply schema that match the code's field table; messages built by the code
validate, and messages that break the contract do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from schema_check import BASE, SCHEMAS, TOPICS, check, check_reply

from igrt.config import default_config
from igrt.core.decisions import Decision, DecisionRequest, decision_message
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.messages import (
    Outcome,
    PlanRef,
    correction_message,
    error_message,
    heartbeat_message,
)
from igrt.physics_qa import score_correction
from services.command_requests import COMMANDS

ALL = sorted(SCHEMAS.rglob("*.schema.json"))
SIX = CouchCorrection(2.31, -1.72, 3.08, 0.6, -0.49, 1.18)


def ok_correction() -> dict[str, Any]:
    outcome = Outcome(patient_id="PAT-001", cbct_series_uid="1.2.3",
                      plan=PlanRef("1.2.4", (0.0, -110.0, -785.5), PatientPosition.HFS, "PEL"),
                      measured=SIX, patient_name="DOE^JANE",
                      cbct_acquisition_datetime="2026-11-21T18:25:41",
                      details={"registration": {"elapsed_s": 1.2}})
    message = correction_message(outcome, room="TB1", dof=6, seq=17)
    message["review_url"] = "http://127.0.0.1:8765/review/17"
    return message


def failed_correction() -> dict[str, Any]:
    outcome = Outcome(patient_id=None, cbct_series_uid="1.2.3", plan=None, measured=None,
                      reasons=("no_plan: no RT Plan",))
    return correction_message(outcome, room="TB1", dof=6, seq=18)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_each_schema_is_valid_draft_2020_12(path: Path) -> None:
    contents = json.loads(path.read_text())
    Draft202012Validator.check_schema(contents)
    assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert contents["$id"].startswith(BASE)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_message_schema_ids_name_the_schema_value(topic: str) -> None:
    contents = json.loads((SCHEMAS / f"{topic}.schema.json").read_text())
    assert contents["$id"] == BASE + TOPICS[topic]
    assert contents["properties"]["schema"]["const"] == TOPICS[topic]


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_each_command_has_schemas_matching_its_fields(cmd: str) -> None:
    request = json.loads((SCHEMAS / "commands" / f"{cmd}.request.schema.json").read_text())
    fields = COMMANDS[cmd]
    assert set(request["properties"]) == {"cmd"} | {f.name for f in fields}
    assert set(request["required"]) == {"cmd"} | {f.name for f in fields if f.required}
    kinds = {str: "string", int: "integer", bool: "boolean", float: "number"}
    for f in fields:
        assert request["properties"][f.name]["type"] == kinds[f.kind], (cmd, f.name)
    assert (SCHEMAS / "commands" / f"{cmd}.reply.schema.json").exists()


def test_no_schema_for_a_command_that_does_not_exist() -> None:
    documented = {p.name.split(".")[0] for p in (SCHEMAS / "commands").glob("*.schema.json")}
    assert documented == set(COMMANDS) | {"failure"}


def test_messages_the_code_builds_validate() -> None:
    check("igrt/correction/v1", ok_correction())
    check("igrt/correction/v1", failed_correction())
    check("igrt/heartbeat/v1", heartbeat_message(room="TB1", state="idle", last_seq=3))
    check("igrt/error/v1", error_message(room="TB1", reason="worker: the disk is full",
                                         context={"series_uid": "1.2.3"}))
    request = DecisionRequest(seq=17, decision=Decision.APPROVED, operator="J. Smith")
    check("igrt/decision/v1", decision_message(request, ok_correction(), time=ok_correction()
                                               ["time"]))
    rejected = DecisionRequest(seq=17, decision=Decision.REJECTED, operator="J. Smith",
                               reason="moved")
    check("igrt/decision/v1", decision_message(rejected, ok_correction(), time="2026-11-21T"
                                               "18:30:00.123Z"))


def qa_run(correction: dict[str, Any], **extra: Any) -> dict[str, Any]:
    expected = CouchCorrection(2.0, -1.5, 3.0, 0.0, 0.0, 0.0)
    return score_correction(correction, expected, default_config(environ={}), source="service",
                            phantom="iq_cylinder", extra={"seq": correction["seq"], **extra})


def test_qa_messages_the_code_builds_validate() -> None:
    check("igrt/qa/v1", qa_run(ok_correction(), declared_at="2026-11-21T18:20:00.000Z",
                               registration_s=1.2))
    failed = qa_run(failed_correction())
    assert failed["measured"] is None and failed["passed"] is False
    check("igrt/qa/v1", failed)
    with pytest.raises(ValidationError):
        check("igrt/qa/v1", {**failed, "passed": True})  # no measurement never passes
    with pytest.raises(ValidationError):
        check("igrt/qa/v1", {**qa_run(ok_correction()), "level": "fine"})


def broken(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(message)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("message", "path", "value"),
    [
        pytest.param(ok_correction(), ("seq",), KeyError, id="no-seq"),
        pytest.param(ok_correction(), ("status",), "maybe", id="unknown-status"),
        pytest.param(ok_correction(), ("correction", "lateral_mm"), "2.31", id="number-as-text"),
        pytest.param(ok_correction(), ("correction",), None, id="ok-without-numbers"),
        pytest.param(failed_correction(), ("reasons",), [], id="failed-without-reason"),
        pytest.param(ok_correction(), ("time",), "2026-11-21 18:30", id="time-format"),
        pytest.param(ok_correction(), ("surprise",), 1, id="undocumented-key"),
        pytest.param(ok_correction(), ("plan", "patient_position"), "HFDL", id="position"),
    ],
)
def test_messages_that_break_the_contract_do_not_validate(
        message: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(ValidationError):
        check("igrt/correction/v1", broken(message, path, value))


def test_replies_validate_by_their_command() -> None:
    check_reply({"cmd": "ping"}, {"ok": True, "cmd": "ping", "room": "TB1",
                                  "time": "2026-11-21T18:30:00.123Z"})
    check_reply({"cmd": "latest"}, {"ok": True, "cmd": "latest", "message": None})
    check_reply({"cmd": "nonsense"}, {"ok": False, "error": "unknown cmd 'nonsense'"})
    with pytest.raises(ValidationError):
        check_reply({"cmd": "ping"}, {"ok": True, "cmd": "ping"})  # no room and time
    with pytest.raises(ValidationError):
        check_reply({"cmd": "ping"}, {"ok": False})  # a failure says why
