"""The default engine: SimpleITK's ImageRegistrationMethod, Mattes mutual information,
regular-step gradient descent on a Euler transform about the isocentre, one call per pyramid
level so that smoothing, sample count and step sizes are ours to set per level."""

from __future__ import annotations

import logging
import time

import numpy as np
import SimpleITK as sitk

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
from igrt.volume import FloatArray

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 48
#: Stop conditions of RegularStepGradientDescent that mean "converged".
_CONVERGED_WORDS = ("minimum step", "step too small", "gradient magnitude tolerance")


class SimpleItkEngine:
    name = "simpleitk"

    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads

    def register(
        self,
        problem: RegistrationProblem,
        *,
        start: FloatArray | None = None,
        levels: tuple[Level, ...] = DEFAULT_LEVELS,
    ) -> RegistrationResult:
        t0 = time.perf_counter()
        fixed = to_sitk(problem.fixed)
        moving = to_sitk(problem.moving)
        fixed_mask = (mask_to_sitk(problem.fixed_mask, problem.fixed)
                      if problem.fixed_mask is not None else None)
        moving_mask = (mask_to_sitk(problem.moving_mask, problem.moving)
                       if problem.moving_mask is not None else None)
        matrix = problem.initial if start is None else start
        iterations = 0
        stop = ""
        metric = float("nan")
        for number, level in enumerate(levels):
            f = _smooth(fixed, level.smoothing_mm)
            m = _smooth(moving, level.smoothing_mm)
            transform = euler_from_matrix(matrix, problem.center_mm)
            fraction = sampling_fraction(level.samples, problem.fixed_mask,
                                         problem.fixed.voxels.size)
            method = self._method(level, fraction, problem.seed + number, fixed_mask,
                                  moving_mask)
            method.SetInitialTransform(transform, inPlace=True)
            method.Execute(f, m)
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

    def _method(self, level: Level, fraction: float, seed: int, fixed_mask: sitk.Image | None,
                moving_mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
        method = sitk.ImageRegistrationMethod()
        if self._threads:
            method.SetNumberOfThreads(self._threads)
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(fraction, seed)
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


def _smooth(image: sitk.Image, sigma_mm: float) -> sitk.Image:
    if sigma_mm <= 0:
        return image
    return sitk.SmoothingRecursiveGaussian(image, sigma_mm)


def sampling_fraction(samples: int, mask: np.ndarray | None, n_voxels: int) -> float:
    """Fraction of the fixed grid to draw so that about ``samples`` land in the mask (ITK
    draws over the whole grid and drops the points outside the fixed mask)."""
    usable = int(mask.sum()) if mask is not None else n_voxels
    return float(min(1.0, samples / max(usable, 1)))
