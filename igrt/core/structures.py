"""RT Structure Set: its ROIs, and rasterising one into a mask on a volume's grid. Pure numpy;
the DICOM adapter is ``igrt.dicom.structure_reader``.

How :func:`roi_mask` turns planar contours into voxels:

* Only ``CLOSED_PLANAR`` contours are used (points, open contours are ignored). Every contour
  must lie in one plane parallel to the volume's slices (``planar_tolerance_mm``); otherwise the
  structure set was drawn on another orientation and the ROI is refused.
* Contours at the same slice position form one plane and combine by the even-odd rule: a contour
  inside another is a hole, disjoint contours are islands.
* Each plane stands for a slab of the thickness the contours were drawn at: the smallest distance
  between distinct contour planes of the whole structure set (all ROIs in the same frame; on a
  planning CT that is its slice spacing), or the volume's slice spacing when the structure set has
  a single plane. A volume slice takes the polygons of the nearest plane within half that
  thickness. On the CT the contours were drawn on this is "each contour on its own slice"; on a
  finer grid the slices in between take the nearest contour; slices of the ROI without a contour
  (a gap between two parts of the ROI) stay empty.
* A voxel is inside when its centre is inside (:mod:`igrt.core.polygon`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from igrt.core.errors import StructureError
from igrt.core.polygon import fill_polygons, group_positions, min_gap, nearest_planes
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume

log = logging.getLogger(__name__)

CLOSED_PLANAR = "CLOSED_PLANAR"


@dataclass(frozen=True, eq=False)
class Contour:
    """One contour: ``points_mm`` is an ``(N, 3)`` array of LPS points."""

    points_mm: FloatArray
    geometric_type: str


@dataclass(frozen=True, eq=False)
class Roi:
    """One ROI of a structure set: its number and name, the frame its contours are in."""

    number: int
    name: str
    frame_of_reference_uid: str | None
    contours: tuple[Contour, ...]


@dataclass(frozen=True, eq=False)
class StructureSet:
    """What igrt uses of an RT Structure Set: its frame, the CT series its contours were drawn
    on (if it names one) and its ROIs."""

    sop_instance_uid: str
    frame_of_reference_uid: str
    referenced_series_uid: str | None  # the CT series the contours were drawn on; None: unnamed
    rois: tuple[Roi, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(roi.name for roi in self.rois)

    def by_name(self) -> Mapping[str, Roi]:
        """ROIs by name (if two ROIs share a name, the later one wins; use :func:`find_roi`)."""
        return {roi.name: roi for roi in self.rois}


# --- ROI lookup ----------------------------------------------------------------------------------
def find_roi(structure_set: StructureSet, name: str) -> Roi:
    """The ROI called ``name``: exact match first, then case-insensitive (ignoring surrounding
    spaces). Missing or ambiguous → :class:`StructureError` listing the available names."""
    exact = [roi for roi in structure_set.rois if roi.name == name]
    matches = exact or [
        roi for roi in structure_set.rois if roi.name.strip().casefold() == name.strip().casefold()
    ]
    available = ", ".join(repr(n) for n in structure_set.names) or "none"
    if not matches:
        raise StructureError(
            f"RT Structure Set {structure_set.sop_instance_uid} has no ROI named {name!r} "
            f"(available: {available})"
        )
    if len(matches) > 1:
        found = ", ".join(f"{roi.name!r} (number {roi.number})" for roi in matches)
        raise StructureError(
            f"RT Structure Set {structure_set.sop_instance_uid} has several ROIs matching "
            f"{name!r}: {found}"
        )
    return matches[0]


# --- rasterisation -------------------------------------------------------------------------------
def roi_mask(
    structure_set: StructureSet,
    name: str,
    volume: Volume,
    *,
    frame_of_reference_uid: str,
    planar_tolerance_mm: float = 0.1,
) -> BoolArray:
    """Boolean mask (shape of ``volume.voxels``) of the ROI ``name`` on the volume's grid.

    ``frame_of_reference_uid`` is the volume's Frame of Reference; the ROI must be in it.
    Refusals (:class:`StructureError`): no such ROI, ROI in another frame, no closed planar
    contour, a contour not parallel to the volume's slices, or a mask with no voxel.
    See the module docstring for the rules.
    """
    roi = find_roi(structure_set, name)
    roi_frame = roi.frame_of_reference_uid or structure_set.frame_of_reference_uid
    if roi_frame != frame_of_reference_uid:
        raise StructureError(
            f"ROI {roi.name!r} is in Frame of Reference {roi_frame}, the volume is in "
            f"{frame_of_reference_uid}"
        )
    closed = [c.points_mm for c in roi.contours if c.geometric_type == CLOSED_PLANAR]
    skipped = len(roi.contours) - len(closed)
    if skipped:
        log.info("ROI %r: %d contours that are not CLOSED_PLANAR ignored", roi.name, skipped)
    if not closed:
        raise StructureError(f"ROI {roi.name!r} has no CLOSED_PLANAR contour")

    sk = float(volume.spacing_mm[2])
    indices = [volume.point_to_index(points) for points in closed]
    positions = []
    for n, idx in enumerate(indices):
        k = idx[:, 2]
        spread_mm = float(np.ptp(k)) * sk
        if spread_mm > planar_tolerance_mm:
            z = closed[n][:, 2]
            raise StructureError(
                f"ROI {roi.name!r}: contour {n + 1} is not parallel to the volume's slices "
                f"(it spans {spread_mm:.2f} mm across them, z from {z.min():.2f} to "
                f"{z.max():.2f} mm)"
            )
        positions.append(float(np.mean(k)) * sk)
    planes_mm, plane_of_contour = group_positions(positions, tolerance=planar_tolerance_mm)

    thickness = _contour_thickness_mm(structure_set, volume, roi_frame, planar_tolerance_mm)
    nk, nj, ni = volume.voxels.shape
    slice_plane = nearest_planes(planes_mm, np.arange(nk) * sk, half_thickness=thickness / 2 + 1e-6)

    mask = np.zeros((nk, nj, ni), dtype=bool)
    filled: dict[int, BoolArray] = {}
    for slice_k in np.flatnonzero(slice_plane >= 0):
        plane = int(slice_plane[slice_k])
        if plane not in filled:
            polygons = [
                idx[:, :2] for idx, p in zip(indices, plane_of_contour, strict=True) if p == plane
            ]
            filled[plane] = fill_polygons(polygons, (nj, ni))
        mask[slice_k] = filled[plane]
    count = int(mask.sum())
    if count == 0:
        raise StructureError(
            f"ROI {roi.name!r} covers no voxel of the volume (its {len(closed)} contours lie "
            "outside the volume or are smaller than a voxel)"
        )
    log.info(
        "ROI %r: %d voxels on %d slices (contour slab %.2f mm)",
        roi.name, count, int(np.count_nonzero(mask.any(axis=(1, 2)))), thickness,
    )
    return mask


def _contour_thickness_mm(
    structure_set: StructureSet, volume: Volume, frame_uid: str, planar_tolerance_mm: float
) -> float:
    """Slab thickness of a contour plane: the smallest gap between distinct planes of all closed
    planar contours in ``frame_uid`` that are parallel to the volume's slices, else the volume's
    slice spacing."""
    sk = float(volume.spacing_mm[2])
    positions: list[float] = []
    for roi in structure_set.rois:
        if (roi.frame_of_reference_uid or structure_set.frame_of_reference_uid) != frame_uid:
            continue
        for contour in roi.contours:
            if contour.geometric_type != CLOSED_PLANAR or len(contour.points_mm) == 0:
                continue
            k = volume.point_to_index(contour.points_mm)[:, 2]
            if float(np.ptp(k)) * sk <= planar_tolerance_mm:
                positions.append(float(np.mean(k)) * sk)
    planes, _ = group_positions(positions, tolerance=planar_tolerance_mm)
    gap = min_gap(planes)
    return sk if gap is None else gap

