"""ZeroMQ CURVE for the service's sockets (CONTRACT §10): the server's keys and the clients
allowed, read once at start-up from the ``zmq.auth`` certificate files ``[zmq.curve]`` names,
and a ZAP handler (pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator`) per ZeroMQ context that
admits only listed client keys. The client identity it gives each request (``User-Id``) is the
client's public key, Z85-encoded; :mod:`services.command_policy` decides what it may do.

Client side (``igrt listen``, ``igrt demo``, tests): :class:`ClientKeys` loads the server's
public certificate and the client's secret certificate and :meth:`ClientKeys.apply` sets them on
a SUB or REQ socket before it connects.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from igrt.config import CurveConfig
from igrt.core.errors import ConfigError

log = logging.getLogger(__name__)

ZAP_DOMAIN = "igrt"


def _certificate(path: Path, key: str, *, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}: {path} cannot be read as a ZeroMQ certificate ({exc}); "
                          "create one with `igrt keys`") from None
    if secret and secret_key is None:
        raise ConfigError(f"{key}: {path} holds no secret key; give the .key_secret file "
                          "`igrt keys` wrote")
    return public, secret_key


def _public_keys(directory: Path, key: str) -> frozenset[str]:
    if not directory.is_dir():
        raise ConfigError(f"{key}: {directory} is not a directory of public certificates")
    keys: set[str] = set()
    try:
        paths = sorted(directory.glob("*.key"))
    except OSError as exc:
        raise ConfigError(f"{key}: {directory} cannot be listed: {exc}") from None
    for path in paths:
        public, _ = _certificate(path, key, secret=False)
        keys.add(public.decode("ascii"))
    return frozenset(keys)


@dataclass(frozen=True)
class CurveKeys:
    """The server's key pair and the client keys (Z85 text) admitted to both sockets."""

    server_public: bytes
    server_secret: bytes
    readers: frozenset[str]  # clients_dir
    controllers: frozenset[str]  # control_clients_dir (also admitted)

    @classmethod
    def load(cls, config: CurveConfig) -> CurveKeys:
        """Read the files ``[zmq.curve]`` names; :class:`ConfigError` names the key."""
        public, secret = _certificate(config.server_secret_key, "zmq.curve.server_secret_key",
                                      secret=True)
        assert secret is not None
        readers = _public_keys(config.clients_dir, "zmq.curve.clients_dir")
        controllers = (frozenset() if config.control_clients_dir is None else
                       _public_keys(config.control_clients_dir, "zmq.curve.control_clients_dir"))
        log.info("CURVE on: %d reader and %d control client key(s)", len(readers - controllers),
                 len(controllers))
        return cls(public, secret, readers, controllers)

    @property
    def admitted(self) -> frozenset[str]:
        return self.readers | self.controllers

    def apply_server(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.server_secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.server_public)
        sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)


class _Admission:
    """The ZAP credentials provider: admits the listed keys, logs each refused key once."""

    def __init__(self, keys: CurveKeys, endpoint_key: str) -> None:
        self._admitted = keys.admitted
        self._endpoint_key = endpoint_key
        self._refused: set[bytes] = set()
        self._lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        if key.decode("ascii", "replace") in self._admitted:
            return True
        with self._lock:
            first = key not in self._refused
            self._refused.add(key)
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "%s: CURVE client key %s... refused (not in clients_dir or "
                "control_clients_dir)", self._endpoint_key, key[:8].decode("ascii", "replace"))
        return False


class ZapHandler:
    """The ZAP handler of one ZeroMQ context (start it before the socket binds)."""

    def __init__(self, keys: CurveKeys, context: zmq.Context[Any], endpoint_key: str) -> None:
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
        self._provider = _Admission(keys, endpoint_key)

    def start(self) -> None:
        self._auth.start()
        self._auth.configure_curve_callback(domain=ZAP_DOMAIN,
                                            credentials_provider=self._provider)

    def stop(self) -> None:
        self._auth.stop()


@dataclass(frozen=True)
class ClientKeys:
    """A client's CURVE keys and the server's public key."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def load(cls, *, server_key: Path, client_key: Path) -> ClientKeys:
        """``server_key``: the server's public certificate (``server.key``); ``client_key``: the
        client's secret certificate (``NAME.key_secret``). :class:`ConfigError` on a bad file."""
        server_public, _ = _certificate(server_key, "--server-key", secret=False)
        client_public, client_secret = _certificate(client_key, "--client-key", secret=True)
        assert client_secret is not None
        return cls(server_public, client_public, client_secret)

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the server (before it connects)."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client_public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.client_secret)
