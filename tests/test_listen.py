"""services.listen: ``igrt listen`` against a real publisher, command server and store.

``listen`` runs in a thread writing to a line queue (or, for Ctrl-C, in a subprocess); the test
waits for its lines with timeouts. A heartbeat line proves the listener's subscription is live
before anything is published.
"""

from __future__ import annotations

import io
import json
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq_clients import RECEIVE_TIMEOUT_S, ServiceState, correction, make_config

from igrt.config import Config
from igrt.core.errors import ConfigError
from igrt.store import Store
from services.commands import CommandServer
from services.listen import connect_endpoint, listen
from services.publisher import Publisher

REPO = Path(__file__).resolve().parents[1]


class Lines(io.StringIO):
    """A text stream whose complete lines can be awaited (with a timeout) from another thread."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: queue.Queue[str] = queue.Queue()
        self.all: list[str] = []
        self._partial = ""

    def write(self, s: str) -> int:
        self._partial += s
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.all.append(line)
            self.queue.put(line)
        return len(s)

    def next(self, topic: str | None = None, timeout_s: float = RECEIVE_TIMEOUT_S) -> str:
        """The next line (of ``topic``, skipping others)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {topic or 'line'} within {timeout_s} s; got {self.all}")
            if topic is None or line.startswith(f"{topic}\t"):
                return line


@dataclass
class Service:
    config: Config  # the endpoints actually bound
    store: Store
    publisher: Publisher

    def store_and_publish(self, series_uid: str) -> str:
        self.store.append_correction(correction(series_uid))
        text = self.store.latest_correction_json()
        assert text is not None
        self.publisher.publish_correction_json(text)
        return text


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    config = make_config(tmp_path)
    state = ServiceState()
    with Store.open(config.storage.dir) as store:
        publisher = Publisher(config, state=state, last_seq=store.last_seq)
        commands = CommandServer(config, store, state=state)
        try:
            zmq_config = replace(
                config.zmq, publish=publisher.start(), command=commands.start()
            )
            yield Service(replace(config, zmq=zmq_config), store, publisher)
        finally:
            commands.stop()
            publisher.stop()


class Listening:
    """``listen`` running in a thread; ``result()`` waits (bounded) for its exit status."""

    def __init__(self, config: Config, **kwargs: Any) -> None:
        self.out, self.err = Lines(), Lines()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, args=(config,), kwargs=kwargs)
        self.thread.start()

    def _run(self, config: Config, **kwargs: Any) -> None:
        self.status = listen(config, out=self.out, err=self.err, **kwargs)

    def result(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> int:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"listen did not end within {timeout_s} s"
        assert self.status is not None
        return self.status


# --- endpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bound", "connect"),
    [
        pytest.param("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5556", id="loopback"),
        pytest.param("tcp://*:5556", "tcp://127.0.0.1:5556", id="any-star"),
        pytest.param("tcp://0.0.0.0:5556", "tcp://127.0.0.1:5556", id="any-v4"),
        pytest.param("tcp://[::]:5556", "tcp://[::1]:5556", id="any-v6"),
        pytest.param("tcp://igrt-tb1.example:5556", "tcp://igrt-tb1.example:5556", id="host"),
        pytest.param("ipc:///run/igrt/TB1/pub", "ipc:///run/igrt/TB1/pub", id="ipc"),
    ],
)
def test_connect_endpoint(bound: str, connect: str) -> None:
    assert connect_endpoint(bound, "zmq.publish") == connect


@pytest.mark.parametrize("bound", ["tcp://127.0.0.1:*", "tcp://127.0.0.1:0", "tcp://*:*"])
def test_a_free_port_endpoint_cannot_be_connected_to(bound: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connect_endpoint(bound, "zmq.publish")
    message = (
        f"zmq.publish: {bound!r} lets the service pick a free port at start-up, so a client "
        "cannot know where to connect; configure a fixed port"
    )
    assert caught.value.message == message


def test_listen_refuses_a_free_port_configuration(tmp_path: Path) -> None:
    err = Lines()
    assert listen(make_config(tmp_path), out=Lines(), err=err) == 2
    assert err.all == [
        "igrt listen: zmq.publish: 'tcp://127.0.0.1:*' lets the service pick a free port at "
        "start-up, so a client cannot know where to connect; configure a fixed port"
    ]


# --- the feed ------------------------------------------------------------------------------------
def test_prints_the_latest_correction_then_new_ones_without_duplicates(service: Service) -> None:
    first = service.store_and_publish("1.2.3.1")  # before the listener: only `latest` has it
    run = Listening(service.config, count=1, timeout_s=20.0)
    assert run.out.next() == f"correction\t{first}"  # exactly the stored text
    heartbeat = json.loads(run.out.next("heartbeat").split("\t", 1)[1])
    assert (heartbeat["room"], heartbeat["state"], heartbeat["last_seq"]) == ("TB1", "idle", 1)
    service.publisher.publish_correction_json(first)  # a repeat of seq 1 is not printed again
    second = service.store_and_publish("1.2.3.2")
    assert run.out.next("correction") == f"correction\t{second}"
    assert run.result() == 0  # the one *new* correction was the count
    corrections = [line for line in run.out.all if line.startswith("correction\t")]
    assert corrections == [f"correction\t{first}", f"correction\t{second}"]
    assert run.err.all == []


def test_a_correction_announced_by_a_heartbeat_but_not_received_is_fetched(
    service: Service,
) -> None:
    run = Listening(service.config, count=1, timeout_s=20.0)
    run.out.next("heartbeat")
    service.store.append_correction(correction("1.2.3.1"))  # stored, never published
    text = service.store.latest_correction_json()
    assert run.out.next("correction") == f"correction\t{text}"
    assert run.result() == 0
    assert run.err.all == []


def test_a_silent_command_socket_gives_a_warning_and_the_feed_goes_on(
    service: Service, tmp_path: Path
) -> None:
    context: zmq.Context[Any] = zmq.Context()
    silent = context.socket(zmq.REP)  # bound, connected to, never answering
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind("tcp://127.0.0.1:*")
    endpoint = silent.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        config = replace(service.config, zmq=replace(service.config.zmq, command=endpoint))
        run = Listening(config, count=1, timeout_s=20.0, command_timeout_s=0.3)
        assert run.err.next() == (
            f"igrt listen: warning: the command socket at {endpoint} did not give the latest "
            "correction (no answer within 0.3 s); showing the live feed only"
        )
        run.out.next("heartbeat")
        text = service.store_and_publish("1.2.3.1")
        assert run.out.next("correction") == f"correction\t{text}"
        assert run.result() == 0
        assert len(run.err.all) == 1  # the REQ socket was discarded, not retried at once
    finally:
        silent.close(linger=0)
        context.term()


@pytest.mark.parametrize(
    ("count", "status", "timed_out"),
    [
        pytest.param(0, 0, [], id="no-count-ends-normally"),
        pytest.param(
            2,
            1,
            ["igrt listen: warning: timed out after 0.8 s with 0 of 2 new correction(s)"],
            id="count-not-reached",
        ),
    ],
)
def test_timeout_and_a_feed_from_another_room(
    service: Service, count: int, status: int, timed_out: list[str]
) -> None:
    service.store_and_publish("1.2.3.1")  # the latest is printed but is not new
    config = replace(service.config, room="TB2")
    began = time.monotonic()
    run = Listening(config, count=count, timeout_s=0.8)
    assert run.result() == status
    assert 0.8 <= time.monotonic() - began < 5.0
    assert run.err.all == [
        "igrt listen: warning: messages come from room 'TB1' but this configuration is for "
        "room 'TB2'; check [zmq] publish",
        *timed_out,
    ]
    assert run.out.all[0].startswith("correction\t")


def test_ctrl_c_ends_cleanly_with_status_0(service: Service) -> None:
    data = {
        "room": "TB1",
        "zmq": {"publish": service.config.zmq.publish, "command": service.config.zmq.command},
        "storage": {"dir": str(service.config.storage.dir)},
    }
    # Ctrl-C as a terminal delivers it: SIGINT raises KeyboardInterrupt in the child even when
    # this test runs with SIGINT ignored (a job started in the background by a script), which
    # the child would otherwise inherit
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from igrt.config import parse_config; from services.listen import listen; "
        f"sys.exit(listen(parse_config({data!r})))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        selector = selectors.DefaultSelector()
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20.0
        line = ""
        while not line.startswith("heartbeat\t"):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), "no heartbeat line from listen"
            line = proc.stdout.readline()
            assert line, f"listen exited early: {proc.poll()}"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10.0)
        assert proc.returncode == 0
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
