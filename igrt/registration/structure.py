"""Where the CBCT has structure: the finer levels' samples are taken near edges.

A QA phantom is mostly a uniform block (with the CBCT's cupping across it); its information is
in a few small inserts, grooves and faces. Sampled evenly over the box, those hold a fraction of
a per cent of the metric's samples, and mutual information is nearly flat. The samples are
therefore restricted to the voxels near a strong edge of the CBCT (a Gaussian-derivative gradient
magnitude above a threshold well over the noise's, dilated by a few millimetres so that both
sides of every edge take part). Two masks, for two levels (``Level.near_edges``):

* ``refine`` (the middle level, after its run over the whole box): the bands of every edge, kept
  :data:`BOX_INSET_MM` inside the box's faces. A face near the box's face leaves a sliver of its
  inner side: biased (toward wherever more of it lies inside), but what brings the middle level
  back from the coarse level's few millimetres and degrees off on a cube.
* ``only`` (the native level, ``both_sides``): only the edges at least :data:`EDGE_DEPTH_MM`
  inside the usable region (the box within the field of view), each with its whole band, both
  sides. A face cut by the region's boundary, or close to it, takes no part: seen from one side
  it pulls (0.75 mm on ``sphere_cube`` after 10 mm lateral or vertical shifts with the
  ``refine`` mask), and even with both sides of its band inside, a face within a band's width
  and 10 mm of the box's face still did (0.3-0.4 mm outward after 4-6 mm shifts with 1.5-2°);
  the inserts well inside the box are what fixes a QA phantom's position.

The coarse level keeps the whole box (its capture range needs it). When too little of the
region qualifies, the whole region is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from igrt.core.types import BoolArray
from igrt.core.volume import Volume
from igrt.registration.sitk_images import array_view, mask_to_sitk, to_sitk

#: The grid (mm) the edges are found on: the CBCT is bin-shrunk toward it.
GRID_MM = 2.0
#: Gaussian sigma (mm) of the gradient: well above the noise, below the inserts' size.
SIGMA_MM = 1.5
#: Gradient magnitude (HU/mm) that counts as an edge: CBCT noise (25 HU) gives ~5 HU/mm at this
#: sigma, cupping ~1 HU/mm; a soft-tissue/fat edge ~30 HU/mm, bone, air and inserts far more.
THRESHOLD_HU_PER_MM = 25.0
#: How far (mm) around an edge samples are kept.
DILATE_MM = 7.0
#: The native level's edges (``both_sides``) lie at least this far (mm) inside the usable region:
#: a band's width (:data:`DILATE_MM`) and 10 mm more.
EDGE_DEPTH_MM = 18.0
#: The ``refine`` mask's samples are kept this far (mm) inside the registration box's faces.
BOX_INSET_MM = 10.0
#: Below this share of the usable box the restriction is not applied (nothing to restrict to).
MIN_FRACTION = 0.02


@dataclass(frozen=True, eq=False)
class Edges:
    """The strong edges of a CBCT on the coarse grid they were found on (:func:`strong_edges`):
    found once, restricted to each mask's usable region by :func:`near_edges`."""

    volume: Volume  # the CBCT they were found in
    factors: tuple[int, int, int]  # its bin-shrink factors (i, j, k) to the coarse grid
    strong: BoolArray | None  # k, j, i on the coarse grid; None: too small to tell


def strong_edges(volume: Volume, *, grid_mm: float = GRID_MM, sigma_mm: float = SIGMA_MM,
                 threshold: float = THRESHOLD_HU_PER_MM) -> Edges:
    """Where ``volume``'s Gaussian-derivative gradient magnitude (sigma ``sigma_mm``, on a grid
    of about ``grid_mm``) exceeds ``threshold``."""
    spacing = np.asarray(volume.spacing_mm, dtype=np.float64)
    f = [max(1, int(round(grid_mm / s))) for s in spacing]
    factors = (f[0], f[1], f[2])
    image = to_sitk(volume)
    if any(v > 1 for v in factors):
        image = sitk.BinShrink(image, factors)
    if min(image.GetSize()) < 4:
        return Edges(volume, factors, None)
    gradient = array_view(sitk.GradientMagnitudeRecursiveGaussian(image, float(sigma_mm)))
    return Edges(volume, factors, gradient > threshold)


def near_edges(edges: Edges, usable: BoolArray, *, both_sides: bool = True,
               dilate_mm: float = DILATE_MM, depth_mm: float = EDGE_DEPTH_MM,
               min_fraction: float = MIN_FRACTION) -> BoolArray | None:
    """``usable`` restricted to the voxels within ``dilate_mm`` of one of ``edges`` (None when
    that leaves less than ``min_fraction`` of it: use all of ``usable``); ``both_sides``: of
    the edges at least ``depth_mm`` inside ``usable`` only. Both distances are a ball's radius
    on the coarse grid, in whole voxels per axis (as ITK's ball structuring element, made
    from a distance map: exact and a tenth of the time)."""
    n_usable = int(np.count_nonzero(usable))
    if n_usable == 0 or edges.strong is None:
        return None
    factors = edges.factors
    coarse = np.asarray(edges.volume.spacing_mm, dtype=np.float64) * np.asarray(factors)
    strong = edges.strong
    if both_sides:
        depth = [max(1, int(round(depth_mm / s))) for s in coarse]
        strong = strong & _deep_inside(usable, edges, depth)
    radius = [max(1, int(round(dilate_mm / s))) for s in coarse]
    grown = _within_ball(strong, radius)
    fk, fj, fi = factors[2], factors[1], factors[0]
    full = np.repeat(np.repeat(np.repeat(grown, fk, axis=0), fj, axis=1), fi, axis=2)
    nk, nj, ni = usable.shape
    pad = [(0, max(0, n - m)) for n, m in zip((nk, nj, ni), full.shape, strict=True)]
    if any(p[1] for p in pad):  # BinShrink drops a partial last bin: repeat the edge
        full = np.pad(full, pad, mode="edge")
    near = usable & full[:nk, :nj, :ni]
    if int(np.count_nonzero(near)) < min_fraction * n_usable:
        return None
    return np.ascontiguousarray(near)


def _deep_inside(usable: BoolArray, edges: Edges, radius: list[int]) -> BoolArray:
    """``usable`` on the coarse grid (bins wholly inside), eroded by a ball of ``radius``
    coarse voxels (i, j, k), beyond the image counting as outside."""
    within = sitk.Cast(mask_to_sitk(usable, edges.volume), sitk.sitkFloat32)
    if any(f > 1 for f in edges.factors):
        within = sitk.BinShrink(within, list(edges.factors))
    whole = array_view(within) >= 0.999
    outside = np.pad(~whole, 1, constant_values=True)
    return whole & ~_within_ball(outside, radius)[1:-1, 1:-1, 1:-1]


def _within_ball(mask: BoolArray, radius: list[int]) -> BoolArray:
    """The voxels a ball of ``radius`` voxels (i, j, k) about a voxel of ``mask`` covers: ITK's
    ball structuring element (an ellipsoid of half-axes radius + 1/2) as a squared Euclidean
    distance map on a grid scaled so that the ellipsoid is the unit sphere."""
    if not mask.any() or mask.all():  # nothing to grow from, nothing left to grow into
        return mask.copy()
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([1.0 / (r + 0.5) for r in radius])
    squared = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=True,
                                           useImageSpacing=True)
    return np.asarray(array_view(squared) <= 1.0)
