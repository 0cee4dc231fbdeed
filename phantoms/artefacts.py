"""CBCT artefacts beyond noise, blur and cupping, as a real cone-beam reconstruction shows them
on QA phantoms: ring artefacts (detector-element gain errors: concentric rings about the rotation
axis, the same radius on every slice) and streaks from dense inserts (beam hardening and photon
starvation: a dark band along the line joining two dense objects, and alternating bright and dark
rays through each). Pure numpy and scipy on ``[k, j, i]`` HU arrays in CBCT scanner orientation,
whose slices are perpendicular to the rotation axis."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64

DENSE_HU = 1200.0  # inserts denser than this streak (bone inserts, Teflon, metal, ceramics)
STREAK_WIDTH_MM = 1.2
RAY_COUNT = 4
RAY_FADE_MM = 60.0  # rays fade with the distance from their object
GROUP_MM = 4.0  # dense objects closer than this streak as one (a line-pair group, a wire pair)
MAX_OBJECTS = 8  # the largest dense objects of a slice that streak


def rings(rho_mm: F64, amplitude_hu: float, rng: np.random.Generator, *,
          count: int = 7, width_mm: float = 0.6) -> F32:
    """``(rows, columns)`` ring pattern for the in-plane radius ``rho_mm`` from the rotation
    axis: ``count`` narrow rings of alternating sign, amplitude up to ``amplitude_hu``."""
    out = np.zeros(rho_mm.shape, dtype=np.float64)
    for n in range(count):
        radius = rng.uniform(8.0, 140.0)
        size = amplitude_hu * rng.uniform(0.4, 1.0) * (1.0 if n % 2 == 0 else -1.0)
        out += size * np.exp(-0.5 * ((rho_mm - radius) / width_mm) ** 2)
    return out.astype(np.float32)


def dense_streaks(hu: F32, x_mm: F64, y_mm: F64, amplitude_hu: float,
                  rng: np.random.Generator) -> F32:
    """Streaks of every slice of ``hu`` (before other degradations) from its dense inserts.
    ``x_mm`` ``(1, columns)`` and ``y_mm`` ``(rows, 1)`` are in-plane coordinates."""
    out = np.zeros_like(hu)
    dense = hu > DENSE_HU
    pixel_mm2 = abs(float(x_mm[0, 1] - x_mm[0, 0]) * float(y_mm[1, 0] - y_mm[0, 0]))
    angles = rng.uniform(0.0, math.pi, size=RAY_COUNT)
    reach = max(1, int(round(GROUP_MM / math.sqrt(pixel_mm2))))
    for k in np.nonzero(dense.any(axis=(1, 2)))[0]:
        groups, n = ndimage.label(ndimage.binary_dilation(dense[k], iterations=reach))
        labels = np.where(dense[k], groups, 0)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        area = ndimage.sum_labels(dense[k], labels, index) * pixel_mm2
        index = index[np.argsort(area)[::-1][:MAX_OBJECTS]]
        area = ndimage.sum_labels(dense[k], labels, index) * pixel_mm2
        n = len(index)
        cy, cx = (np.asarray(v) for v in zip(*ndimage.center_of_mass(dense[k], labels, index),
                                             strict=True))
        weight = np.clip(area / 20.0, 0.0, 1.0)  # a 5 mm object streaks fully
        px = np.interp(cx, np.arange(x_mm.shape[1]), x_mm[0])
        py = np.interp(cy, np.arange(y_mm.shape[0]), y_mm[:, 0])
        pattern = np.zeros(hu.shape[1:], dtype=np.float64)
        for a in range(n):
            for b in range(a + 1, n):
                pattern -= weight[a] * weight[b] * _band(x_mm, y_mm, (px[a], py[a]),
                                                         (px[b], py[b]))
            fade = np.exp(-np.hypot(x_mm - px[a], y_mm - py[a]) / RAY_FADE_MM)
            for m, angle in enumerate(angles):
                far = (px[a] + math.cos(angle), py[a] + math.sin(angle))
                sign = 1.0 if m % 2 == 0 else -0.7
                pattern += sign * 0.5 * weight[a] * fade * _band(x_mm, y_mm, (px[a], py[a]),
                                                                 far)
        out[k] = (amplitude_hu * pattern).astype(np.float32)
    return out


def _band(x: F64, y: F64, p: tuple[float, float], q: tuple[float, float]) -> F64:
    """A Gaussian band of width :data:`STREAK_WIDTH_MM` along the line through ``p`` and ``q``."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    length = math.hypot(dx, dy) or 1.0
    distance = np.abs((x - p[0]) * dy - (y - p[1]) * dx) / length
    return np.asarray(np.exp(-0.5 * (distance / STREAK_WIDTH_MM) ** 2))
