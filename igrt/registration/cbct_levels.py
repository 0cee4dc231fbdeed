"""The CBCT side of a pyramid level, made once per problem and kept in ``problem.memo``: the
CBCT region as a SimpleITK image, bin-shrunk toward a level's voxel size and smoothed, and its
mask shrunk the same way. Shared by both engines and by the runs on one thread of one problem
(a run on another thread, the robustness restart or a cross-check, has a memo of its own:
``igrt.registration.runner``); and the planning box a level's run may sample."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.types import BoolArray, FloatArray
from igrt.registration.problem import RegistrationProblem
from igrt.registration.reference import Factors, level_images, shrunk
from igrt.registration.sitk_images import mask_to_sitk, to_sitk


def image(problem: RegistrationProblem, factors: Factors, smoothing_mm: float) -> sitk.Image:
    """The CBCT region bin-shrunk by ``factors`` and smoothed by ``smoothing_mm``."""
    return memo(problem, ("cbct-image", factors, float(smoothing_mm)),
                lambda: level_images(memo(problem, ("cbct-native",),
                                          lambda: to_sitk(problem.fixed)),
                                     None, factors, smoothing_mm).image)


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
                lambda: shrunk(mask_to_sitk(problem.fixed_mask if region is None else region,
                                            problem.fixed), factors))


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
