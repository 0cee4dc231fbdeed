"""Real ZeroMQ clients and the small service stand-ins the channel tests share: every receive
has a timeout and fails the test on expiry (pyzmq's own tests do the same)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from schema_check import TOPICS, check_message, check_reply

from igrt.config import Config, parse_config
from igrt.core.geometry import CouchCorrection, PatientPosition
from igrt.core.messages import Outcome, PlanRef, correction_message
from igrt.store import Store

HEARTBEAT_S = 0.2
RECEIVE_TIMEOUT_S = 5.0
FREE_PORT = "tcp://127.0.0.1:*"


def make_config(tmp_path: Path, *, room: str = "TB1", heartbeat_s: float = HEARTBEAT_S) -> Config:
    return parse_config(
        {
            "room": room,
            "zmq": {"publish": FREE_PORT, "command": FREE_PORT, "heartbeat_s": heartbeat_s},
            "storage": {"dir": str(tmp_path / "state")},
        }
    )


def correction(series_uid: str, lateral_mm: float = 2.31) -> dict[str, Any]:
    """A real correction message (seq is allocated by the store)."""
    outcome = Outcome(
        patient_id="Zoë-01",  # non-ASCII: the published bytes must still equal the stored text
        cbct_series_uid=series_uid,
        plan=PlanRef("1.2.4", (0.0, -110.0, -785.5), PatientPosition.HFS, "PELVIS"),
        measured=CouchCorrection(lateral_mm, -1.72, 3.08, 0.6, -0.49, 1.18),
    )
    return correction_message(outcome, room="TB1", dof=6, seq=0, time="2026-11-21T18:30:00.123Z")


class ServiceState:
    """The service's state as the heartbeat reads it; ``fail`` makes the reading raise."""

    def __init__(self, state: str = "idle") -> None:
        self.state = state
        self.fail = False

    def __call__(self) -> str:
        if self.fail:
            raise RuntimeError("state unavailable")
        return self.state


class Subscriber:
    """A SUB socket on all topics; every receive has a timeout and fails the test on expiry."""

    def __init__(self, context: zmq.Context[Any], endpoint: str) -> None:
        self.sock = context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[bytes]:
        if not self.poller.poll(round(timeout_s * 1000)):
            pytest.fail(f"no message within {timeout_s} s")
        frames = self.sock.recv_multipart()
        if len(frames) == 2 and frames[0].decode(errors="replace") in TOPICS:
            check_message(frames[0], frames[1])
        return frames

    def next(self, topic: str, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[bytes]:
        """The next message of ``topic``, skipping others (e.g. heartbeats)."""
        deadline = time.monotonic() + timeout_s
        while True:
            frames = self.receive(max(0.0, deadline - time.monotonic()))
            if frames[0] == topic.encode():
                return frames

    def close(self) -> None:
        self.sock.close(linger=0)


class Client:
    """A REQ socket; ``ask`` sends one request and waits (bounded) for the one reply."""

    def __init__(self, context: zmq.Context[Any], endpoint: str) -> None:
        self.sock = context.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def ask_raw(self, frames: list[bytes]) -> bytes:
        self.sock.send_multipart(frames)
        if not self.sock.poll(round(RECEIVE_TIMEOUT_S * 1000)):
            pytest.fail(f"no reply to {frames!r} within {RECEIVE_TIMEOUT_S} s")
        return self.sock.recv()

    def ask(self, request: dict[str, Any] | bytes) -> dict[str, Any]:
        raw = request if isinstance(request, bytes) else json.dumps(request).encode()
        reply: dict[str, Any] = json.loads(self.ask_raw([raw]))
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):  # the tests send such requests on purpose
            parsed = None
        check_reply(parsed if isinstance(parsed, dict) else None, reply)
        return reply

    def close(self) -> None:
        self.sock.close(linger=0)


def store_corrections(store: Store, *series_uids: str) -> None:
    """One stored correction message per CBCT series, in order (seq 1, 2, ...)."""
    for series_uid in series_uids:
        store.append_correction(correction(series_uid))
