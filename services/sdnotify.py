"""A minimal sd_notify(3) client: tell systemd the service is ready, alive, busy or stopping.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: a unix datagram socket, either a
path (``/run/systemd/notify``) or a name in the abstract namespace (``@/org/...``). Each message is
one datagram of newline-separated ``KEY=value`` assignments. Without ``$NOTIFY_SOCKET`` (not run
by systemd) every call is a no-op that returns False, so the service runs the same in a terminal.

The watchdog: with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``);
:func:`watchdog_interval_s` reads it. Send :meth:`Notifier.watchdog` from the loop that does the
work, at least every half of that interval, so that a hung loop gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from types import TracebackType

logger = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the service manager named by ``$NOTIFY_SOCKET``.

    Thread-safe. Create one at start-up (``Notifier()`` reads ``os.environ``) and pass it on.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        """True when a service manager is listening (``$NOTIFY_SOCKET`` was usable)."""
        return self._socket is not None

    def notify(self, message: str) -> bool:
        """Send one raw message (``"READY=1\\nSTATUS=..."``); True if it was delivered."""
        with self._lock:
            if self._socket is None or self._address is None:
                return False
            try:
                self._socket.sendto(message.encode("utf-8"), self._address)
            except OSError as exc:
                # Log the first failure of a run loudly; a watchdog ping repeats every few seconds.
                level = logging.DEBUG if self._failing else logging.WARNING
                logger.log(level, "sd_notify to %s failed: %s", self._address, exc)
                self._failing = True
                return False
            self._failing = False
            return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (sockets bound): systemd considers the service started."""
        return self.notify(_with_status("READY=1", status))

    def watchdog(self) -> bool:
        """The work loop is alive: resets the ``WatchdogSec=`` timer."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self.notify(_with_status("", text))

    def stopping(self, status: str | None = None) -> bool:
        """The service is shutting down on purpose."""
        return self.notify(_with_status("STOPPING=1", status))

    def close(self) -> None:
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def watchdog_interval_s(
    environ: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """The watchdog timeout systemd expects pings within, or None if there is no watchdog for
    this process (``$WATCHDOG_USEC`` unset or invalid, or ``$WATCHDOG_PID`` names another
    process). ``pid`` defaults to this process."""
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        logger.warning("ignoring $WATCHDOG_USEC=%r: not an integer", raw)
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        try:
            watched = int(raw_pid)
        except ValueError:
            logger.warning("ignoring the watchdog: $WATCHDOG_PID=%r is not a process id", raw_pid)
            return None
        if watched != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    logger.warning(
        "ignoring $NOTIFY_SOCKET=%r: only unix socket paths and @names are supported", value
    )
    return None


def _with_status(head: str, status: str | None) -> str:
    lines = [head] if head else []
    if status is not None:
        # One datagram is newline-separated assignments: a newline would start a new one.
        lines.append("STATUS=" + " ".join(status.splitlines()))
    return "\n".join(lines)
