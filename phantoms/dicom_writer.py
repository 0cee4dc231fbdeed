"""DICOM Part 10 writers for the phantoms: CT image series, RT Plan, RT Structure Set, SRO.

Explicit VR little endian unless told otherwise; CT series can also be written implicit VR,
deflated, RLE Lossless or JPEG 2000 Lossless (encoded by pydicom). Stored values are int16 with
``RescaleSlope 1`` / ``RescaleIntercept -1024``. UIDs come from :class:`UidSource` (deterministic
given its entropy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
    generate_uid,
)

from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64
from igrt.dicom.identity import file_meta
from igrt.dicom.values import dataset
from igrt.dicom.values import decimal_string as ds  # the phantoms' DS writer

logger = logging.getLogger(__name__)



RESCALE_INTERCEPT = -1024
STORED_MAX = 4095  # HU 3071
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
COMPRESSED = (RLELossless, JPEG2000Lossless)


def stored_value(hu: float) -> int:
    """Stored pixel value of ``hu`` with the rescale used here."""
    return int(round(hu)) - RESCALE_INTERCEPT


class UidSource:
    """Deterministic UIDs: the same entropy and role always give the same UID."""

    def __init__(self, *entropy: object) -> None:
        self._entropy = [str(e) for e in entropy]

    def uid(self, *role: object) -> str:
        return str(generate_uid(entropy_srcs=[*self._entropy, *(str(r) for r in role)]))


@dataclass(frozen=True)
class Subject:
    """Patient and study of a set of objects."""

    patient_id: str
    patient_name: str
    study_uid: str
    study_description: str
    study_date: str = "20260315"
    study_time: str = "083000"


@dataclass(frozen=True)
class ImageSeries:
    """Series-level description and voxel geometry (ITK convention) of a CT image series."""

    series_uid: str
    frame_of_reference_uid: str
    series_number: int
    series_description: str
    patient_position: str
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: F64
    image_comments: str = ""
    kvp: float = 120.0


@dataclass(frozen=True)
class Roi:
    number: int
    name: str
    interpreted_type: str  # EXTERNAL, PTV, CONTROL, ...
    color: tuple[int, int, int]
    contours: tuple[tuple[float, F64], ...]  # (slice z, closed (n, 2) polygon of x, y)


def _dataset(
    sop_class: UID,
    sop_uid: str,
    subject: Subject,
    *,
    modality: str,
    series_uid: str,
    series_number: int,
    series_description: str,
    frame_of_reference_uid: str | None = None,
    instance_number: int = 1,
) -> Dataset:
    """The modules every object shares (patient, study, series, SOP common, equipment), and the
    Frame of Reference module when ``frame_of_reference_uid`` is given. Objects with a General
    Series module (images, registrations) add Laterality and their Content Date/Time."""
    d = Dataset()
    d.file_meta = file_meta(sop_class, sop_uid)
    d.SpecificCharacterSet = "ISO_IR 100"
    d.SOPClassUID = sop_class
    d.SOPInstanceUID = sop_uid
    d.StudyDate = d.SeriesDate = subject.study_date
    d.StudyTime = d.SeriesTime = subject.study_time
    d.AccessionNumber = ""
    d.Modality = modality
    d.Manufacturer = "igrt phantoms"
    d.ReferringPhysicianName = ""
    d.OperatorsName = ""  # Type 2 in the RT Series module
    d.StudyDescription = subject.study_description
    d.SeriesDescription = series_description
    d.PatientName = subject.patient_name
    d.PatientID = subject.patient_id
    d.PatientBirthDate = ""
    d.PatientSex = "O"
    d.StudyInstanceUID = subject.study_uid
    d.SeriesInstanceUID = series_uid
    d.StudyID = "1"
    d.SeriesNumber = series_number
    d.InstanceNumber = instance_number
    if frame_of_reference_uid is not None:
        d.FrameOfReferenceUID = frame_of_reference_uid
        d.PositionReferenceIndicator = ""
    return d


def _general_series(d: Dataset, subject: Subject) -> None:
    d.Laterality = ""  # Type 2C: the phantoms image no paired organ on its own
    d.ContentDate, d.ContentTime = subject.study_date, subject.study_time


def _save(d: Dataset, path: Path) -> None:
    d.save_as(path, enforce_file_format=True)


def write_image_series(
    directory: Path,
    subject: Subject,
    series: ImageSeries,
    hu: F32,
    uids: UidSource,
    *,
    outside: npt.NDArray[np.bool_] | None = None,
    outside_hu: float = -1000.0,
    padding_attribute: bool = False,
    transfer_syntax: str | None = None,
) -> list[tuple[str, tuple[float, float, float]]]:
    """Write ``hu[k, j, i]`` as one CT Image Storage file per slice (named by SOP Instance UID,
    so name order is not slice order). Voxels in ``outside`` get ``outside_hu``, written as
    PixelPaddingValue when ``padding_attribute``. Returns (SOP Instance UID, ImagePositionPatient)
    per slice index ``k``."""
    ts = UID(transfer_syntax or ExplicitVRLittleEndian)
    if ts not in UNCOMPRESSED + COMPRESSED:
        raise ValueError(
            f"transfer syntax {ts} is not supported by the phantom writer; use one of "
            + ", ".join(str(u) for u in UNCOMPRESSED + COMPRESSED)
        )
    directory.mkdir(parents=True, exist_ok=True)
    pad = stored_value(outside_hu)
    origin = np.asarray(series.origin_mm, dtype=np.float64)
    slice_step = series.direction[:, 2] * series.spacing_mm[2]
    iop = [ds(v) for v in (*series.direction[:, 0], *series.direction[:, 1])]
    refs: list[tuple[str, tuple[float, float, float]]] = []
    for k in range(hu.shape[0]):
        sop_uid = uids.uid("image", series.series_uid, k)
        position = origin + k * slice_step
        ipp = [ds(v) for v in position]
        d = _dataset(
            CTImageStorage,
            sop_uid,
            subject,
            modality="CT",
            series_uid=series.series_uid,
            series_number=series.series_number,
            series_description=series.series_description,
            frame_of_reference_uid=series.frame_of_reference_uid,
            instance_number=k + 1,
        )
        _general_series(d, subject)
        d.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        d.PatientPosition = series.patient_position
        d.KVP = ds(series.kvp)
        d.SliceThickness = ds(series.spacing_mm[2])
        d.AcquisitionNumber = 1
        d.ImagePositionPatient = ipp
        d.ImageOrientationPatient = iop
        d.SliceLocation = ipp[2]
        d.PixelSpacing = [ds(series.spacing_mm[1]), ds(series.spacing_mm[0])]  # row, column
        d.SamplesPerPixel = 1
        d.PhotometricInterpretation = "MONOCHROME2"
        d.Rows, d.Columns = int(hu.shape[1]), int(hu.shape[2])
        d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 16, 15, 1
        d.RescaleIntercept = ds(RESCALE_INTERCEPT)
        d.RescaleSlope = "1"
        d.RescaleType = "HU"
        d.WindowCenter, d.WindowWidth = "40", "400"
        if series.image_comments:
            d.ImageComments = series.image_comments
        if padding_attribute:
            d.add_new(0x00280120, "SS", pad)  # PixelPaddingValue, in stored units
        pixels = np.clip(np.rint(hu[k]) - RESCALE_INTERCEPT, 0, STORED_MAX).astype(np.int16)
        if outside is not None:
            pixels[outside[k]] = pad
        if ts in COMPRESSED:
            d.compress(ts, pixels, generate_instance_uid=False)
        else:
            d.file_meta.TransferSyntaxUID = ts
            d.PixelData = pixels.tobytes()
        _save(d, directory / f"CT.{sop_uid}.dcm")
        refs.append((sop_uid, (float(ipp[0]), float(ipp[1]), float(ipp[2]))))
    logger.info("wrote %d %s slices of series %s", len(refs), ts.name, series.series_uid)
    return refs


def write_rt_plan(
    directory: Path,
    subject: Subject,
    uids: UidSource,
    *,
    frame_of_reference_uid: str,
    patient_position: str,
    isocenters_mm: Sequence[tuple[float, float, float]],
    structure_set_uid: str,
    label: str,
) -> str:
    """RT Plan with at least two static photon beams; beam ``b`` is centred on
    ``isocenters_mm[b % len(isocenters_mm)]`` (one beam per isocentre when there are several)."""
    sop_uid = uids.uid("rtplan")
    d = _dataset(RTPlanStorage, sop_uid, subject, modality="RTPLAN",
                 series_uid=uids.uid("rtplan-series"), series_number=3,
                 series_description="RT Plan", frame_of_reference_uid=frame_of_reference_uid)
    d.RTPlanLabel = label
    d.RTPlanName = label
    d.RTPlanDate, d.RTPlanTime = subject.study_date, subject.study_time
    d.RTPlanGeometry = "PATIENT"
    d.ApprovalStatus = "APPROVED"
    d.ReviewDate, d.ReviewTime = subject.study_date, subject.study_time  # Approval module, 2C
    d.ReviewerName = "PHYSICIST^PHANTOM"
    ref_ss = Dataset()
    ref_ss.ReferencedSOPClassUID = RTStructureSetStorage
    ref_ss.ReferencedSOPInstanceUID = structure_set_uid
    d.ReferencedStructureSetSequence = DicomSequence([ref_ss])
    setup = Dataset()
    setup.PatientPosition = patient_position
    setup.PatientSetupNumber = 1
    setup.SetupTechnique = "ISOCENTRIC"
    d.PatientSetupSequence = DicomSequence([setup])
    n_beams = max(2, len(isocenters_mm))
    gantry = [0.0, 90.0, 180.0, 270.0, 45.0, 135.0, 225.0, 315.0]
    beams, refs = [], []
    for b in range(n_beams):
        iso = isocenters_mm[b % len(isocenters_mm)]
        beams.append(_beam(b + 1, gantry[b % len(gantry)], iso))
        ref = Dataset()
        ref.ReferencedBeamNumber = b + 1
        ref.BeamMeterset = "100.0"
        refs.append(ref)
    fraction = Dataset()
    fraction.FractionGroupNumber = 1
    fraction.NumberOfFractionsPlanned = 25
    fraction.NumberOfBeams = n_beams
    fraction.NumberOfBrachyApplicationSetups = 0
    fraction.ReferencedBeamSequence = DicomSequence(refs)
    d.FractionGroupSequence = DicomSequence([fraction])
    d.BeamSequence = DicomSequence(beams)
    directory.mkdir(parents=True, exist_ok=True)
    _save(d, directory / f"RP.{sop_uid}.dcm")
    return sop_uid


def _beam(number: int, gantry_deg: float, iso: tuple[float, float, float]) -> Dataset:
    jaws = ("ASYMX", "ASYMY")
    cp0 = dataset(
        ControlPointIndex=0, NominalBeamEnergy="6", GantryAngle=ds(gantry_deg),
        GantryRotationDirection="NONE", BeamLimitingDeviceAngle="0",
        BeamLimitingDeviceRotationDirection="NONE", PatientSupportAngle="0",
        PatientSupportRotationDirection="NONE", TableTopEccentricAngle="0",
        TableTopEccentricRotationDirection="NONE", IsocenterPosition=[ds(v) for v in iso],
        CumulativeMetersetWeight="0",
        BeamLimitingDevicePositionSequence=DicomSequence([
            dataset(RTBeamLimitingDeviceType=kind, LeafJawPositions=["-50", "50"])
            for kind in jaws]))
    cp1 = dataset(ControlPointIndex=1, CumulativeMetersetWeight="1")
    return dataset(
        BeamNumber=number, BeamName=f"G{int(gantry_deg):03d}", BeamType="STATIC",
        RadiationType="PHOTON", TreatmentMachineName="TB1", PrimaryDosimeterUnit="MU",
        SourceAxisDistance="1000", TreatmentDeliveryType="TREATMENT", NumberOfWedges=0,
        NumberOfCompensators=0, NumberOfBoli=0, NumberOfBlocks=0,
        FinalCumulativeMetersetWeight="1", NumberOfControlPoints=2,
        ReferencedPatientSetupNumber=1,
        BeamLimitingDeviceSequence=DicomSequence([
            dataset(RTBeamLimitingDeviceType=kind, NumberOfLeafJawPairs=1) for kind in jaws]),
        ControlPointSequence=DicomSequence([cp0, cp1]))


def write_rt_struct(
    directory: Path,
    subject: Subject,
    uids: UidSource,
    *,
    frame_of_reference_uid: str,
    ct_series_uid: str,
    slices: Sequence[tuple[str, tuple[float, float, float]]],
    rois: Sequence[Roi],
) -> str:
    """RT Structure Set with CLOSED_PLANAR contours on the CT slices (matched by z)."""
    sop_uid = uids.uid("rtstruct")
    d = _dataset(RTStructureSetStorage, sop_uid, subject, modality="RTSTRUCT",
                 series_uid=uids.uid("rtstruct-series"), series_number=2,
                 series_description="Structures", frame_of_reference_uid=frame_of_reference_uid)
    d.StructureSetLabel = "PHANTOM"
    d.StructureSetName = "PHANTOM"
    d.StructureSetDate, d.StructureSetTime = subject.study_date, subject.study_time
    by_z = {round(pos[2], 3): uid for uid, pos in slices}

    def image_ref(uid: str) -> Dataset:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = uid
        return ref

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = ct_series_uid
    series_ref.ContourImageSequence = DicomSequence([image_ref(uid) for uid, _ in slices])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = UID("1.2.840.10008.3.1.2.3.1")  # Detached Study (retired)
    study_ref.ReferencedSOPInstanceUID = subject.study_uid
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    for_ref = Dataset()
    for_ref.FrameOfReferenceUID = frame_of_reference_uid
    for_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    d.ReferencedFrameOfReferenceSequence = DicomSequence([for_ref])
    roi_items, contour_items, observations = [], [], []
    for roi in rois:
        item = Dataset()
        item.ROINumber = roi.number
        item.ReferencedFrameOfReferenceUID = frame_of_reference_uid
        item.ROIName = roi.name
        item.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(item)
        contours = []
        for z, polygon in roi.contours:
            c = Dataset()
            uid = by_z.get(round(z, 3))
            if uid is not None:
                c.ContourImageSequence = DicomSequence([image_ref(uid)])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(polygon)
            c.ContourData = [ds(v) for x, y in polygon for v in (x, y, z)]
            contours.append(c)
        rc = Dataset()
        rc.ReferencedROINumber = roi.number
        rc.ROIDisplayColor = list(roi.color)
        rc.ContourSequence = DicomSequence(contours)
        contour_items.append(rc)
        obs = Dataset()
        obs.ObservationNumber = roi.number
        obs.ReferencedROINumber = roi.number
        obs.RTROIInterpretedType = roi.interpreted_type
        obs.ROIInterpreter = ""
        observations.append(obs)
    d.StructureSetROISequence = DicomSequence(roi_items)
    d.ROIContourSequence = DicomSequence(contour_items)
    d.RTROIObservationsSequence = DicomSequence(observations)
    directory.mkdir(parents=True, exist_ok=True)
    _save(d, directory / f"RS.{sop_uid}.dcm")
    return sop_uid


def _matrix_item(frame_of_reference_uid: str, matrix: F64) -> Dataset:
    m = Dataset()
    m.FrameOfReferenceTransformationMatrixType = "RIGID"
    m.FrameOfReferenceTransformationMatrix = [ds(v) for v in np.asarray(matrix).ravel()]
    reg = Dataset()
    reg.MatrixSequence = DicomSequence([m])
    reg.RegistrationTypeCodeSequence = DicomSequence([])
    item = Dataset()
    item.FrameOfReferenceUID = frame_of_reference_uid
    item.MatrixRegistrationSequence = DicomSequence([reg])
    return item


def write_sro(
    directory: Path,
    subject: Subject,
    uids: UidSource,
    *,
    planning_frame_uid: str,
    cbct_frame_uid: str,
    cbct_series_uid: str,
    cbct_sop_uids: Sequence[str],
    cbct_to_planning: F64,
) -> str:
    """Spatial Registration: its Frame of Reference is the planning one; the registration item of
    the CBCT frame holds the matrix taking CBCT coordinates to planning coordinates. An identity
    item for the planning frame comes first, as consoles write it."""
    sop_uid = uids.uid("sro")
    d = _dataset(SpatialRegistrationStorage, sop_uid, subject, modality="REG",
                 series_uid=uids.uid("sro-series"), series_number=99,
                 series_description="CBCT registration", frame_of_reference_uid=planning_frame_uid)
    _general_series(d, subject)
    d.ContentLabel = "CBCT_NOMINAL"
    d.ContentDescription = "Nominal alignment of the CBCT to the planning frame"
    d.ContentCreatorName = ""
    def image_refs() -> DicomSequence:
        refs = []
        for uid in cbct_sop_uids:
            ref = Dataset()
            ref.ReferencedSOPClassUID = CTImageStorage
            ref.ReferencedSOPInstanceUID = uid
            refs.append(ref)
        return DicomSequence(refs)

    cbct_item = _matrix_item(cbct_frame_uid, cbct_to_planning)
    cbct_item.ReferencedImageSequence = image_refs()
    d.RegistrationSequence = DicomSequence([_matrix_item(planning_frame_uid, np.eye(4)), cbct_item])
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = cbct_series_uid
    series_ref.ReferencedInstanceSequence = image_refs()
    d.ReferencedSeriesSequence = DicomSequence([series_ref])
    directory.mkdir(parents=True, exist_ok=True)
    _save(d, directory / f"REG.{sop_uid}.dcm")
    return sop_uid
