"""DICOM adapter of RT Structure Sets: pydicom dataset ->
:class:`igrt.core.structures.StructureSet`. Only pulls attributes out of the dataset;
rasterising is ``igrt.core.structures.roi_mask``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydicom.uid import RTStructureSetStorage

from igrt.core.errors import StructureError
from igrt.core.structures import Contour, Roi, StructureSet
from igrt.dicom.values import float_array
from igrt.dicom.values import text as _text

log = logging.getLogger(__name__)

def _int(ds: Any, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StructureError(f"{keyword} is not an integer: {value!r}") from None




def _required_int(ds: Any, keyword: str, missing: str) -> int:
    number = _int(ds, keyword)
    if number is None:
        raise StructureError(missing)
    return number


def read_structure_set(ds: Any) -> StructureSet:
    """Read an RT Structure Set dataset (pydicom ``Dataset``)."""
    sop_class = _text(ds, "SOPClassUID")
    if sop_class is not None and sop_class != RTStructureSetStorage:
        raise StructureError(
            f"SOP Class UID {sop_class} is not RT Structure Set ({RTStructureSetStorage})"
        )
    uid = _text(ds, "SOPInstanceUID")
    if uid is None:
        raise StructureError("the RT Structure Set has no SOP Instance UID (0008,0018)")
    frames = list(ds.get("ReferencedFrameOfReferenceSequence") or [])
    frame_uids = [u for u in (_text(item, "FrameOfReferenceUID") for item in frames) if u]
    if not frame_uids:
        raise StructureError(
            f"RT Structure Set {uid} has no Frame of Reference UID in the "
            "Referenced Frame of Reference Sequence (3006,0010)"
        )
    series_uid = _referenced_series_uid(frames[0])

    contours_by_number: dict[int, tuple[Contour, ...]] = {}
    for item in ds.get("ROIContourSequence") or []:
        number = _required_int(item, "ReferencedROINumber",
                               f"RT Structure Set {uid}: an ROI Contour Sequence item has no "
                               "Referenced ROI Number (3006,0084)")
        contours_by_number[number] = tuple(
            _read_contour(c, uid, number) for c in item.get("ContourSequence") or []
        )

    rois: list[Roi] = []
    for item in ds.get("StructureSetROISequence") or []:
        number = _required_int(item, "ROINumber",
                               f"RT Structure Set {uid}: a Structure Set ROI Sequence item has "
                               "no ROI Number (3006,0022)")
        name = _text(item, "ROIName") or ""
        rois.append(
            Roi(
                number=number,
                name=name,
                frame_of_reference_uid=_text(item, "ReferencedFrameOfReferenceUID"),
                contours=contours_by_number.get(number, ()),
            )
        )
    log.debug("structure set %s: %d ROIs in frame %s", uid, len(rois), frame_uids[0])
    return StructureSet(
        sop_instance_uid=uid,
        frame_of_reference_uid=frame_uids[0],
        referenced_series_uid=series_uid,
        rois=tuple(rois),
    )


def _referenced_series_uid(frame_item: Any) -> str | None:
    for study in frame_item.get("RTReferencedStudySequence") or []:
        for series in study.get("RTReferencedSeriesSequence") or []:
            uid = _text(series, "SeriesInstanceUID")
            if uid:
                return uid
    return None


def _read_contour(item: Any, uid: str, roi_number: int) -> Contour:
    geometric_type = _text(item, "ContourGeometricType") or ""
    values = float_array(item, "ContourData")
    if values is None:
        raise StructureError(
            f"RT Structure Set {uid}, ROI number {roi_number}: a contour has no numeric "
            "Contour Data (3006,0050)"
        )
    if len(values) % 3 != 0:
        raise StructureError(
            f"RT Structure Set {uid}, ROI number {roi_number}: Contour Data (3006,0050) has "
            f"{len(values)} values, not a multiple of 3"
        )
    points = values.reshape(-1, 3)
    declared = _int(item, "NumberOfContourPoints")
    if declared is not None and declared != len(points):
        raise StructureError(
            f"RT Structure Set {uid}, ROI number {roi_number}: Number of Contour Points "
            f"(3006,0046) is {declared} but Contour Data holds {len(points)} points"
        )
    if not np.all(np.isfinite(points)):
        raise StructureError(
            f"RT Structure Set {uid}, ROI number {roi_number}: Contour Data is not finite"
        )
    return Contour(points_mm=points, geometric_type=geometric_type)
