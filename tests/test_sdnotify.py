"""sd_notify client against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.sdnotify import Notifier, watchdog_interval_s


@pytest.fixture
def manager_path() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket at a short filesystem path (sun_path holds 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as tmp:
        path = str(Path(tmp) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2.0)
        try:
            yield sock, path
        finally:
            sock.close()


@pytest.fixture
def manager_abstract() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in the abstract namespace, named as systemd writes it ('@...')."""
    name = f"igrt-test-{os.getpid()}-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


CALLS: list[object] = [
    pytest.param(lambda n: n.ready(), b"READY=1", id="ready"),
    pytest.param(
        lambda n: n.ready("DICOM on 127.0.0.1:11112"),
        b"READY=1\nSTATUS=DICOM on 127.0.0.1:11112",
        id="ready-status",
    ),
    pytest.param(lambda n: n.watchdog(), b"WATCHDOG=1", id="watchdog"),
    pytest.param(lambda n: n.status("registering 1.2.3"), b"STATUS=registering 1.2.3", id="status"),
    pytest.param(lambda n: n.status("two\nlines"), b"STATUS=two lines", id="status-one-line"),
    pytest.param(lambda n: n.stopping(), b"STOPPING=1", id="stopping"),
    pytest.param(
        lambda n: n.stopping("SIGTERM"), b"STOPPING=1\nSTATUS=SIGTERM", id="stopping-status"
    ),
    pytest.param(lambda n: n.status("Zürich"), "STATUS=Zürich".encode(), id="utf8"),
]


@pytest.mark.parametrize(("call", "expected"), CALLS)
def test_messages_reach_a_path_socket(
    manager_path: tuple[socket.socket, str], call: Callable[[Notifier], bool], expected: bytes
) -> None:
    manager, path = manager_path
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        assert call(notifier) is True
    assert manager.recv(4096) == expected


@pytest.mark.parametrize(("call", "expected"), CALLS)
def test_messages_reach_an_abstract_socket(
    manager_abstract: tuple[socket.socket, str],
    call: Callable[[Notifier], bool],
    expected: bytes,
) -> None:
    manager, name = manager_abstract
    with Notifier({"NOTIFY_SOCKET": name}) as notifier:
        assert call(notifier) is True
    assert manager.recv(4096) == expected


def test_several_messages_arrive_in_order(manager_path: tuple[socket.socket, str]) -> None:
    manager, path = manager_path
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()
    assert [manager.recv(4096) for _ in range(3)] == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="unset"),
        pytest.param({"NOTIFY_SOCKET": ""}, id="empty"),
        pytest.param({"NOTIFY_SOCKET": "vsock:2:1234"}, id="unsupported"),
        pytest.param({"NOTIFY_SOCKET": "run/notify"}, id="relative"),
    ],
)
def test_without_a_usable_socket_every_call_is_a_no_op(environ: dict[str, str]) -> None:
    notifier = Notifier(environ)
    assert not notifier.enabled
    assert [notifier.ready(), notifier.watchdog(), notifier.status("x"), notifier.stopping()] == [
        False,
        False,
        False,
        False,
    ]
    notifier.close()


def test_a_vanished_socket_reports_failure_without_raising(tmp_path: Path) -> None:
    with Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        assert notifier.enabled
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False


def test_closed_notifier_sends_nothing(manager_path: tuple[socket.socket, str]) -> None:
    manager, path = manager_path
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.close()
    assert notifier.ready() is False
    manager.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        manager.recv(4096)


@pytest.mark.parametrize(
    ("environ", "pid", "expected"),
    [
        pytest.param({"WATCHDOG_USEC": "30000000"}, 1234, 30.0, id="no-pid"),
        pytest.param({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1234"}, 1234, 30.0, id="ours"),
        pytest.param({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "1234"}, 1234, 2.5, id="2.5s"),
        pytest.param({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "99"}, 1234, None, id="other"),
        pytest.param({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, 1234, None, id="bad-pid"),
        pytest.param({}, 1234, None, id="unset"),
        pytest.param({"WATCHDOG_USEC": ""}, 1234, None, id="empty"),
        pytest.param({"WATCHDOG_USEC": "0"}, 1234, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "-5"}, 1234, None, id="negative"),
        pytest.param({"WATCHDOG_USEC": "30s"}, 1234, None, id="not-int"),
    ],
)
def test_watchdog_interval(environ: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval_s(environ, pid=pid) == expected


def test_watchdog_interval_defaults_to_this_process() -> None:
    environ = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(environ) == 1.0
    assert watchdog_interval_s({**environ, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
