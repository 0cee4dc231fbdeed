"""DICOM adapter of RT Plan and RT Ion Plan: the planning reference a CBCT is set up against
(CONTRACT §3).

What is read, and the choices made:

* **Isocentres** come from the first control point (``ControlPointIndex`` 0, else the first item)
  ``IsocenterPosition`` of every beam, in the order the beams are listed. Beams whose Treatment
  Delivery Type is ``SETUP`` are left out: they image the setup and deliver no dose, so it is the
  treatment beams' isocentre that must reach the machine isocentre (a setup beam usually shares it
  anyway). Isocentres closer than ``isocenter_tolerance_mm`` are one isocentre.
* **Patient position** comes from the Patient Setup Sequence items the treatment beams reference
  (all items if no beam references one). Several different positions, none, or a position other
  than HFS/FFS/HFP/FFP (the only ones CONTRACT §1 maps to IEC table-top axes) refuse the plan.
* **Frame of Reference UID** and **Patient ID** are required.

The decisions made with plans (which plan, which isocentre, which planning CT) are
``igrt.core.matching``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from pydicom.uid import RTIonPlanStorage, RTPlanStorage

from igrt.core.errors import PlanError
from igrt.core.geometry import PatientPosition
from igrt.core.plan import Plan, distinct_points
from igrt.core.types import Point
from igrt.dicom.values import floats as _floats
from igrt.dicom.values import text as _text

log = logging.getLogger(__name__)

PLAN_SOP_CLASSES: dict[str, str] = {RTPlanStorage: "RT Plan", RTIonPlanStorage: "RT Ion Plan"}


def _required(ds: Any, keyword: str, attribute: str, what: str) -> str:
    value = _text(ds, keyword)
    if value is None:
        raise PlanError(f"{what} has no {attribute}")
    return value


def read_plan(ds: Any, *, isocenter_tolerance_mm: float = 0.5) -> Plan:
    """Read an RT Plan or RT Ion Plan dataset (pydicom ``Dataset``). Refusals: :class:`PlanError`
    naming the attribute or beam."""
    if isocenter_tolerance_mm < 0:
        raise ValueError(f"isocenter_tolerance_mm must be >= 0, not {isocenter_tolerance_mm}")
    sop_class = _text(ds, "SOPClassUID")
    if sop_class not in PLAN_SOP_CLASSES:
        raise PlanError(
            f"SOP Class UID {sop_class} is neither RT Plan ({RTPlanStorage}) nor "
            f"RT Ion Plan ({RTIonPlanStorage})"
        )
    uid = _required(ds, "SOPInstanceUID", "SOP Instance UID (0008,0018)", "the plan")
    what = f"{PLAN_SOP_CLASSES[sop_class]} {uid}"
    patient_id = _required(ds, "PatientID", "Patient ID (0010,0020)", what)
    # Optional in the RT Plan IOD (Eclipse leaves it out): then the frame is the referenced
    # structure set's, resolved when the structure sets are known (igrt.core.plan).
    frame_uid = _text(ds, "FrameOfReferenceUID")
    label = _text(ds, "RTPlanLabel") or ""
    approval = (_text(ds, "ApprovalStatus") or "").upper()

    ion = sop_class == RTIonPlanStorage
    beam_keyword = "IonBeamSequence" if ion else "BeamSequence"
    cp_keyword = "IonControlPointSequence" if ion else "ControlPointSequence"
    beams = list(ds.get(beam_keyword) or [])
    if not beams:
        raise PlanError(f"{what} has no beam ({beam_keyword} is missing or empty)")
    no_dose = _beams_without_meterset(ds)
    treatment = [b for b in beams if (_text(b, "TreatmentDeliveryType") or "") != "SETUP"
                 and b.get("BeamNumber") not in no_dose]
    if not treatment:
        raise PlanError(f"{what} has only SETUP or imaging beams (no meterset), no treatment beam")
    if len(treatment) < len(beams):
        log.info("plan %s: %d SETUP or imaging beams ignored", uid, len(beams) - len(treatment))

    isocenters = [_beam_isocenter(b, cp_keyword, what) for b in treatment]
    distinct = distinct_points(isocenters, tolerance_mm=isocenter_tolerance_mm)
    position = _patient_position(ds, treatment, what)

    structure_set_uid = None
    for item in ds.get("ReferencedStructureSetSequence") or []:
        structure_set_uid = _text(item, "ReferencedSOPInstanceUID")
        if structure_set_uid:
            break

    log.info(
        "plan %s: %d treatment beams, %d distinct isocentres, %s, frame %s, approval %s",
        uid, len(treatment), len(distinct), position.value, frame_uid, approval or "absent",
    )
    return Plan(
        sop_instance_uid=uid,
        sop_class_uid=sop_class,
        patient_id=patient_id,
        frame_of_reference_uid=frame_uid,
        label=label,
        patient_position=position,
        isocenters_mm=distinct,
        referenced_structure_set_uid=structure_set_uid,
        beam_count=len(treatment),
        approval_status=approval,
    )


def _beams_without_meterset(ds: Any) -> set[Any]:
    """Numbers of the beams that deliver nothing: listed in the fraction groups without a Beam
    Meterset, or with 0, while other beams of the plan have a positive one. Imaging fields
    (kV, CBCT) are exported like that, some as TREATMENT beams (Eclipse writes a "CBCT" field
    as TREATMENT with no meterset). When no beam has a meterset (it is optional), none is
    excluded. Beams are joined by number, never by position in a sequence."""
    metersets: dict[Any, float] = {}
    for group in ds.get("FractionGroupSequence") or []:
        for ref in group.get("ReferencedBeamSequence") or []:
            value = _floats(ref.get("BeamMeterset")) or [0.0]
            number = ref.get("ReferencedBeamNumber")
            metersets[number] = max(metersets.get(number, 0.0), value[0])
    if not any(v > 0 for v in metersets.values()):
        return set()
    return {number for number, value in metersets.items() if value <= 0}


def _beam_name(beam: Any) -> str:
    number = beam.get("BeamNumber")
    name = _text(beam, "BeamName")
    label = f"beam {number}" if number is not None else "a beam"
    return f"{label} ({name})" if name else label


def _beam_isocenter(beam: Any, cp_keyword: str, what: str) -> Point:
    points = list(beam.get(cp_keyword) or [])
    if not points:
        raise PlanError(f"{what}: {_beam_name(beam)} has no control point ({cp_keyword})")
    first = next((cp for cp in points if cp.get("ControlPointIndex") == 0), points[0])
    raw = first.get("IsocenterPosition")
    value = _floats(raw)
    if raw is None:
        raise PlanError(
            f"{what}: the first control point of {_beam_name(beam)} has no "
            "Isocenter Position (300A,012C)"
        )
    if value is None or len(value) != 3:
        raise PlanError(
            f"{what}: the Isocenter Position (300A,012C) of {_beam_name(beam)} is not 3 numbers: "
            f"{raw!r}"
        )
    iso = (value[0], value[1], value[2])
    if not all(math.isfinite(c) for c in iso):
        raise PlanError(f"{what}: {_beam_name(beam)} has a non-finite Isocenter Position {iso}")
    return iso


def _patient_position(ds: Any, beams: Sequence[Any], what: str) -> PatientPosition:
    setups = list(ds.get("PatientSetupSequence") or [])
    if not setups:
        raise PlanError(
            f"{what} has no Patient Setup Sequence (300A,0180): the patient position is unknown"
        )
    by_number = {item.get("PatientSetupNumber"): item for item in setups}
    referenced = [b.get("ReferencedPatientSetupNumber") for b in beams]
    if all(r is None for r in referenced):
        used = setups
    else:
        used = []
        for beam, number in zip(beams, referenced, strict=True):
            if number is None:
                continue
            if number not in by_number:
                raise PlanError(
                    f"{what}: {_beam_name(beam)} references Patient Setup Number {number}, "
                    "which the Patient Setup Sequence does not hold"
                )
            used.append(by_number[number])
    positions: list[str] = []
    for item in used:
        position = _text(item, "PatientPosition") or _text(item, "PatientAdditionalPosition")
        if position is None:
            raise PlanError(
                f"{what}: Patient Setup {item.get('PatientSetupNumber')} has no "
                "Patient Position (0018,5100)"
            )
        if position not in positions:
            positions.append(position)
    if len(positions) > 1:
        raise PlanError(f"{what}: the treatment beams use several patient positions: {positions}")
    try:
        return PatientPosition(positions[0])
    except ValueError:
        raise PlanError(
            f"{what}: patient position {positions[0]!r} is not supported (only HFS, FFS, HFP and "
            "FFP map to IEC table-top axes)"
        ) from None
