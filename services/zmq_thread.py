"""One ZeroMQ socket owned by one thread: the shape the publisher and the command server share.

ZeroMQ sockets are not thread-safe, so each socket is created, bound, used and closed by the one
thread :meth:`SocketThread.start` launches. ``start`` waits until the socket is bound (or binding
failed, which it raises as :class:`~igrt.core.errors.EndpointError` naming the config key) and
returns the bound endpoint (with the port chosen for ``tcp://HOST:*``). Subclasses say which
socket (:attr:`socket_type`, :meth:`configure`) and what the thread does with it (:meth:`serve`);
:meth:`stop` asks the thread to end (:meth:`request_stop`) and joins it.

CURVE (CONTRACT §10): given :class:`~services.curve.CurveKeys`, the socket is a CURVE server and
a ZAP handler on the thread's ZeroMQ context admits only the listed client keys, so an anonymous
or unlisted client completes no handshake and receives nothing. The handler is started before
the socket binds and stopped after it is closed; with CURVE each socket thread needs a context of
its own (the default), since a context has one ZAP endpoint.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Self

import zmq

from igrt.core.errors import EndpointError, IgrtError
from services.curve import CurveKeys, ZapHandler

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


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


class SocketThread(ABC):
    """Base of a thread that owns one bound ZeroMQ socket."""

    socket_type: int = zmq.PUB
    #: the config key named in binding errors, e.g. ``zmq.publish``
    config_key: str = "zmq"
    thread_name: str = "igrt-zmq"
    #: raised for misuse (started twice, endpoint asked before start)
    error_type: type[IgrtError] = IgrtError

    def __init__(self, endpoint: str, *, context: zmq.Context[Any] | None = None,
                 close_linger_ms: int = 0, curve: CurveKeys | None = None) -> None:
        self._requested = endpoint
        self._curve = curve
        self._zap: ZapHandler | None = None
        self._own_context = context is None
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context()
        self._close_linger_ms = close_linger_ms
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._startup_error: IgrtError | None = None
        self._endpoint: str | None = None

    # --- for subclasses --------------------------------------------------------------------------
    def configure(self, sock: zmq.Socket[Any]) -> None:  # noqa: B027 - optional hook
        """Set socket options before binding (``LINGER`` 0 is already set)."""

    @abstractmethod
    def serve(self, sock: zmq.Socket[Any]) -> None:
        """The thread's work with the bound socket; return to close it."""

    @abstractmethod
    def request_stop(self) -> None:
        """Make :meth:`serve` return soon (called by :meth:`stop`, on the caller's thread)."""

    def on_started(self) -> None:  # noqa: B027 - optional hook
        """Called on the caller's thread once the socket is bound."""

    def on_thread_end(self) -> None:  # noqa: B027 - optional hook
        """Called on the socket's thread after :meth:`serve` returned or failed."""

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the thread and bind; return the bound endpoint. Raises
        :class:`EndpointError` if the endpoint cannot be bound."""
        if self._thread is not None:
            raise self.error_type(f"the {self.thread_name} socket thread was already started; "
                                  "create a new one to restart")
        if self._curve is not None:
            self._zap = ZapHandler(self._curve, self._context, self.config_key)
            try:
                self._zap.start()
            except zmq.ZMQError as exc:
                self._zap = None
                raise EndpointError(f"{self.config_key}: cannot start the CURVE ZAP handler: "
                                    f"{exc} (does another socket share this ZeroMQ context?)"
                                    ) from exc
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise EndpointError(f"{self.config_key}: {self._requested!r} was not bound within "
                                f"{START_TIMEOUT_S:g} s")
        if self._startup_error is not None:
            self._thread.join()
            self._finish_context()
            raise self._startup_error
        assert self._endpoint is not None
        self.on_started()
        return self._endpoint

    def stop(self, *, timeout_s: float = 5.0) -> None:
        """Ask the thread to end, wait for it and close the context. Idempotent."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("the %s thread did not end within %g s", self.thread_name, timeout_s)
                return
        self._finish_context()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The bound endpoint (with the actual port), once started."""
        if self._endpoint is None:
            raise self.error_type(f"{self.config_key} is not bound yet; call start() first")
        return self._endpoint

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the socket's thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            sock = self._context.socket(self.socket_type)
        except zmq.ZMQError as exc:
            self._startup_error = EndpointError(
                f"{self.config_key}: cannot create a ZeroMQ socket: {exc}")
            self._ready.set()
            return
        try:
            sock.setsockopt(zmq.LINGER, 0)
            if self._curve is not None:
                self._curve.apply_server(sock)
            self.configure(sock)
            self._endpoint = bind_socket(sock, self._requested, self.config_key)
        except (EndpointError, zmq.ZMQError) as exc:
            sock.close(linger=0)
            self._startup_error = (exc if isinstance(exc, EndpointError) else EndpointError(
                f"{self.config_key}: cannot set up the socket: {exc}"))
            self._ready.set()
            return
        self._ready.set()
        try:
            self.serve(sock)
        except Exception:
            log.exception("the %s thread failed; its socket is closed", self.thread_name)
        finally:
            self.on_thread_end()
            sock.close(linger=self._close_linger_ms)

    def _finish_context(self) -> None:
        zap, self._zap = self._zap, None
        if zap is not None:
            zap.stop()
        if self._own_context and not self._context.closed:
            self._context.term()
