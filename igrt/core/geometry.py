"""Couch geometry: rigid transforms, the couch correction, and IEC 61217 table-top axes.

Pure numpy. Conventions (binding, ``CONTRACT.md`` §1–2):

* Patient coordinates are DICOM LPS in mm. The *room frame* has its origin at the machine
  isocentre and LPS-aligned axes for the patient as set up on the couch.
* All 4x4 matrices act on column vectors of homogeneous points: ``p' = A @ [p, 1]``.
* The registration transform ``T`` maps CBCT (fixed) points to planning CT (moving) points,
  the ITK convention: the anatomy at CBCT point ``c`` is the anatomy at planning point ``T(c)``.
* The nominal map ``N`` takes CBCT points to room points at the nominal setup (plan isocentre at
  machine isocentre), as decided by CONTRACT §2.
* The planned position of the anatomy in the room is ``A0(p) = p - iso`` (planning point ``p``,
  plan isocentre ``iso``). The correction ``C`` is the couch motion ``r' = Rc r + tc`` (about the
  machine isocentre) that returns every point to its planned position:
  ``C = A0 ∘ T ∘ N⁻¹``.
* IEC table-top axes: an LPS vector ``v`` maps to IEC as ``M v``, a rotation ``R`` as
  ``M R Mᵀ``, with ``M`` chosen by the patient position. IEC rotations are right-handed, degrees,
  ``R_iec = Rz(rotation) · Ry(roll) · Rx(pitch)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from igrt.core.types import FloatArray


class PatientPosition(StrEnum):
    HFS = "HFS"
    FFS = "FFS"
    HFP = "HFP"
    FFP = "FFP"


#: Rows are IEC lateral X, longitudinal Y, vertical Z expressed in LPS (CONTRACT §1 table).
LPS_TO_IEC: dict[PatientPosition, FloatArray] = {
    PatientPosition.HFS: np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]),
    PatientPosition.FFS: np.array([[-1.0, 0, 0], [0, 0, -1.0], [0, -1.0, 0]]),
    PatientPosition.HFP: np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]),
    PatientPosition.FFP: np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),
}


@dataclass(frozen=True)
class CouchCorrection:
    """A couch correction in IEC 61217 table-top axes (mm, degrees)."""

    lateral_mm: float
    longitudinal_mm: float
    vertical_mm: float
    pitch_deg: float
    roll_deg: float
    rotation_deg: float

    @classmethod
    def zero(cls) -> CouchCorrection:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def translation_mm(self) -> FloatArray:
        return np.array([self.lateral_mm, self.longitudinal_mm, self.vertical_mm])

    @property
    def angles_deg(self) -> FloatArray:
        return np.array([self.pitch_deg, self.roll_deg, self.rotation_deg])

    def as_dict(self) -> dict[str, float]:
        return {
            "lateral_mm": self.lateral_mm,
            "longitudinal_mm": self.longitudinal_mm,
            "vertical_mm": self.vertical_mm,
            "pitch_deg": self.pitch_deg,
            "roll_deg": self.roll_deg,
            "rotation_deg": self.rotation_deg,
        }

    def rounded(self, *, mm_decimals: int = 2, deg_decimals: int = 2) -> CouchCorrection:
        """The same correction with numbers rounded for publication (no ``-0.0``)."""

        def r(value: float, decimals: int) -> float:
            return round(value, decimals) + 0.0

        return CouchCorrection(
            r(self.lateral_mm, mm_decimals),
            r(self.longitudinal_mm, mm_decimals),
            r(self.vertical_mm, mm_decimals),
            r(self.pitch_deg, deg_decimals),
            r(self.roll_deg, deg_decimals),
            r(self.rotation_deg, deg_decimals),
        )


# --- rigid transforms ----------------------------------------------------------------------------
def rigid(rotation: npt.ArrayLike, translation_mm: npt.ArrayLike) -> FloatArray:
    """4x4 homogeneous matrix of ``p -> R p + t``."""
    out = np.eye(4)
    out[:3, :3] = np.asarray(rotation, dtype=np.float64)
    out[:3, 3] = np.asarray(translation_mm, dtype=np.float64)
    return out


def translation(t_mm: npt.ArrayLike) -> FloatArray:
    return rigid(np.eye(3), t_mm)


def invert_rigid(a: FloatArray) -> FloatArray:
    r = a[:3, :3]
    return rigid(r.T, -r.T @ a[:3, 3])


def mean_rigid(transforms: Sequence[FloatArray]) -> FloatArray:
    """The rigid transform closest to the average of nearby rigid transforms: every point goes
    to the mean of where they send it, up to second order in their differences (mean of the
    translations; the mean rotation matrix brought back to a rotation by its polar factor)."""
    stack = np.asarray(transforms, dtype=np.float64)
    u, _, vt = np.linalg.svd(stack[:, :3, :3].mean(axis=0))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # cannot happen for nearby rotations; never a reflection
        u[:, -1] *= -1
        rotation = u @ vt
    return rigid(rotation, stack[:, :3, 3].mean(axis=0))


def apply(a: FloatArray, points_mm: npt.ArrayLike) -> FloatArray:
    """Apply a 4x4 transform to (..., 3) points."""
    p = np.asarray(points_mm, dtype=np.float64)
    return p @ a[:3, :3].T + a[:3, 3]


def is_rigid(a: npt.ArrayLike, *, tol: float = 1e-4) -> bool:
    m = np.asarray(a, dtype=np.float64)
    if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1], atol=tol):
        return False
    r = m[:3, :3]
    return bool(np.allclose(r.T @ r, np.eye(3), atol=tol) and abs(np.linalg.det(r) - 1) < tol)


# --- rotations -----------------------------------------------------------------------------------
def rot_x(deg: float) -> FloatArray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> FloatArray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def rot_z(deg: float) -> FloatArray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def iec_rotation(pitch_deg: float, roll_deg: float, rotation_deg: float) -> FloatArray:
    """``R_iec = Rz(rotation) · Ry(roll) · Rx(pitch)``."""
    return rot_z(rotation_deg) @ rot_y(roll_deg) @ rot_x(pitch_deg)


def iec_angles(r_iec: npt.ArrayLike) -> tuple[float, float, float]:
    """(pitch, roll, rotation) in degrees of ``R = Rz(rotation) · Ry(roll) · Rx(pitch)``."""
    r = np.asarray(r_iec, dtype=np.float64)
    roll = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    rotation = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return pitch, roll, rotation


def rotation_angle_deg(r: npt.ArrayLike) -> float:
    """Magnitude of a rotation (angle of its axis-angle form) in degrees."""
    m = np.asarray(r, dtype=np.float64)
    cos = (np.trace(m) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


# --- the correction ------------------------------------------------------------------------------
def planned_placement(isocenter_mm: npt.ArrayLike) -> FloatArray:
    """``A0``: planning point -> room point at the planned setup (plan iso at machine iso)."""
    return translation(-np.asarray(isocenter_mm, dtype=np.float64))


def correction_transform(
    registration: FloatArray, nominal: FloatArray, isocenter_mm: npt.ArrayLike
) -> FloatArray:
    """Room-frame couch motion ``C = A0 ∘ T ∘ N⁻¹`` (see module docstring)."""
    return planned_placement(isocenter_mm) @ registration @ invert_rigid(nominal)


def registration_for_correction(
    correction: FloatArray, nominal: FloatArray, isocenter_mm: npt.ArrayLike
) -> FloatArray:
    """Inverse of :func:`correction_transform`: ``T = A0⁻¹ ∘ C ∘ N``.

    With ``C = identity`` this is the nominal start of the registration.
    """
    return invert_rigid(planned_placement(isocenter_mm)) @ correction @ nominal


def to_iec(correction: FloatArray, position: PatientPosition) -> CouchCorrection:
    """Room-frame (LPS) couch motion -> IEC table-top correction."""
    m = LPS_TO_IEC[position]
    t = m @ correction[:3, 3]
    pitch, roll, rotation = iec_angles(m @ correction[:3, :3] @ m.T)
    return CouchCorrection(float(t[0]), float(t[1]), float(t[2]), pitch, roll, rotation)


def from_iec(correction: CouchCorrection, position: PatientPosition) -> FloatArray:
    """IEC table-top correction -> room-frame (LPS) 4x4 couch motion."""
    m = LPS_TO_IEC[position]
    r_iec = iec_rotation(correction.pitch_deg, correction.roll_deg, correction.rotation_deg)
    return rigid(m.T @ r_iec @ m, m.T @ correction.translation_mm)


def restrict_to_dof(correction: CouchCorrection, dof: int) -> CouchCorrection:
    """What a couch with ``dof`` axes applies: 6 = all, 4 = translations + rotation (yaw),
    3 = translations. Rotations the couch cannot apply are 0; the rotations act about the
    machine isocentre, so the translations (the isocentre's motion) are kept unchanged."""
    if dof == 6:
        return correction
    if dof == 4:
        return replace(correction, pitch_deg=0.0, roll_deg=0.0)
    if dof == 3:
        return replace(correction, pitch_deg=0.0, roll_deg=0.0, rotation_deg=0.0)
    raise ValueError(f"couch dof must be 3, 4 or 6, not {dof}")
