"""Synthetic DICOM instances for tests (pydicom only): small CT series with a known pattern.

Every voxel of a default series has a unique HU value, ``hu_pattern(s, r, c)`` for written slice
``s`` (in the order the factory writes them, not necessarily the volume order), row ``r`` and
column ``c``, so a test can find where each stored pixel landed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

ROWS = 12
COLUMNS = 16
N_SLICES = 10
PIXEL_SPACING_MM = (0.8, 0.5)  # DICOM order: between rows (j), between columns (i)
SLICE_SPACING_MM = 2.0

Vec3 = tuple[float, float, float]


def uid(*parts: object) -> str:
    """A deterministic UID from ``parts``."""
    return str(generate_uid(entropy_srcs=[repr(p) for p in parts]))


def hu_pattern(n_slices: int = N_SLICES, rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    """``hu[s, r, c] = c + columns*r + columns*rows*s - 1024``: unique per voxel, integral."""
    s, r, c = np.meshgrid(np.arange(n_slices), np.arange(rows), np.arange(columns), indexing="ij")
    return (c + columns * r + columns * rows * s - 1024).astype(np.float64)


def normal(row_cosine: Vec3, column_cosine: Vec3) -> np.ndarray:
    return np.cross(np.asarray(row_cosine, float), np.asarray(column_cosine, float))


def ct_series(
    *,
    n_slices: int = N_SLICES,
    rows: int = ROWS,
    columns: int = COLUMNS,
    row_cosine: Vec3 = (1.0, 0.0, 0.0),
    column_cosine: Vec3 = (0.0, 1.0, 0.0),
    first_position_mm: Vec3 = (-10.0, -20.0, 30.0),
    step_mm: Sequence[float] | None = None,
    positions_mm: Sequence[Sequence[float]] | None = None,
    pixel_spacing_mm: tuple[float, float] = PIXEL_SPACING_MM,
    slice_thickness_mm: float = SLICE_SPACING_MM,
    hu: np.ndarray | None = None,
    slopes: float | Sequence[float] = 1.0,
    intercepts: float | Sequence[float] = -1024.0,
    signed: bool = False,
    patient_id: str = "PAT-001",
    patient_position: str | None = "HFS",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    name: str = "ct",
    padding_value: int | None = None,
    padding_range_limit: int | None = None,
) -> list[Dataset]:
    """Single-frame CT Image Storage instances, one per slice, in writing order ``s``.

    Slice ``s`` sits at ``positions_mm[s]`` if given, else ``first_position_mm + s * step_mm``
    (default step: ``SLICE_SPACING_MM`` along ``row_cosine x column_cosine``). Stored values are
    ``(hu - intercept) / slope``, which must be integral.
    """
    if positions_mm is None:
        step = (
            SLICE_SPACING_MM * normal(row_cosine, column_cosine)
            if step_mm is None
            else np.asarray(step_mm, float)
        )
        positions = [np.asarray(first_position_mm, float) + s * step for s in range(n_slices)]
    else:
        positions = [np.asarray(p, float) for p in positions_mm]
        n_slices = len(positions)
    values = hu_pattern(n_slices, rows, columns) if hu is None else np.asarray(hu, float)
    slope_list = _per_slice(slopes, n_slices)
    intercept_list = _per_slice(intercepts, n_slices)
    study = study_uid or uid(name, "study")
    series = series_uid or uid(name, "series")
    for_uid = frame_of_reference_uid or uid(name, "for")
    out = []
    for s in range(n_slices):
        ds = _ct_base(
            CTImageStorage, uid(name, series, "instance", s), patient_id, study, series, for_uid
        )
        ds.PatientPosition = patient_position if patient_position is not None else ""
        ds.InstanceNumber = s + 1
        ds.ImagePositionPatient = [_ds_number(v) for v in positions[s]]
        ds.ImageOrientationPatient = [_ds_number(v) for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [_ds_number(v) for v in pixel_spacing_mm]
        ds.SliceThickness = _ds_number(slice_thickness_mm)
        ds.RescaleSlope = _ds_number(slope_list[s])
        ds.RescaleIntercept = _ds_number(intercept_list[s])
        ds.RescaleType = "HU"
        stored = _stored(values[s], slope_list[s], intercept_list[s], signed)
        _set_pixels(ds, stored, signed, padding_value, padding_range_limit)
        out.append(ds)
    return out


def enhanced_ct(
    singles: Sequence[Dataset],
    *,
    name: str = "enhanced",
    shared_orientation: bool = True,
    shared_measures: bool = True,
    shared_rescale: bool = False,
) -> Dataset:
    """One Enhanced CT instance holding the slices of ``singles`` as frames, in that order.

    Plane Position and Pixel Value Transformation are per-frame (the latter shared if
    ``shared_rescale``, taken from the first slice); Plane Orientation and Pixel Measures are
    shared unless told otherwise. Patient, study, series and FoR come from the first slice.
    """
    first = singles[0]
    ds = _ct_base(
        EnhancedCTImageStorage,
        uid(name, first.SeriesInstanceUID, "instance"),
        first.PatientID,
        first.StudyInstanceUID,
        first.SeriesInstanceUID,
        first.FrameOfReferenceUID,
    )
    ds.PatientPosition = first.PatientPosition
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(singles)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        if keyword in first:
            setattr(ds, keyword, first[keyword].value)

    def item(**attrs: object) -> Dataset:
        inner = Dataset()
        for key, value in attrs.items():
            setattr(inner, key, value)
        return inner

    def orientation(single: Dataset) -> Dataset:
        return item(
            PlaneOrientationSequence=[item(ImageOrientationPatient=single.ImageOrientationPatient)]
        )

    def measures(single: Dataset) -> Dataset:
        return item(
            PixelMeasuresSequence=[
                item(PixelSpacing=single.PixelSpacing, SliceThickness=single.SliceThickness)
            ]
        )

    def rescale(single: Dataset) -> Dataset:
        return item(
            PixelValueTransformationSequence=[
                item(
                    RescaleSlope=single.RescaleSlope,
                    RescaleIntercept=single.RescaleIntercept,
                    RescaleType="HU",
                )
            ]
        )

    shared = Dataset()
    for flag, make in (
        (shared_orientation, orientation),
        (shared_measures, measures),
        (shared_rescale, rescale),
    ):
        if flag:
            shared.update(make(first))
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for single in singles:
        group = item(
            PlanePositionSequence=[item(ImagePositionPatient=single.ImagePositionPatient)],
            FrameContentSequence=[item(InStackPositionNumber=int(single.InstanceNumber))],
        )
        for flag, make in (
            (shared_orientation, orientation),
            (shared_measures, measures),
            (shared_rescale, rescale),
        ):
            if not flag:
                group.update(make(single))
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    for keyword in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    ):
        setattr(ds, keyword, first[keyword].value)
    ds.PixelData = b"".join(single.PixelData for single in singles)
    return ds


def instance(
    sop_class_uid: str,
    *,
    name: str,
    patient_id: str = "PAT-001",
    modality: str = "RTPLAN",
    series_uid: str | None = None,
) -> Dataset:
    """A minimal non-image instance (RT Plan, RT Struct, Spatial Registration, ...)."""
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class_uid, uid(name, "instance"))
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = uid(name, "instance")
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = "Test^Synthetic"
    ds.StudyInstanceUID = uid(name, "study")
    ds.SeriesInstanceUID = series_uid or uid(name, "series")
    ds.FrameOfReferenceUID = uid(name, "for")
    return ds


def write(datasets: Sequence[Dataset], directory: Path, *, prefix: str = "ct") -> list[Path]:
    """Write each dataset as a DICOM Part 10 file ``<prefix>_<n>.dcm``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets):
        if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
        path = directory / f"{prefix}_{n:03d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


# --- helpers -------------------------------------------------------------------------------------
def _per_slice(value: float | Sequence[float], n: int) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    values = [float(v) for v in value]
    assert len(values) == n, f"{len(values)} values for {n} slices"
    return values


def _ds_number(value: float) -> str:
    """A DS string (<= 16 characters) that round-trips ``value`` as closely as DS allows."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.8g}"
    return text


def _stored(hu: np.ndarray, slope: float, intercept: float, signed: bool) -> npt.NDArray[np.int64]:
    raw = (hu - intercept) / slope
    stored = np.rint(raw).astype(np.int64)
    assert np.array_equal(stored, raw), "hu, slope and intercept give non-integral stored values"
    lo, hi = (-32768, 32767) if signed else (0, 65535)
    assert stored.min() >= lo and stored.max() <= hi, "stored values out of range"
    return stored


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _ct_base(
    sop_class: str, sop_uid: str, patient_id: str, study: str, series: str, for_uid: str
) -> Dataset:
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "CT"
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = for_uid
    ds.SeriesDescription = "synthetic CT"
    ds.SeriesNumber = 1
    return ds


def _set_pixels(
    ds: Dataset,
    stored: np.ndarray,
    signed: bool,
    padding_value: int | None,
    padding_range_limit: int | None,
) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    vr = "SS" if signed else "US"
    if padding_value is not None:
        ds.add_new(0x00280120, vr, padding_value)
    if padding_range_limit is not None:
        ds.add_new(0x00280121, vr, padding_range_limit)
    ds.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()
