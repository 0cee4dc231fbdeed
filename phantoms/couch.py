"""The couches under the phantoms: the CT (planning) couch and the treatment couch top, as 2-D
profiles across the couch (lateral x, depth along the room's downward direction), blended into a
volume where it holds air."""

from __future__ import annotations

import numpy as np

from igrt.core.geometry import LPS_TO_IEC, PatientPosition
from igrt.core.types import Float32Array as F32
from igrt.core.types import FloatArray as F64

#: Gap (mm) between the nominal lowest point of the anatomy and the treatment couch top.
TREATMENT_COUCH_GAP_MM = 3.0


def down_lps(position: PatientPosition) -> F64:
    """Room vertical-down direction in LPS: posterior (+y) supine, anterior (-y) prone."""
    return np.asarray(LPS_TO_IEC[position].T @ np.array([0.0, 0.0, -1.0]))


def _layers(
    lateral_mm: F64, depth_mm: F64, layers: list[tuple[float, float, float]], edge_mm: float
) -> tuple[F64, F64]:
    """(alpha, HU) of a stack of layers ``(t0, t1, HU)`` in depth below the couch top."""
    value = np.zeros(np.broadcast(lateral_mm, depth_mm).shape)
    alpha = np.zeros_like(value)
    for t0, t1, hu in layers:
        d = np.maximum(t0 - depth_mm, depth_mm - t1)
        a = np.clip(0.5 - d / edge_mm, 0.0, 1.0)
        value += a * (hu - value)
        alpha = np.maximum(alpha, a)
    return alpha, value


def ct_couch(lateral_mm: F64, depth_mm: F64, top_mm: float, *, edge_mm: float) -> tuple[F64, F64]:
    """CT (planning) couch: a slightly curved carbon cradle on a hollow pedestal.

    ``lateral_mm`` from the couch centre line, ``depth_mm`` along the room's down direction;
    ``top_mm`` is the depth of the top surface at the centre line. Returns (alpha, HU).
    """
    t = depth_mm - (top_mm - lateral_mm**2 / (2.0 * 2000.0))
    alpha, value = _layers(
        lateral_mm, t, [(0.0, 2.0, 350.0), (2.0, 48.0, -930.0), (48.0, 50.0, 350.0)], edge_mm
    )
    alpha = alpha * np.clip(0.5 - (np.abs(lateral_mm) - 250.0) / edge_mm, 0.0, 1.0)
    plate, _ = _layers(lateral_mm, t, [(52.0, 56.0, 250.0)], edge_mm)
    plate = plate * np.clip(0.5 - (np.abs(lateral_mm) - 82.0) / edge_mm, 0.0, 1.0)
    walls, _ = _layers(lateral_mm, t, [(52.0, 1000.0, 250.0)], edge_mm)
    walls = walls * np.clip(0.5 - (np.abs(np.abs(lateral_mm) - 80.0) - 2.0) / edge_mm, 0.0, 1.0)
    pedestal = np.maximum(plate, walls)
    value = np.where(pedestal > alpha, 250.0, value)
    return np.maximum(alpha, pedestal), value


def treatment_couch(
    lateral_mm: F64, depth_mm: F64, top_mm: float, *, edge_mm: float
) -> tuple[F64, F64]:
    """Treatment couch top (fixed in the room): flat, thin dense skins, foam core, two beams."""
    t = depth_mm - top_mm
    alpha, value = _layers(
        lateral_mm, t, [(0.0, 1.5, 500.0), (1.5, 53.5, -970.0), (53.5, 55.0, 500.0)], edge_mm
    )
    beams = np.clip(0.5 - (np.abs(np.abs(lateral_mm) - 120.0) - 8.0) / edge_mm, 0.0, 1.0)
    inside = np.clip(0.5 - np.maximum(1.5 - t, t - 53.5) / edge_mm, 0.0, 1.0)
    value = value + beams * inside * (150.0 - value)
    side = np.clip(0.5 - (np.abs(lateral_mm) - 265.0) / edge_mm, 0.0, 1.0)
    return alpha * side, value


def composite_over_air(volume_hu: F32, alpha: F64, couch_hu: F64) -> None:
    """Blend a couch (2-D profiles ``[j, i]``, constant along ``k``) into ``volume_hu[k, j, i]``
    where the volume holds air (the anatomy wins on overlap). In place."""
    rows = np.nonzero(alpha.max(axis=-1) > 0.0)[0]
    if rows.size == 0:
        return
    band = slice(int(rows[0]), int(rows[-1]) + 1)  # only the rows the couch occupies
    block = volume_hu[:, band, :]
    a = alpha[band].astype(np.float32)
    hu = couch_hu[band].astype(np.float32)
    air = np.clip((-block - 600.0) / 300.0, 0.0, 1.0)
    block += a * air * (hu - block)
