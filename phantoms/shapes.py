"""Painting soft-edged primitives into an LPS-aligned voxel canvas (numpy, vectorised).

A :class:`Canvas` is a float32 array indexed ``[k, j, i]`` = ``[z, y, x]`` on an axis-aligned grid
(identity direction). Every primitive is evaluated only inside its bounding box, as an approximate
signed distance ``d`` (mm, negative inside) turned into a partial-volume weight
``alpha = clip(0.5 - d / edge_mm, 0, 1)``; painting blends ``v += alpha * (value - v)``, so later
primitives cover earlier ones (anatomy is built by layering).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64

Region = tuple[slice, slice, slice]
ZFunction = Callable[[F32], npt.NDArray[np.floating]]

_EPS = 1e-6


@dataclass(frozen=True)
class Canvas:
    """An LPS-aligned grid: ``point(i, j, k) = origin + spacing * (i, j, k)``."""

    values: F32
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    edge_mm: float

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        nz, ny, nx = self.values.shape
        return (nz, ny, nx)

    def axis_coords(self, axis: int, sl: slice | None = None) -> F64:
        """1-D coordinates (mm) of axis 0=x, 1=y, 2=z, optionally restricted to ``sl``."""
        n = self.values.shape[2 - axis]
        idx = np.arange(n, dtype=np.float64)
        if sl is not None:
            idx = idx[sl]
        return self.origin_mm[axis] + self.spacing_mm[axis] * idx

    def region(self, lo_mm: npt.ArrayLike, hi_mm: npt.ArrayLike) -> Region | None:
        """Index slices ``[z, y, x]`` covering the box ``[lo, hi]`` (plus the soft edge)."""
        lo = np.asarray(lo_mm, dtype=np.float64) - self.edge_mm
        hi = np.asarray(hi_mm, dtype=np.float64) + self.edge_mm
        slices: list[slice] = []
        for axis in (2, 1, 0):
            n = self.values.shape[2 - axis]
            a = int(np.floor((lo[axis] - self.origin_mm[axis]) / self.spacing_mm[axis]))
            b = int(np.ceil((hi[axis] - self.origin_mm[axis]) / self.spacing_mm[axis])) + 1
            a, b = max(a, 0), min(b, n)
            if a >= b:
                return None
            slices.append(slice(a, b))
        return (slices[0], slices[1], slices[2])

    def grid(self, region: Region) -> tuple[F32, F32, F32]:
        """Broadcastable float32 coordinates ``x (1,1,nx)``, ``y (1,ny,1)``, ``z (nz,1,1)``
        of a region (float32 keeps the 3-D temporaries of the primitives small)."""
        zs, ys, xs = region
        x = self.axis_coords(0, xs).astype(np.float32)[None, None, :]
        y = self.axis_coords(1, ys).astype(np.float32)[None, :, None]
        z = self.axis_coords(2, zs).astype(np.float32)[:, None, None]
        return x, y, z

    @property
    def z_scale(self) -> float:
        """Factor turning a distance along z into an in-plane-equivalent distance, so that edges
        across slices blur over one slice thickness (partial volume of thick slices)."""
        return self.edge_mm / self.spacing_mm[2]

    def alpha(self, distance_mm: npt.NDArray[np.floating]) -> F32:
        a = np.clip(0.5 - distance_mm / self.edge_mm, 0.0, 1.0)
        return np.asarray(a, dtype=np.float32)

    def paint(self, region: Region, alpha: F32, value: float) -> None:
        block = self.values[region]
        block += alpha * (np.float32(value) - block)

    def add(self, region: Region, amount: F32) -> None:
        self.values[region] += amount


def _rotation(rotation: npt.ArrayLike | None) -> F64:
    return np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)


def _rotated_local(
    canvas: Canvas, region: Region, center: F64, rot: F64
) -> tuple[F32, F32, F32]:
    """Local coordinates ``q = Rᵀ (p - c)`` of a region (three float32 3-D arrays)."""
    x, y, z = canvas.grid(region)
    c32, r32 = center.astype(np.float32), rot.astype(np.float32)
    dx, dy, dz = x - c32[0], y - c32[1], z - c32[2]
    q = [r32[0, i] * dx + r32[1, i] * dy + r32[2, i] * dz for i in range(3)]
    return q[0], q[1], q[2]


# --- primitives: each returns (region, alpha) or None when outside the canvas ---------------------
def ellipsoid(
    canvas: Canvas,
    center_mm: npt.ArrayLike,
    radii_mm: npt.ArrayLike,
    rotation: npt.ArrayLike | None = None,
) -> tuple[Region, F32] | None:
    """Ellipsoid ``|Rᵀ(p-c) / r| <= 1`` (rotation columns are the local axes in LPS)."""
    c = np.asarray(center_mm, dtype=np.float64)
    r = np.asarray(radii_mm, dtype=np.float64)
    rot = _rotation(rotation)
    half = np.sqrt(((rot * r[None, :]) ** 2).sum(axis=1))
    region = canvas.region(c - half, c + half)
    if region is None:
        return None
    r32 = r.astype(np.float32)
    if rotation is None:
        x, y, z = canvas.grid(region)
        c32 = c.astype(np.float32)
        qx, qy, qz = (x - c32[0]) / r32[0], (y - c32[1]) / r32[1], (z - c32[2]) / r32[2]
        g = qx * qx + qy * qy + qz * qz
        zs = np.float32(canvas.z_scale)  # in-plane-equivalent gradient: thick slices blur more
        grad = 2.0 * np.sqrt((qx / r32[0]) ** 2 + (qy / r32[1]) ** 2 + (qz / r32[2] / zs) ** 2)
    else:
        q0, q1, q2 = _rotated_local(canvas, region, c, rot)
        g = (q0 / r32[0]) ** 2 + (q1 / r32[1]) ** 2 + (q2 / r32[2]) ** 2
        grad = 2.0 * np.sqrt(
            (q0 / r32[0] ** 2) ** 2 + (q1 / r32[1] ** 2) ** 2 + (q2 / r32[2] ** 2) ** 2
        )
    return region, canvas.alpha((g - 1.0) / np.maximum(grad, _EPS))


def box(
    canvas: Canvas,
    center_mm: npt.ArrayLike,
    half_mm: npt.ArrayLike,
    rotation: npt.ArrayLike | None = None,
    *,
    corner_radius_mm: float = 0.0,
) -> tuple[Region, F32] | None:
    """Box of half sizes ``half`` (rounded corners optional), rotated about its centre."""
    c = np.asarray(center_mm, dtype=np.float64)
    h = np.asarray(half_mm, dtype=np.float64)
    rot = _rotation(rotation)
    ext = np.abs(rot) @ h
    region = canvas.region(c - ext, c + ext)
    if region is None:
        return None
    q = _rotated_local(canvas, region, c, rot)
    inner = (h - corner_radius_mm).astype(np.float32)
    e = [np.abs(q[i]) - inner[i] for i in range(3)]
    outside = np.sqrt(sum(np.maximum(ei, 0.0) ** 2 for ei in e))
    inside = np.minimum(np.maximum(np.maximum(e[0], e[1]), e[2]), 0.0)
    return region, canvas.alpha(outside + inside - corner_radius_mm)


def tube_z(
    canvas: Canvas,
    *,
    z_range_mm: tuple[float, float],
    center_x: ZFunction | float,
    center_y: ZFunction | float,
    radius_x: ZFunction | float,
    radius_y: ZFunction | float,
    power: float = 2.0,
    max_extent_mm: tuple[float, float, float, float] | None = None,
) -> tuple[Region, F32] | None:
    """Super-elliptic cylinder along z: ``|x-cx|^p/rx^p + |y-cy|^p/ry^p <= 1``, flat ends.

    Centre and radii may be functions of z (arrays in, arrays out). ``max_extent_mm`` is the
    lateral bounding box ``(xmin, xmax, ymin, ymax)``; required when any parameter varies.
    """
    z0, z1 = z_range_mm

    def as_fn(v: ZFunction | float) -> ZFunction:
        if callable(v):
            return v
        return lambda z: np.full_like(z, float(v))

    fx, fy, frx, fry = as_fn(center_x), as_fn(center_y), as_fn(radius_x), as_fn(radius_y)
    if max_extent_mm is None:
        zz = np.array([z0], dtype=np.float32)
        cx, cy, rx, ry = (float(f(zz)[0]) for f in (fx, fy, frx, fry))
        max_extent_mm = (cx - rx, cx + rx, cy - ry, cy + ry)
    xmin, xmax, ymin, ymax = max_extent_mm
    region = canvas.region((xmin, ymin, z0), (xmax, ymax, z1))
    if region is None:
        return None
    x, y, z = canvas.grid(region)
    zf = z[:, 0, 0]
    def column(f: ZFunction) -> F32:
        return np.asarray(f(zf), dtype=np.float32)[:, None, None]

    cx3, cy3, rx3, ry3 = column(fx), column(fy), column(frx), column(fry)
    ax = np.abs(x - cx3) / rx3  # (nz, 1, nx)
    ay = np.abs(y - cy3) / ry3  # (nz, ny, 1)
    if power == 2.0:
        g = ax * ax + ay * ay
        grad = 2.0 * np.sqrt((ax / rx3) ** 2 + (ay / ry3) ** 2)
    else:
        px, py = ax**power, ay**power
        g = px + py
        gx = power * px / np.maximum(ax, _EPS) / rx3
        gy = power * py / np.maximum(ay, _EPS) / ry3
        grad = np.sqrt(gx * gx + gy * gy)
    d_xy = (g - 1.0) / np.maximum(grad, _EPS)
    d_z = np.maximum(np.float32(z0) - z, z - np.float32(z1)) * np.float32(canvas.z_scale)
    return region, canvas.alpha(np.maximum(d_xy, d_z))


def paint(canvas: Canvas, shape: tuple[Region, F32] | None, value: float) -> None:
    """Paint a primitive (no-op when it misses the canvas)."""
    if shape is not None:
        canvas.paint(shape[0], shape[1], value)


def shell(
    canvas: Canvas,
    outer: tuple[Region, F32] | None,
    inner: tuple[Region, F32] | None,
    cortex_hu: float,
    core_hu: float,
) -> None:
    """Bone-like object: a dense shell (``outer``) with a lighter core (``inner``)."""
    paint(canvas, outer, cortex_hu)
    paint(canvas, inner, core_hu)


# --- random fields -------------------------------------------------------------------------------
def smooth_field(
    shape_zyx: tuple[int, int, int],
    origin_mm: npt.ArrayLike,
    spacing_mm: npt.ArrayLike,
    *,
    cell_mm: float,
    rng: np.random.Generator,
) -> F32:
    """Smooth random field of unit standard deviation, correlation length ~``2 * cell_mm``.

    White noise on a coarse grid (``cell_mm``), Gaussian-smoothed and linearly upsampled onto the
    requested grid with SimpleITK (multithreaded).
    """
    origin = np.asarray(origin_mm, dtype=np.float64)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    extent = spacing * (np.array(shape_zyx[::-1]) - 1)
    n_coarse = (np.ceil(extent / cell_mm).astype(int) + 3)[::-1]  # z, y, x
    noise = ndimage.gaussian_filter(rng.standard_normal(tuple(n_coarse)), sigma=1.0, mode="wrap")
    noise /= max(float(noise.std()), _EPS)
    coarse = sitk.GetImageFromArray(noise.astype(np.float32))
    coarse.SetSpacing((cell_mm, cell_mm, cell_mm))
    coarse.SetOrigin(tuple(origin - cell_mm))
    ref = sitk.Image([int(s) for s in shape_zyx[::-1]], sitk.sitkFloat32)
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetSpacing(tuple(float(v) for v in spacing))
    out = sitk.Resample(coarse, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return np.asarray(sitk.GetArrayFromImage(out), dtype=np.float32)


def region_field(
    canvas: Canvas, region: Region, *, cell_mm: float, rng: np.random.Generator
) -> F32:
    """:func:`smooth_field` on a canvas region."""
    x, y, z = canvas.grid(region)
    shape = (z.shape[0], y.shape[1], x.shape[2])
    origin = (float(x.ravel()[0]), float(y.ravel()[0]), float(z.ravel()[0]))
    return smooth_field(shape, origin, canvas.spacing_mm, cell_mm=cell_mm, rng=rng)
