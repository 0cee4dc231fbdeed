"""The header of a received instance: the attributes igrt needs, read and checked (CONTRACT §3).

:func:`read_header` takes a decoded pydicom data set (as received by the Storage SCP) and returns
the UIDs, Patient ID, Frame of Reference and references the store indexes, or raises
:class:`~igrt.core.errors.InvalidDataSetError` naming the first attribute missing or invalid
(the SCP answers ``0xA900`` with its short comment). Images must carry their geometry: Image
Position/Orientation (Patient) and Pixel Spacing for CT Image, the Plane Position, Plane
Orientation and Pixel Measures functional groups of every frame for Enhanced CT Image, plus Rows,
Columns and Pixel Data. Nothing here does I/O or decodes pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from igrt.core.errors import InvalidDataSetError
from igrt.core.kinds import KIND_NAMES, InstanceKind
from igrt.core.uids import uid_problem
from igrt.dicom.values import items as _items
from igrt.dicom.values import text as _text


@dataclass(frozen=True)
class InstanceHeader:
    """What :func:`read_header` takes from a received data set."""

    series_uid: str
    study_uid: str
    patient_id: str
    frame_of_reference_uid: str | None
    modality: str
    label: str | None
    referenced_frame_uids: tuple[str, ...]
    referenced_series_uids: tuple[str, ...]


def read_header(
    ds: Dataset, *, kind: InstanceKind, sop_class_uid: str, sop_instance_uid: str
) -> InstanceHeader:
    """Read and check the attributes igrt needs; :class:`InvalidDataSetError` names the first
    one missing or invalid. ``sop_class_uid``/``sop_instance_uid`` are those of the C-STORE
    request, which the data set must repeat."""
    what = f"{KIND_NAMES[kind]} {sop_instance_uid}"
    _check_request_uids(ds, what, sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid)
    patient_id = _text(ds, "PatientID")
    if patient_id is None:
        raise InvalidDataSetError(
            f"{what} has no Patient ID (0010,0020); igrt matches CBCTs to plans by it",
            comment="Patient ID (0010,0020) is missing or empty",
        )
    series_uid = _required_uid(ds, "SeriesInstanceUID", "Series Instance UID (0020,000E)", what)
    study_uid = _required_uid(ds, "StudyInstanceUID", "Study Instance UID (0020,000D)", what)
    label: str | None = None
    frames: list[str] = []
    series: list[str] = []
    frame: str | None
    if kind is InstanceKind.RT_STRUCT:
        frames, series = _structure_set_references(ds, what)
        frame = frames[0]  # the frame its contours are in
        label = _text(ds, "StructureSetLabel")
    elif kind in (InstanceKind.RT_PLAN, InstanceKind.RT_ION_PLAN) and not _text(
            ds, "FrameOfReferenceUID"):
        # Optional in the RT Plan IOD (Eclipse leaves it out): the plan's frame is then the one
        # of the structure set it references, resolved at registration.
        frame = None
        _plan_structure_set(ds, what)
    else:
        frame = _required_uid(ds, "FrameOfReferenceUID", "Frame of Reference UID (0020,0052)", what)
    if kind in (InstanceKind.RT_PLAN, InstanceKind.RT_ION_PLAN):
        label = _text(ds, "RTPlanLabel")
    elif kind is InstanceKind.SPATIAL_REGISTRATION:
        frames, series = _registration_references(ds, what)
    elif kind is InstanceKind.CT_IMAGE:
        _check_image_geometry(ds, what)
    elif kind is InstanceKind.ENHANCED_CT:
        _check_enhanced_geometry(ds, what)
    return InstanceHeader(
        series_uid=series_uid,
        study_uid=study_uid,
        patient_id=patient_id,
        frame_of_reference_uid=frame,
        modality=_text(ds, "Modality") or "",
        label=label,
        referenced_frame_uids=tuple(dict.fromkeys(frames)),
        referenced_series_uids=tuple(dict.fromkeys(series)),
    )


def _check_request_uids(
    ds: Dataset, what: str, *, sop_class_uid: str, sop_instance_uid: str
) -> None:
    for name, keyword, tag, expected in (
        ("SOP Class UID", "SOPClassUID", "(0008,0016)", sop_class_uid),
        ("SOP Instance UID", "SOPInstanceUID", "(0008,0018)", sop_instance_uid),
    ):
        found = _text(ds, keyword)
        if found is None:
            raise InvalidDataSetError(
                f"{what}: the data set has no {name} {tag}", comment=f"{name} {tag} is missing"
            )
        if found != expected:
            raise InvalidDataSetError(
                f"{what}: the data set's {name} {tag} is {found[:80]!r}, but the C-STORE "
                f"request says {expected}",
                comment=f"{name} {tag} differs from the C-STORE request",
            )


def _plan_structure_set(ds: Dataset, what: str) -> str:
    """The RT Structure Set a plan without a frame of its own references (it gives the frame)."""
    uids = _optional_uids(_items(ds, "ReferencedStructureSetSequence"),
                          "ReferencedSOPInstanceUID", "referenced structure set UID", what)
    if not uids:
        raise InvalidDataSetError(
            f"{what} has neither a Frame of Reference UID (0020,0052) nor a Referenced "
            "Structure Set Sequence (300C,0060) that would give its frame",
            comment="no Frame of Reference UID and no referenced structure set")
    return uids[0]


def _structure_set_references(ds: Dataset, what: str) -> tuple[list[str], list[str]]:
    """Frames (at least one) and image series of the Referenced Frame of Reference Sequence."""
    frames: list[str] = []
    series: list[str] = []
    for item in _items(ds, "ReferencedFrameOfReferenceSequence"):
        frames += _optional_uids([item], "FrameOfReferenceUID", "referenced frame UID", what)
        for study in _items(item, "RTReferencedStudySequence"):
            series += _optional_uids(
                _items(study, "RTReferencedSeriesSequence"),
                "SeriesInstanceUID",
                "referenced Series Instance UID",
                what,
            )
    if not frames:
        raise InvalidDataSetError(
            f"{what} has no Frame of Reference UID in its Referenced Frame of Reference "
            "Sequence (3006,0010); igrt cannot place its contours",
            comment="no Frame of Reference UID in sequence (3006,0010)",
        )
    return frames, series


def _registration_references(ds: Dataset, what: str) -> tuple[list[str], list[str]]:
    """Registered frames (at least one) and the referenced image series of a Spatial
    Registration (Common Instance Reference module, both places a series may be named)."""
    frames = _optional_uids(
        _items(ds, "RegistrationSequence"), "FrameOfReferenceUID", "registered frame UID", what
    )
    if not frames:
        raise InvalidDataSetError(
            f"{what} has no Registration Sequence (0070,0308) item with a Frame of Reference "
            "UID; it relates no frame to another",
            comment="no registered frame in Registration Sequence (0070,0308)",
        )
    series_items = _items(ds, "ReferencedSeriesSequence") + [
        item
        for study in _items(ds, "StudiesContainingOtherReferencedInstancesSequence")
        for item in _items(study, "ReferencedSeriesSequence")
    ]
    series = _optional_uids(
        series_items, "SeriesInstanceUID", "referenced Series Instance UID", what
    )
    return frames, series


def _required_uid(ds: Dataset, keyword: str, name: str, what: str) -> str:
    uid = _text(ds, keyword)
    if uid is None:
        raise InvalidDataSetError(
            f"{what} has no {name}; igrt needs it", comment=f"{name} is missing or empty"
        )
    _check_uid(uid, keyword, name, what)
    return uid


def _optional_uids(items: list[Dataset], keyword: str, name: str, what: str) -> list[str]:
    """The non-empty ``keyword`` UIDs of ``items``, each checked."""
    uids = [uid for uid in (_text(item, keyword) for item in items) if uid is not None]
    for uid in uids:
        _check_uid(uid, keyword, name, what)
    return uids


def _check_uid(uid: str, keyword: str, name: str, what: str) -> None:
    problem = uid_problem(uid)
    if problem is not None:
        tag = Tag(tag_for_keyword(keyword) or 0)
        raise InvalidDataSetError(
            f"{what}: {name} {uid[:80]!r} is not a valid DICOM UID ({problem})",
            comment=f"invalid UID ({tag.group:04X},{tag.element:04X}): {problem}",
        )


def _numbers(ds: Dataset, keyword: str, count: int) -> list[float] | None:
    """The ``count`` finite numbers of ``keyword``, or None if absent, too few/many or invalid."""
    value = ds.get(keyword)
    if value is None:
        return None
    single = isinstance(value, str | bytes) or not hasattr(value, "__len__")
    items: Any = [value] if single else value
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


_GEOMETRY: tuple[tuple[str, str, int], ...] = (
    ("ImagePositionPatient", "Image Position (Patient) (0020,0032)", 3),
    ("ImageOrientationPatient", "Image Orientation (Patient) (0020,0037)", 6),
    ("PixelSpacing", "Pixel Spacing (0028,0030)", 2),
)


def _check_image_geometry(ds: Dataset, what: str) -> None:
    for keyword, name, count in _GEOMETRY:
        _check_geometry_value(ds, keyword, name, count, what)
    _check_pixels(ds, what)


def _check_geometry_value(ds: Dataset, keyword: str, name: str, count: int, what: str) -> None:
    numbers = _numbers(ds, keyword, count)
    valid = numbers is not None and (keyword != "PixelSpacing" or min(numbers) > 0)
    if not valid:
        raise InvalidDataSetError(
            f"{what}: {name} is missing or is not {count} finite numbers "
            f"{'(> 0) ' if keyword == 'PixelSpacing' else ''}(found {ds.get(keyword)!r}); "
            "igrt cannot place the image",
            comment=f"{name} missing or invalid",
        )


def _check_pixels(ds: Dataset, what: str, *, n_frames: int = 1) -> None:
    """Rows, Columns and Pixel Data present; uncompressed Pixel Data exactly as long as its
    dimensions say (a truncated or mis-described image is refused, not stored)."""
    sizes: dict[str, int] = {}
    for keyword, name, default in (
        ("Rows", "Rows (0028,0010)", None),
        ("Columns", "Columns (0028,0011)", None),
        ("BitsAllocated", "Bits Allocated (0028,0100)", None),
        ("SamplesPerPixel", "Samples per Pixel (0028,0002)", 1),
    ):
        value = ds.get(keyword, default)
        if not isinstance(value, int) or value <= 0:
            raise InvalidDataSetError(
                f"{what}: {name} is missing or not a positive number (found {value!r})",
                comment=f"{name} missing or invalid",
            )
        sizes[keyword] = value
    if "PixelData" not in ds:
        raise InvalidDataSetError(
            f"{what} has no Pixel Data (7FE0,0010)", comment="Pixel Data (7FE0,0010) is missing"
        )
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_encapsulated:
        return  # compressed frames have no fixed length; decoding is the series loader's job
    bits = sizes["Rows"] * sizes["Columns"] * sizes["SamplesPerPixel"] * n_frames
    expected = (bits * sizes["BitsAllocated"] + 7) // 8
    item = ds.get_item("PixelData", keep_deferred=True)  # not read just to be measured
    value = getattr(item, "value", None)
    actual = len(value) if value is not None else int(getattr(item, "length", 0))
    if actual not in (expected, expected + expected % 2):
        raise InvalidDataSetError(
            f"{what}: Pixel Data (7FE0,0010) has {actual} bytes, but {n_frames} frame(s) of "
            f"{sizes['Rows']} x {sizes['Columns']} pixels, {sizes['SamplesPerPixel']} "
            f"sample(s) of {sizes['BitsAllocated']} bits need {expected}",
            comment=f"Pixel Data has {actual} bytes, the image needs {expected}",
        )


def _check_enhanced_geometry(ds: Dataset, what: str) -> None:
    """Every frame needs a position, an orientation and a pixel spacing, from its per-frame
    functional groups or the shared ones (PS3.3 C.7.6.16)."""
    frames = _items(ds, "PerFrameFunctionalGroupsSequence")
    declared = ds.get("NumberOfFrames")
    try:
        n_frames = int(declared) if declared is not None else -1
    except (TypeError, ValueError):
        n_frames = -1
    if n_frames < 1 or len(frames) != n_frames:
        raise InvalidDataSetError(
            f"{what}: Number of Frames (0028,0008) is {declared!r} but the Per-frame Functional "
            f"Groups Sequence (5200,9230) has {len(frames)} items",
            comment="Number of Frames and per-frame groups (5200,9230) disagree",
        )
    shared = next(iter(_items(ds, "SharedFunctionalGroupsSequence")), Dataset())
    macros = (
        ("PlanePositionSequence", "ImagePositionPatient", "Plane Position (0020,9113)", 3),
        ("PlaneOrientationSequence", "ImageOrientationPatient", "Plane Orientation (0020,9116)", 6),
        ("PixelMeasuresSequence", "PixelSpacing", "Pixel Measures (0028,9110)", 2),
    )
    for number, frame in enumerate(frames, start=1):
        for sequence, keyword, name, count in macros:
            item = next(_first_items(frame, shared, sequence), None)
            numbers = None if item is None else _numbers(item, keyword, count)
            valid = numbers is not None and (keyword != "PixelSpacing" or min(numbers) > 0)
            if not valid:
                raise InvalidDataSetError(
                    f"{what}: frame {number} has no valid {keyword} in a {name} functional "
                    "group (per-frame or shared); igrt cannot place the frame",
                    comment=f"frame {number}: {name} missing or invalid",
                )
    _check_pixels(ds, what, n_frames=n_frames)


def _first_items(frame: Dataset, shared: Dataset, sequence: str) -> Iterator[Dataset]:
    """The first item of ``sequence`` in the per-frame group, else in the shared group."""
    for group in (frame, shared):
        items = _items(group, sequence)
        if items:
            yield items[0]
