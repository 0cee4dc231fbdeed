"""Who gets an association, and how many (issue 10): connection slots that strangers cannot hold.

pynetdicom counts every connection, even one that never sends an A-ASSOCIATE-RQ, against its one
association limit, so a few idle TCP connections lock the linac out. Here instead:

* **Pending connections** (connected, no A-ASSOCIATE-RQ yet) are capped at
  ``max_pending_connections``; when one more connects, the *oldest* pending one is closed. An
  idle connection lasts at most ``request_timeout_s`` anyway (pynetdicom's ACSE timeout), and
  can never keep a real peer out, which sends its request within milliseconds.
* **Associations** are counted when requested, from configured peers only:
  ``max_associations`` in all, ``max_associations_per_peer`` per calling AE title. Beyond either
  the request is rejected (A-ASSOCIATE-RJ transient, "local limit exceeded"), and logged.
* **Peer binding** (CONTRACT §10): a peer with ``host`` is rejected (permanent, "calling AE title
  not recognised") when it calls from an address outside that network.

The handlers run on pynetdicom's connection and association threads; one lock guards the books.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import OrderedDict
from typing import Any

from pynetdicom.association import Association
from pynetdicom.events import Event

from igrt.config import DicomConfig

logger = logging.getLogger("services.scp")

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service user, calling AE not recognised
REJECT_LIMIT = (0x02, 0x03, 0x02)  # transient, service provider (presentation), local limit


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Admission:
    """The association books of one Storage SCP (see the module docstring)."""

    def __init__(self, dicom: DicomConfig) -> None:
        self._dicom = dicom
        self._limits = dicom.limits
        self._lock = threading.Lock()
        self._pending: OrderedDict[Association, None] = OrderedDict()
        self._admitted: dict[Association, str] = {}  # association -> calling AE title

    # --- event handlers --------------------------------------------------------------------------
    def on_connection_open(self, event: Event) -> None:
        assoc = event.assoc
        with self._lock:
            self._pending[assoc] = None
            evicted = []
            while len(self._pending) > self._limits.max_pending_connections:
                oldest, _ = self._pending.popitem(last=False)
                evicted.append(oldest)
        for old in evicted:
            address = getattr(old.requestor, "address", "?")
            logger.warning("%d connections are waiting to request an association; the oldest, "
                           "from %s, is closed", self._limits.max_pending_connections + 1,
                           address)
            _close(old)

    def on_requested(self, event: Event) -> None:
        """A-ASSOCIATE-RQ received: reject here (peer binding, limits) or admit."""
        assoc = event.assoc
        request: Any = assoc.requestor.primitive
        calling = str(getattr(request, "calling_ae_title", "")).strip()
        address = str(assoc.requestor.address)
        peer = self._dicom.peer(calling)
        with self._lock:
            self._pending.pop(assoc, None)
            if peer is None:
                return  # pynetdicom rejects unknown calling AE titles right after this
            rejection = self._rejection(calling, address, peer.host)
            if rejection is None:
                self._admitted[assoc] = calling
                return
        diagnostic, why = rejection
        logger.warning("association from %s (%s) rejected: %s", calling, address, why)
        assoc.acse.send_reject(*diagnostic)
        assoc.kill()

    def on_connection_closed(self, event: Event) -> None:
        with self._lock:
            self._pending.pop(event.assoc, None)
            self._admitted.pop(event.assoc, None)

    # --- the rules -------------------------------------------------------------------------------
    def _rejection(self, calling: str, address: str,
                   host: str | None) -> tuple[tuple[int, int, int], str] | None:
        if host is not None:
            found = _address(address)
            if found is None or found not in ipaddress.ip_network(host):
                return REJECT_CALLING_AE, (f"{calling} may call only from {host} "
                                           "([[dicom.peers]] host)")
        limits = self._limits
        for gone in [a for a in self._admitted if not a.is_alive()]:
            del self._admitted[gone]  # its thread ended without a connection-close event
        if len(self._admitted) >= limits.max_associations:
            return REJECT_LIMIT, (f"{limits.max_associations} associations are open "
                                  "([dicom.limits] max_associations)")
        mine = sum(1 for ae in self._admitted.values() if ae == calling)
        if mine >= limits.max_associations_per_peer:
            return REJECT_LIMIT, (f"{calling} has {mine} associations open "
                                  "([dicom.limits] max_associations_per_peer)")
        return None

    @property
    def counts(self) -> tuple[int, int]:
        """(pending connections, admitted associations), for tests and the log."""
        with self._lock:
            return len(self._pending), len(self._admitted)


def _close(assoc: Association) -> None:
    sock: Any = getattr(assoc.dul, "socket", None)
    try:
        if sock is not None:
            sock.close()
    except Exception:  # noqa: BLE001 - closing a connection that is already going away
        logger.debug("closing an evicted connection failed", exc_info=True)
