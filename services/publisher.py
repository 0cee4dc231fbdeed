"""The PUB side of CONTRACT §4: corrections, errors and heartbeats on one ZeroMQ PUB socket.

Threading model: ZeroMQ sockets are not thread-safe, so the PUB socket is created, bound, used
and closed by one thread only, the publisher thread that :meth:`Publisher.start` launches.
:meth:`Publisher.publish_correction_json` and :meth:`Publisher.publish_error` may be called from
any thread: they check the message, put it on a bounded in-process queue and return at once
(never waiting for the network). The publisher thread takes messages off that queue in order and
sends them, and sends a heartbeat whenever one is due (every ``[zmq] heartbeat_s``, at most 2 s).

Each message is two frames: the topic (UTF-8) and the JSON object (UTF-8). A correction is sent
exactly as the store holds it: the frame is the UTF-8 encoding of the stored text, byte for
byte, so it equals what the ``latest`` command returns.

Heartbeat: ``state`` and ``last_seq`` come from callables the service passes (its state and
``Store.last_seq``). Before a heartbeat reads them, everything already queued is sent, so a
heartbeat never announces a ``seq`` whose correction is still waiting in the queue. If a callable
fails, the heartbeat still goes out, with ``state`` ``"error"`` and the last ``last_seq`` read.
When the service passes a ``warnings`` callable (e.g. the disk-space watermark), every heartbeat
carries ``warnings``: a list of reasons, empty when all is well.

Shutdown: :meth:`Publisher.stop` queues a stop marker behind whatever was published before, so
those messages are sent first; the socket is then closed with a linger of
``close_linger_s`` (default 1 s) so a correction in flight at shutdown still reaches connected
subscribers, and shutdown is bounded. Send high-water mark: :data:`SEND_HWM` messages per
subscriber; at one heartbeat a second a subscriber that stops reading for about a quarter of an
hour starts losing messages (PUB drops, it never blocks); it can recover with ``latest``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from igrt.config import Config
from igrt.core.decisions import DECISION_SCHEMA
from igrt.core.errors import PublishError
from igrt.core.messages import CORRECTION_SCHEMA, Topic, encode, error_message, heartbeat_message
from igrt.core.qa import QA_SCHEMA
from services.curve import CurveKeys
from services.zmq_thread import SocketThread

log = logging.getLogger(__name__)

SEND_HWM = 1000  # messages queued per subscriber before PUB drops (libzmq's default, explicit)
QUEUE_MAX = 1000  # messages waiting for the publisher thread before publish_* refuses
DEFAULT_CLOSE_LINGER_S = 1.0
ERROR_STATE = "error"  # heartbeat state when the state or last_seq callable failed


@dataclass(frozen=True)
class _Outgoing:
    topic: Topic
    payload: bytes
    seq: int | None = None


_STOP = object()  # queue marker: send what was queued before, then close


class Publisher(SocketThread):
    """Owns the PUB socket at ``[zmq] publish`` (or ``endpoint``, e.g. ``tcp://127.0.0.1:*``
    in tests) and its thread. ``start()`` binds and returns the bound endpoint; ``stop()`` ends.

    ``state()`` returns the service state for heartbeats (``"idle"``, ``"receiving"``,
    ``"registering"``...); ``last_seq()`` the last stored correction seq (``Store.last_seq``).
    Both are called on the publisher thread and must be thread-safe and quick.
    """

    socket_type = zmq.PUB
    config_key = "zmq.publish"
    thread_name = "igrt-publisher"
    error_type = PublishError

    def __init__(
        self,
        config: Config,
        *,
        state: Callable[[], str],
        last_seq: Callable[[], int],
        warnings: Callable[[], Sequence[str]] | None = None,
        curve: CurveKeys | None = None,
        close_linger_s: float = DEFAULT_CLOSE_LINGER_S,
        endpoint: str | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        super().__init__(endpoint if endpoint is not None else config.zmq.publish,
                         context=context, close_linger_ms=max(0, round(close_linger_s * 1000)),
                         curve=curve)
        self._room = config.room
        self._heartbeat_s = config.zmq.heartbeat_s
        self._state = state
        self._last_seq = last_seq
        self._warnings = warnings
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_MAX)
        self._accepting = False
        self._lock = threading.Lock()  # guards _accepting against a concurrent stop()
        self._stop_timeout_s = 5.0
        self._known_seq = 0  # last last_seq() read, reused when the callable fails
        self._callable_failed = False

    # --- lifecycle -------------------------------------------------------------------------------
    def configure(self, sock: zmq.Socket[Any]) -> None:
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)

    def on_started(self) -> None:
        with self._lock:
            self._accepting = True
        log.info("publishing on %s (heartbeat every %g s)", self.endpoint, self._heartbeat_s)

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Send what was published before this call, close the socket (short linger) and end the
        thread. Idempotent; later ``publish_*`` calls raise :class:`PublishError`."""
        self._stop_timeout_s = timeout_s
        super().stop(timeout_s=timeout_s)

    def request_stop(self) -> None:
        with self._lock:
            was_accepting, self._accepting = self._accepting, False
        if was_accepting:
            try:  # waits only while QUEUE_MAX messages are queued, for the thread to send some
                self._queue.put(_STOP, timeout=self._stop_timeout_s)
            except queue.Full:
                log.error("the publisher queue stayed full for %g s; stopping anyway",
                          self._stop_timeout_s)

    @property
    def running(self) -> bool:
        """The thread is alive and accepts messages (for the service's watchdog)."""
        return self._accepting and self.thread_alive

    # --- publishing (any thread) -----------------------------------------------------------------
    def publish_correction_json(self, json_text: str) -> None:
        """Queue a correction for publication, exactly this text (as stored and returned by
        ``Store.latest_correction_json``). Refuses text that is not a correction message."""
        try:
            message = json.loads(json_text)
        except (TypeError, ValueError) as exc:
            raise PublishError(f"the correction to publish is not JSON text: {exc}") from None
        if not isinstance(message, dict) or message.get("schema") != CORRECTION_SCHEMA:
            raise PublishError(
                f"the text to publish as a correction is not a {CORRECTION_SCHEMA} message"
            )
        seq = message.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise PublishError(
                f"the correction to publish has seq {seq!r}; only a correction numbered by the "
                "store (seq >= 1) may be published"
            )
        self._enqueue(_Outgoing(Topic.CORRECTION, json_text.encode("utf-8"), seq))

    def publish_decision_json(self, json_text: str) -> None:
        """Queue a decision for publication, exactly this text (as stored: the decision is
        durable before it is published)."""
        try:
            message = json.loads(json_text)
        except (TypeError, ValueError) as exc:
            raise PublishError(f"the decision to publish is not JSON text: {exc}") from None
        if not isinstance(message, dict) or message.get("schema") != DECISION_SCHEMA:
            raise PublishError(f"the text to publish as a decision is not a {DECISION_SCHEMA} "
                               "message")
        self._enqueue(_Outgoing(Topic.DECISION, json_text.encode("utf-8")))

    def publish_qa_json(self, json_text: str) -> None:
        """Queue a physics QA result (``igrt/qa/v1``) for publication, exactly this text (as
        stored in the QA history: it is durable before it is published)."""
        try:
            message = json.loads(json_text)
        except (TypeError, ValueError) as exc:
            raise PublishError(f"the QA result to publish is not JSON text: {exc}") from None
        if not isinstance(message, dict) or message.get("schema") != QA_SCHEMA:
            raise PublishError(f"the text to publish as a QA result is not a {QA_SCHEMA} message")
        self._enqueue(_Outgoing(Topic.QA, json_text.encode("utf-8")))

    def publish_error(self, reason: str, context: dict[str, Any] | None = None) -> None:
        """Queue an ``error`` message (``reason``: a sentence; ``context``: extra keys such as
        ``series_uid``)."""
        message = error_message(room=self._room, reason=reason, context=context)
        try:
            payload = encode(message)
        except (TypeError, ValueError) as exc:
            raise PublishError(f"the error message cannot be encoded as JSON: {exc}") from None
        self._enqueue(_Outgoing(Topic.ERROR, payload))

    def _enqueue(self, item: _Outgoing) -> None:
        with self._lock:
            if not self.running:
                raise PublishError(
                    f"the publisher is not running; {item.topic} message not published"
                )
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                raise PublishError(
                    f"{QUEUE_MAX} messages are waiting to be published; "
                    f"{item.topic} message not published"
                ) from None

    # --- the publisher thread --------------------------------------------------------------------
    def on_thread_end(self) -> None:
        with self._lock:
            self._accepting = False

    def serve(self, sock: zmq.Socket[Any]) -> None:
        self._loop(sock)

    def _loop(self, sock: zmq.Socket[Any]) -> None:
        next_heartbeat = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_heartbeat:
                if self._drain(sock):
                    return
                self._send(sock, self._heartbeat())
                next_heartbeat = time.monotonic() + self._heartbeat_s  # no catch-up bursts
                continue
            try:
                item = self._queue.get(timeout=next_heartbeat - now)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            assert isinstance(item, _Outgoing)
            self._send(sock, item)

    def _drain(self, sock: zmq.Socket[Any]) -> bool:
        """Send everything already queued; True if the stop marker was reached."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            assert isinstance(item, _Outgoing)
            self._send(sock, item)

    def _heartbeat(self) -> _Outgoing:
        try:
            state = str(self._state())
            self._known_seq = int(self._last_seq())
            if self._callable_failed:
                log.info("heartbeat state and last_seq readable again")
                self._callable_failed = False
        except Exception:
            if not self._callable_failed:
                log.exception("cannot read the state or last_seq for the heartbeat")
                self._callable_failed = True
            state = ERROR_STATE
        warnings: list[str] | None = None
        if self._warnings is not None:
            try:
                warnings = list(self._warnings())
            except Exception:  # noqa: BLE001 - a heartbeat always goes out
                log.exception("cannot read the warnings for the heartbeat")
                warnings = []
        message = heartbeat_message(room=self._room, state=state, last_seq=self._known_seq,
                                    warnings=warnings)
        return _Outgoing(Topic.HEARTBEAT, encode(message))

    def _send(self, sock: zmq.Socket[Any], item: _Outgoing) -> None:
        try:
            sock.send_multipart([item.topic.value.encode("utf-8"), item.payload], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.error("cannot send a %s message: %s", item.topic, exc)
            return
        if item.seq is not None:
            log.info("correction seq %d published", item.seq)
        elif item.topic is Topic.ERROR:
            log.info("error message published")
