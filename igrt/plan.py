"""RT Plan and RT Ion Plan: the planning reference a CBCT is set up against (CONTRACT §3).

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

The module also holds the pure decisions made with plans: which plan a CBCT is set up against
(:func:`choose_plan`), which isocentre (:func:`select_isocenter`), whether the CBCT belongs to the
plan's patient (:func:`check_same_patient`), and which planning CT the plan uses
(:func:`choose_planning_ct`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from igrt.dicom_values import floats as _floats
from igrt.dicom_values import text as _text
from igrt.errors import (
    AmbiguousPlanError,
    MultipleIsocentresError,
    NoPlanError,
    NoPlanningCtError,
    PatientMismatchError,
    PlanError,
)
from igrt.geometry import PatientPosition

log = logging.getLogger(__name__)

RT_PLAN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.8"
PLAN_SOP_CLASSES = {RT_PLAN_SOP_CLASS: "RT Plan", RT_ION_PLAN_SOP_CLASS: "RT Ion Plan"}

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Plan:
    """What igrt uses of an RT (Ion) Plan. ``isocenters_mm`` are the distinct isocentres (LPS,
    planning frame) in the order the treatment beams list them; ``beam_count`` counts the
    treatment beams (setup beams excluded)."""

    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str
    frame_of_reference_uid: str
    label: str
    patient_position: PatientPosition
    isocenters_mm: tuple[Point, ...]
    referenced_structure_set_uid: str | None
    beam_count: int


# --- DICOM adapter -------------------------------------------------------------------------------
def normalise_patient_id(value: object) -> str:
    """A Patient ID as compared by igrt: the text with trailing spaces and NULs removed."""
    return "" if value is None else str(value).rstrip(" \x00")




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
            f"SOP Class UID {sop_class} is neither RT Plan ({RT_PLAN_SOP_CLASS}) nor "
            f"RT Ion Plan ({RT_ION_PLAN_SOP_CLASS})"
        )
    uid = _required(ds, "SOPInstanceUID", "SOP Instance UID (0008,0018)", "the plan")
    what = f"{PLAN_SOP_CLASSES[sop_class]} {uid}"
    patient_id = _required(ds, "PatientID", "Patient ID (0010,0020)", what)
    frame_uid = _required(ds, "FrameOfReferenceUID", "Frame of Reference UID (0020,0052)", what)
    label = _text(ds, "RTPlanLabel") or ""

    ion = sop_class == RT_ION_PLAN_SOP_CLASS
    beam_keyword = "IonBeamSequence" if ion else "BeamSequence"
    cp_keyword = "IonControlPointSequence" if ion else "ControlPointSequence"
    beams = list(ds.get(beam_keyword) or [])
    if not beams:
        raise PlanError(f"{what} has no beam ({beam_keyword} is missing or empty)")
    treatment = [b for b in beams if (_text(b, "TreatmentDeliveryType") or "") != "SETUP"]
    if not treatment:
        raise PlanError(f"{what} has only SETUP beams, no treatment beam")
    if len(treatment) < len(beams):
        log.info("plan %s: %d SETUP beams ignored", uid, len(beams) - len(treatment))

    isocenters = [_beam_isocenter(b, cp_keyword, what) for b in treatment]
    distinct = distinct_points(isocenters, tolerance_mm=isocenter_tolerance_mm)
    position = _patient_position(ds, treatment, what)

    structure_set_uid = None
    for item in ds.get("ReferencedStructureSetSequence") or []:
        structure_set_uid = _text(item, "ReferencedSOPInstanceUID")
        if structure_set_uid:
            break

    log.info(
        "plan %s (%s): %d treatment beams, %d distinct isocentres, %s, frame %s",
        uid, label, len(treatment), len(distinct), position.value, frame_uid,
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
    )


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


def distinct_points(points: Sequence[Point], *, tolerance_mm: float = 0.5) -> tuple[Point, ...]:
    """The points with those closer than ``tolerance_mm`` to an earlier kept one dropped, in
    order (the first of each group is kept)."""
    kept: list[Point] = []
    for p in points:
        if all(math.dist(p, q) > tolerance_mm for q in kept):
            kept.append(p)
    return tuple(kept)


# --- decisions -----------------------------------------------------------------------------------
def _format_point(p: Point) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in p) + ")"


def select_isocenter(plan: Plan, *, index: int | None = None) -> Point:
    """The isocentre to set up: the only distinct one, or the ``index``-th (0-based) if chosen."""
    isos = plan.isocenters_mm
    listed = ", ".join(f"{n}: {_format_point(p)} mm" for n, p in enumerate(isos))
    if index is None:
        if len(isos) == 1:
            return isos[0]
        raise MultipleIsocentresError(
            f"plan {plan.sop_instance_uid} ({plan.label}) has {len(isos)} distinct isocentres "
            f"and none is selected: {listed}"
        )
    if not 0 <= index < len(isos):
        raise PlanError(
            f"isocentre {index} was selected but plan {plan.sop_instance_uid} has "
            f"{len(isos)} (0 to {len(isos) - 1}): {listed}"
        )
    return isos[index]


def choose_plan(plans: Sequence[Plan], *, patient_id: str, selected_uid: str | None) -> Plan:
    """The plan a CBCT of ``patient_id`` is set up against (CONTRACT §3): the plan selected for
    that patient, else the patient's only plan. Plans are compared by SOP Instance UID (the same
    plan received twice counts once)."""
    wanted = normalise_patient_id(patient_id)
    if not wanted:
        raise NoPlanError("the CBCT has an empty Patient ID, no plan can be matched to it")
    own: dict[str, Plan] = {}
    for plan in plans:
        if normalise_patient_id(plan.patient_id) == wanted:
            own.setdefault(plan.sop_instance_uid, plan)
    if selected_uid is not None:
        if selected_uid in own:
            return own[selected_uid]
        elsewhere = any(p.sop_instance_uid == selected_uid for p in plans)
        detail = "belongs to another patient" if elsewhere else "has not been received"
        raise NoPlanError(
            f"the plan selected for patient {wanted}, {selected_uid}, {detail}"
        )
    if not own:
        raise NoPlanError(f"no RT Plan has been received for patient {wanted}")
    if len(own) > 1:
        listed = "; ".join(f"{p.label!r} {uid}" for uid, p in own.items())
        raise AmbiguousPlanError(
            f"patient {wanted} has {len(own)} plans and none is selected: {listed}"
        )
    return next(iter(own.values()))


def check_same_patient(cbct_patient_id: str | None, plan: Plan) -> None:
    """Refuse (:class:`PatientMismatchError`) unless the CBCT's Patient ID equals the plan's
    (exact comparison after removing trailing spaces and NULs; an empty ID never matches)."""
    cbct = normalise_patient_id(cbct_patient_id)
    planned = normalise_patient_id(plan.patient_id)
    if not cbct or cbct != planned:
        raise PatientMismatchError(
            f"the CBCT's Patient ID {cbct!r} is not the Patient ID {planned!r} of plan "
            f"{plan.sop_instance_uid}"
        )


def choose_planning_ct(
    series_frames: Mapping[str, str], plan: Plan, *, preferred_series_uid: str | None = None
) -> str:
    """The Series Instance UID of the planning CT: among ``series_frames`` (CT series UID →
    its Frame of Reference UID), the one in the plan's frame. Several → the preferred one (e.g.
    the structure set's referenced series) if it is among them, else :class:`PlanError`; none →
    :class:`NoPlanningCtError`."""
    candidates = sorted(s for s, f in series_frames.items() if f == plan.frame_of_reference_uid)
    if not candidates:
        raise NoPlanningCtError(
            f"no CT series is in the Frame of Reference {plan.frame_of_reference_uid} of plan "
            f"{plan.sop_instance_uid}"
        )
    if len(candidates) == 1:
        return candidates[0]
    if preferred_series_uid is not None and preferred_series_uid in candidates:
        return preferred_series_uid
    raise PlanError(
        f"{len(candidates)} CT series share the Frame of Reference "
        f"{plan.frame_of_reference_uid} of plan {plan.sop_instance_uid} and none is preferred: "
        + ", ".join(candidates)
    )
