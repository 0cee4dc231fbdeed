"""igrt.registration.structure: the fine levels' samples near the CBCT's edges, every edge taken
with both of its sides or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core.volume import Volume
from igrt.registration.structure import DILATE_MM, near_edges, strong_edges

SPACING = (1.0, 1.0, 2.0)
SHAPE = (40, 120, 120)  # k, j, i: 80 x 120 x 120 mm


def block(face_i: int) -> Volume:
    """Air with a block (0 HU) from column ``face_i`` on (a face normal to x) and a dense
    12 mm ball deep inside the usable region."""
    hu = np.full(SHAPE, -1000.0, np.float32)
    hu[:, :, face_i:] = 0.0
    k, j, i = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    ball = ((k - 20) * 2.0) ** 2 + (j - 60.0) ** 2 + (i - 60.0) ** 2 <= 36.0
    hu[ball] = 1500.0
    return Volume(voxels=hu, origin_mm=(0.0, 0.0, 0.0), spacing_mm=SPACING)


def usable_from(i0: int) -> np.ndarray:
    """The usable region: columns from ``i0`` on (as a registration box's face)."""
    usable = np.zeros(SHAPE, bool)
    usable[:, :, i0:] = True
    return usable


def test_an_edge_deep_inside_is_sampled_on_both_sides() -> None:
    mask = near_edges(strong_edges(block(face_i=60 + 30)), usable_from(10))  # the face 80 mm inside
    assert mask is not None
    row = mask[20, 100]  # away from the ball: the face alone
    assert row[90 - 5] and row[90 + 4]  # the air side and the block side
    assert not row[40] and not row[119]  # not far from it


@pytest.mark.parametrize("inside_mm", [4, 12], ids=["within-a-band", "within-the-depth"])
def test_an_edge_near_the_regions_boundary_is_left_out(inside_mm: int) -> None:
    """A face 4 mm inside the box's face (less than the band's width) would be sampled on its
    block side only, half its band cut away; one 12 mm inside has its band but still pulled
    (the QA cube 0.3-0.4 mm outward): neither takes part. The ball still does."""
    mask = near_edges(strong_edges(block(face_i=10 + inside_mm)), usable_from(10))
    assert mask is not None
    assert not mask[20, 100, 10:40].any()  # nothing of the face's band
    assert mask[20, 60, 60 - 9] and mask[20, 60, 60 + 9]  # the ball's band, both sides


def test_a_face_on_the_regions_boundary_is_left_out() -> None:
    """The QA cube's face on the box's face: seen from inside only, it takes no part."""
    mask = near_edges(strong_edges(block(face_i=10)), usable_from(10))
    assert mask is not None
    assert not mask[20, 100, 10:10 + int(2 * DILATE_MM)].any()


def test_a_mask_near_edges_is_decimated_to_about_its_samples() -> None:
    """The native level asks for 20 000 samples. A mask near edges that holds 40 % of the
    default box in a test-size CBCT (57 x 57 x 34 voxels of 2.8 x 2.8 x 3.5 mm) rounded its
    strides to 1 and kept all 44 000 (twice the work for the same level); at most 1.5 times as
    many as asked are kept, spread evenly."""
    import SimpleITK as sitk

    from igrt.registration.reference import LevelImages
    from igrt.registration.sitk_engine import _sample_grid

    image = sitk.Image(57, 57, 34, sitk.sitkFloat32)
    image.SetSpacing((2.8, 2.8, 3.5))
    keep = np.zeros((34, 57, 57), np.uint8)
    keep[:, :23, :] = 1  # 40 %
    mask = sitk.GetImageFromArray(keep)
    mask.CopyInformation(image)
    made = _sample_grid(LevelImages((1, 1, 1), 0.0, image, mask), 20000)
    assert made.mask is not None
    kept = int(np.count_nonzero(sitk.GetArrayViewFromImage(made.mask)))
    assert 20000 / 1.5 <= kept <= 1.5 * 20000
    assert max(made.image.GetSpacing()) / min(made.image.GetSpacing()) <= 2.0


@pytest.mark.parametrize("radius", [[1, 1, 1], [4, 4, 4], [10, 10, 9], [9, 2, 5]], ids=str)
def test_a_band_and_a_depth_are_itks_ball(radius: list[int]) -> None:
    """The bands (dilation) and the depth (erosion) come from a distance map, and are exactly
    what ITK's ball structuring element of the same radius gives (the masks before it),
    also for a region cut by the image's border (beyond it counts as outside)."""
    import SimpleITK as sitk

    from igrt.registration.structure import Edges, _deep_inside, _within_ball

    rng = np.random.default_rng(sum(radius))
    shape = (40, 61, 57)
    seeds = rng.random(shape) < 0.0005
    dilated = sitk.BinaryDilate(sitk.GetImageFromArray(seeds.astype(np.uint8)), radius,
                                sitk.sitkBall)
    grown = _within_ball(seeds, radius)
    assert np.array_equal(grown, sitk.GetArrayFromImage(dilated) != 0)
    assert 0.01 < grown.mean() < 0.99
    k, j, i = np.indices(shape)
    radial = ((k - 12) / 30.0) ** 2 + ((j - 35) / 35.0) ** 2 + ((i - 28) / 37.0) ** 2
    blob: np.ndarray = np.asarray(radial < 0.9)  # reaches four of the image's faces
    # holes the erosion must grow around, about one in every third ball
    blob &= rng.random(shape) > 0.3 / float(np.prod(2 * np.asarray(radius) + 1))
    assert blob[0].any() and blob[:, -1].any() and blob[:, :, 0].any() and blob[:, :, -1].any()
    eroded = sitk.BinaryErode(sitk.GetImageFromArray(blob.astype(np.uint8)), radius,
                              sitk.sitkBall, 0.0, 1.0, False)
    volume = Volume(voxels=blob.astype(np.float32), origin_mm=(0.0, 0.0, 0.0),
                    spacing_mm=(1.0, 1.0, 1.0))
    mine = _deep_inside(blob, Edges(volume, (1, 1, 1), None), radius)
    assert np.array_equal(mine, sitk.GetArrayFromImage(eroded) != 0)
    assert mine.any() and not mine.all()
    everywhere = np.ones((5, 6, 7), bool)
    assert _within_ball(everywhere, radius).all()
