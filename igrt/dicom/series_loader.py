"""DICOM adapter for series assembly: pydicom datasets -> ``igrt.core.series`` -> ``Volume``.

This module only pulls attributes and pixels out of datasets; whether the slices form a regular
volume is decided by the pure :func:`igrt.core.series.stack_geometry`. Supported: CT Image Storage
(one slice per instance) and Enhanced CT Image Storage (multi-frame, geometry and rescale in the
per-frame or shared functional groups), in any transfer syntax pydicom can decode with the
installed plugins (JPEG lossless, JPEG-LS and JPEG 2000 via pylibjpeg, RLE natively).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, CTImageStorage

from igrt.core.errors import (
    DuplicateSliceError,
    InvalidAttributeError,
    MissingAttributeError,
    MixedSeriesError,
    NotCtError,
    SeriesError,
    UnreadableError,
)
from igrt.core.image_series import ImageSeries, SeriesInfo
from igrt.core.series import SliceGeometry, StackGeometry, stack_geometry
from igrt.core.volume import Volume
from igrt.dicom.sop import IMAGE_SOP_CLASSES
from igrt.dicom.values import iso_datetime

logger = logging.getLogger(__name__)

#: Attributes every instance must carry, whatever its SOP class (checked in this order).
_REQUIRED_HEADER = (
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
)
#: Attributes that must be the same in every instance of one series.
_SERIES_WIDE = (
    ("StudyInstanceUID", "Study Instance UIDs"),
    ("FrameOfReferenceUID", "Frame of Reference UIDs"),
    ("PatientID", "Patient IDs"),
    ("PatientPosition", "Patient Positions"),
    ("SOPClassUID", "SOP Classes"),
)


@dataclass(frozen=True)
class _Frame:
    """One slice: which instance and frame it comes from, its geometry and rescale."""

    instance: int
    frame: int
    geometry: SliceGeometry
    slope: float
    intercept: float


def load_series_files(paths: Iterable[str | PathLike[str]]) -> ImageSeries:
    """Read the files (full datasets, pixels included) and :func:`load_series` them."""
    datasets = []
    for path in paths:
        try:
            datasets.append(pydicom.dcmread(path))
        except Exception as exc:  # noqa: BLE001 - any failure to parse is "unreadable"
            raise UnreadableError(
                f"{path} is not a readable DICOM file: {type(exc).__name__}: {exc}"
            ) from exc
    return load_series(datasets)


def load_series(datasets: Sequence[Dataset]) -> ImageSeries:
    """Assemble CT (single-frame) or Enhanced CT (multi-frame) instances of one series.

    Raises the specific ``igrt.core.errors.SeriesError`` subclass: NotCtError, MissingAttributeError
    (or :class:`InvalidAttributeError`), MixedSeriesError, DuplicateSliceError, MissingSliceError,
    IrregularSpacingError, GantryTiltError, UnreadableError, or those of ``igrt.core.series``.
    """
    if not datasets:
        raise SeriesError("no instances were given: a series needs at least two CT slices")
    labels = [_label(ds, n) for n, ds in enumerate(datasets)]
    for ds, label in zip(datasets, labels, strict=True):
        _check_header(ds, label)
    _check_one_series(datasets)

    frames: list[_Frame] = []
    for n, (ds, label) in enumerate(zip(datasets, labels, strict=True)):
        frames.extend(_frames(ds, n, label))
    stack = stack_geometry([f.geometry for f in frames])
    voxels, mask = _pixels(datasets, labels, frames, stack)

    first = datasets[0]
    instance_uids = tuple(
        dict.fromkeys(str(datasets[frames[k].instance].SOPInstanceUID) for k in stack.order)
    )
    position = str(first.get("PatientPosition") or "").strip() or None
    info = SeriesInfo(
        patient_id=str(first.PatientID),
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        modality=str(first.Modality),
        sop_class_uid=str(first.SOPClassUID),
        patient_position=position,
        series_description=str(first.get("SeriesDescription") or ""),
        n_instances=len(datasets),
        instance_uids=instance_uids,
        patient_name=str(first.get("PatientName") or ""),
        acquisition_datetime=_acquired(datasets),
    )
    volume = Volume(
        voxels=voxels,
        origin_mm=stack.origin_mm,
        spacing_mm=stack.spacing_mm,
        direction=stack.direction,
    )
    logger.info(
        "assembled series %s: %d instances, %d x %d x %d voxels, spacing %s mm",
        info.series_uid,
        info.n_instances,
        *stack.size_ijk,
        tuple(round(s, 4) for s in stack.spacing_mm),
    )
    return ImageSeries(info=info, volume=volume, padding_mask=mask)


def _acquired(datasets: Sequence[Dataset]) -> str | None:
    """The earliest acquisition (else content) date and time of the instances, ISO 8601."""
    found = []
    for ds in datasets:
        offset = ds.get("TimezoneOffsetFromUTC")
        when = (iso_datetime(ds.get("AcquisitionDateTime"), None, offset)
                or iso_datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"), offset)
                or iso_datetime(ds.get("ContentDate"), ds.get("ContentTime"), offset))
        if when is not None:
            found.append(when)
    return min(found) if found else None


# --- headers -------------------------------------------------------------------------------------
def _label(ds: Dataset, n: int) -> str:
    uid = str(ds.get("SOPInstanceUID") or "").strip()
    name = f"instance {uid}" if uid else f"instance #{n + 1} (no SOPInstanceUID)"
    number = ds.get("InstanceNumber")
    return f"{name} (InstanceNumber {number})" if number not in (None, "") else name


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if hasattr(value, "__len__"):  # bytes, MultiValue, Sequence
        return len(value) > 0
    return True


def _require(ds: Dataset, keyword: str, where: str) -> Any:
    value = ds.get(keyword)
    if not _present(value):
        raise MissingAttributeError(f"{keyword} is missing or empty in {where}")
    return value


def _check_header(ds: Dataset, label: str) -> None:
    sop_class = ds.get("SOPClassUID")
    if _present(sop_class) and str(sop_class) not in IMAGE_SOP_CLASSES:
        name = UID(str(sop_class)).name
        raise NotCtError(
            f"{label} is a {name} ({sop_class}), not CT Image Storage or Enhanced CT Image Storage"
        )
    for keyword in _REQUIRED_HEADER:
        _require(ds, keyword, label)
    if str(ds.Modality).strip() != "CT":
        raise NotCtError(f"{label} has Modality {ds.Modality!r}; only CT images are accepted")
    for keyword in ("Rows", "Columns", "PixelData"):
        _require(ds, keyword, label)
    spp = int(ds.get("SamplesPerPixel") or 1)
    if spp != 1:
        raise InvalidAttributeError(f"{label} has SamplesPerPixel {spp}; CT must be greyscale (1)")


def _instances(n: int) -> str:
    return f"{n} instance{'' if n == 1 else 's'}"


def _check_one_series(datasets: Sequence[Dataset]) -> None:
    series = Counter(str(ds.SeriesInstanceUID) for ds in datasets)
    if len(series) > 1:
        listed = ", ".join(f"{uid} ({_instances(n)})" for uid, n in series.most_common())
        raise MixedSeriesError(f"the instances belong to {len(series)} series: {listed}")
    uid = next(iter(series))
    for keyword, what in _SERIES_WIDE:
        values = Counter(str(ds.get(keyword) or "").strip() for ds in datasets)
        if len(values) > 1:
            listed = ", ".join(
                f"{v or '(empty)'} ({_instances(n)})" for v, n in values.most_common()
            )
            raise MixedSeriesError(f"series {uid} mixes {len(values)} {what}: {listed}")
    sops = Counter(str(ds.SOPInstanceUID) for ds in datasets)
    twice = [sop for sop, n in sops.items() if n > 1]
    if twice:
        raise DuplicateSliceError(
            f"series {uid}: instance {twice[0]} was given {sops[twice[0]]} times"
            + (f" ({len(twice)} instances given more than once)" if len(twice) > 1 else "")
        )


# --- geometry ------------------------------------------------------------------------------------
def _floats(value: Any, count: int, keyword: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in (value if hasattr(value, "__iter__") else [value]))
    except (TypeError, ValueError) as exc:
        raise InvalidAttributeError(f"{keyword} in {where} is not numeric: {value!r}") from exc
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise InvalidAttributeError(
            f"{keyword} in {where} must be {count} finite numbers, got {value!r}"
        )
    return values


def _slice_geometry(
    ipp_src: Dataset, iop_src: Dataset, ps_src: Dataset, ds: Dataset, where: str
) -> SliceGeometry:
    ipp = _floats(
        _require(ipp_src, "ImagePositionPatient", where), 3, "ImagePositionPatient", where
    )
    iop = _floats(
        _require(iop_src, "ImageOrientationPatient", where), 6, "ImageOrientationPatient", where
    )
    ps = _floats(_require(ps_src, "PixelSpacing", where), 2, "PixelSpacing", where)
    return SliceGeometry(
        position_mm=(ipp[0], ipp[1], ipp[2]),
        row_cosine=(iop[0], iop[1], iop[2]),
        column_cosine=(iop[3], iop[4], iop[5]),
        pixel_spacing_mm=(ps[0], ps[1]),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        instance_id=where,
    )


def _rescale(src: Dataset, where: str) -> tuple[float, float]:
    slope = _floats(_require(src, "RescaleSlope", where), 1, "RescaleSlope", where)[0]
    intercept = _floats(_require(src, "RescaleIntercept", where), 1, "RescaleIntercept", where)[0]
    if slope == 0:
        raise InvalidAttributeError(f"RescaleSlope in {where} is 0")
    return slope, intercept


def _frames(ds: Dataset, n: int, label: str) -> list[_Frame]:
    if str(ds.SOPClassUID) == CTImageStorage:
        geometry = _slice_geometry(ds, ds, ds, ds, label)
        slope, intercept = _rescale(ds, label)
        return [_Frame(n, 0, geometry, slope, intercept)]
    n_frames = int(_require(ds, "NumberOfFrames", label))
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else Dataset()
    per_frame = _require(ds, "PerFrameFunctionalGroupsSequence", label)
    if len(per_frame) != n_frames:
        raise InvalidAttributeError(
            f"{label} has NumberOfFrames {n_frames} but {len(per_frame)} items in "
            "PerFrameFunctionalGroupsSequence"
        )
    out = []
    for f, item in enumerate(per_frame):
        where = f"frame {f + 1} of {label}"

        def group(keyword: str, item: Dataset = item, where: str = where) -> Dataset:
            for source in (item, shared):
                seq = source.get(keyword)
                if seq:
                    return seq[0]
            raise MissingAttributeError(
                f"{keyword} is missing from both the per-frame and the shared functional groups "
                f"of {where}"
            )

        geometry = _slice_geometry(
            group("PlanePositionSequence"),
            group("PlaneOrientationSequence"),
            group("PixelMeasuresSequence"),
            ds,
            where,
        )
        slope, intercept = _rescale(group("PixelValueTransformationSequence"), where)
        out.append(_Frame(n, f, geometry, slope, intercept))
    return out


# --- pixels --------------------------------------------------------------------------------------
def _decode(ds: Dataset, label: str, n_frames: int) -> npt.NDArray[Any]:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing plugin, corrupt stream, wrong length
        name = UID(str(syntax)).name if syntax else "unknown transfer syntax"
        raise UnreadableError(
            f"the pixel data of {label} ({name}) cannot be decoded: {type(exc).__name__}: {exc}"
        ) from exc
    shape = (n_frames, int(ds.Rows), int(ds.Columns))
    if arr.size != math.prod(shape):
        raise UnreadableError(
            f"the pixel data of {label} decodes to shape {arr.shape}, expected {shape} "
            "(frames, rows, columns)"
        )
    return np.asarray(arr).reshape(shape)


def _padding_range(ds: Dataset, label: str) -> tuple[int, int] | None:
    value = ds.get("PixelPaddingValue")
    if not _present(value):
        return None
    lo = _stored_int(ds, value, "PixelPaddingValue", label)
    limit = ds.get("PixelPaddingRangeLimit")
    hi = lo if not _present(limit) else _stored_int(ds, limit, "PixelPaddingRangeLimit", label)
    return (min(lo, hi), max(lo, hi))


def _stored_int(ds: Dataset, value: Any, keyword: str, label: str) -> int:
    """A padding value as a stored pixel value, reinterpreting a US-encoded negative."""
    if isinstance(value, bytes):  # unresolved "US or SS" read without Pixel Representation
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        return int.from_bytes(value[:2], "little", signed=signed)
    number = int(_floats(value, 1, keyword, label)[0])
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1 and 2 ** (bits - 1) <= number < 2**bits:
        number -= 2**bits  # two's complement written with VR US
    return number


def _pixels(
    datasets: Sequence[Dataset],
    labels: Sequence[str],
    frames: Sequence[_Frame],
    stack: StackGeometry,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
    ni, nj, nk = stack.size_ijk
    voxels = np.empty((nk, nj, ni), dtype=np.float32)
    padding = [_padding_range(ds, label) for ds, label in zip(datasets, labels, strict=True)]
    mask = np.zeros(voxels.shape, dtype=bool) if any(p is not None for p in padding) else None
    k_of = {(frames[n].instance, frames[n].frame): k for k, n in enumerate(stack.order)}
    for n, (ds, label) in enumerate(zip(datasets, labels, strict=True)):
        n_frames = 1 if str(ds.SOPClassUID) == CTImageStorage else int(ds.NumberOfFrames)
        block = _decode(ds, label, n_frames)
        for f in range(n_frames):
            k = k_of[(n, f)]
            frame = frames[stack.order[k]]
            stored = block[f]
            # float32 throughout: stored CT values (<= 16 bits) are exact in float32.
            np.multiply(stored, np.float32(frame.slope), out=voxels[k], dtype=np.float32)
            voxels[k] += np.float32(frame.intercept)
            pad = padding[n]
            if mask is not None and pad is not None:
                np.logical_and(stored >= pad[0], stored <= pad[1], out=mask[k])
    return voxels, mask
