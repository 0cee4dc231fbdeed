"""How well the images agree at a registration result, and how well they would agree one
vertebra away (issue 9: ``poor_match``, ``ambiguous_match``).

The figure is the normalised cross-correlation of the two images' *gradient magnitudes* (edges
of bone, body contour, air cavities), compared on one grid of :data:`GRID_MM` voxels over the
registration box in planning coordinates, where the CBCT holds real data. Gradient magnitude is
blind to the CBCT's uncalibrated HU (offset, gain, cupping): at a true match the two images' edges
are in the same places and the score is high (about 0.9 and above on phantoms and simulated CBCTs
of real CTs, 0.78 and above with heavy noise and artefacts); another body, a mirrored one or the
wrong region imaged put edges where the planning CT has none and score far lower. A mutual
information value cannot say this: it has no scale that means "the same anatomy".

The longitudinal profile is the same score with the planning CT moved along the patient's long
axis (LPS z, for every supported patient position): at the right level it peaks; a second peak
about one vertebra (or rib) away that comes close is a candidate for the wrong level, which the
runner registers from to compare (``igrt.registration.runner``).

Both images are first bin-shrunk toward :data:`WORK_MM` voxels so that the cost does not follow
the planning CT's native resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from igrt.core import geometry
from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume
from igrt.registration import region
from igrt.registration.sitk_images import mask_to_sitk, to_sitk

GRID_MM = 3.0
WORK_MM = GRID_MM  # images are bin-shrunk toward this voxel size first
AIR_HU = -1000.0  # what "outside an image" is taken to be before the gradient
#: The CBCT's field-of-view edge and the box edge are edges of the image, not of the patient: the
#: compared region stays this far inside them.
EDGE_EROSION_MM = 6.0
#: Planning CT kept around the box as mapped, for the rotation of its corners.
MOVING_MARGIN_MM = 15.0
MIN_VOXELS = 500  # fewer compared grid voxels than this: no figure at all
#: The longitudinal profile: range and a peak's minimum distance from the result (mm).
PROFILE_RANGE_MM = 45.0
PROFILE_MIN_OFFSET_MM = 12.0
OUTSIDE = -1.0e4  # marks grid voxels outside an image


@dataclass(frozen=True)
class Profile:
    offsets_mm: FloatArray  # planning CT moved along LPS z by these (0: the result itself)
    scores: FloatArray  # the score at each offset; NaN where too few voxels are shared

    def rival(self, min_offset_mm: float = PROFILE_MIN_OFFSET_MM) -> tuple[float, float] | None:
        """The highest local maximum at least ``min_offset_mm`` from the result, as
        ``(offset_mm, score)``; None when there is none."""
        v = np.where(np.isfinite(self.scores), self.scores, -np.inf)
        best: tuple[float, float] | None = None
        for n, d in enumerate(self.offsets_mm):
            if abs(d) < min_offset_mm or not np.isfinite(v[n]):
                continue
            left = v[n - 1] if n > 0 else -np.inf
            right = v[n + 1] if n + 1 < len(v) else -np.inf
            if v[n] >= left and v[n] >= right and (best is None or v[n] > best[1]):
                best = (float(d), float(v[n]))
        return best

    @property
    def at_result(self) -> float:
        return float(self.scores[int(np.argmin(np.abs(self.offsets_mm)))])


@dataclass(frozen=True, eq=False)
class Comparer:
    """Both images bin-shrunk once for a problem; scores any transform on its grid."""

    fixed: sitk.Image  # CBCT side, bin-shrunk toward the grid
    fixed_valid: sitk.Image  # UInt8 on ``fixed``: the field of view within the box
    moving: sitk.Image  # planning side, bin-shrunk toward the grid
    centre_mm: FloatArray  # CBCT point at the box centre (the machine isocentre)
    box_mm: FloatArray
    grid_mm: float

    def _grid(self, transform: FloatArray, extra_z_mm: float) -> sitk.Image:
        centre = geometry.apply(transform, self.centre_mm)
        n = np.maximum(2, np.round(self.box_mm / self.grid_mm).astype(int))
        ext = int(round(extra_z_mm / self.grid_mm))
        size = [int(n[0]), int(n[1]), int(n[2]) + 2 * ext]
        grid = sitk.Image(size, sitk.sitkUInt8)
        grid.SetSpacing([self.grid_mm] * 3)
        origin = centre - self.grid_mm * (n - 1) / 2.0 - np.array([0.0, 0.0, ext * self.grid_mm])
        grid.SetOrigin([float(v) for v in origin])
        return grid

    def _edges_on(self, image: sitk.Image, grid: sitk.Image,
                  transform: sitk.Transform) -> tuple[FloatArray, BoolArray]:
        """The gradient magnitude of ``image`` on ``grid`` (central differences: the bin-shrink
        and the interpolation have smoothed it) and where it is free of the image's own edge."""
        out = sitk.Resample(image, grid, transform, sitk.sitkLinear, OUTSIDE, sitk.sitkFloat32)
        values = np.asarray(sitk.GetArrayViewFromImage(out), dtype=np.float64)
        inside = values > OUTSIDE / 2
        values = np.where(inside, values, AIR_HU)
        gz, gy, gx = np.gradient(values, self.grid_mm)
        return np.sqrt(gx * gx + gy * gy + gz * gz), _erode(inside, 1)

    def _fixed_on(self, transform: FloatArray) -> tuple[FloatArray, BoolArray]:
        grid = self._grid(transform, 0.0)
        to_cbct = _sitk_transform(geometry.invert_rigid(transform))
        edges, kept = self._edges_on(self.fixed, grid, to_cbct)
        fov = sitk.Resample(self.fixed_valid, grid, to_cbct, sitk.sitkNearestNeighbor, 0)
        radius = max(1, int(round(EDGE_EROSION_MM / self.grid_mm)))
        return edges, kept & _erode(np.asarray(sitk.GetArrayViewFromImage(fov)) > 0, radius)

    def _moving_on(self, transform: FloatArray,
                   extra_z_mm: float) -> tuple[FloatArray, BoolArray]:
        return self._edges_on(self.moving, self._grid(transform, extra_z_mm), sitk.Transform())

    def score(self, transform: FloatArray) -> float | None:
        """The score at ``transform`` (CBCT point -> planning point); None when the images share
        fewer than :data:`MIN_VOXELS` grid voxels."""
        value = float(self.profile(transform, range_mm=0.0).scores[0])
        return value if np.isfinite(value) else None

    def profile(self, transform: FloatArray, *,
                range_mm: float = PROFILE_RANGE_MM) -> Profile:
        """The score with the planning CT moved along LPS z, every grid step up to ``range_mm``
        either way."""
        a, valid = self._fixed_on(transform)
        ext = int(round(range_mm / self.grid_mm))
        b, inside = self._moving_on(transform, ext * self.grid_mm)
        nz = a.shape[0]
        offsets = np.arange(-ext, ext + 1, dtype=np.float64) * self.grid_mm
        scores = np.full(offsets.shape, np.nan)
        for n, k in enumerate(range(-ext, ext + 1)):
            bb = b[ext + k: ext + k + nz]
            v = valid & inside[ext + k: ext + k + nz]
            if int(v.sum()) >= MIN_VOXELS:
                scores[n] = _ncc(a[v], bb[v])
        return Profile(offsets, scores)


def comparer(fixed: Volume, fixed_mask: BoolArray | None, moving: Volume, centre_mm: FloatArray,
             transform: FloatArray, box_mm: FloatArray, *, grid_mm: float = GRID_MM,
             range_mm: float = PROFILE_RANGE_MM) -> Comparer:
    """Prepare the two images of a registration: the CBCT box ``fixed`` (with its field-of-view
    mask; ``centre_mm`` is the box centre, CBCT coordinates) and the planning CT ``moving``, cut
    where ``transform`` (CBCT point -> planning point) maps the box, ``range_mm`` further along
    the long axis and a margin for rotation around."""
    box = np.asarray(box_mm, dtype=np.float64)
    shrunk = _shrunk(to_sitk(fixed))
    if fixed_mask is not None:
        fov = sitk.Resample(mask_to_sitk(fixed_mask, fixed), shrunk, sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0)
    else:
        fov = sitk.Image(shrunk.GetSize(), sitk.sitkUInt8) + 1
        fov.CopyInformation(shrunk)
    centre = np.asarray(centre_mm, dtype=np.float64)
    reach = box + 2 * (MOVING_MARGIN_MM + grid_mm) + np.array([0.0, 0.0, 2 * range_mm])
    cut = region.crop(moving, region.index_box(moving, geometry.apply(transform, centre), reach))
    return Comparer(shrunk, sitk.Cast(fov, sitk.sitkUInt8), _shrunk(to_sitk(cut)), centre, box,
                    grid_mm)


def _shrunk(image: sitk.Image) -> sitk.Image:
    factors = [max(1, int(round(WORK_MM / s))) for s in image.GetSpacing()]
    image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def _erode(mask: BoolArray, radius: int) -> BoolArray:
    """``mask`` less every voxel within ``radius`` voxels (a cube) of its outside or the grid's
    edge."""
    out = np.array(mask, dtype=bool)
    for axis in range(3):
        for _ in range(radius):
            shrunk = np.zeros_like(out)
            inner = [slice(None)] * 3
            inner[axis] = slice(1, -1)
            lo, hi = list(inner), list(inner)
            lo[axis], hi[axis] = slice(0, -2), slice(2, None)
            shrunk[tuple(inner)] = out[tuple(inner)] & out[tuple(lo)] & out[tuple(hi)]
            out = shrunk
    return out


def _sitk_transform(matrix: FloatArray) -> sitk.AffineTransform:
    t = sitk.AffineTransform(3)
    t.SetMatrix([float(v) for v in matrix[:3, :3].ravel()])
    t.SetTranslation([float(v) for v in matrix[:3, 3]])
    return t


def _ncc(a: FloatArray, b: FloatArray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0



def shifted(transform: FloatArray, offset_mm: float) -> FloatArray:
    """``transform`` followed by a move of ``offset_mm`` along the planning CT's LPS z: the
    profile's alternative at that offset."""
    out = np.array(transform, dtype=np.float64)
    out[2, 3] += offset_mm
    return out
