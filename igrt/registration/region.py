"""Where the metric is evaluated: the box around the isocentre, the CBCT's real field of view,
and the patient's body in the planning CT (which leaves the CT couch out).

numpy, plus SimpleITK for the two steps numpy cannot do well (connected components, hole
filling); all inputs and outputs are arrays on a Volume's voxel grid. Every step is vectorised:
the box is separable along the index axes and the in-plane morphology is a union (or
intersection) of shifted copies.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from igrt.core.types import BoolArray
from igrt.core.volume import Volume
from igrt.core.volume import index_box as volume_box

#: HU above which a voxel counts as patient (or couch) when finding the body.
BODY_THRESHOLD_HU = -350.0
#: In-plane voxel size (mm) the body is found on (a planning CT finer than this is subsampled).
BODY_GRID_MM = 2.0

Offsets = list[tuple[int, int]]


def index_box(volume: Volume, center_mm: npt.ArrayLike, size_mm: npt.ArrayLike,
              *, margin_vox: int = 1) -> tuple[slice, slice, slice]:
    """Voxel slices ``[k, j, i]`` of the smallest index box holding an LPS-aligned box of
    ``size_mm`` centred on ``center_mm``, clipped to the volume (may be empty)."""
    return volume_box(volume.origin_mm, volume.spacing_mm, volume.direction, volume.shape_ijk,
                      center_mm, size_mm, margin_vox=margin_vox)


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
    """Voxels whose centre lies inside the LPS-aligned box.

    A voxel's LPS position is ``origin + i·a + j·b + k·c`` (``a, b, c`` the scaled direction
    columns), so each LPS coordinate is a sum of three 1-D terms: the test is built from
    broadcast 1-D arrays, never from an array of points."""
    nk, nj, ni = volume.voxels.shape
    offset = np.asarray(volume.origin_mm, dtype=np.float64) - np.asarray(center_mm, dtype=float)
    half = np.asarray(size_mm, dtype=np.float64) / 2.0
    axes = np.asarray(volume.direction, dtype=np.float64) * np.asarray(volume.spacing_mm)
    i = np.arange(ni, dtype=np.float64)
    j = np.arange(nj, dtype=np.float64)
    k = np.arange(nk, dtype=np.float64)
    inside = np.ones(volume.voxels.shape, dtype=bool)
    for lps in range(3):
        a, b, c = axes[lps]
        # the 1-D terms are exact in float64; their (small) sums are compared in float32
        ti = (offset[lps] + i * a).astype(np.float32)[None, None, :]
        tj = (j * b).astype(np.float32)[None, :, None]
        tk = (k * c).astype(np.float32)[:, None, None]
        inside &= np.abs((tk + tj) + ti) <= np.float32(half[lps])
    return inside


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
                  min_slice_fraction: float = 0.5,
                  within: tuple[slice, slice, slice] | None = None) -> BoolArray:
    """The reconstructed field of view of a CBCT: a cylinder along the slice axis.

    The disc is the area of the in-plane region that is not padding in any slice (its centroid
    and the radius of a disc of equal area, so isolated clipped voxels inside do not punch holes);
    slices where less than ``min_slice_fraction`` of the disc is real data are left out, as are
    ``erode_mm`` at the rim and at both ends, where cone-beam reconstructions are least reliable.
    ``within`` (index slices k, j, i, steps of 1): only that box of it, the same voxels as the
    whole one cut there (only the slices the box and the end trim reach are counted).
    """
    nk, nj, ni = volume.voxels.shape
    box = within or (slice(0, nk), slice(0, nj), slice(0, ni))
    k0, k1, _ = box[0].indices(nk)
    if padding is None:
        return np.ones(volume.voxels[box].shape, dtype=bool)
    covered = ~padding.all(axis=0)
    if not covered.any():
        return np.zeros(volume.voxels[box].shape, dtype=bool)
    sx, sy, sz = volume.spacing_mm
    jj, ii = np.nonzero(covered)
    cj, ci = jj.mean(), ii.mean()
    radius_mm = np.sqrt(covered.sum() * sx * sy / np.pi) - erode_mm
    di = ((np.arange(ni) - ci) * sx) ** 2
    dj = ((np.arange(nj) - cj) * sy) ** 2
    disc = dj[:, None] + di[None, :] <= max(radius_mm, 0.0) ** 2
    trim = int(np.ceil(erode_mm / sz))
    # the slices counted: the box's and those within the end trim of it (beyond the volume's
    # ends counts as not good, as it does for the whole volume)
    first, last = max(k0 - trim, 0), min(k1 + trim, nk)
    padded_in_disc = np.count_nonzero(padding[first:last] & disc, axis=(1, 2))
    n_disc = int(disc.sum())
    fraction = (n_disc - padded_in_disc) / max(n_disc, 1)
    good = fraction >= min_slice_fraction
    if trim and good.any():
        good = _erode_1d(good, trim)
    return np.asarray(good[k0 - first:k1 - first, None, None] & disc[None, box[1], box[2]])


def _erode_1d(good: npt.NDArray[np.bool_], trim: int) -> npt.NDArray[np.bool_]:
    """Binary erosion of a 1-D mask by ``trim`` on each side (outside the array counts as
    False): a run of True loses ``trim`` elements at each end."""
    padded = np.concatenate([np.zeros(trim, bool), good, np.zeros(trim, bool)])
    count = np.convolve(padded.astype(np.int32), np.ones(2 * trim + 1, np.int32), mode="valid")
    return np.asarray(count == 2 * trim + 1)


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
    disk = _disk_offsets(r)
    body = _largest_component(_dilate(_erode(dense, disk), disk))
    if body is None:
        return np.zeros(volume.voxels.shape, dtype=bool)
    body = _fill_holes_per_slice(body)
    grow = _disk_offsets(max(1, int(round(margin_mm / min(sx, sy)))))
    if down_lps is not None:
        grow = _without_side(grow, volume.direction, np.asarray(down_lps, dtype=float))
    return _dilate(body, grow)


def coarse_body_mask(volume: Volume, *, down_lps: npt.ArrayLike | None = None) -> BoolArray:
    """:func:`body_mask` found on every n-th voxel in-plane (about :data:`BODY_GRID_MM`; the
    10 mm margin makes a finer grid pointless) and brought back to the full grid."""
    sx, sy, _ = volume.spacing_mm
    step = max(1, int(round(BODY_GRID_MM / min(sx, sy))))
    coarse = body_mask(subsample(volume, step), down_lps=down_lps)
    if step == 1:
        return coarse
    full = np.repeat(np.repeat(coarse, step, axis=1), step, axis=2)
    return np.ascontiguousarray(full[:, :volume.voxels.shape[1], :volume.voxels.shape[2]])


def _disk_offsets(radius: int) -> Offsets:
    """In-plane offsets ``(dj, di)`` of a disc of ``radius`` voxels."""
    return [(dj, di) for dj in range(-radius, radius + 1) for di in range(-radius, radius + 1)
            if dj * dj + di * di <= radius * radius]


def _without_side(offsets: Offsets, direction: npt.NDArray[np.float64],
                  down_lps: npt.NDArray[np.float64]) -> Offsets:
    """The offsets that do not point toward ``down_lps`` (a dilation grows along its offsets)."""
    toward_i = float(direction[:, 0] @ down_lps)
    toward_j = float(direction[:, 1] @ down_lps)
    return [(dj, di) for dj, di in offsets if di * toward_i + dj * toward_j <= 1e-9]


def _shifted(mask: BoolArray, dj: int, di: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index pairs such that ``out[dst] = mask[src]`` moves the mask by ``(dj, di)``."""
    nj, ni = mask.shape[1:]

    def pair(d: int, n: int) -> tuple[slice, slice]:
        return (slice(d, n), slice(0, n - d)) if d >= 0 else (slice(0, n + d), slice(-d, n))

    (dst_j, src_j), (dst_i, src_i) = pair(dj, nj), pair(di, ni)
    return (slice(None), dst_j, dst_i), (slice(None), src_j, src_i)


def _dilate(mask: BoolArray, offsets: Offsets) -> BoolArray:
    """Union of the mask moved by every offset (outside the grid counts as False)."""
    out = np.zeros_like(mask)
    for dj, di in offsets:
        dst, src = _shifted(mask, dj, di)
        out[dst] |= mask[src]
    return out


def _erode(mask: BoolArray, offsets: Offsets) -> BoolArray:
    """Voxels whose every offset neighbour is set (outside the grid counts as False)."""
    out = mask.copy()
    for dj, di in offsets:
        dst, src = _shifted(mask, -dj, -di)
        moved = np.zeros_like(mask)
        moved[dst] = mask[src]
        out &= moved
    return out


def _largest_component(mask: BoolArray) -> BoolArray | None:
    """The largest face-connected component, or None when the mask is empty."""
    if not mask.any():
        return None
    labels = sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), False),
        sortByObjectSize=True)
    return np.asarray(sitk.GetArrayViewFromImage(labels) == 1)


def _fill_holes_per_slice(mask: BoolArray) -> BoolArray:
    """Holes filled in each slice separately (a hole is background not face-connected in-plane
    to the slice's edge). The background's connected components are labelled once over the
    slices interleaved with empty separator slices (which stop any connection across slices);
    a component that touches no in-plane edge is a hole. (The same result as ITK's
    BinaryFillhole per slice, without its morphological reconstruction, which took seconds on
    a noisy mask.)"""
    nk = mask.shape[0]
    stacked = np.zeros((2 * nk + 1, *mask.shape[1:]), dtype=np.uint8)
    stacked[1::2] = ~mask
    labels = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(stacked), False))[1::2]
    edges = np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    outside = np.zeros(int(labels.max()) + 1, dtype=bool)
    outside[edges] = True
    outside[0] = False  # label 0: the mask itself
    return np.asarray(~outside[labels])


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
