"""Even-odd polygon fill and plane bookkeeping on index grids."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core.polygon import fill_polygons, group_positions, min_gap, nearest_planes


def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def test_square_fills_the_centres_inside() -> None:
    # Columns 2..4 (centres 2, 3, 4 lie in [1.5, 4.5]), rows 1..2 (centres in [0.5, 2.5]).
    mask = fill_polygons([square(1.5, 0.5, 4.5, 2.5)], (4, 6))
    expected = np.zeros((4, 6), dtype=bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(mask, expected)


def test_hole_and_island_combine_by_even_odd() -> None:
    outer = square(0.5, 0.5, 5.5, 5.5)  # rows/columns 1..5: 25
    hole = square(2.5, 2.5, 3.5, 3.5)[::-1]  # (3, 3), reversed winding: still a hole
    island = square(6.5, 0.5, 7.5, 1.5)  # (1, 7)
    mask = fill_polygons([outer, hole, island], (8, 9))
    assert mask.sum() == 25 - 1 + 1
    assert not mask[3, 3]
    assert mask[1, 7]


def test_polygon_partly_outside_is_clipped() -> None:
    mask = fill_polygons([square(-10.5, -10.5, 1.5, 20.5)], (3, 4))
    expected = np.zeros((3, 4), dtype=bool)
    expected[:, :2] = True
    np.testing.assert_array_equal(mask, expected)


def test_triangle() -> None:
    # Legs on x = -0.5 and y = -0.5, hypotenuse x + y = 3.5: in row y the centres x = 0 ..
    # with x < 3.5 - y, i.e. 4, 3, 2, 1, 0 pixels.
    tri = np.array([[-0.5, -0.5], [4.0, -0.5], [-0.5, 4.0]])
    mask = fill_polygons([tri], (5, 5))
    np.testing.assert_array_equal(mask.sum(axis=1), [4, 3, 2, 1, 0])
    assert mask[0, :4].all() and mask[3, 0]


@pytest.mark.parametrize("vertices", [np.zeros((0, 2)), np.array([[0.0, 0.0], [3.0, 3.0]])])
def test_degenerate_polygons_fill_nothing(vertices: np.ndarray) -> None:
    assert not fill_polygons([vertices], (4, 4)).any()


def test_bad_polygon_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        fill_polygons([np.zeros((4, 3))], (4, 4))


def test_group_positions() -> None:
    means, labels = group_positions([6.0, 0.0, 6.05, 3.0], tolerance=0.1)
    np.testing.assert_allclose(means, [0.0, 3.0, 6.025])
    np.testing.assert_array_equal(labels, [2, 0, 2, 1])


def test_nearest_planes_within_half_thickness_ties_to_first() -> None:
    planes = [3.0, 6.0, 9.0]
    slices = np.arange(9) * 1.5  # 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5, 12
    got = nearest_planes(planes, slices, half_thickness=1.5)
    np.testing.assert_array_equal(got, [-1, 0, 0, 0, 1, 1, 2, 2, -1])
    np.testing.assert_array_equal(nearest_planes([], slices[:2], half_thickness=1.0), [-1, -1])


def test_min_gap() -> None:
    assert min_gap([9.0, 0.0, 3.0, 3.0]) == 3.0
    assert min_gap([1.0]) is None
