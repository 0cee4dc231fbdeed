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
    voxel is outside the reconstructed field of view."""
    pts = np.asarray(points_mm, dtype=np.float64)
    shape = pts.shape[:-1]
    ijk = volume.point_to_index(pts.reshape(-1, 3))
    nk, nj, ni = volume.voxels.shape
    size = np.array([ni, nj, nk], dtype=np.float64)
    inside = np.all((ijk >= 0) & (ijk <= size - 1), axis=1)
    base = np.floor(np.clip(ijk, 0, size - 1)).astype(np.int64)
    base = np.minimum(base, np.maximum(size.astype(np.int64) - 2, 0))
    frac = np.clip(ijk - base, 0.0, 1.0)
    v = volume.voxels
    out = np.zeros(len(ijk), dtype=np.float64)
    for di in (0, 1):
        wi = frac[:, 0] if di else 1.0 - frac[:, 0]
        i = np.minimum(base[:, 0] + di, ni - 1)
        for dj in (0, 1):
            wj = frac[:, 1] if dj else 1.0 - frac[:, 1]
            j = np.minimum(base[:, 1] + dj, nj - 1)
            for dk in (0, 1):
                wk = frac[:, 2] if dk else 1.0 - frac[:, 2]
                k = np.minimum(base[:, 2] + dk, nk - 1)
                out += wi * wj * wk * v[k, j, i]
    if outside is not None:
        near = np.rint(np.clip(ijk, 0, size - 1)).astype(np.int64)
        inside &= ~outside[near[:, 2], near[:, 1], near[:, 0]]
    out[~inside] = np.nan
    return out.reshape(shape).astype(np.float32)
