"""igrt.registration.cupping: the CBCT's radial cupping estimated and taken out before
registration, about the axis given, and nothing taken out where there is none."""

from __future__ import annotations

import numpy as np
import pytest

from igrt.core.volume import Volume
from igrt.registration.cupping import (
    MAX_CORRECTION_HU,
    UNIFORM_SHARE_MIN,
    Cupping,
    axis_radius_mm,
    flattened,
    uniform_share,
)

SPACING = (1.0, 1.0, 2.5)
SHAPE = (24, 200, 200)  # k, j, i


def cube(cupping_hu: float, *, axis_mm: tuple[float, float] = (0.0, 0.0),
         noise_hu: float = 20.0, seed: int = 1) -> tuple[Volume, np.ndarray]:
    """A 160 mm uniform block (-20 HU) in air, a dense 10 mm rod in it, and the CBCT's cupping:
    ``cupping_hu`` darker on the axis, zero at 120 mm (as the QA phantoms' CBCTs); the radius
    from ``axis_mm`` (x, y)."""
    origin = (-99.5, -99.5, -30.0)
    x = origin[0] + np.arange(SHAPE[2]) * SPACING[0]
    y = origin[1] + np.arange(SHAPE[1]) * SPACING[1]
    block = (np.abs(x)[None, :] <= 80.0) & (np.abs(y)[:, None] <= 80.0)
    rod = np.hypot(x[None, :] - 30.0, y[:, None] + 20.0) <= 5.0
    hu = np.where(block, -20.0, -1000.0)
    hu = np.where(rod, 1200.0, hu)
    rho = np.hypot(x[None, :] - axis_mm[0], y[:, None] - axis_mm[1])
    hu = hu - cupping_hu * np.clip(1.0 - (rho / 120.0) ** 2, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    voxels = hu[None] + rng.normal(0.0, noise_hu, SHAPE)
    usable = np.broadcast_to(np.ones(SHAPE[1:], bool)[None], SHAPE).copy()
    return Volume(voxels=voxels.astype(np.float32), origin_mm=origin, spacing_mm=SPACING), usable


def block_interior(volume: Volume) -> np.ndarray:
    x = volume.origin_mm[0] + np.arange(SHAPE[2]) * SPACING[0]
    y = volume.origin_mm[1] + np.arange(SHAPE[1]) * SPACING[1]
    inside = (np.abs(x)[None, :] <= 75.0) & (np.abs(y)[:, None] <= 75.0)
    rod = np.hypot(x[None, :] - 30.0, y[:, None] + 20.0) <= 8.0
    return np.broadcast_to((inside & ~rod)[None], SHAPE)


def radial_spread_hu(volume: Volume, axis_mm: tuple[float, float]) -> float:
    """Peak-to-peak of the block's ring medians (5 mm rings about ``axis_mm``)."""
    r = axis_radius_mm(volume, (*axis_mm, 0.0))
    keep = block_interior(volume)
    ring = np.floor(r[keep] / 5.0).astype(int)
    values = volume.voxels[keep]
    medians = [np.median(values[ring == n]) for n in np.unique(ring) if (ring == n).sum() > 200]
    return float(np.ptp(medians))


@pytest.mark.parametrize("axis_mm", [(0.0, 0.0), (12.0, -8.0)], ids=["centred", "off-centre"])
def test_the_cupping_about_the_axis_is_taken_out(axis_mm: tuple[float, float]) -> None:
    volume, usable = cube(70.0, axis_mm=axis_mm)
    assert radial_spread_hu(volume, axis_mm) > 50.0  # the cupping is there
    out, cupping = flattened(volume, usable, (*axis_mm, 0.0))
    assert cupping is not None
    assert 55.0 <= cupping.amplitude_hu <= 85.0
    assert radial_spread_hu(out, axis_mm) < 8.0  # and gone: flat to within the noise


def test_the_wrong_axis_leaves_most_of_it() -> None:
    """The profile is a function of the radius about the given axis: about another axis the
    block's cupping is not what it takes out (so the axis really is used)."""
    volume, usable = cube(70.0, axis_mm=(40.0, 40.0))
    out, _ = flattened(volume, usable, (-40.0, -40.0, 0.0))
    assert radial_spread_hu(out, (40.0, 40.0)) > 25.0


def test_a_flat_image_is_left_as_it_is() -> None:
    volume, usable = cube(0.0)
    out, cupping = flattened(volume, usable, (0.0, 0.0, 0.0))
    assert cupping is None
    assert out is volume


def test_the_correction_moves_no_edge() -> None:
    """A function of the radius alone: across the block's face and the rod's edge the step is
    where it was (the correction changes by < 2 HU over the 2 mm across them)."""
    volume, usable = cube(70.0, noise_hu=0.0)
    out, cupping = flattened(volume, usable, (0.0, 0.0, 0.0))
    assert cupping is not None
    change = volume.voxels - out.voxels
    k, j = 10, 100  # the row through the axis: the face at x = ±80 mm (i = 20 and 180)
    assert np.abs(np.diff(change[k, j, 18:23])).max() < 2.0
    assert np.abs(np.diff(change[k, j, 178:183])).max() < 2.0
    assert np.argmax(np.abs(np.diff(out.voxels[k, j, 10:30]))) == np.argmax(
        np.abs(np.diff(volume.voxels[k, j, 10:30])))


def test_the_correction_is_bounded_and_held_beyond_the_fitted_radii() -> None:
    cupping = Cupping((0.0, 0.02, 0.0), 10.0, 90.0, 0.0)  # 0.02 HU/mm²: 162 HU at 90 mm
    assert cupping.correction_hu(90.0) == MAX_CORRECTION_HU
    assert cupping.correction_hu(200.0) == cupping.correction_hu(90.0)
    assert cupping.correction_hu(0.0) == pytest.approx(cupping.correction_hu(10.0)) == 2.0


def test_a_uniform_phantom_is_uniform_and_a_patient_mix_is_not() -> None:
    rng = np.random.default_rng(3)
    phantom = rng.normal(15.0, 8.0, 20000)  # solid water, planning-CT noise
    phantom[:600] = 1500.0  # a few dense inserts
    patient = np.concatenate([rng.normal(-95.0, 15.0, 6000),   # fat
                              rng.normal(45.0, 12.0, 8000),    # muscle
                              rng.normal(10.0, 8.0, 2000),     # bladder
                              rng.normal(400.0, 150.0, 4000)])  # bone
    assert uniform_share(phantom) >= UNIFORM_SHARE_MIN
    assert uniform_share(patient) < UNIFORM_SHARE_MIN
    assert uniform_share(np.zeros(10)) == 0.0  # too few to tell
