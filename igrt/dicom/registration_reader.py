"""DICOM adapter of Spatial Registration objects: pydicom dataset ->
:class:`igrt.core.spatial_registration.SpatialRegistration`. Only rigid matrix registrations are
accepted (see ``igrt.core.spatial_registration`` for the convention)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydicom.uid import SpatialRegistrationStorage

from igrt.core.errors import SpatialRegistrationError
from igrt.core.geometry import is_rigid
from igrt.core.spatial_registration import FrameRegistration, SpatialRegistration
from igrt.core.types import FloatArray
from igrt.dicom.values import floats as _floats
from igrt.dicom.values import text as _text

log = logging.getLogger(__name__)


def read_spatial_registration(
    ds: Any, *, rigid_tolerance: float = 1e-4, order_tolerance_mm: float = 1e-3
) -> SpatialRegistration:
    """Read a Spatial Registration dataset (pydicom ``Dataset``); refuse
    (:class:`SpatialRegistrationError`) anything that is not a rigid matrix registration.

    ``rigid_tolerance`` is passed to :func:`igrt.core.geometry.is_rigid`;
    ``order_tolerance_mm`` bounds how much the result of several matrices in one Matrix
    Sequence may depend on their order.
    """
    sop_class = _text(ds, "SOPClassUID")
    if sop_class != SpatialRegistrationStorage:
        raise SpatialRegistrationError(
            f"SOP Class UID {sop_class} is not Spatial Registration "
            f"({SpatialRegistrationStorage}); deformable registrations are not supported"
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
