"""Run the real ``igrt serve`` in a subprocess on free ports with a temporary store, and talk
to it over real sockets (DICOM, ZeroMQ). Every wait has a timeout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq
from schema_check import check_message, check_reply

from igrt.config import config_to_toml, parse_config

READY_TIMEOUT_S = 60.0
#: ``igrt: ready: room TEST: DICOM IGRT@127.0.0.1:40123, publish tcp://..., command tcp://...``
READY_RE = re.compile(rb"DICOM [^@]+@[^:]+:(?P<dicom>\d+), publish (?P<publish>\S+), "
                      rb"command (?P<command>\S+), review (?P<review>\S+),")


class ServiceProcess:
    def __init__(self, directory: Path, *, settle_s: float = 0.5,
                 extra: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.env = {**os.environ, **(env or {})}
        # Every port is chosen by the service (0 / *) and read back from its ready line.
        self.dicom_port = 0
        self.publish = ""
        self.command = ""
        self.review = ""  # http://HOST:PORT of the review page
        data: dict[str, Any] = {
            "room": "TEST",
            "dicom": {"port": 0, "settle_s": settle_s},
            "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*",
                    "heartbeat_s": 0.5},
            "ui": {"listen": "127.0.0.1:0"},
            "storage": {"dir": str(directory / "state")},
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        self.config = parse_config(data)
        self.config_path = directory / "igrt.toml"
        self.config_path.write_text(config_to_toml(self.config))
        self.log_path = directory / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.context: zmq.Context[Any] = zmq.Context()

    def start(self) -> ServiceProcess:
        """Start ``igrt serve`` and return once it says it is ready (all sockets bound); the
        ports it bound are read from its ready line."""
        igrt = str(Path(sys.executable).with_name("igrt"))
        self.proc = proc = subprocess.Popen(
            [igrt, "serve", "--config", str(self.config_path)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=self.env)
        ready = threading.Event()
        ended = threading.Event()

        def copy_log() -> None:  # drains stderr into the log file, flags the ready line
            assert proc.stderr is not None
            with self.log_path.open("ab") as log:
                for line in proc.stderr:
                    log.write(line)
                    log.flush()
                    if line.startswith(b"igrt: ready"):
                        self._read_ports(line)
                        ready.set()
            ended.set()

        threading.Thread(target=copy_log, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready.wait(0.2):
                return self
            if ended.is_set():
                raise RuntimeError(f"igrt serve exited: {self.log()}")
        raise TimeoutError(f"igrt serve not ready in {READY_TIMEOUT_S} s: {self.log()}")

    def _read_ports(self, line: bytes) -> None:
        match = READY_RE.search(line)
        if match is None:
            raise RuntimeError(f"the ready line names no ports: {line!r}")
        self.dicom_port = int(match["dicom"])
        self.publish = match["publish"].decode()
        self.command = match["command"].decode()
        self.review = match["review"].decode()

    def dicom(self) -> dict[str, Any]:
        """The keyword arguments of ``services.scu.send`` / ``send_directory`` to reach it."""
        return {"host": "127.0.0.1", "port": self.dicom_port, "called_ae": "IGRT"}

    def kill(self) -> int:
        """SIGKILL, as a power cut or the OOM killer would end it."""
        if self.proc is None:
            return 0
        self.proc.kill()
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self.proc = None
        return code

    def close(self) -> None:
        self.stop()
        self.context.destroy(linger=0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- ZeroMQ ----------------------------------------------------------------------------------
    def request(self, payload: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        req = self.context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(self.command)
        try:
            req.send(json.dumps(payload).encode())
            if not req.poll(int(timeout_s * 1000)):
                raise TimeoutError(f"no reply to {payload} in {timeout_s} s")
            reply = dict(json.loads(req.recv()))
            check_reply(payload, reply)
            return reply
        finally:
            req.close()

    def subscriber(self, timeout_s: float = 10.0) -> zmq.Socket[Any]:
        """A SUB socket whose subscription is proven live (a heartbeat arrived)."""
        sub = self.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.publish)
        for topic, _ in feed_until(sub, time.monotonic() + timeout_s):
            if topic == b"heartbeat":
                return sub
        raise TimeoutError("no heartbeat on the feed")


def feed_until(sub: zmq.Socket[Any], deadline: float) -> Iterator[tuple[bytes, bytes]]:
    """Each message (topic, JSON frame) until the ``time.monotonic()`` deadline, each checked
    against the contract's schemas."""
    while time.monotonic() < deadline:
        if sub.poll(200):
            topic, body = sub.recv_multipart()
            check_message(topic, body)
            yield topic, body


def wait_for_correction(sub: zmq.Socket[Any], series_uid: str,
                        timeout_s: float = 120.0) -> tuple[dict[str, Any], bytes]:
    """The next correction message for ``series_uid`` (and its raw JSON frame)."""
    for topic, body in feed_until(sub, time.monotonic() + timeout_s):
        if topic == b"correction":
            message = json.loads(body)
            if message["cbct"]["series_uid"] == series_uid:
                return dict(message), body
    raise TimeoutError(f"no correction for {series_uid} in {timeout_s} s")


def messages_within(sub: zmq.Socket[Any], seconds: float,
                    topic: str = "correction") -> list[dict[str, Any]]:
    """Every message of ``topic`` published during ``seconds`` (to prove that none was)."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sub.poll(int(left * 1000) + 1):
            got, body = sub.recv_multipart()
            check_message(got, body)
            if got == topic.encode():
                out.append(json.loads(body))
    return out


def corrections_within(sub: zmq.Socket[Any], seconds: float) -> list[dict[str, Any]]:
    """Every correction published during ``seconds``."""
    return messages_within(sub, seconds, "correction")
