"""The planning side of a registration, prepared once per planning CT and isocentre: the CT
around the isocentre (the box plus the capture range), the region the metric may use there (the
patient's body without the CT couch, or a planning structure), and the CT's pyramid levels.

A :class:`PlanningReference` is built from a decoded planning CT by :func:`build_reference`
(at intake in the service, on first use offline) and then only read: every CBCT registered
against it samples images prepared here. Pyramid levels are made on first request and kept
(:meth:`PlanningReference.level`); :meth:`PlanningReference.warm` makes those a registration
will ask for before the first CBCT arrives.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.errors import NoOverlapError
from igrt.core.geometry import PatientPosition
from igrt.core.image_series import SeriesInfo
from igrt.core.types import BoolArray, FloatArray, Grid
from igrt.core.volume import Volume
from igrt.registration import cupping, region
from igrt.registration.once import Once
from igrt.registration.problem import DEFAULT_LEVELS, Level
from igrt.registration.sitk_images import array_view, set_geometry

log = logging.getLogger(__name__)

#: How much further than the box the planning CT is kept: the capture range plus rotation
#: (30 mm and 5° move a corner of the default box by another ~10 mm) plus the smoothing's reach
#: (the middle level's; the first level's planning image, σ 5.7 mm, reaches ~17 mm, and there
#: it is smoothed against the crop's repeated edge: measured, every offset to 30 mm and 5° of
#: ``benchmarks/capture.py`` and the adversarial 60 mm case are found at both phantom sizes).
MOVING_MARGIN_MM = 50.0
#: A planning level may be this much coarser than the CBCT level it is compared with (so a
#: 0.977 mm CT stays native against a 0.9 mm CBCT, a 0.45 mm one is binned by 2).
COARSER_TOLERANCE = 0.05

Factors = tuple[int, int, int]


@dataclass(frozen=True)
class LevelImages:
    """One pyramid level: an image bin-shrunk by ``factors`` (i, j, k) and smoothed by
    ``smoothing_mm``, and its region mask (a coarse voxel is in when half its voxels are)."""

    factors: Factors
    smoothing_mm: float
    image: sitk.Image  # float32
    mask: sitk.Image | None  # uint8

    @property
    def nbytes(self) -> int:
        n = self.image.GetNumberOfPixels()
        return 4 * n + (self.mask.GetNumberOfPixels() if self.mask is not None else 0)


def level_images(image: sitk.Image, mask: sitk.Image | None, factors: Factors,
                 smoothing_mm: float, *, mask_pixels: BoolArray | None = None) -> LevelImages:
    """Bin-shrink (an average: cheap anti-aliasing, ITK keeps the geometry exact), then smooth.
    ``mask_pixels``: the mask's voxels (z, y, x) when the caller holds them (see :func:`shrunk`)."""
    if any(f > 1 for f in factors):
        image = sitk.BinShrink(image, list(factors))
        if mask is not None:
            mask = shrunk(mask, factors, pixels=mask_pixels)
    if smoothing_mm > 0:
        image = smooth(image, smoothing_mm)
    return LevelImages(factors, smoothing_mm, image, mask)


def shrunk(mask: sitk.Image, factors: Factors, *, pixels: BoolArray | None = None) -> sitk.Image:
    """A region mask bin-shrunk by ``factors``: a coarse voxel is in when half its voxels are.

    ``pixels``: the mask's voxels (z, y, x), when the caller holds them: the voxels of each bin
    are counted in NumPy, which is exactly ITK's average compared with one half (a coarse voxel
    is in when twice its count reaches the bin's size), without a float copy of the whole mask;
    the geometry is ITK's (that of a bin-shrunk image of the mask's grid)."""
    if all(f == 1 for f in factors):
        return mask
    size = mask.GetSize()
    if pixels is None or pixels.shape != tuple(size[::-1]) or \
            any(n < f for n, f in zip(size, factors, strict=True)):
        averaged = sitk.BinShrink(sitk.Cast(mask, sitk.sitkFloat32), list(factors))
        return sitk.Cast(averaged >= 0.5, sitk.sitkUInt8)
    count = pixels.view(np.uint8)
    dtype = np.uint8 if math.prod(factors) < 256 else np.uint32
    for axis, f in ((0, factors[2]), (1, factors[1]), (2, factors[0])):  # slices, rows, columns
        n = count.shape[axis] // f  # ITK leaves the voxels beyond the last whole bin out
        total = np.zeros(count.shape[:axis] + (n,) + count.shape[axis + 1:], dtype=dtype)
        for d in range(f):
            total += count[(slice(None),) * axis + (slice(d, n * f, f),)]
        count = total
    out = sitk.GetImageFromArray((2 * count.astype(np.uint32) >= math.prod(factors))
                                 .view(np.uint8))
    # the geometry ITK gives a bin-shrunk image of this grid (it does not depend on the size)
    probe = sitk.Image(list(factors), sitk.sitkUInt8)
    probe.SetOrigin(mask.GetOrigin())
    probe.SetSpacing(mask.GetSpacing())
    probe.SetDirection(mask.GetDirection())
    geometry_of = sitk.BinShrink(probe, list(factors))
    out.SetOrigin(geometry_of.GetOrigin())
    out.SetSpacing(geometry_of.GetSpacing())
    out.SetDirection(geometry_of.GetDirection())
    return out


def _fir_radius(image: sitk.Image, sigma_mm: float) -> npt.NDArray[np.int64] | None:
    """The sampled kernel's half-width per axis (voxels), or None when the recursive filter
    is used (a sigma of more than about a voxel and a half)."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    radius = np.ceil(FIR_SIGMAS * sigma_mm / spacing).astype(np.int64)
    return radius if sigma_mm > 0 and int(radius.max()) <= FIR_RADIUS else None


def _index_box(image: sitk.Image, around: tuple[FloatArray, FloatArray], *,
               pad: npt.ArrayLike = 0) -> tuple[list[int], list[int]]:
    """(first index, extent) of the voxels of ``image`` covering the LPS box ``around``,
    one voxel more for interpolation, ``pad`` more per axis, clipped to the image."""
    lo, hi = around
    origin = np.asarray(image.GetOrigin())
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                    for z in (lo[2], hi[2])])
    index = ((box - origin) @ direction) / spacing
    size = np.asarray(image.GetSize())
    extra = np.asarray(pad, dtype=np.int64)
    start = np.clip(np.floor(index.min(axis=0)).astype(int) - 1 - extra, 0, size)
    stop = np.clip(np.ceil(index.max(axis=0)).astype(int) + 2 + extra, 0, size)
    if np.any(stop - start < 2):
        raise NoOverlapError("the CBCT region maps outside the planning CT")
    return [int(v) for v in start], [int(v) for v in stop - start]


def cut(images: LevelImages, around: tuple[FloatArray, FloatArray]) -> LevelImages:
    """The level cut to the box ``around``: a copy of that region only, or of the whole level
    when the box covers it; never the kept images themselves, which runs on other threads may
    be reading (see :meth:`PlanningReference.level`)."""
    first, extent = _index_box(images.image, around)
    if all(f == 0 for f in first) and tuple(extent) == tuple(images.image.GetSize()):
        return LevelImages(images.factors, images.smoothing_mm, _own_copy(images.image),
                           _own_copy(images.mask) if images.mask is not None else None)
    return LevelImages(images.factors, images.smoothing_mm,
                       region_of_interest(images.image, extent, first),
                       region_of_interest(images.mask, extent, first)
                       if images.mask is not None else None)


#: ITK's region-of-interest filter sets its input's requested region: two runs on two threads
#: cutting one kept planning image take turns (a cut takes milliseconds)
_CUTTING = threading.Lock()


def region_of_interest(image: sitk.Image, extent: list[int], first: list[int]) -> sitk.Image:
    """``extent`` voxels of ``image`` from index ``first`` (a copy), one cut of a kept image
    at a time."""
    with _CUTTING:
        return sitk.RegionOfInterest(image, extent, first)


def _own_copy(image: sitk.Image) -> sitk.Image:
    """A copy of ``image`` with pixels (and ITK image) of its own: a run's filters set their
    input's requested region, which a SimpleITK copy sharing the ITK image would share."""
    with _CUTTING:
        copy = sitk.Image(image)
        copy.MakeUnique()
        return copy


def smooth(image: sitk.Image, sigma_mm: float, *,
           pixels: npt.NDArray[np.float32] | None = None) -> sitk.Image:
    """Gaussian smoothing. A sigma of a few voxels: ITK's recursive filter. Less than about a
    voxel and a half (the native level's light smoothing, against interpolation artefacts):
    the sampled Gaussian itself, a separable kernel of at most :data:`FIR_RADIUS` voxels each
    side, which is exact there (the recursive filter is not) and ten times faster. ``pixels``:
    the image's pixels (z, y, x) when the caller holds them, read instead of the image."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    radius = np.ceil(FIR_SIGMAS * sigma_mm / spacing).astype(int)
    if int(radius.max()) > FIR_RADIUS:
        if min(image.GetSize()) >= 4:  # the recursive filter needs four voxels along each axis
            return sitk.SmoothingRecursiveGaussian(image, sigma_mm)
        return sitk.DiscreteGaussian(image, [sigma_mm**2] * 3, 32, 0.01, True)
    array = sitk.GetArrayFromImage(image) if pixels is None else np.asarray(pixels,
                                                                            dtype=np.float32)
    for axis_ijk in range(3):  # numpy axis 2 - axis_ijk
        r = int(radius[axis_ijk])
        offsets = np.arange(-r, r + 1)
        weights = np.exp(-0.5 * (offsets * spacing[axis_ijk] / sigma_mm) ** 2)
        weights /= weights.sum()
        if r == 0 or weights[r] > 0.99:  # under 0.5 % to each neighbour: nothing to smooth
            continue
        array = _convolve(array, weights, axis=2 - axis_ijk)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


#: A level made in parts is smoothed this much beyond the part asked for, for the next run.
PART_SLACK_MM = 4.0
#: The sampled Gaussian is cut at this many sigmas ...
FIR_SIGMAS = 3.0
#: ... and used up to this many voxels each side.
FIR_RADIUS = 2


def _convolve(array: npt.NDArray[np.float32], weights: npt.NDArray[np.float64],
              axis: int) -> npt.NDArray[np.float32]:
    """Symmetric convolution along one axis, the edge voxel repeated beyond the border."""
    r = len(weights) // 2
    n = array.shape[axis]

    def part(sl: slice) -> tuple[slice, ...]:
        index = [slice(None)] * array.ndim
        index[axis] = sl
        return tuple(index)

    out = array * np.float32(weights[r])
    for d in range(1, min(r, n - 1) + 1):
        w = np.float32(weights[r + d])
        out[part(slice(d, n))] += w * array[part(slice(0, n - d))]
        out[part(slice(0, n - d))] += w * array[part(slice(d, n))]
        out[part(slice(0, d))] += w * array[part(slice(0, 1))]  # beyond the border: the edge
        out[part(slice(n - d, n))] += w * array[part(slice(n - 1, n))]
    return out


def fixed_factors(spacing_mm: tuple[float, float, float], level: Level) -> Factors:
    """Bin factors that bring a CBCT toward the level's voxel size (1 = native)."""
    if level.voxel_mm <= 0:
        return (1, 1, 1)
    f = [max(1, int(round(level.voxel_mm / s))) for s in spacing_mm]
    return (f[0], f[1], f[2])


def planning_factors(fixed_spacing_mm: npt.ArrayLike, fixed_direction: FloatArray,
                     ct_spacing_mm: tuple[float, float, float],
                     ct_direction: FloatArray) -> Factors:
    """Bin factors for the planning CT at one level: as coarse as possible, never coarser than
    the CBCT level it is compared with (measured along each CT axis), so the planning image
    never carries more resolution than the CBCT level can use."""
    extent = np.abs(np.asarray(ct_direction).T @ np.asarray(fixed_direction)) @ np.asarray(
        fixed_spacing_mm, dtype=np.float64)
    f = [max(1, int(math.floor(e / s * (1.0 + COARSER_TOLERANCE))))
         for e, s in zip(extent, ct_spacing_mm, strict=True)]
    return (f[0], f[1], f[2])


class PlanningReference:
    """A planning CT prepared for registration around one isocentre (see the module docstring).

    ``volume`` and ``mask`` are the crop and its region mask (numpy views of the native images,
    so they are held once). Thread-safe: each level is made once, by the first thread to ask.
    """

    def __init__(self, *, ct: SeriesInfo, volume: Volume, mask: BoolArray,
                 isocenter_mm: FloatArray, position: PatientPosition,
                 keep_levels: bool = True) -> None:
        self.ct = ct
        #: levels are kept once made (a cached reference); False for a single registration
        #: (``igrt register``), where an unshrunk, lightly smoothed level is made only where a
        #: run samples it (the same voxels: the kernel is short and the margin covers it)
        self.keep_levels = keep_levels
        self.isocenter_mm = np.asarray(isocenter_mm, dtype=np.float64)
        self.position = position
        self._image = sitk.GetImageFromArray(np.ascontiguousarray(volume.voxels,
                                                                  dtype=np.float32))
        set_geometry(self._image, volume)
        self._mask_image = sitk.GetImageFromArray(
            np.ascontiguousarray(mask, dtype=np.bool_).view(np.uint8))
        set_geometry(self._mask_image, volume)
        self.volume = Volume(voxels=array_view(self._image),
                             origin_mm=volume.origin_mm, spacing_mm=volume.spacing_mm,
                             direction=np.asarray(volume.direction, dtype=np.float64))
        self.mask: BoolArray = array_view(self._mask_image).view(np.bool_)
        s = cupping.STRIDE
        #: the share of the region within ``cupping.UNIFORM_WINDOW_HU`` of its mode (a QA
        #: phantom's is near 1), found once here rather than for every CBCT
        self.uniform_share = cupping.uniform_share(
            self.volume.voxels[::s, ::s, ::s][self.mask[::s, ::s, ::s]].astype(np.float64))
        #: the levels made, by (factors, smoothing): each made once, by the first to ask
        self._levels = Once(keep_errors=False)
        #: the last part of a level made in parts: (smoothing, first index i, j, k, voxels)
        self._part: tuple[float, npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None
        self._part_lock = threading.Lock()

    def level(self, factors: Factors, smoothing_mm: float) -> LevelImages:
        """The crop and its mask at one pyramid level, made once (a run asking for a level
        already made never waits for another being made, e.g. by :meth:`warm`)."""
        key = (factors, float(smoothing_mm))
        return cast(LevelImages, self._levels.get(key, lambda: self._make_level(*key)))

    def _make_level(self, factors: Factors, smoothing_mm: float) -> LevelImages:
        # made from copies (sharing the pixels until written): a level left unshrunk and
        # unsmoothed is handed out as such a copy, never as the reference's own image, whose
        # buffer ``volume`` and ``mask`` view. SimpleITK gives an image whose buffer is shared
        # a buffer of its own when its pixels are read through NumPy
        # (``GetArrayViewFromImage``); done to the reference's own image while a run held a
        # copy of it (elastix's input beside a SimpleITK run), the views read the old buffer
        # once that copy was let go: freed memory.
        if factors == (1, 1, 1) and _fir_radius(self._image, smoothing_mm) is not None:
            # the sampled Gaussian reads the pixels: from the crop's own view (reading them
            # from a shared copy would copy the crop first)
            return LevelImages(factors, smoothing_mm,
                               smooth(self._image, smoothing_mm, pixels=self.volume.voxels),
                               sitk.Image(self._mask_image))
        if factors == (1, 1, 1):
            with _CUTTING:  # ITK's filters read the crop as a cut does
                return level_images(sitk.Image(self._image), sitk.Image(self._mask_image),
                                    factors, smoothing_mm, mask_pixels=self.mask)
        with _CUTTING:  # the bin-shrink reads the crop; the smoothing reads the shrunk copy
            binned = level_images(sitk.Image(self._image), sitk.Image(self._mask_image),
                                  factors, 0.0, mask_pixels=self.mask)
        if smoothing_mm <= 0:
            return binned
        return LevelImages(factors, smoothing_mm, smooth(binned.image, smoothing_mm),
                           binned.mask)

    def for_level(self, level: Level, fixed_spacing_mm: npt.ArrayLike,
                  fixed_direction: FloatArray, *,
                  around: tuple[FloatArray, FloatArray] | None = None) -> LevelImages:
        """The planning side of one level for a CBCT of this (native) voxel grid: a smoothed
        level at its nominal voxel size (the smoothing, not the CBCT, sets its resolution), the
        native level no finer than the CBCT's own voxels. ``around`` (low, high LPS corners):
        only that box of it (a copy), which is what ITK's metric then scans."""
        factors = self._factors(level, fixed_spacing_mm, fixed_direction)
        smoothing_mm = level.planning_smoothing_mm
        if around is None:
            return self.level(factors, smoothing_mm)
        if self._in_parts(factors, smoothing_mm):
            return self._native_part(smoothing_mm, around)
        return cut(self.level(factors, smoothing_mm), around)

    def smooth_ahead(self, level: Level, fixed_spacing_mm: npt.ArrayLike,
                     fixed_direction: FloatArray, around: tuple[FloatArray, FloatArray]) -> None:
        """Smooth now the part of a level made in parts (see :meth:`_native_part`) that
        :meth:`for_level` will be asked for ``around`` or within: a guess made on an idle
        core. A later request that it does not hold smooths its own part, as without it; the
        voxels handed out are the same either way. Nothing for a level made whole."""
        factors = self._factors(level, fixed_spacing_mm, fixed_direction)
        smoothing_mm = level.planning_smoothing_mm
        if self._in_parts(factors, smoothing_mm):
            self._smoothed_part(smoothing_mm, *self._part_box(smoothing_mm, around))

    def _factors(self, level: Level, fixed_spacing_mm: npt.ArrayLike,
                 fixed_direction: FloatArray) -> Factors:
        if level.voxel_mm > 0:
            spacing: npt.ArrayLike = np.full(3, level.voxel_mm)
            direction = self.volume.direction
        else:
            spacing, direction = fixed_spacing_mm, fixed_direction
        return planning_factors(spacing, direction, self.volume.spacing_mm,
                                self.volume.direction)

    def _in_parts(self, factors: Factors, smoothing_mm: float) -> bool:
        """Whether this level is made only where a run samples it (``keep_levels`` False, the
        unshrunk level lightly smoothed, not made whole before)."""
        if self.keep_levels or factors != (1, 1, 1) or \
                _fir_radius(self._image, smoothing_mm) is None:
            return False
        return (factors, float(smoothing_mm)) not in self._levels

    def _native_part(self, smoothing_mm: float,
                     around: tuple[FloatArray, FloatArray]) -> LevelImages:
        """The unshrunk level made only in ``around`` (plus the smoothing kernel's reach).

        The smoothed part is kept, :data:`PART_SLACK_MM` larger each side, and the next run's
        part cut from it when it lies inside (the native level's second phase starts within a
        fraction of a millimetre of the first). The voxels handed out are the same either way:
        each is at least the kernel's reach inside the part it was smoothed in, or on the CT's
        own edge, where both repeat the edge voxel."""
        first, extent = self._part_box(smoothing_mm, around)
        image = self._smoothed_part(smoothing_mm, first, extent)
        mask = region_of_interest(self._mask_image, extent, first)
        return cut(LevelImages((1, 1, 1), smoothing_mm, image, mask), around)

    def _part_box(self, smoothing_mm: float,
                  around: tuple[FloatArray, FloatArray]) -> tuple[list[int], list[int]]:
        """(first index, extent) of the native voxels a part for ``around`` is smoothed from:
        the box plus the smoothing kernel's reach."""
        radius = _fir_radius(self._image, smoothing_mm)
        assert radius is not None
        return _index_box(self._image, around, pad=radius)

    def _smoothed_part(self, smoothing_mm: float, first: list[int],
                       extent: list[int]) -> sitk.Image:
        """The image of ``extent`` voxels from index ``first``, smoothed (from the kept part
        when it holds that box)."""
        lo, hi = np.asarray(first), np.asarray(first) + np.asarray(extent)
        with self._part_lock:  # one part smoothed at a time: a restart reuses the run's
            held = self._part
            if held is None or held[0] != smoothing_mm or np.any(lo < held[1]) or \
                    np.any(hi > held[1] + np.asarray(held[2].shape[::-1])):
                slack = np.ceil(PART_SLACK_MM / np.asarray(self._image.GetSpacing())).astype(int)
                size = np.asarray(self._image.GetSize())
                start = np.maximum(lo - slack, 0)
                stop = np.minimum(hi + slack, size)
                smoothed = smooth(region_of_interest(self._image,
                                                     [int(v) for v in stop - start],
                                                     [int(v) for v in start]), smoothing_mm)
                held = (smoothing_mm, start, sitk.GetArrayFromImage(smoothed))
                self._part = held
        (i0, j0, k0), (i1, j1, k1) = lo - held[1], hi - held[1]
        image = sitk.GetImageFromArray(np.ascontiguousarray(held[2][k0:k1, j0:j1, i0:i1]))
        image.SetOrigin(self._image.TransformIndexToPhysicalPoint([int(v) for v in first]))
        image.SetSpacing(self._image.GetSpacing())
        image.SetDirection(self._image.GetDirection())
        return image

    def warm(self, fixed_spacing_mm: npt.ArrayLike | None = None,
             fixed_direction: FloatArray | None = None,
             levels: tuple[Level, ...] = DEFAULT_LEVELS) -> None:
        """Make, before any CBCT arrives, the levels a registration will ask for: the smoothed
        ones, and the native one too when the CBCT voxel grid is known (the room's last CBCT),
        unless it is made only where a run samples it (``keep_levels`` False)."""
        for level in levels:
            if level.voxel_mm > 0 or fixed_spacing_mm is not None:
                spacing = self.volume.spacing_mm if fixed_spacing_mm is None else fixed_spacing_mm
                direction = self.volume.direction if fixed_direction is None else fixed_direction
                if level.voxel_mm <= 0 and self._in_parts(
                        planning_factors(spacing, direction, self.volume.spacing_mm,
                                         self.volume.direction), level.planning_smoothing_mm):
                    continue
                self.for_level(level, spacing, direction)

    @property
    def nbytes(self) -> int:
        """Memory held: the crop, its mask and every level made so far."""
        extra = sum(cast(LevelImages, v).nbytes for k, v in self._levels.made()
                    if k != ((1, 1, 1), 0.0))
        return int(self.volume.voxels.nbytes + self.mask.nbytes + extra)

    @property
    def native(self) -> LevelImages:
        return self.level((1, 1, 1), 0.0)


def build_reference(ct: Volume, info: SeriesInfo, *, isocenter_mm: npt.ArrayLike,
                    position: PatientPosition, box_size_mm: npt.ArrayLike,
                    region_mask: BoolArray | None = None, keep_levels: bool = True,
                    cbct_grid: Grid | None = None) -> PlanningReference:
    """Crop the planning CT around the isocentre and find the region the metric may use there:
    ``region_mask`` (a structure on the full CT grid) if given, else the patient's body.

    ``cbct_grid`` (spacing, direction of the CBCTs it will be registered with): a planning CT
    finer than those CBCTs is kept binned to them straight away (the finest level never needs
    more), which is less memory and less work for everything made from it."""
    t0 = time.perf_counter()
    iso = np.asarray(isocenter_mm, dtype=np.float64)
    size = np.asarray(box_size_mm, dtype=np.float64) + 2 * MOVING_MARGIN_MM
    box = region.index_box(ct, iso, size)
    if any(s.stop - s.start < 2 for s in box):
        raise NoOverlapError("the planning CT does not cover the region around the isocentre")
    volume = region.crop(ct, box)
    mask = np.ascontiguousarray(region_mask[box]) if region_mask is not None else None
    factors = native_factors(volume, cbct_grid)
    if factors != (1, 1, 1):
        volume, mask = _binned(volume, mask, factors)
    if mask is None:
        down = geometry.LPS_TO_IEC[position].T @ np.array([0.0, 0.0, -1.0])
        mask = region.coarse_body_mask(volume, down_lps=down)
    if not mask.any():
        raise NoOverlapError("the registration region holds no voxel of the planning CT")
    reference = PlanningReference(ct=info, volume=volume, mask=mask, isocenter_mm=iso,
                                  position=position, keep_levels=keep_levels)
    log.info("planning CT %s prepared around (%.1f, %.1f, %.1f) mm: %d x %d x %d voxels%s in "
             "%.2f s", info.series_uid, *iso, *volume.shape_ijk,
             "" if factors == (1, 1, 1) else f" (binned {factors})", time.perf_counter() - t0)
    return reference



def native_factors(ct: Volume, cbct_grid: Grid | None) -> Factors:
    """How much a planning CT can be binned for CBCTs of this grid (1 = not at all)."""
    if cbct_grid is None:
        return (1, 1, 1)
    return planning_factors(cbct_grid[0], cbct_grid[1], ct.spacing_mm, ct.direction)


def grid_key(grid: Grid | None) -> tuple[float, ...] | None:
    """What of a CBCT grid the binning depends on, as a key: the voxel's extent along the LPS
    axes (to 1 µm), the same for a head-first and a feet-first CBCT of one protocol."""
    if grid is None:
        return None
    extent = np.abs(np.asarray(grid[1], dtype=np.float64)) @ np.asarray(grid[0], dtype=float)
    return tuple(round(float(v), 3) for v in extent)


def _binned(volume: Volume, mask: BoolArray | None,
            factors: Factors) -> tuple[Volume, BoolArray | None]:
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.voxels, dtype=np.float32))
    set_geometry(image, volume)
    mask_image = None
    if mask is not None:
        mask_image = sitk.GetImageFromArray(mask.astype(np.uint8))
        set_geometry(mask_image, volume)
    made = level_images(image, mask_image, factors, 0.0, mask_pixels=mask)
    ox, oy, oz = made.image.GetOrigin()
    sx, sy, sz = made.image.GetSpacing()
    binned = Volume(voxels=sitk.GetArrayFromImage(made.image),
                    origin_mm=(float(ox), float(oy), float(oz)),
                    spacing_mm=(float(sx), float(sy), float(sz)),
                    direction=np.asarray(volume.direction, dtype=np.float64))
    coarse = (sitk.GetArrayFromImage(made.mask).astype(bool) if made.mask is not None
              else None)
    return binned, coarse
