"""igrt.registration.reference and reference_cache: the planning side prepared once (crop,
region, exact pyramid levels never finer than the CBCT level needs) and kept in a bounded LRU."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import SimpleITK as sitk
from phantom_cases import planning_set

from igrt.core.errors import NoOverlapError
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.volume import Volume
from igrt.dicom.files import scan
from igrt.dicom.series_loader import load_series_files
from igrt.registration import reference as reference_module
from igrt.registration.problem import DEFAULT_LEVELS, Level
from igrt.registration.reference import (
    MOVING_MARGIN_MM,
    LevelImages,
    PlanningReference,
    build_reference,
    fixed_factors,
    grid_key,
    planning_factors,
    shrunk,
    smooth,
)
from igrt.registration.reference_cache import ReferenceCache

BOX_MM = (160.0, 160.0, 120.0)
EYE = np.eye(3)
#: rows along -y, slices along -z (a feet-first prone scan's axes)
FLIPPED = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
#: a CBCT whose column axis is the CT's slice axis (sagittal slices)
SAGITTAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def info(uid: str = "1.2.826.0.1.3680043.10.5") -> SeriesInfo:
    return SeriesInfo("PAT", "1.2.3", uid, "1.2.4", "CT", "1.2.840.10008.5.1.4.1.1.2", "HFS",
                      "", 1, ())


@pytest.mark.parametrize(
    ("fixed_mm", "fixed_direction", "ct_mm", "expected"),
    [
        pytest.param((0.9, 0.9, 2.0), EYE, (0.9765625, 0.9765625, 2.5), (1, 1, 1),
                     id="body-CT-native"),
        pytest.param((0.9, 0.9, 2.0), EYE, (0.45, 0.45, 1.0), (2, 2, 2), id="0.45mm-CT-binned"),
        pytest.param((0.9, 0.9, 2.0), FLIPPED, (0.45, 0.45, 1.0), (2, 2, 2), id="flipped-axes"),
        pytest.param((0.9, 0.9, 2.0), SAGITTAL, (0.45, 0.45, 1.0), (4, 2, 1),
                     id="permuted-axes"),  # along CT x the CBCT has 2 mm, along y and z 0.9
        pytest.param((4.0, 4.0, 4.0), EYE, (0.9765625, 0.9765625, 2.5), (4, 4, 1),
                     id="4mm-level"),
        pytest.param((2.0, 2.0, 2.0), EYE, (0.9765625, 0.9765625, 2.5), (2, 2, 1),
                     id="2mm-level"),
        pytest.param((0.5, 0.5, 1.0), EYE, (0.9765625, 0.9765625, 2.5), (1, 1, 1),
                     id="finer-CBCT-never-below-1"),
    ],
)
def test_planning_factors_never_coarser_than_the_cbct_level(
        fixed_mm: tuple[float, float, float], fixed_direction: np.ndarray,
        ct_mm: tuple[float, float, float], expected: tuple[int, int, int]) -> None:
    factors = planning_factors(fixed_mm, fixed_direction, ct_mm, EYE)
    assert factors == expected
    extent = np.abs(fixed_direction) @ np.asarray(fixed_mm)  # the CBCT voxel along CT axes
    coarser = np.asarray(factors) * np.asarray(ct_mm) > extent * 1.05 + 1e-9
    assert not np.any(coarser & (np.asarray(factors) > 1))  # only native may be coarser


def test_fixed_factors_bring_the_cbct_toward_the_level() -> None:
    assert fixed_factors((0.9, 0.9, 2.0), DEFAULT_LEVELS[0]) == (4, 4, 2)
    assert fixed_factors((0.9, 0.9, 2.0), DEFAULT_LEVELS[1]) == (2, 2, 1)
    assert fixed_factors((0.9, 0.9, 2.0), DEFAULT_LEVELS[2]) == (1, 1, 1)


def synthetic(shape: tuple[int, int, int] = (20, 40, 30),
              spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Volume:
    rng = np.random.default_rng(3)
    voxels = rng.normal(0.0, 100.0, size=shape).astype(np.float32)
    voxels[5:15, 10:30, 8:22] += 500.0
    return Volume(voxels, (-10.0, -20.0, 30.0), spacing, EYE)


def test_levels_are_made_once_with_exact_geometry() -> None:
    volume = synthetic()
    mask = np.zeros(volume.voxels.shape, dtype=bool)
    mask[4:16, 8:32, 6:24] = True
    reference = PlanningReference(ct=info(), volume=volume, mask=mask,
                                  isocenter_mm=np.zeros(3), position=PatientPosition.HFS)
    native = reference.native
    assert reference.native is native  # made once, its pixels shared with the crop
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(native.image), volume.voxels)
    level = reference.level((2, 2, 1), 1.5)
    assert reference.level((2, 2, 1), 1.5) is level  # made once
    assert level.image.GetSize() == (15, 20, 20)
    assert level.image.GetSpacing() == (2.0, 2.0, 2.0)
    # a binned voxel's centre is the centre of the voxels it averages
    np.testing.assert_allclose(level.image.TransformIndexToPhysicalPoint((0, 0, 0)),
                               (-10.0 + 0.5, -20.0 + 0.5, 30.0))
    assert level.mask is not None
    coarse = sitk.GetArrayViewFromImage(level.mask)
    assert coarse[10, 10, 7] == 1 and coarse[1, 1, 1] == 0
    before = reference.nbytes
    reference.level((4, 4, 1), 4.0)
    assert reference.nbytes > before


def test_reading_a_level_beside_another_holder_leaves_the_reference_intact() -> None:
    """The unshrunk, unsmoothed level is the crop's pixels; SimpleITK gives an image whose
    buffer is shared a buffer of its own when NumPy reads it (elastix's input, made while a
    SimpleITK run holds a copy). The reference's own ``volume`` and ``mask`` must not be left
    viewing the old buffer, which is freed with that copy. In a fresh interpreter: reading
    freed memory may also crash it."""
    import subprocess
    import sys

    code = """
import gc, sys
import numpy as np
import SimpleITK as sitk
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.volume import Volume
from igrt.registration.reference import PlanningReference, cut

rng = np.random.default_rng(3)
volume = Volume(rng.normal(size=(40, 96, 96)).astype(np.float32), (0.0, 0.0, 0.0),
                (1.0, 1.0, 2.5))
mask = np.zeros(volume.voxels.shape, dtype=bool)
mask[4:36, 8:90, 6:80] = True
info = SeriesInfo("PAT", "1.2.3", "1.2.5", "1.2.4", "CT", "1.2.840.10008.5.1.4.1.1.2",
                  "HFS", "", 1, ())
whole = (np.array([-50.0, -50.0, -50.0]), np.array([500.0, 500.0, 500.0]))
for handed in ("kept", "cut whole"):  # a fresh reference each time
    reference = PlanningReference(ct=info, volume=volume, mask=mask,
                                  isocenter_mm=np.zeros(3), position=PatientPosition.HFS)
    voxels, region = np.array(reference.volume.voxels), np.array(reference.mask)
    level = reference.native if handed == "kept" else cut(reference.native, whole)
    held = [sitk.Image(level.image), sitk.Image(level.mask)]  # a run holding copies
    sitk.GetArrayViewFromImage(level.image)  # read through NumPy meanwhile
    sitk.GetArrayViewFromImage(level.mask)
    del held, level
    gc.collect()
    scribbled = [np.full(volume.voxels.shape, 7, dtype=np.float32) for _ in range(8)]
    scribbled += [np.ones(mask.shape, dtype=np.uint8) for _ in range(8)]
    if not (np.array_equal(reference.volume.voxels, voxels)
            and np.array_equal(reference.mask, region)):
        sys.exit(3)
sys.exit(0)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_a_level_made_is_handed_out_while_warm_makes_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    volume = synthetic()
    reference = PlanningReference(ct=info(), volume=volume,
                                  mask=np.ones(volume.voxels.shape, dtype=bool),
                                  isocenter_mm=np.zeros(3), position=PatientPosition.HFS)
    made = reference.level((2, 2, 1), 2.0)
    started, release = threading.Event(), threading.Event()
    real = reference_module.level_images

    def slow(*args: Any, **kwargs: Any) -> LevelImages:
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(reference_module, "level_images", slow)
    warming = threading.Thread(target=lambda: reference.level((4, 4, 2), 4.0))
    warming.start()
    try:
        assert started.wait(10)
        got: list[LevelImages] = []
        run = threading.Thread(target=lambda: got.append(reference.level((2, 2, 1), 2.0)))
        run.start()
        run.join(5)
        assert got == [made]  # handed out at once, not after the level being made
    finally:
        release.set()
        warming.join(10)
    assert reference.level((4, 4, 2), 4.0).factors == (4, 4, 2)


def test_warm_makes_the_smoothed_levels_and_with_a_cbct_grid_the_native_one() -> None:
    volume = synthetic(spacing=(0.45, 0.45, 1.0))
    reference = PlanningReference(ct=info(), volume=volume,
                                  mask=np.ones(volume.voxels.shape, dtype=bool),
                                  isocenter_mm=np.zeros(3), position=PatientPosition.HFS)
    reference.warm()
    made = {cast(tuple[Any, float], key) for key, _ in reference._levels.made()}
    assert {s for _, s in made} == {level.planning_smoothing_mm for level in DEFAULT_LEVELS[:2]}
    reference.warm((0.9, 0.9, 2.0), EYE)
    native = DEFAULT_LEVELS[2]
    assert ((2, 2, 2), native.smoothing_mm) in reference._levels  # binned to the CBCT voxel
    assert reference.for_level(native, (0.9, 0.9, 2.0), EYE) is \
        reference.level((2, 2, 2), native.smoothing_mm)


def test_build_reference_crops_around_the_isocentre_and_finds_the_body(tmp_path: Path) -> None:
    case = planning_set(tmp_path)
    ct = load_series_files(scan(case.directory).image_series[0].paths)
    iso = np.asarray(case.isocenter_mm)
    reference = build_reference(ct.volume, ct.info, isocenter_mm=iso,
                                position=PatientPosition.HFS, box_size_mm=BOX_MM)
    lo = reference.volume.index_to_point_mm((0, 0, 0))
    hi = reference.volume.index_to_point_mm(np.asarray(reference.volume.shape_ijk) - 1)
    half = np.asarray(BOX_MM) / 2 + MOVING_MARGIN_MM
    full_lo = ct.volume.index_to_point_mm((0, 0, 0))
    full_hi = ct.volume.index_to_point_mm(np.asarray(ct.volume.shape_ijk) - 1)
    assert np.all(np.minimum(lo, hi) <= np.maximum(iso - half, np.minimum(full_lo, full_hi)))
    assert np.all(np.maximum(lo, hi) >= np.minimum(iso + half, np.maximum(full_lo, full_hi)))
    assert reference.ct == ct.info
    assert 0.05 < reference.mask.mean() < 0.95  # the body, not the air or the CT couch
    with pytest.raises(NoOverlapError, match="holds no voxel"):
        build_reference(ct.volume, ct.info, isocenter_mm=iso, position=PatientPosition.HFS,
                        box_size_mm=BOX_MM, region_mask=np.zeros(ct.volume.voxels.shape, bool))
    with pytest.raises(NoOverlapError, match="does not cover"):
        build_reference(ct.volume, ct.info, isocenter_mm=iso + 2000.0,
                        position=PatientPosition.HFS, box_size_mm=BOX_MM)


def tiny_reference(uid: str, side: int) -> PlanningReference:
    volume = Volume(np.zeros((side, side, side), np.float32), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return PlanningReference(ct=info(uid), volume=volume,
                             mask=np.ones(volume.voxels.shape, dtype=bool),
                             isocenter_mm=np.zeros(3), position=PatientPosition.HFS)


def test_cache_evicts_the_least_recently_used_beyond_its_memory() -> None:
    one = tiny_reference("1.2.826.0.1.3680043.10.11", 40).nbytes  # 40^3 * 5 bytes
    cache = ReferenceCache(max_bytes=int(2.5 * one))
    for n in range(3):
        cache.put(("k", n), tiny_reference(f"1.2.826.0.1.3680043.10.1{n}", 40))
        if n == 1:
            assert cache.get(("k", 0)) is not None  # k0 used: k1 is now the oldest
    assert ("k", 0) in cache and ("k", 2) in cache and ("k", 1) not in cache
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert cache.get(("k", 1)) is None and cache.misses == 1 and cache.hits == 1
    built: list[PlanningReference] = []

    def build() -> PlanningReference:
        built.append(tiny_reference("1.2.826.0.1.3680043.10.13", 40))
        return built[-1]

    found = cache.get_or_build(("k", 3), build)
    assert built == [found] and cache.get_or_build(("k", 3), build) is found and len(built) == 1


def test_cache_keeps_the_most_recent_reference_even_alone_over_its_memory() -> None:
    cache = ReferenceCache(max_bytes=1000)
    cache.put("big", tiny_reference("1.2.826.0.1.3680043.10.21", 40))
    assert "big" in cache
    cache.put("bigger", tiny_reference("1.2.826.0.1.3680043.10.22", 50))
    assert "big" not in cache and "bigger" in cache


def test_a_level_tuple_is_a_cache_key() -> None:
    assert hash(DEFAULT_LEVELS[0]) == hash(Level(**vars(DEFAULT_LEVELS[0])))


def test_light_smoothing_is_the_sampled_gaussian_and_keeps_the_mean() -> None:
    impulse = np.zeros((9, 9, 9), np.float32)
    impulse[4, 4, 4] = 1000.0
    image = sitk.GetImageFromArray(impulse)
    image.SetSpacing((1.0, 1.0, 2.5))
    out = sitk.GetArrayFromImage(smooth(image, 0.6))
    w = np.exp(-0.5 * (np.arange(-2, 3) / 0.6) ** 2)
    w /= w.sum()
    np.testing.assert_allclose(out[4, 4, 2:7], 1000.0 * w[2] * w, rtol=1e-5)  # along i
    np.testing.assert_allclose(out[4, 2:7, 4], 1000.0 * w[2] * w, rtol=1e-5)  # along j
    assert out[3, 4, 4] == 0.0  # 2.5 mm slices: 0.6 mm leaves the slice axis alone
    assert out.sum() == pytest.approx(1000.0, rel=1e-5)


def test_smoothing_a_thin_image_is_possible() -> None:
    image = sitk.GetImageFromArray(np.ones((3, 12, 12), np.float32))
    out = smooth(image, 4.0)  # the recursive filter needs four voxels along every axis
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), 1.0, rtol=1e-4)


def test_a_planning_ct_finer_than_the_cbct_is_kept_binned_to_it() -> None:
    ct = synthetic(shape=(40, 60, 60), spacing=(0.45, 0.45, 1.0))
    iso = ct.index_to_point_mm((30, 30, 20))
    mask = np.zeros(ct.voxels.shape, dtype=bool)
    mask[10:30, 15:45, 15:45] = True
    fine = build_reference(ct, info(), isocenter_mm=iso, position=PatientPosition.HFS,
                           box_size_mm=BOX_MM, region_mask=mask)
    binned = build_reference(ct, info(), isocenter_mm=iso, position=PatientPosition.HFS,
                             box_size_mm=BOX_MM, region_mask=mask,
                             cbct_grid=((0.9, 0.9, 2.0), EYE))
    assert fine.volume.spacing_mm == (0.45, 0.45, 1.0)
    assert binned.volume.spacing_mm == (0.9, 0.9, 2.0)
    assert binned.volume.voxels.shape == (20, 30, 30)
    assert binned.nbytes * 7 < fine.nbytes
    # a binned voxel is the mean of the eight it replaces, at their centre
    np.testing.assert_allclose(binned.volume.voxels[0, 0, 0], ct.voxels[:2, :2, :2].mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(binned.volume.origin_mm,
                               ct.index_to_point_mm((0.5, 0.5, 0.5)), atol=1e-9)
    assert binned.mask[10, 10, 10] and not binned.mask[2, 2, 2]
    same = build_reference(ct, info(), isocenter_mm=iso, position=PatientPosition.HFS,
                           box_size_mm=BOX_MM, region_mask=mask,
                           cbct_grid=((0.45, 0.45, 1.0), EYE))
    assert same.volume.spacing_mm == (0.45, 0.45, 1.0)  # a CBCT as fine: nothing to bin


def test_head_first_and_feet_first_cbcts_of_one_protocol_share_the_prepared_ct() -> None:
    assert grid_key(((0.9, 0.9, 2.0), EYE)) == grid_key(((0.9, 0.9, 2.0), FLIPPED))
    assert grid_key(((0.9, 0.9, 2.0), EYE)) != grid_key(((0.9, 0.9, 1.0), EYE))
    assert grid_key(None) is None


def _native_cut(reference: PlanningReference, around: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    made = reference.for_level(DEFAULT_LEVELS[2], (1.0, 1.0, 2.0), EYE, around=around)
    assert made.mask is not None
    return (sitk.GetArrayFromImage(made.image), made.image.GetOrigin(),
            sitk.GetArrayFromImage(made.mask))


def _in_parts_and_whole() -> tuple[PlanningReference, PlanningReference]:
    """One synthetic CT prepared twice: its native level made in parts (a single
    registration's, ``keep_levels`` False) and made whole."""
    volume = synthetic()
    mask = np.zeros(volume.voxels.shape, dtype=bool)
    mask[2:18, 5:35, 4:26] = True
    parts, whole = (PlanningReference(ct=info(), volume=volume, mask=mask,
                                      isocenter_mm=np.zeros(3), position=PatientPosition.HFS,
                                      keep_levels=keep) for keep in (False, True))
    return parts, whole


@pytest.mark.parametrize(("second", "reused"), [
    pytest.param((np.array([-3.5, -12.0, 38.0]), np.array([9.0, 6.0, 60.0])), True,
                 id="inside"),
    pytest.param((np.array([-12.0, -22.0, 30.0]), np.array([6.0, 2.0, 50.0])), True,
                 id="at-the-ct-edge"),
    pytest.param((np.array([-1.0, -4.0, 44.0]), np.array([18.0, 19.0, 64.0])), False,
                 id="beyond"),
])
def test_a_level_made_in_parts_hands_out_the_voxels_of_the_whole_level(
        second: tuple[np.ndarray, np.ndarray], reused: bool) -> None:
    """A single registration (``keep_levels`` False) smooths the native level only where a run
    samples it and cuts the next run's part from the last one when it can: every part is, voxel
    for voxel and in its geometry, the cut of the whole level."""
    first = (np.array([-4.0, -13.0, 37.0]), np.array([10.0, 7.0, 61.0]))
    parts, whole = _in_parts_and_whole()
    parts.warm((1.0, 1.0, 2.0), EYE)
    assert ((1, 1, 1), DEFAULT_LEVELS[2].smoothing_mm) not in parts._levels  # never made whole
    held = []
    for around in (first, second):
        got, expected = _native_cut(parts, around), _native_cut(whole, around)
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]
        np.testing.assert_array_equal(got[2], expected[2])
        held.append(parts._part)
    assert (held[1] is held[0]) == reused  # the second part cut from the first when inside


@pytest.mark.parametrize("shape", [(23, 41, 37), (8, 9, 10), (4, 6, 5)])
@pytest.mark.parametrize("factors", [(2, 2, 1), (4, 4, 2), (3, 3, 1), (1, 2, 3), (5, 3, 4)])
def test_a_mask_shrunk_from_its_pixels_is_the_one_itk_averages(
        shape: tuple[int, int, int], factors: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape) + sum(factors))
    pixels = rng.random(shape) < 0.5
    pixels[:, : shape[1] // 3] = True  # whole bins in, and ties (half of a bin) somewhere
    image = sitk.GetImageFromArray(pixels.view(np.uint8))
    image.SetOrigin((1.5, -2.25, 30.1))
    image.SetSpacing((0.977, 0.45, 2.5))
    image.SetDirection(FLIPPED.ravel().tolist())
    itk = shrunk(image, factors)  # ITK's average of a float copy, compared with one half
    counted = shrunk(image, factors, pixels=pixels)
    assert counted.GetPixelID() == itk.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(counted), sitk.GetArrayFromImage(itk))
    assert sitk.GetArrayFromImage(itk).any()
    assert counted.GetOrigin() == itk.GetOrigin() and counted.GetSpacing() == itk.GetSpacing()
    assert counted.GetDirection() == itk.GetDirection()


@pytest.mark.parametrize(("asked", "held_ahead"), [
    pytest.param((np.array([-3.5, -12.0, 38.0]), np.array([9.0, 6.0, 60.0])), True,
                 id="inside-the-guess"),
    pytest.param((np.array([-1.0, -4.0, 44.0]), np.array([18.0, 19.0, 64.0])), False,
                 id="beyond-the-guess"),
])
def test_a_part_smoothed_ahead_is_used_only_where_it_holds_the_part_asked_for(
        asked: tuple[np.ndarray, np.ndarray], held_ahead: bool) -> None:
    """``smooth_ahead`` (a guess at where the native level's runs will ask) smooths a part the
    next request is cut from when it lies inside; a request beyond it smooths its own. Either
    way every voxel handed out is the whole level's; a level made whole has nothing ahead."""
    guess = (np.array([-4.0, -13.0, 37.0]), np.array([10.0, 7.0, 61.0]))
    parts, whole = _in_parts_and_whole()
    parts.smooth_ahead(DEFAULT_LEVELS[2], (1.0, 1.0, 2.0), EYE, guess)
    ahead = parts._part
    assert ahead is not None
    got, expected = _native_cut(parts, asked), _native_cut(whole, asked)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    np.testing.assert_array_equal(got[2], expected[2])
    assert (parts._part is ahead) == held_ahead
    whole.smooth_ahead(DEFAULT_LEVELS[2], (1.0, 1.0, 2.0), EYE, guess)
    assert whole._part is None  # made whole: nothing in parts
