"""services.publisher: the PUB socket, on real ZeroMQ sockets bound to free ports.

No sleeps: a subscriber first waits for a heartbeat, which proves its subscription has reached
the publisher, and only then is a message published and expected. Every receive has a timeout.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq_clients import (
    HEARTBEAT_S,
    RECEIVE_TIMEOUT_S,
    ServiceState,
    Subscriber,
    correction,
    make_config,
    store_corrections,
)

from igrt.config import default_config
from igrt.core.errors import EndpointError
from igrt.core.geometry import CouchCorrection
from igrt.core.json_text import to_json
from igrt.physics_qa import score_correction
from igrt.store import Store
from services.publisher import Publisher, PublishError


@pytest.fixture
def publisher(tmp_path: Path, store: Store, state: ServiceState) -> Iterator[Publisher]:
    with Publisher(make_config(tmp_path), state=state, last_seq=store.last_seq) as pub:
        yield pub


@pytest.fixture
def subscriber(context: zmq.Context[Any], publisher: Publisher) -> Iterator[Subscriber]:
    sub = Subscriber(context, publisher.endpoint)
    sub.next("heartbeat")  # the subscription is live from here on
    yield sub
    sub.close()


def heartbeat_times(sub: Subscriber, n: int) -> list[tuple[float, dict[str, Any]]]:
    received = []
    for _ in range(n):
        frames = sub.next("heartbeat")
        received.append((time.monotonic(), json.loads(frames[1])))
    return received


def sent_at(message: dict[str, Any]) -> float:
    return datetime.strptime(message["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


# --- binding -------------------------------------------------------------------------------------
def test_binds_a_free_port_from_the_config_and_reports_it(tmp_path: Path) -> None:
    pub = Publisher(make_config(tmp_path), state=ServiceState(), last_seq=lambda: 0)
    endpoint = pub.start()
    try:
        assert re.fullmatch(r"tcp://127\.0\.0\.1:[0-9]+", endpoint)
        assert pub.endpoint == endpoint and pub.running
    finally:
        pub.stop()
    assert not pub.running


def test_binding_a_taken_endpoint_names_the_key(tmp_path: Path, publisher: Publisher) -> None:
    taken = publisher.endpoint  # the override wins over the config's free port, and is taken
    config = make_config(tmp_path)
    second = Publisher(config, state=ServiceState(), last_seq=lambda: 0, endpoint=taken)
    with pytest.raises(EndpointError) as caught:
        second.start()
    assert caught.value.message == (
        f"zmq.publish: cannot bind {taken!r}: Address already in use; another process "
        "(another igrt for this room?) may hold it; stop it or choose another address"
    )
    assert not second.running


# --- heartbeats ----------------------------------------------------------------------------------
def test_heartbeats_come_every_interval_with_state_and_last_seq(
    subscriber: Subscriber, store: Store, state: ServiceState
) -> None:
    beats = heartbeat_times(subscriber, 4)
    for (t0, m0), (t1, m1) in zip(beats, beats[1:], strict=False):
        assert t1 - t0 <= HEARTBEAT_S + 0.5  # received in time (margin for a loaded machine)
        assert sent_at(m1) - sent_at(m0) >= HEARTBEAT_S - 0.002  # and not in a burst
    assert beats[-1][1] | {"time": "T"} == {"schema": "igrt/heartbeat/v1", "time": "T",
                                            "room": "TB1", "state": "idle", "last_seq": 0}
    store_corrections(store, "1.2.3.1", "1.2.3.2")
    state.state = "registering"
    # the change shows in the first heartbeat read after it, at the latest the second one
    later = [m for _, m in heartbeat_times(subscriber, 2)]
    assert (later[-1]["state"], later[-1]["last_seq"]) == ("registering", 2)


def test_a_failing_state_reading_still_sends_heartbeats_marked_error(
    subscriber: Subscriber, store: Store, state: ServiceState
) -> None:
    store.append_correction(correction("1.2.3.1"))
    assert heartbeat_times(subscriber, 2)[-1][1]["last_seq"] == 1
    state.fail = True
    failing = heartbeat_times(subscriber, 2)[-1][1]
    assert (failing["state"], failing["last_seq"]) == ("error", 1)
    state.fail = False
    assert heartbeat_times(subscriber, 2)[-1][1]["state"] == "idle"


# --- corrections and errors ----------------------------------------------------------------------
def test_a_correction_is_published_byte_identical_to_the_stored_text(
    subscriber: Subscriber, publisher: Publisher, store: Store
) -> None:
    store.append_correction(correction("1.2.3.1"))
    text = store.latest_correction_json()
    assert text is not None and "Zoë-01" in text
    publisher.publish_correction_json(text)
    frames = subscriber.next("correction")
    assert frames == [b"correction", text.encode("utf-8")]
    assert json.loads(frames[1]) == store.latest_correction()
    assert json.loads(frames[1])["seq"] == 1


def test_an_error_message_carries_reason_and_context(
    subscriber: Subscriber, publisher: Publisher
) -> None:
    publisher.publish_error("no_plan: no RT Plan is available for patient", {"series_uid": "1.2.3"})
    frames = subscriber.next("error")
    message = json.loads(frames[1])
    assert message | {"time": "T"} == {
        "schema": "igrt/error/v1",
        "time": "T",
        "room": "TB1",
        "reason": "no_plan: no RT Plan is available for patient",
        "series_uid": "1.2.3",
    }


def test_corrections_from_many_threads_all_arrive_in_seq_order_per_thread(
    subscriber: Subscriber, publisher: Publisher, store: Store
) -> None:
    texts: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(5):
            with lock:  # store then publish as one step, as the worker does
                store.append_correction(correction(f"1.2.{t}.{i + 1}"))
                text = store.latest_correction_json()
                assert text is not None
                texts.append(text)
                publisher.publish_correction_json(text)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(1, 4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(RECEIVE_TIMEOUT_S)
    received = [subscriber.next("correction")[1].decode() for _ in range(15)]
    assert received == texts
    assert [json.loads(t)["seq"] for t in received] == list(range(1, 16))


def test_what_was_published_before_stop_is_still_sent(
    subscriber: Subscriber, publisher: Publisher, store: Store
) -> None:
    store.append_correction(correction("1.2.3.1"))
    text = store.latest_correction_json()
    assert text is not None
    publisher.publish_correction_json(text)
    publisher.stop()  # immediately: the queued correction goes out before the socket closes
    assert subscriber.next("correction")[1] == text.encode()
    with pytest.raises(PublishError, match="the publisher is not running; correction message"):
        publisher.publish_correction_json(text)
    publisher.stop()  # idempotent


def test_publishing_before_start_is_refused(tmp_path: Path) -> None:
    pub = Publisher(make_config(tmp_path), state=ServiceState(), last_seq=lambda: 0)
    with pytest.raises(PublishError, match="not running; error message not published"):
        pub.publish_error("x")
    with pytest.raises(PublishError, match="call start"):
        _ = pub.endpoint
    pub.stop()


def _numbered(seq: object) -> str:
    return json.dumps({**correction("1.2.3"), "seq": seq})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("seq 17", "the correction to publish is not JSON text: Expecting value",
                     id="not-json"),
        pytest.param("[1, 2]", "the text to publish as a correction is not a "
                     "igrt/correction/v1 message", id="not-an-object"),
        pytest.param('{"schema": "igrt/heartbeat/v1", "seq": 3}', "is not a igrt/correction/v1",
                     id="a-heartbeat"),
        pytest.param(_numbered(None), "has seq None; only a correction numbered by the store",
                     id="unnumbered"),
        pytest.param(_numbered(0), "has seq 0;", id="seq-zero"),
        pytest.param(_numbered(True), "has seq True;", id="seq-boolean"),
        pytest.param(_numbered("4"), "has seq '4';", id="seq-string"),
    ],
)
def test_only_numbered_correction_messages_are_published(
    publisher: Publisher, text: str, error: str
) -> None:
    with pytest.raises(PublishError) as caught:
        publisher.publish_correction_json(text)
    assert error in caught.value.message


def test_a_qa_result_is_published_on_its_topic_as_stored(
    subscriber: Subscriber, publisher: Publisher
) -> None:
    measured = correction("1.2.3.4")
    run = score_correction({**measured, "seq": 7}, CouchCorrection(2.3, -1.7, 3.1, 0.6, -0.5, 1.2),
                           default_config(environ={}), source="service", phantom="Zoë",
                           extra={"seq": 7, "run_id": 3})
    text = to_json(run)
    publisher.publish_qa_json(text)
    assert subscriber.next("qa") == [b"qa", text.encode("utf-8")]
    for wrong in ("not json", '{"schema": "igrt/correction/v1"}', "[]"):
        with pytest.raises(PublishError, match="QA result"):
            publisher.publish_qa_json(wrong)
