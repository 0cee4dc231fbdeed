"""The review commands of CONTRACT §7 over a real REQ socket, against a real store, with a real
PUB socket for the ``decision`` topic: approve, reject, decision, register_again, and every
refusal rule with its error sentence."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from schema_check import check_message
from zmq_clients import Client, ServiceState, Subscriber, correction, make_config

from igrt.core.kinds import InstanceKind, Role
from igrt.store import InstanceMeta, Store
from services.commands import CommandServer
from services.decision_desk import DecisionDesk
from services.publisher import Publisher

CBCT = "1.2.826.0.1.3680043.20.1"


@pytest.fixture
def again() -> list[tuple[str, str | None]]:
    return []


@pytest.fixture
def publisher(tmp_path: Path, store: Store, state: ServiceState) -> Iterator[Publisher]:
    with Publisher(make_config(tmp_path), state=state, last_seq=store.last_seq) as pub:
        yield pub


@pytest.fixture
def client(tmp_path: Path, context: zmq.Context[Any], store: Store, state: ServiceState,
           publisher: Publisher, again: list[tuple[str, str | None]]) -> Iterator[Client]:
    desk = DecisionDesk(store, publish_decision=publisher.publish_decision_json,
                        publish_error=publisher.publish_error,
                        request_again=lambda s, p: again.append((s, p)))
    with CommandServer(make_config(tmp_path), store, state=state, desk=desk) as server:
        c = Client(context, server.endpoint)
        yield c
        c.close()


@pytest.fixture
def feed(context: zmq.Context[Any], publisher: Publisher) -> Iterator[Subscriber]:
    sub = Subscriber(context, publisher.endpoint)
    sub.next("heartbeat")
    yield sub
    sub.close()


def stored(store: Store, series: str = CBCT, *, patient: str = "Zoë-01", status: str = "ok",
           reasons: tuple[str, ...] = ()) -> int:
    message = {**correction(series), "patient_id": patient, "status": status,
               "reasons": list(reasons)}
    if status == "failed":
        message.update(correction=None, measured=None)
    return int(store.append_correction(message)["seq"])


def test_approve_stores_then_publishes_the_decision(client: Client, store: Store,
                                                    feed: Subscriber) -> None:
    seq = stored(store)
    reply = client.ask({"cmd": "approve", "seq": seq, "operator": "J. Smith"})
    assert reply["ok"], reply
    decision = reply["message"]
    assert (decision["schema"], decision["seq"], decision["decision"]) == (
        "igrt/decision/v1", seq, "approved")
    assert decision["correction"]["lateral_mm"] == 2.31
    topic, body = feed.next("decision")
    assert json.loads(body) == decision
    assert body.decode() == store.decision_json(seq)  # published exactly as stored
    assert client.ask({"cmd": "decision", "seq": seq})["message"] == decision


def test_reject_with_a_reason(client: Client, store: Store, feed: Subscriber) -> None:
    seq = stored(store)
    reply = client.ask({"cmd": "reject", "seq": seq, "operator": "J. Smith",
                        "reason": "the bladder is not as planned"})
    assert reply["ok"] and reply["message"]["correction"] is None
    assert reply["message"]["reason"] == "the bladder is not as planned"
    assert json.loads(feed.next("decision")[1])["decision"] == "rejected"


def test_decision_of_an_undecided_seq_is_null(client: Client, store: Store) -> None:
    seq = stored(store)
    assert client.ask({"cmd": "decision", "seq": seq}) == {"ok": True, "cmd": "decision",
                                                           "message": None}


@pytest.mark.parametrize(
    ("setup", "request_", "error"),
    [
        pytest.param("none", {"seq": 99}, "cannot approve correction 99: no correction has this "
                     "seq", id="unknown-seq"),
        pytest.param("failed", {}, "cannot approve correction 1: it is failed, it holds no "
                     "correction to apply (reasons: no_plan: none)", id="failed"),
        pytest.param("decided", {}, "cannot approve correction 1: it was already approved by "
                     "J. Smith at", id="already-decided"),
        pytest.param("same-cbct", {}, "cannot approve correction 1: it is superseded by "
                     "correction 2 for the same CBCT; decide on that one", id="superseded-cbct"),
        pytest.param("same-patient", {}, "cannot approve correction 1: it is superseded by "
                     "correction 2 for the same patient", id="superseded-patient"),
        pytest.param("review", {}, 'cannot approve correction 1: its status is review '
                     '(at_bound: far); approving it needs "acknowledge": true',
                     id="review-without-acknowledge"),
    ],
)
def test_approval_refusals(client: Client, store: Store, feed: Subscriber, setup: str,
                           request_: dict[str, Any], error: str) -> None:
    if setup == "failed":
        stored(store, status="failed", reasons=("no_plan: none",))
    elif setup == "review":
        stored(store, status="review", reasons=("at_bound: far",))
    elif setup != "none":
        stored(store)
    if setup == "decided":
        assert client.ask({"cmd": "approve", "seq": 1, "operator": "J. Smith"})["ok"]
        feed.next("decision")
    elif setup == "same-cbct":
        stored(store)
    elif setup == "same-patient":
        stored(store, "1.2.826.0.1.3680043.20.2")
    reply = client.ask({"cmd": "approve", "seq": 1, "operator": "Other", **request_})
    assert reply["ok"] is False and reply["error"].startswith(error), reply
    assert [f for f in _decisions_within(feed, 0.5)] == []


def test_review_approved_with_acknowledge(client: Client, store: Store) -> None:
    seq = stored(store, status="review", reasons=("unstable: restart",))
    reply = client.ask({"cmd": "approve", "seq": seq, "operator": "J. Smith",
                        "acknowledge": True})
    assert reply["ok"] and reply["message"]["acknowledged"] is True


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param({"cmd": "approve", "seq": "1", "operator": "x"},
                     "approve: 'seq' is a JSON string; it must be a positive integer",
                     id="seq-str"),
        pytest.param({"cmd": "approve", "seq": 0, "operator": "x"},
                     "approve: 'seq' is a JSON number; it must be a positive integer",
                     id="seq-0"),
        pytest.param({"cmd": "approve", "seq": 1, "operator": "x", "acknowledge": "yes"},
                     "approve: 'acknowledge' is a JSON string; it must be true or false",
                     id="acknowledge-str"),
        pytest.param({"cmd": "reject", "seq": 1, "operator": "x"},
                     "reject: 'reason' is missing; it must be a non-empty string",
                     id="reject-no-reason"),
        pytest.param({"cmd": "approve", "seq": 1},
                     "approve: 'operator' is missing; it must be a non-empty string",
                     id="no-operator"),
        pytest.param({"cmd": "register_again"},
                     "register_again: 'series_uid' is missing", id="again-no-series"),
    ],
)
def test_request_errors(client: Client, request_: dict[str, Any], error: str) -> None:
    reply = client.ask(request_)
    assert reply["ok"] is False and reply["error"].startswith(error), reply


def cbct_meta(store: Store, series: str) -> None:
    store.store_instance(data=b"x", meta=InstanceMeta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid=series + ".1",
        series_uid=series, study_uid="1.2.826.0.1.3680043.20.9", patient_id="PAT-001",
        frame_of_reference_uid="1.2.826.0.1.3680043.20.8", modality="CT",
        kind=InstanceKind.CT_IMAGE, role=Role.IMAGING, calling_ae="LINAC",
        association_id="a1"))


def test_register_again_queues_a_stored_cbct(client: Client, store: Store,
                                             again: list[tuple[str, str | None]]) -> None:
    cbct_meta(store, CBCT)
    reply = client.ask({"cmd": "register_again", "series_uid": CBCT})
    assert reply == {"ok": True, "cmd": "register_again", "series_uid": CBCT, "plan_uid": None,
                     "queued": True}
    assert again == [(CBCT, None)]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param({"series_uid": "1.2.826.0.1.3680043.20.7"}, "register_again: no CBCT "
                     "series 1.2.826.0.1.3680043.20.7 is stored", id="unknown-series"),
        pytest.param({"series_uid": CBCT, "plan_uid": "1.2.3.9"}, "register_again: plan "
                     "1.2.3.9 has not been received for this CBCT's patient", id="unknown-plan"),
        pytest.param({"series_uid": "1.02"}, "register_again: series_uid '1.02' is not a valid "
                     "DICOM UID", id="invalid-uid"),
    ],
)
def test_register_again_refusals(client: Client, store: Store, request_: dict[str, Any],
                                 error: str, again: list[tuple[str, str | None]]) -> None:
    cbct_meta(store, CBCT)
    reply = client.ask({"cmd": "register_again", **request_})
    assert reply["ok"] is False and reply["error"].startswith(error), reply
    assert again == []


def _decisions_within(feed: Subscriber, seconds: float) -> list[bytes]:
    """Every decision published during ``seconds`` (heartbeats keep arriving meanwhile)."""
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if feed.sock.poll(int(left * 1000) + 1):
            frames = feed.sock.recv_multipart()
            check_message(frames[0], frames[1])
            if frames[0] == b"decision":
                out.append(frames[1])
    return out
