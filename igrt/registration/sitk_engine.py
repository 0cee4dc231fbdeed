"""The default engine: SimpleITK's ImageRegistrationMethod, Mattes mutual information,
regular-step gradient descent on a Euler transform about the isocentre, one call per pyramid
level so that smoothing, sample count and step sizes are ours to set per level.

The planning side of every level is prepared once per planning CT
(:meth:`igrt.registration.reference.PlanningReference.for_level`); the CBCT side once per
problem (kept in ``problem.memo``: a level's shrunk, smoothed CBCT image once for all its
masks). The metric
never filters the CBCT's gradient (Mattes MI with the transform on the planning side does not
use it). The planning image's gradient is ITK's gradient image, filtered at every start, on the
first level (``Level.moving_gradient_filter``: its capture range depends on it), and central
differences of the interpolated image elsewhere: the middle level's planning image is smoothed
for them once, with the level (``Level.gradient_smoothing_mm``; the first level's too).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.errors import NoOverlapError
from igrt.core.types import FloatArray
from igrt.registration import cbct_levels
from igrt.registration.problem import (
    DEFAULT_LEVELS,
    Level,
    RegistrationProblem,
    RegistrationResult,
)
from igrt.registration.reference import LevelImages, fixed_factors
from igrt.registration.sitk_images import euler_from_matrix, matrix_from_transform
from igrt.registration.threads import run_threads

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 48
#: A level's sample grid keeps at most this many times its ``samples``.
SAMPLES_OVER = 1.5
#: The mask of a level's phases, by ``Level.near_edges`` (``"refine"`` runs the whole box first).
_PHASE_MASK = {"only": "only", "inset": "refine"}
#: Stop conditions of RegularStepGradientDescent that mean "converged".
_CONVERGED_WORDS = ("minimum step", "step too small", "gradient magnitude tolerance")


@dataclass(frozen=True)
class _Run:
    matrix: FloatArray
    iterations: int
    stop: str
    metric: float


class SimpleItkEngine:
    name = "simpleitk"
    #: each run makes its own ITK objects and a run on another thread its own CBCT levels (a
    #: problem with its own memo); what runs share, the planning reference's levels, are made
    #: under its lock and handed out as copies, cut one at a time
    concurrent_runs = True

    def __init__(self, *, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._threads = threads if threads is not None else run_threads()

    def register(self, problem: RegistrationProblem, *, start: FloatArray | None = None,
                 levels: tuple[Level, ...] = DEFAULT_LEVELS) -> RegistrationResult:
        t0 = time.perf_counter()
        matrix = problem.initial if start is None else start
        iterations = 0
        stops: list[str] = []
        metric = float("nan")
        after: list[FloatArray] = []
        for number, level in enumerate(levels):
            found: list[FloatArray] = []
            stops = []
            for phase in range(level.phases):
                # each phase starts where the previous one ended: close, so it is quick
                run = self._run(problem, level, phase, found[-1] if found else matrix,
                                near=_PHASE_MASK.get(level.near_edges, ""))
                found.append(run.matrix)
                iterations += run.iterations
                stops.append(run.stop)
                metric = run.metric
                log.debug("level %d phase %d: metric %.5f after %d iterations (%s)", number,
                          phase, run.metric, run.iterations, run.stop)
            matrix = found[0] if len(found) == 1 else geometry.mean_rigid(found)
            if level.near_edges == "refine" and problem.refine_mask is not None:
                # from the whole box's answer, on the samples near edges
                run = self._run(problem, level, 0, matrix, near="refine")
                matrix = run.matrix
                iterations += run.iterations
                stops = [run.stop]
                metric = run.metric
            after.append(matrix)
        converged = bool(stops) and all(
            any(word in stop.lower() for word in _CONVERGED_WORDS) for stop in stops)
        return RegistrationResult(
            engine=self.name,
            transform=matrix,
            metric=float(metric),
            iterations=iterations,
            stop_condition="; ".join(dict.fromkeys(stops)),
            converged=converged,
            elapsed_s=time.perf_counter() - t0,
            level_transforms=tuple(after),
        )

    def _run(self, problem: RegistrationProblem, level: Level, phase: int,
             matrix: FloatArray, *, near: str = "") -> _Run:
        """One optimisation of one level from ``matrix``, on the sample grid of ``phase``
        (``near``: of that mask of samples near the CBCT's edges, see ``Level.near_edges``)."""
        fixed = _fixed_level(problem, level, phase, near=near)
        moving = problem.reference.for_level(level, problem.fixed.spacing_mm,
                                             problem.fixed.direction,
                                             around=cbct_levels.mapped_box(problem, matrix,
                                                                             level.margin_mm))
        if level.region_at_start:
            fixed = _with_region(fixed, problem, matrix)
            moving = LevelImages(moving.factors, moving.smoothing_mm, moving.image, None)
        transform = euler_from_matrix(matrix, problem.center_mm)
        # a later phase starts where the previous ended: a tenth of the level's step suffices
        step_mm = level.step_mm if phase == 0 else max(level.min_step_mm * 10, level.step_mm / 10)
        method = self._method(level, fixed, moving, step_mm)
        method.SetInitialTransform(transform, inPlace=True)
        try:
            method.Execute(fixed.image, moving.image)
        except RuntimeError as exc:
            if "outside" in str(exc).lower() or "samples" in str(exc).lower():
                raise NoOverlapError(
                    "the CBCT region maps outside the planning CT's registration region "
                    f"({str(exc).strip().splitlines()[-1][:200]})") from exc
            raise
        return _Run(matrix_from_transform(transform), method.GetOptimizerIteration(),
                    method.GetOptimizerStopConditionDescription(), method.GetMetricValue())

    def _method(self, level: Level, fixed: LevelImages, moving: LevelImages,
                step_mm: float) -> sitk.ImageRegistrationMethod:
        method = sitk.ImageRegistrationMethod()
        if self._threads is not None:
            method.SetNumberOfThreads(self._threads)
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
        # Every voxel of the (decimated) fixed grid: samples sit exactly on fixed voxels.
        # ITK's RANDOM and REGULAR strategies jitter points off the grid, so the fixed image is
        # interpolated as well, which biased results by ~0.1 mm along the slice axis.
        method.SetMetricSamplingStrategy(method.NONE)
        method.MetricUseFixedImageGradientFilterOff()
        if level.moving_gradient_filter:
            method.MetricUseMovingImageGradientFilterOn()
        else:
            method.MetricUseMovingImageGradientFilterOff()
        if fixed.mask is not None:
            method.SetMetricFixedMask(fixed.mask)
        if moving.mask is not None:
            method.SetMetricMovingMask(moving.mask)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=step_mm,
            minStep=level.min_step_mm,
            numberOfIterations=level.iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
            estimateLearningRate=method.Never,
        )
        method.SetOptimizerScalesFromPhysicalShift()
        return method


def warm_up() -> None:
    """Run a tiny registration so the first real one pays no one-time start-up costs."""
    rng = np.random.default_rng(0)
    array = rng.normal(size=(12, 24, 24)).astype(np.float32)
    image = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(array), 2.0)
    for gradient_filter in (True, False):  # both ways the levels take the moving gradient
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
        method.SetMetricSamplingStrategy(method.NONE)
        method.MetricUseFixedImageGradientFilterOff()
        if gradient_filter:
            method.MetricUseMovingImageGradientFilterOn()
        else:
            method.MetricUseMovingImageGradientFilterOff()
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=0.1,
                                                        numberOfIterations=5)
        method.SetInitialTransform(sitk.Euler3DTransform(), inPlace=True)
        method.Execute(image, image)


def _with_region(fixed: LevelImages, problem: RegistrationProblem,
                 matrix: FloatArray) -> LevelImages:
    """The CBCT samples whose point maps, under ``matrix``, into the planning region (nearest
    planning voxel of the reference's native mask)."""
    assert fixed.mask is not None
    keep = sitk.GetArrayFromImage(fixed.mask).astype(bool)
    k, j, i = np.nonzero(keep)
    image = fixed.image
    origin = np.asarray(image.GetOrigin())
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    points = origin + (np.column_stack([i, j, k]) * spacing) @ direction.T
    reference = problem.reference.volume
    index = np.rint(reference.point_to_index(geometry.apply(matrix, points))).astype(np.int64)
    shape = np.asarray(reference.shape_ijk)
    inside = np.all((index >= 0) & (index < shape), axis=1)
    region = np.zeros(len(index), dtype=bool)
    ii, jj, kk = index[inside].T
    region[inside] = problem.reference.mask[kk, jj, ii]
    keep[k, j, i] = region
    if not keep.any():
        raise NoOverlapError("no CBCT sample maps into the planning CT's registration region")
    mask = sitk.GetImageFromArray(keep.astype(np.uint8))
    mask.CopyInformation(fixed.mask)
    return LevelImages(fixed.factors, fixed.smoothing_mm, fixed.image, mask)


def _fixed_level(problem: RegistrationProblem, level: Level, phase: int = 0, *,
                 near: str = "") -> LevelImages:
    """The CBCT side of one level, made once per problem: bin-shrunk toward the level's voxel
    size, smoothed, then decimated to about ``level.samples`` voxels in the mask (the sample
    grid of ``phase``: phases interleave, half a stride apart along each axis). ``near``
    (``"only"``, ``"refine"``): the mask is that one of the problem's masks near the CBCT's
    edges (when it has one), so all the samples are there."""
    near = cbct_levels.mask_name(problem, near)
    key = ("simpleitk-fixed", level, phase, near)
    found = problem.memo.get(key)
    if isinstance(found, LevelImages):
        return found
    factors = fixed_factors(problem.fixed.spacing_mm, level)
    image = cbct_levels.image(problem, factors, level.smoothing_mm)
    shrunk_mask = cbct_levels.mask(problem, factors, near=near)
    made = _sample_grid(LevelImages(factors, level.smoothing_mm, image, shrunk_mask),
                        level.samples, phase)
    problem.memo[key] = made
    return made


def _sample_grid(images: LevelImages, samples: int, phase: int = 0) -> LevelImages:
    """Decimate the fixed image (keep every n-th voxel along each axis, no averaging) so that
    about ``samples`` voxels remain in the mask, spread evenly: the strides make the sample
    spacing about equal along the three axes. Phase 1 is the grid shifted by half a stride
    along each axis (phase 0 keeps voxel (0, 0, 0)). Deterministic: no seed needed."""
    mask = images.mask
    usable = (int(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) if mask is not None
              else images.image.GetNumberOfPixels())
    spacing = np.asarray(images.image.GetSpacing(), dtype=np.float64)
    if usable <= samples:
        return images
    distance = (usable * float(np.prod(spacing)) / max(samples, 1)) ** (1.0 / 3.0)
    grid = [max(1, int(round(distance / s))) for s in spacing]
    # rounding can leave far more than asked (a mask near edges of 2-3x ``samples`` kept whole,
    # at 2-3x the cost): widen the finest stride until at most SAMPLES_OVER x remain
    while usable / float(np.prod(grid)) > SAMPLES_OVER * samples:
        axis = int(np.argmin(np.asarray(grid) * spacing))
        grid[axis] += 1
    strides = tuple(grid)
    if all(s == 1 for s in strides):
        return images
    offsets = tuple((s // 2) * (phase % 2) for s in strides)
    # Not sitk.Shrink: it moves the origin to the centre of each bin while keeping one of the
    # bin's voxels, a half-bin shift. Plain slicing keeps each kept voxel at its position.
    return LevelImages(images.factors, images.smoothing_mm,
                       _decimate(images.image, strides, offsets),
                       _decimate(mask, strides, offsets) if mask is not None else None)


def _decimate(image: sitk.Image, strides: tuple[int, ...],
              offsets: tuple[int, ...] = (0, 0, 0)) -> sitk.Image:
    si, sj, sk = strides
    oi, oj, ok = offsets
    array = sitk.GetArrayViewFromImage(image)[ok::sk, oj::sj, oi::si]
    out = sitk.GetImageFromArray(np.ascontiguousarray(array))
    out.SetOrigin(image.TransformIndexToPhysicalPoint((oi, oj, ok)))
    out.SetSpacing(tuple(float(s) * n for s, n in zip(image.GetSpacing(), strides, strict=True)))
    out.SetDirection(image.GetDirection())
    return out
