"""The second engine: itk-elastix (elastix as a library), Mattes mutual information with the
adaptive stochastic gradient descent optimiser on an Euler transform about the isocentre.

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

from igrt.core import geometry
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration.problem import (
    DEFAULT_LEVELS,
    Level,
    RegistrationProblem,
    RegistrationResult,
)

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 48


def _itk() -> Any:
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
    import itk

    return itk


class ElastixEngine:
    name = "elastix"

    def register(self, problem: RegistrationProblem, *, start: FloatArray | None = None,
                 levels: tuple[Level, ...] = DEFAULT_LEVELS) -> RegistrationResult:
        itk = _itk()
        t0 = time.perf_counter()
        initial = problem.initial if start is None else start
        # elastix starts from identity: express the moving image in coordinates x' with
        # x = initial(x'), which is exact for a rigid map (origin and direction only).
        moving = _reframe(problem.moving, initial)
        fixed_image = _to_itk(itk, problem.fixed.voxels.astype(np.float32), problem.fixed)
        moving_image = _to_itk(itk, moving.voxels.astype(np.float32), moving)
        params = itk.ParameterObject.New()
        params.AddParameterMap(_parameter_map(problem, levels))
        with tempfile.TemporaryDirectory(prefix="igrt-elastix-") as out:
            method = itk.ElastixRegistrationMethod.New(fixed_image, moving_image)
            method.SetParameterObject(params)
            method.SetOutputDirectory(out)
            method.SetLogToFile(True)
            method.SetLogToConsole(os.environ.get("IGRT_ELASTIX_LOG") == "1")
            method.SetFixedMask(_mask_to_itk(itk, problem.fixed_mask, problem.fixed))
            method.SetMovingMask(_mask_to_itk(itk, problem.moving_mask, moving))
            itk.MersenneTwisterRandomVariateGenerator.GetInstance().SetSeed(problem.seed)
            method.UpdateLargestPossibleRegion()
            found = method.GetCombinationTransform()
            report = read_report(Path(out))
        relative = _matrix_of(found)
        transform = initial @ relative
        return RegistrationResult(
            engine=self.name,
            transform=transform,
            metric=report.final_metric,
            iterations=report.iterations,
            stop_condition=report.stop_condition,
            converged=None,  # ASGD has no convergence criterion: it runs its iteration budget
            elapsed_s=time.perf_counter() - t0,
        )


def warm_up() -> None:
    """Register two tiny images once: itk-elastix loads most of itself lazily on its first
    registration in a process (about 20 s); afterwards a registration costs its own time."""
    itk = _itk()
    rng = np.random.default_rng(0)
    array = rng.normal(size=(12, 24, 24)).astype(np.float32)
    image = itk.image_from_array(array)
    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("rigid", 1))
    params.SetParameter("MaximumNumberOfIterations", "2")
    params.SetParameter("NumberOfSpatialSamples", "256")
    with tempfile.TemporaryDirectory(prefix="igrt-elastix-warm-") as out:
        method = itk.ElastixRegistrationMethod.New(image, image)
        method.SetParameterObject(params)
        method.SetOutputDirectory(out)
        method.SetLogToFile(False)
        method.SetLogToConsole(False)
        method.UpdateLargestPossibleRegion()
        method.GetCombinationTransform()


@dataclass(frozen=True)
class ElastixReport:
    """What elastix wrote about its own run: iterations executed (the IterationInfo tables),
    the last level's stopping condition and the final metric value (elastix.log)."""

    iterations: int
    stop_condition: str
    final_metric: float


def read_report(directory: Path) -> ElastixReport:
    """Parse elastix's output directory; unknown figures are 0 iterations / nan metric."""
    iterations = 0
    for table in sorted(directory.glob("IterationInfo.*.txt")):
        rows = table.read_text(errors="replace").splitlines()[1:]  # first line: the header
        iterations += sum(1 for row in rows if row.strip())
    log_path = directory / "elastix.log"
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    stops = re.findall(r"^Stopping condition: (.*)$", text, flags=re.M)
    metrics = re.findall(r"^Final metric value\s*=\s*(\S+)", text, flags=re.M)
    try:
        metric = float(metrics[-1]) if metrics else float("nan")
    except ValueError:
        metric = float("nan")
    return ElastixReport(iterations=iterations,
                         stop_condition=stops[-1].strip() if stops else "unknown",
                         final_metric=metric)


def _parameter_map(problem: RegistrationProblem,
                   levels: tuple[Level, ...]) -> dict[str, tuple[str, ...]]:
    spacing = np.asarray(problem.fixed.spacing_mm)
    schedule: list[str] = []
    for level in levels:
        # Smoothing pyramids take whole numbers s and smooth with sigma = 0.5 * s voxels.
        factors = np.rint(2.0 * level.smoothing_mm / spacing).astype(int)
        schedule += [str(int(f)) for f in factors]
    center = problem.center_mm
    n = str(len(levels))

    def strs(values: list[object]) -> tuple[str, ...]:
        return tuple(str(v) for v in values)

    return {
        "Registration": ("MultiResolutionRegistration",),
        "FixedImagePyramid": ("FixedSmoothingImagePyramid",),
        "MovingImagePyramid": ("MovingSmoothingImagePyramid",),
        "NumberOfResolutions": (n,),
        "FixedImagePyramidSchedule": tuple(schedule),
        "MovingImagePyramidSchedule": tuple(schedule),
        "Interpolator": ("LinearInterpolator",),
        "ResampleInterpolator": ("FinalLinearInterpolator",),
        "Resampler": ("DefaultResampler",),
        "Metric": ("AdvancedMattesMutualInformation",),
        "NumberOfHistogramBins": (str(HISTOGRAM_BINS),),
        "Optimizer": ("AdaptiveStochasticGradientDescent",),
        "AutomaticParameterEstimation": ("true",),
        "MaximumStepLength": strs([level.step_mm for level in levels]),
        "MaximumNumberOfIterations": strs([level.iterations for level in levels]),
        "Transform": ("EulerTransform",),
        "AutomaticScalesEstimation": ("true",),
        "AutomaticTransformInitialization": ("false",),
        "CenterOfRotationPoint": strs([float(c) for c in center]),
        "ImageSampler": ("RandomCoordinate",),
        "NumberOfSpatialSamples": strs([level.samples // 4 for level in levels]),
        "NewSamplesEveryIteration": ("true",),
        "RandomSeed": (str(problem.seed),),
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


def _reframe(volume: Volume, transform: FloatArray) -> Volume:
    """The same voxels, in coordinates ``x'`` related to the old ones by ``x = T(x')``."""
    r = transform[:3, :3]
    inverse = geometry.invert_rigid(transform)
    origin = geometry.apply(inverse, volume.origin_mm)
    return Volume(
        voxels=volume.voxels,
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        spacing_mm=volume.spacing_mm,
        direction=r.T @ volume.direction,
    )


def _to_itk(itk: Any, array: np.ndarray, volume: Volume) -> Any:
    image = itk.image_from_array(np.ascontiguousarray(array))
    image.SetOrigin([float(v) for v in volume.origin_mm])
    image.SetSpacing([float(v) for v in volume.spacing_mm])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(volume.direction,
                                                                   dtype=np.float64)))
    return image


def _mask_to_itk(itk: Any, mask: BoolArray, volume: Volume) -> Any:
    return _to_itk(itk, mask.astype(np.uint8), volume)


def _matrix_of(transform: Any) -> FloatArray:
    origin = np.array(transform.TransformPoint([0.0, 0.0, 0.0]), dtype=np.float64)
    out = np.eye(4)
    for axis in range(3):
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        out[:3, axis] = np.array(transform.TransformPoint(e), dtype=np.float64) - origin
    out[:3, 3] = origin
    return out
