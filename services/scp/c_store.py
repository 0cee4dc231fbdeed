"""The C-STORE handler, thin: refuse what the peer's role may not send and over-long or invalid
UIDs (a status, never an abort); take the data set pynetdicom spooled to a file as it arrived
(never held in memory whole); check that it is readable as the negotiated transfer syntax
(:mod:`igrt.dicom.encoding`: VR encoding, element structure, nothing after the data set,
compressed pixel data decodes); decode the header and check what igrt needs
(:func:`igrt.dicom.header.read_header`); hand our file meta + the data set bytes exactly as
received to :meth:`igrt.store.Store.store_instance` (atomic write + fsync + index; a re-send with
other content is refused) and only then answer ``0x0000``. Every failure is mapped to a status
in one place (:func:`services.scp.status.reply_for`), counted as a refusal of the association
(a series delivered with refusals is never registered from what remains), and no exception
leaves the handler."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import cast

import pydicom
from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta
from pynetdicom.events import Event

from igrt.core.errors import (
    IgrtError,
    InstanceRefusedError,
    InvalidDataSetError,
    UnreadableDataSetError,
)
from igrt.core.kinds import KIND_NAMES, InstanceKind
from igrt.core.uids import uid_problem
from igrt.dicom.encoding import (
    check_encoding,
    check_pixel_data_decodes,
    check_structure,
    data_set_offset,
)
from igrt.dicom.header import read_header
from igrt.dicom.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from igrt.store import InstanceContent, InstanceMeta, Store
from igrt.store.files import os_error
from services.scp.events import ActivityKind, SeriesEvent
from services.scp.policy import STORAGE_SOP_CLASSES, check_role
from services.scp.sessions import Associations, Session
from services.scp.status import StatusReply, StoreStatus, reply_for
from services.scp.transport import spool_error

logger = logging.getLogger("services.scp")


class CStoreHandler:
    """The EVT_C_STORE handler of one Storage SCP."""

    def __init__(self, store: Store, associations: Associations) -> None:
        self._store = store
        self._associations = associations

    def __call__(self, event: Event) -> Dataset:
        """The EVT_C_STORE handler: store durably, then ``0x0000``; never raises."""
        session = self._associations.session(event.assoc)
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", None))[:80]
        try:
            meta, size = self._store_one(event, session)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, in one place
            with session.lock:
                session.refused += 1
            reply = reply_for(exc)
            session.note_c_store(int(reply.status))
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
        session.note_c_store(int(StoreStatus.SUCCESS), size)
        with session.lock:
            new_series = meta.series_uid not in session.series
            session.series.setdefault(meta.series_uid, meta.kind)
            ended = session.outcome  # the end overtook this C-STORE (server stop, dropped link)
        self._associations.emit(
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
            self._associations.announce_end(session, ended, [(meta.series_uid, meta.kind)])
        return _status(StatusReply(StoreStatus.SUCCESS))

    def _store_one(self, event: Event, session: Session) -> tuple[InstanceMeta, int]:
        request = cast(C_STORE, event.request)
        sop_class = str(request.AffectedSOPClassUID)
        sop_uid = str(request.AffectedSOPInstanceUID)
        kind = STORAGE_SOP_CLASSES.get(sop_class)
        if kind is None:  # negotiation accepts only the classes above
            raise InvalidDataSetError(
                f"SOP class {sop_class} is not stored by igrt",
                comment=f"SOP class {sop_class} is not stored by igrt",
            )
        role = check_role(kind, session.role, session.calling_ae)
        problem = uid_problem(sop_uid)
        if problem is not None:
            raise InvalidDataSetError(
                f"the Affected SOP Instance UID {sop_uid[:80]!r} of the {KIND_NAMES[kind]} is "
                f"not a valid DICOM UID ({problem}); nothing was stored",
                comment=f"invalid SOP Instance UID: {problem}",
            )
        what = f"the {KIND_NAMES[kind]} {sop_uid}"
        syntax = event.context.transfer_syntax
        spooled = Path(event.dataset_path)  # pynetdicom's file: its own file meta + the data set
        failed = spool_error(event.request)
        if failed is not None:
            raise os_error(failed, f"receiving SOP instance {sop_uid}")
        try:
            size = spooled.stat().st_size
            with spooled.open("rb") as fp:
                offset = data_set_offset(fp)
                fp.seek(offset)
                check_encoding(fp.read(8), syntax, what)
                check_structure(fp, offset, size, syntax, what)
            ds = pydicom.dcmread(spooled, defer_size="256 KB")
            header = read_header(ds, kind=kind, sop_class_uid=sop_class, sop_instance_uid=sop_uid)
            if kind in (InstanceKind.CT_IMAGE, InstanceKind.ENHANCED_CT):
                check_pixel_data_decodes(spooled, syntax, what)
        except InstanceRefusedError:
            raise
        except Exception as exc:
            raise UnreadableDataSetError(
                f"{what} cannot be decoded ({type(exc).__name__}: {exc}); transfer syntax "
                f"{syntax}",
                comment=f"data set cannot be decoded: {type(exc).__name__}",
            ) from exc
        file_meta = event.file_meta
        file_meta.SourceApplicationEntityTitle = session.calling_ae
        file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID  # igrt writes the file
        file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        content = InstanceContent(b"\x00" * 128 + b"DICM" + encode_file_meta(file_meta),
                                  source=spooled, source_offset=offset)
        meta = InstanceMeta(sop_class_uid=sop_class, sop_instance_uid=sop_uid, kind=kind,
                            role=role, calling_ae=session.calling_ae,
                            association_id=session.association_id, **vars(header))
        self._store.store_instance(data=content, meta=meta)
        return meta, size


def _status(reply: StatusReply) -> Dataset:
    ds = Dataset()
    ds.Status = int(reply.status)
    if reply.comment:
        ds.ErrorComment = reply.comment
    return ds
