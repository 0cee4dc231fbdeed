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
from typing import Any

import numpy as np
import numpy.typing as npt

from igrt.dicom_values import floats as _floats
from igrt.dicom_values import text as _text
from igrt.errors import PlanError
from igrt.geometry import invert_rigid, is_rigid

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

SPATIAL_REGISTRATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.1"


class SpatialRegistrationError(PlanError):
    """A Spatial Registration object is unusable or does not relate the CBCT to the plan."""

    code = "spatial_registration"
    default_message = "the Spatial Registration object does not give a usable nominal alignment"


@dataclass(frozen=True, eq=False)
class FrameRegistration:
    """One Registration Sequence item: ``matrix`` maps ``frame_of_reference_uid`` coordinates into
    the Spatial Registration's frame."""

    frame_of_reference_uid: str
    matrix: FloatArray
    matrix_types: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class SpatialRegistration:
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


# --- DICOM adapter -------------------------------------------------------------------------------


def read_spatial_registration(
    ds: Any, *, rigid_tolerance: float = 1e-4, order_tolerance_mm: float = 1e-3
) -> SpatialRegistration:
    """Read a Spatial Registration dataset (pydicom ``Dataset``); refuse
    (:class:`SpatialRegistrationError`) anything that is not a rigid matrix registration.

    ``rigid_tolerance`` is passed to :func:`igrt.geometry.is_rigid`; ``order_tolerance_mm`` bounds
    how much the result of several matrices in one Matrix Sequence may depend on their order.
    """
    sop_class = _text(ds, "SOPClassUID")
    if sop_class != SPATIAL_REGISTRATION_SOP_CLASS:
        raise SpatialRegistrationError(
            f"SOP Class UID {sop_class} is not Spatial Registration "
            f"({SPATIAL_REGISTRATION_SOP_CLASS}); deformable registrations are not supported"
        )
    uid = _text(ds, "SOPInstanceUID")
    if uid is None:
        raise SpatialRegistrationError("the Spatial Registration has no SOP Instance UID")
    what = f"Spatial Registration {uid}"
    frame = _text(ds, "FrameOfReferenceUID")
    if frame is None:
        raise SpatialRegistrationError(f"{what} has no Frame of Reference UID (0020,0052)")
    items = list(ds.get("RegistrationSequence") or [])
    if not items:
        raise SpatialRegistrationError(f"{what} has no Registration Sequence (0070,0308) item")
    registrations = tuple(
        _read_item(item, n + 1, what, rigid_tolerance, order_tolerance_mm)
        for n, item in enumerate(items)
    )
    log.info(
        "spatial registration %s: frame %s relates %s",
        uid, frame, ", ".join(r.frame_of_reference_uid for r in registrations),
    )
    return SpatialRegistration(
        sop_instance_uid=uid,
        frame_of_reference_uid=frame,
        patient_id=_text(ds, "PatientID"),
        registrations=registrations,
    )


def _read_item(
    item: Any, number: int, what: str, rigid_tolerance: float, order_tolerance_mm: float
) -> FrameRegistration:
    where = f"{what}, Registration Sequence item {number}"
    frame = _text(item, "FrameOfReferenceUID")
    if frame is None:
        raise SpatialRegistrationError(f"{where} has no Frame of Reference UID (0020,0052)")
    matrix_registrations = list(item.get("MatrixRegistrationSequence") or [])
    if len(matrix_registrations) != 1:
        raise SpatialRegistrationError(
            f"{where} has {len(matrix_registrations)} Matrix Registration Sequence (0070,0309) "
            "items, expected 1"
        )
    matrix_items = list(matrix_registrations[0].get("MatrixSequence") or [])
    if not matrix_items:
        raise SpatialRegistrationError(f"{where} has no Matrix Sequence (0070,030A) item")
    matrices: list[FloatArray] = []
    types: list[str] = []
    for m_item in matrix_items:
        numbers = _floats(m_item.get("FrameOfReferenceTransformationMatrix"))
        values = np.asarray(numbers or [], dtype=np.float64)
        if values.shape != (16,) or not np.all(np.isfinite(values)):
            raise SpatialRegistrationError(
                f"{where}: Frame of Reference Transformation Matrix (3006,00C6) must hold 16 "
                f"finite values, it holds {len(values)}"
            )
        matrix_type = _text(m_item, "FrameOfReferenceTransformationMatrixType") or "unspecified"
        matrix = values.reshape(4, 4)
        if not is_rigid(matrix, tol=rigid_tolerance):
            raise SpatialRegistrationError(
                f"{where}: the {matrix_type} matrix for frame {frame} is not rigid (it scales, "
                "shears or reflects); only rigid registrations are used"
            )
        matrices.append(matrix)
        types.append(matrix_type)
    return FrameRegistration(
        frame_of_reference_uid=frame,
        matrix=_product(matrices, where, order_tolerance_mm),
        matrix_types=tuple(types),
    )


def _product(matrices: list[FloatArray], where: str, order_tolerance_mm: float) -> FloatArray:
    forward = np.eye(4)
    backward = np.eye(4)
    for m in matrices:
        forward = m @ forward  # first item applied first
        backward = backward @ m  # last item applied first
    if len(matrices) > 1:
        # Compare the two orders on points 100 mm around the origin, in mm.
        probe = np.array([[0, 0, 0, 1], [100, 0, 0, 1], [0, 100, 0, 1], [0, 0, 100, 1.0]]).T
        if np.max(np.abs((forward - backward) @ probe)) > order_tolerance_mm:
            raise SpatialRegistrationError(
                f"{where} has {len(matrices)} matrices whose result depends on the order they "
                "are applied in; igrt accepts several matrices only when the order does not matter"
            )
    return forward


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
