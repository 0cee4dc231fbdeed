"""The DICOM record of an approved correction: a Spatial Registration object (Modality REG) of
the registration behind it (CONTRACT §8). Inputs in, a pydicom ``Dataset`` out; no I/O.

Convention (PS3.3 C.20.2.1.1, the one ``igrt.core.spatial_registration`` reads): the object's own
Frame of Reference is the planning CT's. The first Registration Sequence item is the planning
frame with the identity; the second holds the matrix ``T`` that maps CBCT coordinates into
planning coordinates (``p_plan = T @ [p_cbct, 1]``), so the CBCT origin maps to where that point
lies in planning coordinates. When the CBCT shares the planning Frame of Reference, that item
names the CBCT images only (no Frame of Reference UID: PS3.3 allows it when the Referenced Image
Sequence is present), since an item for the object's own frame must carry the identity.

Both series are referenced instance by instance (Common Instance Reference module): the CBCT's
in the object's study (the treatment session's), the planning CT's under "other studies" when it
belongs to another study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import SpatialRegistrationStorage

from igrt.core.errors import RecordError
from igrt.core.geometry import is_rigid
from igrt.core.types import FloatArray
from igrt.dicom.identity import MANUFACTURER, file_meta
from igrt.dicom.values import dataset, decimal_string, text

#: Series Number of igrt's records (one new series per record).
SERIES_NUMBER = 9001
#: Copied from the CBCT: the Patient and General Study modules, and its Body Part Examined.
COPIED_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "BodyPartExamined",
)
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
           "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")
LABEL_MAX = 16  # VR CS
DESCRIPTION_MAX = 64  # VR LO


@dataclass(frozen=True)
class SeriesReference:
    """One registered image series and its instances ``(SOP Class UID, SOP Instance UID)``."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    instances: tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)
class RecordContent:
    """What the record says. ``cbct_to_planning``: 4x4, CBCT point -> planning point (mm);
    ``approved_at``: an aware datetime; ``patient_study``: the CBCT's Patient and General Study
    attributes (:func:`patient_study_of`)."""

    sop_instance_uid: str
    series_uid: str
    seq: int
    room: str
    operator: str
    approved_at: datetime
    cbct: SeriesReference
    planning_ct: SeriesReference
    cbct_to_planning: FloatArray
    patient_study: Dataset
    software_version: str
    couch_dof: int = 6


def patient_study_of(header: Any) -> Dataset:
    """The Patient and General Study attributes of a CBCT instance (a pydicom dataset)."""
    out = Dataset()
    for keyword in COPIED_KEYWORDS:
        if keyword in header:
            out[keyword] = header[keyword]
    return out


def content_label(seq: int) -> str:
    """``IGRT_SEQ_<seq>`` (VR CS: upper case, digits, ``_``; at most 16 characters)."""
    label = f"IGRT_SEQ_{seq}"
    if len(label) > LABEL_MAX:
        label = f"IGRT_{seq}"[:LABEL_MAX]
    return label


def spatial_registration(content: RecordContent) -> Dataset:
    """The Spatial Registration dataset (with its file meta) of one approved correction."""
    matrix = np.asarray(content.cbct_to_planning, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or not is_rigid(matrix):
        raise RecordError(
            f"the registration of seq {content.seq} is not a finite rigid 4x4 matrix; "
            "no record is written")
    operator = check_operator(content.operator)
    when = content.approved_at.astimezone(UTC)
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")[:13]
    d = Dataset()
    d.file_meta = file_meta(SpatialRegistrationStorage, content.sop_instance_uid)
    d.SpecificCharacterSet = "ISO_IR 192"
    d.InstanceCreationDate, d.InstanceCreationTime = date, time
    d.SOPClassUID = SpatialRegistrationStorage
    d.SOPInstanceUID = content.sop_instance_uid
    _patient_study(d, content.patient_study)
    # General Series + Spatial Registration Series
    d.Modality = "REG"
    d.SeriesInstanceUID = content.series_uid
    d.SeriesNumber = SERIES_NUMBER
    d.SeriesDate, d.SeriesTime = date, time
    d.SeriesDescription = "igrt approved registration"
    if "BodyPartExamined" not in d:
        d.Laterality = ""  # Type 2C, required (empty: unknown) when no body part is named
    d.OperatorsName = operator
    # Frame of Reference: the planning CT's
    d.FrameOfReferenceUID = content.planning_ct.frame_of_reference_uid
    d.PositionReferenceIndicator = ""
    # General and Enhanced General Equipment
    d.Manufacturer = MANUFACTURER
    d.ManufacturerModelName = MANUFACTURER
    d.DeviceSerialNumber = content.room
    d.SoftwareVersions = content.software_version
    d.StationName = content.room[:16]
    # Spatial Registration (with the Content Identification macro)
    d.InstanceNumber = 1
    d.ContentLabel = content_label(content.seq)
    d.ContentDescription = _description(content)
    d.ContentCreatorName = operator
    d.ContentDate, d.ContentTime = date, time
    d.RegistrationSequence = DicomSequence([
        _item(content.planning_ct, np.eye(4), with_frame=True),
        _item(content.cbct, matrix, with_frame=(
            content.cbct.frame_of_reference_uid != content.planning_ct.frame_of_reference_uid)),
    ])
    _references(d, content)
    return d


def check_operator(operator: str) -> str:
    """The operator as a Person Name value: refused (:class:`RecordError`) when empty, longer than
    64 characters, or holding a backslash or a control character."""
    name = operator.strip()
    if not name or len(name) > 64 or any(c == "\\" or ord(c) < 32 for c in name):
        raise RecordError(
            f"operator {operator[:80]!r} cannot be recorded: give 1 to 64 characters, no "
            "backslash or control characters")
    return name


def _patient_study(d: Dataset, source: Dataset) -> None:
    for keyword in COPIED_KEYWORDS:
        if keyword in source:
            d[keyword] = source[keyword]
    for keyword in _TYPE_2:
        if keyword not in d:
            setattr(d, keyword, "")
    if text(d, "StudyInstanceUID") is None:
        raise RecordError("the CBCT has no Study Instance UID; no record is written")


def _description(content: RecordContent) -> str:
    text_ = (f"igrt seq {content.seq} room {content.room}: CBCT to planning CT, measured "
             f"6-DoF (couch {content.couch_dof} DoF)")
    return text_[:DESCRIPTION_MAX]


def _item(series: SeriesReference, matrix: FloatArray, *, with_frame: bool) -> Dataset:
    m = Dataset()
    m.FrameOfReferenceTransformationMatrixType = "RIGID"
    m.FrameOfReferenceTransformationMatrix = [decimal_string(v) for v in matrix.ravel()]
    registration = Dataset()
    registration.RegistrationTypeCodeSequence = DicomSequence([])
    registration.MatrixSequence = DicomSequence([m])
    item = Dataset()
    item.ReferencedImageSequence = _instances(series.instances)
    if with_frame:
        item.FrameOfReferenceUID = series.frame_of_reference_uid
    item.MatrixRegistrationSequence = DicomSequence([registration])
    return item


def _instances(instances: Sequence[tuple[str, str]]) -> DicomSequence:
    return DicomSequence([dataset(ReferencedSOPClassUID=sop_class,
                                  ReferencedSOPInstanceUID=sop_instance)
                          for sop_class, sop_instance in instances])


def _series_item(series: SeriesReference) -> Dataset:
    item = Dataset()
    item.SeriesInstanceUID = series.series_uid
    item.ReferencedInstanceSequence = _instances(series.instances)
    return item


def _references(d: Dataset, content: RecordContent) -> None:
    """Common Instance Reference: series of this study, then those of other studies."""
    own_study = str(d.StudyInstanceUID)
    here = [s for s in (content.cbct, content.planning_ct) if s.study_uid == own_study]
    elsewhere = [s for s in (content.cbct, content.planning_ct) if s.study_uid != own_study]
    if here:
        d.ReferencedSeriesSequence = DicomSequence([_series_item(s) for s in here])
    if elsewhere:
        studies = []
        for series in elsewhere:
            study = Dataset()
            study.StudyInstanceUID = series.study_uid
            study.ReferencedSeriesSequence = DicomSequence([_series_item(series)])
            studies.append(study)
        d.StudiesContainingOtherReferencedInstancesSequence = DicomSequence(studies)

