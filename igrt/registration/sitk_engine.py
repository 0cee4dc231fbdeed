"""The default engine: SimpleITK's ImageRegistrationMethod, Mattes mutual information,
regular-step gradient descent on a Euler transform about the isocentre, one call per pyramid
level so that smoothing, sample count and step sizes are ours to set per level."""

from __future__ import annotations

import logging
import time

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.errors import NoOverlapError
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration import region
from igrt.registration.problem import (
    DEFAULT_LEVELS,
    Level,
    RegistrationProblem,
    RegistrationResult,
)
from igrt.registration.sitk_images import (
    euler_from_matrix,
    mask_to_sitk,
    matrix_from_transform,
    to_sitk,
)

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 48
#: Stop conditions of RegularStepGradientDescent that mean "converged".
_CONVERGED_WORDS = ("minimum step", "step too small", "gradient magnitude tolerance")


class SimpleItkEngine:
    name = "simpleitk"

    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads

    def register(self, problem: RegistrationProblem, *, start: FloatArray | None = None,
                 levels: tuple[Level, ...] = DEFAULT_LEVELS) -> RegistrationResult:
        t0 = time.perf_counter()
        matrix = problem.initial if start is None else start
        iterations = 0
        stop = ""
        metric = float("nan")
        fixed_full = to_sitk(problem.fixed)
        fixed_mask_full = (mask_to_sitk(problem.fixed_mask, problem.fixed)
                           if problem.fixed_mask is not None else None)
        for number, level in enumerate(levels):
            fixed, fixed_mask = _level_images(fixed_full, fixed_mask_full, level)
            fixed, fixed_mask = _sample_grid(fixed, fixed_mask, level.samples)
            moving_volume, moving_mask_array = _moving_region(problem, matrix, level.margin_mm)
            moving_full = to_sitk(moving_volume)
            moving_mask_full = (mask_to_sitk(moving_mask_array, moving_volume)
                                if moving_mask_array is not None else None)
            moving, moving_mask = _level_images(moving_full, moving_mask_full, level)
            transform = euler_from_matrix(matrix, problem.center_mm)
            method = self._method(level, fixed_mask, moving_mask)
            method.SetInitialTransform(transform, inPlace=True)
            method.Execute(fixed, moving)
            matrix = matrix_from_transform(transform)
            iterations += method.GetOptimizerIteration()
            stop = method.GetOptimizerStopConditionDescription()
            metric = method.GetMetricValue()
            log.debug("level %d: metric %.5f after %d iterations (%s)", number, metric,
                      method.GetOptimizerIteration(), stop)
        low = stop.lower()
        converged = any(word in low for word in _CONVERGED_WORDS)
        return RegistrationResult(
            engine=self.name,
            transform=matrix,
            metric=float(metric),
            iterations=iterations,
            stop_condition=stop,
            converged=converged,
            elapsed_s=time.perf_counter() - t0,
        )

    def _method(self, level: Level, fixed_mask: sitk.Image | None,
                moving_mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
        method = sitk.ImageRegistrationMethod()
        if self._threads:
            method.SetNumberOfThreads(self._threads)
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
        # Every voxel of the (decimated) fixed grid: samples sit exactly on fixed voxels.
        # ITK's RANDOM and REGULAR strategies jitter points off the grid, so the fixed image is
        # interpolated as well, which biased results by ~0.1 mm along the slice axis.
        method.SetMetricSamplingStrategy(method.NONE)
        if fixed_mask is not None:
            method.SetMetricFixedMask(fixed_mask)
        if moving_mask is not None:
            method.SetMetricMovingMask(moving_mask)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=level.step_mm,
            minStep=level.min_step_mm,
            numberOfIterations=level.iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
            estimateLearningRate=method.Never,
        )
        method.SetOptimizerScalesFromPhysicalShift()
        return method


def _level_images(image: sitk.Image, mask: sitk.Image | None,
                  level: Level) -> tuple[sitk.Image, sitk.Image | None]:
    """Bin-shrink toward the level's voxel size (an average: cheap anti-aliasing), then smooth."""
    if level.voxel_mm > 0:
        factors = [max(1, int(round(level.voxel_mm / s))) for s in image.GetSpacing()]
        if any(f > 1 for f in factors):
            image = sitk.BinShrink(image, factors)
            if mask is not None:
                shrunk = sitk.BinShrink(sitk.Cast(mask, sitk.sitkFloat32), factors)
                mask = sitk.Cast(shrunk >= 0.5, sitk.sitkUInt8)
    if level.smoothing_mm > 0:
        image = sitk.SmoothingRecursiveGaussian(image, level.smoothing_mm)
    return image, mask


def _sample_grid(image: sitk.Image, mask: sitk.Image | None,
                 samples: int) -> tuple[sitk.Image, sitk.Image | None]:
    """Decimate the fixed image in-plane (keep every n-th voxel, no averaging) so that about
    ``samples`` voxels remain in the mask. Deterministic: no seed needed."""
    usable = (int(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) if mask is not None
              else image.GetNumberOfPixels())
    stride = int(np.floor(np.sqrt(max(usable, 1) / max(samples, 1))))
    if stride <= 1:
        return image, mask
    # Not sitk.Shrink: it moves the origin to the centre of each bin while keeping one of the
    # bin's voxels, a half-bin shift. Plain slicing keeps voxel (0, 0, 0) and its position.
    return (_decimate(image, stride), _decimate(mask, stride) if mask is not None else None)


def _decimate(image: sitk.Image, stride: int) -> sitk.Image:
    array = sitk.GetArrayViewFromImage(image)[:, ::stride, ::stride]
    out = sitk.GetImageFromArray(np.ascontiguousarray(array))
    out.SetOrigin(image.GetOrigin())
    sx, sy, sz = image.GetSpacing()
    out.SetSpacing((sx * stride, sy * stride, sz))
    out.SetDirection(image.GetDirection())
    return out


def _moving_region(problem: RegistrationProblem, matrix: FloatArray,
                   margin_mm: float) -> tuple[Volume, BoolArray | None]:
    """The planning CT around where the CBCT region currently maps, plus ``margin_mm``."""
    fixed = problem.fixed
    ni, nj, nk = fixed.shape_ijk
    corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)],
                       dtype=np.float64)
    mapped = geometry.apply(matrix, fixed.index_to_point_mm(corners))
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    box = region.index_box(problem.moving, (lo + hi) / 2.0, hi - lo + 2.0 * margin_mm)
    if any(s.stop - s.start < 2 for s in box):
        raise NoOverlapError("the CBCT region maps outside the planning CT")
    volume = region.crop(problem.moving, box)
    mask = problem.moving_mask
    return volume, (np.ascontiguousarray(mask[box]) if mask is not None else None)
