"""The DICOM Storage SCP (CONTRACT §3): one AE; C-ECHO, and C-STORE of what igrt uses.

:class:`StorageScp` runs a pynetdicom association server in background threads. Per association:

* A-ASSOCIATE: the called AE title must be ``[dicom] ae_title`` and the calling AE title one of
  ``[[dicom.peers]]``, else the association is rejected (A-ASSOCIATE-RJ, permanent, "calling/
  called AE title not recognised") and the rejection is logged. Presentation contexts: see
  :data:`STORAGE_SOP_CLASSES` and :data:`TRANSFER_SYNTAXES`; anything else is not accepted.
* C-STORE (thin, on the association's thread): refuse an object the peer's role may not send
  (:data:`ROLE_KINDS`), rebuild the Part-10 bytes exactly as received (file meta + the encoded
  data set, not re-encoded), decode the header from those very bytes, check what igrt needs
  (:func:`igrt.dicom.header.read_header`: UIDs, Patient ID, Frame of Reference, image
  geometry), hand the bytes to
  :meth:`igrt.store.Store.store_instance` (atomic write + fsync + index) and only then answer
  ``0x0000``. Every failure is mapped to a status in one place
  (:func:`services.scp.status.reply_for`); the Error Comment carries a short reason, the log
  the full one. No exception leaves the handler, so the service stays up.
* End: on release or abort (including a connection that closes without either) the outcome is
  recorded with :meth:`~igrt.store.Store.record_association` for associations that stored at
  least one instance, and one ``released``/``aborted`` :class:`SeriesEvent` per series delivered
  is passed to the callback.

Roles (CONTRACT §3): ``imaging`` peers (the linac console) may send CT Image and Enhanced CT Image
(CBCTs) and Spatial Registration (the CBCT-to-plan registration sent with a CBCT); ``planning``
peers may send CT Image, Enhanced CT Image, RT Plan, RT Ion Plan and RT Structure Set. A Spatial
Registration from a planning peer is refused: the contract's nominal alignment is the one
"received with the CBCT", and a planning/review system's registration (e.g. last fraction's
matched CBCT) must never be taken for the nominal one.

Idle associations are aborted after ``network_timeout_s`` (an aborted association never leads to
a registration, so a silent peer never makes a partial series "complete").

Hardening (issue 10; README "Security"): the limits of ``[dicom.limits]`` and the peer binding
are applied by :mod:`services.scp.admission` (idle connections cannot hold association slots);
TLS (``[dicom.tls]``) and the PDU size bound by :mod:`services.scp.transport`. Received data
sets are spooled to a file in the store's ``tmp/`` as they arrive (pynetdicom's
``STORE_RECV_CHUNKED_DATASET``), so memory per association stays bounded by the PDU size, and
nothing is written outside the store. Two pynetdicom settings are process-wide and set by
:meth:`StorageScp.start`: chunked receiving, and a UID validator that lets an over-long or
malformed Affected SOP Instance UID through to the C-STORE handler, which answers it with a
status (pynetdicom's own check aborts the association).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from igrt.config import Config
from igrt.core.errors import ConfigError
from igrt.store import Store
from services.ae import make_ae
from services.scp.admission import Admission
from services.scp.c_store import CStoreHandler
from services.scp.events import SeriesEvent
from services.scp.policy import (
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION_TRANSFER_SYNTAXES,
)
from services.scp.sessions import Associations
from services.scp.transport import (
    GuardedServer,
    discard_spooled,
    spool_into,
    stop_spooling_into,
    tls_context,
)

#: pynetdicom allows this many connections; igrt's own limits (Admission) are what binds.
_PYNETDICOM_CAP = 10_000
CLOSE_GRACE_S = 5.0  # connection closed: wait this long for release/abort news


def _lenient_uid(value: object) -> tuple[bool, str]:
    """pynetdicom's UID check, relaxed: the C-STORE handler answers bad UIDs with a status."""
    return True, ""

logger = logging.getLogger("services.scp")


class StorageScp:
    """The Storage SCP of one igrt service. ``start()``, then ``stop()`` before closing the store.

    ``on_series_activity`` is called on pynetdicom's association threads, possibly from several
    at once, after the store holds what the event reports (the instance for ``instance``, the
    association outcome for ``released``/``aborted``). It must only enqueue the event (e.g.
    ``queue.Queue.put_nowait``) and return at once: registration never runs on an association
    thread, and a slow callback delays the peer's C-STORE response. Exceptions it raises are
    logged and do not change the C-STORE status. Within one association, ``instance`` events
    come before that association's ``released``/``aborted`` events (one per series it
    delivered); across associations there is no order. Events are wake-ups: decide from the
    store (:meth:`~igrt.store.Store.series_arrivals`), which is the record of truth.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        on_series_activity: Callable[[SeriesEvent], None],
        close_grace_s: float = CLOSE_GRACE_S,
    ) -> None:
        self._dicom = config.dicom
        self._limits = config.dicom.limits
        self._store = store
        self._on_series_activity = on_series_activity
        self._server: GuardedServer | None = None
        self._thread: threading.Thread | None = None
        self._tls = tls_context(config.dicom.tls) if config.dicom.tls is not None else None
        self._associations = Associations(self._dicom, store, emit=on_series_activity,
                                          close_grace_s=close_grace_s)
        self._admission = Admission(self._dicom)
        self._c_store = CStoreHandler(store, self._associations)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on ``[dicom] host:port`` (port 0: a free port, see :attr:`port`); returns at
        once, the server runs in background threads."""
        if self._server is not None:
            raise RuntimeError("the Storage SCP is already running")
        _config.STORE_RECV_CHUNKED_DATASET = True
        _config.VALIDATORS["UI"] = _lenient_uid
        spool_into(self._store.root / "tmp")
        ae = self._make_ae()
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._c_store),
            (evt.EVT_CONN_OPEN, self._admission.on_connection_open),
            (evt.EVT_REQUESTED, self._admission.on_requested),
            (evt.EVT_ESTABLISHED, self._associations.on_established),
            (evt.EVT_REJECTED, self._associations.on_rejected),
            (evt.EVT_RELEASED, self._associations.on_released),
            (evt.EVT_ABORTED, self._associations.on_aborted),
            (evt.EVT_CONN_CLOSE, self._admission.on_connection_closed),
            (evt.EVT_CONN_CLOSE, discard_spooled),
            (evt.EVT_CONN_CLOSE, self._associations.on_connection_closed),
        ]
        address = (self._dicom.host, self._dicom.port)
        try:
            server = GuardedServer(ae, address, self._dicom.ae_title, ae.supported_contexts,
                                   evt_handlers=handlers, tls=self._tls, limits=self._limits)
        except OSError as exc:
            stop_spooling_into(self._store.root / "tmp")
            raise ConfigError(
                f"dicom.port: the Storage SCP cannot listen on {self._dicom.host}:"
                f"{self._dicom.port}: {exc.strerror or exc}; choose a free port or stop the "
                "other program using it"
            ) from exc
        ae._servers.append(server)  # as AE.start_server does: server.shutdown() removes it
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="igrt-scp-accept",
                                        daemon=True)
        self._thread.start()
        logger.info(
            "Storage SCP %s listening on %s:%d (%s); peers: %s",
            self._dicom.ae_title,
            self._dicom.host,
            self.port,
            "TLS" if self._tls is not None else "plain TCP",
            ", ".join(f"{p.ae_title} ({p.role.value}"
                      f"{', from ' + p.host if p.host else ''})" for p in self._dicom.peers),
        )


    @property
    def port(self) -> int:
        """The TCP port the server is bound to (the chosen one when configured as 0)."""
        if self._server is None:
            raise RuntimeError("the Storage SCP is not running")
        return int(self._server.server_address[1])

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop accepting, abort the associations still open (recorded as aborted, so a series
        they were delivering is never registered) and wait for their threads. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout_s)
        # Only negotiated associations are waited for: a connection that never requested one
        # ends by itself within request_timeout_s and holds nothing of the store.
        open_associations = [a for a in server.active_associations if a.is_established]
        for assoc in open_associations:
            assoc.abort()
        deadline = time.monotonic() + timeout_s
        for assoc in open_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
        self._associations.end_all()  # no end news (yet): aborted, now, while the store is open
        stop_spooling_into(self._store.root / "tmp")
        logger.info("Storage SCP %s stopped", self._dicom.ae_title)

    def __enter__(self) -> StorageScp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_ae(self) -> AE:
        limits = self._limits
        ae = make_ae(self._dicom.ae_title)  # igrt's implementation identity
        ae.require_called_aet = True
        ae.require_calling_aet = [peer.ae_title for peer in self._dicom.peers]
        ae.acse_timeout = limits.request_timeout_s
        ae.dimse_timeout = limits.dimse_timeout_s
        ae.network_timeout = limits.network_timeout_s
        ae.maximum_associations = _PYNETDICOM_CAP
        ae.maximum_pdu_size = limits.max_pdu_bytes
        ae.add_supported_context(Verification, list(VERIFICATION_TRANSFER_SYNTAXES))
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        return ae
