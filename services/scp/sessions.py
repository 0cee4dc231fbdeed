"""Association bookkeeping of the Storage SCP: which association delivered which series, and
how it ended (released, aborted, or a connection that closed without either, which counts as
aborted after a grace period). The end is recorded in the store for associations that stored at
least one instance, then one ``released``/``aborted`` :class:`SeriesEvent` per series delivered
is passed to the callback."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pynetdicom.association import Association
from pynetdicom.events import Event

from igrt.config import DicomConfig
from igrt.core.kinds import InstanceKind, Role
from igrt.store import AssociationOutcome, Store
from services.scp.events import ActivityKind, SeriesEvent

logger = logging.getLogger("services.scp")


@dataclass(eq=False)
class Session:
    """Bookkeeping of one accepted association."""

    association_id: str
    calling_ae: str
    role: Role | None  # None only if the AE is not a configured peer (negotiation prevents it)
    series: dict[str, InstanceKind] = field(default_factory=dict)  # delivered, in order
    outcome: AssociationOutcome | None = None
    refused: int = 0  # C-STOREs answered with an error status
    closed: bool = False  # the TCP connection is gone
    watchdog: threading.Timer | None = None  # closed before its end was known: fallback
    lock: threading.Lock = field(default_factory=threading.Lock)
    peer: str = ""  # address:port of the requestor
    started_s: float = field(default_factory=time.monotonic)
    instances: int = 0  # C-STOREs answered
    stored_bytes: int = 0  # bytes of the instances stored
    statuses: Counter[int] = field(default_factory=Counter)  # C-STORE status -> count

    def note_c_store(self, status: int, stored_bytes: int = 0) -> None:
        """Count one answered C-STORE (for the association's summary line)."""
        with self.lock:
            self.instances += 1
            self.stored_bytes += stored_bytes
            self.statuses[status] += 1

    def summary(self) -> str:
        """``12 instances, 3.4 MB, 2.1 s, statuses 0x0000 x11, 0xA900 x1``."""
        with self.lock:
            statuses = ", ".join(f"0x{code:04X} x{n}" for code, n in sorted(self.statuses.items()))
            return (f"{self.instances} instances, {self.stored_bytes / 1e6:.1f} MB, "
                    f"{time.monotonic() - self.started_s:.1f} s, statuses {statuses or 'none'}")


class Associations:
    """The sessions of the accepted associations, keyed by pynetdicom's association."""

    def __init__(self, dicom: DicomConfig, store: Store, *,
                 emit: Callable[[SeriesEvent], None], close_grace_s: float) -> None:
        self._dicom = dicom
        self._store = store
        self._emit_callback = emit
        self._close_grace_s = close_grace_s
        self._sessions: dict[Association, Session] = {}
        self._sessions_lock = threading.Lock()

    def session(self, assoc: Association) -> Session:
        with self._sessions_lock:
            session = self._sessions.get(assoc)
            if session is None:
                calling_ae = str(assoc.requestor.ae_title).strip()
                peer = self._dicom.peer(calling_ae)
                session = Session(
                    association_id=uuid.uuid4().hex,
                    calling_ae=calling_ae,
                    role=None if peer is None else Role(peer.role.value),
                    peer=f"{assoc.requestor.address}:{assoc.requestor.port}",
                )
                self._sessions[assoc] = session
            return session

    def on_established(self, event: Event) -> None:
        session = self.session(event.assoc)
        logger.info(
            "association %s from %s (%s, %s:%s) established",
            session.association_id,
            session.calling_ae,
            session.role.value if session.role else "no role",
            event.assoc.requestor.address,
            event.assoc.requestor.port,
        )

    def on_rejected(self, event: Event) -> None:
        requestor = event.assoc.requestor
        calling = str(requestor.ae_title).strip()
        called = str(getattr(requestor.primitive, "called_ae_title", "") or "").strip()
        problems = []
        if self._dicom.peer(calling) is None:
            problems.append(f"calling AE title {calling!r} not recognised (not in [[dicom.peers]])")
        if called != self._dicom.ae_title:
            problems.append(
                f"called AE title {called!r} not recognised (this AE is {self._dicom.ae_title!r})"
            )
        logger.warning(
            "association from %s:%s rejected: %s",
            requestor.address,
            requestor.port,
            "; ".join(problems) or "the association limit is reached or the request is invalid",
        )

    def on_released(self, event: Event) -> None:
        self.end(event.assoc, AssociationOutcome.RELEASED)

    def on_aborted(self, event: Event) -> None:
        self.end(event.assoc, AssociationOutcome.ABORTED)

    def on_connection_closed(self, event: Event) -> None:
        """The TCP connection is gone (on the connection's thread, which must not wait: pynetdicom
        queues the abort indication for the association's thread only after this handler).
        Normally the release or abort is, or is about to be, handled on the association's
        thread; if no such news comes within ``close_grace_s``, the association ended without a
        release, which counts as aborted."""
        assoc = event.assoc
        with self._sessions_lock:
            session = self._sessions.get(assoc)
        if session is None:
            return  # never accepted (rejected, or no association request)
        with session.lock:
            session.closed = True
            ended = session.outcome is not None
            if not ended:
                session.watchdog = threading.Timer(
                    self._close_grace_s, self._closed_without_end, args=(assoc,)
                )
                session.watchdog.daemon = True
                session.watchdog.start()
        if ended:
            self._forget(assoc)

    def _closed_without_end(self, assoc: Association) -> None:
        with self._sessions_lock:
            session = self._sessions.get(assoc)
        if session is not None and session.outcome is None:
            logger.warning(
                "association %s from %s: connection closed without release or abort",
                session.association_id,
                session.calling_ae,
            )
            self.end(assoc, AssociationOutcome.ABORTED)

    def _forget(self, assoc: Association) -> None:
        with self._sessions_lock:
            self._sessions.pop(assoc, None)

    def end(self, assoc: Association, outcome: AssociationOutcome) -> None:
        with self._sessions_lock:
            session = self._sessions.get(assoc)
        if session is None:
            return
        with session.lock:
            if session.outcome is not None:
                return  # the first news of the end wins (an abort after a release is moot)
            session.outcome = outcome
            delivered = list(session.series.items())
            closed, watchdog = session.closed, session.watchdog
        if watchdog is not None:
            watchdog.cancel()
        if closed:
            self._forget(assoc)
        logger.info(
            "association %s from %s (%s) %s: %s; %d series delivered",
            session.association_id,
            session.calling_ae,
            session.peer,
            outcome.value,
            session.summary(),
            len(delivered),
        )
        self.announce_end(session, outcome, delivered)

    def announce_end(
        self,
        session: Session,
        outcome: AssociationOutcome,
        delivered: list[tuple[str, InstanceKind]],
    ) -> None:
        """Record the outcome (if the association delivered anything), then tell the caller,
        one event per series delivered."""
        if not delivered:
            return
        try:
            with session.lock:
                refused = session.refused
            self._store.record_association(session.association_id, session.calling_ae, outcome,
                                           refused=refused)
        except Exception:
            logger.exception(
                "association %s from %s %s, but recording that failed",
                session.association_id,
                session.calling_ae,
                outcome.value,
            )
        if session.role is None:
            return
        for series_uid, kind in delivered:
            self.emit(
                SeriesEvent(
                    event=ActivityKind(outcome.value),
                    series_uid=series_uid,
                    kind=kind,
                    role=session.role,
                    calling_ae=session.calling_ae,
                    association_id=session.association_id,
                    monotonic_s=time.monotonic(),
                )
            )

    def emit(self, event: SeriesEvent) -> None:
        try:
            self._emit_callback(event)
        except Exception:
            logger.exception(
                "the series activity callback failed for %s of series %s (association %s)",
                event.event.value,
                event.series_uid,
                event.association_id,
            )


    def end_all(self) -> None:
        """Record the associations still without end news as aborted, then forget them all."""
        with self._sessions_lock:
            unfinished = list(self._sessions)
        for assoc in unfinished:
            self.end(assoc, AssociationOutcome.ABORTED)
        with self._sessions_lock:
            self._sessions.clear()
