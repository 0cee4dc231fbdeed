"""Trilinear sampling of a volume at LPS points (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from igrt.core.types import BoolArray, Float32Array
from igrt.core.volume import Volume


def sample(volume: Volume, points_mm: npt.ArrayLike, *,
           outside: BoolArray | None = None) -> Float32Array:
    """Values at ``(..., 3)`` LPS points, trilinear; NaN outside the volume and, when
    ``outside`` (a mask on the volume's grid, e.g. CBCT padding) is given, where the nearest
    voxel is outside the reconstructed field of view. In float32, from flat indices: the eight
    neighbours are gathered from the voxels in memory order and interpolated along i, j, k."""
    pts = np.asarray(points_mm, dtype=np.float64)
    shape = pts.shape[:-1]
    ijk = volume.point_to_index(pts.reshape(-1, 3))
    nk, nj, ni = volume.voxels.shape
    size = np.array([ni, nj, nk], dtype=np.int64)
    inside = np.all((ijk >= 0) & (ijk <= size - 1), axis=1)
    base = np.floor(np.clip(ijk, 0, size - 1)).astype(np.int64)
    base = np.minimum(base, np.maximum(size - 2, 0))
    frac = np.clip(ijk - base, 0.0, 1.0).astype(np.float32)
    flat = np.ascontiguousarray(volume.voxels, dtype=np.float32).ravel()
    memory = np.array([1, ni, ni * nj], dtype=np.int64)
    step = memory * (size > 1)  # along an axis of one voxel the neighbour is the voxel itself
    first = base @ memory

    def along_i(offset: np.int64 | int) -> Float32Array:
        low = flat.take(first + offset)
        return low + (flat.take(first + offset + step[0]) - low) * frac[:, 0]

    def along_ij(offset: np.int64 | int) -> Float32Array:
        low = along_i(offset)
        return low + (along_i(offset + step[1]) - low) * frac[:, 1]

    low = along_ij(0)
    out = low + (along_ij(step[2]) - low) * frac[:, 2]
    if outside is not None:
        if outside.shape != volume.voxels.shape:
            raise ValueError(f"the mask's shape {outside.shape} is not the volume's "
                             f"{volume.voxels.shape}")
        near = np.rint(np.clip(ijk, 0, size - 1)).astype(np.int64)
        inside &= ~outside.ravel().take(near @ memory)
    out[~inside] = np.nan
    return out.reshape(shape)
