"""The Storage SCP's transport, hardened (issue 10): what pynetdicom's association server does,
plus

* **TLS off the accept thread** (CONTRACT §10): pynetdicom wraps an accepted socket on the
  thread that accepts connections, so one client that never finishes its TLS handshake would
  stall every other connection. Here the handshake runs on the connection's own thread, within
  ``[dicom.limits] request_timeout_s``; a failed handshake (plain TCP, no or an untrusted client
  certificate, TLS below 1.2) closes that connection only, and is logged.
* **PDU size bounded before it is read**: a PDU announced longer than
  :func:`max_pdu_read_bytes` closes the connection instead of being buffered (a peer announcing
  4 GiB never makes the service allocate it).
* **Received data sets spooled into the store** (:func:`spool_into`): pynetdicom writes each
  received data set to a temporary file as its fragments arrive (memory per association stays
  bounded by the PDU size). Its file is created in the store's ``tmp/`` (never outside the
  store), and a write that fails (the disk is full) is remembered instead of aborting the
  association, so the C-STORE handler can answer ``0xA700`` (:func:`spool_error`).

:func:`tls_context` builds the ``ssl.SSLContext`` of ``[dicom.tls]``; files it cannot use stop
start-up with a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from pynetdicom import dimse_messages
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from igrt.config import DicomLimits, TlsConfig
from igrt.core.errors import ConfigError

logger = logging.getLogger("services.scp")

#: An A-ASSOCIATE-RQ of 128 presentation contexts with a dozen transfer syntaxes each is ~40 KB.
ASSOCIATION_PDU_MAX_BYTES = 1024 * 1024


def max_pdu_read_bytes(limits: DicomLimits) -> int:
    """The largest PDU (its length field) read from a peer: the negotiated maximum for P-DATA,
    room for a large A-ASSOCIATE-RQ otherwise."""
    return max(limits.max_pdu_bytes, ASSOCIATION_PDU_MAX_BYTES)


_PDU_TYPES = frozenset(range(0x01, 0x08))


class GuardedSocket(AssociationSocket):
    """An :class:`AssociationSocket` that reads PDUs warily.

    pynetdicom reads each PDU as ``recv(6)`` (type, reserved, length) then ``recv(length)``.
    Here a header of an unknown PDU type (not DICOM: HTTP, a TLS hello on a plain port, noise)
    closes the connection at once, instead of being read on six bytes at a time; a body longer
    than ``max_read_bytes`` is not read: nothing is returned, which pynetdicom treats as a
    connection closed mid-PDU, and the socket is shut down so the peer stops sending. Until the
    association is established, a PDU must arrive whole within ``request_timeout_s``."""

    max_read_bytes: int = ASSOCIATION_PDU_MAX_BYTES
    request_timeout_s: float = 10.0
    _reading_body: bool = False

    def recv(self, nr_bytes: int) -> bytearray:
        body, self._reading_body = self._reading_body, not self._reading_body
        if body and nr_bytes > self.max_read_bytes:
            self._refuse(f"announced a PDU of {nr_bytes} bytes, more than the "
                         f"{self.max_read_bytes} igrt reads")
            return bytearray()
        sock = self.socket
        if sock is not None and not self.assoc.is_established:
            sock.settimeout(self.request_timeout_s)
        data = super().recv(nr_bytes)
        if sock is not None and not self.assoc.is_established:
            sock.settimeout(self.assoc.network_timeout)
        if not body and len(data) == 6 and data[0] not in _PDU_TYPES:
            self._refuse(f"sent bytes that are not a DICOM PDU (type 0x{data[0]:02X})")
            self._reading_body = False
        return data

    def _refuse(self, what: str) -> None:
        try:
            peer = f"{self.assoc.requestor.address}"
        except ValueError:
            peer = "?"
        logger.warning("a peer at %s %s; connection closed", peer, what)
        sock = self.socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _GuardedHandler(RequestHandler):
    server: GuardedServer

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        sock: Any = assoc.dul.socket
        sock.__class__ = GuardedSocket  # same state, the bounded recv
        sock.max_read_bytes = self.server.max_read_bytes
        sock.request_timeout_s = self.server.request_timeout_s
        return assoc


class GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded association server with the two guards of the module docstring.
    ``tls``: the context of ``[dicom.tls]`` or None (plain TCP)."""

    #: the listen backlog (socketserver's default is 5: a burst of connections would have its
    #: SYNs dropped and retried a second later)
    request_queue_size = 128

    def __init__(self, ae: Any, address: tuple[str, int], ae_title: str, contexts: Any, *,
                 evt_handlers: list[Any], tls: ssl.SSLContext | None, limits: DicomLimits
                 ) -> None:
        self.max_read_bytes = max_pdu_read_bytes(limits)
        self._tls = tls
        self.request_timeout_s = limits.request_timeout_s
        super().__init__(ae, address, ae_title, contexts, ssl_context=None,
                         evt_handlers=evt_handlers, request_handler=_GuardedHandler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if self._tls is not None:
            wrapped = self._handshake(request, client_address)
            if wrapped is None:
                return
            request = wrapped
        super().process_request_thread(request, client_address)

    def _handshake(self, request: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        assert self._tls is not None
        previous = request.gettimeout()
        try:
            request.settimeout(self.request_timeout_s)
            wrapped = self._tls.wrap_socket(request, server_side=True)
            wrapped.settimeout(previous)
        except (ssl.SSLError, OSError) as exc:
            logger.warning("TLS handshake with %s:%s failed, connection closed: %s",
                           client_address[0], client_address[1], exc)
            self.shutdown_request(request)
            return None
        return wrapped


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The server context of ``[dicom.tls]``: TLS 1.2 or later, the SCP's certificate and key,
    the peers' CAs, client certificates required when ``require_client_certificate``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.certificate, tls.private_key)
    except (OSError, ssl.SSLError) as exc:
        key = "dicom.tls.private_key" if "key" in str(exc).lower() and isinstance(
            exc, ssl.SSLError) else "dicom.tls.certificate"
        raise ConfigError(f"{key}: the certificate {tls.certificate} and key {tls.private_key} "
                          f"cannot be used: {exc}") from None
    if tls.ca_certificates is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_certificates)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"dicom.tls.ca_certificates: {tls.ca_certificates} cannot be "
                              f"used: {exc}") from None
    if tls.require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca_certificates is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def discard_spooled(event: Any) -> None:
    """EVT_CONN_CLOSE: remove the file of a data set whose transfer the connection's end cut
    short (pynetdicom leaves it behind). Best effort: it reads pynetdicom's DIMSE state."""
    message = getattr(getattr(event.assoc, "dimse", None), "message", None)
    spool = getattr(message, "_data_set_file", None)
    path = getattr(message, "_data_set_path", None)
    if spool is None or path is None:
        return
    try:
        spool.close()
        Path(path).unlink(missing_ok=True)
        logger.info("removed the partly received data set %s", Path(path).name)
    except OSError as exc:
        logger.warning("cannot remove the partly received data set %s: %s", path, exc)


class _Spool:
    """pynetdicom's spool file, with failed writes remembered rather than raised."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self.error: OSError | None = None
        self.name = file.name
        self.file = self  # pynetdicom calls ``.file.flush()``

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                return int(self._file.write(data))
            except OSError as exc:
                self.error = exc
                with contextlib.suppress(OSError):
                    self._file.truncate(0)  # give the space back at once
        return len(data)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


_spool_lock = threading.Lock()
_spool_dirs: list[Path] = []  # the most recently started SCP's store wins (one per process)


def _spool_file(*args: Any, **kwargs: Any) -> _Spool:
    with _spool_lock:
        directory = _spool_dirs[-1] if _spool_dirs else None
    kwargs["dir"] = str(directory) if directory is not None else None
    return _Spool(tempfile.NamedTemporaryFile(*args, **kwargs))  # noqa: SIM115 - pynetdicom's


def spool_into(directory: Path) -> None:
    """Make pynetdicom spool received data sets into ``directory`` (process-wide; undo with
    :func:`stop_spooling_into`)."""
    with _spool_lock:
        _spool_dirs.append(directory)
        dimse_messages.NamedTemporaryFile = _spool_file  # type: ignore[assignment]


def stop_spooling_into(directory: Path) -> None:
    with _spool_lock:
        if directory in _spool_dirs:
            _spool_dirs.remove(directory)


def spool_error(request: Any) -> OSError | None:
    """The write error of the data set spooled for this C-STORE request, if one failed."""
    spool = getattr(request, "_dataset_file", None)
    return spool.error if isinstance(spool, _Spool) else None
