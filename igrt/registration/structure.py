"""Where the CBCT has structure: the metric's samples are taken near edges.

A QA phantom is mostly a uniform block (with the CBCT's cupping across it); its information is
in a few small inserts, grooves and faces. Sampled evenly over the box, those hold a fraction of
a per cent of the metric's samples, and mutual information is nearly flat. The samples are
therefore restricted to the voxels near a strong edge of the CBCT (a Gaussian-derivative gradient
magnitude above a threshold well over the noise's, dilated by a few millimetres so that both
sides of every edge take part), and away from the box's faces. The levels use them as
``Level.near_edges`` says: the coarse levels keep the whole box (their capture range needs it).
When too little of the box qualifies, the whole box is used.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from igrt.core.types import BoolArray
from igrt.core.volume import Volume
from igrt.registration.sitk_images import array_view, to_sitk

#: The grid (mm) the edges are found on: the CBCT is bin-shrunk toward it.
GRID_MM = 2.0
#: Gaussian sigma (mm) of the gradient: well above the noise, below the inserts' size.
SIGMA_MM = 1.5
#: Gradient magnitude (HU/mm) that counts as an edge: CBCT noise (25 HU) gives ~5 HU/mm at this
#: sigma, cupping ~1 HU/mm; a soft-tissue/fat edge ~30 HU/mm, bone, air and inserts far more.
THRESHOLD_HU_PER_MM = 25.0
#: How far (mm) around an edge samples are kept.
DILATE_MM = 7.0
#: Samples are kept this far (mm) inside the registration box: an edge the box's face cuts (a
#: phantom face at the box's edge) is seen from one side only and pulls the result toward
#: wherever more of it lies inside (1.5 mm on ``sphere_cube`` with an ideal CBCT).
BOX_INSET_MM = 10.0
#: Below this share of the usable box the restriction is not applied (nothing to restrict to).
MIN_FRACTION = 0.02


def near_edges(volume: Volume, usable: BoolArray, *, grid_mm: float = GRID_MM,
               sigma_mm: float = SIGMA_MM, threshold: float = THRESHOLD_HU_PER_MM,
               dilate_mm: float = DILATE_MM,
               min_fraction: float = MIN_FRACTION) -> BoolArray | None:
    """``usable`` restricted to the voxels within ``dilate_mm`` of a strong edge of ``volume``
    (None when that leaves less than ``min_fraction`` of it: use all of ``usable``)."""
    n_usable = int(np.count_nonzero(usable))
    if n_usable == 0:
        return None
    spacing = np.asarray(volume.spacing_mm, dtype=np.float64)
    factors = [max(1, int(round(grid_mm / s))) for s in spacing]
    image = to_sitk(volume)
    if any(f > 1 for f in factors):
        image = sitk.BinShrink(image, factors)
    if min(image.GetSize()) < 4:
        return None
    gradient = array_view(sitk.GradientMagnitudeRecursiveGaussian(image, float(sigma_mm)))
    strong = sitk.GetImageFromArray((gradient > threshold).astype(np.uint8))
    strong.CopyInformation(image)
    coarse = spacing * np.asarray(factors)
    radius = [max(1, int(round(dilate_mm / s))) for s in coarse]
    grown = array_view(sitk.BinaryDilate(strong, radius, sitk.sitkBall)) != 0
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
