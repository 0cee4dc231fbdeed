"""The review page's HTTP server: waitress on its own thread, bound before the service says
READY, stopped with the service."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from waitress.server import create_server

from igrt.core.errors import EndpointError

log = logging.getLogger(__name__)


class ReviewServer:
    def __init__(self, app: Flask, listen: str) -> None:
        self._app = app
        host, _, port = listen.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve; returns ``host:port`` as bound (the port chosen for 0)."""
        try:
            self._server = create_server(self._app, host=self._host, port=self._port,
                                         threads=4, ident="igrt", channel_timeout=30,
                                         clear_untrusted_proxy_headers=True)
        except OSError as exc:
            raise EndpointError(f"ui.listen: cannot listen on {self._host}:{self._port}: "
                                f"{exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._server.run, name="igrt-ui", daemon=True)
        self._thread.start()
        bound = f"{self._host}:{self.port}"
        log.info("review page on http://%s", bound)
        return bound

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def stop(self, timeout_s: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for channel in list(server._map.values()):  # open keep-alive connections
            channel.close()
        server.task_dispatcher.shutdown()
        if self._thread is not None:
            self._thread.join(timeout_s)
