"""The CBCT's cupping, estimated and taken out before registration.

A CBCT is darker towards its rotation axis than at the edge of its field of view (scatter and
beam hardening): tens of HU, smooth, and (about) the same at every angle. On a patient the
anatomy dwarfs it. On a uniform QA phantom it is the largest intensity variation in the box:
mutual information then pairs the CBCT's brighter periphery with planning air and slides the
phantom diagonally off its faces (``sphere_cube`` at full size 16 mm off, and ``unstable``).

The cupping is estimated from the voxels near the box's dominant soft-tissue value (the mode of
its histogram, within :data:`WINDOW_HU`): their median per ring of :data:`RING_MM` about the
CBCT's axis (the line through its in-plane centre along the slice normal, where a CBCT is
reconstructed), fitted with ``a + b r² + c r⁴`` weighted by the rings' counts. The fit, less its
mean over those voxels, is subtracted from every voxel: a function of the radius alone, it moves
no edge. It is not applied where it would change less than :data:`MIN_AMPLITUDE_HU` (nothing to
take out) and is clipped to :data:`MAX_CORRECTION_HU` (beyond that it would be anatomy).

It is made only for a QA phantom: when the planning CT's region is near uniform
(:func:`uniform_share`, :data:`UNIFORM_SHARE_MIN`). On a patient, flattening would pull tissue
classes of similar HU together (bladder and muscle, say) and take information from the match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from igrt.core.types import BoolArray, FloatArray
from igrt.core.volume import Volume

#: Soft-tissue voxels: within this many HU of the box's histogram mode (CBCT HU are biased, so
#: the mode, not a fixed HU window). Wide enough for 70 HU of cupping plus noise, narrow enough
#: to leave out fat (about -100 HU) against muscle, bone and air.
WINDOW_HU = 90.0
#: The mode is looked for in this range (HU) with bins of HIST_BIN_HU.
MODE_RANGE_HU = (-500.0, 500.0)
HIST_BIN_HU = 10.0
#: Ring width (mm) of the median profile.
RING_MM = 5.0
#: A ring takes part with at least this many voxels.
MIN_RING_VOXELS = 50
#: At least this many soft-tissue voxels and three rings, or no correction.
MIN_VOXELS = 2000
#: Below this peak-to-peak amplitude (HU) over the rings there is nothing to take out.
MIN_AMPLITUDE_HU = 10.0
#: The correction never exceeds this (HU) anywhere.
MAX_CORRECTION_HU = 150.0
#: The correction is for QA phantoms: it is made only when the planning CT's region is near
#: uniform, at least UNIFORM_SHARE_MIN of its voxels within UNIFORM_WINDOW_HU of their mode
#: (measured: the digital QA phantoms 0.92-0.97; the digital torso 0.55, four real patient CTs,
#: head and neck, chest, abdomen, 0.10-0.48). On a patient the flattening would pull tissue
#: classes together (bladder and muscle) and is never made.
UNIFORM_WINDOW_HU = 20.0
UNIFORM_SHARE_MIN = 0.80
#: The estimate reads every n-th voxel along each axis (it is smooth; the subtraction is not
#: subsampled).
STRIDE = 2


@dataclass(frozen=True)
class Cupping:
    """The fitted radial profile: ``value(r) = a + b r² + c r⁴`` (HU, r in mm), applied between
    ``min_radius_mm`` and ``max_radius_mm`` (held constant beyond), less ``mean_hu``."""

    coefficients: tuple[float, float, float]
    min_radius_mm: float
    max_radius_mm: float
    mean_hu: float

    def correction_hu(self, radius_mm: npt.ArrayLike) -> FloatArray:
        r = np.clip(np.asarray(radius_mm, dtype=np.float64), self.min_radius_mm,
                    self.max_radius_mm)
        a, b, c = self.coefficients
        r2 = r * r
        value = a + b * r2 + c * r2 * r2 - self.mean_hu
        return np.clip(value, -MAX_CORRECTION_HU, MAX_CORRECTION_HU)

    @property
    def amplitude_hu(self) -> float:
        r = np.linspace(self.min_radius_mm, self.max_radius_mm, 64)
        v = self.correction_hu(r)
        return float(v.max() - v.min())


def axis_radius_mm(volume: Volume, axis_point_mm: npt.ArrayLike) -> FloatArray:
    """Per voxel ``(k, j, i)``, the distance (mm) from the line through ``axis_point_mm`` along
    the volume's slice normal (its third direction column)."""
    direction = np.asarray(volume.direction, dtype=np.float64)
    offset = np.asarray(volume.origin_mm, dtype=np.float64) - np.asarray(axis_point_mm)
    alpha = float(offset @ direction[:, 0])
    beta = float(offset @ direction[:, 1])
    ni, nj, _ = volume.shape_ijk
    sx, sy, _ = volume.spacing_mm
    x = np.arange(ni) * sx + alpha
    y = np.arange(nj) * sy + beta
    r = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    return np.broadcast_to(r[None], volume.voxels.shape)


def uniform_share(values: FloatArray) -> float:
    """The share of ``values`` (HU: a planning CT's region) within UNIFORM_WINDOW_HU of their
    mode; 0 when there are too few to tell."""
    mode = _mode_hu(values)
    if mode is None:
        return 0.0
    return float(np.mean(np.abs(values - mode) <= UNIFORM_WINDOW_HU))


def _mode_hu(values: FloatArray) -> float | None:
    """The most common value within MODE_RANGE_HU (bins of HIST_BIN_HU, smoothed over three);
    None with fewer than MIN_VOXELS there."""
    lo, hi = MODE_RANGE_HU
    in_range = values[(values > lo) & (values < hi)]
    if in_range.size < MIN_VOXELS:
        return None
    counts, edges = np.histogram(in_range, bins=int((hi - lo) / HIST_BIN_HU), range=(lo, hi))
    smooth = np.convolve(counts, np.ones(3), mode="same")
    return float(edges[int(np.argmax(smooth))] + HIST_BIN_HU / 2.0)


def estimate(values: FloatArray, radius_mm: FloatArray) -> Cupping | None:
    """The radial profile of soft-tissue ``values`` (1-D, with their radii), or None when there
    is too little to fit or nothing to take out."""
    mode = _mode_hu(values)
    if mode is None:
        return None
    soft = np.abs(values - mode) <= WINDOW_HU
    if int(soft.sum()) < MIN_VOXELS:
        return None
    v, r = values[soft], radius_mm[soft]
    ring = np.floor(r / RING_MM).astype(np.int64)
    rings, inverse, n = np.unique(ring, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    splits = np.cumsum(n)[:-1]
    medians = np.array([np.median(part) for part in np.split(v[order], splits)])
    keep = n >= MIN_RING_VOXELS
    if int(keep.sum()) < 3:
        return None
    centres = (rings[keep] + 0.5) * RING_MM
    r2 = centres * centres
    design = np.column_stack([np.ones_like(r2), r2, r2 * r2])
    w = np.sqrt(n[keep].astype(np.float64))
    coefficients, *_ = np.linalg.lstsq(design * w[:, None], medians[keep] * w, rcond=None)
    a, b, c = (float(x) for x in coefficients)
    fitted = Cupping((a, b, c), float(centres.min()), float(centres.max()), 0.0)
    mean = float(np.mean(fitted.correction_hu(r)))
    cupping = Cupping((a, b, c), fitted.min_radius_mm, fitted.max_radius_mm, mean)
    return cupping if cupping.amplitude_hu >= MIN_AMPLITUDE_HU else None


def flattened(volume: Volume, usable: BoolArray,
              axis_point_mm: npt.ArrayLike) -> tuple[Volume, Cupping | None]:
    """``volume`` with its radial cupping about the CBCT axis through ``axis_point_mm`` taken
    out, estimated on the ``usable`` voxels; unchanged (and None) when there is none to take
    out."""
    radius = axis_radius_mm(volume, axis_point_mm)
    s = STRIDE
    sub = usable[::s, ::s, ::s]
    cupping = estimate(volume.voxels[::s, ::s, ::s][sub].astype(np.float64),
                       radius[::s, ::s, ::s][sub])
    if cupping is None:
        return volume, None
    voxels = (volume.voxels - cupping.correction_hu(radius[0])[None].astype(np.float32))
    return Volume(voxels=np.ascontiguousarray(voxels, dtype=np.float32),
                  origin_mm=volume.origin_mm, spacing_mm=volume.spacing_mm,
                  direction=volume.direction), cupping
