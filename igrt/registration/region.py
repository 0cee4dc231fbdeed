"""Where the metric is evaluated: the box around the isocentre, the CBCT's real field of view,
and the patient's body in the planning CT (which leaves the CT couch out).

numpy and scipy.ndimage only; all inputs and outputs are arrays on a Volume's voxel grid.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from igrt.core.types import BoolArray
from igrt.core.volume import Volume

#: HU above which a voxel counts as patient (or couch) when finding the body.
BODY_THRESHOLD_HU = -350.0


def index_box(volume: Volume, center_mm: npt.ArrayLike, size_mm: npt.ArrayLike,
              *, margin_vox: int = 1) -> tuple[slice, slice, slice]:
    """Voxel slices ``[k, j, i]`` of the smallest index box holding an LPS-aligned box of
    ``size_mm`` centred on ``center_mm``, clipped to the volume (may be empty)."""
    half = np.asarray(size_mm, dtype=np.float64) / 2.0
    c = np.asarray(center_mm, dtype=np.float64)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    idx = volume.point_to_index(c + corners * half)
    lo = np.floor(idx.min(axis=0)).astype(int) - margin_vox
    hi = np.ceil(idx.max(axis=0)).astype(int) + margin_vox + 1
    shape = volume.shape_ijk
    lo = np.clip(lo, 0, shape)
    hi = np.clip(hi, 0, shape)
    return (slice(int(lo[2]), int(hi[2])), slice(int(lo[1]), int(hi[1])),
            slice(int(lo[0]), int(hi[0])))


def crop(volume: Volume, box: tuple[slice, slice, slice]) -> Volume:
    """The sub-volume ``voxels[box]`` with its origin moved accordingly."""
    start = (box[2].start, box[1].start, box[0].start)
    origin = volume.index_to_point_mm(start)
    return Volume(
        voxels=np.ascontiguousarray(volume.voxels[box]),
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        spacing_mm=volume.spacing_mm,
        direction=volume.direction,
    )


def inside_box(volume: Volume, center_mm: npt.ArrayLike, size_mm: npt.ArrayLike) -> BoolArray:
    """Voxels whose centre lies inside the LPS-aligned box."""
    nk, nj, ni = volume.voxels.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    pts = volume.index_to_point_mm(np.stack([i, j, k], axis=-1))
    d = np.abs(pts - np.asarray(center_mm)) <= np.asarray(size_mm) / 2.0
    return np.asarray(d.all(axis=-1))


def detect_padding(volume: Volume, *, min_corner_fraction: float = 0.95) -> BoolArray | None:
    """Voxels holding a constant padding value, when the file did not declare one.

    A CBCT reconstructed in a cylinder writes one constant outside it. If at least
    ``min_corner_fraction`` of the slice corners hold the volume's minimum, that value is taken
    as padding; otherwise there is none (``None``).
    """
    v = volume.voxels
    corners = np.concatenate([v[:, 0, 0], v[:, 0, -1], v[:, -1, 0], v[:, -1, -1]])
    lowest = float(v.min())
    if np.mean(corners == lowest) < min_corner_fraction:
        return None
    return np.asarray(v == lowest)


def field_of_view(volume: Volume, padding: BoolArray | None, *, erode_mm: float = 4.0,
                  min_slice_fraction: float = 0.5) -> BoolArray:
    """The reconstructed field of view of a CBCT: a cylinder along the slice axis.

    The disc is the area of the in-plane region that is not padding in any slice (its centroid
    and the radius of a disc of equal area, so isolated clipped voxels inside do not punch holes);
    slices where less than ``min_slice_fraction`` of the disc is real data are left out, as are
    ``erode_mm`` at the rim and at both ends, where cone-beam reconstructions are least reliable.
    """
    nk, nj, ni = volume.voxels.shape
    if padding is None:
        return np.ones(volume.voxels.shape, dtype=bool)
    real = ~padding
    covered = real.any(axis=0)
    if not covered.any():
        return np.zeros(volume.voxels.shape, dtype=bool)
    sx, sy, sz = volume.spacing_mm
    jj, ii = np.nonzero(covered)
    cj, ci = jj.mean(), ii.mean()
    radius_mm = np.sqrt(covered.sum() * sx * sy / np.pi) - erode_mm
    j, i = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    disc = ((i - ci) * sx) ** 2 + ((j - cj) * sy) ** 2 <= max(radius_mm, 0.0) ** 2
    fraction = (real & disc).sum(axis=(1, 2)) / max(int(disc.sum()), 1)
    good = fraction >= min_slice_fraction
    trim = int(np.ceil(erode_mm / sz))
    if trim and good.any():
        good = ndimage.binary_erosion(good, iterations=trim, border_value=0)
    return np.asarray(good[:, None, None] & disc[None, :, :])


def body_mask(volume: Volume, *, down_lps: npt.ArrayLike | None = None,
              threshold_hu: float = BODY_THRESHOLD_HU, opening_mm: float = 6.0,
              margin_mm: float = 10.0) -> BoolArray:
    """The patient in a planning CT, without the CT couch, grown by ``margin_mm``.

    Threshold, an in-plane opening that removes thin shells (couch tops, immobilisation masks,
    cables), the largest connected component, holes filled per slice, then a margin so the skin
    edge takes part in the metric. The margin does not grow toward ``down_lps`` (the couch side,
    room vertical-down): the patient lies on the couch, and the planning CT's couch differs from
    the treatment couch, which is fixed in the room and must not pull the result.
    """
    sx, sy, _ = volume.spacing_mm
    dense = volume.voxels > threshold_hu
    r = max(1, int(round(opening_mm / 2.0 / min(sx, sy))))
    disk = _disk(r)[None, :, :]
    opened = ndimage.binary_opening(dense, structure=disk)
    labels, n = ndimage.label(opened)
    if n == 0:
        return np.zeros(volume.voxels.shape, dtype=bool)
    sizes = ndimage.sum_labels(opened, labels, index=np.arange(1, n + 1))
    body = labels == (int(np.argmax(sizes)) + 1)
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    grow = max(1, int(round(margin_mm / min(sx, sy))))
    element = _disk(grow)
    if down_lps is not None:
        element = _without_side(element, volume.direction, np.asarray(down_lps, dtype=float))
    grown = ndimage.binary_dilation(body, structure=element[None, :, :])
    return np.asarray(grown)


def _without_side(element: npt.NDArray[np.bool_], direction: npt.NDArray[np.float64],
                  down_lps: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The in-plane structuring element with the offsets pointing toward ``down_lps`` removed
    (a structuring element's offsets are the directions a dilation grows in)."""
    r = element.shape[0] // 2
    jj, ii = np.mgrid[-r:r + 1, -r:r + 1]
    toward = ii * float(direction[:, 0] @ down_lps) + jj * float(direction[:, 1] @ down_lps)
    return np.asarray(element & (toward <= 1e-9))


def _disk(radius: int) -> npt.NDArray[np.bool_]:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return np.asarray(x * x + y * y <= radius * radius)


def subsample(volume: Volume, step: int) -> Volume:
    """Every ``step``-th voxel in-plane (for cheap masks on large planning CTs)."""
    if step <= 1:
        return volume
    sx, sy, sz = volume.spacing_mm
    return Volume(
        voxels=np.ascontiguousarray(volume.voxels[:, ::step, ::step]),
        origin_mm=volume.origin_mm,
        spacing_mm=(sx * step, sy * step, sz),
        direction=volume.direction,
    )
