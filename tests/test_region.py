"""igrt.registration.region: box, field of view, body mask (hand-built arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core.volume import Volume
from igrt.registration import region


def volume(voxels: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
           direction: np.ndarray | None = None) -> Volume:
    return Volume(voxels.astype(np.float32), (0.0, 0.0, 0.0), spacing,
                  np.eye(3) if direction is None else direction)


def cylinder_cbct(pad: float = -3024.0) -> Volume:
    v = np.full((10, 41, 41), pad, dtype=np.float32)
    j, i = np.mgrid[0:41, 0:41]
    inside = (i - 20) ** 2 + (j - 20) ** 2 <= 18 ** 2
    v[:, inside] = -1000.0
    v[:, 15:25, 15:25] = 40.0
    return volume(v)


def test_index_box_clips_and_centres() -> None:
    v = volume(np.zeros((10, 20, 30)))
    box = region.index_box(v, (15.0, 10.0, 5.0), (10.0, 4.0, 2.0), margin_vox=0)
    assert box == (slice(4, 7), slice(8, 13), slice(10, 21))
    assert region.index_box(v, (0, 0, 0), (1000, 1000, 1000)) == (slice(0, 10), slice(0, 20),
                                                                   slice(0, 30))


def test_crop_moves_the_origin() -> None:
    v = Volume(np.zeros((4, 5, 6), np.float32), (10.0, 20.0, 30.0), (2.0, 3.0, 4.0),
               np.diag([-1.0, 1.0, 1.0]))
    c = region.crop(v, (slice(1, 3), slice(2, 5), slice(3, 6)))
    assert c.origin_mm == (10.0 - 3 * 2.0, 20.0 + 2 * 3.0, 30.0 + 1 * 4.0)
    assert c.voxels.shape == (2, 3, 3)


def test_detect_padding_only_for_a_constant_minimum_in_the_corners() -> None:
    pad = region.detect_padding(cylinder_cbct())
    assert pad is not None and pad[0, 0, 0] and not pad[0, 20, 20]
    noisy = cylinder_cbct()
    noisy.voxels[:, 0, 0] = 5.0
    assert region.detect_padding(noisy) is None


def test_field_of_view_is_the_cylinder_trimmed() -> None:
    v = cylinder_cbct()
    fov = region.field_of_view(v, region.detect_padding(v), erode_mm=2.0)
    assert fov[5, 20, 20] and not fov[5, 20, 2]  # rim trimmed by 2 mm
    assert not fov[0].any() and not fov[-1].any()  # 2 mm = 2 slices trimmed at each end
    assert fov[2].any()
    assert region.field_of_view(v, None).all()


def test_body_mask_leaves_out_a_thin_couch_and_does_not_grow_toward_it() -> None:
    v = np.full((3, 60, 60), -1000.0)
    v[:, 10:30, 15:45] = 40.0  # the patient
    v[:, 30:32, 0:60] = 300.0  # a 2 mm couch shell touching the patient from below (+row)
    vol = volume(v)
    down = np.array([0.0, 1.0, 0.0])  # +y = rows = posterior for this grid
    mask = region.body_mask(vol, down_lps=down, margin_mm=5.0)
    assert mask[1, 20, 30]
    assert not mask[1, 31, 5]  # the couch away from the patient
    assert mask[1, 5, 30]  # grown 5 mm upward (anterior)
    # the shell in direct contact survives the opening, but nothing grows beyond it downward
    assert not mask[1, 33:, 15:45].any()
    assert mask[1, 20, 11]  # grown sideways
    both_ways = region.body_mask(vol, margin_mm=5.0)
    assert both_ways[1, 34, 30]


@pytest.mark.parametrize(
    ("row_axis_lps", "down_lps", "couch_side"),
    [
        # supine scan (rows along +y), couch posterior (+y): below = higher rows
        pytest.param((0.0, 1.0, 0.0), (0.0, 1.0, 0.0), "high", id="HFS"),
        # prone scan (IOP rows along -y), couch anterior (-y): again higher rows
        pytest.param((0.0, -1.0, 0.0), (0.0, -1.0, 0.0), "high", id="HFP"),
        # rows along +y but couch at -y: the couch side is the lower rows
        pytest.param((0.0, 1.0, 0.0), (0.0, -1.0, 0.0), "low", id="rows-away-from-couch"),
    ],
)
def test_body_margin_never_grows_toward_the_couch(row_axis_lps: tuple[float, float, float],
                                                  down_lps: tuple[float, float, float],
                                                  couch_side: str) -> None:
    v = np.full((3, 60, 60), -1000.0)
    v[:, 20:40, 15:45] = 40.0
    direction = np.column_stack([(1.0, 0.0, 0.0), row_axis_lps,
                                 np.cross((1.0, 0.0, 0.0), row_axis_lps)])
    mask = region.body_mask(volume(v, direction=direction), down_lps=np.array(down_lps),
                            margin_mm=5.0)
    grew_high = bool(mask[1, 42, 30])
    grew_low = bool(mask[1, 17, 30])
    assert (grew_high, grew_low) == ((False, True) if couch_side == "high" else (True, False))


def test_holes_are_filled_per_slice_never_through_another_slice() -> None:
    """Slice 0: a ring (its inside is a hole); slice 1: the same ring broken to the edge (its
    inside reaches the edge in-plane: not a hole, although slice 0 closes it from above);
    slice 2: two holes, one of a single voxel, and background touching only a corner of the
    ring (face connectivity: the diagonal gap does not connect it)."""
    mask = np.zeros((3, 9, 9), dtype=bool)
    mask[0:2, 1:8, 1:8] = True
    mask[0:2, 2:7, 2:7] = False
    mask[1, 4, 1:2] = False  # the gap to the edge
    mask[2, 0:9, 0:9] = True
    mask[2, 2:4, 2:4] = False
    mask[2, 6, 6] = False
    filled = region._fill_holes_per_slice(mask)
    assert filled[0, 1:8, 1:8].all() and not filled[0, 0].any()
    assert np.array_equal(filled[1], mask[1])
    assert filled[2].all()
    mask[2, 0, 0] = False  # on the edge: background, stays background
    mask[2, 1, 1] = False  # diagonal to it only: enclosed, a hole
    filled = region._fill_holes_per_slice(mask)
    assert not filled[2, 0, 0] and filled[2, 1, 1]


@pytest.mark.parametrize("box", [
    (slice(0, 10), slice(0, 41), slice(0, 41)),  # the whole volume
    (slice(3, 7), slice(10, 30), slice(5, 36)),  # inside: the end trim reaches beyond it
    (slice(0, 2), slice(0, 20), slice(20, 41)),  # at the first slice
    (slice(8, 10), slice(15, 16), slice(0, 41)),  # at the last
])
def test_field_of_view_within_a_box_is_the_whole_ones_cut(
        box: tuple[slice, slice, slice]) -> None:
    v = cylinder_cbct()
    padding = region.detect_padding(v)
    assert padding is not None
    padding[1, :, :30] = True  # a slice mostly padded (reconstructed in part): not good
    whole = region.field_of_view(v, padding, erode_mm=2.0)
    assert not whole[3].any() and whole[4].any() and whole[7].any() and not whole[8].any()
    within = region.field_of_view(v, padding, erode_mm=2.0, within=box)
    assert within.shape == whole[box].shape
    assert np.array_equal(within, whole[box])
    assert region.field_of_view(v, None, within=box).shape == whole[box].shape
