"""Rasterising planar polygons onto a voxel grid. numpy only.

Coordinates here are continuous grid indices: a polygon's ``x`` is the column index and ``y`` the
row index of a 2-D grid whose pixel centres sit at integer coordinates (the convention of
:meth:`igrt.core.volume.Volume.point_to_index`). A pixel belongs to a polygon when its *centre* is
inside it by the even-odd rule. Centres exactly on an edge follow the half-open rule of the
crossing test (inside on the edges of larger x and smaller y, outside on the others), so that two
polygons sharing an edge never both claim a centre on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from igrt.core.types import BoolArray, FloatArray, IntArray


def fill_polygons(polygons: Sequence[npt.ArrayLike], shape: tuple[int, int]) -> BoolArray:
    """Even-odd fill of closed polygons on a ``(rows, columns)`` grid.

    Each polygon is an ``(N, 2)`` array of ``(x, y)`` = (column, row) vertices; the last vertex
    joins the first. Polygons are combined by the even-odd rule as a whole, i.e. by XOR: a
    polygon inside another is a hole, two disjoint polygons are two islands. Parts outside the
    grid are clipped. Fewer than three vertices fill nothing.

    Scanline algorithm, vectorised: every edge crossing a row's centre line at ``x_c`` toggles
    the parity of all pixels with column ``> x_c`` in that row; a cumulative sum along the row
    then gives the parity of each pixel.
    """
    n_rows, n_cols = shape
    rows_list: list[IntArray] = []
    cols_list: list[IntArray] = []
    for polygon in polygons:
        v = np.asarray(polygon, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(f"a polygon must be an (N, 2) array of vertices, not {v.shape}")
        if len(v) < 3:
            continue
        rows, cols = _edge_crossings(v, n_rows, n_cols)
        rows_list.append(rows)
        cols_list.append(cols)
    if not rows_list or n_rows == 0 or n_cols == 0:
        return np.zeros((n_rows, n_cols), dtype=bool)
    rows = np.concatenate(rows_list)
    cols = np.concatenate(cols_list)
    width = n_cols + 1  # column n_cols collects crossings right of the grid (affect nothing)
    toggles = np.bincount(rows * width + cols, minlength=n_rows * width).reshape(n_rows, width)
    parity = np.cumsum(toggles, axis=1)[:, :n_cols] % 2
    return np.asarray(parity == 1)


def _edge_crossings(v: FloatArray, n_rows: int, n_cols: int) -> tuple[IntArray, IntArray]:
    """Rows and first toggled columns of every (edge, row centre line) crossing of a polygon.

    An edge from ``y0`` to ``y1`` crosses the centre line of row ``r`` when
    ``(y0 > r) != (y1 > r)``, i.e. ``min(y0, y1) <= r < max(y0, y1)`` (half-open, so a vertex
    on a centre line is counted once and horizontal edges never).
    """
    x0, y0 = v[:, 0], v[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    first = np.maximum(np.ceil(np.minimum(y0, y1)), 0).astype(np.int64)
    stop = np.minimum(np.ceil(np.maximum(y0, y1)), n_rows).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    total = int(counts.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    edge = np.repeat(np.arange(len(v)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + offset
    # counts > 0 implies y0 != y1 for that edge, so the division is safe.
    t = (rows - y0[edge]) / (y1[edge] - y0[edge])
    x_cross = x0[edge] + t * (x1[edge] - x0[edge])
    cols = np.clip(np.floor(x_cross).astype(np.int64) + 1, 0, n_cols)
    return rows, cols


def group_positions(positions: npt.ArrayLike, *, tolerance: float) -> tuple[FloatArray, IntArray]:
    """Cluster 1-D positions that lie within ``tolerance`` of their sorted neighbour.

    Returns the sorted cluster means and, for every input position, the index of its cluster.
    """
    p = np.asarray(positions, dtype=np.float64).ravel()
    if len(p) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    breaks = np.diff(p[order]) > tolerance
    sorted_labels = np.concatenate([[0], np.cumsum(breaks)]).astype(np.int64)
    labels = np.empty(len(p), dtype=np.int64)
    labels[order] = sorted_labels
    n = int(sorted_labels[-1]) + 1
    means = np.bincount(labels, weights=p, minlength=n) / np.bincount(labels, minlength=n)
    return means, labels


def nearest_planes(
    plane_positions: npt.ArrayLike, slice_positions: npt.ArrayLike, *, half_thickness: float
) -> IntArray:
    """For each slice position, the index of the nearest plane within ``half_thickness``
    (inclusive), or ``-1`` when no plane is that close. Ties go to the first plane listed."""
    planes = np.asarray(plane_positions, dtype=np.float64).ravel()
    slices = np.asarray(slice_positions, dtype=np.float64).ravel()
    if len(planes) == 0:
        return np.full(len(slices), -1, dtype=np.int64)
    distance = np.abs(slices[:, None] - planes[None, :])
    nearest = np.argmin(distance, axis=1).astype(np.int64)
    close = distance[np.arange(len(slices)), nearest] <= half_thickness
    return np.where(close, nearest, -1).astype(np.int64)


def min_gap(positions: npt.ArrayLike) -> float | None:
    """Smallest distance between consecutive distinct sorted positions (None if fewer than two)."""
    p = np.unique(np.asarray(positions, dtype=np.float64))
    if len(p) < 2:
        return None
    return float(np.min(np.diff(p)))
