"""The elastix command-line tool on an igrt case, for the registration benchmark.

elastix gets what ``igrt register`` works from, as files: the whole CBCT (fixed) and the whole
planning CT (moving) as MetaImage, the same masks (the registration box within the CBCT's field
of view; the patient's body without the CT couch), the same nominal start (the moving image is
re-framed so that elastix's identity is igrt's start) and the same centre of rotation (the
machine isocentre). Its parameters are elastix's own default rigid registration
(``GetDefaultParameterMap("rigid")`` of elastix 5: four resolutions, 256 iterations, 2048
random samples, Mattes mutual information, adaptive stochastic gradient descent), with only
what the task fixes changed: no automatic initialisation (the start is known), no result image
(only the transform is wanted), air as the default pixel value. Writing the files is not timed;
the elastix process is, from start to exit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.case import Case
from igrt.core.types import FloatArray
from igrt.core.volume import Volume
from igrt.registration import region
from igrt.registration.sitk_images import matrix_from_transform, set_geometry

PARAMETERS = {
    # elastix 5 default rigid map
    "AutomaticParameterEstimation": "true",
    "AutomaticScalesEstimation": "true",
    "CheckNumberOfSamples": "true",
    "FixedImagePyramid": '"FixedSmoothingImagePyramid"',
    "ImageSampler": '"RandomCoordinate"',
    "Interpolator": '"LinearInterpolator"',
    "MaximumNumberOfIterations": "256",
    "MaximumNumberOfSamplingAttempts": "8",
    "Metric": '"AdvancedMattesMutualInformation"',
    "MovingImagePyramid": '"MovingSmoothingImagePyramid"',
    "NewSamplesEveryIteration": "true",
    "NumberOfResolutions": "4",
    "NumberOfSamplesForExactGradient": "4096",
    "NumberOfSpatialSamples": "2048",
    "Optimizer": '"AdaptiveStochasticGradientDescent"',
    "Registration": '"MultiResolutionRegistration"',
    "ResampleInterpolator": '"FinalBSplineInterpolator"',
    "Resampler": '"DefaultResampler"',
    "Transform": '"EulerTransform"',
    # what the task fixes
    "AutomaticTransformInitialization": "false",
    "WriteResultImage": '"false"',
    "DefaultPixelValue": "-1000",
    "FixedInternalImagePixelType": '"float"',
    "MovingInternalImagePixelType": '"float"',
    "HowToCombineTransforms": '"Compose"',
    "ErodeMask": '"false"',
    "UseDirectionCosines": '"true"',
    "RandomSeed": "20261121",
}


@dataclass(frozen=True)
class ElastixRun:
    transform: FloatArray  # CBCT point -> planning point
    elapsed_s: float


def available() -> bool:
    return shutil.which("elastix") is not None


def write_inputs(case: Case, ct: Volume, directory: Path, *,
                 box_size_mm: tuple[float, float, float]) -> tuple[Path, FloatArray, FloatArray]:
    """Write fixed/moving images, masks and the parameter file; returns the parameter file,
    the nominal start (CBCT -> planning) and the centre of rotation (CBCT coordinates)."""
    directory.mkdir(parents=True, exist_ok=True)
    iso_cbct = geometry.apply(geometry.invert_rigid(case.nominal), np.zeros(3))
    padding = case.cbct_padding if case.cbct_padding is not None else \
        region.detect_padding(case.cbct)
    fixed_mask = region.field_of_view(case.cbct, padding) & region.inside_box(
        case.cbct, iso_cbct, box_size_mm)
    down = geometry.LPS_TO_IEC[case.position].T @ np.array([0.0, 0.0, -1.0])
    moving_mask = region.coarse_body_mask(ct, down_lps=down)
    initial = geometry.registration_for_correction(np.eye(4), case.nominal, case.isocenter_mm)
    moving = _reframed(ct, initial)
    _write(case.cbct.voxels, case.cbct, directory / "fixed.mha")
    _write(fixed_mask.astype(np.uint8), case.cbct, directory / "fixed_mask.mha")
    _write(ct.voxels, moving, directory / "moving.mha")
    _write(moving_mask.astype(np.uint8), moving, directory / "moving_mask.mha")
    params = dict(PARAMETERS)
    params["CenterOfRotationPoint"] = " ".join(f"{v:.6f}" for v in iso_cbct)
    path = directory / "rigid.txt"
    path.write_text("".join(f"({k} {v})\n" for k, v in params.items()))
    return path, initial, iso_cbct


def run(directory: Path, parameters: Path, initial: FloatArray, *,
        timeout_s: float = 1800.0) -> ElastixRun:
    """Run elastix on the files of :func:`write_inputs` and read its transform back."""
    out = directory / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    command = ["elastix", "-f", str(directory / "fixed.mha"), "-m", str(directory / "moving.mha"),
               "-fMask", str(directory / "fixed_mask.mha"),
               "-mMask", str(directory / "moving_mask.mha"),
               "-p", str(parameters), "-out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=timeout_s)
    elapsed = time.perf_counter() - t0
    relative = _read_transform(out / "TransformParameters.0.txt")
    return ElastixRun(transform=initial @ relative, elapsed_s=elapsed)


def _read_transform(path: Path) -> FloatArray:
    text = path.read_text()

    def numbers(name: str) -> list[float]:
        found = re.search(rf"^\({name} ([^)]*)\)", text, flags=re.M)
        if found is None:
            raise ValueError(f"{path} has no {name}")
        return [float(v) for v in found.group(1).split()]

    rx, ry, rz, tx, ty, tz = numbers("TransformParameters")
    center = numbers("CenterOfRotationPoint")
    euler = sitk.Euler3DTransform()
    euler.SetCenter(center)
    euler.SetRotation(rx, ry, rz)
    euler.SetTranslation((tx, ty, tz))
    return matrix_from_transform(euler)


def _reframed(volume: Volume, transform: FloatArray) -> Volume:
    """The same voxels in coordinates ``x'`` with ``x = T(x')`` (exact for a rigid map)."""
    inverse = geometry.invert_rigid(transform)
    origin = geometry.apply(inverse, volume.origin_mm)
    return Volume(voxels=volume.voxels,
                  origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
                  spacing_mm=volume.spacing_mm,
                  direction=transform[:3, :3].T @ volume.direction)


def _write(array: np.ndarray, geometry_of: Volume, path: Path) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    set_geometry(image, geometry_of)
    sitk.WriteImage(image, str(path))
