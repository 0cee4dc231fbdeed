"""The CBCT side of a pyramid level, made once per problem: the CBCT region bin-shrunk toward a
level's voxel size and smoothed, and its mask shrunk the same way, as SimpleITK images kept in
``problem.memo``. Shared by both engines and by the runs on one thread of one problem (a run on
another thread, the robustness restart or a cross-check, has a memo of its own:
``igrt.registration.runner``); the level's pixels are made once for all of them
(:func:`level_pixels`). And the planning box a level's run may sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration.once import Once
from igrt.registration.problem import RegistrationProblem
from igrt.registration.reference import Factors, level_images, shrunk
from igrt.registration.sitk_images import mask_to_sitk, to_sitk


@dataclass(frozen=True)
class LevelPixels:
    """A CBCT level's pixels (z, y, x; read-only) and its geometry."""

    pixels: npt.NDArray[np.float32]
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]

    def image(self) -> sitk.Image:
        """A SimpleITK image of its own (a copy of the pixels)."""
        made = sitk.GetImageFromArray(self.pixels)
        made.SetOrigin(self.origin)
        made.SetSpacing(self.spacing)
        made.SetDirection(self.direction)
        return made


def image(problem: RegistrationProblem, factors: Factors, smoothing_mm: float) -> sitk.Image:
    """The CBCT region bin-shrunk by ``factors`` and smoothed by ``smoothing_mm``."""
    return memo(problem, ("cbct-image", factors, float(smoothing_mm)),
                lambda: level_pixels(problem.shared, problem.fixed, factors,
                                     smoothing_mm).image())


def level_pixels(shared: Once, fixed: Volume, factors: Factors,
                 smoothing_mm: float) -> LevelPixels:
    """The pixels of the CBCT region ``fixed`` bin-shrunk and smoothed, made once in ``shared``
    (a problem's, for it and its copies) by whichever thread asks first: the native level's
    smoothing, a tenth of a second, is made beside the first levels
    (``igrt.registration.cbct_side``) and not again for the restart on its thread."""

    def make() -> LevelPixels:
        made = level_images(to_sitk(fixed), None, factors, smoothing_mm).image
        pixels = sitk.GetArrayFromImage(made)
        pixels.flags.writeable = False
        return LevelPixels(pixels, made.GetOrigin(), made.GetSpacing(), made.GetDirection())

    if shared.get(("cbct-region",), lambda: fixed) is not fixed:
        # a copy of the problem with another CBCT region must not read this one's pixels
        raise ValueError("these shared CBCT levels belong to another CBCT region")
    return shared.get(("cbct-image", factors, float(smoothing_mm)), make)


def mask_name(problem: RegistrationProblem, near: str) -> str:
    """``near`` (``"only"``, ``"refine"``) when the problem has that mask near the CBCT's edges,
    else ``""``: the whole ``problem.fixed_mask``."""
    return near if _region(problem, near) is not None else ""


def mask(problem: RegistrationProblem, factors: Factors, *, near: str = "") -> sitk.Image:
    """The mask named by ``near`` (see :func:`mask_name`) shrunk by ``factors``: a coarse voxel
    is in when half its voxels are."""
    name = mask_name(problem, near)
    region = _region(problem, name)
    return memo(problem, ("cbct-mask", factors, name),
                lambda: _shrunk_mask(problem.fixed_mask if region is None else region,
                                     problem, factors))


def _shrunk_mask(pixels: BoolArray, problem: RegistrationProblem,
                 factors: Factors) -> sitk.Image:
    return shrunk(mask_to_sitk(pixels, problem.fixed), factors, pixels=pixels)


def _region(problem: RegistrationProblem, near: str) -> BoolArray | None:
    # only the mask asked for: the masks near edges may still be being made
    if near == "only":
        return problem.sample_mask
    if near == "refine":
        return problem.refine_mask
    return None


def mapped_box(problem: RegistrationProblem, matrix: FloatArray,
               margin_mm: float) -> tuple[FloatArray, FloatArray]:
    """The LPS box (low, high corners) the CBCT region maps to under ``matrix``, plus
    ``margin_mm`` (a level's): where a run of that level may sample the planning CT."""
    fixed = problem.fixed
    ni, nj, nk = fixed.shape_ijk
    corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)],
                       dtype=np.float64)
    mapped = geometry.apply(matrix, fixed.index_to_point_mm(corners))
    return mapped.min(axis=0) - margin_mm, mapped.max(axis=0) + margin_mm


def memo(problem: RegistrationProblem, key: tuple[object, ...],
         make: Callable[[], sitk.Image]) -> sitk.Image:
    """``problem.memo[key]``, made by ``make`` the first time (one image of the CBCT side)."""
    found = problem.memo.get(key)
    if not isinstance(found, sitk.Image):
        found = make()
        problem.memo[key] = found
    return found
