"""Tests for igrt.core.series: is a set of slice geometries a regular volume? (hand-computed
grids)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from igrt.core.errors import (
    DuplicateSliceError,
    GantryTiltError,
    IrregularSpacingError,
    MissingSliceError,
)
from igrt.core.series import (
    InconsistentSlicesError,
    InvalidGeometryError,
    SliceGeometry,
    StackGeometry,
    TooFewSlicesError,
    stack_geometry,
)

Vec3 = tuple[float, float, float]


def slices(
    positions: list[Vec3],
    row: Vec3 = (1.0, 0.0, 0.0),
    col: Vec3 = (0.0, 1.0, 0.0),
    *,
    pixel_spacing: tuple[float, float] = (0.8, 0.5),
    rows: int = 12,
    columns: int = 16,
) -> list[SliceGeometry]:
    return [
        SliceGeometry(p, row, col, pixel_spacing, rows, columns, f"s{n}")
        for n, p in enumerate(positions)
    ]


def odd(
    *,
    col: Vec3 = (0.0, 1.0, 0.0),
    pixel_spacing: tuple[float, float] = (0.8, 0.5),
    rows: int = 12,
    columns: int = 16,
) -> SliceGeometry:
    """A third slice at z = 4 that differs from ``axial([0, 2])`` as told."""
    return SliceGeometry(
        (-10.0, -20.0, 4.0), (1.0, 0.0, 0.0), col, pixel_spacing, rows, columns, "odd"
    )


def axial(zs: list[float], x: float = -10.0, y: float = -20.0) -> list[SliceGeometry]:
    return slices([(x, y, z) for z in zs])


# --- a regular stack for every orientation -------------------------------------------------------
# positions are given shuffled; expected order, origin and direction computed by hand:
# normal = row x col; slices sorted by position along the normal, increasing.
ORIENTATIONS = [
    pytest.param(
        (1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
        [(-10.0, -20.0, 30.0), (-10.0, -20.0, 34.0), (-10.0, -20.0, 32.0)],
        (0, 2, 1), (-10.0, -20.0, 30.0), 2.0,
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        id="HFS",
    ),
    pytest.param(
        (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0),  # normal (0, 0, -1): most superior slice first
        [(-10.0, -20.0, 30.0), (-10.0, -20.0, 34.0), (-10.0, -20.0, 32.0)],
        (1, 2, 0), (-10.0, -20.0, 34.0), 2.0,
        [[-1, 0, 0], [0, 1, 0], [0, 0, -1]],
        id="FFS",
    ),
    pytest.param(
        (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0),  # normal (0, 0, 1)
        [(10.0, 20.0, 30.0), (10.0, 20.0, 34.0), (10.0, 20.0, 32.0)],
        (0, 2, 1), (10.0, 20.0, 30.0), 2.0,
        [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
        id="HFP",
    ),
    pytest.param(
        (1.0, 0.0, 0.0), (0.0, -1.0, 0.0),  # normal (0, 0, -1)
        [(10.0, 20.0, 30.0), (10.0, 20.0, 34.0), (10.0, 20.0, 32.0)],
        (1, 2, 0), (10.0, 20.0, 34.0), 2.0,
        [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
        id="FFP",
    ),
    pytest.param(
        # tilted 36.87° about x (3-4-5): normal (0, -0.6, 0.8); P_s = (5, 6, 7) + 2 s normal
        (1.0, 0.0, 0.0), (0.0, 0.8, 0.6),
        [(5.0, 3.6, 10.2), (5.0, 6.0, 7.0), (5.0, 4.8, 8.6)],
        (1, 2, 0), (5.0, 6.0, 7.0), 2.0,
        [[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]],
        id="oblique-axial",
    ),
    pytest.param(
        # rows along (0.6, 0.8, 0), columns inferior: normal (-0.8, 0.6, 0); P_s = (1,2,3) + 2.5 s n
        (0.6, 0.8, 0.0), (0.0, 0.0, -1.0),
        [(-1.0, 3.5, 3.0), (-3.0, 5.0, 3.0), (1.0, 2.0, 3.0)],
        (2, 0, 1), (1.0, 2.0, 3.0), 2.5,
        [[0.6, 0, -0.8], [0.8, 0, 0.6], [0, -1, 0]],
        id="oblique-coronal",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "col", "positions", "order", "origin", "slice_spacing", "direction"), ORIENTATIONS
)
def test_regular_stack_in_every_orientation(
    row: Vec3,
    col: Vec3,
    positions: list[Vec3],
    order: tuple[int, ...],
    origin: Vec3,
    slice_spacing: float,
    direction: list[list[float]],
) -> None:
    stack = stack_geometry(slices(positions, row, col))
    assert stack.order == order
    np.testing.assert_allclose(stack.origin_mm, origin, atol=1e-9)
    np.testing.assert_allclose(stack.spacing_mm, (0.5, 0.8, slice_spacing), atol=1e-9)
    np.testing.assert_allclose(stack.direction, direction, atol=1e-9)
    assert np.linalg.det(stack.direction) == pytest.approx(1.0)
    assert stack.size_ijk == (16, 12, 3)
    np.testing.assert_allclose(stack.slice_offsets_mm, (0.0, slice_spacing, 2 * slice_spacing))


def _last_slice_point(stack: StackGeometry) -> np.ndarray:
    return np.asarray(stack.origin_mm) + stack.direction[:, 2] * stack.spacing_mm[2] * 2


@pytest.mark.parametrize(("row", "col", "positions", "order", "origin", "s", "d"), ORIENTATIONS)
def test_last_slice_index_maps_to_its_position(
    row: Vec3,
    col: Vec3,
    positions: list[Vec3],
    order: tuple[int, ...],
    origin: Vec3,
    s: float,
    d: list[list[float]],
) -> None:
    stack = stack_geometry(slices(positions, row, col))
    np.testing.assert_allclose(_last_slice_point(stack), positions[order[2]], atol=1e-9)


def test_orientation_is_orthonormalised() -> None:
    # IOP written with 6 decimals: cos/sin of 10° about z, not exactly unit/orthogonal.
    row = (0.984808, 0.173648, 0.0)
    col = (-0.173648, 0.984808, 0.0)
    stack = stack_geometry(slices([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], row, col))
    np.testing.assert_allclose(stack.direction.T @ stack.direction, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(stack.direction[:, 0], row, atol=1e-6)


def test_spacing_from_extent_not_from_noisy_gaps() -> None:
    # gaps 2.004, 1.994, 2.002: median 2.002, extent/3 = 2.0
    stack = stack_geometry(axial([0.0, 2.004, 3.998, 6.0]))
    assert stack.spacing_mm[2] == pytest.approx(2.0)


def test_rounded_positions_are_accepted() -> None:
    # positions rounded to 0.01 mm in every component, in-plane wobble included
    zs = [round(1.3333 * n, 2) for n in range(6)]
    xs = [-10.0, -10.01, -10.0, -9.99, -10.0, -10.01]
    geo = slices([(x, -20.0, z) for x, z in zip(xs, zs, strict=True)])
    assert stack_geometry(geo).spacing_mm[2] == pytest.approx(6.67 / 5)


def test_position_tolerance_is_a_keyword() -> None:
    zs = [0.0, 2.0, 4.03, 6.0, 8.0]  # slice s2 0.03 mm off the grid
    assert stack_geometry(axial(zs)).spacing_mm[2] == pytest.approx(2.0)
    with pytest.raises(IrregularSpacingError, match=r"slice s2 is \+0\.030 mm from its place"):
        stack_geometry(axial(zs), position_tol_mm=0.01)


def test_orientation_tolerance_is_a_keyword() -> None:
    geo = slices([(0.0, 0.0, 0.0), (0.0, 0.0, 2.0)])
    tilted = SliceGeometry(
        (0.0, 0.0, 4.0), (1.0, 0.0, 0.0), (0.0, 1.0, 5e-4), (0.8, 0.5), 12, 16, "s2"
    )
    with pytest.raises(InconsistentSlicesError, match="different orientations"):
        stack_geometry([*geo, tilted])
    assert stack_geometry([*geo, tilted], orientation_tol=1e-3).size_ijk == (16, 12, 3)


# --- refusals ------------------------------------------------------------------------------------
REFUSALS = [
    pytest.param([], TooFewSlicesError, r"has 0 slices; a volume needs at least two", id="empty"),
    pytest.param(
        axial([5.0]), TooFewSlicesError, r"has 1 slice \(s0\); a volume needs", id="one-slice"
    ),
    pytest.param(
        axial([0.0, 2.0, 2.0, 4.0]),
        DuplicateSliceError,
        r"slices s1 and s2 are at the same position along the slice normal "
        r"\(2\.000 mm vs 2\.000 mm; ImagePositionPatient \(-10, -20, 2\) and \(-10, -20, 2\)\)",
        id="duplicate",
    ),
    pytest.param(
        axial([0.0, 2.0, 4.0, 8.0, 10.0]),
        MissingSliceError,
        r"1 slice is missing from a stack spaced 2\.000 mm .*: 1 slice missing between s2 at "
        r"4\.00 mm and s3 at 8\.00 mm",
        id="one-missing",
    ),
    pytest.param(
        axial([0.0, 2.0, 4.0, 10.0, 12.0, 14.0]),
        MissingSliceError,
        r"2 slices are missing .*: 2 slices missing between s2 at 4\.00 mm and s3 at 10\.00 mm",
        id="two-missing",
    ),
    pytest.param(
        axial([0.0, 2.0, 4.0, 6.5, 8.5, 10.5]),
        IrregularSpacingError,
        r"usual gap is 2\.000 mm but 1 gap differs by more than 0\.100 mm: 2\.500 mm between "
        r"s2 and s3",
        id="irregular-gap",
    ),
    pytest.param(
        axial([0.0, 2.0, 4.0, 5.0, 6.0, 8.0]),
        IrregularSpacingError,
        r"usual gap is 2\.000 mm but 2 gaps differ .*: 1\.000 mm between s2 and s3; "
        r"1\.000 mm between s3 and s4",
        id="extra-slice-between",
    ),
    pytest.param(
        # every gap within 0.04 mm of the median, but the grid drifts 0.1 mm
        axial([0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.04, 14.08, 16.12, 18.16, 20.2]),
        IrregularSpacingError,
        r"slice s5 is -0\.100 mm from its place on a regular grid of 2\.0200 mm",
        id="cumulative-drift",
    ),
    pytest.param(
        # axial IOP, positions stepping 2 mm in z and 2 tan(15°) mm posterior: gantry tilt 15°
        slices([(0.0, 2.0 * n * math.tan(math.radians(15)), 2.0 * n) for n in range(3)]),
        GantryTiltError,
        r"slice s2 is 1\.072 mm off the normal through slice s0 .* tilted by 15\.00°",
        id="tilt-positions",
    ),
    pytest.param(
        # IOP tilted 15° about x, positions straight along z (how a tilted gantry writes it)
        slices(
            [(0.0, 0.0, 2.0 * n) for n in range(4)],
            col=(0.0, math.cos(math.radians(15)), math.sin(math.radians(15))),
        ),
        GantryTiltError,
        r"slice s3 is 1\.553 mm off the normal .* tilted by 15\.00°",
        id="tilt-orientation",
    ),
    pytest.param(
        [*axial([0.0, 2.0]), odd(col=(0.0, 0.0, 1.0))],
        InconsistentSlicesError,
        r"slices s0 and odd have different orientations \(ImageOrientationPatient "
        r"\(1, 0, 0, 0, 1, 0\) vs \(1, 0, 0, 0, 0, 1\), 90\.000° apart\)",
        id="orientation-mismatch",
    ),
    pytest.param(
        [*axial([0.0, 2.0]), odd(rows=16, columns=12)],
        InconsistentSlicesError,
        r"different matrix sizes \(12x16 vs 16x12 rows x columns\)",
        id="size-mismatch",
    ),
    pytest.param(
        [*axial([0.0, 2.0]), odd(pixel_spacing=(0.5, 0.8))],
        InconsistentSlicesError,
        r"different PixelSpacing \(\(0\.8, 0\.5\) vs \(0\.5, 0\.8\) mm\)",
        id="pixel-spacing-mismatch",
    ),
    pytest.param(
        slices([(0.0, 0.0, 0.0), (0.0, 0.0, 2.0)], row=(1.0, 0.0, 0.0), col=(0.0, 0.5, 0.0)),
        InvalidGeometryError,
        r"slice s0: ImageOrientationPatient is not two unit vectors \(lengths 1 and 0\.5\)",
        id="non-unit-cosine",
    ),
    pytest.param(
        slices([(0.0, 0.0, 0.0), (0.0, 0.0, 2.0)], row=(1.0, 0.0, 0.0), col=(0.6, 0.8, 0.0)),
        InvalidGeometryError,
        r"not orthogonal \(angle 53\.130°\)",
        id="non-orthogonal",
    ),
    pytest.param(
        slices([(0.0, 0.0, 0.0), (0.0, 0.0, 2.0)], pixel_spacing=(0.0, 0.5)),
        InvalidGeometryError,
        r"slice s0: PixelSpacing must be two positive numbers",
        id="zero-pixel-spacing",
    ),
    pytest.param(
        slices([(0.0, 0.0, 0.0), (0.0, float("nan"), 2.0)]),
        InvalidGeometryError,
        r"slice s1 has a non-finite position",
        id="nan-position",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("geometry", "error", "match"), REFUSALS)
def test_refusals_name_the_problem(
    geometry: list[SliceGeometry], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        stack_geometry(geometry)


def test_refusal_messages_use_the_slice_ids_given() -> None:
    geo = [
        SliceGeometry((0.0, 0.0, z), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0), 2, 2, name)
        for z, name in [(4.0, "instance 1.2.3 (InstanceNumber 3)"), (0.0, "a"), (4.0, "b")]
    ]
    with pytest.raises(
        DuplicateSliceError, match=r"slices instance 1\.2\.3 \(InstanceNumber 3\) and b are"
    ):
        stack_geometry(geo)


def test_error_codes_for_new_classes() -> None:
    assert InconsistentSlicesError().reason.startswith("inconsistent_slices: ")
    assert TooFewSlicesError().reason.startswith("too_few_slices: ")
    assert InvalidGeometryError().reason.startswith("invalid_geometry: ")
