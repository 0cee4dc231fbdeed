"""The second engine: itk-elastix (elastix as a library), Mattes mutual information with the
adaptive stochastic gradient descent optimiser on an Euler transform about the isocentre.

One elastix registration per level. The smoothed levels run on the level images both engines
share (:mod:`igrt.registration.cbct_levels`, :meth:`PlanningReference.for_level`: bin-shrunk
toward the level's voxel size and smoothed), which elastix's pyramid only copies (its smoothing
pyramids of the whole images at every level were a quarter of its time, about 1 s at full
size). The native level, whose answer is the engine's, runs on the images as they are (the
planning crop cut to where the CBCT region maps) and elastix's own pyramid smooths them, so a
cross-check's answer shares none of the primary's level-making code, apart from the binning at
intake of a planning CT finer than the CBCT (``build_reference`` with the CBCT's grid). What
also stays elastix's own: the optimiser and its step-size estimation, its random sampling (new
samples at every iteration) and its metric.

ITK's threader is set to Pool before ``itk`` is imported: itk-elastix in Python is many times
slower than the elastix CLI otherwise. ``itk`` is imported lazily (it is slow to load and only
needed when this engine is configured).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from igrt.registration.reference import Factors, cut, fixed_factors, planning_factors
from igrt.registration.sitk_images import to_sitk

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 48
#: ASGD iterations on the native level (``voxel_mm`` 0), the most costly (5000 samples each).
#: The full-size shift set (``benchmarks/registration.py --engine elastix``): max 0.041 mm /
#: 0.020° with 100, 0.033 mm / 0.020° with 150; the accuracy target is 0.15 mm / 0.1°. 100
#: instead of 200 took about 0.6 s off a ~2 s registration (in-process, two cases).
NATIVE_ITERATIONS = 100


def _itk() -> Any:
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
    import itk

    return itk


class ElastixEngine:
    name = "elastix"
    #: ITK's random generator behind elastix's sampler is one per process: two runs at once
    #: would draw each other's samples
    concurrent_runs = False

    def register(self, problem: RegistrationProblem, *, start: FloatArray | None = None,
                 levels: tuple[Level, ...] = DEFAULT_LEVELS) -> RegistrationResult:
        """One elastix registration per level, each from where the previous ended (see
        :func:`_run_level` for the images each is given)."""
        itk = _itk()
        t0 = time.perf_counter()
        transform = problem.initial if start is None else start
        after: list[FloatArray] = []
        executed = 0
        report = ElastixReport(iterations=0, stop_condition="unknown", final_metric=float("nan"))
        for level in levels:
            relative, report = _run_level(itk, problem, level, transform)
            transform = transform @ relative
            after.append(transform)
            executed += report.iterations
        return RegistrationResult(
            engine=self.name,
            transform=transform,
            metric=report.final_metric,
            iterations=executed,
            stop_condition=report.stop_condition,
            converged=None,  # ASGD has no convergence criterion: it runs its iteration budget
            elapsed_s=time.perf_counter() - t0,
            level_transforms=tuple(after),
        )


def _run_level(itk: Any, problem: RegistrationProblem, level: Level,
               transform: FloatArray) -> tuple[FloatArray, ElastixReport]:
    """One level from ``transform``: elastix's relative transform ``r`` (the level's result is
    ``transform @ r``, CBCT point -> planning point) and its report.

    A smoothed level runs on the level images both engines share (bin-shrunk and smoothed, the
    planning side cut to where the CBCT region maps). The native level, whose answer is the
    engine's, runs on the images as they are (the CBCT region and the planning crop with their
    masks), smoothed, and the planning CT binned, by elastix's own pyramid: the cross-check's
    answer shares none of the primary's level-making code."""
    reference = problem.reference
    if level.voxel_mm > 0:
        factors = fixed_factors(problem.fixed.spacing_mm, level)
        fixed = cbct_levels.image(problem, factors, level.smoothing_mm)
        fixed_mask = cbct_levels.mask(problem, factors)
        moving = reference.for_level(level, problem.fixed.spacing_mm, problem.fixed.direction,
                                     around=cbct_levels.mapped_box(problem, transform,
                                                                   level.margin_mm))
        moving_factors: Factors | None = None
    else:
        fixed = cbct_levels.memo(problem, ("cbct-native",), lambda: to_sitk(problem.fixed))
        fixed_mask = cbct_levels.mask(problem, (1, 1, 1))
        # cut (ITK's region of interest: the voxels keep their positions) to where the CBCT
        # region maps plus the level's margin, which elastix's pyramid then smooths
        moving = cut(reference.native,
                     cbct_levels.mapped_box(problem, transform, level.margin_mm))
        moving_factors = planning_factors(problem.fixed.spacing_mm, problem.fixed.direction,
                                          reference.volume.spacing_mm,
                                          reference.volume.direction)
    if moving.mask is None:
        raise ValueError("a planning level without its region mask")
    # elastix starts from identity: express the moving image in coordinates x' with
    # x = transform(x'), which is exact for a rigid map (origin and direction only).
    found, report = _elastix(
        itk, _parameter_map(level, problem.center_mm, problem.seed,
                            moving_factors=moving_factors),
        fixed=_to_itk(itk, fixed, None), fixed_mask=_to_itk(itk, fixed_mask, None),
        moving=_to_itk(itk, moving.image, transform),
        moving_mask=_to_itk(itk, moving.mask, transform), seed=problem.seed)
    return _matrix_of(found), report


def _elastix(itk: Any, parameters: dict[str, tuple[str, ...]], *, fixed: Any, fixed_mask: Any,
             moving: Any, moving_mask: Any, seed: int) -> tuple[Any, ElastixReport]:
    """One elastix registration of ITK images: its transform and its report."""
    params = itk.ParameterObject.New()
    params.AddParameterMap(parameters)
    with tempfile.TemporaryDirectory(prefix="igrt-elastix-") as out:
        method = itk.ElastixRegistrationMethod.New(fixed, moving)
        method.SetParameterObject(params)
        method.SetOutputDirectory(out)
        method.SetLogToFile(True)
        method.SetLogToConsole(os.environ.get("IGRT_ELASTIX_LOG") == "1")
        method.SetFixedMask(fixed_mask)
        method.SetMovingMask(moving_mask)
        itk.MersenneTwisterRandomVariateGenerator.GetInstance().SetSeed(seed)
        try:
            method.UpdateLargestPossibleRegion()
        except RuntimeError as exc:
            words = str(exc).lower()
            # "Too many samples map outside moving image buffer", "Could not find enough image
            # samples within reasonable time": elastix's words for too little overlap
            if "map outside moving image" in words or "enough image samples" in words:
                raise NoOverlapError(
                    "elastix: the CBCT region maps outside the planning CT's registration "
                    f"region ({str(exc).strip().splitlines()[-1][:200]})") from exc
            raise
        found = method.GetCombinationTransform()
        report = read_report(Path(out))
    return found, report


def warm_up() -> None:
    """Register two tiny images once, masks and parameters as a level does: itk-elastix loads
    most of itself lazily on its first registration in a process (about 20 s), and the ITK
    wrappers of each pixel type on their first use; afterwards a registration costs its own
    time."""
    itk = _itk()
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(size=(12, 24, 24)).astype(np.float32))
    mask = sitk.GetImageFromArray(np.ones((12, 24, 24), dtype=np.uint8))
    level = Level(voxel_mm=0.0, smoothing_mm=0.6, margin_mm=0.0, samples=1024, iterations=2,
                  step_mm=1.0, min_step_mm=0.1)
    moved = geometry.translation((0.5, 0.0, 0.0))
    for moving_factors in (None, (2, 2, 1)):  # both kinds of level: copied and own pyramid
        _elastix(itk, _parameter_map(level, np.full(3, 10.0), seed=0,
                                     moving_factors=moving_factors),
                 fixed=_to_itk(itk, image, None), fixed_mask=_to_itk(itk, mask, None),
                 moving=_to_itk(itk, image, moved), moving_mask=_to_itk(itk, mask, moved),
                 seed=0)


@dataclass(frozen=True)
class ElastixReport:
    """What elastix wrote about its own run: iterations executed (the IterationInfo tables),
    the last level's stopping condition and the final metric value (elastix.log)."""

    iterations: int
    stop_condition: str
    final_metric: float


def read_report(directory: Path) -> ElastixReport:
    """Parse elastix's output directory; unknown figures are 0 iterations / nan metric."""
    executed = 0
    for table in sorted(directory.glob("IterationInfo.*.txt")):
        rows = table.read_text(errors="replace").splitlines()[1:]  # first line: the header
        executed += sum(1 for row in rows if row.strip())
    log_path = directory / "elastix.log"
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    stops = re.findall(r"^Stopping condition: (.*)$", text, flags=re.M)
    metrics = re.findall(r"^Final metric value\s*=\s*(\S+)", text, flags=re.M)
    try:
        metric = float(metrics[-1]) if metrics else float("nan")
    except ValueError:
        metric = float("nan")
    return ElastixReport(iterations=executed,
                         stop_condition=stops[-1].strip() if stops else "unknown",
                         final_metric=metric)


def iterations(level: Level) -> int:
    """ASGD's iterations at ``level`` (it runs all of them: it has no convergence test): the
    level's cap, at most :data:`NATIVE_ITERATIONS` on the native level (``voxel_mm`` 0)."""
    return min(level.iterations, NATIVE_ITERATIONS) if level.voxel_mm <= 0 else level.iterations


def _parameter_map(level: Level, center_mm: FloatArray, seed: int, *,
                   moving_factors: Factors | None = None) -> dict[str, tuple[str, ...]]:
    """One resolution. ``moving_factors`` None: on images already shrunk and smoothed, which
    the pyramid copies; else elastix smooths both images by the level's sigma (mm) and shrinks
    the planning image by these factors."""
    rescale: tuple[str, ...] = ("1", "1", "1")
    if moving_factors is None:
        sigma: tuple[str, ...] = ("0", "0", "0")
        moving_rescale = rescale
    else:
        sigma = (str(float(level.smoothing_mm)),) * 3
        moving_rescale = tuple(str(int(f)) for f in moving_factors)
    return {
        "Registration": ("MultiResolutionRegistration",),
        "FixedImagePyramid": ("FixedGenericImagePyramid",),
        "MovingImagePyramid": ("MovingGenericImagePyramid",),
        "NumberOfResolutions": ("1",),
        "FixedImagePyramidRescaleSchedule": rescale,
        "MovingImagePyramidRescaleSchedule": moving_rescale,
        "FixedImagePyramidSmoothingSchedule": sigma,
        "MovingImagePyramidSmoothingSchedule": sigma,
        "ImagePyramidUseShrinkImageFilter": ("true",),
        "Interpolator": ("LinearInterpolator",),
        "ResampleInterpolator": ("FinalLinearInterpolator",),
        "Resampler": ("DefaultResampler",),
        "Metric": ("AdvancedMattesMutualInformation",),
        "NumberOfHistogramBins": (str(HISTOGRAM_BINS),),
        "Optimizer": ("AdaptiveStochasticGradientDescent",),
        "AutomaticParameterEstimation": ("true",),
        "ASGDParameterEstimationMethod": ("Original",),
        "MaximumStepLength": (str(level.step_mm),),
        "MaximumNumberOfIterations": (str(iterations(level)),),
        "Transform": ("EulerTransform",),
        "AutomaticScalesEstimation": ("true",),
        "AutomaticTransformInitialization": ("false",),
        "CenterOfRotationPoint": tuple(str(float(c)) for c in center_mm),
        # samples on CBCT voxels (random ones, new at every iteration): off the grid the CBCT
        # is interpolated too, which cost accuracy (measured: up to 0.087 mm against 0.024 mm)
        "ImageSampler": ("Random",),
        "NumberOfSpatialSamples": (str(level.samples // 4),),
        "NewSamplesEveryIteration": ("true",),
        "RandomSeed": (str(seed),),
        "ErodeMask": ("false",),
        "CheckNumberOfSamples": ("true",),
        "UseDirectionCosines": ("true",),
        "HowToCombineTransforms": ("Compose",),
        "WriteResultImage": ("false",),
        "WriteIterationInfo": ("true",),
        "DefaultPixelValue": ("-1000",),
        "FixedInternalImagePixelType": ("float",),
        "MovingInternalImagePixelType": ("float",),
    }


def _to_itk(itk: Any, image: sitk.Image, transform: FloatArray | None) -> Any:
    """The SimpleITK image (float32 pixels, or a uint8 mask) as an ITK one, a copy of its
    pixels; with ``transform``, in the coordinates ``x'`` related to its own by
    ``x = transform(x')`` (same voxels)."""
    dtype = {sitk.sitkFloat32: np.float32, sitk.sitkUInt8: np.uint8}.get(image.GetPixelID())
    if dtype is None:
        raise ValueError(f"elastix is given float32 images and uint8 masks, not "
                         f"{image.GetPixelIDTypeAsString()}")
    # the images given are this run's own (its memo's, or cut from the planning reference as
    # copies: igrt.registration.runner, reference.cut), so reading them shares nothing
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image), dtype=dtype)
    out = itk.image_from_array(array)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if transform is not None:
        origin = geometry.apply(geometry.invert_rigid(transform), origin)
        direction = transform[:3, :3].T @ direction
    out.SetOrigin([float(v) for v in origin])
    out.SetSpacing([float(v) for v in image.GetSpacing()])
    out.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    return out


def _matrix_of(transform: Any) -> FloatArray:
    origin = np.array(transform.TransformPoint([0.0, 0.0, 0.0]), dtype=np.float64)
    out = np.eye(4)
    for axis in range(3):
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        out[:3, axis] = np.array(transform.TransformPoint(e), dtype=np.float64) - origin
    out[:3, 3] = origin
    return out
