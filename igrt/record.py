"""The record of an approved correction (CONTRACT §8): the entry point the approval calls.

:func:`build_record` turns a stored correction into its DICOM Spatial Registration object (the
measured CBCT → planning registration stored with the message, both series referenced from the
store's index, the patient and study of the CBCT, the operator); :func:`queue_record` builds it
and queues it durably for every destination. The approval, which must store its decision and
the record in one transaction, calls :func:`build_record` first (it reads files) and then
:func:`igrt.store.records_queue.insert_record` inside that transaction. The sender
(``services.record_sender``) delivers what is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from io import BytesIO
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from igrt.core.clock import iso_utc, utc_now
from igrt.core.errors import RecordError
from igrt.core.plan import normalise_patient_id
from igrt.dicom.identity import new_uid, software_version
from igrt.dicom.reg_writer import (
    RecordContent,
    SeriesReference,
    check_operator,
    patient_study_of,
    spatial_registration,
)
from igrt.store import ObjectRecord, Store
from igrt.store.records_queue import RecordObject

log = logging.getLogger(__name__)


def build_record(store: Store, seq: int, *, operator: str, approved_at: datetime,
                 room: str) -> RecordObject:
    """The record of correction ``seq``, encoded. Refuses (:class:`RecordError`, a sentence) a
    seq that is unknown or ``failed``, a message without its registration matrix, a CBCT or
    planning CT no longer held, or a CBCT whose Patient ID is not the message's."""
    message = store.correction_by_seq(seq)
    if message is None:
        raise RecordError(f"seq {seq} is not a stored correction; no record is written")
    if message.get("status") == "failed" or message.get("measured") is None:
        raise RecordError(f"seq {seq} is a failed correction; there is nothing to record")
    details: dict[str, Any] = message.get("registration") or {}
    matrix = details.get("cbct_to_planning")
    if matrix is None:
        raise RecordError(
            f"seq {seq} holds no registration matrix (computed by an older igrt); register the "
            "CBCT again to record it")
    cbct_uid = str((message.get("cbct") or {}).get("series_uid") or "")
    planning_uid = str(details.get("planning_ct_series_uid") or "")
    cbct = _series(store, cbct_uid, "CBCT", seq)
    planning = _series(store, planning_uid, "planning CT", seq)
    header = pydicom.dcmread(cbct[0].path, stop_before_pixels=True)
    patient_id = str(message.get("patient_id") or "")
    if normalise_patient_id(str(header.get("PatientID", ""))) != normalise_patient_id(patient_id):
        raise RecordError(
            f"the stored CBCT of seq {seq} is not for patient {patient_id!r}; no record is written")
    content = RecordContent(
        sop_instance_uid=str(new_uid()), series_uid=str(new_uid()), seq=seq, room=room,
        operator=check_operator(operator), approved_at=approved_at,
        cbct=_reference(cbct), planning_ct=_reference(planning),
        cbct_to_planning=np.asarray(matrix, dtype=np.float64),
        patient_study=patient_study_of(header), software_version=software_version(),
        couch_dof=int(message.get("couch_dof") or 6))
    data = encode(spatial_registration(content))
    return RecordObject(seq=seq, sop_instance_uid=content.sop_instance_uid,
                        cbct_series_uid=cbct_uid, planning_series_uid=planning_uid,
                        operator=content.operator, approved_at=iso_utc(approved_at), data=data)


def queue_record(store: Store, seq: int, *, operator: str, destinations: Sequence[str],
                 room: str, approved_at: datetime | None = None) -> RecordObject:
    """Build the record of ``seq`` and queue it durably for ``destinations`` (AE titles), in a
    transaction of its own."""
    record = build_record(store, seq, operator=operator, approved_at=approved_at or utc_now(),
                          room=room)
    store.queue_record(record, destinations)
    return record


def encode(ds: Dataset) -> bytes:
    """Part-10 bytes of ``ds`` (its own file meta, igrt's implementation identity kept)."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _series(store: Store, series_uid: str, what: str, seq: int) -> list[ObjectRecord]:
    objects = store.series_objects(series_uid) if series_uid else []
    if not objects:
        raise RecordError(
            f"the {what} series {series_uid or '(none)'} of seq {seq} is no longer held by the "
            "store; no record is written")
    return objects


def _reference(objects: Sequence[ObjectRecord]) -> SeriesReference:
    first = objects[0]
    if first.frame_of_reference_uid is None:
        raise RecordError(f"series {first.series_uid} has no Frame of Reference UID")
    return SeriesReference(
        study_uid=first.study_uid, series_uid=first.series_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        instances=tuple((o.sop_class_uid, o.sop_instance_uid) for o in objects))
