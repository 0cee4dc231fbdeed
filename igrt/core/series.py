"""Is this set of image slices a regular volume? Pure geometry on numbers (numpy only).

The DICOM adapter (``igrt.dicom.series_loader``) pulls one :class:`SliceGeometry` per slice
(a single-frame instance or one frame of a multi-frame instance) out of the datasets;
:func:`stack_geometry` decides whether the slices form a regular 3-D grid and returns the grid in
the ITK convention of ``igrt.core.volume.Volume``, or refuses with the specific
``igrt.core.errors.SeriesError`` that names the problem.

Conventions (DICOM PS3.3 C.7.6.2.1.1):

* ``row_cosine`` is the first triple of Image Orientation (Patient): the LPS direction along a row,
  i.e. of increasing *column* index ``i``. ``column_cosine`` is the second triple: the direction
  down a column, of increasing *row* index ``j``.
* ``pixel_spacing_mm`` is in DICOM Pixel Spacing order: (spacing between rows, spacing between
  columns) = (``j`` spacing, ``i`` spacing).
* The slice axis ``k`` is the normal ``row_cosine × column_cosine``; slices are ordered by their
  position projected on it, increasing, so ``direction = [i | j | k]`` is always right-handed.
* The slice spacing comes from the positions only, never from Slice Thickness (overlapping
  reconstructions, e.g. 3 mm slices every 2 mm, are common).

Tolerances (keyword-only, defaults below) are chosen from the geometric error they allow, not
from the numbers' precision alone: scanners write Image Position (Patient) rounded to 0.001-0.01
mm per component (up to ~0.02 mm once projected), while a position error of 0.05 mm is two
orders of magnitude below what matters for patient setup (registration ~0.5 mm, QA 1 mm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from igrt.core.errors import (
    DuplicateSliceError,
    GantryTiltError,
    InconsistentSlicesError,
    InvalidGeometryError,
    IrregularSpacingError,
    MissingSliceError,
    TooFewSlicesError,
)
from igrt.core.types import FloatArray

Vec3 = tuple[float, float, float]

#: Largest difference between the direction cosines of two slices of one stack.
DEFAULT_ORIENTATION_TOL = 1e-4
#: Largest position error (mm) of a slice relative to the regular grid, in the plane (gantry tilt)
#: or along the normal (spacing); also the smallest distance between two distinct slices.
DEFAULT_POSITION_TOL_MM = 0.05
#: Largest position error along the normal as a fraction of the slice spacing (the larger of this
#: and ``position_tol_mm`` applies), and largest relative difference of Pixel Spacing.
DEFAULT_SPACING_REL_TOL = 0.01
#: How far |cosine| may be from 1 and two cosines from orthogonal before the orientation is
#: rejected as malformed (rather than re-orthonormalised). Covers IOP written with 4-6 decimals.
UNIT_VECTOR_TOL = 1e-3

#: Most problem locations listed in one error message.
_MAX_LISTED = 5


@dataclass(frozen=True)
class SliceGeometry:
    """Geometry of one 2-D slice, straight from Image Plane attributes (LPS, mm).

    ``position_mm`` is Image Position (Patient), the centre of the first transmitted pixel.
    ``instance_id`` names the slice in error messages (e.g. SOP Instance UID and frame).
    """

    position_mm: Vec3
    row_cosine: Vec3
    column_cosine: Vec3
    pixel_spacing_mm: tuple[float, float]
    rows: int
    columns: int
    instance_id: str


@dataclass(frozen=True)
class StackGeometry:
    """A regular grid of slices in the ``igrt.core.volume.Volume`` convention.

    ``order[k]`` is the index (into the input sequence) of the slice at volume index ``k``.
    ``origin_mm`` is the position of slice ``order[0]``; ``spacing_mm`` is (column, row, slice);
    ``direction`` has the unit vectors of the ``i``, ``j``, ``k`` axes as columns.
    ``slice_offsets_mm`` are the sorted slices' positions along the normal, relative to the first.
    """

    order: tuple[int, ...]
    origin_mm: Vec3
    spacing_mm: Vec3
    direction: FloatArray
    size_ijk: tuple[int, int, int]
    slice_offsets_mm: tuple[float, ...]


def stack_geometry(
    slices: Sequence[SliceGeometry],
    *,
    orientation_tol: float = DEFAULT_ORIENTATION_TOL,
    position_tol_mm: float = DEFAULT_POSITION_TOL_MM,
    spacing_rel_tol: float = DEFAULT_SPACING_REL_TOL,
) -> StackGeometry:
    """Decide whether ``slices`` form a regular volume and return its grid.

    Checks, in order: at least two slices; every slice's orientation is two orthogonal unit
    vectors; all slices share orientation, pixel spacing and matrix size; no two slices at the
    same position along the normal (:class:`~igrt.core.errors.DuplicateSliceError`); all
    positions on one line along the normal (:class:`~igrt.core.errors.GantryTiltError`); no gap
    that is a multiple of the spacing (:class:`~igrt.core.errors.MissingSliceError`); every
    position on the regular grid (:class:`~igrt.core.errors.IrregularSpacingError`).

    The slice spacing is the first-to-last distance along the normal divided by the number of
    gaps; it equals the median gap within ``position_tol_mm``, and unlike the median it does not
    accumulate the rounding of individual positions over a long stack.
    """
    if len(slices) < 2:
        which = f" ({slices[0].instance_id})" if slices else ""
        raise TooFewSlicesError(
            f"the series has {len(slices)} slice{'' if len(slices) == 1 else 's'}{which}; "
            "a volume needs at least two slices to define the slice spacing"
        )
    first = slices[0]
    row, col = _orthonormal_axes(first)
    _check_consistent(slices, row, col, orientation_tol, spacing_rel_tol)
    normal = np.cross(row, col)

    positions = np.array([s.position_mm for s in slices], dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        bad = slices[int(np.argwhere(~np.isfinite(positions))[0, 0])]
        raise InvalidGeometryError(f"slice {bad.instance_id} has a non-finite position")
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along_sorted = along[order]
    pos_sorted = positions[order]
    ids = [slices[int(n)].instance_id for n in order]

    _check_duplicates(along_sorted, pos_sorted, ids, position_tol_mm)
    _check_tilt(pos_sorted, along_sorted, row, col, ids, position_tol_mm)
    spacing = _regular_spacing(along_sorted, ids, position_tol_mm, spacing_rel_tol)

    direction = np.column_stack([row, col, normal])
    origin = pos_sorted[0]
    row_spacing, col_spacing = first.pixel_spacing_mm
    return StackGeometry(
        order=tuple(int(n) for n in order),
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        spacing_mm=(float(col_spacing), float(row_spacing), float(spacing)),
        direction=direction,
        size_ijk=(first.columns, first.rows, len(slices)),
        slice_offsets_mm=tuple(float(a - along_sorted[0]) for a in along_sorted),
    )


# --- checks --------------------------------------------------------------------------------------
def _orthonormal_axes(s: SliceGeometry) -> tuple[FloatArray, FloatArray]:
    """The slice's row and column cosines, validated and made exactly orthonormal."""
    row = np.asarray(s.row_cosine, dtype=np.float64)
    col = np.asarray(s.column_cosine, dtype=np.float64)
    if row.shape != (3,) or col.shape != (3,) or not np.all(np.isfinite(np.r_[row, col])):
        raise InvalidGeometryError(
            f"slice {s.instance_id}: the orientation must be two finite 3-vectors, got "
            f"{s.row_cosine} and {s.column_cosine}"
        )
    n_row, n_col, dot = float(np.linalg.norm(row)), float(np.linalg.norm(col)), float(row @ col)
    if abs(n_row - 1) > UNIT_VECTOR_TOL or abs(n_col - 1) > UNIT_VECTOR_TOL:
        raise InvalidGeometryError(
            f"slice {s.instance_id}: ImageOrientationPatient is not two unit vectors "
            f"(lengths {n_row:.6g} and {n_col:.6g})"
        )
    if abs(dot) > UNIT_VECTOR_TOL:
        raise InvalidGeometryError(
            f"slice {s.instance_id}: the row and column directions of ImageOrientationPatient "
            f"are not orthogonal (angle {math.degrees(math.acos(max(-1.0, min(1.0, dot)))):.3f}°)"
        )
    if s.rows < 1 or s.columns < 1:
        raise InvalidGeometryError(
            f"slice {s.instance_id}: the matrix is {s.rows} rows x {s.columns} columns"
        )
    ps = s.pixel_spacing_mm
    if len(ps) != 2 or not all(math.isfinite(v) and v > 0 for v in ps):
        raise InvalidGeometryError(
            f"slice {s.instance_id}: PixelSpacing must be two positive numbers, got {ps}"
        )
    row = row / n_row
    col = col - (col @ row) * row
    return row, col / np.linalg.norm(col)


def _check_consistent(
    slices: Sequence[SliceGeometry],
    row: FloatArray,
    col: FloatArray,
    orientation_tol: float,
    spacing_rel_tol: float,
) -> None:
    first = slices[0]
    ref = np.r_[first.row_cosine, first.column_cosine]
    for s in slices[1:]:
        cosines = np.asarray(np.r_[s.row_cosine, s.column_cosine], dtype=np.float64)
        if cosines.shape != (6,) or not np.all(np.abs(cosines - ref) <= orientation_tol):
            angle = _angle_deg(row, col, s)
            raise InconsistentSlicesError(
                f"slices {first.instance_id} and {s.instance_id} have different orientations "
                f"(ImageOrientationPatient {_fmt(ref)} vs {_fmt(cosines)}, {angle:.3f}° apart); "
                "one volume needs one orientation (a localizer mixed into the series?)"
            )
        if (s.rows, s.columns) != (first.rows, first.columns):
            raise InconsistentSlicesError(
                f"slices {first.instance_id} and {s.instance_id} have different matrix sizes "
                f"({first.rows}x{first.columns} vs {s.rows}x{s.columns} rows x columns)"
            )
        ps0, ps = np.asarray(first.pixel_spacing_mm), np.asarray(s.pixel_spacing_mm)
        if ps.shape != (2,) or np.any(np.abs(ps - ps0) > spacing_rel_tol * ps0):
            raise InconsistentSlicesError(
                f"slices {first.instance_id} and {s.instance_id} have different PixelSpacing "
                f"({_fmt(ps0)} vs {_fmt(ps)} mm)"
            )


def _angle_deg(row: FloatArray, col: FloatArray, s: SliceGeometry) -> float:
    """Angle between the normals of the reference slice and ``s`` (nan if ``s`` is malformed)."""
    try:
        r2, c2 = _orthonormal_axes(s)
    except InvalidGeometryError:
        return math.nan
    cos = float(np.clip(np.cross(row, col) @ np.cross(r2, c2), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def _check_duplicates(
    along: FloatArray, positions: FloatArray, ids: list[str], position_tol_mm: float
) -> None:
    gaps = np.diff(along)
    dup = np.flatnonzero(gaps <= position_tol_mm)
    if dup.size:
        n = int(dup[0])
        raise DuplicateSliceError(
            f"slices {ids[n]} and {ids[n + 1]} are at the same position along the slice normal "
            f"({along[n]:.3f} mm vs {along[n + 1]:.3f} mm; ImagePositionPatient "
            f"{_fmt(positions[n])} and {_fmt(positions[n + 1])})"
            + (f"; {dup.size} such pairs in all" if dup.size > 1 else "")
        )


def _check_tilt(
    positions: FloatArray,
    along: FloatArray,
    row: FloatArray,
    col: FloatArray,
    ids: list[str],
    position_tol_mm: float,
) -> None:
    """Every slice's in-plane offset must equal the first slice's: positions along the normal."""
    in_plane = np.column_stack([positions @ row, positions @ col])
    drift = in_plane - in_plane[0]
    err = np.linalg.norm(drift, axis=1)
    worst = int(np.argmax(err))
    if err[worst] <= position_tol_mm:
        return
    # Least-squares slope of the in-plane offset against the position along the normal.
    t = along - along.mean()
    slope = (t @ (in_plane - in_plane.mean(axis=0))) / float(t @ t)
    tilt = math.degrees(math.atan(float(np.linalg.norm(slope))))
    raise GantryTiltError(
        f"the slice positions do not lie along the slice normal: slice {ids[worst]} is "
        f"{err[worst]:.3f} mm off the normal through slice {ids[0]} (tolerance "
        f"{position_tol_mm} mm); the stack is tilted by {tilt:.2f}° (gantry tilt or a sheared "
        "reconstruction), which a regular volume cannot represent"
    )


def _median(values: FloatArray) -> float:
    """The median, as ``np.median`` computes it (which imports ``numpy.ma`` on first use: 30-60 ms
    of every ``igrt register``)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        return float("nan")
    if n % 2:
        return float(ordered[n // 2])
    return float((ordered[n // 2 - 1] + ordered[n // 2]) / 2.0)


def _regular_spacing(
    along: FloatArray, ids: list[str], position_tol_mm: float, spacing_rel_tol: float
) -> float:
    gaps = np.diff(along)
    median = _median(gaps)
    tol = max(position_tol_mm, spacing_rel_tol * median)
    steps = np.maximum(1, np.rint(gaps / median)).astype(int)
    # A gap is a whole number of spacings when it is within the tolerance of both of its ends.
    whole = np.abs(gaps - steps * median) <= 2 * tol
    missing = np.flatnonzero((steps >= 2) & whole)
    if missing.size:
        where = "; ".join(
            f"{steps[n] - 1} slice{'s' if steps[n] > 2 else ''} missing between {ids[n]} at "
            f"{along[n]:.2f} mm and {ids[n + 1]} at {along[n + 1]:.2f} mm"
            for n in missing[:_MAX_LISTED]
        )
        total = int(np.sum(steps[missing] - 1))
        raise MissingSliceError(
            f"{total} slice{'s are' if total > 1 else ' is'} missing from a stack spaced "
            f"{median:.3f} mm (positions along the slice normal): {where}"
        )
    odd = np.flatnonzero(~whole)
    if odd.size:
        where = "; ".join(
            f"{gaps[n]:.3f} mm between {ids[n]} and {ids[n + 1]}" for n in odd[:_MAX_LISTED]
        )
        raise IrregularSpacingError(
            f"the slice spacing is irregular: the usual gap is {median:.3f} mm but {odd.size} "
            f"gap{'s differ' if odd.size > 1 else ' differs'} by more than {2 * tol:.3f} mm: "
            f"{where}"
        )
    spacing = float(along[-1] - along[0]) / (len(along) - 1)
    residual = along - along[0] - spacing * np.arange(len(along))
    worst = int(np.argmax(np.abs(residual)))
    tol = max(position_tol_mm, spacing_rel_tol * spacing)
    if abs(residual[worst]) > tol:
        raise IrregularSpacingError(
            f"the slice spacing is irregular: slice {ids[worst]} is {residual[worst]:+.3f} mm "
            f"from its place on a regular grid of {spacing:.4f} mm spacing (tolerance "
            f"{tol:.3f} mm)"
        )
    return spacing


def _fmt(values: npt.ArrayLike) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in np.ravel(values)) + ")"
