"""Spatial Registration objects: the nominal alignment of a CBCT to the planning frame
(CONTRACT §2, case 2).

Convention (PS3.3 C.20.2.1.1, PS3.17 Annex P): each Registration Sequence item names a Frame of
Reference ``B`` and a matrix ``M`` that maps a point given in ``B`` into the Spatial Registration's
own Frame of Reference ``A`` (the SRO's top-level Frame of Reference UID): ``p_A = M @ [p_B, 1]``.
Column 4 of ``M`` is the origin of ``B`` expressed in ``A``. The item for ``A`` itself, if present,
carries the identity.

:func:`nominal_matrix` returns the 4x4 matrix mapping CBCT coordinates to planning coordinates,
whichever of the two frames is the SRO's own, or both relative to a third frame:
``N = M_plan⁻¹ · M_cbct``, where ``M_f`` maps frame ``f`` into ``A`` (identity when ``f`` is ``A``).

Only rigid matrices are accepted (RIGID, or RIGID_SCALE/AFFINE whose values are rigid): a scaled or
sheared nominal alignment would mean the frames do not describe the same patient geometry. A Matrix
Sequence with several matrices is accepted only when their product does not depend on the order
they are applied in (igrt does not rely on an order convention for them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from igrt.core.errors import SpatialRegistrationError
from igrt.core.geometry import invert_rigid
from igrt.core.types import FloatArray

log = logging.getLogger(__name__)



@dataclass(frozen=True, eq=False)
class FrameRegistration:
    """One Registration Sequence item: ``matrix`` maps ``frame_of_reference_uid`` coordinates into
    the Spatial Registration's frame."""

    frame_of_reference_uid: str
    matrix: FloatArray
    matrix_types: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class SpatialRegistration:
    """A rigid Spatial Registration object: its own frame and the matrix of each frame it
    relates to that frame."""

    sop_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str | None
    registrations: tuple[FrameRegistration, ...]

    @property
    def frames(self) -> tuple[str, ...]:
        """Every frame this object relates: its own, then the items' frames."""
        out = [self.frame_of_reference_uid]
        for r in self.registrations:
            if r.frame_of_reference_uid not in out:
                out.append(r.frame_of_reference_uid)
        return tuple(out)


# --- the nominal alignment -----------------------------------------------------------------------
def to_registration_frame(
    sro: SpatialRegistration, frame_uid: str, *, tolerance_mm: float = 1e-3
) -> FloatArray | None:
    """Matrix mapping ``frame_uid`` coordinates into the SRO's frame, or None if not related.

    Several items for the same frame must agree (within ``tolerance_mm`` on points 100 mm around
    the origin); the SRO's own frame maps by the identity (an item for it must be the identity).
    """
    matrices = [r.matrix for r in sro.registrations if r.frame_of_reference_uid == frame_uid]
    if frame_uid == sro.frame_of_reference_uid:
        matrices.append(np.eye(4))
    if not matrices:
        return None
    probe = np.array([[0, 0, 0, 1], [100, 0, 0, 1], [0, 100, 0, 1], [0, 0, 100, 1.0]]).T
    for m in matrices[1:]:
        if np.max(np.abs((m - matrices[0]) @ probe)) > tolerance_mm:
            raise SpatialRegistrationError(
                f"Spatial Registration {sro.sop_instance_uid} gives conflicting matrices for "
                f"frame {frame_uid}"
            )
    return matrices[0]


def nominal_matrix(
    sro: SpatialRegistration, *, cbct_frame_uid: str, planning_frame_uid: str
) -> FloatArray:
    """4x4 matrix mapping CBCT coordinates to planning coordinates, ``N = M_plan⁻¹ · M_cbct``.

    Refuses (:class:`SpatialRegistrationError`, naming the UIDs) when the SRO does not relate
    both frames.
    """
    if cbct_frame_uid == planning_frame_uid:
        return np.eye(4)
    cbct = to_registration_frame(sro, cbct_frame_uid)
    planning = to_registration_frame(sro, planning_frame_uid)
    if cbct is None or planning is None:
        missing = [
            name
            for name, m, uid in (
                ("CBCT", cbct, cbct_frame_uid),
                ("planning", planning, planning_frame_uid),
            )
            if m is None
        ]
        raise SpatialRegistrationError(
            f"Spatial Registration {sro.sop_instance_uid} (frame {sro.frame_of_reference_uid}) "
            f"relates frames {', '.join(sro.frames)} but not the "
            f"{' and '.join(missing)} frame (CBCT {cbct_frame_uid}, planning {planning_frame_uid})"
        )
    return invert_rigid(planning) @ cbct
