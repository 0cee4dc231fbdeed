"""services.commands: the REP command socket, end to end with a real store and a real REQ socket.

Every receive has a timeout; the malformed requests all go through one REQ socket, which would
fail with EFSM (or time out) if the server ever left a request unanswered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq_clients import Client, ServiceState, correction, make_config, store_corrections

from igrt.core.errors import EndpointError
from igrt.core.kinds import InstanceKind, Role
from igrt.store import InstanceMeta, Store
from services.commands import CommandServer

PLAN_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
COMMANDS = ("ping, status, latest, result, select_plan, approve, reject, decision, "
            "register_again")
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def plan_meta(sop: str, patient_id: str = "PAT-001") -> InstanceMeta:
    return InstanceMeta(
        sop_class_uid=PLAN_CLASS,
        sop_instance_uid=sop,
        series_uid=sop.rsplit(".", 1)[0],
        study_uid="1.5.1",
        patient_id=patient_id,
        frame_of_reference_uid="1.2.826.0.1.3680043.2.1",
        modality="RTPLAN",
        kind=InstanceKind.RT_PLAN,
        role=Role.PLANNING,
        calling_ae="TPS",
        association_id="tps-1",
        label="PELVIS",
    )


@pytest.fixture
def server(tmp_path: Path, store: Store, state: ServiceState) -> Iterator[CommandServer]:
    with CommandServer(make_config(tmp_path), store, state=state, queue_length=lambda: 3,
                       version="9.9-test") as srv:
        yield srv


@pytest.fixture
def client(context: zmq.Context[Any], server: CommandServer) -> Iterator[Client]:
    c = Client(context, server.endpoint)
    yield c
    c.close()


def test_ping(client: Client) -> None:
    reply = client.ask({"cmd": "ping"})
    assert reply == {"ok": True, "cmd": "ping", "room": "TB1", "time": reply["time"]}
    assert re.fullmatch(TIME_RE, reply["time"])


def test_status_reports_state_last_seq_and_the_service(
    client: Client, store: Store, state: ServiceState
) -> None:
    reply = client.ask({"cmd": "status"})
    assert reply | {"time": "T"} == {
        "ok": True,
        "cmd": "status",
        "state": "idle",
        "last_seq": 0,
        "room": "TB1",
        "version": "9.9-test",
        "time": "T",
        "queue_length": 3,
    }
    store_corrections(store, "1.2.3.1", "1.2.3.2")
    state.state = "registering"
    reply = client.ask({"cmd": "status"})
    assert (reply["state"], reply["last_seq"]) == ("registering", 2)


def test_latest_is_null_then_the_stored_message_exactly(client: Client, store: Store) -> None:
    assert client.ask({"cmd": "latest"}) == {"ok": True, "cmd": "latest", "message": None}
    store.append_correction(correction("1.2.3.1", lateral_mm=1.0))
    store.append_correction(correction("1.2.3.2", lateral_mm=-4.25))
    text = store.latest_correction_json()
    assert text is not None
    raw = client.ask_raw([b'{"cmd": "latest"}'])
    # the stored text appears verbatim (same keys, order, numbers and non-ASCII characters)
    assert raw == b'{"ok":true,"cmd":"latest","message":' + text.encode() + b"}"
    message = json.loads(raw)["message"]
    assert message == json.loads(text)
    assert (message["seq"], message["correction"]["lateral_mm"]) == (2, -4.25)


def test_result_for_a_series(client: Client, store: Store) -> None:
    store.append_correction(correction("1.2.3.1", lateral_mm=1.0))
    store.append_correction(correction("1.2.3.2", lateral_mm=-4.25))
    reply = client.ask({"cmd": "result", "series_uid": "1.2.3.1"})
    assert reply == {"ok": True, "cmd": "result", "message": store.correction_for_series("1.2.3.1")}
    assert (reply["message"]["seq"], reply["message"]["correction"]["lateral_mm"]) == (1, 1.0)
    assert client.ask({"cmd": "result", "series_uid": "1.2.3.999"}) == {
        "ok": False,
        "cmd": "result",
        "error": "no result for series 1.2.3.999: it was not registered (yet)",
    }


def test_select_plan_is_durable_and_unknown_plans_get_the_stores_reason(
    client: Client, store: Store
) -> None:
    store.store_instance(data=b"plan-a", meta=plan_meta("1.5.20.1"))
    store.store_instance(data=b"plan-b", meta=plan_meta("1.5.21.1"))
    request = {"cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.5.21.1"}
    assert client.ask(request) == {
        "ok": True, "cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.5.21.1"
    }
    assert store.selected_plan("PAT-001") == "1.5.21.1"
    assert client.ask({**request, "plan_uid": "1.5.99.1"}) == {
        "ok": False,
        "cmd": "select_plan",
        "error": "RT Plan 1.5.99.1 cannot be selected for patient 'PAT-001': no such plan was "
        "received from a planning peer; plans received for this patient: 1.5.20.1, 1.5.21.1",
    }
    assert store.selected_plan("PAT-001") == "1.5.21.1"  # unchanged by the refusal


MALFORMED = [
    pytest.param([b"not json"], None, "the request is not valid JSON: Expecting value: line 1 "
                 "column 1 (char 0)", id="not-json"),
    pytest.param([b""], None, "the request is not valid JSON: Expecting value", id="empty"),
    pytest.param([b'{"cmd": "ping"'], None, "the request is not valid JSON", id="truncated"),
    pytest.param([b"\xff\xfe{}"], None, "the request is not UTF-8 text (byte 0)", id="not-utf8"),
    pytest.param([b"[1, 2]"], None, 'the request is a JSON array, not an object such as '
                 '{"cmd": "ping"}', id="array"),
    pytest.param([b'"ping"'], None, "the request is a JSON string, not an object", id="string"),
    pytest.param([b"{}"], None, f'the request has no "cmd"; use one of {COMMANDS}', id="no-cmd"),
    pytest.param([b'{"cmd": 5}'], None, f'"cmd" is a JSON number; it must be a string, one of '
                 f"{COMMANDS}", id="cmd-number"),
    pytest.param([b'{"cmd": null}'], None, '"cmd" is a JSON null;', id="cmd-null"),
    pytest.param([b'{"cmd": "reboot"}'], None, f"unknown cmd 'reboot'; use one of {COMMANDS}",
                 id="unknown-cmd"),
    pytest.param([b'{"cmd": "PING"}'], None, "unknown cmd 'PING'", id="cmd-is-case-sensitive"),
    pytest.param([b'{"cmd": "ping"}', b"{}"], None, "the request has 2 frames; send one frame "
                 "holding one JSON object", id="two-frames"),
    pytest.param([b'{"cmd": "ping", "x": 1}'], "ping", "ping: unknown field 'x'; the fields of "
                 "ping are: none", id="ping-extra-field"),
    pytest.param([b'{"cmd": "result"}'], "result", "result: 'series_uid' is missing; it must be "
                 "a non-empty string", id="result-no-series"),
    pytest.param([b'{"cmd": "result", "series_id": "1.2.3"}'], "result", "result: unknown field "
                 "'series_id'; the fields of result are: series_uid", id="result-typo"),
    pytest.param([b'{"cmd": "result", "series_uid": 12}'], "result", "result: 'series_uid' is a "
                 "JSON number; it must be a non-empty string", id="series-number"),
    pytest.param([b'{"cmd": "result", "series_uid": " "}'], "result", "result: 'series_uid' is "
                 "an empty string; it must be a non-empty string", id="series-blank"),
    pytest.param([b'{"cmd": "result", "series_uid": "1.2.x"}'], "result", "series_uid '1.2.x' "
                 "is not a valid DICOM UID (component 3 ('x') is not made of digits 0-9)",
                 id="series-not-a-uid"),
    pytest.param([b'{"cmd": "select_plan", "patient_id": "PAT-001"}'], "select_plan",
                 "select_plan: 'plan_uid' is missing", id="select-no-plan"),
    pytest.param([b'{"cmd": "select_plan", "patient_id": ["PAT-001"], "plan_uid": "1.5"}'],
                 "select_plan", "select_plan: 'patient_id' is a JSON array", id="patient-array"),
    pytest.param([b'{"cmd": "select_plan", "patient_id": "PAT-001", "plan_uid": "1.05"}'],
                 "select_plan", "the plan UID '1.05' is not a valid DICOM UID (component 2 "
                 "('05') has a leading zero)", id="plan-not-a-uid"),
]


@pytest.mark.parametrize(("frames", "cmd", "error"), MALFORMED)
def test_malformed_requests_get_a_reason_and_the_socket_keeps_answering(
    client: Client, frames: list[bytes], cmd: str | None, error: str
) -> None:
    reply = json.loads(client.ask_raw(frames))
    assert reply["ok"] is False
    assert reply.get("cmd") == cmd
    assert reply["error"].startswith(error)
    assert set(reply) == {"ok", "error"} | ({"cmd"} if cmd else set())
    assert client.ask({"cmd": "ping"})["ok"] is True  # the REP state machine is intact


def test_a_store_failure_is_a_reply_not_a_crash(client: Client, store: Store) -> None:
    store.close()
    reply = client.ask({"cmd": "latest"})
    assert reply == {"ok": False, "cmd": "latest", "error": f"the store at {store.root} is closed"}
    assert client.ask({"cmd": "ping"})["ok"] is True


def test_an_unexpected_exception_is_a_reply_not_a_crash(
    client: Client, state: ServiceState
) -> None:
    state.fail = True
    assert client.ask({"cmd": "status"}) == {
        "ok": False,
        "cmd": "status",
        "error": "internal error while handling 'status': RuntimeError; see the log",
    }
    state.fail = False
    assert client.ask({"cmd": "status"})["state"] == "idle"


def test_an_oversized_request_gets_a_sentence_and_others_are_still_served(
    context: zmq.Context[Any], server: CommandServer, client: Client
) -> None:
    big = Client(context, server.endpoint)
    try:
        reply = big.ask(b'{"cmd": "ping", "pad": "' + b"x" * 100_000 + b'"}')
    finally:
        big.close()
    assert reply == {"ok": False, "error": "the request has 100026 bytes, more than the 65536 "
                     "a command may have; nothing was done"}
    assert client.ask({"cmd": "ping"})["ok"] is True


def test_deep_nesting_is_a_request_error_not_an_internal_one(client: Client) -> None:
    reply = client.ask(b'{"cmd": "ping", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")
    assert reply == {"ok": False, "error": "the request is nested too deeply to be a command; "
                     "send one flat JSON object such as {\"cmd\": \"ping\"}"}
    assert client.ask({"cmd": "ping"})["ok"] is True


def test_stop_is_prompt_and_the_port_is_free_again(
    tmp_path: Path, store: Store, context: zmq.Context[Any]
) -> None:
    srv = CommandServer(make_config(tmp_path), store, state=ServiceState())
    endpoint = srv.start()
    c = Client(context, endpoint)
    assert c.ask({"cmd": "status"})["version"] == metadata.version("igrt")
    c.close()
    began = time.monotonic()
    srv.stop()
    assert time.monotonic() - began < 1.0
    again = CommandServer(make_config(tmp_path), store, state=ServiceState(), endpoint=endpoint)
    assert again.start() == endpoint
    again.stop()


def test_binding_a_taken_endpoint_names_the_key(
    tmp_path: Path, store: Store, server: CommandServer
) -> None:
    second = CommandServer(
        make_config(tmp_path), store, state=ServiceState(), endpoint=server.endpoint
    )
    with pytest.raises(EndpointError, match=r"^zmq\.command: cannot bind 'tcp://127\.0\.0\.1:"):
        second.start()
