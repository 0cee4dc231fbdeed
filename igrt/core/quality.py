"""Is a registration result trustworthy? Pure checks on numbers; each failing check is a
``code: sentence`` reason that turns the status to ``review``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igrt.core import geometry
from igrt.core.geometry import CouchCorrection
from igrt.core.reasons import ReasonCode, reason
from igrt.core.types import FloatArray

#: Beyond these the result is taken to have hit the edge of what the search can reach.
CAPTURE_TRANSLATION_MM = 40.0
CAPTURE_ROTATION_DEG = 8.0


@dataclass(frozen=True)
class Difference:
    """How far apart two registration results are, measured where it matters: at the isocentre
    and over the registration box (the largest displacement of its corners)."""

    translation_mm: float
    rotation_deg: float

    def as_dict(self) -> dict[str, float]:
        return {"translation_mm": round(self.translation_mm, 3),
                "rotation_deg": round(self.rotation_deg, 3)}


def difference(a: FloatArray, b: FloatArray, *, center_mm: FloatArray,
               half_size_mm: FloatArray) -> Difference:
    """Largest distance between where ``a`` and ``b`` send the isocentre and the corners of the
    box around it, and the angle of the rotation between them."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 0, 1) for sy in (-1, 0, 1)
                        for sz in (-1, 0, 1)], dtype=np.float64)
    points = np.asarray(center_mm) + corners * np.asarray(half_size_mm)
    moved = geometry.apply(a, points) - geometry.apply(b, points)
    rel = a[:3, :3] @ b[:3, :3].T
    return Difference(float(np.linalg.norm(moved, axis=1).max()),
                      geometry.rotation_angle_deg(rel))


def bound_reasons(measured: CouchCorrection) -> list[str]:
    """The result lies at or beyond the edge of the capture range: not a result to trust."""
    t = float(np.linalg.norm(measured.translation_mm))
    r = float(np.abs(measured.angles_deg).max())
    reasons = []
    if t > CAPTURE_TRANSLATION_MM:
        reasons.append(reason(ReasonCode.AT_BOUND,
                              f"the translation {t:.1f} mm is beyond the "
                              f"{CAPTURE_TRANSLATION_MM:.0f} mm the search is built to reach"))
    if r > CAPTURE_ROTATION_DEG:
        reasons.append(reason(ReasonCode.AT_BOUND,
                              f"a rotation of {r:.1f}° is beyond the "
                              f"{CAPTURE_ROTATION_DEG:.0f}° the search is built to reach"))
    return reasons


def limit_reasons(measured: CouchCorrection, *, max_translation_mm: float,
                  max_rotation_deg: float) -> list[str]:
    """Configured review limits on the size of the correction."""
    reasons = []
    t = float(np.linalg.norm(measured.translation_mm))
    if t > max_translation_mm:
        reasons.append(reason(ReasonCode.TRANSLATION_LIMIT,
                              f"the translation {t:.2f} mm exceeds the review "
                              f"limit of {max_translation_mm:g} mm"))
    names = ("pitch", "roll", "rotation")
    for name, angle in zip(names, measured.angles_deg, strict=True):
        if abs(angle) > max_rotation_deg:
            reasons.append(reason(ReasonCode.ROTATION_LIMIT,
                                  f"{name} {angle:.2f}° exceeds the review limit of "
                                  f"{max_rotation_deg:g}°"))
    return reasons


def agreement_reason(code: ReasonCode, what: str, diff: Difference, *, tolerance_mm: float,
                     tolerance_deg: float) -> str | None:
    """A reason when two results that should agree do not."""
    if diff.translation_mm <= tolerance_mm and diff.rotation_deg <= tolerance_deg:
        return None
    return reason(code, f"{what} differs by {diff.translation_mm:.2f} mm / "
                        f"{diff.rotation_deg:.2f}° (tolerance {tolerance_mm:g} mm / "
                        f"{tolerance_deg:g}°)")
