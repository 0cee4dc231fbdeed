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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from igrt.config import Config
from igrt.errors import IgrtError
from igrt.messages import CORRECTION_SCHEMA, Topic, encode, error_message, heartbeat_message

log = logging.getLogger(__name__)

SEND_HWM = 1000  # messages queued per subscriber before PUB drops (libzmq's default, explicit)
QUEUE_MAX = 1000  # messages waiting for the publisher thread before publish_* refuses
DEFAULT_CLOSE_LINGER_S = 1.0
START_TIMEOUT_S = 10.0
ERROR_STATE = "error"  # heartbeat state when the state or last_seq callable failed


class EndpointError(IgrtError):
    """A ZeroMQ socket cannot be bound to its configured endpoint."""

    code = "zmq_endpoint"
    default_message = "a ZeroMQ endpoint cannot be bound"


class PublishError(IgrtError):
    """A message cannot be published (publisher not running, queue full, not a message)."""

    code = "publish"
    default_message = "the message cannot be published"


def bind_socket(sock: zmq.Socket[Any], endpoint: str, key: str) -> str:
    """Bind ``sock`` to ``endpoint`` and return the endpoint actually bound (``LAST_ENDPOINT``:
    the free port chosen for ``tcp://HOST:*``). Raises :class:`EndpointError` naming ``key``."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        hint = (
            "another process (another igrt for this room?) may hold it; stop it or choose "
            "another address"
            if exc.errno == zmq.EADDRINUSE
            else "check the address"
        )
        reason = zmq.strerror(exc.errno) if exc.errno else str(exc)
        raise EndpointError(f"{key}: cannot bind {endpoint!r}: {reason}; {hint}") from exc
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


@dataclass(frozen=True)
class _Outgoing:
    topic: Topic
    payload: bytes
    seq: int | None = None


_STOP = object()  # queue marker: send what was queued before, then close


class Publisher:
    """Owns the PUB socket at ``[zmq] publish`` (or ``endpoint``, e.g. ``tcp://127.0.0.1:*``
    in tests) and its thread. ``start()`` binds and returns the bound endpoint; ``stop()`` ends.

    ``state()`` returns the service state for heartbeats (``"idle"``, ``"receiving"``,
    ``"registering"``...); ``last_seq()`` the last stored correction seq (``Store.last_seq``).
    Both are called on the publisher thread and must be thread-safe and quick.
    """

    def __init__(
        self,
        config: Config,
        *,
        state: Callable[[], str],
        last_seq: Callable[[], int],
        endpoint: str | None = None,
        context: zmq.Context[Any] | None = None,
        close_linger_s: float = DEFAULT_CLOSE_LINGER_S,
    ) -> None:
        self._room = config.room
        self._requested = endpoint if endpoint is not None else config.zmq.publish
        self._heartbeat_s = config.zmq.heartbeat_s
        self._state = state
        self._last_seq = last_seq
        self._own_context = context is None
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context()
        self._close_linger_ms = max(0, round(close_linger_s * 1000))
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_MAX)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._startup_error: IgrtError | None = None
        self._endpoint: str | None = None
        self._accepting = False
        self._lock = threading.Lock()  # guards _accepting against a concurrent stop()
        self._known_seq = 0  # last last_seq() read, reused when the callable fails
        self._callable_failed = False

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the thread, bind, send a first heartbeat; return the bound endpoint.
        Raises :class:`EndpointError` if the endpoint cannot be bound."""
        if self._thread is not None:
            raise PublishError("the publisher was already started; create a new one to restart")
        self._thread = threading.Thread(target=self._run, name="igrt-publisher", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise PublishError(f"the publisher did not bind {self._requested!r} within "
                               f"{START_TIMEOUT_S:g} s")
        if self._startup_error is not None:
            self._thread.join()
            self._finish_context()
            raise self._startup_error
        assert self._endpoint is not None
        with self._lock:
            self._accepting = True
        log.info("publishing on %s (heartbeat every %g s)", self._endpoint, self._heartbeat_s)
        return self._endpoint

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Send what was published before this call, close the socket (short linger) and end the
        thread. Idempotent; later ``publish_*`` calls raise :class:`PublishError`."""
        with self._lock:
            was_accepting, self._accepting = self._accepting, False
        if was_accepting:
            try:  # waits only while QUEUE_MAX messages are queued, for the thread to send some
                self._queue.put(_STOP, timeout=timeout_s)
            except queue.Full:
                log.error("the publisher queue stayed full for %g s; stopping anyway", timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the publisher thread did not end within %g s", timeout_s)
                return
        self._finish_context()

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The bound endpoint (with the actual port), once started."""
        if self._endpoint is None:
            raise PublishError("the publisher is not bound yet; call start() first")
        return self._endpoint

    @property
    def running(self) -> bool:
        """The thread is alive and accepts messages (for the service's watchdog)."""
        return self._accepting and self._thread is not None and self._thread.is_alive()

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
    def _run(self) -> None:
        try:
            sock = self._context.socket(zmq.PUB)
        except zmq.ZMQError as exc:
            self._startup_error = EndpointError(f"zmq.publish: cannot create a PUB socket: {exc}")
            self._ready.set()
            return
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, SEND_HWM)
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            self._endpoint = bind_socket(sock, self._requested, "zmq.publish")
        except EndpointError as exc:
            sock.close(linger=0)
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(sock)
        except Exception:
            log.exception("the publisher thread failed; no more messages are published")
        finally:
            with self._lock:
                self._accepting = False
            sock.close(linger=self._close_linger_ms)

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
        message = heartbeat_message(room=self._room, state=state, last_seq=self._known_seq)
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

    def _finish_context(self) -> None:
        if self._own_context and not self._context.closed:
            self._context.term()
