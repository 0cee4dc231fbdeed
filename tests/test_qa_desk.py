"""services.qa_desk and the QA commands: declarations checked and durable, a failed
registration of a declared phantom recorded as a failed QA run and published, a correction of
another patient left alone; requests parsed strictly by the command server."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zmq_clients import ServiceState, make_config

from igrt.config import Config
from igrt.core.errors import QaError
from igrt.core.messages import Outcome, correction_message
from igrt.store import Store
from igrt.store.qa_history import QaHistory
from services.commands import CommandServer
from services.qa_desk import QaDesk


class Desk:
    def __init__(self, config: Config, store: Store, history: QaHistory) -> None:
        self.published: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self.desk = QaDesk(config, store, history, publish_qa=self.published.put,
                           publish_error=lambda text, _ctx: self.errors.put(text))


@pytest.fixture
def desk(tmp_path: Path, store: Store) -> Iterator[Desk]:
    config = make_config(tmp_path)
    with QaHistory.open(tmp_path / "state") as history:
        d = Desk(config, store, history)
        d.desk.start()
        yield d
        d.desk.stop()


def failed(store: Store, patient_id: str) -> str:
    outcome = Outcome(patient_id=patient_id, cbct_series_uid="1.2.3.4", plan=None,
                      measured=None, reasons=("no_plan: no RT Plan for this patient",))
    store.append_correction(correction_message(outcome, room="TB1", dof=6, seq=0))
    text = store.latest_correction_json()
    assert text is not None
    return text


def test_a_failed_registration_of_a_declared_phantom_is_a_failed_run(desk: Desk,
                                                                     store: Store) -> None:
    desk.desk.declare("QA-1", {"lateral_mm": 0.0, "longitudinal_mm": -5.0, "vertical_mm": 0.0},
                      "sphere_cube")
    desk.desk.on_published(failed(store, "OTHER-PATIENT"))
    text = failed(store, "QA-1")
    desk.desk.on_published(text)
    qa = json.loads(desk.published.get(timeout=30))
    seq = json.loads(text)["seq"]
    assert (qa["seq"], qa["passed"], qa["level"], qa["measured"]) == (seq, False, "fail", None)
    assert qa["phantom"] == "sphere_cube" and qa["source"] == "service"
    assert "no_plan" in qa["findings"][0]
    assert desk.desk.result(seq) == qa
    assert desk.published.empty()  # the other patient's correction was not scored
    desk.desk.on_published(failed(store, "QA-1"))  # the declaration was used
    desk.desk.stop()
    assert desk.published.empty() and desk.errors.empty()


def test_an_implausible_declaration_is_refused(desk: Desk) -> None:
    with pytest.raises(QaError, match="not a QA offset"):
        desk.desk.declare("QA-1", {"rotation_deg": 45.0}, None)


@pytest.mark.parametrize(("request_", "error"), [
    pytest.param({"cmd": "qa_expect", "patient_id": "QA-1", "lateral_mm": 1, "vertical_mm": 0},
                 "'longitudinal_mm' is missing; it must be a number", id="missing-axis"),
    pytest.param({"cmd": "qa_expect", "patient_id": "QA-1", "lateral_mm": True,
                  "longitudinal_mm": 0, "vertical_mm": 0}, "'lateral_mm' is a JSON boolean",
                 id="bool"),
    pytest.param({"cmd": "qa_expect", "patient_id": "QA-1", "lateral_mm": 10 ** 400,
                  "longitudinal_mm": 0, "vertical_mm": 0}, "'lateral_mm' is a JSON number",
                 id="huge"),
    pytest.param({"cmd": "qa_expect", "patient_id": "QA-1", "lateral_mm": 0,
                  "longitudinal_mm": 0, "vertical_mm": 0, "yaw_deg": 1}, "unknown field "
                 "'yaw_deg'", id="unknown-field"),
    pytest.param({"cmd": "qa_result", "seq": 0}, "'seq' is a JSON number; it must be a "
                 "positive integer", id="seq-zero"),
])
def test_qa_requests_are_checked(tmp_path: Path, store: Store, desk: Desk,
                                 request_: dict[str, Any], error: str) -> None:
    server = CommandServer(make_config(tmp_path), store, state=ServiceState(), qa=desk.desk)
    reply = json.loads(server.reply_to([json.dumps(request_).encode()]))
    assert reply["ok"] is False and error in reply["error"]


def test_qa_expect_and_result_on_the_command_server(tmp_path: Path, store: Store,
                                                    desk: Desk) -> None:
    server = CommandServer(make_config(tmp_path), store, state=ServiceState(), qa=desk.desk)
    ask = {"cmd": "qa_expect", "patient_id": "QA-1", "lateral_mm": 1, "longitudinal_mm": -2.5,
           "vertical_mm": 0.0, "rotation_deg": 0.5}
    reply = json.loads(server.reply_to([json.dumps(ask).encode()]))
    assert reply["ok"] is True
    assert reply["declaration"]["expected"] == {
        "lateral_mm": 1.0, "longitudinal_mm": -2.5, "vertical_mm": 0.0, "pitch_deg": 0.0,
        "roll_deg": 0.0, "rotation_deg": 0.5}
    assert reply["declaration"]["phantom"] == "QA-1"
    none = json.loads(server.reply_to([b'{"cmd": "qa_result", "seq": 3}']))
    assert none == {"ok": True, "cmd": "qa_result", "message": None}
    bare = CommandServer(make_config(tmp_path), store, state=ServiceState())
    refused = json.loads(bare.reply_to([json.dumps(ask).encode()]))
    assert refused["ok"] is False and "no QA desk" in refused["error"]
