"""A 3-D image with its physical geometry in DICOM patient coordinates (LPS, mm). numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from igrt.core.types import FloatArray


@dataclass(frozen=True)
class Volume:
    """Voxels indexed ``[k, j, i]`` (slice, row, column), values in HU (float32).

    ``origin_mm`` is the LPS position of the centre of voxel ``[0, 0, 0]``; ``spacing_mm`` is
    ``(column, row, slice)`` spacing; ``direction`` is a 3x3 matrix whose columns are the LPS unit
    vectors of the column (i), row (j) and slice (k) index axes. This is the ITK convention, so
    ``index -> point`` is ``origin + direction @ (spacing * (i, j, k))``.
    """

    voxels: npt.NDArray[np.float32]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: FloatArray = field(default_factory=lambda: np.eye(3))

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        nk, nj, ni = self.voxels.shape
        return (ni, nj, nk)

    def index_to_point_mm(self, ijk: npt.ArrayLike) -> FloatArray:
        """LPS positions of (..., 3) continuous indices ``(i, j, k)``."""
        idx = np.asarray(ijk, dtype=np.float64)
        scaled = idx * np.asarray(self.spacing_mm)
        return np.asarray(self.origin_mm) + scaled @ self.direction.T

    def point_to_index(self, points_mm: npt.ArrayLike) -> FloatArray:
        """Continuous ``(i, j, k)`` indices of (..., 3) LPS points."""
        p = np.asarray(points_mm, dtype=np.float64) - np.asarray(self.origin_mm)
        return (p @ self.direction) / np.asarray(self.spacing_mm)

    def center_mm(self) -> FloatArray:
        """LPS position of the geometric centre of the voxel grid."""
        ni, nj, nk = self.shape_ijk
        return self.index_to_point_mm(((ni - 1) / 2.0, (nj - 1) / 2.0, (nk - 1) / 2.0))


def index_box(origin_mm: npt.ArrayLike, spacing_mm: npt.ArrayLike, direction: npt.ArrayLike,
              size_ijk: tuple[int, int, int], center_mm: npt.ArrayLike, size_mm: npt.ArrayLike,
              *, margin_vox: int = 1) -> tuple[slice, slice, slice]:
    """Voxel slices ``[k, j, i]`` of the smallest index box of a grid holding an LPS-aligned box
    of ``size_mm`` centred on ``center_mm`` (plus ``margin_vox``), clipped to the grid (may be
    empty)."""
    half = np.asarray(size_mm, dtype=np.float64) / 2.0
    c = np.asarray(center_mm, dtype=np.float64)
    corners = c + np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                            for sz in (-1, 1)]) * half
    d = np.asarray(direction, dtype=np.float64)
    idx = ((corners - np.asarray(origin_mm, dtype=np.float64)) @ d) / np.asarray(spacing_mm)
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int) - margin_vox, 0, size_ijk)
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + margin_vox + 1, 0, size_ijk)
    return (slice(int(lo[2]), int(hi[2])), slice(int(lo[1]), int(hi[1])),
            slice(int(lo[0]), int(hi[0])))
