"""The DICOM Storage SCP (CONTRACT §3): one AE; C-ECHO, and C-STORE of what igrt uses.

:class:`StorageScp` runs a pynetdicom association server in background threads. Per association:

* A-ASSOCIATE: the called AE title must be ``[dicom] ae_title`` and the calling AE title one of
  ``[[dicom.peers]]``, else the association is rejected (A-ASSOCIATE-RJ, permanent, "calling/
  called AE title not recognised") and the rejection is logged. Presentation contexts: see
  :data:`STORAGE_SOP_CLASSES` and :data:`TRANSFER_SYNTAXES`; anything else is not accepted.
* C-STORE (thin, on the association's thread): refuse an object the peer's role may not send
  (:data:`ROLE_KINDS`), rebuild the Part-10 bytes exactly as received (file meta + the encoded
  data set, not re-encoded), decode the header from those very bytes, check what igrt needs
  (:func:`services.instance_header.read_header`: UIDs, Patient ID, Frame of Reference, image
  geometry), hand the bytes to
  :meth:`igrt.store.Store.store_instance` (atomic write + fsync + index) and only then answer
  ``0x0000``. Every failure is mapped to a status in one place
  (:func:`services.dicom_status.reply_for`); the Error Comment carries a short reason, the log
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
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from io import BytesIO
from typing import Any, cast

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    EnhancedCTImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from igrt.config import Config
from igrt.errors import ConfigError, IgrtError
from igrt.store import (
    AssociationOutcome,
    InstanceKind,
    InstanceMeta,
    Role,
    Store,
    uid_problem,
)
from services.dicom_status import (
    InstanceRefusedError,
    InvalidDataSetError,
    RoleNotAllowedError,
    StatusReply,
    StoreStatus,
    UnreadableDataSetError,
    reply_for,
)
from services.instance_header import KIND_NAMES, read_header

logger = logging.getLogger(__name__)

STORAGE_SOP_CLASSES: Mapping[str, InstanceKind] = {
    CTImageStorage: InstanceKind.CT_IMAGE,
    EnhancedCTImageStorage: InstanceKind.ENHANCED_CT,
    RTPlanStorage: InstanceKind.RT_PLAN,
    RTIonPlanStorage: InstanceKind.RT_ION_PLAN,
    RTStructureSetStorage: InstanceKind.RT_STRUCT,
    SpatialRegistrationStorage: InstanceKind.SPATIAL_REGISTRATION,
}

ROLE_KINDS: Mapping[Role, frozenset[InstanceKind]] = {
    Role.IMAGING: frozenset(
        {InstanceKind.CT_IMAGE, InstanceKind.ENHANCED_CT, InstanceKind.SPATIAL_REGISTRATION}
    ),
    Role.PLANNING: frozenset(
        {
            InstanceKind.CT_IMAGE,
            InstanceKind.ENHANCED_CT,
            InstanceKind.RT_PLAN,
            InstanceKind.RT_ION_PLAN,
            InstanceKind.RT_STRUCT,
        }
    ),
}

#: Accepted for every storage SOP class. When a peer proposes several in one presentation context,
#: the first of this list among them is chosen: uncompressed first, so nothing needs decoding later.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLosslessSV1,  # JPEG lossless, process 14, selection value 1
    JPEGLossless,  # JPEG lossless, process 14
    JPEG2000Lossless,
    JPEGLSLossless,
)
VERIFICATION_TRANSFER_SYNTAXES: tuple[str, ...] = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)


class ActivityKind(StrEnum):
    INSTANCE = "instance"  # one instance of the series was stored durably
    RELEASED = "released"  # an association that delivered instances of the series was released
    ABORTED = "aborted"  # ... was aborted (or its connection dropped without a release)


@dataclass(frozen=True)
class SeriesEvent:
    """What the SCP tells its caller about a series. ``monotonic_s`` is ``time.monotonic()`` when
    it happened (for the settle timer); ``sop_instance_uid`` is set for ``instance`` events."""

    event: ActivityKind
    series_uid: str
    kind: InstanceKind
    role: Role
    calling_ae: str
    association_id: str
    monotonic_s: float
    sop_instance_uid: str | None = None


@dataclass(frozen=True)
class ScpLimits:
    acse_timeout_s: float = 30.0  # association request / release
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 120.0  # an idle association is aborted after this
    max_associations: int = 10
    max_pdu_bytes: int = 262_144  # what we accept per PDU (the peer sends at most this)
    close_grace_s: float = 5.0  # connection closed: wait this long for release/abort news


@dataclass(eq=False)
class _Session:
    """Bookkeeping of one accepted association."""

    association_id: str
    calling_ae: str
    role: Role | None  # None only if the AE is not a configured peer (negotiation prevents it)
    series: dict[str, InstanceKind] = field(default_factory=dict)  # delivered, in order
    outcome: AssociationOutcome | None = None
    closed: bool = False  # the TCP connection is gone
    watchdog: threading.Timer | None = None  # closed before its end was known: fallback
    lock: threading.Lock = field(default_factory=threading.Lock)


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
    store (:meth:`~igrt.store.Store.series_info`), which is the record of truth.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        on_series_activity: Callable[[SeriesEvent], None],
        limits: ScpLimits | None = None,
    ) -> None:
        self._dicom = config.dicom
        self._store = store
        self._on_series_activity = on_series_activity
        self._limits = limits or ScpLimits()
        self._server: ThreadedAssociationServer | None = None
        self._sessions: dict[Association, _Session] = {}
        self._sessions_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on ``[dicom] host:port`` (port 0: a free port, see :attr:`port`); returns at
        once, the server runs in background threads."""
        if self._server is not None:
            raise RuntimeError("the Storage SCP is already running")
        ae = self._make_ae()
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_c_store),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_CLOSE, self._on_connection_closed),
        ]
        address = (self._dicom.host, self._dicom.port)
        try:
            server = ae.start_server(address, block=False, evt_handlers=handlers)
        except OSError as exc:
            raise ConfigError(
                f"dicom.port: the Storage SCP cannot listen on {self._dicom.host}:"
                f"{self._dicom.port}: {exc.strerror or exc}; choose a free port or stop the "
                "other program using it"
            ) from exc
        assert server is not None  # block=False returns the server
        self._server = server
        logger.info(
            "Storage SCP %s listening on %s:%d; peers: %s",
            self._dicom.ae_title,
            self._dicom.host,
            self.port,
            ", ".join(f"{p.ae_title} ({p.role.value})" for p in self._dicom.peers),
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
        open_associations = server.active_associations
        for assoc in open_associations:
            assoc.abort()
        deadline = time.monotonic() + timeout_s
        for assoc in open_associations:
            assoc.join(max(0.0, deadline - time.monotonic()))
        with self._sessions_lock:
            unfinished = list(self._sessions)
        for assoc in unfinished:  # no end news (yet): aborted, now, while the store is open
            self._end(assoc, AssociationOutcome.ABORTED)
        with self._sessions_lock:
            self._sessions.clear()
        logger.info("Storage SCP %s stopped", self._dicom.ae_title)

    def __enter__(self) -> StorageScp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_ae(self) -> AE:
        limits = self._limits
        ae = AE(ae_title=self._dicom.ae_title)
        ae.require_called_aet = True
        ae.require_calling_aet = [peer.ae_title for peer in self._dicom.peers]
        ae.acse_timeout = limits.acse_timeout_s
        ae.dimse_timeout = limits.dimse_timeout_s
        ae.network_timeout = limits.network_timeout_s
        ae.maximum_associations = limits.max_associations
        ae.maximum_pdu_size = limits.max_pdu_bytes
        ae.add_supported_context(Verification, list(VERIFICATION_TRANSFER_SYNTAXES))
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        return ae

    # --- association bookkeeping -----------------------------------------------------------------
    def _session(self, assoc: Association) -> _Session:
        with self._sessions_lock:
            session = self._sessions.get(assoc)
            if session is None:
                calling_ae = str(assoc.requestor.ae_title).strip()
                peer = self._dicom.peer(calling_ae)
                session = _Session(
                    association_id=uuid.uuid4().hex,
                    calling_ae=calling_ae,
                    role=None if peer is None else Role(peer.role.value),
                )
                self._sessions[assoc] = session
            return session

    def _on_established(self, event: Event) -> None:
        session = self._session(event.assoc)
        logger.info(
            "association %s from %s (%s, %s:%s) established",
            session.association_id,
            session.calling_ae,
            session.role.value if session.role else "no role",
            event.assoc.requestor.address,
            event.assoc.requestor.port,
        )

    def _on_rejected(self, event: Event) -> None:
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

    def _on_released(self, event: Event) -> None:
        self._end(event.assoc, AssociationOutcome.RELEASED)

    def _on_aborted(self, event: Event) -> None:
        self._end(event.assoc, AssociationOutcome.ABORTED)

    def _on_connection_closed(self, event: Event) -> None:
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
                    self._limits.close_grace_s, self._closed_without_end, args=(assoc,)
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
            self._end(assoc, AssociationOutcome.ABORTED)

    def _forget(self, assoc: Association) -> None:
        with self._sessions_lock:
            self._sessions.pop(assoc, None)

    def _end(self, assoc: Association, outcome: AssociationOutcome) -> None:
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
            "association %s from %s %s (%d series delivered)",
            session.association_id,
            session.calling_ae,
            outcome.value,
            len(delivered),
        )
        self._announce_end(session, outcome, delivered)

    def _announce_end(
        self,
        session: _Session,
        outcome: AssociationOutcome,
        delivered: list[tuple[str, InstanceKind]],
    ) -> None:
        """Record the outcome (if the association delivered anything), then tell the caller,
        one event per series delivered."""
        if not delivered:
            return
        try:
            self._store.record_association(session.association_id, session.calling_ae, outcome)
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
            self._emit(
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

    def _emit(self, event: SeriesEvent) -> None:
        try:
            self._on_series_activity(event)
        except Exception:
            logger.exception(
                "the series activity callback failed for %s of series %s (association %s)",
                event.event.value,
                event.series_uid,
                event.association_id,
            )

    # --- C-STORE ---------------------------------------------------------------------------------
    def _on_c_store(self, event: Event) -> Dataset:
        """The EVT_C_STORE handler: store durably, then ``0x0000``; never raises."""
        session = self._session(event.assoc)
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", None))[:80]
        try:
            meta = self._store_one(event, session)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, in one place
            reply = reply_for(exc)
            what = (
                f"C-STORE of SOP instance {sop_uid} from {session.calling_ae} "
                f"(association {session.association_id})"
            )
            if isinstance(exc, InstanceRefusedError):
                logger.warning("%s refused (0x%04X): %s", what, reply.status, exc.message)
            elif isinstance(exc, IgrtError):
                logger.error("%s failed (0x%04X): %s", what, reply.status, exc.message)
            else:
                logger.exception("%s failed (0x%04X) with an unexpected error", what, reply.status)
            return _status(reply)
        with session.lock:
            new_series = meta.series_uid not in session.series
            session.series.setdefault(meta.series_uid, meta.kind)
            ended = session.outcome  # the end overtook this C-STORE (server stop, dropped link)
        self._emit(
            SeriesEvent(
                event=ActivityKind.INSTANCE,
                series_uid=meta.series_uid,
                kind=meta.kind,
                role=meta.role,
                calling_ae=meta.calling_ae,
                association_id=meta.association_id,
                monotonic_s=time.monotonic(),
                sop_instance_uid=meta.sop_instance_uid,
            )
        )
        if ended is not None and new_series:
            self._announce_end(session, ended, [(meta.series_uid, meta.kind)])
        return _status(StatusReply(StoreStatus.SUCCESS))

    def _store_one(self, event: Event, session: _Session) -> InstanceMeta:
        request = cast(C_STORE, event.request)
        sop_class = str(request.AffectedSOPClassUID)
        sop_uid = str(request.AffectedSOPInstanceUID)
        kind = STORAGE_SOP_CLASSES.get(sop_class)
        if kind is None:  # negotiation accepts only the classes above
            raise InvalidDataSetError(
                f"SOP class {sop_class} is not stored by igrt",
                comment=f"SOP class {sop_class} is not stored by igrt",
            )
        _check_role(kind, session)
        assert session.role is not None  # _check_role refuses peers without a role
        problem = uid_problem(sop_uid)
        if problem is not None:
            raise InvalidDataSetError(
                f"the Affected SOP Instance UID {sop_uid[:80]!r} of the {KIND_NAMES[kind]} is "
                f"not a valid DICOM UID ({problem}); nothing was stored",
                comment=f"invalid SOP Instance UID: {problem}",
            )
        file_meta = event.file_meta
        file_meta.SourceApplicationEntityTitle = session.calling_ae
        data = b"".join(
            (
                b"\x00" * 128,
                b"DICM",
                encode_file_meta(file_meta),
                event.encoded_dataset(include_meta=False),
            )
        )
        try:
            ds = pydicom.dcmread(BytesIO(data))
            header = read_header(ds, kind=kind, sop_class_uid=sop_class, sop_instance_uid=sop_uid)
        except InstanceRefusedError:
            raise
        except Exception as exc:
            raise UnreadableDataSetError(
                f"the {KIND_NAMES[kind]} {sop_uid} cannot be decoded "
                f"({type(exc).__name__}: {exc}); transfer syntax "
                f"{event.context.transfer_syntax}",
                comment=f"data set cannot be decoded: {type(exc).__name__}",
            ) from exc
        meta = InstanceMeta(
            sop_class_uid=sop_class,
            sop_instance_uid=sop_uid,
            series_uid=header.series_uid,
            study_uid=header.study_uid,
            patient_id=header.patient_id,
            frame_of_reference_uid=header.frame_of_reference_uid,
            modality=header.modality,
            kind=kind,
            role=session.role,
            calling_ae=session.calling_ae,
            association_id=session.association_id,
            label=header.label,
            referenced_frame_uids=header.referenced_frame_uids,
            referenced_series_uids=header.referenced_series_uids,
        )
        self._store.store_instance(data=data, meta=meta)
        return meta


def _check_role(kind: InstanceKind, session: _Session) -> None:
    name = KIND_NAMES[kind]
    if session.role is None:
        raise RoleNotAllowedError(
            f"{name} from {session.calling_ae!r} refused: that AE title is not a configured "
            "peer ([[dicom.peers]])",
            comment=f"calling AE {session.calling_ae} is not a configured peer",
        )
    if kind not in ROLE_KINDS[session.role]:
        allowed = ", ".join(sorted(KIND_NAMES[k] for k in ROLE_KINDS[session.role]))
        raise RoleNotAllowedError(
            f"{name} from {session.calling_ae} refused: its role in [[dicom.peers]] is "
            f"{session.role.value!r}, which may send only {allowed}",
            comment=f"{name} not accepted from {session.role.value} peer {session.calling_ae}",
        )


def _status(reply: StatusReply) -> Dataset:
    ds = Dataset()
    ds.Status = int(reply.status)
    if reply.comment:
        ds.ErrorComment = reply.comment
    return ds
